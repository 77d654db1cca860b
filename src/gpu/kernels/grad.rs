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

use super::{gemm_grid, grid_1d, u32_of, KernelId, View};
use crate::cpu::batchnorm::Gate;
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

/// The shapes the kernels support, checked before any view is sized from the shape.
fn conv_check(s: &ConvShape, kernel: &str) -> Result<()> {
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
    Ok(())
}

fn conv_params(s: &ConvShape, a_off: u32, b_off: u32, out_off: u32) -> ConvGradParams {
    ConvGradParams {
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
    }
}

/// The tiled gradient kernels' parameters: the direct ones and the GEMM's N and K.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ConvGemmParams {
    base: ConvGradParams,
    cols: u32,
    kdim: u32,
    splits: u32,
    split_len: u32,
    _pad: [u32; 2],
}

/// Input gradient of `conv::conv2d`, the twin of `cpu::grad::conv2d_backward_input`: `gy`
/// [n, cout, Ho, Wo] and `w` [cout, cin, k, k] -> `gx` [n, cin, h, w] (overwritten), as a tiled
/// implicit GEMM (`shaders/grad_conv_gemm.wgsl`). Each `gx` element sums its terms in the CPU's
/// order (o, dy, dx) with unfused products, so the result is bit-identical.
pub fn conv2d_backward_input(
    rec: &mut Recorder<'_>,
    gy: View<'_>,
    w: View<'_>,
    s: &ConvShape,
    gx: View<'_>,
) -> Result<()> {
    const K: &str = "grad::conv2d_backward_input";
    conv_check(s, K)?;
    let gy = gy.need("gy", K, s.out_len())?;
    let w = w.need("w", K, s.weight_len())?;
    let gx = gx.need("gx", K, s.in_len())?;
    disjoint(K, &[("gy", gy), ("w", w)], &[("gx", gx)])?;
    let p = ConvGemmParams {
        base: conv_params(s, gy.offset, w.offset, gx.offset),
        cols: u32_of("images x input pixels", s.n * s.h * s.w)?,
        kdim: u32_of("cout x k x k", s.cout * s.k * s.k)?,
        splits: 1,
        split_len: 0,
        _pad: [0; 2],
    };
    rec.dispatch(
        KernelId::GradConvGemmInput,
        &p,
        &[gy.buffer, w.buffer, gx.buffer],
        // Input pixels of all images as columns, input channels as rows.
        gemm_grid(s.n * s.h * s.w, s.cin),
    )
}

#[cfg(any(test, feature = "internals"))]
/// [`conv2d_backward_input`] by the direct kernel (one `gx` element per thread, weights staged
/// per input channel): the benchmark's baseline, with the same bits.
pub fn conv2d_backward_input_direct(
    rec: &mut Recorder<'_>,
    gy: View<'_>,
    w: View<'_>,
    s: &ConvShape,
    gx: View<'_>,
) -> Result<()> {
    const K: &str = "grad::conv2d_backward_input_direct";
    conv_check(s, K)?;
    let gy = gy.need("gy", K, s.out_len())?;
    let w = w.need("w", K, s.weight_len())?;
    let gx = gx.need("gx", K, s.in_len())?;
    disjoint(K, &[("gy", gy), ("w", w)], &[("gx", gx)])?;
    let p = conv_params(s, gy.offset, w.offset, gx.offset);
    rec.dispatch(
        KernelId::GradConvInput,
        &p,
        &[gy.buffer, w.buffer, gx.buffer],
        [(s.h * s.w).div_ceil(64) as u32, s.cin as u32, s.n as u32],
    )
}

/// How many slices [`conv2d_backward_weight`] cuts the sum over `positions` into: enough for
/// about 1,024 workgroups over `tiles` output tiles, each slice at least 256 positions, the
/// partial tiles (`per_slice` floats each) fitting in `scratch` floats; and the slice length.
/// No slice is empty.
fn weight_splits(positions: usize, tiles: usize, per_slice: usize, scratch: usize) -> (u32, u32) {
    let splits = 1024usize
        .div_ceil(tiles.max(1))
        .min(positions.div_ceil(256))
        .min(scratch / per_slice.max(1))
        .clamp(1, 65_535);
    let len = positions.div_ceil(splits).max(1);
    (positions.div_ceil(len).max(1) as u32, len as u32)
}

