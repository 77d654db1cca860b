//! Reverse-mode differentiation of a [`Plan`]: a forward pass that keeps every tensor (the
//! tape), then the ops in reverse order, each through its backward twin in `crate::cpu::grad`,
//! accumulating the gradients of tensors read by several ops and writing parameter gradients
//! into a flat vector aligned with the plan's parameters (`ParamDesc::offset`).
//!
//! The forward pass is the executor's (`crate::cpu::forward`, batch statistics) op for op
//! and bit for bit: the ops without state run through the executor's own per-op function
//! (`crate::cpu::executor::apply_op`); LIF and batch norm run here, because the tape also
//! records each LIF population's membrane before the reset (the surrogate needs it) and each
//! batch norm's batch statistics (the backward pass and the running-statistics update need
//! them), and gradient checks may replace spikes and gates.

use crate::cpu::executor::apply_op;
use crate::cpu::grad::{
    bn_backward, concat_backward, conv2d_backward_input, conv2d_backward_weight,
    global_avg_pool_backward, lif_backward, linear_backward, mean_time_backward, Surrogate,
};
use crate::cpu::{
    add_into, bn_apply, bn_stats, lif_membrane, ConvShape, Gate as CpuGate, Kernels, LifParams,
};
use crate::plan::{Op, Plan};

/// Everything the backward pass needs from the forward pass.
#[derive(Clone, Debug)]
pub struct Tape {
    pub timesteps: usize,
    pub batch: usize,
    /// Every tensor of the plan, `[T, B, C, H, W]` (the logits `[B, K]`).
    pub tensors: Vec<Option<Vec<f32>>>,
    /// Per population, the membrane after integration and before the reset, `[T, B*N]`.
    pub v_pre: Vec<Vec<f32>>,
    /// Per batch-norm layer, the batch's `(mean, biased var)`.
    pub bn_stats: Vec<(Vec<f32>, Vec<f32>)>,
    /// Spike count of every population.
    pub spike_counts: Vec<u64>,
}

impl Tape {
    /// `[B, classes]` time-averaged logits.
    pub fn logits<'a>(&'a self, plan: &Plan) -> &'a [f32] {
        self.tensors[plan.logits].as_deref().expect("logits")
    }
}

/// Replaces the spikes of a population during the forward pass: `(population, input x
/// [T, n], membrane v_pre [T, n]) -> spikes [T, n]`.
pub type SpikeOverride<'a> = &'a dyn Fn(usize, &[f32], &[f32]) -> Vec<f32>;

/// Replaces the sign gate of a batch-norm layer: `(bn index, values)` receives the normalised,
/// ungated values and gates them in place.
pub type GateOverride<'a> = &'a dyn Fn(usize, &mut [f32]);

/// Replacements for the two non-smooth parts of the forward pass, for gradient checks (training
/// uses none: the hard threshold and the plan's gates).
#[derive(Clone, Copy, Default)]
pub struct Hooks<'a> {
    pub spikes: Option<SpikeOverride<'a>>,
    pub gates: Option<GateOverride<'a>>,
}

