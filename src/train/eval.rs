//! Evaluation of a trained network (SPEC §4): top-1 accuracy, firing rate per population,
//! synaptic operations and energy per sample, parameter count, accuracy under input noise.
//!
//! Operation counting, per sample over all T steps: every convolution and linear op costs its
//! multiply-accumulates `macs` per step (`Plan::macs`). When its input is a spike tensor, only
//! the inputs that spiked trigger work: it performs `rate * macs` accumulates (synaptic
//! operations, SOPs), with `rate` the measured firing rate of that population over the evaluated
//! samples. An op with an analog input (the stem convolution on pixels, the head's linear layer
//! on pooled rates) performs `macs` multiply-accumulates. Energy uses the 45 nm figures:
//! 0.9 pJ per accumulate, 4.6 pJ per multiply-accumulate.

use crate::data::Split;
use crate::engine::{Device, Model};
use crate::plan::{Op, Plan};
use crate::train::count_correct;
use crate::train::rng::SplitMix64;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Energy of one accumulate and one multiply-accumulate at 45 nm, in picojoules.
pub const PJ_PER_AC: f64 = 0.9;
pub const PJ_PER_MAC: f64 = 4.6;

/// Input noise for the robustness measurement.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Noise {
    /// Adds `sigma * N(0, 1)` to every input value (no clipping).
    Gaussian { sigma: f32 },
    /// Sets each input value with probability `p` to the split's minimum or maximum value
    /// (pepper or salt, one half each).
    SaltPepper { p: f32 },
}

impl Noise {
    /// `gaussian:SIGMA` or `saltpepper:P`.
    pub fn parse(spec: &str) -> Result<Noise> {
        let bad = || {
            Error::input(format!(
                "noise '{spec}' (allowed: gaussian:SIGMA with SIGMA >= 0, saltpepper:P with P in [0, 1])"
            ))
        };
        let (kind, v) = spec.trim().split_once(':').ok_or_else(bad)?;
        let v: f32 = v.trim().parse().map_err(|_| bad())?;
        match kind.trim() {
            "gaussian" if v.is_finite() && v >= 0.0 => Ok(Noise::Gaussian { sigma: v }),
            "saltpepper" if (0.0..=1.0).contains(&v) => Ok(Noise::SaltPepper { p: v }),
            _ => Err(bad()),
        }
    }

    /// Comma-separated list.
    pub fn parse_list(list: &str) -> Result<Vec<Noise>> {
        list.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Noise::parse)
            .collect()
    }

    pub fn name(&self) -> String {
        match self {
            Noise::Gaussian { sigma } => format!("gaussian:{sigma}"),
            Noise::SaltPepper { p } => format!("saltpepper:{p}"),
        }
    }

    /// A noisy copy of a split (every stored value of every sample; a static image gets one
    /// noise draw shown at all T steps). Draws in sample order from `rng`.
    pub fn apply(&self, split: &Split, rng: &mut SplitMix64) -> Split {
        let mut out = split.clone();
        match *self {
            Noise::Gaussian { sigma } => {
                for v in out.x.iter_mut() {
                    *v += (f64::from(sigma) * rng.normal()) as f32;
                }
            }
            Noise::SaltPepper { p } => {
                let lo = split.x.iter().copied().fold(f32::INFINITY, f32::min);
                let hi = split.x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                for v in out.x.iter_mut() {
                    let u = rng.unit();
                    if u < f64::from(p) {
                        *v = if u < f64::from(p) / 2.0 { lo } else { hi };
                    }
                }
            }
        }
        out
    }
}

/// One population's measured firing rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PopulationRate {
    pub name: String,
    pub neurons: usize,
    pub rate: f64,
}

/// Accuracy under one noise setting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoiseResult {
    pub noise: String,
    pub accuracy: f64,
}

/// What `msenas evaluate` reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub samples: usize,
    pub accuracy: f64,
    pub params: usize,
    pub timesteps: usize,
    pub populations: Vec<PopulationRate>,
    /// Spikes over neuron-steps, all populations together.
    pub mean_firing_rate: f64,
    /// Spike-driven accumulates per sample (all T steps).
    pub sops_per_sample: f64,
    /// Multiply-accumulates per sample of ops with analog inputs (all T steps).
    pub macs_per_sample: f64,
    /// Multiply-accumulates per sample if every op were dense (the ANN-equivalent count).
    pub dense_macs_per_sample: f64,
    /// `0.9 pJ * SOPs + 4.6 pJ * MACs`, in microjoules per sample.
    pub energy_uj_per_sample: f64,
    pub noise: Vec<NoiseResult>,
}

/// Accuracy and spike counts over a split, in batches, with running batch-norm statistics.
fn run_split(model: &mut Model, split: &Split, batch: usize) -> Result<(f64, Vec<u64>)> {
    let plan = model.plan();
    let (t, k) = (plan.spec.timesteps, plan.spec.classes);
    let mut counts = vec![0u64; plan.populations.len()];
    let mut correct = 0usize;
    let idx: Vec<usize> = (0..split.len()).collect();
    for chunk in idx.chunks(batch.max(1)) {
        let x = split.batch(chunk, if split.frames == 1 { 1 } else { t });
        let out = model.evaluate(&x, chunk.len())?;
        for (c, &s) in counts.iter_mut().zip(&out.spike_counts) {
            *c += s;
        }
        correct += count_correct(&out.logits, &split.labels_of(chunk), k);
    }
    Ok((correct as f64 / split.len().max(1) as f64, counts))
}

