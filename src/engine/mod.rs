//! One engine on every device: a [`Device`] resolved once, and an [`Engine`] with the operations
//! every caller needs (a forward pass with the outputs asked for, spike statistics, gradients at
//! initialisation), a [`TrainSession`] (one optimiser step at a time, evaluation, the state
//! checkpoints hold) and a [`Model`] (a trained network run in evaluation mode). The CPU engine
//! and the wgpu engine implement the same calls and return the same types; `fitness` and
//! `train` are written against them once, and no wgpu type leaves `gpu`.
//!
//! The crate documentation embeds a forward pass; gradients at initialisation (what the
//! `grad_rms` score is made of) look the same on every device:
//!
//! ```
//! use msenas::engine::{Device, Engine, Surrogate};
//! use msenas::genome::SearchSpace;
//! use msenas::plan::Plan;
//! use msenas::DataSpec;
//! use rand::SeedableRng;
//!
//! let spec = DataSpec { in_ch: 1, height: 8, width: 8, classes: 2, timesteps: 2, event: false };
//! let genome = SearchSpace::default().sample(&mut rand::rngs::StdRng::seed_from_u64(1));
//! let plan = Plan::compile(&genome, &spec, 4, 1)?;
//! let x = vec![0.5f32; 2 * 4 * 64]; // [T, B, C, H, W], B = 4
//! let batches = vec![(x, vec![0u16, 1, 0, 1])];
//! let mut engine = Engine::new(Device::cpu());
//! let g = engine.gradients(&plan, 7, &batches, Surrogate::default())?;
//! assert_eq!(g[0].len(), plan.num_params);
//! # Ok::<(), msenas::Error>(())
//! ```

mod backend;
mod gpu;
mod model;
mod session;

use std::sync::Arc;

use rayon::prelude::*;

use crate::gpu::{DeviceChoice, GpuContext};
use crate::plan::Plan;
use crate::{Error, Result};

/// The engines' own types that appear in this API (the `cpu` and `gpu` modules behind it are
/// crate-internal; the `internals` feature makes them public for the kernel tests and
/// benchmarks).
pub use crate::cpu::grad::{Loss, Surrogate};
pub use crate::cpu::optim::TrainState;
pub use crate::cpu::{
    init_params, BnMode, BnRunning, ForwardOptions, ForwardOutput, Kernels, LifParams,
    PopulationSpikes, PopulationStats,
};
pub use crate::gpu::{
    list_adapters, AdapterSummary, GpuCounters, KernelTime, Outputs, TrainSettings,
};
pub(crate) use backend::add_time;
pub use backend::{
    cpu_gradients, mean_norm2, ProbeBatch, RunJob, RunOutput, RunsAndNorms, SpikeBackend,
};
pub use model::{Model, ModelOutput};
pub use session::{StepOutput, TrainSession};

/// Where an [`Engine`] runs, resolved once from a `--device` value: the CPU engine, or a wgpu
/// adapter (a hardware GPU, or a CPU Vulkan driver such as lavapipe when named). Opaque: no wgpu
/// type leaves the crate's `gpu` module.
#[derive(Clone)]
pub struct Device(Kind);

#[derive(Clone)]
enum Kind {
    /// The CPU engine (rayon over this machine's cores): the fast engine or the reference.
    Cpu {
        kernels: Kernels,
    },
    Gpu(Arc<GpuContext>),
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// What a `--device` value may be.
pub const DEVICE_HELP: &str =
    "cpu, auto, gpu or part of an adapter name; `msenas devices` lists them";

impl Device {
    /// The CPU engine with its fast kernels.
    pub fn cpu() -> Device {
        Device(Kind::Cpu {
            kernels: Kernels::Fast,
        })
    }

    /// The CPU engine with the reference convolution loops (spike statistics bit-equal with the
    /// wgpu engine's; slower).
    pub fn cpu_reference() -> Device {
        Device(Kind::Cpu {
            kernels: Kernels::Reference,
        })
    }

    /// A device on an opened wgpu context (the crate's GPU tests open lavapipe this way).
    #[doc(hidden)]
    pub fn from_gpu(ctx: Arc<GpuContext>) -> Device {
        Device(Kind::Gpu(ctx))
    }

    /// The CPU engine's kernels (`None` on a GPU).
    pub fn cpu_kernels(&self) -> Option<Kernels> {
        match &self.0 {
            Kind::Cpu { kernels } => Some(*kernels),
            Kind::Gpu(_) => None,
        }
    }

