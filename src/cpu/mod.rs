//! The CPU engine and its reference primitives.
//!
//! [`fast`] is the CPU engine every CPU path runs by default ([`Kernels::Fast`]): its own
//! layouts, lookup-table convolutions over spike planes, fused batch norm and LIF.
//!
//! The rest is the reference: plain f32 Rust, one file per primitive; each function is the twin
//! of a WGSL kernel with the same arguments and loop shape, and follows `docs/design.md`
//! (layouts, accumulation order, the weight generator) to the bit. The reference executor
//! ([`executor`], [`backprop`]) runs a plan on them ([`Kernels::Reference`]): the oracle every
//! GPU kernel and the fast engine are checked against.

pub mod backprop;
pub mod batchnorm;
pub mod conv;
pub mod elementwise;
pub mod executor;
pub mod fast;
pub mod grad;
pub mod lif;
pub mod optim;
pub mod rng;
pub mod spikes;

/// Which CPU engine runs a plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kernels {
    /// The fast engine (`cpu::fast`): the production path (plans it does not support, and
    /// callers that need every intermediate tensor, run on the reference).
    #[default]
    Fast,
    /// The reference executor and primitives, summing in the order the WGSL kernels do: the
    /// oracle, and the twin of the GPU engine in bit-equal parity checks.
    Reference,
}

pub use batchnorm::{bn_apply, bn_stats, bn_update_running, Gate, BN_EPS, BN_MOMENTUM};
pub use conv::{conv2d, ConvShape};
pub use elementwise::{add_into, concat_channels, global_avg_pool, linear, mean_time};
pub use executor::{
    bn_len, forward, init_params, unflatten_bn, BnMode, BnRunning, ForwardOptions, ForwardOutput,
};
pub use lif::{lif, lif_membrane, pack_spikes, words_per_row, LifParams};
#[cfg(any(test, feature = "internals"))]
pub use rng::{bits, pcg, unit};
pub use rng::{stream, uniform_fill};
pub use spikes::{population_counts, population_stats, PopulationSpikes, PopulationStats};
