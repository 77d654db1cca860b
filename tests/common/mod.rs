//! The GPU test harness shared by the kernel parity tests: one context per backend (the primary
//! one `WGPU_BACKEND` picks, and GL), tests run one at a time, a macro turning a check into one
//! test per backend, and seeded inputs.

#![allow(dead_code)]

use std::sync::{Arc, Mutex, OnceLock};

use msenas::cpu;
use msenas::gpu::{DeviceChoice, GpuContext};

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    /// What `WGPU_BACKEND` allows (all by default): lavapipe's Vulkan here.
    Primary,
    /// wgpu's GL backend, where the adapter offers compute shaders.
    Gl,
}

/// The test binary's context on `backend`, opened once; `None` (a skip) without an adapter,
/// except that the primary one must exist where `CI` is set.
pub fn context(backend: Backend) -> Option<&'static Arc<GpuContext>> {
    static PRIMARY: OnceLock<Option<Arc<GpuContext>>> = OnceLock::new();
    static GL: OnceLock<Option<Arc<GpuContext>>> = OnceLock::new();
    let (cell, backends) = match backend {
        Backend::Primary => (&PRIMARY, None),
        Backend::Gl => (&GL, Some(wgpu::Backends::GL)),
    };
    cell.get_or_init(
        || match GpuContext::with_backends(&DeviceChoice::Auto, backends) {
            Ok(c) => {
                eprintln!(
                    "[{backend:?}] adapter: {} ({:?}, {:?})",
                    c.info.name, c.info.backend, c.info.device_type
                );
                Some(Arc::new(c))
            }
            Err(e) => {
                if matches!(backend, Backend::Primary) && std::env::var_os("CI").is_some() {
                    panic!("CI is set but no GPU adapter is usable: {e}");
                }
                eprintln!("skip [{backend:?}]: {e}");
                None
            }
        },
    )
    .as_ref()
}

/// The primary context (what `WGPU_BACKEND` allows), shared by the binary's tests.
pub fn primary() -> Option<Arc<GpuContext>> {
    context(Backend::Primary).cloned()
}

/// One device, one test at a time: lavapipe is slow and shares the machine's cores.
pub fn run(backend: Backend, name: &str, body: fn(&GpuContext)) {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    match context(backend) {
        Some(ctx) => body(ctx),
        None => eprintln!("skip {name} [{backend:?}]: no adapter with compute shaders"),
    }
}

/// Turns one parity check into a test per backend.
#[allow(unused_macros)]
macro_rules! on_backends {
    ($name:ident) => {
        mod $name {
            #[test]
            fn primary() {
                super::run(super::Backend::Primary, stringify!($name), super::$name);
            }
            #[test]
            fn gl() {
                super::run(super::Backend::Gl, stringify!($name), super::$name);
            }
        }
    };
}

/// Seeded inputs from the crate's own counter-based generator: uniform in [lo, hi).
pub fn uniform(seed: u32, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..len as u32)
        .map(|i| lo + (hi - lo) * cpu::rng::unit(i, cpu::rng::pcg(seed)))
        .collect()
}

/// A one-channel `size`x`size` image task with `classes` classes over `timesteps` steps.
pub fn gray_spec(size: usize, classes: usize, timesteps: usize) -> msenas::DataSpec {
    msenas::DataSpec {
        in_ch: 1,
        height: size,
        width: size,
        classes,
        timesteps,
        event: false,
    }
}
