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

pub use arena::{Arena, SizeClass};
pub use context::{
    list_adapters, pick_adapter, AdapterSummary, DeviceChoice, GpuContext, GpuCounters, KernelTime,
};
pub use executor::{memory_bytes, GpuExecutor, GpuOutput, Job, Outputs};
pub use kernels::{KernelId, View};
pub use recorder::Recorder;
pub use trainer::{
    norm2_of_partials, GpuTrainer, GradientBatches, StepOutput, TrainSettings, TrainState,
};
