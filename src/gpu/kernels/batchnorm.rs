//! Batch norm on the device: the twins of `cpu::batchnorm::{bn_stats, bn_apply}`.

use bytemuck::{Pod, Zeroable};

use super::{grid_1d, u32_of, KernelId, View};
pub use crate::cpu::batchnorm::Gate;
use crate::gpu::Recorder;
use crate::{Error, Result};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct Params {
    n: u32,
    c: u32,
    hw: u32,
    x_off: u32,
    out_off: u32,
    mean_off: u32,
    var_off: u32,
    gamma_off: u32,
    beta_off: u32,
    gate: u32,
    eps: f32,
    slices: u32,
    slice_len: u32,
    scratch_off: u32,
    _pad: u32,
}

fn same(a: View<'_>, b: View<'_>, what: &str) -> Result<()> {
    if a.buffer != b.buffer {
        return Err(Error::Gpu(format!(
            "batchnorm: {what} must share one buffer"
        )));
    }
    Ok(())
}

/// Values each workgroup of `stats` takes at least before a channel is cut into slices.
const SLICE_MIN: usize = 16_384;
/// Slices per channel at most.
const MAX_SLICES: usize = 64;

/// Floats of scratch [`bn_stats`] uses for `c` channels at most (2 per slice and channel).
pub fn stats_scratch_len(c: usize) -> usize {
    2 * c * MAX_SLICES
}

/// Per-channel mean and biased variance of `x` [n, c, hw] over n * hw values. `mean`, `var` and
/// `scratch` are views into one buffer. A channel of more than 16,384 values is cut into up to
/// 64 slices, each reduced by its own workgroup (mean and sum of squared deviations, two
/// passes), and `stats_combine` merges the slices in order: as many of them as `scratch` holds
/// pairs for ([`stats_scratch_len`]; an empty `scratch` keeps one workgroup per channel).
/// Deterministic for a given shape and scratch size.
#[allow(clippy::too_many_arguments)]
pub fn bn_stats(
    rec: &mut Recorder<'_>,
    x: View<'_>,
    n: usize,
    c: usize,
    hw: usize,
    mean: View<'_>,
    var: View<'_>,
    scratch: View<'_>,
) -> Result<()> {
    const K: &str = "batchnorm::stats";
    let x = x.need("x", K, n * c * hw)?;
    let mean = mean.need("mean", K, c)?;
    let var = var.need("var", K, c)?;
    same(mean, var, "mean and var")?;
    let count = n * hw;
    u32_of("n * c * hw", n * c * hw)?;
    let want = (count / SLICE_MIN)
        .min(MAX_SLICES)
        .min(scratch.len as usize / (2 * c).max(1))
        .max(1);
    let slice_len = count.div_ceil(want).max(1);
    let slices = count.div_ceil(slice_len).max(1);
    if slices > 1 {
        same(mean, scratch, "mean, var and scratch")?;
        scratch.need("scratch", K, 2 * c * slices)?;
    }
    let p = Params {
        n: n as u32,
        c: c as u32,
        hw: hw as u32,
        x_off: x.offset,
        out_off: 0,
        mean_off: mean.offset,
        var_off: var.offset,
        gamma_off: 0,
        beta_off: 0,
        gate: 0,
        eps: 0.0,
        slices: slices as u32,
        slice_len: slice_len as u32,
        scratch_off: scratch.offset,
        _pad: 0,
    };
    rec.dispatch(
        KernelId::BatchnormStats,
        &p,
        &[x.buffer, mean.buffer],
        [c as u32, slices as u32, 1],
    )?;
    if slices > 1 {
        rec.dispatch(
            KernelId::BatchnormStatsCombine,
            &p,
            &[mean.buffer],
            [c.div_ceil(64) as u32, 1, 1],
        )?;
    }
    Ok(())
}

/// `out = gate((x - mean) / sqrt(var + eps) * gamma + beta)` per channel. `mean`/`var` share a
/// buffer, and so do `gamma`/`beta`.
#[allow(clippy::too_many_arguments)]
pub fn bn_apply(
    rec: &mut Recorder<'_>,
    x: View<'_>,
    n: usize,
    c: usize,
    hw: usize,
    mean: View<'_>,
    var: View<'_>,
    gamma: View<'_>,
    beta: View<'_>,
    eps: f32,
    gate: Gate,
    out: View<'_>,
) -> Result<()> {
    const K: &str = "batchnorm::apply";
    let len = n * c * hw;
    let x = x.need("x", K, len)?;
    let out = out.need("out", K, len)?;
    for (v, what) in [
        (mean, "mean"),
        (var, "var"),
        (gamma, "gamma"),
        (beta, "beta"),
    ] {
        v.need(what, K, c)?;
    }
    same(mean, var, "mean and var")?;
    same(gamma, beta, "gamma and beta")?;
    let p = Params {
        n: n as u32,
        c: c as u32,
        hw: hw as u32,
        x_off: x.offset,
        out_off: out.offset,
        mean_off: mean.offset,
        var_off: var.offset,
        gamma_off: gamma.offset,
        beta_off: beta.offset,
        gate: match gate {
            Gate::None => 0,
            Gate::Excitatory => 1,
            Gate::Inhibitory => 2,
        },
        eps,
        slices: 1,
        slice_len: 0,
        scratch_off: 0,
        _pad: 0,
    };
    u32_of("n * c * hw", len)?;
    rec.dispatch(
        KernelId::BatchnormApply,
        &p,
        &[x.buffer, mean.buffer, gamma.buffer, out.buffer],
        grid_1d(len, 256),
    )
}
