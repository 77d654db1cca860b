//! The GPU executor: runs a [`Plan`] layer by layer on the device, the twin of
//! `cpu::executor::forward`.
//!
//! Per candidate: weights are generated on the device by the counter-based generator (constants
//! by a fill kernel), every tensor is leased from the [`Arena`] when its op runs and given back
//! after its last reader, and every op is recorded into one [`Recorder`]. Nothing is read back
//! but the requested outputs: logits, and per population the integer spike counts or the full
//! [`PopulationStats`]. LIF populations are stored bit-packed; convolutions reading spikes use
//! the spiking kernel on the packed words, and f32 spikes are written only for populations some
//! other op (the head's average pool) reads.
//!
//! [`GpuExecutor::run_many`] records a generation's candidates into as few submissions as the
//! memory budget allows. Leases go back to the arena as soon as a candidate is recorded, so the
//! next candidate of the same submission reuses them (commands execute in order); only the
//! outputs region and the inputs grow with the number of candidates in a submission.

use std::sync::Arc;

use super::arena::{storage_usage, Arena, GpuAllocator, Lease, SizeClass};
use super::kernels::{batchnorm, conv, elementwise, lif, rdm, rng, View};
use super::{GpuContext, Recorder};
use crate::cpu::{ConvShape, LifParams, PopulationStats};
use crate::plan::{Gate, Op, ParamInit, Plan};
use crate::{Error, Result};

/// What a forward pass should bring back (logits always come back).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outputs {
    /// Per-population spike counts and firing rates.
    pub firing_rates: bool,
    /// Per-population [`PopulationStats`] (implies firing rates).
    pub stats: bool,
    /// With `stats`: only the head population's Hamming and dot tables are computed (what the
    /// dead-network check reads); every other population's statistics come back with their
    /// spike counts and empty tables, and their RDM kernels are not recorded.
    pub stats_head_only: bool,
    /// Every population's packed spikes `[T][B][words]` (for parity tests and dumps).
    pub spikes: bool,
}

impl Outputs {
    pub fn logits() -> Self {
        Outputs::default()
    }
    /// What the training-free fitness needs: statistics and firing rates.
    pub fn scores() -> Self {
        Outputs {
            firing_rates: true,
            stats: true,
            spikes: false,
            stats_head_only: false,
        }
    }
    /// What scores that read no spike representation need (cost and gradient scores): firing
    /// rates, and the head population's statistics for the dead-network check.
    pub fn head_stats() -> Self {
        Outputs {
            stats_head_only: true,
            ..Outputs::scores()
        }
    }
    pub fn all() -> Self {
        Outputs {
            firing_rates: true,
            stats: true,
            spikes: true,
            stats_head_only: false,
        }
    }
    fn counts(&self) -> bool {
        self.firing_rates || self.stats
    }
    /// Whether population `pop` of `plan` gets its Hamming and dot tables.
    pub fn tables_of(&self, plan: &Plan, pop: usize) -> bool {
        self.stats && (!self.stats_head_only || pop == plan.head_population)
    }
}

/// The results of one candidate.
#[derive(Clone, Debug, Default)]
pub struct GpuOutput {
    /// `[B, classes]`, averaged over time.
    pub logits: Vec<f32>,
    /// Spikes of every population over the batch and all steps (empty unless asked).
    pub spike_counts: Vec<u64>,
    /// Mean spike rate of every population (empty unless asked).
    pub firing_rates: Vec<f64>,
    /// Plan population order (empty unless asked).
    pub stats: Vec<PopulationStats>,
    /// Packed spikes per population (empty unless asked).
    pub spikes: Vec<Vec<u32>>,
}

impl GpuOutput {
    #[cfg(any(test, feature = "internals"))]
    pub fn finite(&self) -> bool {
        self.logits.iter().all(|v| v.is_finite())
    }
}

/// One candidate of a [`GpuExecutor::run_many`] call.
#[derive(Clone, Copy, Debug)]
pub struct Job<'a> {
    pub plan: &'a Plan,
    pub weight_seed: u64,
    /// `[T, B, C, H, W]`, or `[B, C, H, W]` repeated over T.
    pub input: &'a [f32],
}

/// Which buffers each tensor needs.
struct Storage {
    /// f32 elements of the dense tensor (0: not stored densely).
    dense: Vec<usize>,
    /// u32 words of the packed spike record (0: not a spike tensor).
    packed: Vec<usize>,
    /// A batch norm's output read only by a LIF population whose spikes are needed packed
    /// only: never stored; the LIF kernel applies the batch norm on the fly (`lif::lif_bn`).
    /// The f32 elements of its statistics (mean, var and the slices' scratch), held from the
    /// batch norm to the LIF (0: not fused).
    held: Vec<usize>,
}

