//! The wgpu executor's parts: device context, kernel table and launchers, buffer arena.
//!
//! No wgpu type leaves this module's public API except through [`GpuContext`] and the buffer
//! views the launchers take.

pub mod arena;
pub mod context;
pub mod executor;
pub mod kernels;
pub mod recorder;
pub mod trainer;

#[cfg(any(test, feature = "internals"))]
pub use arena::{Arena, SizeClass};
pub use context::{
    list_adapters, AdapterSummary, DeviceChoice, GpuContext, GpuCounters, KernelTime,
};
#[cfg(any(test, feature = "internals"))]
pub use executor::{memory_bytes, GpuOutput};
pub use executor::{GpuExecutor, Job, Outputs};
#[cfg(any(test, feature = "internals"))]
pub use kernels::KernelId;
pub use kernels::View;
pub use recorder::Recorder;
pub use trainer::{norm2_of_partials, GpuTrainer, GradientBatches, StepOutput, TrainSettings};
