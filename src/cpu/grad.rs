//! Backward twins of the CPU primitives (training by backpropagation through time, SPEC §4).
//!
//! Every function here is the reverse-mode derivative of one forward primitive, with plain slice
//! and size arguments and a loop shape a WGSL kernel can mirror. Gradients are written (`=`),
//! never accumulated, unless a function says otherwise; the plan-level reverse pass
//! ([`super::backprop`]) sums the contributions of tensors read by several ops.
//!
//! Conventions (as in SpikingJelly, `detach_reset = True`):
//!
//! - LIF, decay-input, hard reset to 0 (docs/design.md): `H[t] = V[t-1] + (X[t] - V[t-1]) / tau`,
//!   `S[t] = Θ(H[t] - V_th)`, `V[t] = H[t] (1 - S[t])`. In the backward pass the Heaviside step
//!   is replaced by a surrogate derivative `σ'(H - V_th)` ([`Surrogate`]) and the reset is not
//!   differentiated (`∂V[t]/∂H[t] = 1 - S[t]`, with `S[t]` a constant).
//! - Sign gates: `max(z, 0)` passes the gradient where `z > 0`, `min(z, 0)` where `z < 0`
//!   (PyTorch's ReLU convention: zero gradient at exactly 0).
//! - Batch norm with batch statistics is differentiated through the mean and the variance.

use super::conv::valid_range;
use super::lif::CHUNK;
use super::{ConvShape, Gate, LifParams};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The training loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Loss {
    /// Softmax cross-entropy of the time-averaged logits with label smoothing.
    CrossEntropy,
    /// MSE between the time-averaged outputs and one-hot labels.
    Mse,
}

impl Loss {
    pub fn parse(s: &str) -> Option<Loss> {
        match s {
            "ce" => Some(Loss::CrossEntropy),
            "mse" => Some(Loss::Mse),
            _ => None,
        }
    }

    /// Loss and `dL/dlogits` of a batch.
    pub fn eval(
        self,
        logits: &[f32],
        labels: &[u16],
        classes: usize,
        smoothing: f32,
    ) -> (f32, Vec<f32>) {
        match self {
            Loss::CrossEntropy => softmax_cross_entropy(logits, labels, classes, smoothing),
            Loss::Mse => mse_rate_loss(logits, labels, classes),
        }
    }
}

/// The surrogate derivative of the spike function `S = Θ(u)`, `u = V - V_th`. Each variant is the
/// derivative of a smooth "primitive" `σ(u)` (a soft step from 0 to 1), SpikingJelly's
/// convention: the backward pass uses `σ'(u)` wherever the forward pass used `Θ(u)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum Surrogate {
    /// Triangle (SpikingJelly `PiecewiseQuadratic`): `σ'(u) = α - α²|u|` for `|u| < 1/α`, else 0.
    /// Primitive: 0 below `-1/α`, `-α²|u|u/2 + αu + 1/2` inside, 1 above `1/α`. SPEC default α = 2.
    Triangle { alpha: f32 },
    /// Sigmoid (SpikingJelly `Sigmoid`): `σ(u) = 1 / (1 + e^{-αu})`,
    /// `σ'(u) = α σ(u) (1 - σ(u))`. Default α = 4 (SpikingJelly's).
    Sigmoid { alpha: f32 },
    /// Arctangent (SpikingJelly `ATan`): `σ(u) = atan(π/2 α u) / π + 1/2`,
    /// `σ'(u) = (α/2) / (1 + (π/2 α u)²)`. Default α = 2 (SpikingJelly's).
    Atan { alpha: f32 },
}

impl Default for Surrogate {
    fn default() -> Self {
        Surrogate::Triangle { alpha: 2.0 }
    }
}