fn storage(plan: &Plan, t: usize, b: usize) -> Storage {
    let n = t * b;
    let mut dense_readers = vec![false; plan.tensors.len()];
    for op in &plan.ops {
        let conv_input = match op {
            Op::Conv { x, .. } => Some(*x),
            _ => None,
        };
        for x in op.inputs() {
            if Some(x) != conv_input || !plan.tensors[x].spikes {
                dense_readers[x] = true;
            }
        }
    }
    let mut readers = vec![0usize; plan.tensors.len()];
    for op in &plan.ops {
        for x in op.inputs() {
            readers[x] += 1;
        }
    }
    let mut held = vec![0; plan.tensors.len()];
    for op in &plan.ops {
        if let Op::Lif { x, s, .. } = op {
            if let Some(Op::BatchNorm { bn, .. }) = plan.ops.iter().find(|o| o.output() == *x) {
                if readers[*x] == 1 && !dense_readers[*s] {
                    let c = plan.bn_channels[*bn];
                    held[*x] = 2 * c + batchnorm::stats_scratch_len(c);
                }
            }
        }
    }
    let mut dense = vec![0; plan.tensors.len()];
    let mut packed = vec![0; plan.tensors.len()];
    for (i, d) in plan.tensors.iter().enumerate() {
        let len = if d.per_time { n } else { b } * d.sample_len();
        if d.spikes {
            packed[i] = n * d.sample_len().div_ceil(32);
            if dense_readers[i] {
                dense[i] = len;
            }
        } else if i != plan.input && i != plan.logits && held[i] == 0 {
            // The input is uploaded once per submission; the logits go straight to the
            // outputs region.
            dense[i] = len;
        }
    }
    Storage {
        dense,
        packed,
        held,
    }
}

/// The tensors `op` reads: its inputs, and for a LIF fed by a fused batch norm
/// (`Storage::held`) also the batch norm's input, which the LIF kernel normalises.
fn reads(plan: &Plan, st: &Storage, op: &Op) -> Vec<usize> {
    let mut r = op.inputs();
    if let Op::Lif { x, .. } = op {
        if st.held[*x] > 0 {
            if let Some(Op::BatchNorm { x: bx, .. }) = plan.ops.iter().find(|o| o.output() == *x) {
                r.push(*bx);
            }
        }
    }
    r
}

/// Per tensor, the last op that [`reads`] it.
fn last_reads(plan: &Plan, st: &Storage) -> Vec<Option<usize>> {
    let mut last = vec![None; plan.tensors.len()];
    for (i, op) in plan.ops.iter().enumerate() {
        for x in reads(plan, st, op) {
            last[x] = Some(i);
        }
    }
    last
}

fn class_bytes(elems: usize) -> u64 {
    SizeClass::of(elems as u64 * 4).0
}

/// Device memory of one candidate's activations, weights and temporaries at its peak, in bytes
/// (size classes included), computed from the plan alone: the same lease sequence the executor
/// makes. Inputs and the outputs region are separate ([`input_bytes`], [`output_len`]).
pub fn memory_bytes(plan: &Plan, t: usize, b: usize) -> u64 {
    let st = storage(plan, t, b);
    let last = last_reads(plan, &st);
    let mut live = class_bytes(plan.num_params);
    let mut peak = live;
    for (i, op) in plan.ops.iter().enumerate() {
        let y = op.output();
        for len in [st.dense[y], st.packed[y], st.held[y]] {
            if len > 0 {
                live += class_bytes(len);
            }
        }
        if let Op::BatchNorm { bn, .. } = op {
            if st.held[y] == 0 {
                let c = plan.bn_channels[*bn];
                peak = peak.max(live + class_bytes(2 * c + batchnorm::stats_scratch_len(c)));
            }
        }
        peak = peak.max(live);
        let mut freed = reads(plan, &st, op);
        if last[y].is_none() {
            freed.push(y);
        }
        freed.sort_unstable();
        freed.dedup();
        for x in freed {
            if last[x].is_none_or(|l| l == i) {
                for len in [st.dense[x], st.packed[x], st.held[x]] {
                    if len > 0 {
                        live -= class_bytes(len);
                    }
                }
            }
        }
    }
    peak
}

/// Bytes of the uploaded input of one candidate.
pub fn input_bytes(plan: &Plan, t: usize, b: usize) -> u64 {
    class_bytes(t * b * plan.tensors[plan.input].sample_len())
}

/// u32 elements of one candidate's outputs region.
pub fn output_len(plan: &Plan, t: usize, b: usize, want: Outputs) -> usize {
    let mut len = b * plan.spec.classes;
    for (i, p) in plan.populations.iter().enumerate() {
        if want.counts() {
            len += t * b;
        }
        if want.tables_of(plan, i) {
            len += t * b * b + b * b;
        }
        if want.spikes {
            len += t * b * p.neurons.div_ceil(32);
        }
    }
    len
}