/// Weight gradient of `conv::conv2d`, the twin of `cpu::grad::conv2d_backward_weight`: `x`
/// [n, cin, h, w] and `gy` [n, cout, Ho, Wo] -> `gw` [cout, cin, k, k] (overwritten), as a tiled
/// implicit GEMM over the images' output positions (`shaders/grad_conv_gemm.wgsl`). When
/// `scratch` (disjoint from the rest; may be empty) holds them, the positions are cut into
/// slices summed by separate workgroups into partial tiles there and then added in slice order
/// (split-K): deterministic for a given shape and scratch size, and within f32 rounding of the
/// CPU's order.
pub fn conv2d_backward_weight(
    rec: &mut Recorder<'_>,
    x: View<'_>,
    gy: View<'_>,
    s: &ConvShape,
    gw: View<'_>,
    scratch: View<'_>,
) -> Result<()> {
    const K: &str = "grad::conv2d_backward_weight";
    conv_check(s, K)?;
    let x = x.need("x", K, s.in_len())?;
    let gy = gy.need("gy", K, s.out_len())?;
    let gw = gw.need("gw", K, s.weight_len())?;
    let cols = s.cin * s.k * s.k;
    let positions = s.n * s.out_h() * s.out_w();
    let tiles = cols.div_ceil(64) * s.cout.div_ceil(32);
    let (splits, split_len) = weight_splits(positions, tiles, s.weight_len(), scratch.len as usize);
    let dest = if splits > 1 {
        let sc = scratch.slice(0, splits as usize * s.weight_len());
        disjoint(K, &[("x", x), ("gy", gy)], &[("scratch", sc)])?;
        disjoint(K, &[("scratch", sc)], &[("gw", gw)])?;
        sc
    } else {
        gw
    };
    disjoint(K, &[("x", x), ("gy", gy)], &[("gw", gw)])?;
    let mut p = ConvGemmParams {
        base: conv_params(s, x.offset, gy.offset, dest.offset),
        cols: u32_of("cin x k x k", cols)?,
        kdim: u32_of("images x output pixels", positions)?,
        splits,
        split_len,
        _pad: [0; 2],
    };
    rec.dispatch(
        KernelId::GradConvGemmWeight,
        &p,
        &[x.buffer, gy.buffer, dest.buffer],
        [cols.div_ceil(64) as u32, s.cout.div_ceil(32) as u32, splits],
    )?;
    if splits > 1 {
        p.base.a_off = dest.offset;
        p.base.out_off = gw.offset;
        rec.dispatch(
            KernelId::GradConvGemmSumSplits,
            &p,
            &[dest.buffer, gw.buffer],
            grid_1d(s.weight_len(), 256),
        )?;
    }
    Ok(())
}

#[cfg(any(test, feature = "internals"))]
/// [`conv2d_backward_weight`] by the direct kernel (one workgroup per (output, input) channel
/// pair reducing over images and output positions by a fixed tree): the benchmark's baseline.
pub fn conv2d_backward_weight_direct(
    rec: &mut Recorder<'_>,
    x: View<'_>,
    gy: View<'_>,
    s: &ConvShape,
    gw: View<'_>,
) -> Result<()> {
    const K: &str = "grad::conv2d_backward_weight_direct";
    conv_check(s, K)?;
    let x = x.need("x", K, s.in_len())?;
    let gy = gy.need("gy", K, s.out_len())?;
    let gw = gw.need("gw", K, s.weight_len())?;
    disjoint(K, &[("x", x), ("gy", gy)], &[("gw", gw)])?;
    let p = conv_params(s, x.offset, gy.offset, gw.offset);
    rec.dispatch(
        KernelId::GradConvWeight,
        &p,
        &[x.buffer, gy.buffer, gw.buffer],
        [s.cin as u32, s.cout as u32, 1],
    )
}