impl Surrogate {
    /// The names accepted by [`Surrogate::parse`].
    pub const NAMES: &'static [&'static str] = &["triangle", "sigmoid", "atan"];

    /// `triangle`, `sigmoid` or `atan` with the default α, or `NAME:ALPHA` (e.g. `atan:3`).
    pub fn parse(spec: &str) -> Option<Surrogate> {
        let (name, alpha) = match spec.split_once(':') {
            Some((n, a)) => {
                let a: f32 = a.trim().parse().ok()?;
                if !(a.is_finite() && a > 0.0) {
                    return None;
                }
                (n.trim(), Some(a))
            }
            None => (spec.trim(), None),
        };
        Some(match name {
            "triangle" => Surrogate::Triangle {
                alpha: alpha.unwrap_or(2.0),
            },
            "sigmoid" => Surrogate::Sigmoid {
                alpha: alpha.unwrap_or(4.0),
            },
            "atan" => Surrogate::Atan {
                alpha: alpha.unwrap_or(2.0),
            },
            _ => return None,
        })
    }

    /// `σ'(u)` in f32, the value the backward pass uses.
    pub fn grad(self, u: f32) -> f32 {
        match self {
            Surrogate::Triangle { alpha } => {
                let a = u.abs();
                if a * alpha < 1.0 {
                    alpha - alpha * alpha * a
                } else {
                    0.0
                }
            }
            Surrogate::Sigmoid { alpha } => {
                let s = 1.0 / (1.0 + (-alpha * u).exp());
                alpha * s * (1.0 - s)
            }
            Surrogate::Atan { alpha } => {
                let z = std::f32::consts::FRAC_PI_2 * alpha * u;
                alpha * 0.5 / (1.0 + z * z)
            }
        }
    }

    /// The smooth primitive `σ(u)` in f64 (used to check [`Surrogate::grad`] numerically and for
    /// gradient checks of whole networks).
    pub fn primitive(self, u: f64) -> f64 {
        match self {
            Surrogate::Triangle { alpha } => {
                let a = f64::from(alpha);
                if u <= -1.0 / a {
                    0.0
                } else if u >= 1.0 / a {
                    1.0
                } else {
                    -0.5 * a * a * u.abs() * u + a * u + 0.5
                }
            }
            Surrogate::Sigmoid { alpha } => 1.0 / (1.0 + (-f64::from(alpha) * u).exp()),
            Surrogate::Atan { alpha } => {
                (std::f64::consts::FRAC_PI_2 * f64::from(alpha) * u).atan() / std::f64::consts::PI
                    + 0.5
            }
        }
    }
}

/// Backward of [`super::lif()`] through time. `grad_s` is `dL/dS` (`[T, n]`), `v_pre` the membrane
/// after integration and before the reset (`[T, n]`, from [`super::lif_membrane`]); writes
/// `grad_x = dL/dX` (`[T, n]`). Per neuron, from the last step down, with `g_v = 0` after the last
/// step:
///
/// ```text
/// s    = v_pre[t] > v_th
/// g_h  = grad_s[t] * σ'(v_pre[t] - v_th) + (s ? 0 : g_v)     // reset not differentiated
/// grad_x[t] = g_h * tau_inv
/// g_v  = g_h * (1 - tau_inv)                                  // into step t-1
/// ```
#[allow(clippy::too_many_arguments)]
pub fn lif_backward(
    grad_s: &[f32],
    v_pre: &[f32],
    t: usize,
    n: usize,
    p: LifParams,
    sg: Surrogate,
    grad_x: &mut [f32],
) {
    assert_eq!(grad_s.len(), t * n, "lif_backward: grad_s must be [T, n]");
    assert_eq!(v_pre.len(), t * n, "lif_backward: v_pre must be [T, n]");
    assert_eq!(grad_x.len(), t * n, "lif_backward: grad_x must be [T, n]");
    let keep = 1.0 - p.tau_inv;
    // Step by step backwards, neurons in parallel chunks: each neuron's operations and their
    // order are those of a per-neuron loop, whatever the split.
    let mut g_v = vec![0.0f32; n];
    for step in (0..t).rev() {
        let r = step * n..(step + 1) * n;
        let (gs, vp, gx) = (&grad_s[r.clone()], &v_pre[r.clone()], &mut grad_x[r]);
        g_v.par_chunks_mut(CHUNK)
            .zip(gs.par_chunks(CHUNK).zip(vp.par_chunks(CHUNK)))
            .zip(gx.par_chunks_mut(CHUNK))
            .for_each(|((g_v, (gs, vp)), gx)| {
                for (((g_v, &gs), &h), gx) in g_v.iter_mut().zip(gs).zip(vp).zip(gx) {
                    let through = if h > p.v_th { 0.0 } else { *g_v };
                    let g_h = gs * sg.grad(h - p.v_th) + through;
                    *gx = g_h * p.tau_inv;
                    *g_v = g_h * keep;
                }
            });
    }
}

