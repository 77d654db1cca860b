//! Search versus random: does the search find better networks than a random draw from the same
//! space, at the same training budget?
//!
//! 1. The search runs with the configured fitness into `OUT/search` (a normal search folder,
//!    resumable).
//! 2. Its pick (the best by the fitness) and the next `top - 1` distinct genomes by the fitness
//!    are taken, and `random` distinct genomes are drawn from the same space with a generator
//!    seeded by the run seed (independent of the search).
//! 3. Every one of them is trained `seeds` times with the configured training settings
//!    (training seeds shared by all architectures), each into `OUT/train/NAME/seedS` (a normal
//!    training folder: a finished one is read back, a stopped one resumes).
//! 4. `OUT/versus.json`, `OUT/versus.md` and `OUT/versus.png` report the pick's mean test
//!    accuracy with a bootstrap interval, the random median and best, the difference to the
//!    random median with a bootstrap interval (pick seeds and random architectures resampled
//!    independently), and the pick's percentile among the random architectures' means.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::engine::Device;
use crate::evolve::config::Config;
use crate::evolve::run_dir::{self, RunDir};
use crate::evolve::search::{self, Quiet};
use crate::fitness::evaluate::{derive_seed, Status};
use crate::fitness::{self, Direction};
use crate::genome::Genome;
use crate::report::plot::{self, Series};
use crate::stats::{bootstrap_ci, median, quantile_sorted};
use crate::train::{Network, Silent, TrainJob, TrainResult};
use crate::{Error, Result};

/// The settings file of a benchmark folder.
pub const SETTINGS: &str = "versus-settings.json";
pub const REPORT_JSON: &str = "versus.json";
pub const REPORT_MD: &str = "versus.md";
pub const PLOT: &str = "versus.png";

/// What the benchmark does besides the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersusOptions {
    /// Architectures drawn at random from the search space.
    pub random: usize,
    /// Training seeds per architecture.
    pub seeds: usize,
    /// The search's pick and its next best distinct genomes by the fitness.
    pub top: usize,
    /// Train on a stratified subset of this many training samples (`None`: the whole split).
    pub train_subset: Option<usize>,
    /// Validate and test on stratified subsets of this many samples each (`None`: the whole
    /// splits).
    #[serde(default)]
    pub eval_subset: Option<usize>,
}

impl Default for VersusOptions {
    fn default() -> Self {
        VersusOptions {
            random: 10,
            seeds: 3,
            top: 3,
            train_subset: None,
            eval_subset: None,
        }
    }
}

impl VersusOptions {
    pub fn validate(&self) -> Result<()> {
        if self.random < 2 {
            return Err(Error::input(format!(
                "--random: {} (allowed: >= 2 architectures)",
                self.random
            )));
        }
        if self.seeds == 0 {
            return Err(Error::input("--seeds: 0 (allowed: >= 1)"));
        }
        if self.top == 0 {
            return Err(Error::input("--top: 0 (allowed: >= 1)"));
        }
        if self.train_subset == Some(0) {
            return Err(Error::input("--train-subset: 0 (allowed: >= 1)"));
        }
        if self.eval_subset.is_some_and(|n| n < 2) {
            return Err(Error::input("--eval-subset: below 2 (allowed: >= 2)"));
        }
        Ok(())
    }
}

/// Which side of the comparison an architecture is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    Search,
    Random,
}

/// One trained architecture.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Arch {
    /// `pick`, `top2`, ..., `random01`, ...
    pub name: String,
    pub group: Group,
    pub key: String,
    pub params: usize,
    /// The fitness of the search's evaluation (search side only).
    pub fitness: Option<f64>,
    /// Test accuracy per training seed.
    pub test_acc: Vec<f64>,
    pub mean_test_acc: f64,
}

