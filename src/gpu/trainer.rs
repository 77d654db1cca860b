//! Training on the device: the twin of the CPU trainer's step (`train::backprop::forward_tape`,
//! the loss, `train::backprop::backward`, the batch-norm running-statistics update and
//! `train::optim::AdamW::update`), with the parameters, the AdamW moments, the decay mask and the
//! running statistics resident on the device.
//!
//! One optimiser step is one submission and one read-back (the loss of every row and the
//! logits): the batch is uploaded, the forward pass keeps every tensor as dense f32 (LIF
//! populations through `lif_train`, which also keeps the membrane before the reset; convolutions
//! read spikes as dense 0/1 values), the loss kernel writes `dL/dlogits`, and the reverse pass
//! walks `plan.ops` backwards as the CPU does: the gradient of a tensor read by several ops is
//! written by its first contribution (in reverse order) and the later ones are added to it;
//! parameter gradients land at `ParamDesc::offset` in one gradient buffer. Every buffer is sized
//! once for the largest batch and reused; tensor gradients share buffers whose lifetimes in the
//! reverse pass do not overlap (assigned once, at construction).

use std::borrow::Cow;
use std::sync::Arc;

use super::arena::{storage_usage, Arena};
use super::kernels::{batchnorm, conv, elementwise, grad, reduce, rng, View};
use super::{GpuContext, Recorder};
use crate::cpu::elementwise::sum_squares_groups;
use crate::cpu::grad::Loss;
use crate::cpu::grad::Surrogate;
use crate::cpu::optim::AdamW;
use crate::cpu::{bn_len, unflatten_bn};
use crate::cpu::{BnRunning, ConvShape, Gate as CpuGate, LifParams};
use crate::plan::{Op, ParamInit, Plan};
use crate::{Error, Result};

/// The fixed settings of a training run.
#[derive(Clone, Copy, Debug)]
pub struct TrainSettings {
    pub loss: Loss,
    pub label_smoothing: f32,
    pub surrogate: Surrogate,
    pub lif: LifParams,
    /// Batch-norm epsilon and running-statistics momentum.
    pub eps: f32,
    pub momentum: f32,
    pub weight_decay: f32,
}

use crate::cpu::optim::TrainState;

/// What one step brings back.
#[derive(Clone, Debug)]
pub struct StepOutput {
    /// The batch loss as the CPU reference defines it (mean over rows for cross-entropy, mean
    /// over all entries for MSE), summed in f64 from the per-row values.
    pub loss: f64,
    /// `[B, classes]` time-averaged logits of the forward pass.
    pub logits: Vec<f32>,
}

/// A plan being trained on one device.
pub struct GpuTrainer {
    ctx: Arc<GpuContext>,
    plan: Plan,
    t: usize,
    cap: usize,
    s: TrainSettings,
    beta1: f32,
    beta2: f32,
    adam_eps: f32,
    step: u64,
    params: wgpu::Buffer,
    grad: wgpu::Buffer,
    adam_m: wgpu::Buffer,
    adam_v: wgpu::Buffer,
    /// The AdamW decay mask (u32 0/1 per parameter), written before the first step: a trainer
    /// that never steps (the gradient scores) uploads none.
    decay: wgpu::Buffer,
    decay_written: bool,
    /// Running statistics: every layer's mean (flattened in layer order), then every variance.
    running: wgpu::Buffer,
    /// Offset of each batch-norm layer in a flattened statistics vector.
    bn_off: Vec<usize>,
    /// Batch statistics of the last training forward: layer i's mean at `2 * bn_off[i]`, its
    /// variance right after.
    stats: wgpu::Buffer,
    /// Forward values of every tensor (the input included), for `cap` samples.
    vals: Vec<wgpu::Buffer>,
    /// Membrane before the reset, per population.
    v_pre: Vec<wgpu::Buffer>,
    /// Gradient buffer of every tensor that receives one (shared where lifetimes allow).
    grads: Vec<Option<wgpu::Buffer>>,
    /// Second and later contributions to a tensor's gradient are computed here, then added.
    scratch: wgpu::Buffer,
    labels: wgpu::Buffer,
    loss_rows: wgpu::Buffer,
    /// The step's read-back: logits `[B, K]`, then the loss of every row.
    out: wgpu::Buffer,
    /// The state read-back: params, m, v, running means, running variances.
    state_out: wgpu::Buffer,
}

fn tensor_len(plan: &Plan, id: usize, t: usize, b: usize) -> usize {
    let d = &plan.tensors[id];
    (if d.per_time { t * b } else { b }) * d.sample_len()
}

/// Which tensors receive a gradient: the logits, and every input (but the network's input) of
/// an op whose output does.
fn gradient_tensors(plan: &Plan) -> Vec<bool> {
    let mut has = vec![false; plan.tensors.len()];
    has[plan.logits] = true;
    for op in plan.ops.iter().rev() {
        if has[op.output()] {
            for x in op.inputs() {
                if x != plan.input {
                    has[x] = true;
                }
            }
        }
    }
    has
}

/// `||mean g||^2` from the partial sums of squares of the summed gradient of `m` mini-batches
/// (f64 sum over `m^2`).
pub fn norm2_of_partials(partials: &[f32], m: usize) -> f64 {
    let m = m.max(1) as f64;
    partials.iter().map(|&v| f64::from(v)).sum::<f64>() / (m * m)
}

