//! The CPU engine and its reference primitives.
//!
//! Plain f32 Rust, one file per primitive; each function is the twin of a WGSL kernel with the
//! same arguments and loop shape, and follows `docs/design.md` (layouts, accumulation order, the
//! weight generator) to the bit. These are the oracle every GPU kernel is checked against.
//! Convolutions, where the time goes, run by default through [`fastconv`] (blocked GEMMs, equal
//! to the direct loops within float tolerance); [`Kernels::Reference`] selects the direct loops
//! for bit-equal parity with the GPU engine.

pub mod backprop;
pub mod batchnorm;
pub mod conv;
pub mod elementwise;
pub mod executor;
pub mod fast;
pub mod fastconv;
pub mod grad;
pub mod lif;
pub mod optim;
pub mod rng;
pub mod spikes;

/// Which convolution implementation the CPU executor and the training pass use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kernels {
    /// Blocked GEMMs ([`fastconv`]): the production path.
    #[default]
    Fast,
    /// The direct loops, summing in the order the WGSL kernels do: the oracle, and the twin of
    /// the GPU engine in bit-equal parity checks.
    Reference,
}

impl Kernels {
    pub fn conv2d(self, x: &[f32], w: &[f32], s: &ConvShape, out: &mut [f32]) {
        match self {
            Kernels::Fast => fastconv::conv2d(x, w, s, out),
            Kernels::Reference => conv::conv2d(x, w, s, out),
        }
    }
    pub fn conv2d_backward_input(self, gy: &[f32], w: &[f32], s: &ConvShape, gx: &mut [f32]) {
        match self {
            Kernels::Fast => fastconv::conv2d_backward_input(gy, w, s, gx),
            Kernels::Reference => grad::conv2d_backward_input(gy, w, s, gx),
        }
    }
    pub fn conv2d_backward_weight(self, x: &[f32], gy: &[f32], s: &ConvShape, gw: &mut [f32]) {
        match self {
            Kernels::Fast => fastconv::conv2d_backward_weight(x, gy, s, gw),
            Kernels::Reference => grad::conv2d_backward_weight(x, gy, s, gw),
        }
    }
}

pub use batchnorm::{bn_apply, bn_stats, bn_update_running, Gate, BN_EPS, BN_MOMENTUM};
pub use conv::{conv2d, ConvShape};
pub use elementwise::{add_into, concat_channels, global_avg_pool, linear, mean_time};
pub use executor::{
    bn_len, flatten_bn, forward, init_params, unflatten_bn, BnMode, BnRunning, ForwardOptions,
    ForwardOutput,
};
pub use grad::Loss;
pub use lif::{lif, lif_membrane, pack_spikes, words_per_row, LifParams};
pub use rng::{bits, fnv1a64, kaiming_bound, pcg, stream, uniform_fill, unit};
pub use spikes::{
    population_counts, population_stats, words_for, PopulationSpikes, PopulationStats,
};
