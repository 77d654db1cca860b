//! `msenas forward`: one CPU reference forward pass of a genome on test images; firing rate of
//! every LIF population and the time taken; `--dump DIR` writes everything an independent
//! implementation needs to check the pass (see [`crate::dump`]).

use crate::config::Config;
use crate::cpu::{forward, init_params, ForwardOptions};
use crate::data::{self, DataOptions};
use crate::dump::{self, DumpInfo};
use crate::Error;
use rand::SeedableRng;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The genome file (JSON, as written by `msenas sample`).
    pub genome: PathBuf,
    /// Dataset (default: the config's data.dataset).
    #[arg(long)]
    pub dataset: Option<String>,
    /// The dataset's folder (not needed for the bundled digits).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Batch size B: the first B test images (or a stratified sample with --stratified).
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Draw a class-stratified batch (with --seed) instead of the first B test images.
    #[arg(long)]
    pub stratified: bool,
    /// Weight seed (default: the config's seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Time steps T (default: the config's space.timesteps).
    #[arg(long)]
    pub timesteps: Option<usize>,
    /// Base width C (default: the config's space.width).
    #[arg(long)]
    pub width: Option<usize>,
    /// Write the plan, weights, input, logits and spikes of every population to this folder.
    #[arg(long, value_name = "DIR")]
    pub dump: Option<PathBuf>,
    /// A JSON config file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override one config value, e.g. `--set space.width=16` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let cfg = Config::load(None, a.config.as_deref(), &a.sets)?;
    let dataset = a.dataset.unwrap_or_else(|| cfg.data.dataset.clone());
    let t = a.timesteps.unwrap_or(cfg.space.timesteps);
    if t == 0 || t > 64 {
        return Err(Error::input(format!("--timesteps: {t} (allowed: 1..=64)")).into());
    }
    let width = a.width.unwrap_or(cfg.space.width);
    super::show::check_width(width)?;
    if a.batch == 0 {
        return Err(Error::input("--batch: 0 (allowed: >= 1)").into());
    }
    let seed = a.seed.unwrap_or(cfg.seed);
    let genome = super::read_genome(&a.genome)?;
    let opts = DataOptions {
        data_dir: a
            .data_dir
            .clone()
            .or_else(|| cfg.data.data_dir.as_ref().map(PathBuf::from)),
        timesteps: t,
        size: cfg.data.size,
        seed,
        ..DataOptions::default()
    };
    let ds = data::load(&dataset, &opts)?;
    let split = &ds.test;
    if a.batch > split.len() {
        return Err(Error::input(format!(
            "--batch: {} exceeds the {} test samples of {dataset} (allowed: 1..={})",
            a.batch,
            split.len(),
            split.len()
        ))
        .into());
    }
    let mut spec = ds.spec;
    spec.timesteps = t;
    let plan = super::show::compile(&a.genome, &genome, &spec, width, cfg.space.reduce_kernel)?;
    let idx: Vec<usize> = if a.stratified {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        split.stratified(a.batch, &mut rng)
    } else {
        (0..a.batch).collect()
    };
    let labels = split.labels_of(&idx);
    let input = split.batch(&idx, t);
    let params = init_params(&plan, seed);
    let mut fo = ForwardOptions::new(t, a.batch);
    fo.record_spikes = a.dump.is_some();
    let start = Instant::now();
    let out = forward(&plan, &params, &input, &fo);
    let secs = start.elapsed().as_secs_f64();

    println!(
        "{}: {dataset} test, {} {} images, T = {t}, C = {width}, seed {seed}; {} params",
        a.genome.display(),
        if a.stratified { "stratified" } else { "first" },
        a.batch,
        plan.num_params
    );
    let name_w = plan
        .populations
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(4)
        .max(10);
    println!(
        "{:>3}  {:<name_w$}  {:>8}  {:>8}",
        "#", "population", "neurons", "rate"
    );
    for (i, p) in plan.populations.iter().enumerate() {
        let tag = if i == plan.head_population {
            "  (head)"
        } else {
            ""
        };
        println!(
            "{i:>3}  {:<name_w$}  {:>8}  {:>8.4}{tag}",
            p.name, p.neurons, out.firing_rates[i]
        );
    }
    let total: u64 = out.spike_counts.iter().sum();
    let slots: usize = plan.populations.iter().map(|p| p.neurons).sum::<usize>() * t * a.batch;
    println!(
        "mean rate {:.4} over {} populations; silent populations: {}",
        total as f64 / slots.max(1) as f64,
        plan.populations.len(),
        out.spike_counts.iter().filter(|&&c| c == 0).count()
    );
    println!(
        "forward: {:.3} s on the CPU ({} threads), {:.2} ms per image",
        secs,
        rayon::current_num_threads(),
        secs * 1e3 / a.batch as f64
    );
    if let Some(dir) = &a.dump {
        let info = DumpInfo {
            dataset: &dataset,
            seed,
            indices: &idx,
            labels: &labels,
            forward_seconds: secs,
        };
        dump::write(dir, &plan, &params, &input, &fo, &out, &info)?;
        println!("dump: {}", dir.display());
    }
    Ok(())
}