// ---------------------------------------------------------------- batch norm

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct BnGradParams {
    n: u32,
    c: u32,
    hw: u32,
    x_off: u32,
    y_off: u32,
    gy_off: u32,
    gx_off: u32,
    mean_off: u32,
    var_off: u32,
    gamma_off: u32,
    ggamma_off: u32,
    gbeta_off: u32,
    gate: u32,
    eps: f32,
}

/// Backward of `batchnorm::bn_apply` with the batch's own statistics (training mode) and the
/// fused sign gate, the twin of `cpu::grad::bn_backward`: `x` and `y` are the BN input and
/// output [n, c, hw], `mean`/`var` the batch statistics `bn_stats` wrote, `gy = dL/dy`. Writes
/// `gx` `[n, c, hw]`, `ggamma` and `gbeta` `[c]`.
///
/// Channel sums are f32 tree reductions (the CPU sums in f64), so results agree with the CPU
/// within a small relative tolerance. Fastest when `mean` and `var` share a buffer (as
/// `bn_stats` writes them) and so do `ggamma` and `gbeta`; otherwise the launcher stages them
/// through a small temporary buffer.
#[allow(clippy::too_many_arguments)]
pub fn bn_backward(
    rec: &mut Recorder<'_>,
    x: View<'_>,
    y: View<'_>,
    gy: View<'_>,
    n: usize,
    c: usize,
    hw: usize,
    mean: View<'_>,
    var: View<'_>,
    gamma: View<'_>,
    eps: f32,
    gate: Gate,
    gx: View<'_>,
    ggamma: View<'_>,
    gbeta: View<'_>,
) -> Result<()> {
    const K: &str = "grad::bn_backward";
    let len = n * c * hw;
    u32_of("n * c * hw", len)?;
    if c == 0 {
        return Ok(());
    }
    if c > 65_535 {
        return Err(Error::Gpu(format!(
            "{K}: {c} channels exceed the grid (65,535)"
        )));
    }
    let x = x.need("x", K, len)?;
    let y = y.need("y", K, len)?;
    let gy = gy.need("gy", K, len)?;
    let gx = gx.need("gx", K, len)?;
    let mean = mean.need("mean", K, c)?;
    let var = var.need("var", K, c)?;
    let gamma = gamma.need("gamma", K, c)?;
    let ggamma = ggamma.need("ggamma", K, c)?;
    let gbeta = gbeta.need("gbeta", K, c)?;
    disjoint(
        K,
        &[
            ("x", x),
            ("y", y),
            ("gy", gy),
            ("mean", mean),
            ("var", var),
            ("gamma", gamma),
        ],
        &[("gx", gx), ("ggamma", ggamma), ("gbeta", gbeta)],
    )?;
    // Mean and var in one buffer; staged when they are not.
    let staged_stats;
    let (stats_buf, mean_off, var_off) = if mean.buffer == var.buffer {
        (mean.buffer, mean.offset, var.offset)
    } else {
        staged_stats = rec.ctx().storage("bn_backward stats", 2 * c)?;
        rec.copy(mean.slice(0, c), View::new(&staged_stats, 0, c))?;
        rec.copy(var.slice(0, c), View::new(&staged_stats, c, c))?;
        (&staged_stats, 0, c as u32)
    };
    // ggamma and gbeta in one buffer; staged (and copied out at the end) when they are not.
    let staged_grads = if ggamma.buffer == gbeta.buffer {
        None
    } else {
        Some(rec.ctx().storage("bn_backward grads", 2 * c)?)
    };
    let (grads_buf, ggamma_off, gbeta_off) = match &staged_grads {
        None => (ggamma.buffer, ggamma.offset, gbeta.offset),
        Some(b) => (b, 0, c as u32),
    };
    let p = BnGradParams {
        n: n as u32,
        c: c as u32,
        hw: hw as u32,
        x_off: x.offset,
        y_off: y.offset,
        gy_off: gy.offset,
        gx_off: gx.offset,
        mean_off,
        var_off,
        gamma_off: gamma.offset,
        ggamma_off,
        gbeta_off,
        gate: match gate {
            Gate::None => 0,
            Gate::Excitatory => 1,
            Gate::Inhibitory => 2,
        },
        eps,
    };
    let groups = if len == 0 {
        [0, 1, 1]
    } else {
        grid_1d(len, 256)
    };
    rec.dispatch(
        KernelId::GradBnGate,
        &p,
        &[y.buffer, gy.buffer, gx.buffer],
        groups,
    )?;
    rec.dispatch(
        KernelId::GradBnSums,
        &p,
        &[x.buffer, stats_buf, gx.buffer, grads_buf],
        [c as u32, 1, 1],
    )?;
    rec.dispatch(
        KernelId::GradBnScale,
        &p,
        &[stats_buf, gamma.buffer, gx.buffer],
        groups,
    )?;
    if let Some(b) = &staged_grads {
        rec.copy(View::new(b, 0, c), ggamma.slice(0, c))?;
        rec.copy(View::new(b, c, c), gbeta.slice(0, c))?;
    }
    Ok(())
}

