//! A trained network on one device in evaluation mode: its weights and batch-norm running
//! statistics are put on the device once, then any number of inputs are run through it in
//! batches the device takes.

use super::{Device, TrainSession};
use crate::cpu::grad::{Loss, Surrogate};
use crate::cpu::optim::TrainState;
use crate::cpu::{BnRunning, LifParams, BN_EPS, BN_MOMENTUM};
use crate::gpu::TrainSettings;
use crate::plan::Plan;
use crate::Result;

/// Samples per batch a GPU model is built for (a CPU model runs the session's own batch).
const GPU_MODEL_BATCH: usize = 128;

/// A trained network (plan, parameters, running statistics) resident on a [`Device`].
///
/// ```
/// use msenas::engine::{init_params, BnRunning, Device, Model};
/// use msenas::genome::SearchSpace;
/// use msenas::plan::Plan;
/// use msenas::DataSpec;
/// use rand::SeedableRng;
///
/// let spec = DataSpec { in_ch: 1, height: 8, width: 8, classes: 3, timesteps: 2, event: false };
/// let genome = SearchSpace::default().sample(&mut rand::rngs::StdRng::seed_from_u64(1));
/// let plan = Plan::compile(&genome, &spec, 4, 1)?;
/// let params = init_params(&plan, 5); // or a checkpoint's, as `msenas::train::load_model` reads it
/// let bn = BnRunning::new(&plan);
/// let mut model = Model::new(&Device::cpu(), &plan, params, bn)?;
/// let logits = model.logits(&vec![0.5f32; 300 * 64], 300)?; // [B, C, H, W], B = 300
/// assert_eq!(logits.len(), 300 * 3);
/// let out = model.evaluate(&vec![0.5f32; 300 * 64], 300)?; // and the spikes of each population
/// assert_eq!(out.spike_counts.len(), plan.populations.len());
/// # Ok::<(), msenas::Error>(())
/// ```
pub struct Model {
    session: TrainSession,
}

impl Model {
    /// Put `plan` with `params` and running statistics `bn` on `device`.
    pub fn new(device: &Device, plan: &Plan, params: Vec<f32>, bn: BnRunning) -> Result<Model> {
        let np = params.len();
        let settings = TrainSettings {
            loss: Loss::CrossEntropy,
            label_smoothing: 0.0,
            surrogate: Surrogate::default(),
            lif: LifParams::default(),
            eps: BN_EPS,
            momentum: BN_MOMENTUM,
            weight_decay: 0.0,
        };
        let state = TrainState {
            params,
            adam_m: vec![0.0; np],
            adam_v: vec![0.0; np],
            step: 0,
            bn,
        };
        let session = TrainSession::new(device, plan, GPU_MODEL_BATCH, settings, state)?;
        Ok(Model { session })
    }

    pub fn plan(&self) -> &Plan {
        self.session.plan()
    }

    /// `[batch, classes]` logits (averaged over time) of `input`, `[T, B, C, H, W]` or
    /// `[B, C, H, W]` (shown at every step), run in batches the device takes.
    pub fn logits(&mut self, input: &[f32], batch: usize) -> Result<Vec<f32>> {
        Ok(self.run(input, batch, false)?.logits)
    }

    /// [`Model::logits`] and each population's spike count over all samples and steps
    /// (the firing rates, operation counts and energy of `msenas evaluate` come from them).
    pub fn evaluate(&mut self, input: &[f32], batch: usize) -> Result<ModelOutput> {
        self.run(input, batch, true)
    }

    fn run(&mut self, input: &[f32], batch: usize, counts: bool) -> Result<ModelOutput> {
        let per_step = super::input_per_step(self.session.plan(), input, batch)?;
        let s = self.session.plan().spec;
        let (t, sample) = (s.timesteps, s.in_ch * s.height * s.width);
        let step = self.session.eval_batch().max(1);
        let pops = if counts {
            self.session.plan().populations.len()
        } else {
            0
        };
        let mut out = ModelOutput {
            logits: Vec::with_capacity(batch * s.classes),
            spike_counts: vec![0; pops],
        };
        let mut chunk = Vec::new();
        for start in (0..batch).step_by(step) {
            let nb = step.min(batch - start);
            let x = if nb == batch {
                input
            } else {
                chunk.clear();
                if per_step {
                    for ti in 0..t {
                        let row = (ti * batch + start) * sample;
                        chunk.extend_from_slice(&input[row..row + nb * sample]);
                    }
                } else {
                    chunk.extend_from_slice(&input[start * sample..(start + nb) * sample]);
                }
                &chunk[..]
            };
            if counts {
                let (logits, c) = self.session.evaluate_with_counts(x, nb)?;
                out.logits.extend(logits);
                for (a, b) in out.spike_counts.iter_mut().zip(c) {
                    *a += b;
                }
            } else {
                out.logits.extend(self.session.evaluate(x, nb)?);
            }
        }
        Ok(out)
    }
}

