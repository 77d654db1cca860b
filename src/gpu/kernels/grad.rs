//! Training kernels on the device: the twins of `cpu::grad` (backward pass), of
//! `cpu::lif_membrane` (the forward LIF keeping its membrane), of the AdamW step in
//! `train::optim` and of `cpu::bn_update_running`.
//!
//! Launchers follow the other kernel families: views in place of slices, element offsets in the
//! parameters, errors naming the kernel. A buffer read by a launcher must not also be one it
//! writes (wgpu rejects a buffer bound both read-only and writable in one dispatch); the
//! launchers check this up front.
//!
//! Summation orders follow the CPU twins where the CPU's order is a plain loop (LIF, convolution
//! input gradient, linear, the AdamW and running-statistics updates), with every product that
//! feeds a sum kept out of fused multiply-adds (`shaders/shared/unfused.wgsl`), so those results
//! are bit-identical with the CPU up to the accuracy of WGSL's built-ins (division, `exp`, `log`,
//! `sqrt`). Reductions the CPU runs in f64 or in a lane layout (convolution weight gradient,
//! batch-norm channel sums, losses) are workgroup tree reductions in f32: deterministic, within a
//! small relative tolerance of the CPU.

use bytemuck::{Pod, Zeroable};

use super::{grid_1d, u32_of, KernelId, View};
pub use crate::cpu::grad::Surrogate;
use crate::cpu::{ConvShape, LifParams};
use crate::gpu::Recorder;
use crate::{Error, Result};