// ---------------------------------------------------------------- data movement and linear

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct MiscParams {
    len: u32,
    n: u32,
    c: u32,
    hw: u32,
    c_total: u32,
    c_start: u32,
    steps: u32,
    src_off: u32,
    aux_off: u32,
    dst_off: u32,
    dst2_off: u32,
    zero: u32,
}

/// One input's share of a channel concat's gradient: `gx` [n, c, hw] = `gy` [n, c_start ..
/// c_start + c, hw] of `gy` [n, c_total, hw] (a copy, bit-exact).
#[allow(clippy::too_many_arguments)]
pub fn concat_backward(
    rec: &mut Recorder<'_>,
    gy: View<'_>,
    n: usize,
    hw: usize,
    c_total: usize,
    c_start: usize,
    c: usize,
    gx: View<'_>,
) -> Result<()> {
    const K: &str = "grad::concat_backward";
    if c_start + c > c_total {
        return Err(Error::Gpu(format!(
            "{K}: channels {c_start}..{} outside the {c_total} of gy",
            c_start + c
        )));
    }
    let len = n * c * hw;
    u32_of("n * c_total * hw", n * c_total * hw)?;
    let gy = gy.need("gy", K, n * c_total * hw)?;
    let gx = gx.need("gx", K, len)?;
    disjoint(K, &[("gy", gy)], &[("gx", gx)])?;
    let p = MiscParams {
        len: len as u32,
        n: n as u32,
        c: c as u32,
        hw: hw as u32,
        c_total: c_total as u32,
        c_start: c_start as u32,
        src_off: gy.offset,
        dst_off: gx.offset,
        ..Default::default()
    };
    rec.dispatch(
        KernelId::GradMiscConcat,
        &p,
        &[gy.buffer, gx.buffer],
        grid_1d(len, 256),
    )
}

/// Backward of `global_avg_pool`: `gx` [n, c, hw] = `gy` [n, c] / hw, bit-exact with the CPU.
pub fn global_avg_pool_backward(
    rec: &mut Recorder<'_>,
    gy: View<'_>,
    n: usize,
    c: usize,
    hw: usize,
    gx: View<'_>,
) -> Result<()> {
    const K: &str = "grad::global_avg_pool_backward";
    let len = n * c * hw;
    u32_of("n * c * hw", len)?;
    let gy = gy.need("gy", K, n * c)?;
    let gx = gx.need("gx", K, len)?;
    disjoint(K, &[("gy", gy)], &[("gx", gx)])?;
    let p = MiscParams {
        len: len as u32,
        n: n as u32,
        c: c as u32,
        hw: hw as u32,
        src_off: gy.offset,
        dst_off: gx.offset,
        ..Default::default()
    };
    rec.dispatch(
        KernelId::GradMiscAvgPool,
        &p,
        &[gy.buffer, gx.buffer],
        grid_1d(len, 256),
    )
}

