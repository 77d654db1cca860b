//! The fast engine's executor: a plan run op by op over all T steps (as the reference executor),
//! with tensors channels innermost and three fusions that save memory traffic:
//!
//! - a convolution writes straight into its slice of a concatenation that only it and its
//!   siblings feed (the factorised reduce), and computes the per-channel sums its batch norm
//!   needs while its output image is in cache;
//! - a batch norm's output is never stored: its consumers (sums, concatenations, LIF
//!   populations) apply `gate(x * scale + shift)` as they read the convolution's output, and
//!   the backward pass recomputes the gate from the same values;
//! - a LIF population writes its spikes as bit planes (eight channels a byte) that the
//!   lookup-table convolutions read, its spike counts, and in training its membranes.

use super::conv::{
    bucket_weight_gradient, dense_weight_gradient, direct_conv_image, direct_weights, groups8,
    lut_conv_image, padded_pixels, scatter_input_gradient_image, scatter_weights, GradOut, InPlane,
    Lut, OutImage, Taps, PAD,
};
use super::ops::{self, Affine, ChannelSums, LifOut, View};
use super::pool::Buf;
use crate::cpu::grad::{linear_backward, mean_time_backward, Surrogate};
use crate::cpu::{add_into, linear, mean_time, BnMode, ConvShape, ForwardOutput, Gate, LifParams};
use crate::plan::{Op, Plan, TensorId};
use rayon::prelude::*;

/// How a tensor is held during a run.
#[derive(Debug, Default)]
enum Val {
    #[default]
    None,
    /// `[n][hw][c]`.
    Dense(Buf<f32>),
    /// A convolution output written into its channels `offset..` of the concatenation `of`.
    Part { of: TensorId, offset: usize },
    /// A batch norm's output, read through the affine of batch-norm layer `bn` from `src`.
    Lazy { src: TensorId, bn: usize },
    /// Spike planes `[n][hp][wp][groups8(c)]`.
    Spikes(Buf<u8>),
    /// The network input as padded planes `[n][hp][wp][c]`.
    Input(Buf<f32>),
}

/// A batch-norm layer as the forward pass applied it.
#[derive(Clone, Debug)]
struct BnLayer {
    scale: Vec<f32>,
    shift: Vec<f32>,
    gate: Gate,
    mean: Vec<f32>,
    inv_sd: Vec<f32>,
}

/// What the executor decides about a plan before running it.
struct Layout {
    /// Per tensor: the concatenation and channel offset a convolution output is written into.
    write_into: Vec<Option<(TensorId, usize)>>,
    /// Per tensor: the index of the last op reading it, a batch norm's source living as long as
    /// the batch norm's output (which reads it).
    last_use: Vec<Option<usize>>,
    /// Per tensor: read by a batch norm (its producer computes the channel sums).
    bn_input: Vec<bool>,
    /// Per tensor: needed by the backward pass (read by a convolution, a batch norm or the
    /// linear head).
    backward_reads: Vec<bool>,
    /// Per tensor: written by convolutions (its gradient is kept as padded planes).
    conv_out: Vec<bool>,
}

impl Layout {
    fn new(plan: &Plan) -> Layout {
        let nt = plan.tensors.len();
        let mut readers = vec![0usize; nt];
        let mut produced_by_conv = vec![false; nt];
        for op in &plan.ops {
            for x in op.inputs() {
                readers[x] += 1;
            }
            if let Op::Conv { y, .. } = op {
                produced_by_conv[*y] = true;
            }
        }
        let mut write_into = vec![None; nt];
        let mut conv_out = produced_by_conv.clone();
        for op in &plan.ops {
            if let Op::Concat { xs, y } = op {
                let distinct = xs.iter().enumerate().all(|(i, x)| !xs[..i].contains(x));
                if distinct && xs.iter().all(|&x| produced_by_conv[x] && readers[x] == 1) {
                    let mut at = 0;
                    for &x in xs {
                        write_into[x] = Some((*y, at));
                        at += plan.tensors[x].c;
                    }
                    conv_out[*y] = true;
                }
            }
        }
        let mut last_use = plan.last_use();
        let mut bn_input = vec![false; nt];
        let mut backward_reads = vec![false; nt];
        for op in &plan.ops {
            match op {
                Op::BatchNorm { x, y, .. } => {
                    bn_input[*x] = true;
                    backward_reads[*x] = true;
                    last_use[*x] = last_use[*x].max(last_use[*y]);
                }
                Op::Conv { x, .. } | Op::Linear { x, .. } => backward_reads[*x] = true,
                _ => {}
            }
        }
        Layout {
            write_into,
            last_use,
            bn_input,
            backward_reads,
            conv_out,
        }
    }
}