impl GpuTrainer {
    /// A trainer for `plan` at `t` time steps and batches of up to `max_batch` samples, with the
    /// parameters `init` (AdamW moments zero, running statistics fresh) until
    /// [`GpuTrainer::write_state`] replaces them.
    pub fn new(
        ctx: Arc<GpuContext>,
        plan: &Plan,
        t: usize,
        max_batch: usize,
        settings: TrainSettings,
        init: &[f32],
    ) -> Result<GpuTrainer> {
        // (`write_state` checks `init` against the plan.)
        let mut tr = Self::alloc(ctx, plan, t, max_batch, settings)?;
        let adam = AdamW::new(plan, settings.weight_decay);
        tr.write_state(&TrainState {
            params: init.to_vec(),
            adam_m: adam.m,
            adam_v: adam.v,
            step: 0,
            bn: BnRunning::new(plan),
        })?;
        Ok(tr)
    }

    /// A trainer as [`GpuTrainer::new`] makes it, whose parameters are the counter-based
    /// initial weights of `weight_seed` once [`GpuTrainer::record_init_weights`] has run: they
    /// are generated on the device by the forward executor's generator (bit-identical with
    /// `cpu::init_params`), so neither the host generator nor a weight upload is needed. The
    /// AdamW moments start at zero (wgpu zeroes new buffers) and the running statistics fresh.
    pub fn with_seed(
        ctx: Arc<GpuContext>,
        plan: &Plan,
        t: usize,
        max_batch: usize,
        settings: TrainSettings,
    ) -> Result<GpuTrainer> {
        let tr = Self::alloc(ctx, plan, t, max_batch, settings)?;
        tr.write_running(&BnRunning::new(plan))?;
        Ok(tr)
    }

    /// Records the generation of the initial weights of `weight_seed` into the parameters
    /// (see [`GpuTrainer::with_seed`]).
    pub fn record_init_weights(&self, rec: &mut Recorder<'_>, weight_seed: u64) -> Result<()> {
        let stream = crate::cpu::stream(weight_seed, self.plan.key_hash);
        for p in &self.plan.params {
            let v = View::new(&self.params, p.offset, p.len);
            match p.init {
                ParamInit::Uniform { bound } => {
                    rng::uniform_fill(rec, stream, p.offset as u32, bound, v)?
                }
                ParamInit::Const { value } => rng::constant_fill(rec, value, v)?,
            }
        }
        Ok(())
    }

    /// Every buffer; parameters, moments, statistics and the decay mask not yet written.
    fn alloc(
        ctx: Arc<GpuContext>,
        plan: &Plan,
        t: usize,
        max_batch: usize,
        settings: TrainSettings,
    ) -> Result<GpuTrainer> {
        if t == 0 || max_batch == 0 {
            return Err(Error::input(
                "gpu trainer: T and the batch must be positive",
            ));
        }
        if t * max_batch > 65_535 {
            return Err(Error::Gpu(format!(
                "T * batch = {} images exceed the 65,535 grid (lower the batch)",
                t * max_batch
            )));
        }
        let cap = max_batch;
        let np = plan.num_params.max(1);
        let nb = bn_len(plan);
        let k = plan.spec.classes;
        let storage = |label: &str, len: usize| -> Result<wgpu::Buffer> {
            ctx.storage(label, len).map_err(|e| {
                Error::Gpu(format!(
                    "{e} (training keeps every activation of a batch of {cap} at T = {t}; \
                     lower the batch size)"
                ))
            })
        };
        let params = storage("params", np)?;
        let grad = storage("grad", np)?;
        let adam_m = storage("adam m", np)?;
        let adam_v = storage("adam v", np)?;
        let decay = storage("decay", np)?;
        let running = storage("bn running", 2 * nb.max(1))?;
        // Batch statistics, then the slices' scratch for the widest batch norm.
        let stats = storage(
            "bn batch stats",
            2 * nb.max(1) + batchnorm::stats_scratch_len(max_bn_channels(plan)),
        )?;
        let mut bn_off = Vec::with_capacity(plan.bn_channels.len());
        let mut at = 0;
        for &c in &plan.bn_channels {
            bn_off.push(at);
            at += c;
        }
        let vals = (0..plan.tensors.len())
            .map(|id| storage(&plan.tensors[id].name, tensor_len(plan, id, t, cap).max(1)))
            .collect::<Result<Vec<_>>>()?;
        let v_pre = plan
            .populations
            .iter()
            .map(|p| {
                let len = tensor_len(plan, p.input, t, cap);
                storage("v_pre", len.max(1))
            })
            .collect::<Result<Vec<_>>>()?;
        let grads = Self::assign_gradients(&ctx, plan, t, cap)?;
        let max_len = (0..plan.tensors.len())
            .map(|id| tensor_len(plan, id, t, cap))
            .max()
            .unwrap_or(1);
        let scratch = storage("grad scratch", max_len.max(1))?;
        let labels = storage("labels", cap)?;
        let loss_rows = storage("loss rows", cap)?;
        let out = storage("step out", cap * k + cap)?;
        let state_out = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("state out"),
            size: ((3 * np + 2 * nb).max(1) * 4) as u64,
            usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let adam = AdamW::new(plan, settings.weight_decay);
        Ok(GpuTrainer {
            ctx,
            plan: plan.clone(),
            t,
            cap,
            s: settings,
            beta1: adam.beta1,
            beta2: adam.beta2,
            adam_eps: adam.eps,
            step: 0,
            params,
            grad,
            adam_m,
            adam_v,
            decay,
            decay_written: false,
            running,
            bn_off,
            stats,
            vals,
            v_pre,
            grads,
            scratch,
            labels,
            loss_rows,
            out,
            state_out,
        })
    }