/// Backward of `mean_time`: `gx[T, m] = gy[m] / T`, bit-exact with the CPU.
pub fn mean_time_backward(
    rec: &mut Recorder<'_>,
    gy: View<'_>,
    t: usize,
    m: usize,
    gx: View<'_>,
) -> Result<()> {
    const K: &str = "grad::mean_time_backward";
    let len = t * m;
    u32_of("t * m", len)?;
    let gy = gy.need("gy", K, m)?;
    let gx = gx.need("gx", K, len)?;
    disjoint(K, &[("gy", gy)], &[("gx", gx)])?;
    let p = MiscParams {
        len: len as u32,
        c: m as u32,
        steps: t as u32,
        src_off: gy.offset,
        dst_off: gx.offset,
        ..Default::default()
    };
    rec.dispatch(
        KernelId::GradMiscMeanTime,
        &p,
        &[gy.buffer, gx.buffer],
        grid_1d(len, 256),
    )
}

/// Backward of `elementwise::linear`, the twin of `cpu::grad::linear_backward`: `x` [n, in_f],
/// `gy` `[n, out_f]` and `w` `[out_f, in_f]` -> `gw` `[out_f, in_f]` and `gb` `[out_f]` (rows summed in
/// order) and, when given, `gx` [n, in_f] (outputs summed in order); bit-exact with the CPU.
/// `gw` and `gb` may share a buffer.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward(
    rec: &mut Recorder<'_>,
    x: View<'_>,
    gy: View<'_>,
    n: usize,
    in_f: usize,
    w: View<'_>,
    out_f: usize,
    gx: Option<View<'_>>,
    gw: View<'_>,
    gb: View<'_>,
) -> Result<()> {
    const K: &str = "grad::linear_backward";
    for (what, v) in [
        ("n * in_f", n * in_f),
        ("n * out_f", n * out_f),
        ("out_f * (in_f + 1)", out_f * (in_f + 1)),
    ] {
        u32_of(what, v)?;
    }
    let x = x.need("x", K, n * in_f)?;
    let gy = gy.need("gy", K, n * out_f)?;
    let w = w.need("w", K, out_f * in_f)?;
    let gw = gw.need("gw", K, out_f * in_f)?;
    let gb = gb.need("gb", K, out_f)?;
    let reads = [("x", x), ("gy", gy), ("w", w)];
    disjoint(K, &reads, &[("gw", gw), ("gb", gb)])?;
    let gx = match gx {
        Some(gx) => {
            let gx = gx.need("gx", K, n * in_f)?;
            disjoint(K, &reads, &[("gx", gx)])?;
            Some(gx)
        }
        None => None,
    };
    let p = MiscParams {
        len: (out_f * (in_f + 1)) as u32,
        n: n as u32,
        c: in_f as u32,
        c_total: out_f as u32,
        src_off: gy.offset,
        aux_off: x.offset,
        dst_off: gw.offset,
        dst2_off: gb.offset,
        ..Default::default()
    };
    rec.dispatch(
        KernelId::GradMiscLinearWeight,
        &p,
        &[gy.buffer, x.buffer, gw.buffer, gb.buffer],
        grid_1d(out_f * (in_f + 1), 256),
    )?;
    if let Some(gx) = gx {
        let p = MiscParams {
            len: (n * in_f) as u32,
            n: n as u32,
            c: in_f as u32,
            c_total: out_f as u32,
            src_off: gy.offset,
            aux_off: w.offset,
            dst_off: gx.offset,
            ..Default::default()
        };
        rec.dispatch(
            KernelId::GradMiscLinearInput,
            &p,
            &[gy.buffer, w.buffer, gx.buffer],
            grid_1d(n * in_f, 256),
        )?;
    }
    Ok(())
}

/// `acc[i] += x[i]` over `acc.len` elements (gradient accumulation): `elementwise::add_into`.
pub fn accumulate(rec: &mut Recorder<'_>, acc: View<'_>, x: View<'_>) -> Result<()> {
    const K: &str = "grad::accumulate";
    let len = acc.len as usize;
    let acc = acc.need("acc", K, len)?;
    let x = x.need("x", K, len)?;
    disjoint(K, &[("x", x)], &[("acc", acc)])?;
    super::elementwise::add_into(rec, acc, x)
}

// ---------------------------------------------------------------- losses

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LossParams {
    b: u32,
    k: u32,
    logit_off: u32,
    label_off: u32,
    loss_off: u32,
    grad_off: u32,
    smooth_k: f32,
    keep: f32,
    batch: f32,
    count: f32,
}