/// Whether the fast engine runs `plan`: every convolution reads spikes or the network input
/// with a kernel its padding covers, spikes feed only convolutions and average pools, and no
/// batch norm reads another's output (what [`Plan::compile`] produces). Other plans run on the
/// reference executor.
pub fn supports(plan: &Plan) -> bool {
    let nt = plan.tensors.len();
    let mut spikes = vec![false; nt];
    let mut bn_out = vec![false; nt];
    plan.ops.iter().all(|op| match op {
        Op::Lif { x, s, .. } => {
            spikes[*s] = true;
            !spikes[*x]
        }
        Op::BatchNorm { x, y, .. } => {
            bn_out[*y] = true;
            !spikes[*x] && !bn_out[*x]
        }
        Op::Conv {
            x,
            k,
            shift,
            stride,
            ..
        } => {
            (spikes[*x] || *x == plan.input)
                && *k >= 1
                && *stride >= 1
                && k / 2 + *shift as usize <= PAD
        }
        Op::AvgPool { x, .. } => spikes[*x],
        Op::Add { xs, .. } | Op::Concat { xs, .. } => xs.iter().all(|&x| !spikes[x]),
        Op::Linear { x, .. } | Op::MeanTime { x, .. } => !spikes[*x],
    })
}

/// The order the packed spike rows of [`super::forward`] come in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpikeOrder {
    /// The plan's neuron order `(c*H + y)*W + x` (docs/design.md).
    Plan,
    /// The fast engine's own order `(y*W + x)*C + c`, cheaper to produce; every population
    /// statistic (counts, Hamming distances, inner products) is the same in either order.
    Any,
}

/// One forward pass's settings.
pub(crate) struct RunOpts<'a> {
    pub t: usize,
    pub b: usize,
    pub lif: LifParams,
    pub eps: f32,
    pub bn: BnMode<'a>,
    pub spikes: Option<SpikeOrder>,
    /// Keep what the backward pass needs.
    pub train: bool,
}

/// A finished forward pass: the outputs, and in training what the backward pass reads.
pub struct Tape {
    t: usize,
    b: usize,
    lif: LifParams,
    vals: Vec<Val>,
    bn: Vec<Option<BnLayer>>,
    v_pre: Vec<Option<Buf<f32>>>,
    layout: Layout,
    /// The forward outputs (`tensors` empty).
    pub out: ForwardOutput,
}

impl Tape {
    /// `[B, classes]` time-averaged logits.
    pub fn logits(&self) -> &[f32] {
        &self.out.logits
    }
    /// Per batch-norm layer, the batch's `(mean, biased var)`.
    pub fn bn_stats(&self) -> &[(Vec<f32>, Vec<f32>)] {
        &self.out.bn_batch_stats
    }
    #[cfg(any(test, feature = "internals"))]
    /// Spikes of every population.
    pub fn spike_counts(&self) -> &[u64] {
        &self.out.spike_counts
    }
}

struct Run<'a> {
    plan: &'a Plan,
    params: &'a [f32],
    n: usize,
    o: &'a RunOpts<'a>,
    layout: Layout,
    vals: Vec<Val>,
    sums: Vec<Option<ChannelSums>>,
    bn: Vec<Option<BnLayer>>,
    v_pre: Vec<Option<Buf<f32>>>,
    out: ForwardOutput,
}

fn param<'p>(plan: &Plan, params: &'p [f32], id: usize) -> &'p [f32] {
    let p = &plan.params[id];
    &params[p.offset..p.offset + p.len]
}

