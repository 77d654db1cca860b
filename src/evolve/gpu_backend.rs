//! The GPU executor as a [`SpikeBackend`]: weights, forward pass and the per-population
//! statistics run in one submission on the device; only the integer statistics, spike counts
//! and logits come back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::evaluate::{ProbeBatch, RunOutput, SpikeBackend};
use crate::gpu::{DeviceChoice, GpuContext, GpuExecutor, Outputs};
use crate::plan::Plan;
use crate::Result;

pub type GpuEvaluator = super::evaluate::ScoringEvaluator<GpuBackend>;

pub struct GpuBackend {
    exec: GpuExecutor,
}

impl GpuBackend {
    pub fn new(choice: &DeviceChoice) -> Result<Self> {
        let ctx = Arc::new(GpuContext::new(choice)?);
        Ok(GpuBackend {
            exec: GpuExecutor::new(ctx),
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
}