#[allow(clippy::too_many_arguments)]
fn loss_kernel(
    rec: &mut Recorder<'_>,
    kernel: KernelId,
    name: &str,
    logits: View<'_>,
    labels: View<'_>,
    b: usize,
    k: usize,
    smoothing: f32,
    loss: View<'_>,
    grad: View<'_>,
) -> Result<()> {
    u32_of("b * k", b * k)?;
    if k > 65_535 {
        return Err(Error::Gpu(format!("{name}: {k} classes exceed 65,535")));
    }
    let logits = logits.need("logits", name, b * k)?;
    let labels = labels.need("labels", name, b)?;
    let loss = loss.need("loss", name, b)?;
    let grad = grad.need("grad", name, b * k)?;
    disjoint(
        name,
        &[("logits", logits), ("labels", labels)],
        &[("loss", loss), ("grad", grad)],
    )?;
    let p = LossParams {
        b: b as u32,
        k: k as u32,
        logit_off: logits.offset,
        label_off: labels.offset,
        loss_off: loss.offset,
        grad_off: grad.offset,
        smooth_k: smoothing / k.max(1) as f32,
        keep: 1.0 - smoothing,
        batch: b.max(1) as f32,
        count: (b * k).max(1) as f32,
    };
    rec.dispatch(
        kernel,
        &p,
        &[logits.buffer, labels.buffer, loss.buffer, grad.buffer],
        grid_1d(b, 64),
    )
}

/// Softmax cross-entropy with label smoothing on `logits` [b, k], the twin of
/// `cpu::grad::softmax_cross_entropy`. `labels`: u32 per row. Writes `loss` `[b]`, the loss of each
/// row (the CPU's mean loss is their mean), and `grad` [b, k] = dL/dlogits of the batch-mean
/// loss. f32 where the CPU uses f64 (within a small relative tolerance). A label >= k gives NaN
/// in its row's loss and gradient.
#[allow(clippy::too_many_arguments)]
pub fn softmax_cross_entropy(
    rec: &mut Recorder<'_>,
    logits: View<'_>,
    labels: View<'_>,
    b: usize,
    k: usize,
    smoothing: f32,
    loss: View<'_>,
    grad: View<'_>,
) -> Result<()> {
    loss_kernel(
        rec,
        KernelId::GradLossCrossEntropy,
        "grad::softmax_cross_entropy",
        logits,
        labels,
        b,
        k,
        smoothing,
        loss,
        grad,
    )
}

/// MSE between `logits` [b, k] (time-averaged output rates) and one-hot `labels` (u32 per row),
/// the twin of `cpu::grad::mse_rate_loss`: `loss` `[b]` gets each row's squared errors / (b * k),
/// so their sum is the CPU's loss; `grad` [b, k] = 2 (l - onehot) / (b * k). A label >= k gives
/// NaN in its row.
#[allow(clippy::too_many_arguments)]
pub fn mse_rate_loss(
    rec: &mut Recorder<'_>,
    logits: View<'_>,
    labels: View<'_>,
    b: usize,
    k: usize,
    loss: View<'_>,
    grad: View<'_>,
) -> Result<()> {
    loss_kernel(
        rec,
        KernelId::GradLossMse,
        "grad::mse_rate_loss",
        logits,
        labels,
        b,
        k,
        0.0,
        loss,
        grad,
    )
}

// ---------------------------------------------------------------- optimiser

