//! Spike statistics on the device: B x B Hamming distances and spike counts per population and
//! time step, as exact u32 (the twin of `fitness::spikes`).

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
}

/// From a packed record [T][B][words]: `hamming` [T][B][B] (XOR + popcount of rows) and
/// `counts` [T][B] (spikes per row). With `accumulate` the results are added to the outputs.
#[allow(clippy::too_many_arguments)]
pub fn spike_stats(
    rec: &mut Recorder<'_>,
    packed: View<'_>,
    t: usize,
    b: usize,
    words: usize,
    hamming: View<'_>,
    counts: View<'_>,
    accumulate: bool,
) -> Result<()> {
    const K: &str = "rdm";
    let packed = packed.need("packed", K, t * b * words)?;
    let hamming = hamming.need("hamming", K, t * b * b)?;
    let counts = counts.need("counts", K, t * b)?;
    if t > 65_535 {
        return Err(Error::Gpu(format!("{K}: {t} steps exceed the grid")));
    }
    let p = Params {
        batch: u32_of("b", b)?,
        steps: t as u32,
        words: u32_of("words", words)?,
        accumulate: accumulate as u32,
        rec_off: packed.offset,
        ham_off: hamming.offset,
        count_off: counts.offset,
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
    )
}
