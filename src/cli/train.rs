//! `msenas train`: train a genome (or a search run's best genome) on a dataset with
//! backpropagation through time, on the CPU engine or a GPU (`--device`).

use super::progress::TrainBar;
use crate::engine::Device;
use crate::evolve::config::{self, Config};
use crate::train::{self, NewRun, TrainJob};
use crate::Error;
use std::path::{Path, PathBuf};

// Settings come, lowest precedence first, from the preset (or the defaults), a search run
// folder's config.json (when training a run folder), --config, each --set, then the flags.
// Training reads the `train` section and `space.width`, `space.timesteps` and
// `space.reduce_kernel`; the dataset, its folder, the input size and the seed are flags.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Precedence, lowest first: --preset (or the defaults) < a search run folder's \
                  config.json < --config < --set < flags (--epochs, --batch-size, --lr, \
                  --surrogate, --loss, --timesteps, --width). The resolved training config is \
                  stored in the run folder's checkpoints; --resume continues with it and takes \
                  no new settings."
)]
pub struct Args {
    /// A genome JSON file, or a search run folder (its best.json). Not needed with --resume.
    pub genome: Option<PathBuf>,
    /// Starting point: cpu, paper or tiny (default: the built-in defaults, as cpu). A run
    /// folder's config.json takes precedence over it.
    #[arg(long)]
    pub preset: Option<String>,
    /// A JSON config file in the format of a run's config.json (unknown keys are refused);
    /// its `train` section and `space.width`, `space.timesteps`, `space.reduce_kernel` are used.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override one training setting, e.g. `--set train.epochs=3` or
    /// `--set train.crop_pad=0` (repeatable; keys: train.*, space.width, space.timesteps,
    /// space.reduce_kernel).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Dataset name (digits, digits_dvs, mnist, fashion_mnist, cifar10, cifar100,
    /// dvs128_gesture, cifar10_dvs) [default: digits].
    #[arg(long)]
    pub dataset: Option<String>,
    /// Folder holding the dataset's files (not needed for the bundled sets).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Resize inputs to SIZE x SIZE (default: the dataset's own default).
    #[arg(long)]
    pub size: Option<usize>,
    /// Epochs (train.epochs).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Time steps T (space.timesteps, default 4).
    #[arg(long)]
    pub timesteps: Option<usize>,
    /// Batch size (train.batch_size).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Base learning rate (train.lr; the rate used is LR * batch / 1024).
    #[arg(long)]
    pub lr: Option<f32>,
    /// Base width C (space.width, default 8).
    #[arg(long)]
    pub width: Option<usize>,
    /// Seed of the weights, the shuffling and the augmentation [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Surrogate gradient (train.surrogate): triangle, sigmoid or atan (optionally NAME:ALPHA).
    #[arg(long)]
    pub surrogate: Option<String>,
    /// Loss (train.loss): ce (cross-entropy with label smoothing) or mse (on time-averaged
    /// outputs).
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

/// The `--set` keys `msenas train` reads (besides every `train.*` key).
const SPACE_KEYS: [&str; 3] = ["space.width", "space.timesteps", "space.reduce_kernel"];

/// Resolve the configuration of a new training run: the preset (or the defaults), the run
/// folder's config, `--config`, each `--set`, then the flags; validated as a whole.
pub fn resolve_config(a: &Args, run: Option<Config>) -> crate::Result<Config> {
    let mut cfg = match &a.preset {
        Some(p) => config::preset(p)?,
        None => Config::default(),
    };
    if let Some(c) = run {
        cfg = c;
    }
    if let Some(path) = &a.config {
        cfg = cfg.with_file(path)?;
    }
    for s in &a.sets {
        let key = s.split_once('=').map_or(s.as_str(), |(k, _)| k).trim();
        if !(key.starts_with("train.") || SPACE_KEYS.contains(&key)) {
            return Err(Error::input(format!(
                "--set {s}: '{key}' is not a training setting (allowed: train.*, {}; the \
                 dataset, data folder, size and seed are the flags --dataset, --data-dir, \
                 --size, --seed)",
                SPACE_KEYS.join(", ")
            )));
        }
        cfg = cfg.with_set(s)?;
    }
    let t = &mut cfg.train;
    if let Some(v) = a.epochs {
        t.epochs = v;
    }
    if let Some(v) = a.batch_size {
        t.batch_size = v;
    }
    if let Some(v) = a.lr {
        t.lr = v;
    }
    if let Some(v) = &a.surrogate {
        t.surrogate = v.clone();
    }
    if let Some(v) = &a.loss {
        t.loss = v.clone();
    }
    if let Some(v) = a.timesteps {
        cfg.space.timesteps = v;
    }
    if let Some(v) = a.width {
        cfg.space.width = v;
    }
    cfg.validate()?;
    Ok(cfg)
}

/// The resolved config of a search run folder, if `p` is one.
fn run_config(p: &Path) -> crate::Result<Option<crate::evolve::config::Config>> {
    let path = p.join("config.json");
    if !p.is_dir() || !path.exists() {
        return Ok(None);
    }
    crate::evolve::run_dir::read_settings(p).map(|(cfg, _)| Some(cfg))
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
    let device = Device::resolve(&a.device)?;
    if let Some(dir) = a.resume.clone() {
        return resume(a, &dir, &device);
    }
    let Some(gpath) = a.genome.as_deref() else {
        return Err(
            Error::input("give a genome file or run folder to train, or --resume DIR").into(),
        );
    };
    let genome = super::read_genome(&genome_path(gpath))?;
    // A search run folder brings its width, T, reduce kernel and training settings; --config,
    // --set and the flags override them. A plain genome file starts from the preset or the
    // defaults.
    let cfg = resolve_config(&a, run_config(gpath)?)?;
    let dataset = a.dataset.clone().unwrap_or_else(|| "digits".into());
    let seed = a.seed.unwrap_or(0);
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("train-{dataset}-s{seed}")));
    if out.join("state.ckpt").exists() {
        return Err(Error::input(format!(
            "{}: already holds a training run (continue it with --resume {0}, or choose another --out)",
            out.display()
        ))
        .into());
    }
    let r = NewRun::prepare(
        genome,
        &cfg.train,
        &cfg.space,
        &dataset,
        a.data_dir.clone(),
        a.size,
        seed,
        &out,
    )?;
    let job = TrainJob::new(&r.network, &r.dataset, &r.config, r.seed, &out);
    finish(job.run(&device, &mut TrainBar::new(!a.quiet))?, &device)
}