/// The hyper-parameters of one AdamW step.
#[derive(Clone, Copy, Debug)]
pub struct AdamHyper {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// The 1-based step being taken (`AdamW::step` after its increment).
    pub step: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AdamParams {
    len: u32,
    p_off: u32,
    g_off: u32,
    m_off: u32,
    v_off: u32,
    decay_off: u32,
    zero: u32,
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    lr: f32,
    lr_wd: f32,
    bc1: f32,
    bc2: f32,
    eps: f32,
}

/// One AdamW step per element, the twin of `train::optim::AdamW::update` (`decay`: u32 0/1 per
/// element, weight decay where 1). Updates `params`, `m` and `v` in place from `grad`. The bias
/// corrections `1 - beta^step` are computed here in f32 as the CPU computes them. Two passes
/// (moments, then parameters). `m` and `v` may share a buffer; `params` needs a buffer of its
/// own, and `m`/`v` one apart from `grad`.
#[allow(clippy::too_many_arguments)]
pub fn adamw(
    rec: &mut Recorder<'_>,
    params: View<'_>,
    grad: View<'_>,
    m: View<'_>,
    v: View<'_>,
    decay: View<'_>,
    n: usize,
    h: AdamHyper,
) -> Result<()> {
    const K: &str = "grad::adamw";
    let len = u32_of("n", n)?;
    let t = i32::try_from(h.step)
        .ok()
        .filter(|&t| t >= 1)
        .ok_or_else(|| Error::Gpu(format!("{K}: step {} (1-based, at most i32::MAX)", h.step)))?;
    let params = params.need("params", K, n)?;
    let grad = grad.need("grad", K, n)?;
    let m = m.need("m", K, n)?;
    let v = v.need("v", K, n)?;
    let decay = decay.need("decay", K, n)?;
    // The moments pass reads grad and writes m, v; the step reads m, v, decay and writes params.
    disjoint(K, &[("grad", grad)], &[("m", m), ("v", v)])?;
    disjoint(
        K,
        &[("m", m), ("v", v), ("decay", decay), ("grad", grad)],
        &[("params", params)],
    )?;
    let p = AdamParams {
        len,
        p_off: params.offset,
        g_off: grad.offset,
        m_off: m.offset,
        v_off: v.offset,
        decay_off: decay.offset,
        zero: 0,
        beta1: h.beta1,
        beta2: h.beta2,
        one_minus_beta1: 1.0 - h.beta1,
        one_minus_beta2: 1.0 - h.beta2,
        lr: h.lr,
        lr_wd: h.lr * h.weight_decay,
        bc1: 1.0 - h.beta1.powi(t),
        bc2: 1.0 - h.beta2.powi(t),
        eps: h.eps,
    };
    let groups = grid_1d(n, 256);
    rec.dispatch(
        KernelId::GradOptimAdamMoments,
        &p,
        &[grad.buffer, m.buffer, v.buffer],
        groups,
    )?;
    rec.dispatch(
        KernelId::GradOptimAdamStep,
        &p,
        &[m.buffer, v.buffer, decay.buffer, params.buffer],
        groups,
    )
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RunningParams {
    c: u32,
    rmean_off: u32,
    rvar_off: u32,
    mean_off: u32,
    var_off: u32,
    zero: u32,
    keep: f32,
    momentum: f32,
    correction: f32,
}

/// Twin of `cpu::bn_update_running`: `running_mean`/`running_var` `[c]` move towards the batch
/// `mean` and the unbiased `var * count / (count - 1)` by `momentum`, bit-identical with the
/// CPU. The running views may share a buffer, and so may the batch views.
#[allow(clippy::too_many_arguments)]
pub fn bn_update_running(
    rec: &mut Recorder<'_>,
    running_mean: View<'_>,
    running_var: View<'_>,
    mean: View<'_>,
    var: View<'_>,
    c: usize,
    count: usize,
    momentum: f32,
) -> Result<()> {
    const K: &str = "grad::bn_update_running";
    let rm = running_mean.need("running_mean", K, c)?;
    let rv = running_var.need("running_var", K, c)?;
    let mean = mean.need("mean", K, c)?;
    let var = var.need("var", K, c)?;
    disjoint(
        K,
        &[("mean", mean), ("var", var)],
        &[("running_mean", rm), ("running_var", rv)],
    )?;
    let p = RunningParams {
        c: u32_of("c", c)?,
        rmean_off: rm.offset,
        rvar_off: rv.offset,
        mean_off: mean.offset,
        var_off: var.offset,
        zero: 0,
        keep: 1.0 - momentum,
        momentum,
        correction: if count >= 2 {
            count as f32 / (count - 1) as f32
        } else {
            1.0
        },
    };
    rec.dispatch(
        KernelId::GradRunningUpdate,
        &p,
        &[rm.buffer, rv.buffer, mean.buffer, var.buffer],
        grid_1d(c, 64),
    )
}