/// The benchmark's result (`versus.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VersusReport {
    pub fitness: String,
    pub dataset: String,
    pub candidates_evaluated: usize,
    pub options: VersusOptions,
    pub pick_mean: f64,
    /// 95% bootstrap interval of the pick's mean over its training seeds.
    pub pick_ci: (f64, f64),
    pub random_median: f64,
    pub random_best: f64,
    /// Pick mean minus the random median, and its 95% bootstrap interval.
    pub diff_median: f64,
    pub diff_median_ci: (f64, f64),
    /// Share of random architectures whose mean is below the pick's (ties count half), in %.
    pub pick_percentile: f64,
    pub archs: Vec<Arch>,
    pub train_seconds: f64,
}

impl VersusReport {
    /// One line: the pick against the random draws, with intervals and percentile.
    pub fn summary(&self) -> String {
        format!(
            "fitness {}: pick {:.2}% [{:.2}, {:.2}] vs random median {:.2}% (best {:.2}%): \
             {:+.2} points [{:+.2}, {:+.2}], percentile {:.0}",
            self.fitness,
            100.0 * self.pick_mean,
            100.0 * self.pick_ci.0,
            100.0 * self.pick_ci.1,
            100.0 * self.random_median,
            100.0 * self.random_best,
            100.0 * self.diff_median,
            100.0 * self.diff_median_ci.0,
            100.0 * self.diff_median_ci.1,
            self.pick_percentile
        )
    }
}

/// Receives the benchmark's progress (the CLI prints lines with an ETA).
pub trait VersusObserver {
    fn stage(&mut self, _what: &str) {}
    /// One training finished (or was read back): `done` of `total`.
    fn trained(
        &mut self,
        _done: usize,
        _total: usize,
        _name: &str,
        _seed: usize,
        _r: &TrainResult,
    ) {
    }
}

impl VersusObserver for Quiet {}