/// Pads `[n][c][h][w]` images into `[n][h + 2 PAD][w + 2 PAD][c]` planes.
fn input_planes(x: &[f32], n: usize, c: usize, h: usize, w: usize) -> Buf<f32> {
    let (hp, wp) = (h + 2 * PAD, w + 2 * PAD);
    let mut out = Buf::zeroed(n * hp * wp * c);
    if c * h * w == 0 {
        return out;
    }
    out.par_chunks_mut(hp * wp * c)
        .zip(x.par_chunks(c * h * w))
        .for_each(|(plane, img)| {
            for ch in 0..c {
                for y in 0..h {
                    for xx in 0..w {
                        plane[((y + PAD) * wp + xx + PAD) * c + ch] = img[(ch * h + y) * w + xx];
                    }
                }
            }
        });
    out
}

impl<'a> Run<'a> {
    fn view(&self, id: TensorId) -> View<'_> {
        let d = &self.plan.tensors[id];
        match &self.vals[id] {
            Val::Dense(data) => View {
                data,
                hw: d.hw(),
                c: d.c,
                stride: d.c,
                offset: 0,
                affine: None,
            },
            Val::Part { of, offset } => View {
                c: d.c,
                offset: *offset,
                ..self.view(*of)
            },
            Val::Lazy { src, bn } => {
                let l = self.bn[*bn]
                    .as_ref()
                    .expect("batch norm applied before use");
                View {
                    affine: Some(Affine {
                        scale: &l.scale,
                        shift: &l.shift,
                        gate: l.gate,
                    }),
                    ..self.view(*src)
                }
            }
            other => panic!("fast engine: tensor {} is not analog ({other:?})", d.name),
        }
    }

    fn run(mut self) -> Tape {
        let plan = self.plan;
        for (i, op) in plan.ops.iter().enumerate() {
            self.op(op);
            for x in op.inputs() {
                let dead = self.layout.last_use[x] == Some(i)
                    && !(self.o.train && self.layout.backward_reads[x]);
                if dead && x != plan.logits_per_step {
                    self.vals[x] = Val::None;
                    self.sums[x] = None;
                }
            }
        }
        let take = |v: &Val| match v {
            Val::Dense(d) => d.to_vec(),
            _ => panic!("fast engine: logits not produced"),
        };
        self.out.logits = take(&self.vals[plan.logits]);
        self.out.logits_per_step = take(&self.vals[plan.logits_per_step]);
        Tape {
            t: self.o.t,
            b: self.o.b,
            lif: self.o.lif,
            vals: if self.o.train { self.vals } else { Vec::new() },
            bn: self.bn,
            v_pre: self.v_pre,
            layout: self.layout,
            out: self.out,
        }
    }

    fn op(&mut self, op: &Op) {
        let plan = self.plan;
        let n = self.n;
        match op {
            Op::Conv { x, y, weight, .. } => self.conv(op, *x, *y, *weight),
            Op::BatchNorm {
                x,
                y,
                gamma,
                beta,
                bn,
                gate,
            } => {
                let d = &plan.tensors[*y];
                let (mean, var) = match self.o.bn {
                    BnMode::Batch => {
                        let sums = match self.sums[*x].take() {
                            Some(s) => s,
                            None => ops::view_sums(&self.view(*x), n),
                        };
                        let mv = sums.mean_var(n * d.hw());
                        self.out.bn_batch_stats[*bn] = mv.clone();
                        mv
                    }
                    BnMode::Running(r) => (r.mean[*bn].clone(), r.var[*bn].clone()),
                };
                let (g, bt) = (
                    param(plan, self.params, *gamma),
                    param(plan, self.params, *beta),
                );
                let inv_sd: Vec<f32> = var.iter().map(|&v| 1.0 / (v + self.o.eps).sqrt()).collect();
                let scale: Vec<f32> = g.iter().zip(&inv_sd).map(|(&g, &i)| g * i).collect();
                let shift = bt
                    .iter()
                    .zip(&mean)
                    .zip(&scale)
                    .map(|((&b, &m), &s)| b - m * s)
                    .collect();
                self.bn[*bn] = Some(BnLayer {
                    scale,
                    shift,
                    gate: Gate::from(*gate),
                    mean,
                    inv_sd,
                });
                self.vals[*y] = Val::Lazy { src: *x, bn: *bn };
            }
            Op::Add { xs, y } => {
                let views: Vec<View> = xs.iter().map(|&x| self.view(x)).collect();
                let out = ops::add(&views, n);
                self.vals[*y] = Val::Dense(out);
            }
            Op::Concat { xs, y } => {
                if self.layout.write_into[xs[0]].is_some() {
                    return; // written in place by the convolutions
                }
                let views: Vec<View> = xs.iter().map(|&x| self.view(x)).collect();
                let out = ops::concat(&views, n);
                self.vals[*y] = Val::Dense(out);
            }
            Op::Lif { x, s, pop } => self.lif(*x, *s, *pop),
            Op::AvgPool { x, y } => {
                let d = &plan.tensors[*x];
                let Val::Spikes(planes) = &self.vals[*x] else {
                    panic!("fast engine: average pool of a non-spike tensor");
                };
                let (g8, wp) = (groups8(d.c), d.w + 2 * PAD);
                let plane_len = (d.h + 2 * PAD) * wp * g8;
                let mut pooled = Buf::stale(n * d.c);
                pooled
                    .par_chunks_mut(d.c.max(1))
                    .zip(planes.par_chunks(plane_len.max(1)))
                    .for_each(|(o, plane)| {
                        let mut counts = vec![0u32; d.c];
                        for pix in 0..d.hw() {
                            let at = ((pix / d.w + PAD) * wp + pix % d.w + PAD) * g8;
                            for (ch, c) in counts.iter_mut().enumerate() {
                                *c += u32::from(plane[at + ch / 8] >> (ch % 8) & 1);
                            }
                        }
                        for (o, &c) in o.iter_mut().zip(&counts) {
                            *o = c as f32 / d.hw() as f32;
                        }
                    });
                self.vals[*y] = Val::Dense(pooled);
            }
            Op::Linear { x, y, weight, bias } => {
                let in_f = plan.tensors[*x].sample_len();
                let out_f = plan.tensors[*y].c;
                let xv = self.dense(*x);
                let mut out = Buf::stale(n * out_f);
                linear(
                    &xv,
                    n,
                    in_f,
                    param(plan, self.params, *weight),
                    param(plan, self.params, *bias),
                    out_f,
                    &mut out,
                );
                self.vals[*y] = Val::Dense(out);
            }
            Op::MeanTime { x, y } => {
                let m = self.o.b * plan.tensors[*y].c;
                let xv = self.dense(*x);
                let mut out = Buf::stale(m);
                mean_time(&xv, self.o.t, m, &mut out);
                self.vals[*y] = Val::Dense(out);
            }
        }
    }

    /// A tensor as contiguous `[n][hw][c]` values (a copy when it is a view of another).
    fn dense(&self, id: TensorId) -> std::borrow::Cow<'_, [f32]> {
        match &self.vals[id] {
            Val::Dense(d) => std::borrow::Cow::Borrowed(&d[..]),
            _ => std::borrow::Cow::Owned(ops::concat(&[self.view(id)], self.n).into_vec()),
        }
    }

    fn conv(&mut self, op: &Op, x: TensorId, y: TensorId, weight: usize) {
        let plan = self.plan;
        let n = self.n;
        let s = ConvShape::of_op(plan, op, n).expect("a conv op");
        let (target, offset) = self.layout.write_into[y].unwrap_or((y, 0));
        let ct = plan.tensors[target].c;
        let hwo = s.out_h() * s.out_w();
        let img_len = hwo * ct;
        if target != y {
            self.vals[y] = Val::Part { of: target, offset };
        }
        let mut out = match std::mem::take(&mut self.vals[target]) {
            Val::Dense(d) => d,
            _ => Buf::stale(n * img_len), // the convolutions write every channel
        };
        let want_sums = self.layout.bn_input[target] && matches!(self.o.bn, BnMode::Batch);
        let mut sums = self.sums[target].take();
        if want_sums && sums.is_none() {
            sums = Some(ChannelSums::new(n, ct));
        }
        let taps = Taps::forward(&s);
        let o = OutImage {
            stride: ct,
            offset,
            channels: s.cout,
        };
        let w = param(plan, self.params, weight);
        let sd = &plan.tensors[x];
        let (hp, wp) = (sd.h + 2 * PAD, sd.w + 2 * PAD);
        match &self.vals[x] {
            Val::Spikes(planes) => {
                let g8 = groups8(s.cin);
                let plane_len = hp * wp * g8;
                let lut = Lut::build(w, &s, Vec::new());
                each_image(&mut out, img_len, sums.as_mut(), hwo, o, |img, out_n| {
                    lut_conv_image(
                        &planes[img * plane_len..(img + 1) * plane_len],
                        g8,
                        &lut,
                        &taps,
                        out_n,
                        o,
                    )
                });
            }
            Val::Input(planes) => {
                let plane_len = hp * wp * s.cin;
                let (wt, coutp) = direct_weights(w, &s, false);
                each_image(&mut out, img_len, sums.as_mut(), hwo, o, |img, out_n| {
                    let x = InPlane {
                        data: &planes[img * plane_len..(img + 1) * plane_len],
                        stride: s.cin,
                        offset: 0,
                        channels: s.cin,
                    };
                    direct_conv_image(x, &wt, coutp, &taps, out_n, o)
                });
            }
            other => panic!(
                "fast engine: convolution {} reads {other:?}",
                plan.tensors[y].name
            ),
        }
        self.vals[target] = Val::Dense(out);
        self.sums[target] = sums;
    }

    fn lif(&mut self, x: TensorId, s: TensorId, pop: usize) {
        let plan = self.plan;
        let (t, b, n) = (self.o.t, self.o.b, self.n);
        let d = &plan.tensors[s];
        let plane_len = (d.h + 2 * PAD) * (d.w + 2 * PAD) * groups8(d.c);
        let mut planes = Buf::<u8>::zeroed(n * plane_len);
        let mut counts = vec![0u32; n];
        let mut v_pre = self.o.train.then(|| Buf::<f32>::stale(n * d.sample_len()));
        ops::lif(
            &self.view(x),
            t,
            b,
            d.h,
            d.w,
            self.o.lif,
            LifOut {
                planes: &mut planes,
                counts: &mut counts,
                v_pre: v_pre.as_deref_mut(),
            },
        );
        let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
        self.out.spike_counts[pop] = total;
        self.out.firing_rates[pop] = total as f32 / (n * d.sample_len()).max(1) as f32;
        if let Some(order) = self.o.spikes {
            self.out.spikes[pop] = match order {
                SpikeOrder::Plan => ops::pack_rows_plan(&planes, n, d.h, d.w, d.c),
                SpikeOrder::Any => ops::pack_rows_nhwc(&planes, n, d.h, d.w, d.c),
            };
        }
        self.v_pre[pop] = v_pre;
        self.vals[s] = Val::Spikes(planes);
    }
}

