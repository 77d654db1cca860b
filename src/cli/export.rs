//! `msenas export`: a trained network (or a genome at its initial weights) as a folder PyTorch
//! loads with `msenas.torch.load(DIR)`.

use std::path::{Path, PathBuf};

use crate::data::spec_by_name;
use crate::evolve::config::Config;
use crate::export::Exported;
use crate::Error;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A training folder or checkpoint (trained weights); a `msenas run` folder (its train/);
    /// or a genome file (initial weights of --seed, for --dataset at the config's width).
    pub source: PathBuf,
    /// The target framework: torch (`nir` is refused: see [`NIR_REFUSAL`]).
    #[arg(long, value_parser = ["torch", "nir"])]
    pub to: String,
    /// The folder to write (default SOURCE-torch beside a folder, or FILE-torch).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// For a genome file: the dataset whose input shape and classes the network takes.
    #[arg(long, default_value = "digits")]
    pub dataset: String,
    /// For a genome file: the weight seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// For a genome file: a JSON config (width, T, reduce kernel).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// For a genome file: override one config value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

fn checkpoint_of(p: &Path) -> Option<PathBuf> {
    if p.is_file() && p.extension().is_some_and(|e| e == "ckpt") {
        return Some(p.to_path_buf());
    }
    [p.join("model.ckpt"), p.join("train").join("model.ckpt")]
        .into_iter()
        .find(|c| c.is_file())
}

/// Why `--to nir` is refused. NIR's node set (Affine, Linear, Conv1d/2d, pools, Scale,
/// Flatten, Delay, I/LI/CubaLI integrators, IF/LIF/CubaLIF neurons, Threshold) has no analog
/// rectifier, and every msenas network has motif edges whose current passes a sign gate.
pub const NIR_REFUSAL: &str = "--to nir: not possible: every msenas network has motif edges \
     whose current passes a sign gate (max(z, 0) excitatory, min(z, 0) inhibitory) and NIR has \
     no rectifier node, so no msenas network can be written as NIR without changing what it \
     computes (allowed: torch)";

pub fn run(a: Args) -> anyhow::Result<()> {
    if a.to == "nir" {
        return Err(Error::input(NIR_REFUSAL).into());
    }
    let genome_only = a.config.is_some() || !a.sets.is_empty();
    let ex = match checkpoint_of(&a.source) {
        Some(ck) => {
            if genome_only {
                return Err(Error::input(format!(
                    "--config/--set: {} holds trained weights with their own settings",
                    a.source.display()
                ))
                .into());
            }
            Exported::from_checkpoint(&ck)?
        }
        None if a.source.is_file() => {
            let cfg = Config::load(None, a.config.as_deref(), &a.sets)?;
            let genome = super::read_genome(&a.source)?;
            let spec = spec_by_name(&a.dataset, cfg.space.timesteps)?;
            Exported::from_genome(
                &genome,
                &spec,
                cfg.space.width,
                cfg.space.reduce_kernel,
                a.seed,
            )
            .map_err(|e| Error::input(format!("{}: {e}", a.source.display())))?
        }
        None => {
            return Err(Error::input(format!(
                "{}: no model.ckpt or train/model.ckpt here (allowed: a training folder, a \
                 checkpoint, a `msenas run` folder or a genome file)",
                a.source.display()
            ))
            .into())
        }
    };
    let out = a.out.clone().unwrap_or_else(|| {
        let mut s = a.source.clone().into_os_string();
        s.push(format!("-{}", a.to));
        PathBuf::from(s)
    });
    ex.write(&out)?;
    println!(
        "{}: {} parameters, {} ({}); load with msenas.torch.load({:?})",
        out.display(),
        ex.plan.num_params,
        ex.weights,
        ex.plan.key,
        out.display().to_string()
    );
    Ok(())
}
