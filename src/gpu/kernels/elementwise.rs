//! Elementwise and small reduction kernels: the twins of `cpu::elementwise`.

use bytemuck::{Pod, Zeroable};

use super::{grid_1d, u32_of, KernelId, View};
use crate::gpu::Recorder;
use crate::Result;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
pub(crate) struct Params {
    len: u32,
    n: u32,
    c: u32,
    hw: u32,
    c_out: u32,
    c_off: u32,
    steps: u32,
    src_off: u32,
    dst_off: u32,
    w_off: u32,
    bias_off: u32,
}

/// `acc += x`, elementwise over `acc.len` elements.
pub fn add_into(rec: &mut Recorder<'_>, acc: View<'_>, x: View<'_>) -> Result<()> {
    let len = acc.len as usize;
    let x = x.need("x", "elementwise::add_into", len)?;
    let p = Params {
        len: acc.len,
        src_off: x.offset,
        dst_off: acc.offset,
        ..Default::default()
    };
    rec.dispatch(
        KernelId::ElementwiseAddInto,
        &p,
        &[x.buffer, acc.buffer],
        grid_1d(len, 256),
    )
}

/// Concatenate `parts` ([n, c_i, hw] each, with their channel counts) along channels into `out`
/// [n, sum c_i, hw].
pub fn concat_channels(
    rec: &mut Recorder<'_>,
    parts: &[(View<'_>, usize)],
    n: usize,
    hw: usize,
    out: View<'_>,
) -> Result<()> {
    const K: &str = "elementwise::concat";
    let c_out: usize = parts.iter().map(|p| p.1).sum();
    let out = out.need("out", K, n * c_out * hw)?;
    let mut c_off = 0;
    for &(src, c) in parts {
        let len = n * c * hw;
        let src = src.need("part", K, len)?;
        let p = Params {
            len: u32_of("len", len)?,
            n: n as u32,
            c: c as u32,
            hw: hw as u32,
            c_out: c_out as u32,
            c_off: c_off as u32,
            src_off: src.offset,
            dst_off: out.offset,
            ..Default::default()
        };
        rec.dispatch(
            KernelId::ElementwiseConcat,
            &p,
            &[src.buffer, out.buffer],
            grid_1d(len, 256),
        )?;
        c_off += c;
    }
    Ok(())
}

/// `out [n, c]` = mean over `hw` of `x [n, c, hw]`.
pub fn global_avg_pool(
    rec: &mut Recorder<'_>,
    x: View<'_>,
    n: usize,
    c: usize,
    hw: usize,
    out: View<'_>,
) -> Result<()> {
    const K: &str = "elementwise::avg_pool";
    let x = x.need("x", K, n * c * hw)?;
    let out = out.need("out", K, n * c)?;
    let p = Params {
        len: u32_of("len", n * c)?,
        hw: u32_of("hw", hw)?,
        src_off: x.offset,
        dst_off: out.offset,
        ..Default::default()
    };
    rec.dispatch(
        KernelId::ElementwiseAvgPool,
        &p,
        &[x.buffer, out.buffer],
        grid_1d(n * c, 256),
    )
}

/// `out [n, k] = x [n, cin] * w [k, cin]^T + bias [k]`.
#[allow(clippy::too_many_arguments)]
pub fn linear(
    rec: &mut Recorder<'_>,
    x: View<'_>,
    n: usize,
    cin: usize,
    w: View<'_>,
    bias: View<'_>,
    k: usize,
    out: View<'_>,
) -> Result<()> {
    const K: &str = "elementwise::linear";
    let x = x.need("x", K, n * cin)?;
    let w = w.need("w", K, k * cin)?;
    let bias = bias.need("bias", K, k)?;
    let out = out.need("out", K, n * k)?;
    let p = Params {
        len: u32_of("len", n * k)?,
        c: cin as u32,
        c_out: k as u32,
        src_off: x.offset,
        dst_off: out.offset,
        w_off: w.offset,
        bias_off: bias.offset,
        ..Default::default()
    };
    rec.dispatch(
        KernelId::ElementwiseLinear,
        &p,
        &[x.buffer, out.buffer, w.buffer, bias.buffer],
        grid_1d(n * k, 256),
    )
}

/// `out [m]` = mean over `t` of `x [t, m]`.
pub fn mean_time(
    rec: &mut Recorder<'_>,
    x: View<'_>,
    t: usize,
    m: usize,
    out: View<'_>,
) -> Result<()> {
    const K: &str = "elementwise::mean_time";
    let x = x.need("x", K, t * m)?;
    let out = out.need("out", K, m)?;
    let p = Params {
        len: u32_of("len", m)?,
        n: m as u32,
        c: 1,
        steps: t as u32,
        src_off: x.offset,
        dst_off: out.offset,
        ..Default::default()
    };
    rec.dispatch(
        KernelId::ElementwiseMeanTime,
        &p,
        &[x.buffer, out.buffer],
        grid_1d(m, 256),
    )
}