    /// Gradient buffers by lifetime in the reverse pass: a tensor's gradient lives from its
    /// first contribution to the end of its producer's backward step. The same walk as
    /// [`GpuTrainer::record_backward`], leasing from a pool so disjoint lifetimes share buffers.
    fn assign_gradients(
        ctx: &GpuContext,
        plan: &Plan,
        t: usize,
        cap: usize,
    ) -> Result<Vec<Option<wgpu::Buffer>>> {
        let has = gradient_tensors(plan);
        let mut arena = Arena::for_context(ctx);
        let usage = storage_usage();
        let bytes = |id: usize| (tensor_len(plan, id, t, cap).max(1) * 4) as u64;
        let mut leases: Vec<Option<_>> = (0..plan.tensors.len()).map(|_| None).collect();
        let mut bufs: Vec<Option<wgpu::Buffer>> = vec![None; plan.tensors.len()];
        let l = arena.take(bytes(plan.logits), usage)?;
        bufs[plan.logits] = Some(l.buffer.clone());
        leases[plan.logits] = Some(l);
        for op in plan.ops.iter().rev() {
            let y = op.output();
            if !has[y] {
                continue;
            }
            for x in op.inputs() {
                if has[x] && leases[x].is_none() {
                    let l = arena.take(bytes(x), usage)?;
                    bufs[x] = Some(l.buffer.clone());
                    leases[x] = Some(l);
                }
            }
            if let Some(l) = leases[y].take() {
                arena.give(l);
            }
        }
        Ok(bufs)
    }

    #[cfg(any(test, feature = "internals"))]
    pub fn ctx(&self) -> &GpuContext {
        &self.ctx
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The largest batch the buffers hold.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    #[cfg(any(test, feature = "internals"))]
    /// AdamW steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    fn val(&self, id: usize, b: usize) -> View<'_> {
        View::new(&self.vals[id], 0, tensor_len(&self.plan, id, self.t, b))
    }