/// Input gradient of [`super::conv2d`]: `gx[n,i,iy,ix] = sum_{o,dy,dx} w[o,i,dy,dx] *
/// gy[n,o,oy,ox]` over the output positions `(oy, ox)` that read `(iy, ix)` through tap
/// `(dy, dx)`. `gy` is `[n, cout, out_h, out_w]`, `gx` is `[n, cin, h, w]` (overwritten). Images
/// run in parallel; within one image the loop is o, i, dy, dx, oy, ox (a scatter), so every `gx`
/// element sums its terms in the order o, dy, dx from +0: a gather kernel with one thread per
/// `gx` element looping o, dy, dx gives the same bits.
pub fn conv2d_backward_input(gy: &[f32], w: &[f32], s: &ConvShape, gx: &mut [f32]) {
    assert_eq!(gy.len(), s.out_len(), "conv2d_backward_input: gy length");
    assert_eq!(w.len(), s.weight_len(), "conv2d_backward_input: w length");
    assert_eq!(gx.len(), s.in_len(), "conv2d_backward_input: gx length");
    let (ho, wo) = (s.out_h(), s.out_w());
    let (in_img, out_img) = (s.cin * s.h * s.w, s.cout * ho * wo);
    if in_img == 0 || out_img == 0 {
        gx.fill(0.0);
        return;
    }
    gx.par_chunks_mut(in_img)
        .zip(gy.par_chunks(out_img))
        .for_each(|(gx_n, gy_n)| conv_bwd_input_image(gy_n, w, s, gx_n));
}