    /// Resolve a device name: `cpu` is the CPU engine; `auto` a hardware GPU when one opens,
    /// else the CPU engine (a CPU Vulkan driver such as lavapipe is slower than the CPU engine);
    /// `gpu` a hardware GPU; anything else part of an adapter's name, case-insensitive (e.g.
    /// `llvmpipe` for lavapipe). A name that opens nothing is an input error that says what is
    /// allowed; `auto` is the only name that falls back.
    pub fn resolve(name: &str) -> Result<Device> {
        match name {
            "cpu" => Ok(Device::cpu()),
            "auto" => Ok(match GpuContext::new(&DeviceChoice::Gpu) {
                Ok(ctx) => Device(Kind::Gpu(Arc::new(ctx))),
                Err(_) => Device::cpu(),
            }),
            "" => Err(Error::input(format!(
                "--device: empty name (allowed: {DEVICE_HELP})"
            ))),
            other => {
                let choice = match other {
                    "gpu" => DeviceChoice::Gpu,
                    n => DeviceChoice::Named(n.to_string()),
                };
                GpuContext::new(&choice)
                    .map(|c| Device(Kind::Gpu(Arc::new(c))))
                    .map_err(|e| {
                        Error::input(format!("--device {other}: {e} (allowed: {DEVICE_HELP})"))
                    })
            }
        }
    }

    /// One line: the CPU engine and its thread count, or the adapter, its backend and type.
    pub fn describe(&self) -> String {
        match &self.0 {
            Kind::Cpu { kernels } => format!(
                "cpu ({} threads{})",
                rayon::current_num_threads(),
                match kernels {
                    Kernels::Fast => "",
                    Kernels::Reference => ", reference loops",
                }
            ),
            Kind::Gpu(ctx) => {
                let i = &ctx.info;
                format!("gpu: {} ({:?}, {:?})", i.name, i.backend, i.device_type)
            }
        }
    }

    pub fn is_gpu(&self) -> bool {
        matches!(self.0, Kind::Gpu(_))
    }

    /// The adapter's summary (limits and features), `None` on the CPU engine.
    pub fn adapter(&self) -> Option<AdapterSummary> {
        match &self.0 {
            Kind::Cpu { .. } => None,
            Kind::Gpu(ctx) => Some(ctx.summary()),
        }
    }

    /// Time every GPU kernel from now on (see [`Device::take_profile`]); refused on the CPU
    /// engine and on adapters without timestamp queries.
    pub fn start_profile(&self) -> Result<()> {
        match &self.0 {
            Kind::Gpu(ctx) => ctx.start_profile(),
            Kind::Cpu { .. } => Err(Error::input(
                "profile: the CPU engine has no GPU kernels to time (allowed: a GPU device)",
            )),
        }
    }

    /// GPU time per kernel since [`Device::start_profile`], longest first; stops profiling.
    pub fn take_profile(&self) -> Vec<KernelTime> {
        match &self.0 {
            Kind::Gpu(ctx) => ctx.take_profile(),
            Kind::Cpu { .. } => Vec::new(),
        }
    }

    /// The GPU's submissions, dispatches and read-backs so far (`None` on the CPU engine).
    pub fn counters(&self) -> Option<GpuCounters> {
        self.gpu_context().map(|c| c.counters())
    }

    pub(crate) fn gpu_context(&self) -> Option<&Arc<GpuContext>> {
        match &self.0 {
            Kind::Gpu(ctx) => Some(ctx),
            Kind::Cpu { .. } => None,
        }
    }
}

/// What a forward pass returns on every device.
#[derive(Clone, Debug, Default)]
pub struct Forward {
    /// `[B, classes]`, averaged over time.
    pub logits: Vec<f32>,
    /// Spikes of every population over the batch and all steps (empty unless asked).
    pub spike_counts: Vec<u64>,
    /// Mean spike rate of every population, plan order (empty unless asked).
    pub firing_rates: Vec<f64>,
    /// Integer spike statistics of every population, plan order (empty unless asked; with
    /// [`Outputs::stats_head_only`] only the head population's tables are filled).
    pub stats: Vec<PopulationStats>,
}

impl Forward {
    /// Every logit finite.
    pub fn finite(&self) -> bool {
        self.logits.iter().all(|v| v.is_finite())
    }
}

/// The engine on one [`Device`]: the same calls and results on the CPU and the GPU.
pub struct Engine {
    device: Device,
    inner: Inner,
}

/// Candidates per core the CPU engine takes per `run_many` call (`batch_hint`): enough for the
/// cores to balance candidates of different cost.
const CPU_CANDIDATES_PER_THREAD: usize = 4;

enum Inner {
    Cpu(backend::CpuBackend),
    Gpu(gpu::GpuBackend),
}

impl Engine {
    pub fn new(device: Device) -> Engine {
        let inner = match &device.0 {
            Kind::Cpu { kernels } => Inner::Cpu(backend::CpuBackend { kernels: *kernels }),
            Kind::Gpu(ctx) => Inner::Gpu(gpu::GpuBackend::new(ctx.clone())),
        };
        Engine { device, inner }
    }

