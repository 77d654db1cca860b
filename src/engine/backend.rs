//! The part of the engine that runs a plan: the CPU engine and the trait the scoring evaluator
//! drives ([`SpikeBackend`]), and the CPU gradients at initialisation.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{Forward, Outputs};
use crate::cpu::backprop;
use crate::cpu::grad::{softmax_cross_entropy, Surrogate};
use crate::cpu::{
    fast, forward, init_params, population_counts, population_stats, ForwardOptions, Kernels,
    LifParams, PopulationSpikes, PopulationStats,
};
use crate::plan::Plan;

/// One probe batch: `[T, B, C, H, W]` inputs, ordered by class.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeBatch {
    /// Indices into the training split.
    pub indices: Vec<usize>,
    pub labels: Vec<u16>,
    pub input: Vec<f32>,
}

impl ProbeBatch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// What one forward pass over one probe batch yields: statistics in plan population order.
#[derive(Clone, Debug)]
pub struct RunOutput {
    pub stats: Vec<PopulationStats>,
    /// Mean spike rate of every population (plan order).
    pub firing_rates: Vec<f64>,
    /// Every logit finite.
    pub finite: bool,
}

/// One run of [`SpikeBackend::run_many`]: a compiled candidate, its weight seed and a probe
/// batch.
#[derive(Clone, Copy, Debug)]
pub struct RunJob<'a> {
    pub plan: &'a Plan,
    pub weight_seed: u64,
    pub batch: &'a ProbeBatch,
}

/// What [`SpikeBackend::run_many_with_gradients`] returns: each job's run, and its gradient
/// norm where one was asked for.
pub type RunsAndNorms = (
    Vec<crate::Result<RunOutput>>,
    Vec<Option<crate::Result<f64>>>,
);

/// Produces population statistics for a compiled plan: the part of an evaluation that depends
/// on the executor.
pub trait SpikeBackend {
    fn device(&self) -> String;
    /// Run `plan` with weights from `weight_seed` on one probe batch, bringing back the
    /// statistics `want` asks for ([`Outputs::scores`] or [`Outputs::head_stats`]).
    fn run(
        &mut self,
        plan: &Plan,
        weight_seed: u64,
        batch: &ProbeBatch,
        want: Outputs,
        timings: &mut BTreeMap<String, f64>,
    ) -> crate::Result<RunOutput>;

    /// `||mean_m g_m||^2`, the squared norm of the mean of [`SpikeBackend::gradients`] (what
    /// `grad_norm` and `grad_rms` read). The default reduces the gradients on the host
    /// ([`mean_norm2`]); a GPU reduces them on the device and reads back a few numbers.
    fn mean_gradient_norm2(
        &mut self,
        plan: &Plan,
        weight_seed: u64,
        batches: &[(Vec<f32>, Vec<u16>)],
        surrogate: crate::cpu::grad::Surrogate,
    ) -> crate::Result<f64> {
        let g = self.gradients(plan, weight_seed, batches, surrogate)?;
        Ok(mean_norm2(&g, plan.num_params))
    }

    /// [`SpikeBackend::mean_gradient_norm2`] of several candidates `(plan, weight seed)` on the
    /// same mini-batches, each result the one it would give alone; the default computes them
    /// one by one.
    fn mean_gradient_norm2_many(
        &mut self,
        jobs: &[(&Plan, u64)],
        batches: &[(Vec<f32>, Vec<u16>)],
        surrogate: crate::cpu::grad::Surrogate,
    ) -> Vec<crate::Result<f64>> {
        jobs.iter()
            .map(|&(plan, seed)| self.mean_gradient_norm2(plan, seed, batches, surrogate))
            .collect()
    }

    /// How many candidates [`SpikeBackend::run_many`] takes per call with profit (1: it runs
    /// them one by one).
    fn batch_hint(&self) -> usize {
        1
    }

