//! Export of a network for other frameworks: a folder that `msenas.torch.load(DIR)` (plain
//! PyTorch and numpy, no msenas needed) turns into a `torch.nn.Module` whose logits equal the
//! CPU engine's within float tolerance.
//!
//! | file | content |
//! |---|---|
//! | `manifest.json` | format, time steps, neuron and batch-norm constants, surrogate, genome, dataset, where the weights come from, every file's shape |
//! | `plan.json` | the [`Plan`]: ops, tensors, parameters, populations (as `msenas forward --dump` writes it) |
//! | `params.f32` | every parameter, little-endian f32, at the plan's offsets |
//! | `bn_mean.f32`, `bn_var.f32` | running statistics of every batch norm, plan order, concatenated |
//!
//! The folder is written next to its destination and renamed into place: it is complete or
//! absent.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::cpu::grad::Surrogate;
use crate::cpu::{init_params, BnRunning, LifParams, BN_EPS, BN_MOMENTUM};
use crate::genome::Genome;
use crate::plan::Plan;
use crate::train::TrainConfig;
use crate::{DataSpec, Error, Result};

/// The manifest's `format`.
pub const FORMAT: &str = "msenas-torch-1";

/// A network ready to leave msenas: its plan, weights and batch-norm statistics.
#[derive(Clone, Debug)]
pub struct Exported {
    pub plan: Plan,
    pub params: Vec<f32>,
    pub bn: BnRunning,
    pub genome: Option<Value>,
    pub dataset: Option<String>,
    pub surrogate: Surrogate,
    /// Where the weights come from, in words.
    pub weights: String,
    /// Trained weights (evaluate with running statistics) or initial ones (batch statistics).
    pub trained: bool,
}

impl Exported {
    /// A trained network: a checkpoint file, or a training folder (its `model.ckpt`).
    pub fn from_checkpoint(path: &Path) -> Result<Exported> {
        let file = crate::train::model_file(path);
        let (ck, params, bn) = crate::train::load_model(&file)?;
        let m = ck.meta;
        let surrogate = surrogate_of(&m.config, &file)?;
        Ok(Exported {
            weights: format!("trained: {} (epoch {})", file.display(), m.epoch),
            plan: m.plan,
            params,
            bn,
            genome: m.genome,
            dataset: Some(m.dataset),
            surrogate,
            trained: true,
        })
    }

    /// A genome at the counter-based initial weights of `weight_seed` (fresh running
    /// statistics: mean 0, variance 1).
    pub fn from_genome(
        genome: &Genome,
        spec: &DataSpec,
        width: usize,
        reduce_kernel: usize,
        weight_seed: u64,
    ) -> Result<Exported> {
        let plan = Plan::compile(genome, spec, width, reduce_kernel)?;
        let params = init_params(&plan, weight_seed);
        Ok(Exported {
            bn: BnRunning::new(&plan),
            params,
            plan,
            genome: serde_json::from_str(&genome.to_json()).ok(),
            dataset: None,
            surrogate: Surrogate::default(),
            weights: format!("initial: weight seed {weight_seed}"),
            trained: false,
        })
    }

    /// The manifest (without the file list's byte order note).
    pub fn manifest(&self) -> Value {
        let lif = LifParams::default();
        let nb: usize = self.plan.bn_channels.iter().sum();
        json!({
            "format": FORMAT,
            "key": self.plan.key,
            "genome": self.genome,
            "dataset": self.dataset,
            "weights": self.weights,
            "trained": self.trained,
            "timesteps": self.plan.spec.timesteps,
            "input": [self.plan.spec.in_ch, self.plan.spec.height, self.plan.spec.width],
            "classes": self.plan.spec.classes,
            "num_params": self.plan.num_params,
            "lif": {"tau_inv": lif.tau_inv, "v_th": lif.v_th, "reset": "hard", "v0": 0.0},
            "bn": {"eps": BN_EPS, "momentum": BN_MOMENTUM, "channels": self.plan.bn_channels},
            "surrogate": self.surrogate,
            "files": [
                {"name": "plan.json", "shape": []},
                {"name": "params.f32", "shape": [self.plan.num_params]},
                {"name": "bn_mean.f32", "shape": [nb]},
                {"name": "bn_var.f32", "shape": [nb]},
            ],
        })
    }

    /// Write the export folder `out` (which must not exist yet).
    pub fn write(&self, out: &Path) -> Result<()> {
        if out.exists() {
            return Err(Error::input(format!(
                "{}: already exists (choose another --out)",
                out.display()
            )));
        }
        let name = out
            .file_name()
            .ok_or_else(|| Error::input(format!("{}: not a folder name", out.display())))?;
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let tmp = parent.join(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&tmp);
        let result = self
            .write_files(&tmp)
            .and_then(|()| std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e)));
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    fn write_files(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let w = |name: &str, bytes: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))
        };
        let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let (mean, var) = self.bn.flatten();
        w(
            "plan.json",
            (serde_json::to_string_pretty(&self.plan).expect("plan serialises") + "\n").as_bytes(),
        )?;
        w("params.f32", &f32s(&self.params))?;
        w("bn_mean.f32", &f32s(&mean))?;
        w("bn_var.f32", &f32s(&var))?;
        w(
            "manifest.json",
            (serde_json::to_string_pretty(&self.manifest()).expect("manifest serialises") + "\n")
                .as_bytes(),
        )
    }
}

fn surrogate_of(cfg: &TrainConfig, file: &Path) -> Result<Surrogate> {
    Surrogate::parse(&cfg.surrogate).ok_or_else(|| {
        Error::input(format!(
            "{}: surrogate `{}` unknown (allowed: {})",
            file.display(),
            cfg.surrogate,
            Surrogate::NAMES.join(", ")
        ))
    })
}
