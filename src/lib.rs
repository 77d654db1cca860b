//! msenas: a portable GPU engine (wgpu + WGSL) for brain-inspired multi-scale evolutionary
//! architecture search of spiking neural networks.
//!
//! Dependencies point one way: `genome` -> `plan` -> `cpu` | `gpu` -> `fitness`, `train` ->
//! `evolve` -> CLI. See `docs/design.md` for the layouts every module shares.

pub mod cli;
pub mod config;
pub mod cpu;
pub mod data;
pub mod dump;
pub mod error;
pub mod evolve;
pub mod fitness;
pub mod fsio;
pub mod genome;
pub mod gpu;
pub mod plan;
pub mod report;
pub mod spec;
pub mod stats;
pub mod train;

pub use error::{Error, Result};
pub use spec::DataSpec;