/// Where a candidate's outputs lie in its submission's outputs buffer.
#[derive(Clone, Copy)]
struct OutSlot {
    start: usize,
    /// Where the job's alongside words start.
    along_at: usize,
}

/// A job's forward output and its alongside words ([`Alongside`]): `None` where it asked for
/// none, an error where recording them failed.
pub(crate) type AlongOutput = (GpuOutput, Option<Result<Vec<u32>>>);

/// More work recorded into a forward job's submission right after its forward pass, its results
/// written into the same output buffer and read back with the forward outputs (the scoring
/// path records each candidate's gradient norm this way). `i` is the job's index in the
/// caller's list.
pub(crate) trait Alongside {
    /// Result words job `i` writes (0: nothing to record).
    fn words(&self, i: usize) -> usize;
    /// Device bytes its recording holds until the submission has run (for the memory budget).
    fn bytes(&self, i: usize) -> u64;
    /// Record job `i`'s work, its `words(i)` results into `out`; what it returns (the buffers
    /// the recording reads and writes) is kept until the submission has run.
    fn record(
        &mut self,
        rec: &mut Recorder<'_>,
        i: usize,
        out: View<'_>,
    ) -> Result<Box<dyn std::any::Any>>;
}

/// Runs the items `idx` together (`run` returns one result per item, or the error of the
/// whole); when that fails, each half on its own, down to single items, whose errors are
/// theirs. Each item's result lands in `results`.
pub(crate) fn retry_in_halves<T>(
    idx: &[usize],
    run: &mut dyn FnMut(&[usize]) -> Result<Vec<T>>,
    results: &mut [Option<Result<T>>],
) {
    match run(idx) {
        Ok(outs) => {
            for (&i, o) in idx.iter().zip(outs) {
                results[i] = Some(Ok(o));
            }
        }
        Err(e) if idx.len() == 1 => results[idx[0]] = Some(Err(e)),
        Err(_) => {
            let (a, z) = idx.split_at(idx.len() / 2);
            retry_in_halves(a, run, results);
            retry_in_halves(z, run, results);
        }
    }
}

/// No alongside work.
struct Nothing;

impl Alongside for Nothing {
    fn words(&self, _: usize) -> usize {
        0
    }
    fn bytes(&self, _: usize) -> u64 {
        0
    }
    fn record(
        &mut self,
        _: &mut Recorder<'_>,
        _: usize,
        _: View<'_>,
    ) -> Result<Box<dyn std::any::Any>> {
        Ok(Box::new(()))
    }
}

/// Runs plans on one device.
pub struct GpuExecutor {
    ctx: Arc<GpuContext>,
    arena: Arena<GpuAllocator>,
    pub lif: LifParams,
    pub eps: f32,
    /// Device bytes one submission may lease (activations of its largest candidate plus every
    /// candidate's inputs and outputs). A candidate larger than this alone still runs, alone.
    pub budget_bytes: u64,
    /// At most this many candidates per submission.
    pub max_per_submit: usize,
    /// Time each submission with GPU timestamps where the device has them.
    pub time_gpu: bool,
    submissions: u64,
    gpu_seconds: f64,
    timed_submissions: u64,
}

impl GpuExecutor {
    pub fn new(ctx: Arc<GpuContext>) -> Self {
        let arena = Arena::for_context(&ctx);
        // wgpu cannot read the device's memory size: a conservative default per device type,
        // overridable (MSENAS_GPU_BUDGET_MB or the field).
        let default_mb = if ctx.is_cpu() { 1024 } else { 8192 };
        let mb = std::env::var("MSENAS_GPU_BUDGET_MB")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(default_mb);
        GpuExecutor {
            ctx,
            arena,
            lif: LifParams::default(),
            eps: 1e-5,
            budget_bytes: mb << 20,
            max_per_submit: 64,
            time_gpu: false,
            submissions: 0,
            gpu_seconds: 0.0,
            timed_submissions: 0,
        }
    }

    #[cfg(any(test, feature = "internals"))]
    pub fn ctx(&self) -> &GpuContext {
        &self.ctx
    }

    #[cfg(any(test, feature = "internals"))]
    /// Submissions made so far.
    pub fn submissions(&self) -> u64 {
        self.submissions
    }

    #[cfg(any(test, feature = "internals"))]
    /// GPU seconds of the timed submissions so far (timestamp queries) and how many there were;
    /// zero where the device has no timestamps or `time_gpu` is off.
    pub fn gpu_time(&self) -> (f64, u64) {
        (self.gpu_seconds, self.timed_submissions)
    }

    #[cfg(any(test, feature = "internals"))]
    pub fn arena_stats(&self) -> super::arena::ArenaStats {
        self.arena.stats()
    }