/// Forward pass with batch statistics, keeping every tensor. `input` is `[T, B, C, H, W]` (or
/// one step's worth, repeated over T).
#[allow(clippy::too_many_arguments)]
pub fn forward_tape(
    plan: &Plan,
    params: &[f32],
    input: &[f32],
    timesteps: usize,
    batch: usize,
    lif_p: LifParams,
    eps: f32,
    hooks: Hooks,
) -> Tape {
    let t = timesteps;
    let n = t * batch;
    assert_eq!(params.len(), plan.num_params, "parameter vector length");
    let in_len = plan.tensors[plan.input].sample_len();
    let input = if input.len() == batch * in_len {
        input.repeat(t)
    } else {
        assert_eq!(input.len(), n * in_len, "input length");
        input.to_vec()
    };
    let mut tensors: Vec<Option<Vec<f32>>> = vec![None; plan.tensors.len()];
    tensors[plan.input] = Some(input);
    let npop = plan.populations.len();
    let mut v_pre = vec![Vec::new(); npop];
    let mut spike_counts = vec![0u64; npop];
    let mut stats = vec![(Vec::new(), Vec::new()); plan.bn_channels.len()];
    let param = |id: usize| {
        let p = &plan.params[id];
        &params[p.offset..p.offset + p.len]
    };
    for op in &plan.ops {
        let y_desc = &plan.tensors[op.output()];
        let get = |id: usize| tensors[id].as_deref().expect("tensor produced before use");
        let y: Vec<f32> = match op {
            Op::Lif { x, pop, .. } => {
                let xv = get(*x);
                let per_t = xv.len() / t;
                let mut s = vec![0.0; xv.len()];
                let mut v = vec![0.0; xv.len()];
                lif_membrane(xv, t, per_t, lif_p, &mut s, &mut v);
                if let Some(f) = hooks.spikes {
                    s = f(*pop, xv, &v);
                }
                spike_counts[*pop] = s.iter().filter(|&&v| v != 0.0).count() as u64;
                v_pre[*pop] = v;
                s
            }
            Op::BatchNorm {
                x,
                gamma,
                beta,
                bn,
                gate,
                ..
            } => {
                let xv = get(*x);
                let hw = y_desc.hw();
                let (mean, var) = bn_stats(xv, n, y_desc.c, hw);
                let mut y = vec![0.0; xv.len()];
                let g = if hooks.gates.is_some() {
                    CpuGate::None
                } else {
                    CpuGate::from(*gate)
                };
                bn_apply(
                    xv,
                    n,
                    y_desc.c,
                    hw,
                    &mean,
                    &var,
                    param(*gamma),
                    param(*beta),
                    eps,
                    g,
                    &mut y,
                );
                if let Some(f) = hooks.gates {
                    f(*bn, &mut y);
                }
                stats[*bn] = (mean, var);
                y
            }
            _ => apply_op(plan, params, op, t, batch, get).expect("an op without state"),
        };
        tensors[op.output()] = Some(y);
    }
    Tape {
        timesteps,
        batch,
        tensors,
        v_pre,
        bn_stats: stats,
        spike_counts,
    }
}

/// What [`gradient`] returns.
#[derive(Clone, Debug)]
pub struct Gradient {
    /// `[B, classes]` time-averaged logits.
    pub logits: Vec<f32>,
    /// Per batch-norm layer, the batch's `(mean, biased var)`.
    pub bn_stats: Vec<(Vec<f32>, Vec<f32>)>,
    /// `dL/dparams`, or `None` where `loss` returned no gradient.
    pub grads: Option<Vec<f32>>,
}

/// A forward pass with batch statistics, `loss(logits)` (`dL/dlogits`, or `None` to stop there,
/// e.g. for a non-finite loss), then the reverse pass: on the fast engine
/// (`crate::cpu::fast`) with [`Kernels::Fast`] where it supports the plan, else on the
/// reference loops (this module).
#[allow(clippy::too_many_arguments)]
pub fn gradient(
    plan: &Plan,
    params: &[f32],
    input: &[f32],
    timesteps: usize,
    batch: usize,
    lif_p: LifParams,
    sg: Surrogate,
    eps: f32,
    kernels: Kernels,
    loss: impl FnOnce(&[f32]) -> Option<Vec<f32>>,
) -> Gradient {
    if kernels == Kernels::Fast && crate::cpu::fast::supports(plan) {
        let tape =
            crate::cpu::fast::forward_tape(plan, params, input, timesteps, batch, lif_p, eps);
        let logits = tape.logits().to_vec();
        let bn_stats = tape.bn_stats().to_vec();
        let grads = loss(&logits).map(|gl| crate::cpu::fast::backward(plan, params, tape, &gl, sg));
        return Gradient {
            logits,
            bn_stats,
            grads,
        };
    }
    let tape = forward_tape(
        plan,
        params,
        input,
        timesteps,
        batch,
        lif_p,
        eps,
        Hooks::default(),
    );
    let logits = tape.logits(plan).to_vec();
    let bn_stats = tape.bn_stats.clone();
    let grads = loss(&logits).map(|gl| backward(plan, params, tape, &gl, lif_p, sg, eps));
    Gradient {
        logits,
        bn_stats,
        grads,
    }
}

fn accumulate(grads: &mut [Option<Vec<f32>>], id: usize, g: Vec<f32>) {
    match &mut grads[id] {
        Some(acc) => add_into(acc, &g),
        slot @ None => *slot = Some(g),
    }
}