    fn gview(&self, id: usize, b: usize) -> View<'_> {
        let buf = self.grads[id]
            .as_ref()
            .expect("a gradient buffer for every tensor that receives a gradient");
        View::new(buf, 0, tensor_len(&self.plan, id, self.t, b))
    }

    fn param(&self, id: usize) -> View<'_> {
        let p = &self.plan.params[id];
        View::new(&self.params, p.offset, p.len)
    }

    fn gparam(&self, id: usize) -> View<'_> {
        let p = &self.plan.params[id];
        View::new(&self.grad, p.offset, p.len)
    }

    fn batch_stats(&self, bn: usize) -> (View<'_>, View<'_>) {
        let c = self.plan.bn_channels[bn];
        let at = 2 * self.bn_off[bn];
        (
            View::new(&self.stats, at, c),
            View::new(&self.stats, at + c, c),
        )
    }

    /// The tail of the batch-statistics buffer where `bn_stats` keeps its slices.
    fn stats_scratch(&self) -> View<'_> {
        let at = 2 * bn_len(&self.plan).max(1);
        View::new(
            &self.stats,
            at,
            batchnorm::stats_scratch_len(max_bn_channels(&self.plan)),
        )
    }

    fn running_stats(&self, bn: usize) -> (View<'_>, View<'_>) {
        let c = self.plan.bn_channels[bn];
        let nb = bn_len(&self.plan);
        (
            View::new(&self.running, self.bn_off[bn], c),
            View::new(&self.running, nb + self.bn_off[bn], c),
        )
    }

    /// Checks a batch and uploads it (`[T, B, C, H, W]`, or `[B, C, H, W]` repeated over T)
    /// into the input tensor.
    fn upload_input(&self, input: &[f32], b: usize) -> Result<()> {
        let x = self.full_input(input, b)?;
        self.ctx.write(self.val(self.plan.input, b), &x);
        Ok(())
    }

    /// A batch of `b` samples as `[T, B, C, H, W]` (a `[B, C, H, W]` input repeated over T),
    /// once its size and length are checked.
    fn full_input<'a>(&self, input: &'a [f32], b: usize) -> Result<Cow<'a, [f32]>> {
        if b == 0 || b > self.cap {
            return Err(Error::input(format!(
                "gpu trainer: a batch of {b} (allowed: 1 to {})",
                self.cap
            )));
        }
        let frame = self.plan.tensors[self.plan.input].sample_len();
        let t = self.t;
        if input.len() == t * b * frame {
            Ok(Cow::Borrowed(input))
        } else if input.len() == b * frame {
            Ok(Cow::Owned(input.repeat(t)))
        } else {
            Err(Error::input(format!(
                "gpu trainer: input of {} values is neither [B, C, H, W] = {} nor [T, B, C, H, W] = {}",
                input.len(),
                b * frame,
                t * b * frame
            )))
        }
    }

    /// The forward pass over `b` samples: batch statistics (`train`) or the running statistics.
    fn record_forward(&self, rec: &mut Recorder<'_>, b: usize, train: bool) -> Result<()> {
        let plan = &self.plan;
        let t = self.t;
        let n = t * b;
        for op in &plan.ops {
            let y = op.output();
            let yd = &plan.tensors[y];
            match op {
                Op::Lif { x, s, pop } => {
                    let per_t = b * plan.tensors[*x].sample_len();
                    let v = View::new(&self.v_pre[*pop], 0, t * per_t);
                    grad::lif_train(
                        rec,
                        self.val(*x, b),
                        t,
                        per_t,
                        self.s.lif,
                        self.val(*s, b),
                        v,
                    )?;
                }
                Op::Conv { x, weight, .. } => {
                    let shape = ConvShape::of_op(plan, op, n).expect("a conv op");
                    conv::conv2d(
                        rec,
                        self.val(*x, b),
                        self.param(*weight),
                        &shape,
                        self.val(y, b),
                    )?;
                }
                Op::BatchNorm {
                    x,
                    gamma,
                    beta,
                    bn,
                    gate,
                    ..
                } => {
                    let (c, hw) = (yd.c, yd.hw());
                    let (mean, var) = if train {
                        let (m, v) = self.batch_stats(*bn);
                        let scratch = self.stats_scratch();
                        batchnorm::bn_stats(rec, self.val(*x, b), n, c, hw, m, v, scratch)?;
                        (m, v)
                    } else {
                        self.running_stats(*bn)
                    };
                    batchnorm::bn_apply(
                        rec,
                        self.val(*x, b),
                        n,
                        c,
                        hw,
                        mean,
                        var,
                        self.param(*gamma),
                        self.param(*beta),
                        self.s.eps,
                        CpuGate::from(*gate),
                        self.val(y, b),
                    )?;
                }
                Op::Add { xs, .. } => {
                    let yv = self.val(y, b);
                    rec.copy(self.val(xs[0], b), yv)?;
                    for &x in &xs[1..] {
                        elementwise::add_into(rec, yv, self.val(x, b))?;
                    }
                }
                Op::Concat { xs, .. } => {
                    let parts: Vec<(View<'_>, usize)> = xs
                        .iter()
                        .map(|&x| (self.val(x, b), plan.tensors[x].c))
                        .collect();
                    elementwise::concat_channels(rec, &parts, n, yd.hw(), self.val(y, b))?;
                }
                Op::AvgPool { x, .. } => {
                    let xd = &plan.tensors[*x];
                    elementwise::global_avg_pool(
                        rec,
                        self.val(*x, b),
                        n,
                        xd.c,
                        xd.hw(),
                        self.val(y, b),
                    )?;
                }
                Op::Linear {
                    x, weight, bias, ..
                } => {
                    let in_f = plan.tensors[*x].sample_len();
                    elementwise::linear(
                        rec,
                        self.val(*x, b),
                        n,
                        in_f,
                        self.param(*weight),
                        self.param(*bias),
                        yd.c,
                        self.val(y, b),
                    )?;
                }
                Op::MeanTime { x, .. } => {
                    elementwise::mean_time(rec, self.val(*x, b), t, b * yd.c, self.val(y, b))?;
                }
            }
        }
        Ok(())
    }

    /// Adds one contribution to the gradient of `x`: `f` writes it into the view it is given
    /// (the gradient itself for the first contribution, the scratch buffer for later ones, which
    /// are then added).
    fn contribute(
        &self,
        rec: &mut Recorder<'_>,
        seen: &mut [bool],
        x: usize,
        b: usize,
        f: impl FnOnce(&mut Recorder<'_>, View<'_>) -> Result<()>,
    ) -> Result<()> {
        let g = self.gview(x, b);
        if seen[x] {
            let tmp = View::new(&self.scratch, 0, g.len as usize);
            f(rec, tmp)?;
            grad::accumulate(rec, g, tmp)
        } else {
            seen[x] = true;
            f(rec, g)
        }
    }

    /// The reverse pass over `b` samples, from `dL/dlogits` in the logits' gradient buffer.
    fn record_backward(&self, rec: &mut Recorder<'_>, b: usize) -> Result<()> {
        let plan = &self.plan;
        let t = self.t;
        let n = t * b;
        let s = self.s;
        let mut seen = vec![false; plan.tensors.len()];
        seen[plan.logits] = true;
        for op in plan.ops.iter().rev() {
            let out = op.output();
            if self.grads[out].is_none() {
                continue;
            }
            let has = |x: usize| x != plan.input && self.grads[x].is_some();
            let gy = self.gview(out, b);
            let yd = &plan.tensors[out];
            match op {
                Op::MeanTime { x, .. } => {
                    let m = b * yd.c;
                    self.contribute(rec, &mut seen, *x, b, |rec, gx| {
                        grad::mean_time_backward(rec, gy, t, m, gx)
                    })?;
                }
                Op::Linear {
                    x, weight, bias, ..
                } => {
                    let in_f = plan.tensors[*x].sample_len();
                    let (xv, w) = (self.val(*x, b), self.param(*weight));
                    let (gw, gb) = (self.gparam(*weight), self.gparam(*bias));
                    if has(*x) {
                        self.contribute(rec, &mut seen, *x, b, |rec, gx| {
                            grad::linear_backward(rec, xv, gy, n, in_f, w, yd.c, Some(gx), gw, gb)
                        })?;
                    } else {
                        grad::linear_backward(rec, xv, gy, n, in_f, w, yd.c, None, gw, gb)?;
                    }
                }
                Op::AvgPool { x, .. } => {
                    let xd = &plan.tensors[*x];
                    self.contribute(rec, &mut seen, *x, b, |rec, gx| {
                        grad::global_avg_pool_backward(rec, gy, n, xd.c, xd.hw(), gx)
                    })?;
                }
                Op::Concat { xs, .. } => {
                    let mut c_start = 0;
                    for &x in xs {
                        let c = plan.tensors[x].c;
                        if has(x) {
                            self.contribute(rec, &mut seen, x, b, |rec, gx| {
                                grad::concat_backward(rec, gy, n, yd.hw(), yd.c, c_start, c, gx)
                            })?;
                        }
                        c_start += c;
                    }
                }
                Op::Add { xs, .. } => {
                    for &x in xs {
                        if !has(x) {
                            continue;
                        }
                        let g = self.gview(x, b);
                        if seen[x] {
                            grad::accumulate(rec, g, gy)?;
                        } else {
                            seen[x] = true;
                            rec.copy(gy, g)?;
                        }
                    }
                }
                Op::BatchNorm {
                    x,
                    gamma,
                    beta,
                    bn,
                    gate,
                    ..
                } => {
                    let (mean, var) = self.batch_stats(*bn);
                    let (xv, yv) = (self.val(*x, b), self.val(out, b));
                    let (gamma_v, gg, gbv) =
                        (self.param(*gamma), self.gparam(*gamma), self.gparam(*beta));
                    let gate = CpuGate::from(*gate);
                    let (c, hw) = (yd.c, yd.hw());
                    let run = |rec: &mut Recorder<'_>, gx: View<'_>| {
                        grad::bn_backward(
                            rec, xv, yv, gy, n, c, hw, mean, var, gamma_v, s.eps, gate, gx, gg, gbv,
                        )
                    };
                    if has(*x) {
                        self.contribute(rec, &mut seen, *x, b, run)?;
                    } else {
                        run(rec, View::new(&self.scratch, 0, gy.len as usize))?;
                    }
                }
                Op::Conv { x, weight, .. } => {
                    let shape = ConvShape::of_op(plan, op, n).expect("a conv op");
                    // The scratch buffer is free between ops: split-K partials go there.
                    grad::conv2d_backward_weight(
                        rec,
                        self.val(*x, b),
                        gy,
                        &shape,
                        self.gparam(*weight),
                        View::whole(&self.scratch),
                    )?;
                    if has(*x) {
                        let w = self.param(*weight);
                        self.contribute(rec, &mut seen, *x, b, |rec, gx| {
                            grad::conv2d_backward_input(rec, gy, w, &shape, gx)
                        })?;
                    }
                }
                Op::Lif { x, pop, .. } => {
                    if has(*x) {
                        let per_t = b * plan.tensors[*x].sample_len();
                        let v = View::new(&self.v_pre[*pop], 0, t * per_t);
                        self.contribute(rec, &mut seen, *x, b, |rec, gx| {
                            grad::lif_backward(rec, gy, v, t, per_t, s.lif, s.surrogate, gx)
                        })?;
                    }
                }
            }
        }
        Ok(())
    }

    /// One optimiser step at learning rate `lr` on a batch (`input` as for the CPU trainer,
    /// `labels` one per sample): forward with batch statistics, loss, backward, running
    /// statistics, AdamW. One submission, one read-back.
    pub fn step(&mut self, input: &[f32], labels: &[u16], lr: f32) -> Result<StepOutput> {
        let b = labels.len();
        let k = self.plan.spec.classes;
        let ctx = self.ctx.clone();
        let np = self.plan.num_params;
        if !self.decay_written {
            let adam = AdamW::new(&self.plan, self.s.weight_decay);
            let mask: Vec<u32> = adam.decay.iter().map(|&d| u32::from(d)).collect();
            ctx.write(View::new(&self.decay, 0, np), &mask);
            self.decay_written = true;
        }
        let mut rec = Recorder::new(&ctx);
        self.record_forward_loss(&mut rec, input, labels)?;
        let grad_all = View::new(&self.grad, 0, np);
        let logits = self.val(self.plan.logits, b);
        let rows = View::new(&self.loss_rows, 0, b);
        for op in &self.plan.ops {
            if let Op::BatchNorm { y, bn, .. } = op {
                let c = self.plan.bn_channels[*bn];
                let (rm, rv) = self.running_stats(*bn);
                let (m, v) = self.batch_stats(*bn);
                let count = self.t * b * self.plan.tensors[*y].hw();
                grad::bn_update_running(&mut rec, rm, rv, m, v, c, count, self.s.momentum)?;
            }
        }
        self.record_backward(&mut rec, b)?;
        let h = grad::AdamHyper {
            lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.adam_eps,
            weight_decay: self.s.weight_decay,
            step: self.step + 1,
        };
        grad::adamw(
            &mut rec,
            View::new(&self.params, 0, np),
            grad_all,
            View::new(&self.adam_m, 0, np),
            View::new(&self.adam_v, 0, np),
            View::new(&self.decay, 0, np),
            np,
            h,
        )?;
        let out = View::new(&self.out, 0, b * k + b);
        rec.copy(logits, out.slice(0, b * k))?;
        rec.copy(rows, out.slice(b * k, b))?;
        rec.submit()?;
        self.step += 1;
        let words = ctx.read::<f32>(out)?;
        let sum: f64 = words[b * k..].iter().map(|&v| f64::from(v)).sum();
        let loss = match self.s.loss {
            Loss::CrossEntropy => sum / b as f64,
            Loss::Mse => sum,
        };
        Ok(StepOutput {
            loss,
            logits: words[..b * k].to_vec(),
        })
    }

    /// The loss gradient of every parameter on one batch, with batch statistics, changing
    /// nothing (no running statistics, no optimiser step): forward, loss and backward in one
    /// submission, then the gradient read back (training-free gradient scores).
    pub fn gradient(&mut self, input: &[f32], labels: &[u16]) -> Result<Vec<f32>> {
        let ctx = self.ctx.clone();
        let mut rec = Recorder::new(&ctx);
        self.record_forward_loss(&mut rec, input, labels)?;
        self.record_backward(&mut rec, labels.len())?;
        rec.submit()?;
        self.read_gradient()
    }

    #[cfg(any(test, feature = "internals"))]
    /// `||mean_m g_m||^2`, the squared norm of the mean of the mini-batches' parameter
    /// gradients (each as [`Self::gradient`] computes it), reduced on the device in one
    /// submission ([`Self::record_mean_gradient_norm2`]) with one read-back of at most 256
    /// partial sums (their f64 sum over `m^2`). Changes nothing the trainer keeps.
    pub fn mean_gradient_norm2(&mut self, batches: &[(Vec<f32>, Vec<u16>)]) -> Result<f64> {
        let groups = sum_squares_groups(self.plan.num_params);
        let ctx = self.ctx.clone();
        let partials = ctx.storage("sum of squares partials", groups)?;
        let view = View::new(&partials, 0, groups);
        let mut rec = Recorder::new(&ctx);
        self.record_mean_gradient_norm2(&mut rec, batches, view)?;
        rec.submit()?;
        let parts = ctx.read::<f32>(view)?;
        Ok(norm2_of_partials(&parts, batches.len()))
    }

    #[cfg(any(test, feature = "internals"))]
    /// Records what [`Self::mean_gradient_norm2`] computes into `rec`, its partial sums into
    /// the first `sum_squares_groups(num_params)` elements of `partials` (read them back and
    /// pass them to [`norm2_of_partials`]): the mini-batches' inputs and labels are uploaded
    /// side by side now ([`Self::upload_gradient_batches`]), and the rest is
    /// [`Self::record_mean_gradient_norm2_with`]. Several trainers may record into one
    /// submission.
    pub fn record_mean_gradient_norm2(
        &mut self,
        rec: &mut Recorder<'_>,
        batches: &[(Vec<f32>, Vec<u16>)],
        partials: View<'_>,
    ) -> Result<()> {
        let uploaded = self.upload_gradient_batches(batches)?;
        self.record_mean_gradient_norm2_with(rec, &uploaded, partials)
    }

    /// The mini-batches of a gradient norm uploaded once (inputs expanded to `[T, B, ...]`,
    /// labels checked), for every trainer with this one's T, input shape and class count: a
    /// generation's candidates share one upload.
    pub fn upload_gradient_batches(
        &self,
        batches: &[(Vec<f32>, Vec<u16>)],
    ) -> Result<GradientBatches> {
        if batches.is_empty() {
            return Err(Error::input("gpu trainer: no mini-batch"));
        }
        let mut xs: Vec<f32> = Vec::new();
        let mut ls: Vec<u32> = Vec::new();
        for (x, labels) in batches {
            self.check_labels(labels)?;
            xs.extend_from_slice(&self.full_input(x, labels.len())?);
            ls.extend(labels.iter().map(|&l| u32::from(l)));
        }
        Ok(GradientBatches {
            xs: self.ctx.upload("mini-batch inputs", &xs)?,
            ls: self.ctx.upload("mini-batch labels", &ls)?,
            sizes: batches.iter().map(|(_, l)| l.len()).collect(),
            shape: self.batch_shape(),
        })
    }

    /// Whether [`Self::record_mean_gradient_norm2_with`] can read `batches`: the same T,
    /// input shape and class count, every mini-batch within this trainer's capacity.
    pub fn can_read(&self, batches: &GradientBatches) -> bool {
        batches.shape == self.batch_shape() && batches.sizes.iter().all(|&b| b > 0 && b <= self.cap)
    }

    /// What [`GradientBatches`] must match: T, the input's sample length, the class count.
    fn batch_shape(&self) -> [usize; 3] {
        [
            self.t,
            self.plan.tensors[self.plan.input].sample_len(),
            self.plan.spec.classes,
        ]
    }

    /// [`Self::record_mean_gradient_norm2`] on mini-batches already uploaded: for each, the
    /// recording copies its input and labels into place, runs the forward, loss and backward
    /// pass and adds the gradient into a sum on the device; the sum's squares are then reduced
    /// by `reduce::sum_squares` into `partials`.
    pub fn record_mean_gradient_norm2_with(
        &mut self,
        rec: &mut Recorder<'_>,
        batches: &GradientBatches,
        partials: View<'_>,
    ) -> Result<()> {
        if batches.shape != self.batch_shape() {
            return Err(Error::input(format!(
                "gpu trainer: mini-batches uploaded for T, sample length, classes {:?}, not {:?}",
                batches.shape,
                self.batch_shape()
            )));
        }
        if let Some(&b) = batches.sizes.iter().find(|&&b| b == 0 || b > self.cap) {
            return Err(Error::input(format!(
                "gpu trainer: a batch of {b} (allowed: 1 to {})",
                self.cap
            )));
        }
        let frame = batches.shape[1];
        let t = self.t;
        let np = self.plan.num_params;
        let ctx = self.ctx.clone();
        let sum = ctx.storage("gradient sum", np.max(1))?;
        let sum_v = View::new(&sum, 0, np);
        rec.clear(sum_v);
        let (mut x_at, mut l_at) = (0, 0);
        for &b in &batches.sizes {
            let x_len = t * b * frame;
            rec.copy(
                View::new(&batches.xs, x_at, x_len),
                self.val(self.plan.input, b),
            )?;
            rec.copy(
                View::new(&batches.ls, l_at, b),
                View::new(&self.labels, 0, b),
            )?;
            (x_at, l_at) = (x_at + x_len, l_at + b);
            self.record_loss(rec, b)?;
            self.record_backward(rec, b)?;
            grad::accumulate(rec, sum_v, View::new(&self.grad, 0, np))?;
        }
        reduce::sum_squares(rec, sum_v, partials)
    }

    /// Device bytes a trainer for `plan` at `t` steps and batches of `max_batch` holds while it
    /// computes a gradient norm, estimated from above: every activation of a batch (training
    /// keeps them for the backward pass), the pre-reset membranes, parameters, gradient,
    /// optimiser moments and statistics, and one gradient buffer per tensor (gradients whose
    /// lifetimes do not overlap in fact share buffers).
    pub fn memory_bytes(plan: &Plan, t: usize, max_batch: usize) -> u64 {
        let tensors: usize = (0..plan.tensors.len())
            .map(|id| tensor_len(plan, id, t, max_batch).max(1))
            .sum();
        let membranes: usize = plan
            .populations
            .iter()
            .map(|p| tensor_len(plan, p.input, t, max_batch).max(1))
            .sum();
        let largest = (0..plan.tensors.len())
            .map(|id| tensor_len(plan, id, t, max_batch))
            .max()
            .unwrap_or(1);
        let np = plan.num_params.max(1);
        let nb = bn_len(plan).max(1);
        let k = plan.spec.classes;
        // Activations, gradients and the scratch buffer; parameters, gradient, moments, decay
        // mask, state read-back and a gradient sum; statistics; labels, losses and outputs;
        // the uploaded mini-batches.
        let words = 2 * tensors
            + largest
            + membranes
            + 9 * np
            + 6 * nb
            + batchnorm::stats_scratch_len(max_bn_channels(plan))
            + max_batch * (k + 3)
            + tensor_len(plan, plan.input, t, max_batch);
        words as u64 * 4
    }

    /// Every label is below the class count.
    fn check_labels(&self, labels: &[u16]) -> Result<()> {
        let k = self.plan.spec.classes;
        match labels.iter().find(|&&l| l as usize >= k) {
            Some(&l) => Err(Error::input(format!(
                "gpu trainer: label {l} (allowed: below {k})"
            ))),
            None => Ok(()),
        }
    }

    /// Checks the labels, uploads the batch and its labels, clears the parameter gradient and
    /// records the forward pass with batch statistics and the loss kernel (per-row loss into
    /// `loss_rows`, `dL/dlogits` into the logits' gradient): the common start of [`Self::step`]
    /// and [`Self::gradient`].
    fn record_forward_loss(
        &mut self,
        rec: &mut Recorder<'_>,
        input: &[f32],
        labels: &[u16],
    ) -> Result<()> {
        let b = labels.len();
        self.check_labels(labels)?;
        self.upload_input(input, b)?;
        let lab: Vec<u32> = labels.iter().map(|&l| u32::from(l)).collect();
        self.ctx.write(View::new(&self.labels, 0, b), &lab);
        self.record_loss(rec, b)
    }

    /// Clears the parameter gradient and records the forward pass over the `b` samples in the
    /// input tensor with batch statistics and the loss kernel against the first `b` labels.
    fn record_loss(&self, rec: &mut Recorder<'_>, b: usize) -> Result<()> {
        let k = self.plan.spec.classes;
        let labels_v = View::new(&self.labels, 0, b);
        rec.clear(View::new(&self.grad, 0, self.plan.num_params));
        self.record_forward(rec, b, true)?;
        let logits = self.val(self.plan.logits, b);
        let rows = View::new(&self.loss_rows, 0, b);
        let gl = self.gview(self.plan.logits, b);
        match self.s.loss {
            Loss::CrossEntropy => grad::softmax_cross_entropy(
                rec,
                logits,
                labels_v,
                b,
                k,
                self.s.label_smoothing,
                rows,
                gl,
            ),
            Loss::Mse => grad::mse_rate_loss(rec, logits, labels_v, b, k, rows, gl),
        }
    }

    /// `[B, classes]` logits of a batch in evaluation mode (running batch-norm statistics, no
    /// tape kept for a backward pass).
    pub fn evaluate(&mut self, input: &[f32], b: usize) -> Result<Vec<f32>> {
        let ctx = self.ctx.clone();
        let mut rec = Recorder::new(&ctx);
        self.upload_input(input, b)?;
        self.record_forward(&mut rec, b, false)?;
        rec.submit()?;
        ctx.read(self.val(self.plan.logits, b))
    }

    /// [`Self::evaluate`] and each population's spike count over the batch and all steps,
    /// summed on the device (`reduce::sum_squares` of the 0/1 spike tensors, exact below 2^24
    /// spikes per partial sum) and read back with the logits after one submission.
    pub fn evaluate_with_counts(
        &mut self,
        input: &[f32],
        b: usize,
    ) -> Result<(Vec<f32>, Vec<u64>)> {
        let ctx = self.ctx.clone();
        let groups: Vec<(usize, usize)> = self
            .plan
            .populations
            .iter()
            .map(|p| {
                (
                    p.tensor,
                    sum_squares_groups(tensor_len(&self.plan, p.tensor, self.t, b)),
                )
            })
            .collect();
        let total: usize = groups.iter().map(|&(_, g)| g).sum();
        let partials = ctx.storage("spike count partials", total.max(1))?;
        let mut rec = Recorder::new(&ctx);
        self.upload_input(input, b)?;
        self.record_forward(&mut rec, b, false)?;
        let mut at = 0;
        for &(s, g) in &groups {
            reduce::sum_squares(&mut rec, self.val(s, b), View::new(&partials, at, g))?;
            at += g;
        }
        rec.submit()?;
        let logits = ctx.read(self.val(self.plan.logits, b))?;
        let parts: Vec<f32> = if total == 0 {
            Vec::new()
        } else {
            ctx.read(View::new(&partials, 0, total))?
        };
        let mut at = 0;
        let counts = groups
            .iter()
            .map(|&(_, g)| {
                let c: f64 = parts[at..at + g].iter().map(|&v| f64::from(v)).sum();
                at += g;
                c.round() as u64
            })
            .collect();
        Ok((logits, counts))
    }

    /// Replace the whole training state (a resumed run, or a fresh one).
    pub fn write_state(&mut self, st: &TrainState) -> Result<()> {
        st.check(&self.plan)?;
        let np = self.plan.num_params;
        self.ctx.write(View::new(&self.params, 0, np), &st.params);
        self.ctx.write(View::new(&self.adam_m, 0, np), &st.adam_m);
        self.ctx.write(View::new(&self.adam_v, 0, np), &st.adam_v);
        self.write_running(&st.bn)?;
        self.step = st.step;
        Ok(())
    }

    /// Replace the parameters and running statistics only (e.g. to evaluate the best epoch's
    /// weights); the AdamW state is kept.
    pub fn write_model(&mut self, params: &[f32], bn: &BnRunning) -> Result<()> {
        crate::cpu::optim::check_model(&self.plan, params, bn)?;
        let np = self.plan.num_params;
        self.ctx.write(View::new(&self.params, 0, np), params);
        self.write_running(bn)
    }

    /// Writes statistics already checked against the plan.
    fn write_running(&self, bn: &BnRunning) -> Result<()> {
        let nb = bn_len(&self.plan);
        let (m, v) = bn.flatten();
        let mut both = m;
        both.extend_from_slice(&v);
        self.ctx.write(View::new(&self.running, 0, 2 * nb), &both);
        Ok(())
    }

    /// The whole training state, in one read-back.
    pub fn read_state(&self) -> Result<TrainState> {
        let np = self.plan.num_params;
        let nb = bn_len(&self.plan);
        let ctx = &self.ctx;
        let mut rec = Recorder::new(ctx);
        let all = View::new(&self.state_out, 0, 3 * np + 2 * nb);
        rec.copy(View::new(&self.params, 0, np), all.slice(0, np))?;
        rec.copy(View::new(&self.adam_m, 0, np), all.slice(np, np))?;
        rec.copy(View::new(&self.adam_v, 0, np), all.slice(2 * np, np))?;
        rec.copy(
            View::new(&self.running, 0, 2 * nb),
            all.slice(3 * np, 2 * nb),
        )?;
        rec.submit()?;
        let v = ctx.read::<f32>(all)?;
        let r = &v[3 * np..];
        Ok(TrainState {
            params: v[..np].to_vec(),
            adam_m: v[np..2 * np].to_vec(),
            adam_v: v[2 * np..3 * np].to_vec(),
            step: self.step,
            bn: unflatten_bn(&self.plan, &r[..nb], &r[nb..]),
        })
    }

    /// The parameter gradient of the last step (`plan.num_params` values, aligned with the
    /// parameters), for checks against the CPU reference.
    pub fn read_gradient(&self) -> Result<Vec<f32>> {
        self.ctx
            .read(View::new(&self.grad, 0, self.plan.num_params))
    }

    #[cfg(any(test, feature = "internals"))]
    /// A tensor's values from the last forward pass over `b` samples (spikes as 0/1).
    pub fn read_tensor(&self, id: usize, b: usize) -> Result<Vec<f32>> {
        if id >= self.plan.tensors.len() || b == 0 || b > self.cap {
            return Err(Error::input("gpu trainer: no such tensor or batch"));
        }
        self.ctx.read(self.val(id, b))
    }
}

/// Channels of the widest batch norm of `plan` (0 without one).
fn max_bn_channels(plan: &Plan) -> usize {
    plan.bn_channels.iter().copied().max().unwrap_or(0)
}

/// Mini-batches of a gradient norm on the device, uploaded once by
/// [`GpuTrainer::upload_gradient_batches`] and read by any number of trainers of the same T,
/// input shape and class count ([`GpuTrainer::record_mean_gradient_norm2_with`]).
pub struct GradientBatches {
    xs: wgpu::Buffer,
    ls: wgpu::Buffer,
    /// Samples per mini-batch.
    sizes: Vec<usize>,
    /// T, the input's sample length, the class count.
    shape: [usize; 3],
}

#[cfg(any(test, feature = "internals"))]
impl GradientBatches {
    /// How many mini-batches.
    pub fn len(&self) -> usize {
        self.sizes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.sizes.is_empty()
    }
}