/// Runs `f(image, output image)` over every image in parallel, then adds each output image's
/// channel sums (channels `o.offset..o.offset + o.channels`) into `sums`.
fn each_image(
    out: &mut [f32],
    img_len: usize,
    sums: Option<&mut ChannelSums>,
    hw: usize,
    o: OutImage,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    if img_len == 0 {
        return;
    }
    match sums {
        Some(s) => {
            let c = s.c;
            out.par_chunks_mut(img_len)
                .zip(s.sum.par_chunks_mut(c).zip(s.sq.par_chunks_mut(c)))
                .enumerate()
                .for_each(|(img, (out_n, (sum, sq)))| {
                    f(img, out_n);
                    ops::image_sums(
                        out_n,
                        hw,
                        o.stride,
                        o.offset,
                        o.channels,
                        &mut sum[o.offset..],
                        &mut sq[o.offset..],
                    );
                });
        }
        None => out
            .par_chunks_mut(img_len)
            .enumerate()
            .for_each(|(img, out_n)| f(img, out_n)),
    }
}

/// Runs the plan: the forward pass, and with `o.train` everything the backward pass needs.
pub(crate) fn run(plan: &Plan, params: &[f32], input: &[f32], o: &RunOpts) -> Tape {
    let n = o.t * o.b;
    assert_eq!(params.len(), plan.num_params, "parameter vector length");
    let d = &plan.tensors[plan.input];
    let step = o.b * d.sample_len();
    let planes = if input.len() == step {
        input_planes(&input.repeat(o.t), n, d.c, d.h, d.w)
    } else {
        assert_eq!(input.len(), n * d.sample_len(), "input length");
        input_planes(input, n, d.c, d.h, d.w)
    };
    let npop = plan.populations.len();
    let nt = plan.tensors.len();
    let mut vals: Vec<Val> = (0..nt).map(|_| Val::None).collect();
    vals[plan.input] = Val::Input(planes);
    let run = Run {
        plan,
        params,
        n,
        o,
        layout: Layout::new(plan),
        vals,
        sums: (0..nt).map(|_| None).collect(),
        bn: vec![None; plan.bn_channels.len()],
        v_pre: (0..npop).map(|_| None).collect(),
        out: ForwardOutput {
            spike_counts: vec![0; npop],
            firing_rates: vec![0.0; npop],
            spikes: vec![Vec::new(); if o.spikes.is_some() { npop } else { 0 }],
            bn_batch_stats: vec![(Vec::new(), Vec::new()); plan.bn_channels.len()],
            ..Default::default()
        },
    };
    run.run()
}

