//! The wgpu engine behind [`super::Engine`]: weights, forward pass and the per-population
//! statistics run in one submission on the device; only the integer statistics, spike counts
//! and logits come back. Gradients come from the device's backward kernels; a device error is
//! returned, never replaced by a CPU result.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::backend::{add_time, ProbeBatch, RunOutput};
use super::{Forward, Outputs};
use crate::cpu::elementwise::sum_squares_groups;
use crate::cpu::grad::{Loss, Surrogate};
use crate::cpu::{init_params, LifParams, BN_EPS, BN_MOMENTUM};
use crate::gpu::{
    norm2_of_partials, GpuContext, GpuExecutor, GpuTrainer, Job, Recorder, TrainSettings, View,
};
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
        let mut tr = self.gradient_trainer(plan, weight_seed, batches, surrogate)?;
        batches.iter().map(|(x, l)| tr.gradient(x, l)).collect()
    }

    /// `||mean_m g_m||^2` of the same gradients, reduced on the device: weights generated,
    /// every mini-batch's passes and the reduction in one submission, one read-back of at most
    /// 256 partial sums ([`GpuTrainer::record_mean_gradient_norm2`]).
    pub(crate) fn mean_gradient_norm2(
        &mut self,
        plan: &Plan,
        weight_seed: u64,
        batches: &[(Vec<f32>, Vec<u16>)],
        surrogate: Surrogate,
    ) -> Result<f64> {
        self.norm2_group(&[(plan, weight_seed)], batches, surrogate)?
            .pop()
            .expect("one result")
    }

    /// [`GpuBackend::mean_gradient_norm2`] of many candidates: their trainers record into one
    /// submission per group that fits the executor's memory budget (and its
    /// `max_per_submit`), and one read-back brings every candidate's partial sums. A candidate
    /// whose trainer cannot be made gets its own error; a group whose submission fails is
    /// retried one candidate at a time, so each error lands on its candidate.
    pub(crate) fn mean_gradient_norm2_many(
        &mut self,
        jobs: &[(&Plan, u64)],
        batches: &[(Vec<f32>, Vec<u16>)],
        surrogate: Surrogate,
    ) -> Vec<Result<f64>> {
        let max_b = largest_batch(batches);
        let mut results: Vec<Option<Result<f64>>> = jobs.iter().map(|_| None).collect();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut used = 0u64;
        for (i, &(plan, _)) in jobs.iter().enumerate() {
            let bytes = GpuTrainer::memory_bytes(plan, plan.spec.timesteps, max_b);
            match groups.last_mut() {
                Some(g)
                    if g.len() < self.exec.max_per_submit
                        && used + bytes <= self.exec.budget_bytes =>
                {
                    g.push(i);
                    used += bytes;
                }
                _ => {
                    groups.push(vec![i]);
                    used = bytes;
                }
            }
        }
        for g in groups {
            let sub: Vec<(&Plan, u64)> = g.iter().map(|&i| jobs[i]).collect();
            match self.norm2_group(&sub, batches, surrogate) {
                Ok(outs) => {
                    for (&i, r) in g.iter().zip(outs) {
                        results[i] = Some(r);
                    }
                }
                Err(_) if g.len() > 1 => {
                    for &i in &g {
                        let (plan, seed) = jobs[i];
                        results[i] = Some(self.mean_gradient_norm2(plan, seed, batches, surrogate));
                    }
                }
                Err(e) => results[g[0]] = Some(Err(e)),
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every job has a result"))
            .collect()
    }

    /// One group of [`GpuBackend::mean_gradient_norm2_many`]: the per-candidate results, or
    /// the error of the shared submission or read-back.
    fn norm2_group(
        &mut self,
        jobs: &[(&Plan, u64)],
        batches: &[(Vec<f32>, Vec<u16>)],
        surrogate: Surrogate,
    ) -> Result<Vec<Result<f64>>> {
        let ctx = self.ctx.clone();
        let sizes: Vec<usize> = jobs
            .iter()
            .map(|(p, _)| sum_squares_groups(p.num_params))
            .collect();
        let partials = ctx.storage("sum of squares partials", sizes.iter().sum())?;
        let mut rec = Recorder::new(&ctx);
        let mut out: Vec<Result<f64>> = Vec::with_capacity(jobs.len());
        let mut trainers = Vec::with_capacity(jobs.len());
        let mut at = 0;
        for (&(plan, seed), &n) in jobs.iter().zip(&sizes) {
            let view = View::new(&partials, at, n);
            let recorded = self
                .seeded_trainer(plan, batches, surrogate)
                .and_then(|mut tr| {
                    tr.record_init_weights(&mut rec, seed)?;
                    tr.record_mean_gradient_norm2(&mut rec, batches, view)?;
                    Ok(tr)
                });
            match recorded {
                // Kept until the submission has run: its buffers are the recording's.
                Ok(tr) => {
                    trainers.push(tr);
                    out.push(Ok(f64::NAN));
                }
                Err(e) => out.push(Err(e)),
            }
            at += n;
        }
        rec.submit()?;
        let words = ctx.read::<f32>(View::new(&partials, 0, at))?;
        drop(trainers);
        let mut at = 0;
        for (r, &n) in out.iter_mut().zip(&sizes) {
            if r.is_ok() {
                *r = Ok(norm2_of_partials(&words[at..at + n], batches.len()));
            }
            at += n;
        }
        Ok(out)
    }

    /// A trainer at the initial weights of `weight_seed` (generated on the host and uploaded),
    /// sized for the largest mini-batch.
    fn gradient_trainer(
        &mut self,
        plan: &Plan,
        weight_seed: u64,
        batches: &[(Vec<f32>, Vec<u16>)],
        surrogate: Surrogate,
    ) -> Result<GpuTrainer> {
        let params = init_params(plan, weight_seed);
        let max_b = largest_batch(batches);
        GpuTrainer::new(
            self.ctx.clone(),
            plan,
            plan.spec.timesteps,
            max_b,
            gradient_settings(surrogate),
            &params,
        )
    }

    /// A trainer for the gradient scores whose weights the caller generates on the device
    /// ([`GpuTrainer::record_init_weights`]), sized for the largest mini-batch.
    fn seeded_trainer(
        &mut self,
        plan: &Plan,
        batches: &[(Vec<f32>, Vec<u16>)],
        surrogate: Surrogate,
    ) -> Result<GpuTrainer> {
        let max_b = largest_batch(batches);
        GpuTrainer::with_seed(
            self.ctx.clone(),
            plan,
            plan.spec.timesteps,
            max_b,
            gradient_settings(surrogate),
        )
    }
}

/// Samples in the largest mini-batch (what a gradient trainer is sized for).
fn largest_batch(batches: &[(Vec<f32>, Vec<u16>)]) -> usize {
    batches.iter().map(|(_, l)| l.len()).max().unwrap_or(1)
}

/// What the gradient scores train with: cross-entropy without label smoothing, batch
/// statistics, no weight decay.
fn gradient_settings(surrogate: Surrogate) -> TrainSettings {
    TrainSettings {
        loss: Loss::CrossEntropy,
        label_smoothing: 0.0,
        surrogate,
        lif: LifParams::default(),
        eps: BN_EPS,
        momentum: BN_MOMENTUM,
        weight_decay: 0.0,
    }
}

impl GpuBackend {
    /// How many candidates one [`GpuBackend::run_many`] call records together at most.
    pub(crate) fn batch_hint(&self) -> usize {
        self.exec.max_per_submit
    }

    /// [`GpuBackend::run`] for every candidate: recorded into as few submissions as the
    /// executor's memory budget allows, one read-back each (candidates of different T run
    /// apart).
    pub(crate) fn run_many(
        &mut self,
        jobs: &[(&Plan, u64)],
        batch: &ProbeBatch,
        want: Outputs,
    ) -> Vec<Result<RunOutput>> {
        let t = jobs.first().map_or(0, |j| j.0.spec.timesteps);
        if jobs.iter().any(|j| j.0.spec.timesteps != t) {
            return jobs
                .iter()
                .map(|&(p, s)| self.run(p, s, batch, want, &mut BTreeMap::new()))
                .collect();
        }
        let many: Vec<Job<'_>> = jobs
            .iter()
            .map(|&(plan, weight_seed)| Job {
                plan,
                weight_seed,
                input: &batch.input,
            })
            .collect();
        self.exec
            .run_many(&many, t, batch.len(), want)
            .into_iter()
            .map(|r| {
                r.map(|out| {
                    RunOutput::from(Forward {
                        logits: out.logits,
                        spike_counts: out.spike_counts,
                        firing_rates: out.firing_rates,
                        stats: out.stats,
                    })
                })
            })
            .collect()
    }

    /// The spike statistics `want` asks for of one probe batch: weights, forward pass and
    /// statistics run in one submission on the device, timed as `forward`.
    pub(crate) fn run(
        &mut self,
        plan: &Plan,
        weight_seed: u64,
        batch: &ProbeBatch,
        want: Outputs,
        timings: &mut BTreeMap<String, f64>,
    ) -> Result<RunOutput> {
        let t0 = Instant::now();
        let out = self.forward(plan, weight_seed, &batch.input, batch.len(), want)?;
        add_time(timings, "forward", t0);
        Ok(RunOutput::from(out))
    }
}