fn resume(a: Args, dir: &Path, device: &Device) -> anyhow::Result<()> {
    let given = [
        ("a genome", a.genome.is_some()),
        ("--preset", a.preset.is_some()),
        ("--config", a.config.is_some()),
        ("--set", !a.sets.is_empty()),
        ("--dataset", a.dataset.is_some()),
        ("--seed", a.seed.is_some()),
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
    let r = train::ResumedRun::read(dir, a.data_dir.clone())?;
    let job = TrainJob::new(&r.network, &r.dataset, &r.config, r.seed, dir).resuming(true);
    finish(job.run(device, &mut TrainBar::new(!a.quiet))?, device)
}

fn finish(r: train::TrainResult, device: &Device) -> anyhow::Result<()> {
    println!(
        "test accuracy {:.2}% (best epoch {} of {}, validation {:.2}%), {} parameters, {:.1} s on {}; run folder {}",
        100.0 * r.test_acc,
        r.best_epoch,
        r.epochs,
        100.0 * r.best_val_acc,
        r.params,
        r.wall_s,
        device.describe(),
        r.out_dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> Args {
        let argv = ["msenas", "train", "g.json"].iter().chain(extra);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Train(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn precedence_preset_run_file_set_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.json");
        std::fs::write(
            &file,
            r#"{"train": {"epochs": 7, "lr": 0.5, "flip": true}}"#,
        )
        .unwrap();
        let mut run = Config::default();
        run.train.epochs = 9;
        run.train.weight_decay = 0.5;
        run.space.width = 6;
        let f = file.to_str().unwrap();
        let c = resolve_config(
            &args(&[
                "--preset",
                "paper",
                "--config",
                f,
                "--set",
                "train.epochs=2",
                "--set",
                "train.lr=0.25",
                "--lr",
                "0.125",
                "--set",
                "space.width=12",
            ]),
            Some(run.clone()),
        )
        .unwrap();
        // The run folder replaces the preset, the file the run's values, --set the file's,
        // the flags --set's.
        assert_eq!(c.train.batch_size, run.train.batch_size);
        assert_eq!(c.train.weight_decay, 0.5);
        assert!(c.train.flip);
        assert_eq!(c.train.epochs, 2);
        assert_eq!(c.train.lr, 0.125);
        assert_eq!(c.space.width, 12);
        // A genome file starts from the preset.
        let c = resolve_config(&args(&["--preset", "paper"]), None).unwrap();
        assert_eq!(c.train, config::preset("paper").unwrap().train);
        let c = resolve_config(&args(&[]), None).unwrap();
        assert_eq!(c.train, crate::train::TrainConfig::default());
        let c = resolve_config(&args(&["--width", "4", "--timesteps", "2"]), None).unwrap();
        assert_eq!((c.space.width, c.space.timesteps), (4, 2));
    }

    #[test]
    fn set_refuses_keys_training_does_not_read() {
        for key in [
            "data.dataset=mnist",
            "seed=3",
            "search.population=4",
            "space.layout=N",
        ] {
            let e = resolve_config(&args(&["--set", key]), None)
                .unwrap_err()
                .to_string();
            let name = key.split('=').next().unwrap();
            assert!(e.contains(&format!("'{name}'")), "{e}");
        }
    }
}
