//! `msenas proxy-bench`: how well each training-free score ranks architectures by trained
//! accuracy (SPEC §5). Writes `proxy.csv` (one row per architecture, resumable),
//! `summary.json`, `summary.md` and `scatter.png` into `--out`.

use std::path::PathBuf;

use crate::benchmarks::proxy::{self, BenchOptions};
use crate::evolve::config::Config;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Architectures sampled (distinct canonical keys) from the configured search space.
    #[arg(long, default_value_t = 40)]
    pub archs: usize,
    /// Training epochs of the budget (default: the config's train.epochs).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Training runs per architecture (different weights and data order); accuracy = the mean.
    #[arg(long, default_value_t = 2)]
    pub train_seeds: usize,
    /// Train on a stratified subset of this many training samples (default: the whole split).
    #[arg(long)]
    pub train_subset: Option<usize>,
    /// Measure validation and test accuracy on stratified subsets of this many samples each
    /// (default: the whole splits).
    #[arg(long)]
    pub eval_subset: Option<usize>,
    /// short_train: training samples seen once (stratified subset) ...
    #[arg(long, default_value_t = 384)]
    pub short_samples: usize,
    /// ... in batches of this size.
    #[arg(long, default_value_t = 8)]
    pub short_batch: usize,
    /// zico / grad_norm: mini-batches the probe batch is cut into.
    #[arg(long, default_value_t = 4)]
    pub zico_batches: usize,
    /// Bootstrap resamples of every interval.
    #[arg(long, default_value_t = 1000)]
    pub boot: usize,
    /// Dataset (digits, fashion_mnist, ...).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Folder holding the dataset's files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The run's seed (architectures, probe, weights).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Starting point: cpu (default), paper, tiny.
    #[arg(long)]
    pub preset: Option<String>,
    /// Override one config value, e.g. `--set space.micro=full` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Keep every training run folder under OUT/runs.
    #[arg(long)]
    pub keep_runs: bool,
    /// Output folder; rows already in OUT/proxy.csv are skipped.
    #[arg(long)]
    pub out: PathBuf,
    /// Only summarise the rows already in OUT/proxy.csv (computes nothing new).
    #[arg(long)]
    pub report_only: bool,
    /// Compute the extra scores (membrane RDM, RSA against a trained reference network) of
    /// the rows already in OUT/proxy.csv into OUT/extra_scores.csv (trains only the reference;
    /// give the settings of the run that wrote the rows), then summarise
    #[arg(long)]
    pub rescore: bool,
    /// Title of the summary (default: the dataset name and the sample size).
    #[arg(long)]
    pub title: Option<String>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let mut cfg = Config::load(a.preset.as_deref(), None, &a.sets)?;
    if let Some(d) = &a.dataset {
        cfg.data.dataset = d.clone();
    }
    if let Some(d) = &a.data_dir {
        cfg.data.data_dir = Some(d.display().to_string());
    }
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    if let Some(e) = a.epochs {
        cfg.train.epochs = e;
    }
    cfg.validate()?;
    let opts = BenchOptions {
        archs: a.archs,
        train_seeds: a.train_seeds,
        train_subset: a.train_subset,
        eval_subset: a.eval_subset,
        short_samples: a.short_samples,
        short_batch: a.short_batch,
        zico_batches: a.zico_batches,
        boot_reps: a.boot,
        out: a.out.clone(),
        keep_runs: a.keep_runs,
    };
    if !(a.report_only || a.rescore) && (opts.archs < 2 || opts.train_seeds == 0) {
        // Refused before the output folder is created.
        return Err(
            crate::Error::input("proxy-bench: needs --archs >= 2 and --train-seeds >= 1").into(),
        );
    }
    let mut rows = if a.report_only || a.rescore {
        proxy::read_csv(&a.out.join(proxy::CSV), opts.train_seeds)?
    } else {
        crate::fsio::write_atomic(&a.out.join("config.json"), cfg.to_json().as_bytes())?;
        proxy::run(&cfg, &opts, &mut |line| eprintln!("{line}"))?
    };
    if rows.len() < 2 {
        return Err(crate::Error::input(format!(
            "{}: {} row(s); a summary needs at least 2",
            a.out.join(proxy::CSV).display(),
            rows.len()
        ))
        .into());
    }
    if a.rescore {
        proxy::rescore(&cfg, &opts, &rows, &mut |line| eprintln!("{line}"))?;
    }
    crate::benchmarks::proxy_extra::merge(
        &a.out.join(crate::benchmarks::proxy_extra::EXTRA_CSV),
        &mut rows,
    )?;
    let genomes = proxy::genomes_of(&cfg, &rows)?;
    if genomes.is_none() {
        eprintln!(
            "proxy-bench: the rows are not the sample of these settings (seed, space); the \
             statistics by active cells and motif family are left out"
        );
    }
    let summary = proxy::summarise(&rows, genomes.as_deref(), opts.boot_reps, cfg.seed);
    let title = a
        .title
        .clone()
        .unwrap_or_else(|| format!("{}, {} architectures", cfg.data.dataset, rows.len()));
    proxy::write_report(&rows, &summary, &a.out, &title)?;
    print!("{}", proxy::markdown(&summary, &title));
    Ok(())
}
