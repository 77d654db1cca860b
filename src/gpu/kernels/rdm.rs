//! Spike statistics on the device: per population, the B x B Hamming distances and spike counts
//! per time step and the inner products of time-summed counts, as exact u32 (the twin of
//! `fitness::spikes::population_stats`).

use bytemuck::{Pod, Zeroable};

use super::{grid_1d, u32_of, KernelId, View};
use crate::gpu::Recorder;
use crate::{Error, Result};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct Params {
    batch: u32,
    steps: u32,
    words: u32,
    accumulate: u32,
    rec_off: u32,
    ham_off: u32,
    count_off: u32,
    dot_off: u32,
}

/// Where [`population_stats`] writes: `hamming` `[T][B][B]`, `counts` `[T][B]`, `summed_dot` `[B][B]`
/// (u32; widen to the CPU's u64 on read-back).
#[derive(Clone, Copy, Debug)]
pub struct StatsViews<'a> {
    pub hamming: View<'a>,
    pub counts: View<'a>,
    pub summed_dot: View<'a>,
}

/// The statistics of one population's packed record `[T][B][words]` (`words = ceil(neurons/32)`,
/// unused high bits zero, as the LIF kernel writes them): the twin of
/// `fitness::spikes::population_stats`, bit for bit. With `accumulate` the results are added
/// to what the outputs hold (sums over populations).
#[allow(clippy::too_many_arguments)]
pub fn population_stats(
    rec: &mut Recorder<'_>,
    packed: View<'_>,
    neurons: usize,
    t: usize,
    b: usize,
    out: StatsViews<'_>,
    accumulate: bool,
) -> Result<()> {
    const K: &str = "rdm";
    let words = neurons.div_ceil(32);
    let packed = packed.need("packed", K, t * b * words)?;
    let hamming = out.hamming.need("hamming", K, t * b * b)?;
    let counts = out.counts.need("counts", K, t * b)?;
    let dots = out.summed_dot.need("summed_dot", K, b * b)?;
    if t > 65_535 {
        return Err(Error::Gpu(format!("{K}: {t} steps exceed the grid")));
    }
    if (neurons as u64) * (t as u64) * (t as u64) > u32::MAX as u64 {
        return Err(Error::Gpu(format!(
            "{K}: {neurons} neurons x {t}^2 steps overflow the u32 inner products"
        )));
    }
    let p = Params {
        batch: u32_of("b", b)?,
        steps: t as u32,
        words: u32_of("words", words)?,
        accumulate: accumulate as u32,
        rec_off: packed.offset,
        ham_off: hamming.offset,
        count_off: counts.offset,
        dot_off: dots.offset,
    };
    let tiles = b.div_ceil(16) as u32;
    rec.dispatch(
        KernelId::RdmPairs,
        &p,
        &[packed.buffer, hamming.buffer],
        [tiles, tiles, t as u32],
    )?;
    rec.dispatch(
        KernelId::RdmCounts,
        &p,
        &[packed.buffer, counts.buffer],
        grid_1d(t * b, 256),
    )?;
    // One workgroup per (step, 64-word chunk), summed by atomics into zeroed outputs.
    let z = t * words.div_ceil(64);
    if z > 65_535 {
        return Err(Error::Gpu(format!(
            "{K}: {t} steps x {} word chunks exceed the grid",
            words.div_ceil(64)
        )));
    }
    if !accumulate {
        rec.clear(dots.slice(0, b * b));
    }
    rec.dispatch(
        KernelId::RdmDots,
        &p,
        &[packed.buffer, dots.buffer],
        [tiles, tiles, z as u32],
    )
}

/// Only the per-(t, sample) spike counts of a packed record `[T][B][words]` into `counts` `[T][B]`
/// (firing rates without the pair statistics).
pub fn spike_counts(
    rec: &mut Recorder<'_>,
    packed: View<'_>,
    neurons: usize,
    t: usize,
    b: usize,
    counts: View<'_>,
) -> Result<()> {
    const K: &str = "rdm::counts";
    let words = neurons.div_ceil(32);
    let packed = packed.need("packed", K, t * b * words)?;
    let counts = counts.need("counts", K, t * b)?;
    let p = Params {
        batch: u32_of("b", b)?,
        steps: u32_of("t", t)?,
        words: u32_of("words", words)?,
        accumulate: 0,
        rec_off: packed.offset,
        ham_off: 0,
        count_off: counts.offset,
        dot_off: 0,
    };
    rec.dispatch(
        KernelId::RdmCounts,
        &p,
        &[packed.buffer, counts.buffer],
        grid_1d(t * b, 256),
    )
}
