//! Reductions read back as a few numbers instead of the vector they reduce: the twins of
//! `cpu::elementwise::{sum_squares_groups, sum_squares_partials}`.

use bytemuck::{Pod, Zeroable};

use super::{u32_of, KernelId, View};
use crate::cpu::elementwise::sum_squares_groups;
use crate::gpu::Recorder;
use crate::Result;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    len: u32,
    groups: u32,
    src_off: u32,
    dst_off: u32,
    zero: u32,
}

/// The partial sums of squares of `x` into the first [`sum_squares_groups`]`(x.len)` elements
/// of `partials`, in the CPU twin's order (bit for bit): their sum is `sum x^2`.
pub fn sum_squares(rec: &mut Recorder<'_>, x: View<'_>, partials: View<'_>) -> Result<()> {
    const K: &str = "reduce::sum_squares";
    let len = x.len as usize;
    let groups = sum_squares_groups(len);
    let partials = partials.need("partials", K, groups)?;
    let p = Params {
        len: u32_of("len", len)?,
        groups: groups as u32,
        src_off: x.offset,
        dst_off: partials.offset,
        zero: 0,
    };
    rec.dispatch(
        KernelId::ReduceSumSquares,
        &p,
        &[x.buffer, partials.buffer],
        [groups as u32, 1, 1],
    )
}