    /// Run one plan on `input` (`[T, B, C, H, W]` or `[B, C, H, W]`).
    pub fn forward(
        &mut self,
        plan: &Plan,
        weight_seed: u64,
        input: &[f32],
        t: usize,
        b: usize,
        want: Outputs,
    ) -> Result<GpuOutput> {
        let job = Job {
            plan,
            weight_seed,
            input,
        };
        self.run_many(&[job], t, b, want)
            .pop()
            .expect("one result per job")
    }

    /// Run every job (same `t` and `b`), in as few submissions as the memory budget allows, one
    /// read-back per submission. A job that cannot run (too big for the device's buffers, a bad
    /// input length) gets its own error; the others still run. A submission that fails is
    /// retried in halves down to single jobs, so each error lands on its job.
    pub fn run_many(
        &mut self,
        jobs: &[Job<'_>],
        t: usize,
        b: usize,
        want: Outputs,
    ) -> Vec<Result<GpuOutput>> {
        self.run_many_along(jobs, t, b, want, &mut Nothing)
            .into_iter()
            .map(|r| r.map(|(out, _)| out))
            .collect()
    }

    /// [`GpuExecutor::run_many`] with more work recorded into each job's submission after its
    /// forward pass ([`Alongside`]), its result words read back with the forward outputs: one
    /// read-back per submission for both. Each job's result carries its alongside words
    /// (`None` where it asked for none, an error where its recording failed; the forward output
    /// stands either way).
    pub(crate) fn run_many_along(
        &mut self,
        jobs: &[Job<'_>],
        t: usize,
        b: usize,
        want: Outputs,
        along: &mut dyn Alongside,
    ) -> Vec<Result<AlongOutput>> {
        let mut results: Vec<Option<Result<AlongOutput>>> = (0..jobs.len()).map(|_| None).collect();
        let max_binding = self.ctx.limits.max_storage_buffer_binding_size;
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let (mut peak, mut extra, mut out_bytes) = (0u64, 0u64, 0u64);
        for (i, job) in jobs.iter().enumerate() {
            if let Err(e) = self.check(job, t, b, want) {
                results[i] = Some(Err(e));
                continue;
            }
            let mem = memory_bytes(job.plan, t, b);
            // Inputs and the alongside work's buffers live until the submission has run.
            let inb = input_bytes(job.plan, t, b) + along.bytes(i);
            let outb = (output_len(job.plan, t, b, want) + along.words(i)) as u64 * 4;
            let fits = |g: &Vec<usize>| {
                !g.is_empty()
                    && g.len() < self.max_per_submit
                    && peak.max(mem) + extra + inb + SizeClass::of(out_bytes + outb).0
                        <= self.budget_bytes
                    && out_bytes + outb <= max_binding
            };
            match groups.last_mut() {
                Some(g) if fits(g) => {
                    g.push(i);
                    peak = peak.max(mem);
                    extra += inb;
                    out_bytes += outb;
                }
                _ => {
                    groups.push(vec![i]);
                    (peak, extra, out_bytes) = (mem, inb, outb);
                }
            }
        }
        for g in groups {
            retry_in_halves(
                &g,
                &mut |idx| self.run_group(jobs, idx, t, b, want, along),
                &mut results,
            );
            // Free buffers of sizes this generation no longer uses, when they pile up.
            if self.arena.stats().held_bytes > self.budget_bytes {
                self.arena.trim();
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every job has a result"))
            .collect()
    }

    /// What can be checked before recording: input length, grid and binding limits.
    fn check(&self, job: &Job<'_>, t: usize, b: usize, want: Outputs) -> Result<()> {
        let plan = job.plan;
        let frame = plan.tensors[plan.input].sample_len();
        if job.input.len() != b * frame && job.input.len() != t * b * frame {
            return Err(Error::input(format!(
                "gpu forward: input of {} values is neither [B, C, H, W] = {} nor [T, B, C, H, W] = {}",
                job.input.len(),
                b * frame,
                t * b * frame
            )));
        }
        if t == 0 || b == 0 {
            return Err(Error::input("gpu forward: T and B must be positive"));
        }
        let limit = self.ctx.limits.max_storage_buffer_binding_size;
        let st = storage(plan, t, b);
        for (i, d) in plan.tensors.iter().enumerate() {
            let bytes = st.dense[i].max(st.packed[i]) as u64 * 4;
            if bytes > limit {
                return Err(Error::Gpu(format!(
                    "tensor `{}` needs {bytes} B, over the device's {limit} B per binding \
                     (lower the batch or T)",
                    d.name
                )));
            }
        }
        let inb = (t * b * frame) as u64 * 4;
        let outb = output_len(plan, t, b, want) as u64 * 4;
        if inb > limit || outb > limit || (plan.num_params as u64) * 4 > limit {
            return Err(Error::Gpu(format!(
                "input ({inb} B), outputs ({outb} B) or weights exceed the {limit} B binding limit"
            )));
        }
        if t * b > 65_535 || b > 65_535 {
            return Err(Error::Gpu(format!(
                "T * B = {} images exceed the 65,535 grid",
                t * b
            )));
        }
        Ok(())
    }

    /// One submission: the jobs `idx` (with their alongside work), one read-back.
    fn run_group(
        &mut self,
        all: &[Job<'_>],
        idx: &[usize],
        t: usize,
        b: usize,
        want: Outputs,
        along: &mut dyn Alongside,
    ) -> Result<Vec<AlongOutput>> {
        let ctx = self.ctx.clone();
        let usage = storage_usage();
        let jobs: Vec<Job<'_>> = idx.iter().map(|&i| all[i]).collect();
        let mut slots = Vec::with_capacity(jobs.len());
        let mut total = 0;
        for (j, &i) in jobs.iter().zip(idx) {
            let start = total;
            total += output_len(j.plan, t, b, want);
            let along_at = total;
            total += along.words(i);
            slots.push(OutSlot { start, along_at });
        }
        let timed = self.time_gpu && Recorder::can_time(&ctx);
        let stamps_at = total;
        if timed {
            total += 4;
        }
        let outputs = self.arena.take(total as u64 * 4, usage)?;
        // Inputs: one upload per distinct input slice (a generation shares its probe batch).
        let mut inputs: Vec<(*const f32, usize, Lease<wgpu::Buffer>)> = Vec::new();
        let mut input_of = Vec::with_capacity(jobs.len());
        let mut result = Ok(());
        for j in &jobs {
            let key = (j.input.as_ptr(), j.input.len());
            if let Some(k) = inputs.iter().position(|(p, l, _)| (*p, *l) == key) {
                input_of.push(k);
                continue;
            }
            let frame = j.plan.tensors[j.plan.input].sample_len();
            let data = if j.input.len() == b * frame {
                j.input.repeat(t)
            } else {
                j.input.to_vec()
            };
            match self.arena.take(data.len() as u64 * 4, usage) {
                Ok(l) => {
                    ctx.write(View::new(&l.buffer, 0, data.len()), &data);
                    inputs.push((key.0, key.1, l));
                    input_of.push(inputs.len() - 1);
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let mut rec = Recorder::new(&ctx);
        // What the alongside work keeps alive until the submission has run, and its errors.
        let mut kept: Vec<Box<dyn std::any::Any>> = Vec::new();
        let mut along_err: Vec<Option<Error>> = (0..jobs.len()).map(|_| None).collect();
        if result.is_ok() {
            for (k, j) in jobs.iter().enumerate() {
                let input = View::new(
                    &inputs[input_of[k]].2.buffer,
                    0,
                    t * b * j.plan.tensors[j.plan.input].sample_len(),
                );
                let out = View::new(
                    &outputs.buffer,
                    slots[k].start,
                    output_len(j.plan, t, b, want),
                );
                if let Err(e) = self.record(&mut rec, j, input, out, t, b, want) {
                    result = Err(e);
                    break;
                }
                let words = along.words(idx[k]);
                if words > 0 {
                    let view = View::new(&outputs.buffer, slots[k].along_at, words);
                    match along.record(&mut rec, idx[k], view) {
                        Ok(keep) => kept.push(keep),
                        Err(e) => along_err[k] = Some(e),
                    }
                }
            }
        }
        let read = result.and_then(|()| {
            let stamps = timed.then(|| View::new(&outputs.buffer, stamps_at, 4));
            rec.submit_timed(stamps)?;
            self.submissions += 1;
            ctx.read::<u32>(View::new(&outputs.buffer, 0, total))
        });
        drop(kept);
        for (_, _, l) in inputs {
            self.arena.give(l);
        }
        self.arena.give(outputs);
        let words = read?;
        if timed {
            let w = &words[stamps_at..stamps_at + 4];
            let begin = w[0] as u64 | (w[1] as u64) << 32;
            let end = w[2] as u64 | (w[3] as u64) << 32;
            let ns = end.saturating_sub(begin) as f64 * ctx.queue.get_timestamp_period() as f64;
            self.gpu_seconds += ns * 1e-9;
            self.timed_submissions += 1;
        }
        Ok(jobs
            .iter()
            .zip(&slots)
            .zip(idx)
            .zip(along_err)
            .map(|(((j, s), &i), err)| {
                let out = parse(j.plan, t, b, want, &words[s.start..]);
                let n = along.words(i);
                let extra = match err {
                    Some(e) => Some(Err(e)),
                    None if n == 0 => None,
                    None => Some(Ok(words[s.along_at..s.along_at + n].to_vec())),
                };
                (out, extra)
            })
            .collect())
    }

    /// Record one candidate. Every lease taken here is given back before returning, on success
    /// and on error.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        rec: &mut Recorder<'_>,
        job: &Job<'_>,
        input: View<'_>,
        out: View<'_>,
        t: usize,
        b: usize,
        want: Outputs,
    ) -> Result<()> {
        let plan = job.plan;
        let nt = plan.tensors.len();
        let mut dense: Vec<Option<Lease<wgpu::Buffer>>> = (0..nt).map(|_| None).collect();
        let mut packed: Vec<Option<Lease<wgpu::Buffer>>> = (0..nt).map(|_| None).collect();
        let mut held: Vec<Option<Lease<wgpu::Buffer>>> = (0..nt).map(|_| None).collect();
        let mut params: Option<Lease<wgpu::Buffer>> = None;
        let r = self.record_ops(
            rec,
            job,
            input,
            out,
            t,
            b,
            want,
            [&mut dense, &mut packed, &mut held],
            &mut params,
        );
        for l in dense
            .into_iter()
            .chain(packed)
            .chain(held)
            .chain([params])
            .flatten()
        {
            self.arena.give(l);
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn record_ops(
        &mut self,
        rec: &mut Recorder<'_>,
        job: &Job<'_>,
        input: View<'_>,
        out: View<'_>,
        t: usize,
        b: usize,
        want: Outputs,
        tables: [&mut [Option<Lease<wgpu::Buffer>>]; 3],
        params: &mut Option<Lease<wgpu::Buffer>>,
    ) -> Result<()> {
        // Per tensor: its dense buffer, its packed record, the statistics a fused batch norm
        // holds for its LIF (`Storage::held`).
        let [dense, packed, held] = tables;
        let plan = job.plan;
        let n = t * b;
        let usage = storage_usage();
        let st = storage(plan, t, b);
        let last = last_reads(plan, &st);

        // Weights on the device: the generator at each parameter's flat indices.
        let pl = self.arena.take(plan.num_params.max(1) as u64 * 4, usage)?;
        let pbuf = pl.buffer.clone();
        *params = Some(pl);
        let stream = crate::cpu::stream(job.weight_seed, plan.key_hash);
        for p in &plan.params {
            let v = View::new(&pbuf, p.offset, p.len);
            match p.init {
                ParamInit::Uniform { bound } => {
                    rng::uniform_fill(rec, stream, p.offset as u32, bound, v)?
                }
                ParamInit::Const { value } => rng::constant_fill(rec, value, v)?,
            }
        }
        let param = |id: usize| {
            let p = &plan.params[id];
            View::new(&pbuf, p.offset, p.len)
        };

        // Outputs region: logits, then per population counts, stats, spikes.
        let classes = plan.spec.classes;
        let logits_view = out.slice(0, b * classes);
        let mut cursor = b * classes;
        let mut take_out = |len: usize| {
            let v = out.slice(cursor, len);
            cursor += len;
            v
        };
        struct PopOut<'v> {
            counts: Option<View<'v>>,
            stats: Option<(View<'v>, View<'v>)>,
            spikes: Option<View<'v>>,
        }
        let pop_out: Vec<PopOut<'_>> = plan
            .populations
            .iter()
            .enumerate()
            .map(|(i, p)| PopOut {
                counts: want.counts().then(|| take_out(t * b)),
                stats: want
                    .tables_of(plan, i)
                    .then(|| (take_out(t * b * b), take_out(b * b))),
                spikes: want
                    .spikes
                    .then(|| take_out(t * b * p.neurons.div_ceil(32))),
            })
            .collect();

        for (i, op) in plan.ops.iter().enumerate() {
            let y = op.output();
            for (table, len) in [
                (&mut *dense, st.dense[y]),
                (&mut *packed, st.packed[y]),
                (&mut *held, st.held[y]),
            ] {
                if len > 0 {
                    table[y] = Some(self.arena.take(len as u64 * 4, usage)?);
                }
            }
            let dview = |id: usize| -> Result<View<'_>> {
                if id == plan.input {
                    return Ok(input);
                }
                let l = dense[id].as_ref().ok_or_else(|| {
                    Error::Gpu(format!(
                        "tensor `{}` has no dense buffer",
                        plan.tensors[id].name
                    ))
                })?;
                Ok(View::new(&l.buffer, 0, st.dense[id]))
            };
            let pview = |id: usize| -> Result<View<'_>> {
                let l = packed[id].as_ref().ok_or_else(|| {
                    Error::Gpu(format!(
                        "tensor `{}` has no packed buffer",
                        plan.tensors[id].name
                    ))
                })?;
                Ok(View::new(&l.buffer, 0, st.packed[id]))
            };
            let yd = &plan.tensors[y];
            match op {
                Op::Lif { x, s, pop } => {
                    let neurons = plan.populations[*pop].neurons;
                    let f32_spikes = if st.dense[*s] > 0 {
                        Some(dview(*s)?)
                    } else {
                        None
                    };
                    let pk = pview(*s)?;
                    let o = &pop_out[*pop];
                    // Counts without the pair statistics come from the LIF kernel itself
                    // (the batch-norm-fed kernel has no binding left for them): `counted`.
                    let counted = match (&held[*x], plan.ops.iter().find(|o| o.output() == *x)) {
                        // Fed by a batch norm that was not applied: apply it here.
                        (
                            Some(stats),
                            Some(Op::BatchNorm {
                                x: bx,
                                gamma,
                                beta,
                                gate,
                                ..
                            }),
                        ) => {
                            let c = plan.tensors[*x].c;
                            let sv = View::new(&stats.buffer, 0, 2 * c);
                            let bn = lif::BnInput {
                                hw: plan.tensors[*x].hw(),
                                mean: sv.slice(0, c),
                                var: sv.slice(c, c),
                                gamma: param(*gamma),
                                beta: param(*beta),
                                eps: self.eps,
                                gate: cpu_gate(*gate),
                            };
                            lif::lif_bn(rec, dview(*bx)?, t, b, neurons, self.lif, bn, pk)?;
                            false
                        }
                        _ => {
                            let counts = if o.stats.is_none() { o.counts } else { None };
                            lif::lif(
                                rec,
                                dview(*x)?,
                                t,
                                b,
                                neurons,
                                self.lif,
                                f32_spikes,
                                pk,
                                counts,
                            )?;
                            counts.is_some()
                        }
                    };
                    if let (Some(counts), Some((hamming, dots))) = (o.counts, o.stats) {
                        rdm::population_stats(
                            rec,
                            pk,
                            neurons,
                            t,
                            b,
                            rdm::StatsViews {
                                hamming,
                                counts,
                                summed_dot: dots,
                            },
                            false,
                        )?;
                    } else if let (Some(counts), false) = (o.counts, counted) {
                        rdm::spike_counts(rec, pk, neurons, t, b, counts)?;
                    }
                    if let Some(dst) = o.spikes {
                        rec.copy(pk, dst)?;
                    }
                }
                Op::Conv { x, weight, .. } => {
                    let xd = &plan.tensors[*x];
                    let shape = ConvShape::of_op(plan, op, n).expect("a conv op");
                    if xd.spikes {
                        conv::conv2d_spiking(rec, pview(*x)?, param(*weight), &shape, dview(y)?)?;
                    } else {
                        conv::conv2d(rec, dview(*x)?, param(*weight), &shape, dview(y)?)?;
                    }
                }
                Op::BatchNorm {
                    x,
                    gamma,
                    beta,
                    gate,
                    ..
                } => {
                    let c = yd.c;
                    let hw = yd.hw();
                    // Mean and var, then the per-slice pairs of a channel cut into slices.
                    let scratch = batchnorm::stats_scratch_len(c);
                    if let Some(stats) = &held[y] {
                        // Applied by the LIF kernel that reads it (`Storage::held`).
                        let sv = View::new(&stats.buffer, 0, 2 * c + scratch);
                        batchnorm::bn_stats(
                            rec,
                            dview(*x)?,
                            n,
                            c,
                            hw,
                            sv.slice(0, c),
                            sv.slice(c, c),
                            sv.slice(2 * c, scratch),
                        )?;
                    } else {
                        let stats = self.arena.take((2 * c + scratch) as u64 * 4, usage)?;
                        let sv = View::new(&stats.buffer, 0, 2 * c + scratch);
                        let r = batchnorm::bn_stats(
                            rec,
                            dview(*x)?,
                            n,
                            c,
                            hw,
                            sv.slice(0, c),
                            sv.slice(c, c),
                            sv.slice(2 * c, scratch),
                        )
                        .and_then(|()| {
                            batchnorm::bn_apply(
                                rec,
                                dview(*x)?,
                                n,
                                c,
                                hw,
                                sv.slice(0, c),
                                sv.slice(c, c),
                                param(*gamma),
                                param(*beta),
                                self.eps,
                                cpu_gate(*gate),
                                dview(y)?,
                            )
                        });
                        self.arena.give(stats);
                        r?;
                    }
                }
                Op::Add { xs, .. } => {
                    let yv = dview(y)?;
                    rec.copy(dview(xs[0])?, yv)?;
                    for &x in &xs[1..] {
                        elementwise::add_into(rec, yv, dview(x)?)?;
                    }
                }
                Op::Concat { xs, .. } => {
                    let parts = xs
                        .iter()
                        .map(|&x| Ok((dview(x)?, plan.tensors[x].c)))
                        .collect::<Result<Vec<_>>>()?;
                    elementwise::concat_channels(rec, &parts, n, yd.hw(), dview(y)?)?;
                }
                Op::AvgPool { x, .. } => {
                    let xd = &plan.tensors[*x];
                    elementwise::global_avg_pool(rec, dview(*x)?, n, xd.c, xd.hw(), dview(y)?)?;
                }
                Op::Linear {
                    x, weight, bias, ..
                } => {
                    let in_f = plan.tensors[*x].sample_len();
                    elementwise::linear(
                        rec,
                        dview(*x)?,
                        n,
                        in_f,
                        param(*weight),
                        param(*bias),
                        yd.c,
                        dview(y)?,
                    )?;
                }
                Op::MeanTime { x, .. } => {
                    let dst = if y == plan.logits {
                        logits_view
                    } else {
                        dview(y)?
                    };
                    elementwise::mean_time(rec, dview(*x)?, t, b * yd.c, dst)?;
                }
            }
            // Give back what no later op reads (and outputs nobody reads).
            let mut freed = reads(plan, &st, op);
            if last[y].is_none() {
                freed.push(y);
            }
            for x in freed {
                if last[x].is_none_or(|l| l == i) {
                    for table in [&mut *dense, &mut *packed, &mut *held] {
                        if let Some(l) = table[x].take() {
                            self.arena.give(l);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The kernels' form of a plan's sign gate.
fn cpu_gate(g: Gate) -> batchnorm::Gate {
    match g {
        Gate::None => batchnorm::Gate::None,
        Gate::Excitatory => batchnorm::Gate::Excitatory,
        Gate::Inhibitory => batchnorm::Gate::Inhibitory,
    }
}

/// One candidate's outputs from its region of the read-back words.
fn parse(plan: &Plan, t: usize, b: usize, want: Outputs, words: &[u32]) -> GpuOutput {
    let classes = plan.spec.classes;
    let mut out = GpuOutput {
        logits: words[..b * classes]
            .iter()
            .map(|&w| f32::from_bits(w))
            .collect(),
        ..Default::default()
    };
    let mut at = b * classes;
    let mut next = |len: usize| {
        let s = &words[at..at + len];
        at += len;
        s
    };
    for (i, p) in plan.populations.iter().enumerate() {
        let counts = if want.counts() {
            next(t * b).to_vec()
        } else {
            Vec::new()
        };
        if want.counts() {
            let total: u64 = counts.iter().map(|&c| c as u64).sum();
            out.spike_counts.push(total);
            // The CPU reference's f32 division, so scores built on rates agree bit for bit.
            out.firing_rates
                .push((total as f32 / (t * b * p.neurons).max(1) as f32) as f64);
        }
        if want.stats {
            let (hamming_per_t, summed_dot) = if want.tables_of(plan, i) {
                let h = next(t * b * b).to_vec();
                (h, next(b * b).iter().map(|&v| v as u64).collect())
            } else {
                (Vec::new(), Vec::new())
            };
            out.stats.push(PopulationStats {
                name: p.name.clone(),
                neurons: p.neurons,
                t,
                b,
                hamming_per_t,
                counts,
                summed_dot,
            });
        }
        if want.spikes {
            out.spikes
                .push(next(t * b * p.neurons.div_ceil(32)).to_vec());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failing group splits in halves until the culprits stand alone: the others get their
    /// results, the culprits their own errors, and the groups tried are the halving's.
    #[test]
    fn a_failing_group_is_retried_in_halves() {
        let bad = [2usize, 7];
        let mut tried: Vec<Vec<usize>> = Vec::new();
        let mut results: Vec<Option<Result<usize>>> = (0..8).map(|_| None).collect();
        let idx: Vec<usize> = (0..8).collect();
        retry_in_halves(
            &idx,
            &mut |g| {
                tried.push(g.to_vec());
                match g.iter().find(|i| bad.contains(i)) {
                    Some(i) => Err(Error::Gpu(format!("job {i} out of memory"))),
                    None => Ok(g.iter().map(|i| i * 10).collect()),
                }
            },
            &mut results,
        );
        let tried: Vec<String> = tried.iter().map(|g| format!("{g:?}")).collect();
        assert_eq!(
            tried,
            [
                "[0, 1, 2, 3, 4, 5, 6, 7]",
                "[0, 1, 2, 3]",
                "[0, 1]",
                "[2, 3]",
                "[2]",
                "[3]",
                "[4, 5, 6, 7]",
                "[4, 5]",
                "[6, 7]",
                "[6]",
                "[7]"
            ]
        );
        for (i, r) in results.into_iter().enumerate() {
            match r.expect("every item has a result") {
                Ok(v) => assert!(!bad.contains(&i) && v == i * 10),
                Err(e) => {
                    assert!(bad.contains(&i));
                    assert_eq!(e.to_string(), format!("gpu: job {i} out of memory"));
                }
            }
        }
    }
}
