//! Convolutions on the device: the twin of `cpu::conv::conv2d` (dense f32 input) and its spiking
//! variant reading a bit-packed LIF record, as implicit GEMMs tiled in workgroup memory
//! (`shaders/conv_gemm.wgsl`, what the engine runs). The direct kernels of `shaders/conv.wgsl`
//! (one output per thread) stay as the baseline the benchmark measures them against
//! ([`conv2d_direct`], [`conv2d_spiking_direct`]); both give the same results.

use bytemuck::{Pod, Zeroable};

use super::{u32_of, KernelId, View};
pub use crate::cpu::conv::ConvShape;
use crate::gpu::Recorder;
use crate::{Error, Result};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct Params {
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
    x_off: u32,
    w_off: u32,
    out_off: u32,
    in_words: u32,
}

fn params(s: &ConvShape, x_off: u32, w: View<'_>, out: View<'_>, kernel: &str) -> Result<Params> {
    if ![1, 3, 5].contains(&s.k) || ![1, 2].contains(&s.stride) {
        return Err(Error::Gpu(format!(
            "{kernel}: k = {}, stride = {} (allowed: k 1/3/5, stride 1/2)",
            s.k, s.stride
        )));
    }
    if s.n > 65_535 || s.cout > 65_535 {
        return Err(Error::Gpu(format!(
            "{kernel}: {} images x {} channels exceed the grid",
            s.n, s.cout
        )));
    }
    w.need("w", kernel, s.cout * s.cin * s.k * s.k)?;
    out.need("out", kernel, s.n * s.cout * s.out_h() * s.out_w())?;
    Ok(Params {
        images: s.n as u32,
        cin: u32_of("cin", s.cin)?,
        h: s.h as u32,
        w: s.w as u32,
        cout: s.cout as u32,
        k: s.k as u32,
        stride: s.stride as u32,
        shift: s.shift as u32,
        ho: s.out_h() as u32,
        wo: s.out_w() as u32,
        x_off,
        w_off: w.offset,
        out_off: out.offset,
        in_words: u32_of("words", (s.cin * s.h * s.w).div_ceil(32))?,
    })
}

/// The tiled kernels' parameters: the direct ones and the GEMM's N and K.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct GemmParams {
    base: Params,
    cols: u32,
    kdim: u32,
}

fn gemm_params(
    s: &ConvShape,
    x_off: u32,
    w: View<'_>,
    out: View<'_>,
    kernel: &str,
) -> Result<GemmParams> {
    Ok(GemmParams {
        base: params(s, x_off, w, out, kernel)?,
        cols: u32_of("images x output pixels", s.n * s.out_h() * s.out_w())?,
        kdim: u32_of("cin x k x k", s.cin * s.k * s.k)?,
    })
}

/// Output pixels of all images as columns, output channels as rows.
fn gemm_grid(s: &ConvShape) -> [u32; 3] {
    super::gemm_grid(s.n * s.out_h() * s.out_w(), s.cout)
}

#[cfg(any(test, feature = "internals"))]
fn grid(s: &ConvShape) -> [u32; 3] {
    [
        (s.out_h() * s.out_w()).div_ceil(64) as u32,
        s.cout as u32,
        s.n as u32,
    ]
}

/// `out [n, cout, Ho, Wo] = conv(x [n, cin, h, w], w [cout, cin, k, k])` per docs/design.md,
/// as a tiled implicit GEMM.
pub fn conv2d(
    rec: &mut Recorder<'_>,
    x: View<'_>,
    w: View<'_>,
    shape: &ConvShape,
    out: View<'_>,
) -> Result<()> {
    const K: &str = "conv_gemm::dense";
    let x = x.need("x", K, shape.n * shape.cin * shape.h * shape.w)?;
    let p = gemm_params(shape, x.offset, w, out, K)?;
    rec.dispatch(
        KernelId::ConvGemmDense,
        &p,
        &[x.buffer, w.buffer, out.buffer],
        gemm_grid(shape),
    )
}

/// The same convolution with the input given as the bit-packed spike record of its `n` images
/// (`[n][ceil(cin*h*w/32)]` words), unpacked to 0/1 while each tile is staged; bit-exact with the
/// CPU's `conv2d` on the 0/1 f32 spikes.
pub fn conv2d_spiking(
    rec: &mut Recorder<'_>,
    packed: View<'_>,
    w: View<'_>,
    shape: &ConvShape,
    out: View<'_>,
) -> Result<()> {
    const K: &str = "conv_gemm::spiking";
    let packed = packed.need(
        "packed",
        K,
        shape.n * (shape.cin * shape.h * shape.w).div_ceil(32),
    )?;
    let p = gemm_params(shape, packed.offset, w, out, K)?;
    rec.dispatch(
        KernelId::ConvGemmSpiking,
        &p,
        &[w.buffer, out.buffer, packed.buffer],
        gemm_grid(shape),
    )
}

#[cfg(any(test, feature = "internals"))]
/// [`conv2d`] by the direct kernel (one output per thread, weights staged per channel).
pub fn conv2d_direct(
    rec: &mut Recorder<'_>,
    x: View<'_>,
    w: View<'_>,
    shape: &ConvShape,
    out: View<'_>,
) -> Result<()> {
    const K: &str = "conv::dense";
    let x = x.need("x", K, shape.n * shape.cin * shape.h * shape.w)?;
    let p = params(shape, x.offset, w, out, K)?;
    rec.dispatch(
        KernelId::ConvDense,
        &p,
        &[x.buffer, w.buffer, out.buffer],
        grid(shape),
    )
}

#[cfg(any(test, feature = "internals"))]
/// [`conv2d_spiking`] by the direct kernel (one output per thread, a weight added only where a
/// spike is set).
pub fn conv2d_spiking_direct(
    rec: &mut Recorder<'_>,
    packed: View<'_>,
    w: View<'_>,
    shape: &ConvShape,
    out: View<'_>,
) -> Result<()> {
    const K: &str = "conv::spiking";
    let packed = packed.need(
        "packed",
        K,
        shape.n * (shape.cin * shape.h * shape.w).div_ceil(32),
    )?;
    let p = params(shape, packed.offset, w, out, K)?;
    rec.dispatch(
        KernelId::ConvSpiking,
        &p,
        &[w.buffer, out.buffer, packed.buffer],
        grid(shape),
    )
}
