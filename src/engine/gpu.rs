//! The wgpu engine behind [`super::Engine`]: weights, forward pass and the per-population
//! statistics run in one submission on the device; only the integer statistics, spike counts
//! and logits come back. Gradients come from the device's backward kernels; a device error is
//! returned, never replaced by a CPU result.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::backend::{add_time, ProbeBatch, RunOutput};
use super::{Forward, Outputs};
use crate::cpu::grad::{Loss, Surrogate};
use crate::cpu::{init_params, LifParams, BN_EPS, BN_MOMENTUM};
use crate::gpu::{GpuContext, GpuExecutor, GpuTrainer, TrainSettings};
use crate::plan::Plan;
use crate::Result;

pub(crate) struct GpuBackend {
    exec: GpuExecutor,
    ctx: Arc<GpuContext>,
}

impl GpuBackend {
    pub(crate) fn new(ctx: Arc<GpuContext>) -> Self {
        GpuBackend {
            exec: GpuExecutor::new(ctx.clone()),
            ctx,
        }
    }

    pub(crate) fn forward(
        &mut self,
        plan: &Plan,
        weight_seed: u64,
        input: &[f32],
        batch: usize,
        want: Outputs,
    ) -> Result<Forward> {
        let out = self
            .exec
            .forward(plan, weight_seed, input, plan.spec.timesteps, batch, want)?;
        Ok(Forward {
            logits: out.logits,
            spike_counts: out.spike_counts,
            firing_rates: out.firing_rates,
            stats: out.stats,
        })
    }

    /// The gradients on the device through [`GpuTrainer::gradient`] (forward, loss and backward
    /// kernels; nothing is updated). They agree with the CPU engine to float rounding, not bit
    /// for bit.
    pub(crate) fn gradients(
        &mut self,
        plan: &Plan,
        weight_seed: u64,
        batches: &[(Vec<f32>, Vec<u16>)],
        surrogate: Surrogate,
    ) -> Result<Vec<Vec<f32>>> {
        let params = init_params(plan, weight_seed);
        let max_b = batches.iter().map(|(_, l)| l.len()).max().unwrap_or(1);
        let settings = TrainSettings {
            loss: Loss::CrossEntropy,
            label_smoothing: 0.0,
            surrogate,
            lif: LifParams::default(),
            eps: BN_EPS,
            momentum: BN_MOMENTUM,
            weight_decay: 0.0,
        };
        let mut tr = GpuTrainer::new(
            self.ctx.clone(),
            plan,
            plan.spec.timesteps,
            max_b,
            settings,
            &params,
        )?;
        batches.iter().map(|(x, l)| tr.gradient(x, l)).collect()
    }
}

impl GpuBackend {
    /// The spike statistics of one probe batch: weights, forward pass and statistics run in
    /// one submission on the device, timed as `forward`.
    pub(crate) fn run(
        &mut self,
        plan: &Plan,
        weight_seed: u64,
        batch: &ProbeBatch,
        timings: &mut BTreeMap<String, f64>,
    ) -> Result<RunOutput> {
        let t0 = Instant::now();
        let out = self.forward(
            plan,
            weight_seed,
            &batch.input,
            batch.len(),
            Outputs::scores(),
        )?;
        add_time(timings, "forward", t0);
        Ok(RunOutput::from(out))
    }
}