/// Runs (or continues) the benchmark in `out`.
pub fn run(
    cfg: &Config,
    opts: &VersusOptions,
    out: &Path,
    device: &Device,
    observer: &mut dyn VersusObserver,
) -> Result<VersusReport> {
    cfg.validate()?;
    opts.validate()?;
    let started = Instant::now();
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let _lock = crate::fsio::DirLock::acquire(out)?;
    check_settings(out, opts)?;

    // 1. The search.
    observer.stage(&format!(
        "search: fitness {}, {} + {} x {} candidates on {}",
        cfg.search.fitness,
        cfg.search.population,
        cfg.search.offspring,
        cfg.search.generations.saturating_sub(1),
        device.describe()
    ));
    let search_dir = out.join("search");
    let scores = search::search_scores(cfg)?;
    let (settings, probe, ds) = search::prepare(cfg, scores)?;
    let mut evaluator =
        crate::evolve::short_train::make_search_evaluator(cfg, settings, &ds, |s| {
            crate::fitness::evaluate::make_evaluator(device, s, probe)
        })?;
    let (mut dir, records) = if search_dir.join(run_dir::CONFIG).exists() {
        let (dir, held, records) = RunDir::resume(&search_dir)?;
        let mut diff = Vec::new();
        run_dir::differences(
            &run_dir::settings_value(&held),
            &run_dir::settings_value(cfg),
            "",
            &mut diff,
        );
        if !diff.is_empty() {
            return Err(Error::input(format!(
                "{}: holds a search with other settings: {} (use the same settings, or another \
                 --out)",
                search_dir.display(),
                diff.join(", ")
            )));
        }
        (dir, records)
    } else {
        (RunDir::create(&search_dir, cfg)?, Vec::new())
    };
    let outcome = search::run(
        cfg,
        &mut dir,
        evaluator.as_mut(),
        records,
        &AtomicBool::new(false),
        &mut Quiet,
    )?;
    drop(dir);
    let (_, _, records) = RunDir::resume(&search_dir)?;
    let evaluated = records.len();
    let fitness_def = fitness::score_def(&cfg.search.fitness)?;
    let mut live: Vec<&crate::fitness::evaluate::Evaluation> = records
        .iter()
        .map(|r| &r.evaluation)
        .filter(|e| e.status == Status::Ok)
        .collect();
    // Best first by the fitness; ties: fewer parameters, then earlier (the search's own rule).
    let sign = match fitness_def.direction {
        Direction::Maximize => -1.0,
        Direction::Minimize => 1.0,
    };
    live.sort_by(|a, b| {
        (sign * a.score(&cfg.search.fitness))
            .total_cmp(&(sign * b.score(&cfg.search.fitness)))
            .then(a.score("params").total_cmp(&b.score("params")))
    });
    let mut picked: Vec<(Genome, String, f64)> = Vec::new();
    if let Some(best) = &outcome.best {
        picked.push((
            best.genome.clone(),
            best.key.clone(),
            best.score(&cfg.search.fitness),
        ));
    }
    for e in live {
        if picked.len() >= opts.top {
            break;
        }
        if !picked.iter().any(|(_, k, _)| *k == e.key) {
            picked.push((
                e.genome.clone(),
                e.key.clone(),
                e.score(&cfg.search.fitness),
            ));
        }
    }
    if picked.is_empty() {
        return Err(Error::input(format!(
            "{}: the search found no live network to train",
            search_dir.display()
        )));
    }

    // 2. The random draws: distinct genomes that compile, from the same space.
    let mut spec = ds.spec;
    spec.timesteps = cfg.space.timesteps;
    let mut rng = rand::rngs::StdRng::seed_from_u64(derive_seed(cfg.seed, "versus-random", 0));
    let mut random: Vec<(Genome, String)> = Vec::new();
    let mut attempts = 0;
    while random.len() < opts.random {
        attempts += 1;
        if attempts > 100 * opts.random {
            return Err(Error::input(format!(
                "search space: only {} distinct networks found in {} draws (asked for {})",
                random.len(),
                attempts - 1,
                opts.random
            )));
        }
        let g = cfg.space.sample(&mut rng);
        let Ok(net) =
            Network::from_genome(g.clone(), &spec, cfg.space.width, cfg.space.reduce_kernel)
        else {
            continue;
        };
        let key = net.plan.key.clone();
        if !random.iter().any(|(_, k)| *k == key) {
            random.push((g, key));
        }
    }

    // 3. Training.
    let mut train_ds = match opts.train_subset {
        Some(n) if n < ds.train.len() => {
            super::proxy::subset_dataset(&ds, n, cfg.seed, "versus-train")
        }
        _ => ds.clone(),
    };
    if let Some(n) = opts.eval_subset {
        let mut rng = rand::rngs::StdRng::seed_from_u64(derive_seed(cfg.seed, "versus-eval", 0));
        if n < train_ds.val.len() {
            let idx = train_ds.val.stratified(n, &mut rng);
            train_ds.val = train_ds.val.subset(&idx);
        }
        if n < train_ds.test.len() {
            let idx = train_ds.test.stratified(n, &mut rng);
            train_ds.test = train_ds.test.subset(&idx);
        }
    }
    let mut plan: Vec<(String, Group, Genome, String, Option<f64>)> = Vec::new();
    for (i, (g, k, f)) in picked.into_iter().enumerate() {
        let name = if i == 0 {
            "pick".to_string()
        } else {
            format!("top{}", i + 1)
        };
        plan.push((name, Group::Search, g, k, Some(f)));
    }
    for (i, (g, k)) in random.into_iter().enumerate() {
        plan.push((format!("random{:02}", i + 1), Group::Random, g, k, None));
    }
    observer.stage(&format!(
        "training: {} architectures x {} seeds, {} epochs on {} training samples \
         ({} validation, {} test)",
        plan.len(),
        opts.seeds,
        cfg.train.epochs,
        train_ds.train.len(),
        train_ds.val.len(),
        train_ds.test.len()
    ));
    let total = plan.len() * opts.seeds;
    let t_train = Instant::now();
    let mut archs = Vec::new();
    let mut done = 0;
    for (name, group, genome, key, fitness) in plan {
        let net = Network::from_genome(genome, &spec, cfg.space.width, cfg.space.reduce_kernel)?;
        let mut accs = Vec::new();
        for s in 0..opts.seeds {
            let dir = out.join("train").join(&name).join(format!("seed{s}"));
            let seed = derive_seed(cfg.seed, "versus-train", s as u64);
            let r = train_one(&net, &train_ds, cfg, seed, &dir, device)?;
            done += 1;
            observer.trained(done, total, &name, s, &r);
            accs.push(r.test_acc);
        }
        archs.push(Arch {
            name,
            group,
            key,
            params: net.plan.num_params,
            fitness,
            mean_test_acc: mean(&accs),
            test_acc: accs,
        });
    }
    let report = summarise(
        cfg,
        opts,
        &ds,
        evaluated,
        archs,
        t_train.elapsed().as_secs_f64(),
    );
    write_report(out, &report)?;
    observer.stage(&format!(
        "done in {:.0} s: {}",
        started.elapsed().as_secs_f64(),
        report.summary()
    ));
    Ok(report)
}