/// A gradient during the backward pass.
#[derive(Debug, Default)]
enum Grad {
    #[default]
    None,
    /// `[n][hw][c]`.
    Dense(Buf<f32>),
    /// `[n][h + 2 PAD][w + 2 PAD][c]` planes, borders zero (a convolution output's gradient).
    Padded(Buf<f32>),
    /// Channels `offset..` of the padded gradient of the concatenation `of`.
    Part { of: TensorId, offset: usize },
}

impl Grad {
    /// The gradient of an analog tensor `d` (always dense: only convolution outputs get
    /// padded or shared gradients).
    fn dense(self, d: &crate::plan::TensorDesc) -> Buf<f32> {
        match self {
            Grad::Dense(g) => g,
            other => panic!("fast engine backward: gradient of {} is {other:?}", d.name),
        }
    }
}

fn accumulate(g: &mut Grad, contribution: Buf<f32>) {
    match g {
        Grad::None => *g = Grad::Dense(contribution),
        Grad::Dense(acc) => add_into(acc, &contribution),
        _ => panic!("fast engine: a gradient added to a padded one"),
    }
}

/// Reverse pass: `dL/dparams` from `dL/dlogits` (`[B, classes]`), as
/// [`crate::cpu::backprop::backward`] computes it (the same formulas, summed in other orders).
pub fn backward(
    plan: &Plan,
    params: &[f32],
    tape: Tape,
    grad_logits: &[f32],
    sg: Surrogate,
) -> Vec<f32> {
    assert!(
        !tape.vals.is_empty(),
        "backward: the tape was not recorded for training"
    );
    let (t, b) = (tape.t, tape.b);
    let n = t * b;
    let nt = plan.tensors.len();
    assert_eq!(
        grad_logits.len(),
        b * plan.tensors[plan.logits].c,
        "grad_logits must be [B, classes]"
    );
    let vals = &tape.vals;
    let layout = &tape.layout;
    let mut gparams = vec![0.0f32; plan.num_params];
    let mut grads: Vec<Grad> = (0..nt).map(|_| Grad::None).collect();
    grads[plan.logits] = Grad::Dense(Buf::from_slice(grad_logits));
    let range = |id: usize| {
        let p = &plan.params[id];
        p.offset..p.offset + p.len
    };
    let dense_val = |id: TensorId| -> View<'_> {
        let d = &plan.tensors[id];
        match &vals[id] {
            Val::Dense(data) => View {
                data,
                hw: d.hw(),
                c: d.c,
                stride: d.c,
                offset: 0,
                affine: None,
            },
            other => panic!("fast engine backward: {} is {other:?}", d.name),
        }
    };
    for op in plan.ops.iter().rev() {
        let out = op.output();
        let in_place_concat =
            matches!(op, Op::Concat { xs, .. } if layout.write_into[xs[0]].is_some());
        let gy = if in_place_concat {
            Grad::None
        } else {
            std::mem::take(&mut grads[out])
        };
        if !in_place_concat && matches!(gy, Grad::None) {
            continue;
        }
        let yd = &plan.tensors[out];
        match op {
            Op::MeanTime { x, .. } => {
                let gy = gy.dense(yd);
                let m = b * yd.c;
                let mut gx = Buf::stale(t * m);
                mean_time_backward(&gy, t, m, &mut gx);
                accumulate(&mut grads[*x], gx);
            }
            Op::Linear {
                x, weight, bias, ..
            } => {
                let gy = gy.dense(yd);
                let in_f = plan.tensors[*x].sample_len();
                let mut gx = Buf::stale(n * in_f);
                let mut gw = vec![0.0; yd.c * in_f];
                let mut gb = vec![0.0; yd.c];
                linear_backward(
                    dense_val(*x).data,
                    &gy,
                    n,
                    in_f,
                    &params[range(*weight)],
                    yd.c,
                    Some(&mut gx),
                    &mut gw,
                    &mut gb,
                );
                gparams[range(*weight)].copy_from_slice(&gw);
                gparams[range(*bias)].copy_from_slice(&gb);
                accumulate(&mut grads[*x], gx);
            }
            Op::AvgPool { x, .. } => {
                let gy = gy.dense(yd);
                let xd = &plan.tensors[*x];
                let (hw, c) = (xd.hw(), xd.c);
                let mut gx = Buf::stale(n * hw * c);
                for (img, g) in gx.chunks_exact_mut((hw * c).max(1)).enumerate() {
                    for px in g.chunks_exact_mut(c.max(1)) {
                        for (v, &gv) in px.iter_mut().zip(&gy[img * c..(img + 1) * c]) {
                            *v = gv / hw as f32;
                        }
                    }
                }
                accumulate(&mut grads[*x], gx);
            }
            Op::Lif { x, pop, .. } => {
                let gs = gy.dense(yd);
                let v = tape.v_pre[*pop].as_ref().expect("membranes recorded");
                let mut gx = Buf::stale(v.len());
                ops::lif_backward(&gs, v, t, tape.lif, sg, &mut gx);
                accumulate(&mut grads[*x], gx);
            }
            Op::BatchNorm {
                x, gamma, beta, bn, ..
            } => {
                let gy = gy.dense(yd);
                let l = tape.bn[*bn].as_ref().expect("batch norm layer");
                let xd = &plan.tensors[*x];
                let (h, w, c) = (xd.h, xd.w, xd.c);
                let xv = match &vals[*x] {
                    Val::Dense(_) => dense_val(*x),
                    other => panic!("fast engine backward: batch norm input {other:?}"),
                };
                // A convolution's output (or a concatenation the convolutions wrote) gets its
                // gradient as padded planes, which its convolutions' backward passes read.
                let conv_out = layout.conv_out[*x];
                let (image, pixels): (usize, Vec<u32>) = if conv_out {
                    ((h + 2 * PAD) * (w + 2 * PAD) * c, padded_pixels(h, w))
                } else {
                    (h * w * c, (0..(h * w) as u32).collect())
                };
                // Padded planes need their zero borders; unpadded ones are written whole.
                let mut gx = if conv_out {
                    Buf::zeroed(n * image)
                } else {
                    Buf::stale(n * image)
                };
                let mut gg = vec![0.0f32; c];
                let mut gb = vec![0.0f32; c];
                ops::bn_backward(
                    &xv,
                    &gy,
                    n,
                    Affine {
                        scale: &l.scale,
                        shift: &l.shift,
                        gate: l.gate,
                    },
                    &l.mean,
                    &l.inv_sd,
                    &params[range(*gamma)],
                    &mut gx,
                    image.max(1),
                    &pixels,
                    &mut gg,
                    &mut gb,
                );
                gparams[range(*gamma)].copy_from_slice(&gg);
                gparams[range(*beta)].copy_from_slice(&gb);
                if conv_out {
                    assert!(
                        matches!(grads[*x], Grad::None),
                        "convolution output read twice"
                    );
                    grads[*x] = Grad::Padded(gx);
                } else {
                    accumulate(&mut grads[*x], gx);
                }
            }
            Op::Concat { xs, y } => {
                if in_place_concat {
                    let mut at = 0;
                    for &x in xs {
                        grads[x] = Grad::Part { of: *y, offset: at };
                        at += plan.tensors[x].c;
                    }
                    continue;
                }
                let gy = gy.dense(yd);
                let hw = yd.hw();
                let mut at = 0;
                for &x in xs {
                    let c = plan.tensors[x].c;
                    let mut gx = Buf::stale(n * hw * c);
                    for (p, g) in gx.chunks_exact_mut(c.max(1)).enumerate() {
                        g.copy_from_slice(&gy[p * yd.c + at..p * yd.c + at + c]);
                    }
                    at += c;
                    accumulate(&mut grads[x], gx);
                }
            }
            Op::Add { xs, .. } => {
                let gy = gy.dense(yd);
                let (last, rest) = xs.split_last().expect("add of inputs");
                for &x in rest {
                    accumulate(&mut grads[x], Buf::from_slice(&gy));
                }
                accumulate(&mut grads[*last], gy);
            }
            Op::Conv { x, y, weight, .. } => {
                let s = ConvShape::of_op(plan, op, n).expect("a conv op");
                let (ho, wo) = (s.out_h(), s.out_w());
                let (data, cs, offset): (&[f32], usize, usize) = match &gy {
                    Grad::Padded(g) => (&g[..], s.cout, 0),
                    Grad::Part { of, offset } => match &grads[*of] {
                        Grad::Padded(g) => (&g[..], plan.tensors[*of].c, *offset),
                        other => panic!("fast engine backward: concat gradient {other:?}"),
                    },
                    other => panic!(
                        "fast engine backward: conv {} gradient {other:?}",
                        plan.tensors[*y].name
                    ),
                };
                let pixels = padded_pixels(ho, wo);
                let image_len = (ho + 2 * PAD) * (wo + 2 * PAD) * cs;
                let g = GradOut {
                    data,
                    image_len,
                    pixels: &pixels,
                    stride: cs,
                    offset,
                };
                let taps = Taps::forward(&s);
                let mut gw = vec![0.0f32; s.weight_len()];
                let (hp, wp) = (s.h + 2 * PAD, s.w + 2 * PAD);
                match &vals[*x] {
                    Val::Spikes(planes) => bucket_weight_gradient(planes, &s, &taps, g, &mut gw),
                    Val::Input(planes) => {
                        dense_weight_gradient(planes, hp * wp * s.cin, s.cin, &s, &taps, g, &mut gw)
                    }
                    other => panic!("fast engine backward: convolution input {other:?}"),
                }
                gparams[range(*weight)].copy_from_slice(&gw);
                if *x != plan.input {
                    let w = &params[range(*weight)];
                    let in_img = s.h * s.w * s.cin;
                    let mut gx = Buf::stale(n * in_img);
                    let o = OutImage {
                        stride: s.cin,
                        offset: 0,
                        channels: s.cin,
                    };
                    if s.stride == 1 && !s.shift {
                        let bt = Taps::input_gradient(&s);
                        let (wt, cinp) = direct_weights(w, &s, true);
                        gx.par_chunks_mut(in_img.max(1))
                            .enumerate()
                            .for_each(|(img, gx_n)| {
                                let plane = InPlane {
                                    data: &data[img * image_len..(img + 1) * image_len],
                                    stride: cs,
                                    offset,
                                    channels: s.cout,
                                };
                                direct_conv_image(plane, &wt, cinp, &bt, gx_n, o);
                            });
                    } else {
                        let (wt, cinp) = scatter_weights(w, &s);
                        gx.par_chunks_mut(in_img.max(1)).enumerate().for_each_init(
                            || vec![0.0f32; hp * wp * cinp],
                            |gxp, (img, gx_n)| {
                                scatter_input_gradient_image(
                                    &data[img * image_len..(img + 1) * image_len],
                                    g,
                                    &s,
                                    &taps,
                                    &wt,
                                    cinp,
                                    gxp,
                                    gx_n,
                                )
                            },
                        );
                    }
                    accumulate(&mut grads[*x], gx);
                }
            }
        }
    }
    gparams
}