/// What [`Model::evaluate`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelOutput {
    /// `[batch, classes]`, averaged over time.
    pub logits: Vec<f32>,
    /// Spikes of every population (the plan's order) over all samples and steps.
    pub spike_counts: Vec<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::{forward, init_params, BnMode, ForwardOptions};
    use crate::genome::SearchSpace;
    use crate::DataSpec;
    use rand::SeedableRng;

    fn setup(seed: u64) -> (Plan, Vec<f32>, BnRunning) {
        let spec = DataSpec {
            in_ch: 2,
            height: 8,
            width: 8,
            classes: 5,
            timesteps: 3,
            event: false,
        };
        let genome = SearchSpace::default().sample(&mut rand::rngs::StdRng::seed_from_u64(seed));
        let plan = Plan::compile(&genome, &spec, 4, 1).unwrap();
        let params = init_params(&plan, seed);
        let mut bn = BnRunning::new(&plan);
        for (i, (m, v)) in bn.mean.iter_mut().zip(&mut bn.var).enumerate() {
            for (j, (m, v)) in m.iter_mut().zip(v.iter_mut()).enumerate() {
                let u = crate::cpu::unit((i * 64 + j) as u32, 9);
                *m = 0.2 * (u - 0.5);
                *v = 0.5 + u;
            }
        }
        (plan, params, bn)
    }

    fn input(n: usize) -> Vec<f32> {
        (0..n).map(|i| crate::cpu::unit(i as u32, 3)).collect()
    }

    /// Batches split by the model give the logits of one pass over the whole batch, for both
    /// input layouts.
    #[test]
    fn batched_logits_equal_one_pass() {
        for seed in [1u64, 2, 3] {
            let (plan, params, bn) = setup(seed);
            let (t, b, sample) = (plan.spec.timesteps, 600, 2 * 64);
            let mut model = Model::new(&Device::cpu(), &plan, params.clone(), bn.clone()).unwrap();
            assert!(model.session.eval_batch() < b);
            for x in [input(b * sample), input(t * b * sample)] {
                let mut o = ForwardOptions::new(t, b);
                o.bn = BnMode::Running(&bn);
                let want = forward(&plan, &params, &x, &o);
                let got = model.logits(&x, b).unwrap();
                assert_eq!(got, want.logits, "seed {seed}, input of {} values", x.len());
                let ev = model.evaluate(&x, b).unwrap();
                assert_eq!(ev.logits, want.logits);
                assert_eq!(ev.spike_counts, want.spike_counts, "seed {seed}");
                assert!(ev.spike_counts.iter().sum::<u64>() > 0);
            }
        }
    }

    #[test]
    fn wrong_sizes_are_input_errors() {
        let (plan, params, bn) = setup(1);
        let short = params[1..].to_vec();
        let e = Model::new(&Device::cpu(), &plan, short, bn.clone())
            .err()
            .unwrap();
        assert!(e.to_string().contains("parameters for a plan of"), "{e}");
        let mut other = bn.clone();
        other.mean[0].pop();
        let e = Model::new(&Device::cpu(), &plan, params.clone(), other)
            .err()
            .unwrap();
        assert!(e.to_string().contains("running statistics"), "{e}");
        let mut m = Model::new(&Device::cpu(), &plan, params, bn).unwrap();
        let e = m.logits(&[0.0; 7], 1).unwrap_err();
        assert!(
            e.to_string().starts_with("input: 7 values for batch 1"),
            "{e}"
        );
        assert!(m.logits(&[], 0).is_err());
    }
}