    /// `Engine::new(Device::resolve(name)?)`.
    pub fn resolve(name: &str) -> Result<Engine> {
        Ok(Engine::new(Device::resolve(name)?))
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Run `plan` with the counter-based initial weights of `weight_seed` over `input`
    /// (`[T, B, C, H, W]`, or `[B, C, H, W]` repeated over the plan's T) with batch statistics,
    /// returning the logits and what `want` asks for.
    pub fn forward(
        &mut self,
        plan: &Plan,
        weight_seed: u64,
        input: &[f32],
        batch: usize,
        want: Outputs,
    ) -> Result<Forward> {
        input_per_step(plan, input, batch)?;
        plan.check_workload(batch, plan.spec.timesteps)
            .map_err(|e| Error::input(format!("batch: {e}")))?;
        match &mut self.inner {
            Inner::Cpu(c) => Ok(c.forward(plan, weight_seed, input, batch, want)),
            Inner::Gpu(g) => g.forward(plan, weight_seed, input, batch, want),
        }
    }

    /// The cross-entropy gradient (no label smoothing, batch statistics) of each mini-batch
    /// (`x` as `[T, nb, C, H, W]`, labels) at the initial weights of `weight_seed`.
    pub fn gradients(
        &mut self,
        plan: &Plan,
        weight_seed: u64,
        batches: &[(Vec<f32>, Vec<u16>)],
        surrogate: Surrogate,
    ) -> Result<Vec<Vec<f32>>> {
        match &mut self.inner {
            Inner::Cpu(c) => Ok(c.gradients(plan, weight_seed, batches, surrogate)),
            Inner::Gpu(g) => g.gradients(plan, weight_seed, batches, surrogate),
        }
    }

    /// A training session for `plan` on this engine's device, starting from `state`, taking
    /// batches of at most `capacity` samples.
    pub fn train_session(
        &self,
        plan: &Plan,
        capacity: usize,
        settings: TrainSettings,
        state: TrainState,
    ) -> Result<TrainSession> {
        TrainSession::new(&self.device, plan, capacity, settings, state)
    }

    /// A trained network (`params`, running statistics `bn`) put on this engine's device for
    /// evaluation.
    pub fn model(&self, plan: &Plan, params: Vec<f32>, bn: BnRunning) -> Result<Model> {
        Model::new(&self.device, plan, params, bn)
    }
}

/// Whether `input` holds `batch` samples per time step (`[T, B, C, H, W]`: `true`) or once
/// (`[B, C, H, W]`, shown at every step: `false`); any other length is an input error.
pub(crate) fn input_per_step(plan: &Plan, input: &[f32], batch: usize) -> Result<bool> {
    let t = plan.spec.timesteps;
    let sample = plan.spec.in_ch * plan.spec.height * plan.spec.width;
    if batch > 0 && input.len() == batch * sample {
        Ok(false)
    } else if batch > 0 && input.len() == t * batch * sample {
        Ok(true)
    } else {
        Err(Error::input(format!(
            "input: {} values for batch {batch} (allowed: T*B*C*H*W = {} or B*C*H*W = {})",
            input.len(),
            t * batch * sample,
            batch * sample
        )))
    }
}

impl SpikeBackend for Engine {
    fn device(&self) -> String {
        self.device.describe()
    }

    fn run(
        &mut self,
        plan: &Plan,
        weight_seed: u64,
        batch: &ProbeBatch,
        want: Outputs,
        timings: &mut std::collections::BTreeMap<String, f64>,
    ) -> crate::Result<RunOutput> {
        match &mut self.inner {
            Inner::Cpu(c) => Ok(c.run(plan, weight_seed, batch, want, timings)),
            Inner::Gpu(g) => g.run(plan, weight_seed, batch, want, timings),
        }
    }

    fn mean_gradient_norm2(
        &mut self,
        plan: &Plan,
        weight_seed: u64,
        batches: &[(Vec<f32>, Vec<u16>)],
        surrogate: Surrogate,
    ) -> crate::Result<f64> {
        match &mut self.inner {
            Inner::Cpu(c) => Ok(mean_norm2(
                &c.gradients(plan, weight_seed, batches, surrogate),
                plan.num_params,
            )),
            Inner::Gpu(g) => g.mean_gradient_norm2(plan, weight_seed, batches, surrogate),
        }
    }