/// An evaluation of a trained network, as `msenas evaluate` takes it.
#[derive(Clone, Debug)]
pub struct EvalRequest {
    /// A checkpoint file, or a training run folder (its `model.ckpt`).
    pub checkpoint: PathBuf,
    /// Dataset (default: the one the network was trained on); its shape must match.
    pub dataset: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// `test` or `val`.
    pub split: String,
    /// Input noise settings, comma-separated: `gaussian:SIGMA`, `saltpepper:P`.
    pub noise: Option<String>,
    /// Seed of the noise.
    pub seed: u64,
    pub batch_size: usize,
    /// Where to run it (`Device::resolve`: auto, cpu, gpu or part of an adapter name).
    pub device: String,
}

/// Where an evaluated network came from.
#[derive(Clone, Debug)]
pub struct EvalSource {
    /// The checkpoint file read.
    pub path: PathBuf,
    /// The epoch of its weights.
    pub epoch: usize,
    /// The dataset evaluated on.
    pub dataset: String,
}

impl EvalRequest {
    /// Read the checkpoint, load the dataset, check every setting, then [`evaluate`].
    pub fn run(&self) -> Result<(EvalReport, EvalSource)> {
        let path = super::model_file(&self.checkpoint);
        let noises = match &self.noise {
            Some(s) => Noise::parse_list(s)?,
            None => Vec::new(),
        };
        let (ck, params, bn) = super::load_model(&path)?;
        let plan = &ck.meta.plan;
        let name = self.dataset.clone().unwrap_or(ck.meta.dataset.clone());
        let ds = crate::data::load(
            &name,
            &crate::data::DataOptions {
                data_dir: self.data_dir.clone(),
                timesteps: plan.spec.timesteps,
                size: Some(plan.spec.height),
                seed: self.seed,
                ..Default::default()
            },
        )?;
        super::check_spec(plan, &ds)?;
        let split = match self.split.as_str() {
            "test" => &ds.test,
            "val" => &ds.val,
            other => {
                return Err(Error::input(format!(
                    "--split {other} (allowed: test, val)"
                )));
            }
        };
        if split.is_empty() {
            return Err(Error::input(format!(
                "dataset '{name}' has no {} samples",
                self.split
            )));
        }
        if self.batch_size == 0 || self.batch_size > crate::train::MAX_BATCH {
            return Err(Error::input(format!(
                "--batch-size: {} (allowed: 1..={})",
                self.batch_size,
                crate::train::MAX_BATCH
            )));
        }
        plan.check_workload(self.batch_size.min(split.len()), plan.spec.timesteps)
            .map_err(|e| Error::input(format!("--batch-size: {e}")))?;
        let device = Device::resolve(&self.device)?;
        let mut model = Model::new(&device, plan, params, bn)?;
        let r = evaluate(&mut model, split, &noises, self.seed, self.batch_size)?;
        Ok((
            r,
            EvalSource {
                path,
                epoch: ck.meta.epoch,
                dataset: name,
            },
        ))
    }
}

/// Evaluate on a split: accuracy, rates, operation counts and energy, then the accuracy under
/// each noise setting (each drawn from its own stream of `seed`).
pub fn evaluate(
    model: &mut Model,
    split: &Split,
    noises: &[Noise],
    seed: u64,
    batch: usize,
) -> Result<EvalReport> {
    let (accuracy, counts) = run_split(model, split, batch)?;
    let plan = model.plan();
    let t = plan.spec.timesteps;
    let n = split.len().max(1) as f64;
    let rates: Vec<f64> = plan
        .populations
        .iter()
        .zip(&counts)
        .map(|(p, &c)| c as f64 / (n * t as f64 * p.neurons.max(1) as f64))
        .collect();
    let total_spikes: u64 = counts.iter().sum();
    let total_neurons: usize = plan.populations.iter().map(|p| p.neurons).sum();
    let (sops, macs, dense) = op_counts(plan, &rates);
    let mut report = EvalReport {
        samples: split.len(),
        accuracy,
        params: plan.num_params,
        timesteps: t,
        populations: plan
            .populations
            .iter()
            .zip(&rates)
            .map(|(p, &r)| PopulationRate {
                name: p.name.clone(),
                neurons: p.neurons,
                rate: r,
            })
            .collect(),
        mean_firing_rate: total_spikes as f64 / (n * t as f64 * total_neurons.max(1) as f64),
        sops_per_sample: sops,
        macs_per_sample: macs,
        dense_macs_per_sample: dense,
        energy_uj_per_sample: (PJ_PER_AC * sops + PJ_PER_MAC * macs) * 1e-6,
        noise: Vec::with_capacity(noises.len()),
    };
    for (i, nz) in noises.iter().enumerate() {
        let mut rng = SplitMix64::for_epoch(seed, i as u64, super::rng::STREAM_NOISE);
        let noisy = nz.apply(split, &mut rng);
        report.noise.push(NoiseResult {
            noise: nz.name(),
            accuracy: run_split(model, &noisy, batch)?.0,
        });
    }
    Ok(report)
}

