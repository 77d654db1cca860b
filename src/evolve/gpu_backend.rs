//! The GPU executor as a [`SpikeBackend`]: weights, forward pass and the per-population
//! statistics run in one submission on the device; only the integer statistics, spike counts
//! and logits come back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::evaluate::{ProbeBatch, RunOutput, SpikeBackend};
use crate::cpu::grad::Surrogate;
use crate::cpu::{init_params, LifParams};
use crate::gpu::{DeviceChoice, GpuContext, GpuExecutor, GpuTrainer, Outputs, TrainSettings};
use crate::plan::Plan;
use crate::train::{self, Loss};
use crate::Result;

pub type GpuEvaluator = super::evaluate::ScoringEvaluator<GpuBackend>;

pub struct GpuBackend {
    exec: GpuExecutor,
    ctx: Arc<GpuContext>,
}

impl GpuBackend {
    pub fn new(choice: &DeviceChoice) -> Result<Self> {
        let ctx = Arc::new(GpuContext::new(choice)?);
        Ok(GpuBackend {
            exec: GpuExecutor::new(ctx.clone()),
            ctx,
        })
    }

    pub fn executor(&mut self) -> &mut GpuExecutor {
        &mut self.exec
    }
}

impl SpikeBackend for GpuBackend {
    fn device(&self) -> String {
        let i = &self.exec.ctx().info;
        format!("gpu: {} ({:?}, {:?})", i.name, i.backend, i.device_type)
    }

    fn run(
        &mut self,
        plan: &Plan,
        weight_seed: u64,
        batch: &ProbeBatch,
        timings: &mut BTreeMap<String, f64>,
    ) -> std::result::Result<RunOutput, String> {
        let t0 = Instant::now();
        let out = self
            .exec
            .forward(
                plan,
                weight_seed,
                &batch.input,
                plan.spec.timesteps,
                batch.len(),
                Outputs::scores(),
            )
            .map_err(|e| e.to_string())?;
        // Weights, forward pass and statistics run in one submission on the device.
        *timings.entry("forward".into()).or_insert(0.0) += t0.elapsed().as_secs_f64();
        let finite = out.finite();
        Ok(RunOutput {
            stats: out.stats,
            firing_rates: out.firing_rates,
            finite,
        })
    }

    /// The gradients on the device through [`GpuTrainer::gradient`] (forward, loss and backward
    /// kernels; nothing is updated). They agree with the CPU reference to float rounding, not
    /// bit for bit. A network the trainer cannot hold (e.g. a tensor over the device's buffer
    /// limit) falls back to the CPU reference.
    fn gradients(
        &mut self,
        plan: &Plan,
        weight_seed: u64,
        batches: &[(Vec<f32>, Vec<u16>)],
        surrogate: Surrogate,
    ) -> std::result::Result<Vec<Vec<f32>>, String> {
        let params = init_params(plan, weight_seed);
        let on_device = || -> Result<Vec<Vec<f32>>> {
            let max_b = batches.iter().map(|(_, l)| l.len()).max().unwrap_or(1);
            let settings = TrainSettings {
                loss: Loss::CrossEntropy,
                label_smoothing: 0.0,
                surrogate,
                lif: LifParams::default(),
                eps: train::BN_EPS,
                momentum: train::BN_MOMENTUM,
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
        };
        match on_device() {
            Ok(g) => Ok(g),
            Err(_) => Ok(super::gradient::cpu_gradients(
                plan,
                &params,
                batches,
                plan.spec.timesteps,
                surrogate,
                crate::cpu::Kernels::Fast,
            )),
        }
    }
}