    /// [`SpikeBackend::run`] for several runs (a candidate, a weight seed, a probe batch), each
    /// result the one `run` would give; the default runs them one by one.
    fn run_many(&mut self, jobs: &[RunJob<'_>], want: Outputs) -> Vec<crate::Result<RunOutput>> {
        jobs.iter()
            .map(|j| self.run(j.plan, j.weight_seed, j.batch, want, &mut BTreeMap::new()))
            .collect()
    }

    /// Whether [`SpikeBackend::run_many_with_gradients`] records the gradient passes with the
    /// forward passes (one read-back for both), so that asking for the gradient norm of a
    /// candidate the forward pass would rule out (dead or not finite) costs less than a second
    /// round trip. The default: no, ask only for the norms a score will read.
    fn gradients_with_runs(&self) -> bool {
        false
    }

    /// [`SpikeBackend::run_many`], and for every job flagged in `gradient` the
    /// [`SpikeBackend::mean_gradient_norm2`] of its plan at its weight seed on `batches` (the
    /// others `None`). The default makes the two calls one after the other.
    fn run_many_with_gradients(
        &mut self,
        jobs: &[RunJob<'_>],
        want: Outputs,
        gradient: &[bool],
        batches: &[(Vec<f32>, Vec<u16>)],
        surrogate: crate::cpu::grad::Surrogate,
    ) -> RunsAndNorms {
        let runs = self.run_many(jobs, want);
        let flagged: Vec<usize> = (0..jobs.len()).filter(|&i| gradient[i]).collect();
        let pairs: Vec<(&Plan, u64)> = flagged
            .iter()
            .map(|&i| (jobs[i].plan, jobs[i].weight_seed))
            .collect();
        let mut norms: Vec<Option<crate::Result<f64>>> = jobs.iter().map(|_| None).collect();
        for (&i, r) in flagged
            .iter()
            .zip(self.mean_gradient_norm2_many(&pairs, batches, surrogate))
        {
            norms[i] = Some(r);
        }
        (runs, norms)
    }

    /// The cross-entropy gradient of each mini-batch (`x` as `[T, nb, ...]`, labels) at the
    /// weights of `weight_seed`, for the gradient scores. The default runs the CPU reference.
    fn gradients(
        &mut self,
        plan: &Plan,
        weight_seed: u64,
        batches: &[(Vec<f32>, Vec<u16>)],
        surrogate: crate::cpu::grad::Surrogate,
    ) -> crate::Result<Vec<Vec<f32>>> {
        Ok(cpu_gradients_at(
            plan,
            weight_seed,
            batches,
            surrogate,
            crate::cpu::Kernels::Fast,
        ))
    }
}

/// `||mean_m g_m||^2` over the first `num_params` entries of the gradients `g_m`, in f64 (each
/// mean summed in mini-batch order).
pub fn mean_norm2(grads: &[Vec<f32>], num_params: usize) -> f64 {
    let m = grads.len().max(1) as f64;
    let mut norm2 = 0.0f64;
    for j in 0..num_params {
        let g = grads.iter().map(|g| f64::from(g[j])).sum::<f64>() / m;
        norm2 += g * g;
    }
    norm2
}

/// [`cpu_gradients`] at the weights of `weight_seed`, over the plan's T.
pub(crate) fn cpu_gradients_at(
    plan: &Plan,
    weight_seed: u64,
    batches: &[(Vec<f32>, Vec<u16>)],
    surrogate: crate::cpu::grad::Surrogate,
    kernels: crate::cpu::Kernels,
) -> Vec<Vec<f32>> {
    let params = init_params(plan, weight_seed);
    cpu_gradients(
        plan,
        &params,
        batches,
        plan.spec.timesteps,
        surrogate,
        kernels,
    )
}

/// The CPU engine behind [`super::Engine`].
#[derive(Clone, Debug, Default)]
pub(crate) struct CpuBackend {
    /// Convolution implementation: the fast one, or the reference loops (bit-equal statistics
    /// with the GPU engine).
    pub kernels: crate::cpu::Kernels,
}

pub(crate) fn add_time(timings: &mut BTreeMap<String, f64>, what: &str, since: Instant) {
    *timings.entry(what.to_string()).or_insert(0.0) += since.elapsed().as_secs_f64();
}

impl CpuBackend {
    /// One forward pass at the weights of `weight_seed`, the time of each stage (`init`,
    /// `forward`, `stats`) added to `timings`.
    fn forward_timed(
        &self,
        plan: &Plan,
        weight_seed: u64,
        input: &[f32],
        batch: usize,
        want: Outputs,
        timings: &mut BTreeMap<String, f64>,
    ) -> Forward {
        let t0 = Instant::now();
        let params = init_params(plan, weight_seed);
        add_time(timings, "init", t0);
        let t0 = Instant::now();
        let mut opts = ForwardOptions::new(plan.spec.timesteps, batch);
        opts.record_spikes = want.stats;
        opts.kernels = self.kernels;
        // The statistics are invariant to the neuron order: the fast engine keeps its own.
        let out = if self.kernels == Kernels::Fast && fast::supports(plan) {
            fast::forward(plan, &params, input, &opts, fast::SpikeOrder::Any)
        } else {
            forward(plan, &params, input, &opts)
        };
        add_time(timings, "forward", t0);
        let t0 = Instant::now();
        let counts = want.firing_rates || want.stats;
        let stats = if want.stats {
            stats_of(plan, batch, out.spikes, want)
        } else {
            Vec::new()
        };
        add_time(timings, "stats", t0);
        Forward {
            logits: out.logits,
            spike_counts: if counts { out.spike_counts } else { Vec::new() },
            firing_rates: if counts {
                out.firing_rates.iter().map(|&r| r as f64).collect()
            } else {
                Vec::new()
            },
            stats,
        }
    }

    pub(crate) fn forward(
        &self,
        plan: &Plan,
        weight_seed: u64,
        input: &[f32],
        batch: usize,
        want: Outputs,
    ) -> Forward {
        self.forward_timed(plan, weight_seed, input, batch, want, &mut BTreeMap::new())
    }

    /// The spike statistics of one probe batch, as the scoring evaluator asks for them.
    pub(crate) fn run(
        &self,
        plan: &Plan,
        weight_seed: u64,
        batch: &ProbeBatch,
        want: Outputs,
        timings: &mut BTreeMap<String, f64>,
    ) -> RunOutput {
        let out = self.forward_timed(plan, weight_seed, &batch.input, batch.len(), want, timings);
        RunOutput::from(out)
    }

    pub(crate) fn gradients(
        &self,
        plan: &Plan,
        weight_seed: u64,
        batches: &[(Vec<f32>, Vec<u16>)],
        surrogate: Surrogate,
    ) -> Vec<Vec<f32>> {
        cpu_gradients_at(plan, weight_seed, batches, surrogate, self.kernels)
    }
}

impl From<Forward> for RunOutput {
    fn from(out: Forward) -> RunOutput {
        let finite = out.finite();
        RunOutput {
            stats: out.stats,
            firing_rates: out.firing_rates,
            finite,
        }
    }
}

/// The integer statistics of every population's packed spikes (plan order); the populations
/// `want` asks no tables of get their spike counts alone.
fn stats_of(
    plan: &Plan,
    batch: usize,
    spikes: Vec<Vec<u32>>,
    want: Outputs,
) -> Vec<PopulationStats> {
    plan.populations
        .iter()
        .zip(spikes)
        .enumerate()
        .map(|(i, (p, data))| {
            let spikes = PopulationSpikes {
                name: p.name.clone(),
                neurons: p.neurons,
                t: plan.spec.timesteps,
                b: batch,
                data,
            };
            if want.tables_of(plan, i) {
                population_stats(&spikes)
            } else {
                population_counts(&spikes)
            }
        })
        .collect()
}

/// The cross-entropy gradient (no label smoothing) of every mini-batch at the weights `params`,
/// on the CPU engine with the given convolution implementation.
pub fn cpu_gradients(
    plan: &Plan,
    params: &[f32],
    batches: &[(Vec<f32>, Vec<u16>)],
    t: usize,
    surrogate: Surrogate,
    kernels: crate::cpu::Kernels,
) -> Vec<Vec<f32>> {
    let k = plan.spec.classes;
    batches
        .iter()
        .map(|(x, labels)| {
            backprop::gradient(
                plan,
                params,
                x,
                t,
                labels.len(),
                LifParams::default(),
                surrogate,
                crate::cpu::BN_EPS,
                kernels,
                |logits| Some(softmax_cross_entropy(logits, labels, k, 0.0).1),
            )
            .grads
            .expect("the loss always returns a gradient")
        })
        .collect()
}
