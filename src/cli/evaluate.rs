//! `msenas evaluate`: accuracy, firing rates, synaptic operations, energy and accuracy under
//! input noise of a trained network.

use crate::data::{self, DataOptions};
use crate::train::eval::{evaluate, Noise};
use crate::Error;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A checkpoint file, or a training run folder (its model.ckpt).
    pub checkpoint: PathBuf,
    /// Dataset (default: the one the network was trained on). Its shape must match the network.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Folder holding the dataset's files (not needed for the bundled sets).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Which split: test or val.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Input noise settings, comma-separated: gaussian:SIGMA, saltpepper:P.
    #[arg(long)]
    pub noise: Option<String>,
    /// Seed of the noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let path = if a.checkpoint.is_dir() {
        a.checkpoint.join("model.ckpt")
    } else {
        a.checkpoint.clone()
    };
    let noises = match &a.noise {
        Some(s) => Noise::parse_list(s)?,
        None => Vec::new(),
    };
    let (ck, params, bn) = crate::train::load_model(&path)?;
    let plan = &ck.meta.plan;
    let name = a.dataset.clone().unwrap_or(ck.meta.dataset.clone());
    let ds = data::load(
        &name,
        &DataOptions {
            data_dir: a.data_dir.clone(),
            timesteps: plan.spec.timesteps,
            size: Some(plan.spec.height),
            seed: a.seed,
            ..Default::default()
        },
    )?;
    crate::train::check_spec(plan, &ds)?;
    let split = match a.split.as_str() {
        "test" => &ds.test,
        "val" => &ds.val,
        other => {
            return Err(Error::input(format!("--split {other} (allowed: test, val)")).into());
        }
    };
    if split.is_empty() {
        return Err(Error::input(format!("dataset '{name}' has no {} samples", a.split)).into());
    }
    if a.batch_size == 0 || a.batch_size > crate::config::MAX_BATCH {
        return Err(Error::input(format!(
            "--batch-size: {} (allowed: 1..={})",
            a.batch_size,
            crate::config::MAX_BATCH
        ))
        .into());
    }
    plan.check_workload(a.batch_size.min(split.len()), plan.spec.timesteps)
        .map_err(|e| Error::input(format!("--batch-size: {e}")))?;
    let r = evaluate(plan, &params, &bn, split, &noises, a.seed, a.batch_size);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&r).expect("report serialises")
        );
        return Ok(());
    }
    println!(
        "{}: weights of epoch {}, {} split of {} ({} samples)",
        path.display(),
        ck.meta.epoch,
        a.split,
        name,
        r.samples
    );
    println!("top-1 accuracy      {:.2}%", 100.0 * r.accuracy);
    println!("parameters          {}", r.params);
    println!("time steps          {}", r.timesteps);
    println!("mean firing rate    {:.4}", r.mean_firing_rate);
    println!("SOPs per sample     {:.4e}", r.sops_per_sample);
    println!(
        "MACs per sample     {:.4e} (dense equivalent {:.4e})",
        r.macs_per_sample, r.dense_macs_per_sample
    );
    println!(
        "energy per sample   {:.4} uJ (0.9 pJ/AC, 4.6 pJ/MAC)",
        r.energy_uj_per_sample
    );
    for nz in &r.noise {
        println!("accuracy {:<18} {:.2}%", nz.noise, 100.0 * nz.accuracy);
    }
    println!("firing rate per population:");
    for p in &r.populations {
        println!("  {:<32} {:>8} neurons  {:.4}", p.name, p.neurons, p.rate);
    }
    Ok(())
}
