//! `msenas search`: NSGA-II architecture search with a training-free fitness, written to a run
//! folder that `--resume` continues.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::evolve::config::Config;
use crate::evolve::run_dir::{self, RunDir};
use crate::evolve::search::{self, GenerationSummary, Observer};
use crate::fitness::evaluate::Evaluation;
use crate::genome::motifs;
use crate::Error;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A JSON config file (keys as in a run's config.json; unknown keys are refused).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override one config value, e.g. `--set space.width=16` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Starting point: cpu (default; a couple of minutes on two cores), paper, tiny.
    #[arg(long)]
    pub preset: Option<String>,
    /// Dataset (digits, digits_dvs, mnist, fashion_mnist, cifar10, cifar100, dvs128_gesture,
    /// cifar10_dvs).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Folder holding the dataset's files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The fitness score (replaces the old fitness among the objectives).
    #[arg(long)]
    pub fitness: Option<String>,
    /// NSGA-II objectives, comma-separated score names (directions from the score registry).
    #[arg(long, value_delimiter = ',')]
    pub objectives: Option<Vec<String>>,
    /// Population size (survivors per generation; offspring follow unless set).
    #[arg(long)]
    pub population: Option<usize>,
    /// Generations, generation 0 (the random initial population) included. With --resume:
    /// extend a run.
    #[arg(long)]
    pub generations: Option<usize>,
    /// The run's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// auto, cpu or gpu.
    #[arg(long)]
    pub device: Option<String>,
    /// Run folder (default runs/search-SEED-UNIXTIME).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder (its config.json; only --generations and --device may
    /// be given).
    #[arg(long, value_name = "RUN")]
    pub resume: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Resolve the configuration of a new run from the flags.
pub fn resolve_config(a: &Args) -> crate::Result<Config> {
    let mut cfg = Config::load(a.preset.as_deref(), a.config.as_deref(), &a.sets)?;
    if let Some(d) = &a.dataset {
        cfg.data.dataset = d.clone();
    }
    if let Some(d) = &a.data_dir {
        cfg.data.data_dir = Some(d.display().to_string());
    }
    if let Some(f) = &a.fitness {
        let old = std::mem::replace(&mut cfg.search.fitness, f.clone());
        if a.objectives.is_none() {
            for o in cfg.search.objectives.iter_mut() {
                if *o == old {
                    *o = f.clone();
                }
            }
            if !cfg.search.objectives.contains(f) {
                cfg.search.objectives.insert(0, f.clone());
            }
        }
    }
    if let Some(o) = &a.objectives {
        cfg.search.objectives = o.iter().map(|s| s.trim().to_string()).collect();
    }
    if let Some(p) = a.population {
        cfg.search.population = p;
        if !a.sets.iter().any(|s| s.starts_with("search.offspring=")) {
            cfg.search.offspring = p;
        }
    }
    if let Some(g) = a.generations {
        cfg.search.generations = g;
    }
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    if let Some(d) = &a.device {
        cfg.search.device = d.clone();
    }
    cfg.validate()?;
    if cfg.search.generations == 0 {
        return Err(Error::input(
            "search.generations: 0 (allowed: >= 1, generation 0 included)",
        ));
    }
    search::search_scores(&cfg)?;
    Ok(cfg)
}

struct Progress {
    bar: ProgressBar,
    fitness: String,
    generations: usize,
    generation: usize,
    best: String,
}

impl Progress {
    fn refresh(&self) {
        self.bar.set_message(format!(
            "gen {}/{}  best {}={}",
            self.generation + 1,
            self.generations,
            self.fitness,
            self.best
        ));
    }
}

impl Observer for Progress {
    fn evaluated(&mut self, generation: usize, _e: &Evaluation, _replayed: bool) {
        if generation != self.generation {
            self.generation = generation;
            self.refresh();
        }
        self.bar.inc(1);
    }
    fn generation_done(&mut self, s: &GenerationSummary, best: Option<&Evaluation>) {
        self.generation = s.generation;
        if let Some(b) = best {
            self.best = format!("{:.4}", b.score(&self.fitness));
        }
        self.refresh();
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let (cfg, resumed) = match &a.resume {
        Some(path) => {
            let given = [
                ("--config", a.config.is_some()),
                ("--set", !a.sets.is_empty()),
                ("--preset", a.preset.is_some()),
                ("--dataset", a.dataset.is_some()),
                ("--data-dir", a.data_dir.is_some()),
                ("--fitness", a.fitness.is_some()),
                ("--objectives", a.objectives.is_some()),
                ("--population", a.population.is_some()),
                ("--seed", a.seed.is_some()),
                ("--out", a.out.is_some()),
            ];
            if let Some((flag, _)) = given.iter().find(|(_, g)| *g) {
                return Err(Error::input(format!(
                    "{flag} cannot be combined with --resume (the run's settings come from {}; \
                     only --generations and --device may be given)",
                    path.join(run_dir::CONFIG).display()
                ))
                .into());
            }
            let (dir, mut cfg, records, regenerate) = search::resume_run(path, a.generations)?;
            if let Some(d) = &a.device {
                cfg.search.device = d.clone();
            }
            (cfg, Some((dir, records, regenerate)))
        }
        None => (resolve_config(&a)?, None),
    };

    // Everything that can refuse the settings runs before a new run folder is created.
    let scores = search::search_scores(&cfg)?;
    let (settings, probe, ds) = search::prepare(&cfg, scores)?;
    let device = crate::engine::Device::resolve(&cfg.search.device)?;
    let mut evaluator =
        crate::evolve::short_train::make_search_evaluator(&cfg, settings, &ds, |s| {
            crate::fitness::evaluate::make_evaluator(&device, s, probe)
        })?;
    let (mut dir, records) = match resumed {
        Some((dir, records, regenerate)) => {
            if let Some(c) = regenerate {
                // The new generation count is recorded only once the settings are accepted.
                dir.write_config(&c)?;
            }
            (dir, records)
        }
        None => {
            let out = a.out.clone().unwrap_or_else(|| {
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                PathBuf::from(format!("runs/search-{}-{secs}", cfg.seed))
            });
            (RunDir::create(&out, &cfg)?, Vec::new())
        }
    };

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // Already installed (a second search in one process) is fine: the first flag is kept.
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }

    let s = &cfg.search;
    let total = s.population + s.generations.saturating_sub(1) * s.offspring;
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr())
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg}  [{bar:28}] {pos}/{len} candidates  {per_sec}  ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let mut progress = Progress {
        bar,
        fitness: s.fitness.clone(),
        generations: s.generations,
        generation: 0,
        best: "-".into(),
    };
    progress.refresh();
    if !a.quiet {
        eprintln!(
            "msenas search: {} ({} train samples), probe {} x {}, device {}, run folder {}{}",
            ds.name,
            ds.train.len(),
            s.probe_batches,
            s.probe_size,
            evaluator.device(),
            dir.path.display(),
            if records.is_empty() {
                String::new()
            } else {
                format!(", resuming with {} logged evaluations", records.len())
            }
        );
    }
    let started = Instant::now();
    let outcome = search::run(
        &cfg,
        &mut dir,
        evaluator.as_mut(),
        records,
        &stop,
        &mut progress,
    )?;
    progress.bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();

    for w in &outcome.warnings {
        eprintln!("msenas: warning: {w}");
    }
    if outcome.interrupted {
        eprintln!(
            "msenas search: interrupted after {} new evaluations; resume with: msenas search --resume {}",
            outcome.fresh,
            dir.path.display()
        );
        std::process::exit(130);
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "search finished: {} generations, {} new evaluations ({} replayed) in {:.1} s ({:.2} candidates/s)",
        outcome.generations,
        outcome.fresh,
        outcome.replayed,
        secs,
        outcome.fresh as f64 / secs.max(1e-9)
    );
    let f = &cfg.search.fitness;
    let mut top: Vec<&crate::evolve::search::Member> = outcome.population.iter().collect();
    let dir_f = crate::fitness::score_def(f)?.direction;
    top.sort_by(|x, y| {
        let (a, b) = (x.evaluation.score(f), y.evaluation.score(f));
        let o = match dir_f {
            crate::fitness::Direction::Maximize => b.total_cmp(&a),
            crate::fitness::Direction::Minimize => a.total_cmp(&b),
        };
        (x.evaluation.status != crate::evolve::Status::Ok)
            .cmp(&(y.evaluation.status != crate::evolve::Status::Ok))
            .then(o)
    });
    out.push('\n');
    let _ = writeln!(
        out,
        "{:<12} {:<24} {:>12} {:>10}  status",
        "key", "motifs", f, "params"
    );
    for m in top.iter().take(8) {
        let e = &m.evaluation;
        let ms: Vec<String> = search::live_motifs(&e.genome)
            .iter()
            .map(|n| format!("m{}", motifs::by_name(n).map(|d| d.id).unwrap_or(0)))
            .collect();
        let _ = writeln!(
            out,
            "{:<12} {:<24} {:>12.5} {:>10}  {}",
            search::key_short(&e.key),
            ms.join(","),
            e.score(f),
            e.score("params") as u64,
            e.status.as_str()
        );
    }
    let legend: Vec<String> = motifs::REGISTRY
        .iter()
        .map(|m| format!("m{} {}", m.id, m.name))
        .collect();
    let _ = writeln!(out, "motifs: {}", legend.join(", "));
    out.push('\n');
    let _ = writeln!(out, "results in {}:", dir.path.display());
    let _ = writeln!(
        out,
        "  {}  (the best genome by {f}; `msenas score {} --config {}` scores it again)",
        run_dir::BEST,
        dir.file(run_dir::BEST).display(),
        dir.file(run_dir::CONFIG).display()
    );
    let _ = writeln!(
        out,
        "  {}  {}  population_<g>.json  config.json",
        run_dir::PARETO,
        run_dir::EVALUATIONS
    );
    let _ = writeln!(out, "  fitness.png  pareto.png  motifs.png");
    emit(&out);
    Ok(())
}

/// Print to standard output; a closed pipe (`| head`) is not an error.
fn emit(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush());
}
