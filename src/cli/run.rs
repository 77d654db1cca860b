//! `msenas run`: the whole job in one command — search, train the best genome, evaluate it
//! (accuracy, firing rates, synaptic operations, energy, noise robustness) and write
//! `report.md` with the plots into the run folder. Every stage resumes from its own folder, so
//! running the same command again continues where a stopped run left off.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::progress::TrainBar;
use crate::engine::{Device, Model};
use crate::evolve::config::Config;
use crate::evolve::run_dir;
use crate::train::{self, eval::Noise, Network, TrainJob};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Starting point: cpu (default), paper, tiny.
    #[arg(long)]
    pub preset: Option<String>,
    /// A JSON config file (keys as in a run's config.json).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override one config value, e.g. `--set train.epochs=3` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Dataset (digits, digits_dvs, mnist, fashion_mnist, cifar10, cifar100, dvs128_gesture,
    /// cifar10_dvs).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Folder holding the dataset's files (not needed for the bundled sets).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// auto, cpu, gpu or part of an adapter name: the search's scoring device and the training
    /// device (auto trains on a hardware GPU when there is one, else on the CPU engine).
    #[arg(long)]
    pub device: Option<String>,
    /// The run's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Noise settings for the robustness evaluation.
    #[arg(long, default_value = "gaussian:0.1,gaussian:0.2,saltpepper:0.05")]
    pub noise: String,
    /// Run folder (default runs/run-DATASET-SEED); an existing one is continued.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let noises = Noise::parse_list(&a.noise)?;
    // Resolve the settings once, before anything is written, so bad input creates nothing.
    let search_args = super::search::Args {
        config: a.config.clone(),
        sets: a.sets.clone(),
        preset: a.preset.clone(),
        dataset: a.dataset.clone(),
        data_dir: a.data_dir.clone(),
        fitness: None,
        objectives: None,
        population: None,
        generations: None,
        seed: a.seed,
        device: a.device.clone(),
        out: None,
        resume: None,
        quiet: a.quiet,
    };
    let resolved = super::search::resolve_config(&search_args)?;
    let out = a.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "runs/run-{}-{}",
            resolved.data.dataset, resolved.seed
        ))
    });
    let search_dir = out.join("search");

    // 1. Search (or continue it, with the same settings).
    let search_args = if search_dir.join(run_dir::CONFIG).exists() {
        let held = run_dir::settings_value(&run_dir::read_settings(&search_dir)?.0);
        let mut want = run_dir::settings_value(&resolved);
        // The device may change between invocations; more generations continue the search.
        want["search"]["device"] = held["search"]["device"].clone();
        let generations = (want["search"]["generations"] != held["search"]["generations"])
            .then_some(resolved.search.generations);
        want["search"]["generations"] = held["search"]["generations"].clone();
        let mut diff = Vec::new();
        run_dir::differences(&held, &want, "", &mut diff);
        if !diff.is_empty() {
            return Err(crate::Error::input(format!(
                "{}: holds a run with other settings: {} (run it with the flags it was started \
                 with: only search.generations may grow and --device change; or choose another \
                 --out)",
                out.display(),
                diff.join(", ")
            ))
            .into());
        }
        eprintln!(
            "msenas run: continuing the search in {}",
            search_dir.display()
        );
        super::search::Args {
            generations,
            config: None,
            sets: Vec::new(),
            preset: None,
            dataset: None,
            data_dir: None,
            seed: None,
            device: a.device.clone(),
            resume: Some(search_dir.clone()),
            ..search_args
        }
    } else {
        super::search::Args {
            out: Some(search_dir.clone()),
            ..search_args
        }
    };
    let t_search = Instant::now();
    super::search::run(search_args)?;
    let search_s = t_search.elapsed().as_secs_f64();
    let (cfg, _) = run_dir::read_settings(&search_dir)?;
    let genome = super::read_genome(&search_dir.join(run_dir::BEST))?;

    // 2. Train the best genome with the run's width, T and training settings.
    let ds = crate::evolve::search::load_data(&cfg)?;
    let mut spec = ds.spec;
    spec.timesteps = cfg.space.timesteps;
    let net = Network::from_genome(
        genome.clone(),
        &spec,
        cfg.space.width,
        cfg.space.reduce_kernel,
    )?;
    let train_dir = out.join("train");
    let resume = train_dir.join("state.ckpt").exists();
    let device = Device::resolve(&cfg.search.device)?;
    let t_train = Instant::now();
    // A finished training folder resumes to its end at once (only the test split is evaluated
    // again), so no result file is trusted without its checkpoint.
    let result = TrainJob::new(&net, &ds, &cfg.train, cfg.seed, &train_dir)
        .resuming(resume)
        .run(&device, &mut TrainBar::new(!a.quiet))?;
    let train_s = t_train.elapsed().as_secs_f64();

    // 3. Evaluate the best weights on the test split, clean and under noise.
    let (_ck, params, bn) = train::load_model(&train_dir.join("model.ckpt"))?;
    let mut model = Model::new(&device, &net.plan, params, bn)?;
    let eval = train::eval::evaluate(&mut model, &ds.test, &noises, cfg.seed, 256)?;
    super::write_atomic(
        &out.join("evaluation.json"),
        (serde_json::to_string_pretty(&eval).expect("report serialises") + "\n").as_bytes(),
    )?;
    crate::plan::describe::draw(&out.join("architecture.png"), &genome, &net.plan, &ds.name)?;

    // 4. The report.
    let report = render_report(
        &out,
        &cfg,
        &ds.name,
        &genome,
        &net,
        &result,
        &eval,
        search_s,
        train_s,
        &device.describe(),
        started.elapsed().as_secs_f64(),
    )?;
    super::write_atomic(&out.join("report.md"), report.as_bytes())?;
    println!(
        "\nmsenas run: {} test accuracy {:.2}% ({} parameters) in {:.0} s; report: {}",
        ds.name,
        100.0 * result.test_acc,
        net.plan.num_params,
        started.elapsed().as_secs_f64(),
        out.join("report.md").display()
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn render_report(
    out: &Path,
    cfg: &Config,
    dataset: &str,
    genome: &crate::genome::Genome,
    net: &Network,
    r: &train::TrainResult,
    e: &train::eval::EvalReport,
    search_s: f64,
    train_s: f64,
    train_device: &str,
    total_s: f64,
) -> crate::Result<String> {
    let evals = std::fs::read_to_string(out.join("search").join(run_dir::EVALUATIONS))
        .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count())
        .unwrap_or(0);
    let mut s = String::new();
    let _ = writeln!(s, "# msenas run: {dataset}\n");
    let _ = writeln!(
        s,
        "Seed {}, layout `{}`, width C = {}, T = {}; search: population {}, {} offspring, {} generations, fitness `{}`, objectives {}, probe {} x {}; {} evaluations logged.\n",
        cfg.seed,
        cfg.space.layout,
        cfg.space.width,
        cfg.space.timesteps,
        cfg.search.population,
        cfg.search.offspring,
        cfg.search.generations,
        cfg.search.fitness,
        cfg.search.objectives.join(", "),
        cfg.search.probe_batches,
        cfg.search.probe_size,
        evals
    );
    let _ = writeln!(s, "| stage | wall time (this invocation) |\n|---|---|");
    let _ = writeln!(
        s,
        "| search | {search_s:.1} s |\n| training | {train_s:.1} s on {train_device} |\n| total | {total_s:.1} s |\n"
    );
    let _ = writeln!(
        s,
        "## Best genome\n\nKey `{}`, {} parameters, {} LIF populations.\n",
        genome.canonical_key(),
        net.plan.num_params,
        net.plan.populations.len()
    );
    let _ = writeln!(s, "{}\n", active_cells_line(genome));
    let _ = writeln!(s, "![architecture](architecture.png)\n");
    let _ = writeln!(
        s,
        "```\n{}```\n",
        crate::plan::describe::describe(genome, &net.plan, dataset)
    );
    let _ = writeln!(s, "## Search\n\n![fitness](search/fitness.png)\n![pareto](search/pareto.png)\n![motifs](search/motifs.png)\n");
    let _ = writeln!(
        s,
        "## Training\n\n{} epochs (lr {}, batch {}, surrogate {}, loss {}); best validation accuracy {:.2}% at epoch {}; **test accuracy {:.2}%** (measured once, with the best epoch's weights).\n",
        r.epochs,
        cfg.train.lr,
        cfg.train.batch_size,
        cfg.train.surrogate,
        cfg.train.loss,
        100.0 * r.best_val_acc,
        r.best_epoch,
        100.0 * r.test_acc
    );
    let _ = writeln!(s, "![curves](train/curves.png)\n");
    let _ = writeln!(s, "## Evaluation (test split, {} samples)\n", e.samples);
    let _ = writeln!(s, "| measure | value |\n|---|---|");
    let _ = writeln!(s, "| top-1 accuracy | {:.2}% |", 100.0 * e.accuracy);
    let _ = writeln!(s, "| parameters | {} |", e.params);
    let _ = writeln!(s, "| time steps | {} |", e.timesteps);
    let _ = writeln!(s, "| mean firing rate | {:.4} |", e.mean_firing_rate);
    let _ = writeln!(
        s,
        "| synaptic operations per sample | {:.4e} |",
        e.sops_per_sample
    );
    let _ = writeln!(
        s,
        "| MACs per sample (analog inputs) | {:.4e} (dense equivalent {:.4e}) |",
        e.macs_per_sample, e.dense_macs_per_sample
    );
    let _ = writeln!(
        s,
        "| energy per sample (0.9 pJ/AC, 4.6 pJ/MAC, 45 nm) | {:.4} µJ |",
        e.energy_uj_per_sample
    );
    for n in &e.noise {
        let _ = writeln!(
            s,
            "| accuracy under {} | {:.2}% |",
            n.noise,
            100.0 * n.accuracy
        );
    }
    let _ = writeln!(
        s,
        "\n### Firing rate per population\n\n| population | neurons | rate |\n|---|---|---|"
    );
    for p in &e.populations {
        let _ = writeln!(s, "| {} | {} | {:.4} |", p.name, p.neurons, p.rate);
    }
    let _ = writeln!(s, "\nFiles: `search/` (config.json, evaluations.jsonl, pareto.json, best.json), `train/` (model.ckpt, state.ckpt, log.csv, result.json), `evaluation.json`.");
    Ok(s)
}

/// How many normal cells compute on the head's path, and what a silent cell means.
fn active_cells_line(genome: &crate::genome::Genome) -> String {
    use crate::genome::motifs;
    let normal = genome.cells.len();
    let active = genome.active_motifs();
    let names: Vec<&str> = active
        .iter()
        .filter_map(|&m| motifs::by_id(m).map(|d| d.name))
        .collect();
    let mut line = format!(
        "Active cells: {} of {normal} normal cells compute on the head's path{}.",
        active.len(),
        if names.is_empty() {
            String::new()
        } else {
            format!(" ({})", names.join(", "))
        }
    );
    if active.len() < normal {
        line.push_str(&format!(
            " The other {} are silent (they pass their input through) or not read. That is the \
             search's choice, not a fault: on Fashion-MNIST at 16x16 and 28x28 \
             (docs/search-quality.md) the `grad_rms` search picks networks with one late \
             lateral-inhibition cell and silent cells before it, they beat every random draw \
             there, and the number of active cells does not predict trained accuracy. To \
             search only networks whose cells all hold a motif, leave `silent` out of \
             `space.motifs`.",
            normal - active.len()
        ));
    }
    line
}
