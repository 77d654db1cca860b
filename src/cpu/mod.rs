//! CPU reference primitives.
//!
//! Plain f32 Rust, one file per primitive; each function is the twin of a WGSL kernel with the
//! same arguments and loop shape, and follows `docs/design.md` (layouts, accumulation order, the
//! weight generator) to the bit. These are the oracle every GPU kernel is checked against, and the
//! fallback executor where no GPU exists.

pub mod batchnorm;
pub mod conv;
pub mod elementwise;
pub mod executor;
pub mod grad;
pub mod lif;
pub mod rng;

pub use batchnorm::{bn_apply, bn_stats, bn_update_running, Gate};
pub use conv::{conv2d, ConvShape};
pub use elementwise::{add_into, concat_channels, global_avg_pool, linear, mean_time};
pub use executor::{forward, init_params, BnMode, BnRunning, ForwardOptions, ForwardOutput};
pub use lif::{lif, lif_membrane, pack_spikes, words_per_row, LifParams};
pub use rng::{bits, fnv1a64, kaiming_bound, pcg, stream, uniform_fill, unit};
