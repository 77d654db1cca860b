//! The fast CPU engine: the production path of every CPU forward pass, gradient and training
//! step ([`super::Kernels::Fast`]).
//!
//! It runs the same plans as the reference executor ([`super::executor`], [`super::backprop`])
//! and computes the same functions, but is laid out for speed:
//!
//! - tensors are kept channels innermost (`[image][y][x][c]`), so that a pixel's channels are
//!   contiguous lanes;
//! - spikes are bit planes, eight channels a byte, and every convolution that reads spikes
//!   (all but the stem) adds rows of per-tap lookup tables instead of multiplying
//!   (`conv`), whatever the firing rate; their weight gradient sums gradient buckets;
//! - a batch norm is applied by its consumers as they read the convolution output, and its
//!   statistics are summed by the convolution while the output is in cache (`exec`).
//!
//! Results agree with the reference within float tolerance: sums run in other orders, so a
//! membrane within a rounding error of the threshold may spike on one path and not the other
//! (counted by the parity tests). Spike statistics come back in the engine's own neuron order
//! when asked ([`SpikeOrder::Any`]); every population statistic is invariant to it.

mod conv;
mod exec;
mod ops;
mod pool;
#[cfg(any(test, feature = "internals"))]
pub mod primitives;
pub(crate) mod simd;

pub use exec::{backward, supports, SpikeOrder, Tape};

use super::{ForwardOptions, ForwardOutput, LifParams};
use crate::plan::Plan;

/// The forward pass of [`super::forward`] on the fast engine (`opts.keep_tensors` is not
/// honoured: the fast engine keeps no reference-layout tensors). Packed spikes come in the
/// plan's neuron order unless `order` says otherwise.
pub fn forward(
    plan: &Plan,
    params: &[f32],
    input: &[f32],
    opts: &ForwardOptions,
    order: SpikeOrder,
) -> ForwardOutput {
    exec::run(
        plan,
        params,
        input,
        &exec::RunOpts {
            t: opts.timesteps,
            b: opts.batch,
            lif: opts.lif,
            eps: opts.eps,
            bn: opts.bn,
            spikes: opts.record_spikes.then_some(order),
            train: false,
        },
    )
    .out
}

/// A forward pass with batch statistics that keeps what [`backward`] needs (the fast twin of
/// [`super::backprop::forward_tape`]).
pub fn forward_tape(
    plan: &Plan,
    params: &[f32],
    input: &[f32],
    timesteps: usize,
    batch: usize,
    lif: LifParams,
    eps: f32,
) -> Tape {
    exec::run(
        plan,
        params,
        input,
        &exec::RunOpts {
            t: timesteps,
            b: batch,
            lif,
            eps,
            bn: super::BnMode::Batch,
            spikes: None,
            train: true,
        },
    )
}

#[cfg(test)]
mod tests;