/// `(SOPs, MACs, dense MACs)` per sample over T steps, given each population's firing rate.
pub fn op_counts(plan: &Plan, rates: &[f64]) -> (f64, f64, f64) {
    let t = plan.spec.timesteps as f64;
    let (mut sops, mut macs, mut dense) = (0.0, 0.0, 0.0);
    for op in &plan.ops {
        let x = match op {
            Op::Conv { x, .. } | Op::Linear { x, .. } => *x,
            _ => continue,
        };
        let m = plan.macs(op) as f64 * t;
        dense += m;
        match plan.populations.iter().position(|p| p.tensor == x) {
            Some(pop) if plan.tensors[x].spikes => sops += rates[pop] * m,
            _ => macs += m,
        }
    }
    (sops, macs, dense)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_counts_by_hand() {
        use crate::genome::{CellGene, Genome, MicroVariant};
        let spec = crate::DataSpec {
            in_ch: 1,
            height: 8,
            width: 8,
            classes: 3,
            timesteps: 2,
            event: false,
        };
        let genome = |motif: u8| Genome {
            layout: "N".into(),
            micro: MicroVariant::Kernel,
            k: 2,
            cells: vec![CellGene {
                motif,
                sources: vec![1, 1],
                ops: vec![0; 4],
            }],
        };
        // Silent cell: stem conv 1 -> 6 channels, 3x3 on 8x8 (64*6*9 = 3456 MACs a step), head
        // linear 6 -> 3 (18 MACs a step) on pooled rates: all analog inputs, no SOPs.
        let plan = Plan::compile(&genome(0), &spec, 2, 1).unwrap();
        let rates = vec![0.25; plan.populations.len()];
        let (sops, macs, dense) = op_counts(&plan, &rates);
        assert_eq!(sops, 0.0);
        assert_eq!(macs, 2.0 * (3456.0 + 18.0));
        assert_eq!(dense, macs);
        // Feed-forward excitation: two 1x1 convs 6 -> 2 on the stem's spikes (64*2*6 = 768 each),
        // two 3x3 convs 2 -> 2 on their spikes (64*2*2*9 = 2304 each), one 3x3 conv on n2's
        // spikes (2304); the head reads 4 channels (4*3 = 12). With every rate 0.25 the spiking
        // ops cost a quarter of their MACs.
        let plan = Plan::compile(&genome(1), &spec, 2, 1).unwrap();
        let rates = vec![0.25; plan.populations.len()];
        let (sops, macs, dense) = op_counts(&plan, &rates);
        let spiking = 2.0 * 768.0 + 3.0 * 2304.0;
        assert_eq!(macs, 2.0 * (3456.0 + 12.0));
        assert_eq!(sops, 2.0 * 0.25 * spiking);
        assert_eq!(dense, macs + 2.0 * spiking);
    }

    #[test]
    fn noise_specs() {
        assert_eq!(
            Noise::parse("gaussian:0.1").unwrap(),
            Noise::Gaussian { sigma: 0.1 }
        );
        assert_eq!(
            Noise::parse("saltpepper:0.05").unwrap(),
            Noise::SaltPepper { p: 0.05 }
        );
        assert!(Noise::parse("gaussian").is_err());
        assert!(Noise::parse("saltpepper:2").is_err());
        assert!(Noise::parse("blur:1").is_err());
        assert_eq!(
            Noise::parse_list("gaussian:0.1, saltpepper:0.05")
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn noise_is_seeded_and_has_the_right_size() {
        let mut s = Split::empty(1, 1, 10, 10);
        for i in 0..50 {
            s.push(&[if i % 2 == 0 { 0.0 } else { 1.0 }; 100], 0);
        }
        let g = Noise::Gaussian { sigma: 0.5 };
        let a = g.apply(&s, &mut SplitMix64::new(3));
        assert_eq!(a, g.apply(&s, &mut SplitMix64::new(3)));
        let d: Vec<f64> =
            a.x.iter()
                .zip(&s.x)
                .map(|(x, y)| f64::from(x - y))
                .collect();
        let var = d.iter().map(|v| v * v).sum::<f64>() / d.len() as f64;
        assert!((var.sqrt() - 0.5).abs() < 0.02, "sd {}", var.sqrt());
        let sp = Noise::SaltPepper { p: 0.2 };
        let b = sp.apply(&s, &mut SplitMix64::new(4));
        let changed = b.x.iter().zip(&s.x).filter(|(x, y)| x != y).count();
        // About p/2 of the values flip (the other half are set to the value they had).
        let frac = changed as f64 / s.x.len() as f64;
        assert!((frac - 0.1).abs() < 0.02, "{frac}");
        assert!(b.x.iter().all(|&v| v == 0.0 || v == 1.0));
    }
}
