//! Weight fill on the device: the twin of `cpu::rng::uniform_fill`.

use bytemuck::{Pod, Zeroable};

use super::{grid_1d, KernelId, View};
use crate::gpu::Recorder;
use crate::Result;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct Params {
    stream: u32,
    first: u32,
    len: u32,
    out_off: u32,
    bound: f32,
}

/// `out[i] = (2 * unit(first + i) - 1) * bound` for the generator stream `stream`, bit-identical
/// to the CPU.
pub fn uniform_fill(
    rec: &mut Recorder<'_>,
    stream: u32,
    first: u32,
    bound: f32,
    out: View<'_>,
) -> Result<()> {
    let p = Params {
        stream,
        first,
        len: out.len,
        out_off: out.offset,
        bound,
    };
    rec.dispatch(
        KernelId::RngFill,
        &p,
        &[out.buffer],
        grid_1d(out.len as usize, 256),
    )
}

/// `out[i] = value` (the plan's constant-initialised parameters).
pub fn constant_fill(rec: &mut Recorder<'_>, value: f32, out: View<'_>) -> Result<()> {
    let p = Params {
        stream: 0,
        first: 0,
        len: out.len,
        out_off: out.offset,
        bound: value,
    };
    rec.dispatch(
        KernelId::RngConstant,
        &p,
        &[out.buffer],
        grid_1d(out.len as usize, 256),
    )
}