/// A finished training folder is read back; a stopped one resumes; otherwise a fresh run.
fn train_one(
    net: &Network,
    ds: &Dataset,
    cfg: &Config,
    seed: u64,
    dir: &Path,
    device: &Device,
) -> Result<TrainResult> {
    let result = dir.join("result.json");
    if result.is_file() && dir.join("model.ckpt").is_file() {
        let text = crate::fsio::read_text(&result, "training result")?;
        let r: TrainResult = serde_json::from_str(&text)
            .map_err(|e| Error::input(format!("{}: {e}", result.display())))?;
        if r.key == net.plan.key && r.epochs == cfg.train.epochs {
            return Ok(r);
        }
    }
    let resume = dir.join("state.ckpt").is_file();
    TrainJob::new(net, ds, &cfg.train, seed, dir)
        .resuming(resume)
        .run(device, &mut Silent)
}

/// The benchmark options are stored once; a rerun with other options is refused.
fn check_settings(out: &Path, opts: &VersusOptions) -> Result<()> {
    let path = out.join(SETTINGS);
    if path.is_file() {
        let text = crate::fsio::read_text(&path, "benchmark settings")?;
        let held: VersusOptions = serde_json::from_str(&text)
            .map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
        if &held != opts {
            return Err(Error::input(format!(
                "{}: the folder holds a benchmark with other options ({held:?}; asked {opts:?}): \
                 use the same options, or another --out",
                path.display()
            )));
        }
        return Ok(());
    }
    let json = serde_json::to_string_pretty(opts).expect("options serialise") + "\n";
    crate::fsio::write_atomic(&path, json.as_bytes())
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len().max(1) as f64
}

/// The statistics of the report from the trained architectures.
pub fn summarise(
    cfg: &Config,
    opts: &VersusOptions,
    ds: &Dataset,
    candidates_evaluated: usize,
    archs: Vec<Arch>,
    train_seconds: f64,
) -> VersusReport {
    let pick = archs
        .iter()
        .find(|a| a.name == "pick")
        .expect("the pick is trained");
    let random: Vec<f64> = archs
        .iter()
        .filter(|a| a.group == Group::Random)
        .map(|a| a.mean_test_acc)
        .collect();
    let random_median = median(&random);
    let random_best = random.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let pick_mean = pick.mean_test_acc;
    let mut rng = rand::rngs::StdRng::seed_from_u64(derive_seed(cfg.seed, "versus-ci", 0));
    let accs = &pick.test_acc;
    let pick_ci = bootstrap_ci(
        accs.len(),
        &|idx: &[usize]| mean(&idx.iter().map(|&i| accs[i]).collect::<Vec<_>>()),
        2000,
        0.05,
        &mut rng,
    );
    // Pick seeds and random architectures resampled independently: one index space holding
    // both, split by position.
    let (np, nr) = (accs.len(), random.len());
    let mut rng2 = rand::rngs::StdRng::seed_from_u64(derive_seed(cfg.seed, "versus-ci", 1));
    let mut diffs = Vec::new();
    {
        use rand::Rng;
        for _ in 0..2000 {
            let p: Vec<f64> = (0..np).map(|_| accs[rng2.random_range(0..np)]).collect();
            let r: Vec<f64> = (0..nr).map(|_| random[rng2.random_range(0..nr)]).collect();
            diffs.push(mean(&p) - median(&r));
        }
    }
    diffs.sort_by(f64::total_cmp);
    let below = random.iter().filter(|&&r| r < pick_mean).count() as f64;
    let ties = random.iter().filter(|&&r| r == pick_mean).count() as f64;
    VersusReport {
        fitness: cfg.search.fitness.clone(),
        dataset: ds.name.clone(),
        candidates_evaluated,
        options: opts.clone(),
        pick_mean,
        pick_ci,
        random_median,
        random_best,
        diff_median: pick_mean - random_median,
        diff_median_ci: (
            quantile_sorted(&diffs, 0.025),
            quantile_sorted(&diffs, 0.975),
        ),
        pick_percentile: 100.0 * (below + 0.5 * ties) / nr.max(1) as f64,
        archs,
        train_seconds,
    }
}