fn conv_bwd_input_image(gy_n: &[f32], w: &[f32], s: &ConvShape, gx_n: &mut [f32]) {
    let (h, wd, k, st) = (s.h, s.w, s.k, s.stride);
    let (ho, wo) = (s.out_h(), s.out_w());
    let base = s.shift as isize - s.pad() as isize;
    gx_n.fill(0.0);
    for o in 0..s.cout {
        let gplane = &gy_n[o * ho * wo..(o + 1) * ho * wo];
        for i in 0..s.cin {
            let gin = &mut gx_n[i * h * wd..(i + 1) * h * wd];
            let wk = &w[(o * s.cin + i) * k * k..(o * s.cin + i + 1) * k * k];
            for dy in 0..k {
                let ys = valid_range(dy as isize + base, st, h, ho);
                for dx in 0..k {
                    let wv = wk[dy * k + dx];
                    let xoff = dx as isize + base;
                    let xs = valid_range(xoff, st, wd, wo);
                    if xs.is_empty() {
                        continue;
                    }
                    for oy in ys.clone() {
                        let iy = ((oy * st) as isize + dy as isize + base) as usize;
                        let g_row = &gplane[oy * wo..(oy + 1) * wo];
                        let in_row = &mut gin[iy * wd..(iy + 1) * wd];
                        let ix0 = ((xs.start * st) as isize + xoff) as usize;
                        if st == 1 {
                            for (a, &g) in in_row[ix0..ix0 + xs.len()]
                                .iter_mut()
                                .zip(&g_row[xs.clone()])
                            {
                                *a += wv * g;
                            }
                        } else {
                            for (j, &g) in g_row[xs.clone()].iter().enumerate() {
                                in_row[ix0 + j * st] += wv * g;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Weight gradient of [`super::conv2d`]: `gw[o,i,dy,dx] = sum_n sum_{oy,ox} gy[n,o,oy,ox] *
/// x[n,i,iy,ix]` (padding reads contribute nothing). `gw` is `[cout, cin, k, k]` (overwritten).
///
/// Summation order (fixed, independent of threads): output channels run in parallel; for one
/// weight and one image, each output column `ox` has its own f32 lane that sums its terms over
/// the rows `oy` in order, from +0; the lanes are then added in `ox` order into the image's
/// partial sum (from +0), and the per-image partial sums are added in image order into the total
/// (from +0). Lanes that read only padding stay +0.
pub fn conv2d_backward_weight(x: &[f32], gy: &[f32], s: &ConvShape, gw: &mut [f32]) {
    assert_eq!(x.len(), s.in_len(), "conv2d_backward_weight: x length");
    assert_eq!(gy.len(), s.out_len(), "conv2d_backward_weight: gy length");
    assert_eq!(
        gw.len(),
        s.weight_len(),
        "conv2d_backward_weight: gw length"
    );
    let (h, wd, k, st) = (s.h, s.w, s.k, s.stride);
    let (ho, wo) = (s.out_h(), s.out_w());
    let (in_img, out_img) = (s.cin * h * wd, s.cout * ho * wo);
    let per_o = s.cin * k * k;
    if per_o == 0 {
        return;
    }
    let base = s.shift as isize - s.pad() as isize;
    gw.par_chunks_mut(per_o).enumerate().for_each(|(o, gw_o)| {
        gw_o.fill(0.0);
        let mut lanes = vec![0.0f32; wo];
        for img in 0..s.n {
            let gplane = &gy[img * out_img + o * ho * wo..img * out_img + (o + 1) * ho * wo];
            let x_n = &x[img * in_img..(img + 1) * in_img];
            for i in 0..s.cin {
                let xin = &x_n[i * h * wd..(i + 1) * h * wd];
                for dy in 0..k {
                    let ys = valid_range(dy as isize + base, st, h, ho);
                    for dx in 0..k {
                        let xoff = dx as isize + base;
                        let xs = valid_range(xoff, st, wd, wo);
                        let mut acc = 0.0f32;
                        if !xs.is_empty() && !ys.is_empty() {
                            lanes.fill(0.0);
                            let ix0 = ((xs.start * st) as isize + xoff) as usize;
                            for oy in ys.clone() {
                                let iy = ((oy * st) as isize + dy as isize + base) as usize;
                                let g_row = &gplane[oy * wo..(oy + 1) * wo];
                                let in_row = &xin[iy * wd..(iy + 1) * wd];
                                let lane = &mut lanes[xs.clone()];
                                if st == 1 {
                                    let src = &in_row[ix0..ix0 + xs.len()];
                                    for ((l, &g), &v) in
                                        lane.iter_mut().zip(&g_row[xs.clone()]).zip(src)
                                    {
                                        *l += g * v;
                                    }
                                } else {
                                    for (j, (l, &g)) in
                                        lane.iter_mut().zip(&g_row[xs.clone()]).enumerate()
                                    {
                                        *l += g * in_row[ix0 + j * st];
                                    }
                                }
                            }
                            for &l in &lanes {
                                acc += l;
                            }
                        }
                        gw_o[(i * k + dy) * k + dx] += acc;
                    }
                }
            }
        }
    });
}

/// Backward of [`super::bn_apply`] with the batch's own statistics (training mode) and the
/// fused sign gate. `x` is the BN input and `y` its output (`[n, c, hw]`), `mean`/`var` the batch
/// statistics [`super::bn_stats`] returned, `gy = dL/dy`. Writes `gx`, `ggamma`, `gbeta`.
///
/// With `sd = sqrt(var + eps)` (f32, as the forward), `x̂ = (x - mean) / sd`, `N = n*hw` and
/// `g = gy * gate'(z)` (the gate passes where `y > 0` for excitatory, `y < 0` for inhibitory,
/// everywhere for none):
///
/// ```text
/// gbeta  = Σ g            ggamma = Σ g x̂              (per channel, f64 in the order n, hw)
/// gx     = gamma / sd * (g - gbeta / N - x̂ * ggamma / N)
/// ```
///
/// (the full derivative through the batch mean and the biased variance). Channel sums run in
/// parallel over channels, `gx` in parallel over images.
#[allow(clippy::too_many_arguments)]
pub fn bn_backward(
    x: &[f32],
    y: &[f32],
    gy: &[f32],
    n: usize,
    c: usize,
    hw: usize,
    mean: &[f32],
    var: &[f32],
    gamma: &[f32],
    eps: f32,
    gate: Gate,
    gx: &mut [f32],
    ggamma: &mut [f32],
    gbeta: &mut [f32],
) {
    let len = n * c * hw;
    assert_eq!(x.len(), len, "bn_backward: x must be [n, c, hw]");
    assert_eq!(y.len(), len, "bn_backward: y must be [n, c, hw]");
    assert_eq!(gy.len(), len, "bn_backward: gy must be [n, c, hw]");
    assert_eq!(gx.len(), len, "bn_backward: gx must be [n, c, hw]");
    for (name, p) in [("mean", mean), ("var", var), ("gamma", gamma)] {
        assert_eq!(p.len(), c, "bn_backward: {name} must have c entries");
    }
    assert_eq!(ggamma.len(), c, "bn_backward: ggamma must have c entries");
    assert_eq!(gbeta.len(), c, "bn_backward: gbeta must have c entries");
    let pass = |yv: f32| match gate {
        Gate::None => true,
        Gate::Excitatory => yv > 0.0,
        Gate::Inhibitory => yv < 0.0,
    };
    let sd: Vec<f32> = var.iter().map(|&v| (v + eps).sqrt()).collect();
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mut sg, mut sgx) = (0.0f64, 0.0f64);
            for img in 0..n {
                let at = (img * c + ch) * hw;
                for j in at..at + hw {
                    if pass(y[j]) {
                        let g = f64::from(gy[j]);
                        let xh = f64::from((x[j] - mean[ch]) / sd[ch]);
                        sg += g;
                        sgx += g * xh;
                    }
                }
            }
            (sg, sgx)
        })
        .collect();
    let count = (n * hw).max(1) as f64;
    let mut coef = vec![(0.0f32, 0.0f32, 0.0f32); c];
    for ch in 0..c {
        let (sg, sgx) = sums[ch];
        gbeta[ch] = sg as f32;
        ggamma[ch] = sgx as f32;
        coef[ch] = (
            gamma[ch] / sd[ch],
            (sg / count) as f32,
            (sgx / count) as f32,
        );
    }
    if len == 0 {
        return;
    }
    gx.par_chunks_mut(c * hw)
        .enumerate()
        .for_each(|(img, gx_n)| {
            for ch in 0..c {
                let (scale, mg, mgx) = coef[ch];
                let at = (img * c + ch) * hw;
                for (jj, o) in gx_n[ch * hw..(ch + 1) * hw].iter_mut().enumerate() {
                    let j = at + jj;
                    let g = if pass(y[j]) { gy[j] } else { 0.0 };
                    let xh = (x[j] - mean[ch]) / sd[ch];
                    *o = scale * (g - mg - xh * mgx);
                }
            }
        });
}

/// Backward of [`super::concat_channels`]: splits `gy` (`[n, sum c_i, hw]`) into one
/// `[n, c_i, hw]` gradient per input.
pub fn concat_backward(gy: &[f32], n: usize, hw: usize, cs: &[usize]) -> Vec<Vec<f32>> {
    let c_total: usize = cs.iter().sum();
    assert_eq!(gy.len(), n * c_total * hw, "concat_backward: gy length");
    let mut outs: Vec<Vec<f32>> = cs.iter().map(|&c| Vec::with_capacity(n * c * hw)).collect();
    for img in 0..n {
        let mut at = img * c_total * hw;
        for (o, &c) in outs.iter_mut().zip(cs) {
            o.extend_from_slice(&gy[at..at + c * hw]);
            at += c * hw;
        }
    }
    outs
}

/// Backward of [`super::global_avg_pool`]: `gx[n, c, j] = gy[n, c] / hw`.
pub fn global_avg_pool_backward(gy: &[f32], n: usize, c: usize, hw: usize, gx: &mut [f32]) {
    assert_eq!(
        gy.len(),
        n * c,
        "global_avg_pool_backward: gy must be [n, c]"
    );
    assert_eq!(
        gx.len(),
        n * c * hw,
        "global_avg_pool_backward: gx must be [n, c, hw]"
    );
    let inv = hw as f32;
    for (plane, &g) in gx.chunks_exact_mut(hw.max(1)).zip(gy) {
        plane.fill(g / inv);
    }
}

/// Backward of [`super::linear`]. `gy` is `[n, out_f]`. Writes `gw[o, i] = Σ_r gy[r, o] x[r, i]`
/// and `gb[o] = Σ_r gy[r, o]` (f32, rows in order), and, when given, `gx[r, i] = Σ_o gy[r, o]
/// w[o, i]` (f32, o in order).
#[allow(clippy::too_many_arguments)]
pub fn linear_backward(
    x: &[f32],
    gy: &[f32],
    n: usize,
    in_f: usize,
    w: &[f32],
    out_f: usize,
    gx: Option<&mut [f32]>,
    gw: &mut [f32],
    gb: &mut [f32],
) {
    assert_eq!(x.len(), n * in_f, "linear_backward: x must be [n, in_f]");
    assert_eq!(
        gy.len(),
        n * out_f,
        "linear_backward: gy must be [n, out_f]"
    );
    assert_eq!(
        w.len(),
        out_f * in_f,
        "linear_backward: w must be [out_f, in_f]"
    );
    assert_eq!(
        gw.len(),
        out_f * in_f,
        "linear_backward: gw must be [out_f, in_f]"
    );
    assert_eq!(gb.len(), out_f, "linear_backward: gb must be [out_f]");
    for o in 0..out_f {
        let mut b = 0.0f32;
        for r in 0..n {
            b += gy[r * out_f + o];
        }
        gb[o] = b;
        for i in 0..in_f {
            let mut acc = 0.0f32;
            for r in 0..n {
                acc += gy[r * out_f + o] * x[r * in_f + i];
            }
            gw[o * in_f + i] = acc;
        }
    }
    if let Some(gx) = gx {
        assert_eq!(gx.len(), n * in_f, "linear_backward: gx must be [n, in_f]");
        for r in 0..n {
            for i in 0..in_f {
                let mut acc = 0.0f32;
                for o in 0..out_f {
                    acc += gy[r * out_f + o] * w[o * in_f + i];
                }
                gx[r * in_f + i] = acc;
            }
        }
    }
}

/// Backward of [`super::mean_time`]: `gx[t, j] = gy[j] / T`.
pub fn mean_time_backward(gy: &[f32], t: usize, m: usize, gx: &mut [f32]) {
    assert_eq!(gy.len(), m, "mean_time_backward: gy must be [m]");
    assert_eq!(gx.len(), t * m, "mean_time_backward: gx must be [T, m]");
    for step in 0..t {
        for j in 0..m {
            gx[step * m + j] = gy[j] / t as f32;
        }
    }
}

/// Softmax cross-entropy with label smoothing, averaged over the batch (PyTorch's
/// `F.cross_entropy(logits, labels, label_smoothing=eps)`): the target of row r is
/// `q = (1 - eps) onehot(label_r) + eps / K`, the loss `-(1/B) Σ_r Σ_k q_k log softmax(l_r)_k`.
/// Returns the loss and `dL/dlogits = (softmax(l) - q) / B` (`[B, K]`). Computed in f64 per row
/// (max-subtracted log-sum-exp).
pub fn softmax_cross_entropy(
    logits: &[f32],
    labels: &[u16],
    k: usize,
    smoothing: f32,
) -> (f32, Vec<f32>) {
    let b = labels.len();
    assert_eq!(
        logits.len(),
        b * k,
        "softmax_cross_entropy: logits must be [B, K]"
    );
    let eps = f64::from(smoothing);
    let mut grad = vec![0.0f32; b * k];
    let mut loss = 0.0f64;
    for r in 0..b {
        let row = &logits[r * k..(r + 1) * k];
        let m = row
            .iter()
            .fold(f64::NEG_INFINITY, |a, &v| a.max(f64::from(v)));
        let z: f64 = row.iter().map(|&v| (f64::from(v) - m).exp()).sum();
        let lse = m + z.ln();
        let label = labels[r] as usize;
        assert!(label < k, "softmax_cross_entropy: label {label} >= {k}");
        for j in 0..k {
            let logp = f64::from(row[j]) - lse;
            let q = eps / k as f64 + if j == label { 1.0 - eps } else { 0.0 };
            loss -= q * logp;
            grad[r * k + j] = ((logp.exp() - q) / b as f64) as f32;
        }
    }
    ((loss / b.max(1) as f64) as f32, grad)
}

/// Mean squared error between the time-averaged outputs (the head's mean over time, read as
/// output rates) and the one-hot labels, averaged over all `B*K` entries (SpikingJelly's
/// `F.mse_loss(out_fr, onehot)`). Returns the loss and `dL/dlogits = 2 (l - onehot) / (B K)`.
pub fn mse_rate_loss(logits: &[f32], labels: &[u16], k: usize) -> (f32, Vec<f32>) {
    let b = labels.len();
    assert_eq!(logits.len(), b * k, "mse_rate_loss: logits must be [B, K]");
    let count = (b * k).max(1) as f64;
    let mut grad = vec![0.0f32; b * k];
    let mut loss = 0.0f64;
    for r in 0..b {
        for j in 0..k {
            let target = if labels[r] as usize == j { 1.0 } else { 0.0 };
            let d = f64::from(logits[r * k + j]) - target;
            loss += d * d;
            grad[r * k + j] = (2.0 * d / count) as f32;
        }
    }
    ((loss / count) as f32, grad)
}

#[cfg(test)]
mod tests;
