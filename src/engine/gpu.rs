//! The wgpu engine behind [`super::Engine`]: weights, forward pass and the per-population
//! statistics run in one submission on the device; only the integer statistics, spike counts
//! and logits come back. Gradients come from the device's backward kernels; a device error is
//! returned, never replaced by a CPU result.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::backend::{add_time, ProbeBatch, RunJob, RunOutput, RunsAndNorms};
use super::{Forward, Outputs};
use crate::cpu::elementwise::sum_squares_groups;
use crate::cpu::grad::{Loss, Surrogate};
use crate::cpu::{init_params, LifParams, BN_EPS, BN_MOMENTUM};
use crate::gpu::executor::{retry_in_halves, Alongside};
use crate::gpu::{
    norm2_of_partials, GpuContext, GpuExecutor, GpuTrainer, GradientBatches, Job, Recorder,
    TrainSettings, View,
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
    /// retried in halves down to single candidates, so each error lands on its candidate.
    pub(crate) fn mean_gradient_norm2_many(
        &mut self,
        jobs: &[(&Plan, u64)],
        batches: &[(Vec<f32>, Vec<u16>)],
        surrogate: Surrogate,
    ) -> Vec<Result<f64>> {
        let max_b = largest_batch(batches);
        // The outer error: the shared submission's; the inner: the candidate's own.
        let mut results: Vec<Option<Result<Result<f64>>>> = jobs.iter().map(|_| None).collect();
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
            retry_in_halves(
                &g,
                &mut |idx| {
                    let sub: Vec<(&Plan, u64)> = idx.iter().map(|&i| jobs[i]).collect();
                    self.norm2_group(&sub, batches, surrogate)
                },
                &mut results,
            );
        }
        results
            .into_iter()
            .map(|r| r.expect("every job has a result").and_then(|r| r))
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
        let mut shared = None;
        let mut at = 0;
        for (&(plan, seed), &n) in jobs.iter().zip(&sizes) {
            let view = View::new(&partials, at, n);
            let recorded = self
                .seeded_trainer(plan, batches, surrogate)
                .and_then(|mut tr| {
                    record_gradient_norm(&mut tr, &mut rec, seed, batches, &mut shared, view)?;
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

/// A scoring trainer's gradient norm recorded into `rec`: weights from `seed` on the device,
/// then the mini-batches' passes and the reduction into `out`, reading the mini-batches from
/// `shared` (uploaded here by the first trainer that needs them, or again if a trainer cannot
/// read them), so a submission's trainers share one upload.
fn record_gradient_norm(
    tr: &mut GpuTrainer,
    rec: &mut Recorder<'_>,
    seed: u64,
    batches: &[(Vec<f32>, Vec<u16>)],
    shared: &mut Option<GradientBatches>,
    out: View<'_>,
) -> Result<()> {
    tr.record_init_weights(rec, seed)?;
    let gb = match shared {
        Some(g) if tr.can_read(g) => g,
        _ => shared.insert(tr.upload_gradient_batches(batches)?),
    };
    tr.record_mean_gradient_norm2_with(rec, gb, out)
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

    /// [`GpuBackend::run`] for every job, and for the jobs flagged in `gradient` (which may be
    /// empty: none) the mean gradient norm of [`GpuBackend::mean_gradient_norm2`] recorded
    /// into the same submission right after the job's forward pass: as few submissions as the
    /// executor's memory budget allows, one read-back each, for forward statistics and norms
    /// together. Jobs of different T or batch size run in separate submissions.
    pub(crate) fn run_many(
        &mut self,
        jobs: &[RunJob<'_>],
        want: Outputs,
        gradient: &[bool],
        batches: &[(Vec<f32>, Vec<u16>)],
        surrogate: Surrogate,
    ) -> RunsAndNorms {
        let mut runs: Vec<Option<Result<RunOutput>>> = jobs.iter().map(|_| None).collect();
        let mut norms: Vec<Option<Result<f64>>> = jobs.iter().map(|_| None).collect();
        // Shapes in order of first appearance.
        let mut shapes: Vec<(usize, usize)> = Vec::new();
        for j in jobs {
            let shape = (j.plan.spec.timesteps, j.batch.len());
            if !shapes.contains(&shape) {
                shapes.push(shape);
            }
        }
        for (t, b) in shapes {
            let idx: Vec<usize> = (0..jobs.len())
                .filter(|&i| (jobs[i].plan.spec.timesteps, jobs[i].batch.len()) == (t, b))
                .collect();
            let many: Vec<Job<'_>> = idx
                .iter()
                .map(|&i| Job {
                    plan: jobs[i].plan,
                    weight_seed: jobs[i].weight_seed,
                    input: &jobs[i].batch.input,
                })
                .collect();
            let mut along = GradientAlong {
                ctx: self.ctx.clone(),
                jobs: idx
                    .iter()
                    .map(|&i| {
                        let j = jobs[i];
                        gradient
                            .get(i)
                            .copied()
                            .unwrap_or(false)
                            .then_some((j.plan, j.weight_seed))
                    })
                    .collect(),
                batches,
                surrogate,
                shared: None,
            };
            let outs = self.exec.run_many_along(&many, t, b, want, &mut along);
            for ((&i, out), asked) in idx.iter().zip(outs).zip(&along.jobs) {
                let flagged = asked.is_some();
                match out {
                    Ok((fwd, extra)) => {
                        runs[i] = Some(Ok(RunOutput::from(Forward {
                            logits: fwd.logits,
                            spike_counts: fwd.spike_counts,
                            firing_rates: fwd.firing_rates,
                            stats: fwd.stats,
                        })));
                        norms[i] = extra.map(|r| {
                            r.map(|words| {
                                let parts: Vec<f32> =
                                    words.into_iter().map(f32::from_bits).collect();
                                norm2_of_partials(&parts, batches.len())
                            })
                        });
                    }
                    Err(e) => {
                        if flagged {
                            norms[i] = Some(Err(crate::Error::Gpu(format!(
                                "gradient norm not computed: the candidate's submission failed: {e}"
                            ))));
                        }
                        runs[i] = Some(Err(e));
                    }
                }
            }
        }
        (
            runs.into_iter()
                .map(|r| r.expect("every job has a run"))
                .collect(),
            norms,
        )
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

/// The gradient norm of a scored candidate, recorded into its forward pass's submission: a
/// trainer at the weights of its seed (generated on the device), every mini-batch's passes and
/// the reduction to at most 256 partial sums written into the forward outputs.
struct GradientAlong<'a> {
    ctx: Arc<GpuContext>,
    /// Per job of the executor call: the plan and weight seed, where a norm is wanted.
    jobs: Vec<Option<(&'a Plan, u64)>>,
    batches: &'a [(Vec<f32>, Vec<u16>)],
    surrogate: Surrogate,
    /// The mini-batches on the device, uploaded by the first trainer, read by the rest.
    shared: Option<GradientBatches>,
}

impl Alongside for GradientAlong<'_> {
    fn words(&self, i: usize) -> usize {
        self.jobs[i].map_or(0, |(p, _)| sum_squares_groups(p.num_params))
    }

    fn bytes(&self, i: usize) -> u64 {
        self.jobs[i].map_or(0, |(p, _)| {
            GpuTrainer::memory_bytes(p, p.spec.timesteps, largest_batch(self.batches))
        })
    }

    fn record(
        &mut self,
        rec: &mut Recorder<'_>,
        i: usize,
        out: View<'_>,
    ) -> Result<Box<dyn std::any::Any>> {
        let (plan, seed) = self.jobs[i].expect("asked only for jobs with words");
        let mut tr = GpuTrainer::with_seed(
            self.ctx.clone(),
            plan,
            plan.spec.timesteps,
            largest_batch(self.batches),
            gradient_settings(self.surrogate),
        )?;
        record_gradient_norm(&mut tr, rec, seed, self.batches, &mut self.shared, out)?;
        Ok(Box::new(tr))
    }
}