/// Fails when a view written by `kernel` shares a buffer with a view it reads.
fn disjoint(kernel: &str, reads: &[(&str, View<'_>)], writes: &[(&str, View<'_>)]) -> Result<()> {
    for (wn, w) in writes {
        for (rn, r) in reads {
            if w.buffer == r.buffer {
                return Err(Error::Gpu(format!(
                    "{kernel}: `{wn}` is written and `{rn}` read in the same buffer; \
                     a dispatch cannot bind one buffer both ways"
                )));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- LIF

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct LifGradParams {
    n: u32,
    steps: u32,
    a_off: u32,
    b_off: u32,
    out_off: u32,
    v_off: u32,
    zero: u32,
    surrogate: u32,
    tau_inv: f32,
    v_th: f32,
    keep: f32,
    alpha: f32,
    alpha_sq: f32,
    atan_k: f32,
    half_alpha: f32,
}

/// Forward LIF keeping what the backward needs: `x` [T, n] -> `spikes` [T, n] f32 0/1 and
/// `v_pre` [T, n] (membrane after integration, before reset), bit-identical to
/// `cpu::lif_membrane`.
#[allow(clippy::too_many_arguments)]
pub fn lif_train(
    rec: &mut Recorder<'_>,
    x: View<'_>,
    t: usize,
    n: usize,
    p: LifParams,
    spikes: View<'_>,
    v_pre: View<'_>,
) -> Result<()> {
    const K: &str = "grad::lif_train";
    let len = u32_of("t * n", t * n)?;
    let x = x.need("x", K, t * n)?;
    let spikes = spikes.need("spikes", K, t * n)?;
    let v_pre = v_pre.need("v_pre", K, t * n)?;
    disjoint(K, &[("x", x)], &[("spikes", spikes), ("v_pre", v_pre)])?;
    let params = LifGradParams {
        n: n as u32,
        steps: t as u32,
        a_off: x.offset,
        out_off: spikes.offset,
        v_off: v_pre.offset,
        tau_inv: p.tau_inv,
        v_th: p.v_th,
        ..Default::default()
    };
    let groups = if len == 0 { [0, 1, 1] } else { grid_1d(n, 64) };
    rec.dispatch(
        KernelId::GradLifTrain,
        &params,
        &[x.buffer, spikes.buffer, v_pre.buffer],
        groups,
    )
}

/// Backward of LIF through time, the twin of `cpu::grad::lif_backward`: `grad_s = dL/dS` and
/// `v_pre` (from [`lif_train`]) [T, n] -> `grad_x = dL/dX` [T, n]. Bit-identical with the CPU for
/// the triangle surrogate; sigmoid and atan differ by the accuracy of WGSL's `exp` and division.
#[allow(clippy::too_many_arguments)]
pub fn lif_backward(
    rec: &mut Recorder<'_>,
    grad_s: View<'_>,
    v_pre: View<'_>,
    t: usize,
    n: usize,
    p: LifParams,
    sg: Surrogate,
    grad_x: View<'_>,
) -> Result<()> {
    const K: &str = "grad::lif_backward";
    let len = u32_of("t * n", t * n)?;
    let grad_s = grad_s.need("grad_s", K, t * n)?;
    let v_pre = v_pre.need("v_pre", K, t * n)?;
    let grad_x = grad_x.need("grad_x", K, t * n)?;
    disjoint(
        K,
        &[("grad_s", grad_s), ("v_pre", v_pre)],
        &[("grad_x", grad_x)],
    )?;
    let (surrogate, alpha) = match sg {
        Surrogate::Triangle { alpha } => (0, alpha),
        Surrogate::Sigmoid { alpha } => (1, alpha),
        Surrogate::Atan { alpha } => (2, alpha),
    };
    let params = LifGradParams {
        n: n as u32,
        steps: t as u32,
        a_off: grad_s.offset,
        b_off: v_pre.offset,
        out_off: grad_x.offset,
        surrogate,
        tau_inv: p.tau_inv,
        v_th: p.v_th,
        keep: 1.0 - p.tau_inv,
        alpha,
        alpha_sq: alpha * alpha,
        atan_k: std::f32::consts::FRAC_PI_2 * alpha,
        half_alpha: alpha * 0.5,
        ..Default::default()
    };
    let groups = if len == 0 { [0, 1, 1] } else { grid_1d(n, 64) };
    rec.dispatch(
        KernelId::GradLifBackward,
        &params,
        &[grad_s.buffer, v_pre.buffer, grad_x.buffer],
        groups,
    )
}

// ---------------------------------------------------------------- convolution

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ConvGradParams {
    images: u32,
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    k: u32,
    stride: u32,
    shift: u32,
    ho: u32,
    wo: u32,
    a_off: u32,
    b_off: u32,
    out_off: u32,
    zero: u32,
}

fn conv_params(
    s: &ConvShape,
    kernel: &str,
    a_off: u32,
    b_off: u32,
    out_off: u32,
) -> Result<ConvGradParams> {
    if ![1, 3, 5].contains(&s.k) || ![1, 2].contains(&s.stride) {
        return Err(Error::Gpu(format!(
            "{kernel}: k = {}, stride = {} (allowed: k 1/3/5, stride 1/2)",
            s.k, s.stride
        )));
    }
    if s.n > 65_535 || s.cout > 65_535 || s.cin > 65_535 {
        return Err(Error::Gpu(format!(
            "{kernel}: {} images, {} input and {} output channels exceed the grid (65,535)",
            s.n, s.cin, s.cout
        )));
    }
    u32_of("input length", s.in_len())?;
    u32_of("output length", s.out_len())?;
    Ok(ConvGradParams {
        images: s.n as u32,
        cin: s.cin as u32,
        h: s.h as u32,
        w: s.w as u32,
        cout: s.cout as u32,
        k: s.k as u32,
        stride: s.stride as u32,
        shift: s.shift as u32,
        ho: s.out_h() as u32,
        wo: s.out_w() as u32,
        a_off,
        b_off,
        out_off,
        zero: 0,
    })
}

/// Input gradient of `conv::conv2d`, the twin of `cpu::grad::conv2d_backward_input`: `gy`
/// [n, cout, Ho, Wo] and `w` [cout, cin, k, k] -> `gx` [n, cin, h, w] (overwritten). Each `gx`
/// element sums its terms in the CPU's order (o, dy, dx), so the result is bit-identical.
pub fn conv2d_backward_input(
    rec: &mut Recorder<'_>,
    gy: View<'_>,
    w: View<'_>,
    s: &ConvShape,
    gx: View<'_>,
) -> Result<()> {
    const K: &str = "grad::conv2d_backward_input";
    let gy = gy.need("gy", K, s.out_len())?;
    let w = w.need("w", K, s.weight_len())?;
    let gx = gx.need("gx", K, s.in_len())?;
    disjoint(K, &[("gy", gy), ("w", w)], &[("gx", gx)])?;
    let p = conv_params(s, K, gy.offset, w.offset, gx.offset)?;
    rec.dispatch(
        KernelId::GradConvInput,
        &p,
        &[gy.buffer, w.buffer, gx.buffer],
        [(s.h * s.w).div_ceil(64) as u32, s.cin as u32, s.n as u32],
    )
}

/// Weight gradient of `conv::conv2d`, the twin of `cpu::grad::conv2d_backward_weight`: `x`
/// [n, cin, h, w] and `gy` [n, cout, Ho, Wo] -> `gw` [cout, cin, k, k] (overwritten). One
/// workgroup per (output, input) channel pair reduces over images and output positions by a
/// fixed tree: deterministic, and within f32 rounding of the CPU's order.
pub fn conv2d_backward_weight(
    rec: &mut Recorder<'_>,
    x: View<'_>,
    gy: View<'_>,
    s: &ConvShape,
    gw: View<'_>,
) -> Result<()> {
    const K: &str = "grad::conv2d_backward_weight";
    let x = x.need("x", K, s.in_len())?;
    let gy = gy.need("gy", K, s.out_len())?;
    let gw = gw.need("gw", K, s.weight_len())?;
    disjoint(K, &[("x", x), ("gy", gy)], &[("gw", gw)])?;
    let p = conv_params(s, K, x.offset, gy.offset, gw.offset)?;
    rec.dispatch(
        KernelId::GradConvWeight,
        &p,
        &[x.buffer, gy.buffer, gw.buffer],
        [s.cin as u32, s.cout as u32, 1],
    )
}
