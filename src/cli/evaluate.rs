//! `msenas evaluate`: accuracy, firing rates, synaptic operations, energy and accuracy under
//! input noise of a trained network.

use crate::train::eval::EvalRequest;
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
    /// Where to run it: cpu (the CPU engine), gpu (a hardware GPU), auto (a hardware GPU when
    /// there is one, else cpu) or part of an adapter name (`msenas devices` lists them).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let req = EvalRequest {
        checkpoint: a.checkpoint.clone(),
        dataset: a.dataset.clone(),
        data_dir: a.data_dir.clone(),
        split: a.split.clone(),
        noise: a.noise.clone(),
        seed: a.seed,
        batch_size: a.batch_size,
        device: a.device.clone(),
    };
    let (r, source) = req.run()?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&r).expect("report serialises")
        );
        return Ok(());
    }
    println!(
        "{}: weights of epoch {}, {} split of {} ({} samples)",
        source.path.display(),
        source.epoch,
        a.split,
        source.dataset,
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
