//! Multi-step LIF on the device: the twin of `cpu::lif::lif` followed by `cpu::lif::pack_spikes`.

use bytemuck::{Pod, Zeroable};

use super::{u32_of, KernelId, View};
pub use crate::cpu::lif::LifParams;
use crate::gpu::Recorder;
use crate::{Error, Result};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct Params {
    n: u32,
    batch: u32,
    steps: u32,
    words: u32,
    x_off: u32,
    s_off: u32,
    w_off: u32,
    write_f32: u32,
    tau_inv: f32,
    v_th: f32,
    hw: u32,
    mean_off: u32,
    var_off: u32,
    gamma_off: u32,
    beta_off: u32,
    gate: u32,
    eps: f32,
    count: u32,
    count_off: u32,
    _pad: [u32; 2],
}

pub use crate::cpu::lif::words_per_row;

/// Run the `b * n` LIF neurons of `x` `[T][B][N]` over `t` steps: spikes as f32 0/1 into `spikes`
/// (if given; `cpu::lif::lif` with its `n` = b * n), bit-packed into `packed`
/// `[T][B][ceil(N/32)]` (`cpu::lif::pack_spikes(spikes, t, b, n)`) and, if given, the spike
/// count of every (t, sample) row into `counts` `[T][B]` (u32).
#[allow(clippy::too_many_arguments)]
pub fn lif(
    rec: &mut Recorder<'_>,
    x: View<'_>,
    t: usize,
    b: usize,
    n: usize,
    params: LifParams,
    spikes: Option<View<'_>>,
    packed: View<'_>,
    counts: Option<View<'_>>,
) -> Result<()> {
    const K: &str = "lif";
    let words = words_per_row(n);
    let x = x.need("x", K, t * b * n)?;
    let packed = packed.need("packed", K, t * b * words)?;
    if b > 65_535 {
        return Err(Error::Gpu(format!("{K}: batch {b} exceeds 65,535")));
    }
    // Without f32 spikes the kernel never writes binding 2; bind `packed` there for layout only.
    let (s_buf, s_off, write_f32) = match spikes {
        Some(s) => {
            let s = s.need("spikes", K, t * b * n)?;
            (s.buffer, s.offset, 1)
        }
        None => (packed.buffer, 0, 0),
    };
    // The counts are added into a zeroed view; without them the kernel never writes binding 6.
    let (c_buf, count_off, count) = match counts {
        Some(c) => {
            let c = c.need("counts", K, t * b)?;
            rec.clear(c.slice(0, t * b));
            (c.buffer, c.offset, 1)
        }
        None => (packed.buffer, 0, 0),
    };
    let p = Params {
        n: u32_of("n", n)?,
        batch: b as u32,
        steps: u32_of("t", t)?,
        words: words as u32,
        x_off: x.offset,
        s_off,
        w_off: packed.offset,
        write_f32,
        tau_inv: params.tau_inv,
        v_th: params.v_th,
        count,
        count_off,
        ..Params::zeroed()
    };
    rec.dispatch(
        KernelId::LifRun,
        &p,
        &[x.buffer, s_buf, packed.buffer, c_buf],
        [n.div_ceil(256) as u32, b as u32, 1],
    )
}

/// The batch norm (with its sign gate) feeding a LIF population, for [`lif_bn`]: `mean`/`var`
/// as `batchnorm::bn_stats` wrote them (one buffer), `gamma`/`beta` (one buffer), channels of
/// `hw` neurons each.
#[derive(Clone, Copy, Debug)]
pub struct BnInput<'a> {
    pub hw: usize,
    pub mean: View<'a>,
    pub var: View<'a>,
    pub gamma: View<'a>,
    pub beta: View<'a>,
    pub eps: f32,
    pub gate: crate::cpu::batchnorm::Gate,
}

/// `batchnorm::bn_apply` of `x` (`[T][B][N]`, the batch norm's input) followed by [`lif`] with
/// packed spikes only, in one pass: the same spikes, without the normalised tensor.
#[allow(clippy::too_many_arguments)]
pub fn lif_bn(
    rec: &mut Recorder<'_>,
    x: View<'_>,
    t: usize,
    b: usize,
    n: usize,
    params: LifParams,
    bn: BnInput<'_>,
    packed: View<'_>,
) -> Result<()> {
    const K: &str = "lif_bn";
    let words = words_per_row(n);
    let x = x.need("x", K, t * b * n)?;
    let packed = packed.need("packed", K, t * b * words)?;
    if b > 65_535 {
        return Err(Error::Gpu(format!("{K}: batch {b} exceeds 65,535")));
    }
    if bn.hw == 0 || !n.is_multiple_of(bn.hw) {
        return Err(Error::Gpu(format!(
            "{K}: {n} neurons are not whole channels of {} positions",
            bn.hw
        )));
    }
    let c = n / bn.hw;
    for (v, what) in [
        (bn.mean, "mean"),
        (bn.var, "var"),
        (bn.gamma, "gamma"),
        (bn.beta, "beta"),
    ] {
        v.need(what, K, c)?;
    }
    if bn.mean.buffer != bn.var.buffer || bn.gamma.buffer != bn.beta.buffer {
        return Err(Error::Gpu(format!(
            "{K}: mean and var, and gamma and beta, must each share one buffer"
        )));
    }
    let p = Params {
        n: u32_of("n", n)?,
        batch: b as u32,
        steps: u32_of("t", t)?,
        words: words as u32,
        x_off: x.offset,
        s_off: 0,
        w_off: packed.offset,
        write_f32: 0,
        tau_inv: params.tau_inv,
        v_th: params.v_th,
        hw: bn.hw as u32,
        mean_off: bn.mean.offset,
        var_off: bn.var.offset,
        gamma_off: bn.gamma.offset,
        beta_off: bn.beta.offset,
        gate: match bn.gate {
            crate::cpu::batchnorm::Gate::None => 0,
            crate::cpu::batchnorm::Gate::Excitatory => 1,
            crate::cpu::batchnorm::Gate::Inhibitory => 2,
        },
        eps: bn.eps,
        ..Params::zeroed()
    };
    rec.dispatch(
        KernelId::LifRunBn,
        &p,
        &[x.buffer, packed.buffer, bn.mean.buffer, bn.gamma.buffer],
        [n.div_ceil(256) as u32, b as u32, 1],
    )
}