fn write_report(out: &Path, r: &VersusReport) -> Result<()> {
    let json = serde_json::to_string_pretty(r).expect("report serialises") + "\n";
    crate::fsio::write_atomic(&out.join(REPORT_JSON), json.as_bytes())?;
    let mut md = format!(
        "# Search versus random: fitness `{}` on {}\n\n\
         {} candidates evaluated by the search; {} random architectures; {} training seeds each.\n\n\
         | | test accuracy |\n|---|---|\n\
         | search pick (mean, 95% bootstrap CI) | {:.2}% [{:.2}, {:.2}] |\n\
         | random median | {:.2}% |\n| random best | {:.2}% |\n\
         | pick - random median (95% CI) | {:+.2} [{:+.2}, {:+.2}] points |\n\
         | pick's percentile among random | {:.0} |\n\n\
         | name | group | key | params | fitness | test accuracy per seed | mean |\n\
         |---|---|---|---|---|---|---|\n",
        r.fitness,
        r.dataset,
        r.candidates_evaluated,
        r.archs.iter().filter(|a| a.group == Group::Random).count(),
        r.options.seeds,
        100.0 * r.pick_mean,
        100.0 * r.pick_ci.0,
        100.0 * r.pick_ci.1,
        100.0 * r.random_median,
        100.0 * r.random_best,
        100.0 * r.diff_median,
        100.0 * r.diff_median_ci.0,
        100.0 * r.diff_median_ci.1,
        r.pick_percentile
    );
    for a in &r.archs {
        md.push_str(&format!(
            "| {} | {:?} | `{}` | {} | {} | {} | {:.2}% |\n",
            a.name,
            a.group,
            a.key,
            a.params,
            a.fitness.map_or("".into(), |f| format!("{f:.4}")),
            a.test_acc
                .iter()
                .map(|x| format!("{:.2}", 100.0 * x))
                .collect::<Vec<_>>()
                .join(", "),
            100.0 * a.mean_test_acc
        ));
    }
    crate::fsio::write_atomic(&out.join(REPORT_MD), md.as_bytes())?;
    // Every seed's accuracy against the architecture's index, search side first.
    let points = |g: Group| -> Vec<(f64, f64)> {
        r.archs
            .iter()
            .enumerate()
            .filter(|(_, a)| a.group == g)
            .flat_map(|(i, a)| a.test_acc.iter().map(move |&x| ((i + 1) as f64, 100.0 * x)))
            .collect()
    };
    let means: Vec<(f64, f64)> = r
        .archs
        .iter()
        .enumerate()
        .map(|(i, a)| ((i + 1) as f64, 100.0 * a.mean_test_acc))
        .collect();
    plot::scatter(
        &out.join(PLOT),
        &format!(
            "search ({}) vs random: test accuracy per seed; line: means",
            r.fitness
        ),
        "architecture (search pick and top first, then random draws)",
        "test accuracy (%)",
        &[
            Series::new("search", points(Group::Search)),
            Series::new("random", points(Group::Random)),
        ],
        Some(&Series::new("mean", means)),
    )
}

/// The default folder of a benchmark.
pub fn default_out(cfg: &Config) -> PathBuf {
    PathBuf::from(format!(
        "runs/versus-{}-{}-{}",
        cfg.search.fitness, cfg.data.dataset, cfg.seed
    ))
}
