//! A training session on one device: the plan's parameters, the AdamW moments and the
//! batch-norm running statistics live on the device between steps; one step is forward, loss,
//! backward, running-statistics update and AdamW update. The CPU session is the oracle the
//! wgpu session is checked against.

use super::Device;
use crate::cpu::backprop;
use crate::cpu::optim::AdamW;
use crate::cpu::optim::TrainState;
use crate::cpu::{bn_update_running, BnMode, BnRunning, ForwardOptions, Kernels};
use crate::gpu::{GpuTrainer, TrainSettings};
use crate::plan::Plan;
use crate::Result;

/// What one step brings back (the same on every device).
pub use crate::gpu::StepOutput;

/// Rows per evaluation batch on the CPU engine.
const CPU_EVAL_BATCH: usize = 256;

/// One plan being trained on one device.
pub struct TrainSession {
    inner: Inner,
}

enum Inner {
    Cpu(Box<CpuSession>),
    Gpu(Box<GpuTrainer>),
}

struct CpuSession {
    plan: Plan,
    kernels: Kernels,
    settings: TrainSettings,
    params: Vec<f32>,
    bn: BnRunning,
    opt: AdamW,
}

impl TrainSession {
    /// A session for `plan` on `device`, with batches of up to `capacity` samples, starting
    /// from `state` (parameters, AdamW moments and step, running statistics).
    pub fn new(
        device: &Device,
        plan: &Plan,
        capacity: usize,
        settings: TrainSettings,
        state: TrainState,
    ) -> Result<TrainSession> {
        state.check(plan)?;
        let inner = match device.gpu_context() {
            Some(ctx) => {
                let t = plan.spec.timesteps;
                let mut g =
                    GpuTrainer::new(ctx.clone(), plan, t, capacity, settings, &state.params)?;
                g.write_state(&state)?;
                Inner::Gpu(Box::new(g))
            }
            None => {
                let mut opt = AdamW::new(plan, settings.weight_decay);
                opt.m = state.adam_m;
                opt.v = state.adam_v;
                opt.step = state.step;
                Inner::Cpu(Box::new(CpuSession {
                    plan: plan.clone(),
                    kernels: device
                        .cpu_kernels()
                        .expect("a device without a GPU context is the CPU engine"),
                    settings,
                    params: state.params,
                    bn: state.bn,
                    opt,
                }))
            }
        };
        Ok(TrainSession { inner })
    }

    /// One optimiser step on a batch (`[T, B, ...]` or `[B, ...]` inputs) at learning rate `lr`.
    /// A non-finite loss is returned as it is; on the CPU nothing is updated then.
    pub fn step(&mut self, input: &[f32], labels: &[u16], lr: f32) -> Result<StepOutput> {
        match &mut self.inner {
            Inner::Gpu(g) => g.step(input, labels, lr),
            Inner::Cpu(c) => Ok(c.step(input, labels, lr)),
        }
    }

    pub fn plan(&self) -> &Plan {
        match &self.inner {
            Inner::Gpu(g) => g.plan(),
            Inner::Cpu(c) => &c.plan,
        }
    }

    /// The batch size [`TrainSession::evaluate`] is fed in.
    pub fn eval_batch(&self) -> usize {
        match &self.inner {
            Inner::Gpu(g) => g.capacity(),
            Inner::Cpu(_) => CPU_EVAL_BATCH,
        }
    }

    /// `[B, classes]` logits in evaluation mode (running batch-norm statistics) with the
    /// current weights.
    pub fn evaluate(&mut self, input: &[f32], b: usize) -> Result<Vec<f32>> {
        match &mut self.inner {
            Inner::Gpu(g) => g.evaluate(input, b),
            Inner::Cpu(c) => Ok(c.evaluate(input, b).logits),
        }
    }

    /// [`TrainSession::evaluate`] and every population's spike count over the batch and all
    /// steps.
    pub fn evaluate_with_counts(
        &mut self,
        input: &[f32],
        b: usize,
    ) -> Result<(Vec<f32>, Vec<u64>)> {
        match &mut self.inner {
            Inner::Gpu(g) => g.evaluate_with_counts(input, b),
            Inner::Cpu(c) => {
                let out = c.evaluate(input, b);
                Ok((out.logits, out.spike_counts))
            }
        }
    }

    /// The whole state: parameters, AdamW moments and step, running statistics.
    pub fn state(&self) -> Result<TrainState> {
        match &self.inner {
            Inner::Gpu(g) => g.read_state(),
            Inner::Cpu(c) => Ok(TrainState {
                params: c.params.clone(),
                adam_m: c.opt.m.clone(),
                adam_v: c.opt.v.clone(),
                step: c.opt.step,
                bn: c.bn.clone(),
            }),
        }
    }

    /// Replace the weights and running statistics (e.g. with the best epoch's, to measure the
    /// test split); the optimiser state is kept.
    pub fn set_model(&mut self, params: &[f32], bn: &BnRunning) -> Result<()> {
        match &mut self.inner {
            Inner::Gpu(g) => g.write_model(params, bn),
            Inner::Cpu(c) => {
                c.params.copy_from_slice(params);
                c.bn = bn.clone();
                Ok(())
            }
        }
    }
}

impl CpuSession {
    fn evaluate(&self, input: &[f32], b: usize) -> crate::cpu::ForwardOutput {
        let mut o = ForwardOptions::new(self.plan.spec.timesteps, b);
        o.bn = BnMode::Running(&self.bn);
        o.lif = self.settings.lif;
        o.eps = self.settings.eps;
        o.kernels = self.kernels;
        crate::cpu::forward(&self.plan, &self.params, input, &o)
    }

    fn step(&mut self, x: &[f32], labels: &[u16], lr: f32) -> StepOutput {
        let plan = &self.plan;
        let s = self.settings;
        let (t, b, k) = (plan.spec.timesteps, labels.len(), plan.spec.classes);
        let mut loss = f32::NAN;
        let g = backprop::gradient(
            plan,
            &self.params,
            x,
            t,
            b,
            s.lif,
            s.surrogate,
            s.eps,
            self.kernels,
            |logits| {
                let (l, gl) = s.loss.eval(logits, labels, k, s.label_smoothing);
                loss = l;
                l.is_finite().then_some(gl)
            },
        );
        let logits = g.logits;
        let Some(grad) = g.grads else {
            return StepOutput {
                loss: f64::from(loss),
                logits,
            };
        };
        for (i, &ch) in plan.bn_channels.iter().enumerate() {
            let (mean, var) = &g.bn_stats[i];
            bn_update_running(
                &mut self.bn.mean[i],
                &mut self.bn.var[i],
                mean,
                var,
                t * b * bn_hw(plan, i),
                s.momentum,
            );
            debug_assert_eq!(mean.len(), ch);
        }
        self.opt.update(&mut self.params, &grad, lr);
        StepOutput {
            loss: f64::from(loss),
            logits,
        }
    }
}

/// `H*W` of batch-norm layer `i`.
fn bn_hw(plan: &Plan, i: usize) -> usize {
    plan.ops
        .iter()
        .find_map(|op| match op {
            crate::plan::Op::BatchNorm { y, bn, .. } if *bn == i => Some(plan.tensors[*y].hw()),
            _ => None,
        })
        .expect("every batch-norm slot has an op")
}