/// Reverse pass: `dL/dparams` (length `plan.num_params`) from `dL/dlogits` (`[B, classes]`).
/// Consumes the tape (tensors are freed as soon as the reverse pass is past their producer).
/// The input image gets no gradient. Deterministic: every sum runs in a fixed order.
pub fn backward(
    plan: &Plan,
    params: &[f32],
    mut tape: Tape,
    grad_logits: &[f32],
    lif_p: LifParams,
    sg: Surrogate,
    eps: f32,
) -> Vec<f32> {
    let t = tape.timesteps;
    let n = t * tape.batch;
    let mut gparams = vec![0.0f32; plan.num_params];
    let mut grads: Vec<Option<Vec<f32>>> = vec![None; plan.tensors.len()];
    assert_eq!(
        grad_logits.len(),
        tape.batch * plan.tensors[plan.logits].c,
        "grad_logits must be [B, classes]"
    );
    grads[plan.logits] = Some(grad_logits.to_vec());
    let range = |id: usize| {
        let p = &plan.params[id];
        p.offset..p.offset + p.len
    };
    for op in plan.ops.iter().rev() {
        let out = op.output();
        let Some(gy) = grads[out].take() else {
            tape.tensors[out] = None;
            continue;
        };
        let tensors = &tape.tensors;
        let get = |id: usize| tensors[id].as_deref().expect("tape tensor");
        let y_desc = &plan.tensors[out];
        match op {
            Op::MeanTime { x, .. } => {
                let m = tape.batch * y_desc.c;
                let mut gx = vec![0.0; t * m];
                mean_time_backward(&gy, t, m, &mut gx);
                accumulate(&mut grads, *x, gx);
            }
            Op::Linear {
                x, weight, bias, ..
            } => {
                let in_f = plan.tensors[*x].sample_len();
                let out_f = y_desc.c;
                let mut gx = vec![0.0; n * in_f];
                let mut gw = vec![0.0; out_f * in_f];
                let mut gb = vec![0.0; out_f];
                linear_backward(
                    get(*x),
                    &gy,
                    n,
                    in_f,
                    &params[range(*weight)],
                    out_f,
                    Some(&mut gx),
                    &mut gw,
                    &mut gb,
                );
                gparams[range(*weight)].copy_from_slice(&gw);
                gparams[range(*bias)].copy_from_slice(&gb);
                accumulate(&mut grads, *x, gx);
            }
            Op::AvgPool { x, .. } => {
                let xd = &plan.tensors[*x];
                let mut gx = vec![0.0; n * xd.sample_len()];
                global_avg_pool_backward(&gy, n, xd.c, xd.hw(), &mut gx);
                accumulate(&mut grads, *x, gx);
            }
            Op::Concat { xs, .. } => {
                let cs: Vec<usize> = xs.iter().map(|&x| plan.tensors[x].c).collect();
                let parts = concat_backward(&gy, n, y_desc.hw(), &cs);
                for (&x, g) in xs.iter().zip(parts) {
                    accumulate(&mut grads, x, g);
                }
            }
            Op::Add { xs, .. } => {
                for &x in xs {
                    accumulate(&mut grads, x, gy.clone());
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
                let c = y_desc.c;
                let (mean, var) = &tape.bn_stats[*bn];
                let mut gx = vec![0.0; gy.len()];
                let mut gg = vec![0.0; c];
                let mut gb = vec![0.0; c];
                bn_backward(
                    get(*x),
                    get(out),
                    &gy,
                    n,
                    c,
                    y_desc.hw(),
                    mean,
                    var,
                    &params[range(*gamma)],
                    eps,
                    CpuGate::from(*gate),
                    &mut gx,
                    &mut gg,
                    &mut gb,
                );
                gparams[range(*gamma)].copy_from_slice(&gg);
                gparams[range(*beta)].copy_from_slice(&gb);
                accumulate(&mut grads, *x, gx);
            }
            Op::Conv { x, weight, .. } => {
                let shape = ConvShape::of_op(plan, op, n).expect("a conv op");
                let mut gw = vec![0.0; shape.weight_len()];
                conv2d_backward_weight(get(*x), &gy, &shape, &mut gw);
                gparams[range(*weight)].copy_from_slice(&gw);
                if *x != plan.input {
                    let mut gx = vec![0.0; shape.in_len()];
                    conv2d_backward_input(&gy, &params[range(*weight)], &shape, &mut gx);
                    accumulate(&mut grads, *x, gx);
                }
            }
            Op::Lif { x, pop, .. } => {
                let v = &tape.v_pre[*pop];
                let per_t = v.len() / t;
                let mut gx = vec![0.0; v.len()];
                lif_backward(&gy, v, t, per_t, lif_p, sg, &mut gx);
                accumulate(&mut grads, *x, gx);
            }
        }
        tape.tensors[out] = None;
    }
    gparams
}