    fn mean_gradient_norm2_many(
        &mut self,
        jobs: &[(&Plan, u64)],
        batches: &[(Vec<f32>, Vec<u16>)],
        surrogate: Surrogate,
    ) -> Vec<crate::Result<f64>> {
        match &mut self.inner {
            Inner::Gpu(g) => g.mean_gradient_norm2_many(jobs, batches, surrogate),
            // Candidates side by side, one per core (each one's kernels parallel inside too):
            // each result is the one it gives alone.
            Inner::Cpu(c) => jobs
                .par_iter()
                .map(|&(p, s)| {
                    Ok(mean_norm2(
                        &c.gradients(p, s, batches, surrogate),
                        p.num_params,
                    ))
                })
                .collect(),
        }
    }

    /// On the CPU: candidates per call, CPU_CANDIDATES_PER_THREAD per core, run side by side.
    fn batch_hint(&self) -> usize {
        match &self.inner {
            Inner::Cpu(_) => CPU_CANDIDATES_PER_THREAD * rayon::current_num_threads(),
            Inner::Gpu(g) => g.batch_hint(),
        }
    }

    fn run_many(&mut self, jobs: &[RunJob<'_>], want: Outputs) -> Vec<crate::Result<RunOutput>> {
        if let Inner::Gpu(g) = &mut self.inner {
            return g.run_many(jobs, want, &[], &[], Surrogate::default()).0;
        }
        if let Inner::Cpu(c) = &self.inner {
            return jobs
                .par_iter()
                .map(|j| {
                    Ok(c.run(
                        j.plan,
                        j.weight_seed,
                        j.batch,
                        want,
                        &mut Default::default(),
                    ))
                })
                .collect();
        }
        jobs.iter()
            .map(|j| {
                self.run(
                    j.plan,
                    j.weight_seed,
                    j.batch,
                    want,
                    &mut Default::default(),
                )
            })
            .collect()
    }

    fn gradients_with_runs(&self) -> bool {
        matches!(self.inner, Inner::Gpu(_))
    }

    fn run_many_with_gradients(
        &mut self,
        jobs: &[RunJob<'_>],
        want: Outputs,
        gradient: &[bool],
        batches: &[(Vec<f32>, Vec<u16>)],
        surrogate: Surrogate,
    ) -> RunsAndNorms {
        if let Inner::Gpu(g) = &mut self.inner {
            return g.run_many(jobs, want, gradient, batches, surrogate);
        }
        let runs = self.run_many(jobs, want);
        let norms = jobs
            .iter()
            .zip(gradient)
            .map(|(j, &g)| {
                g.then(|| self.mean_gradient_norm2(j.plan, j.weight_seed, batches, surrogate))
            })
            .collect();
        (runs, norms)
    }

    fn gradients(
        &mut self,
        plan: &Plan,
        weight_seed: u64,
        batches: &[(Vec<f32>, Vec<u16>)],
        surrogate: Surrogate,
    ) -> crate::Result<Vec<Vec<f32>>> {
        Engine::gradients(self, plan, weight_seed, batches, surrogate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_empty_names_resolve_without_an_adapter() {
        assert_eq!(
            Device::resolve("cpu").unwrap().cpu_kernels(),
            Some(Kernels::Fast)
        );
        let e = Device::resolve("").unwrap_err().to_string();
        assert!(e.contains("allowed: cpu, auto, gpu"), "{e}");
        let e = Device::resolve("no-such-adapter-anywhere")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--device no-such-adapter-anywhere:"), "{e}");
        assert!(e.contains("allowed:"), "{e}");
    }

    #[test]
    fn cpu_forward_checks_the_input_length() {
        use crate::genome::SearchSpace;
        use rand::SeedableRng;
        let spec = crate::DataSpec {
            in_ch: 1,
            height: 8,
            width: 8,
            classes: 4,
            timesteps: 2,
            event: false,
        };
        let g = SearchSpace::default().sample(&mut rand::rngs::StdRng::seed_from_u64(2));
        let plan = Plan::compile(&g, &spec, 4, 1).unwrap();
        let mut e = Engine::new(Device::cpu());
        let err = e
            .forward(&plan, 1, &[0.0; 10], 2, Outputs::logits())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("input: 10 values for batch 2"), "{err}");
        // One frame repeated over T and T frames give the same result for a constant input.
        let a = e
            .forward(&plan, 1, &vec![0.7; 2 * 64], 2, Outputs::scores())
            .unwrap();
        let b = e
            .forward(&plan, 1, &vec![0.7; 2 * 2 * 64], 2, Outputs::scores())
            .unwrap();
        assert_eq!(a.logits, b.logits);
        assert_eq!(a.stats, b.stats);
        assert_eq!(a.stats.len(), plan.populations.len());
    }
}
