//! `msenas train`: train a genome (or a search run's best genome) on a dataset with
//! backpropagation through time, on the CPU reference or a GPU (`--device`).

use crate::config::TrainConfig;
use crate::data::{self, DataOptions};
use crate::genome::{Genome, SearchSpace};
use crate::train::{self, checkpoint::Checkpoint, Network};
use crate::Error;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A genome JSON file, or a search run folder (its best.json). Not needed with --resume.
    pub genome: Option<PathBuf>,
    /// Dataset name (digits, digits_dvs, mnist, fashion_mnist, cifar10, cifar100,
    /// dvs128_gesture, cifar10_dvs).
    #[arg(long, default_value = "digits")]
    pub dataset: String,
    /// Folder holding the dataset's files (not needed for the bundled sets).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Resize inputs to SIZE x SIZE (default: the dataset's own default).
    #[arg(long)]
    pub size: Option<usize>,
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Time steps T (default 4).
    #[arg(long)]
    pub timesteps: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Base learning rate (the rate used is LR * batch / 1024).
    #[arg(long)]
    pub lr: Option<f32>,
    /// Base width C (default 8).
    #[arg(long)]
    pub width: Option<usize>,
    /// Seed of the weights, the shuffling and the augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Surrogate gradient: triangle, sigmoid or atan (optionally NAME:ALPHA).
    #[arg(long)]
    pub surrogate: Option<String>,
    /// Loss: ce (cross-entropy with label smoothing) or mse (on time-averaged outputs).
    #[arg(long)]
    pub loss: Option<String>,
    /// Run folder (default: train-DATASET-sSEED).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder from its last checkpoint, with its own settings.
    #[arg(long, conflicts_with = "out")]
    pub resume: Option<PathBuf>,
    /// Where to train: cpu (the reference), gpu (a hardware GPU), auto (a hardware GPU when
    /// there is one, else cpu) or part of an adapter name (`msenas devices` lists them).
    /// Checkpoints do not depend on it: a run may be resumed on another device.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Opens the training device.
fn options(a: &Args) -> anyhow::Result<train::RunOptions> {
    Ok(train::RunOptions {
        gpu: train::training_device(&a.device)?,
        ..Default::default()
    })
}

/// The device a run trains on, in words.
fn device_name(opts: &train::RunOptions) -> String {
    match &opts.gpu {
        Some(ctx) => format!("{} ({:?})", ctx.info.name, ctx.info.backend),
        None => format!(
            "the CPU reference ({} threads)",
            rayon::current_num_threads()
        ),
    }
}

/// The resolved config of a search run folder, if `p` is one.
fn run_config(p: &Path) -> crate::Result<Option<crate::config::Config>> {
    let path = p.join("config.json");
    if !p.is_dir() || !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::input(format!("{}: {e}", path.display())))
}

/// A genome file, or a run folder's best genome.
pub fn genome_path(p: &Path) -> PathBuf {
    if p.is_dir() {
        p.join("best.json")
    } else {
        p.to_path_buf()
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let opts = options(&a)?;
    if let Some(dir) = a.resume.clone() {
        return resume(a, &dir, &opts);
    }
    let Some(gpath) = a.genome.as_deref() else {
        return Err(
            Error::input("give a genome file or run folder to train, or --resume DIR").into(),
        );
    };
    let genome = super::read_genome(&genome_path(gpath))?;
    // A search run folder brings its width, T, reduce kernel and training settings; flags
    // override them. A plain genome file uses the defaults.
    let (space, mut cfg) = match run_config(gpath)? {
        Some(c) => (c.space, c.train),
        None => (SearchSpace::default(), TrainConfig::default()),
    };
    if let Some(v) = a.epochs {
        cfg.epochs = v;
    }
    if let Some(v) = a.batch_size {
        cfg.batch_size = v;
    }
    if let Some(v) = a.lr {
        cfg.lr = v;
    }
    if let Some(v) = &a.surrogate {
        cfg.surrogate = v.clone();
    }
    if let Some(v) = &a.loss {
        cfg.loss = v.clone();
    }
    let timesteps = a.timesteps.unwrap_or(space.timesteps);
    let width = a.width.unwrap_or(space.width);
    let ds = data::load(
        &a.dataset,
        &DataOptions {
            data_dir: a.data_dir.clone(),
            timesteps,
            size: a.size,
            seed: a.seed,
            ..Default::default()
        },
    )?;
    let mut spec = ds.spec;
    spec.timesteps = timesteps;
    let net = Network::from_genome(genome, &spec, width, space.reduce_kernel)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("train-{}-s{}", a.dataset, a.seed)));
    if out.join("state.ckpt").exists() {
        return Err(Error::input(format!(
            "{}: already holds a training run (continue it with --resume {0}, or choose another --out)",
            out.display()
        ))
        .into());
    }
    finish(
        train::train_with(&net, &ds, &cfg, a.seed, &out, false, !a.quiet, &opts)?,
        &opts,
    )
}

fn resume(a: Args, dir: &Path, opts: &train::RunOptions) -> anyhow::Result<()> {
    let given = [
        ("a genome", a.genome.is_some()),
        ("--epochs", a.epochs.is_some()),
        ("--timesteps", a.timesteps.is_some()),
        ("--batch-size", a.batch_size.is_some()),
        ("--lr", a.lr.is_some()),
        ("--width", a.width.is_some()),
        ("--surrogate", a.surrogate.is_some()),
        ("--loss", a.loss.is_some()),
        ("--size", a.size.is_some()),
    ];
    if let Some((name, _)) = given.iter().find(|(_, g)| *g) {
        return Err(Error::input(format!(
            "--resume continues with the settings stored in {}; {name} cannot be given with it",
            dir.display()
        ))
        .into());
    }
    let path = dir.join("state.ckpt");
    let ck = Checkpoint::read(&path)?;
    let m = ck.meta;
    let genome = match &m.genome {
        Some(v) => Some(
            Genome::from_json(&v.to_string())
                .map_err(|e| Error::input(format!("{}: genome: {e}", path.display())))?,
        ),
        None => None,
    };
    let ds = data::load(
        &m.dataset,
        &DataOptions {
            data_dir: a.data_dir.clone(),
            timesteps: m.plan.spec.timesteps,
            size: Some(m.plan.spec.height),
            seed: m.seed,
            ..Default::default()
        },
    )?;
    let net = Network {
        genome,
        plan: m.plan,
    };
    finish(
        train::train_with(&net, &ds, &m.config, m.seed, dir, true, !a.quiet, opts)?,
        opts,
    )
}

fn finish(r: train::TrainResult, opts: &train::RunOptions) -> anyhow::Result<()> {
    println!(
        "test accuracy {:.2}% (best epoch {} of {}, validation {:.2}%), {} parameters, {:.1} s on {}; run folder {}",
        100.0 * r.test_acc,
        r.best_epoch,
        r.epochs,
        100.0 * r.best_val_acc,
        r.params,
        r.wall_s,
        device_name(opts),
        r.out_dir.display()
    );
    Ok(())
}
