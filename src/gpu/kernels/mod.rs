//! Kernel launchers: one module per WGSL family, each function taking the same arguments as its
//! CPU twin in `crate::cpu`, with buffer views in place of slices. Launchers only record work
//! into a [`Recorder`](super::Recorder); nothing runs until it is submitted.

pub mod batchnorm;
pub mod conv;
pub mod elementwise;
pub mod grad;
pub mod lif;
pub mod rdm;
pub mod reduce;
pub mod rng;
pub mod table;

pub use table::KernelId;

use crate::{Error, Result};

/// A run of 4-byte elements (f32 or u32) inside a GPU buffer. Offsets travel to the kernels in
/// their parameters, so many tensors can share one arena buffer without alignment rules.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub buffer: &'a wgpu::Buffer,
    /// First element.
    pub offset: u32,
    /// Elements.
    pub len: u32,
}

impl<'a> View<'a> {
    pub fn whole(buffer: &'a wgpu::Buffer) -> Self {
        View {
            buffer,
            offset: 0,
            len: (buffer.size() / 4) as u32,
        }
    }
    pub fn new(buffer: &'a wgpu::Buffer, offset: usize, len: usize) -> Self {
        View {
            buffer,
            offset: offset as u32,
            len: len as u32,
        }
    }
    /// `len` elements from `start` within this view.
    pub fn slice(self, start: usize, len: usize) -> Self {
        assert!(
            start + len <= self.len as usize,
            "view slice {start}+{len} past {}",
            self.len
        );
        View {
            buffer: self.buffer,
            offset: self.offset + start as u32,
            len: len as u32,
        }
    }
    pub(crate) fn need(self, what: &str, kernel: &str, len: usize) -> Result<Self> {
        if (self.len as usize) < len {
            return Err(Error::Gpu(format!(
                "{kernel}: `{what}` holds {} elements, needs {len}",
                self.len
            )));
        }
        if self.offset as u64 * 4 + len as u64 * 4 > self.buffer.size() {
            return Err(Error::Gpu(format!(
                "{kernel}: `{what}` runs past its buffer"
            )));
        }
        Ok(self)
    }
}

/// Workgroups for `len` threads of `wg` per group, spread over x and y (65,535 per dimension);
/// kernels rebuild the flat index with `shared/grid.wgsl`.
pub(crate) fn grid_1d(len: usize, wg: u32) -> [u32; 3] {
    let groups = len.div_ceil(wg as usize).max(1) as u32;
    let x = groups.min(65_535);
    [x, groups.div_ceil(x), 1]
}

/// The grid of a tiled GEMM kernel (`shaders/shared/gemm_tile.wgsl`): `columns` in 64-wide
/// tiles over x, continued in z past 65,535 (kernels rebuild the tile as `z * nx + x`), and
/// `rows` in 32-high tiles over y.
pub(crate) fn gemm_grid(columns: usize, rows: usize) -> [u32; 3] {
    let tiles = columns.div_ceil(64).max(1);
    let x = tiles.min(65_535);
    [x as u32, rows.div_ceil(32) as u32, tiles.div_ceil(x) as u32]
}

pub(crate) fn u32_of(what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Gpu(format!("{what} = {v} does not fit in u32")))
}
