//! The device context: adapter choice, negotiated limits, shader modules and pipelines (created
//! once, cached by kernel), the parameter buffer and bind groups the recorder reuses, and a
//! staging buffer for read-back.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;

use super::kernels::table::{self, BindingKind, KernelId};
use super::kernels::View;
use crate::{Error, Result};

/// Which adapter to run on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// `WGPU_ADAPTER_NAME` if set, else a discrete GPU, then an integrated one, then anything
    /// with compute shaders, the CPU (lavapipe, WARP) included.
    #[default]
    Auto,
    /// A hardware GPU (discrete, integrated or virtual); an error if there is none.
    Gpu,
    /// A CPU implementation (lavapipe, WARP, SwiftShader).
    Cpu,
    /// The first adapter whose name contains this (case-insensitive).
    Named(String),
}

impl std::str::FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "auto" => DeviceChoice::Auto,
            "gpu" => DeviceChoice::Gpu,
            "cpu" => DeviceChoice::Cpu,
            "" => {
                return Err(Error::input(
                    "device: empty name (allowed: auto, gpu, cpu or an adapter name)",
                ))
            }
            name => DeviceChoice::Named(name.to_string()),
        })
    }
}

/// What `msenas devices` prints about one adapter.
#[derive(Clone, Debug, Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub compute: bool,
    pub max_storage_buffers_per_shader_stage: u32,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroups_per_dimension: u32,
    pub features: Vec<String>,
}

fn summary(adapter: &wgpu::Adapter) -> AdapterSummary {
    let info = adapter.get_info();
    let l = adapter.limits();
    let f = adapter.features();
    let interesting = [
        (wgpu::Features::SUBGROUP, "subgroup"),
        (wgpu::Features::SHADER_F16, "shader-f16"),
        (wgpu::Features::TIMESTAMP_QUERY, "timestamp-query"),
        (
            wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES,
            "timestamp-query-inside-passes",
        ),
        (wgpu::Features::SHADER_INT64, "shader-int64"),
        (
            wgpu::Features::SHADER_FLOAT32_ATOMIC,
            "shader-float32-atomic",
        ),
    ];
    AdapterSummary {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        compute: has_compute(adapter),
        max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
        max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
        max_buffer_size: l.max_buffer_size,
        max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
        max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
        max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
        features: interesting
            .iter()
            .filter(|(x, _)| f.contains(*x))
            .map(|(_, n)| n.to_string())
            .collect(),
    }
}

fn has_compute(adapter: &wgpu::Adapter) -> bool {
    adapter
        .get_downlevel_capabilities()
        .flags
        .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
}

fn instance(backends: Option<wgpu::Backends>) -> wgpu::Instance {
    // Mesa's implicit Vulkan layer `VK_LAYER_MESA_device_select` picks a default GPU for a
    // display: msenas chooses its adapter itself, and without a display session the layer prints
    // "XDG_RUNTIME_DIR is invalid" lines into our one-line errors. Disable it unless the user set
    // the variable. Set once, before the first instance loads any layer.
    static LAYER: std::sync::Once = std::sync::Once::new();
    LAYER.call_once(|| {
        if std::env::var_os("NODEVICE_SELECT").is_none() {
            std::env::set_var("NODEVICE_SELECT", "1");
        }
    });
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if let Some(b) = backends {
        desc.backends = b;
    }
    wgpu::Instance::new(desc)
}

/// Every adapter wgpu finds on the backends `WGPU_BACKEND` allows (all by default).
pub fn list_adapters() -> Vec<AdapterSummary> {
    let inst = instance(None);
    pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()))
        .iter()
        .map(summary)
        .collect()
}

/// Preference among adapters of the same kind: native APIs before GL.
fn backend_rank(b: wgpu::Backend) -> u32 {
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        wgpu::Backend::Gl => 1,
        _ => 2,
    }
}

fn type_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

fn choose(adapters: Vec<wgpu::Adapter>, choice: &DeviceChoice) -> Result<wgpu::Adapter> {
    let names: Vec<String> = adapters
        .iter()
        .map(|a| format!("{} ({:?})", a.get_info().name, a.get_info().backend))
        .collect();
    let found = if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    };
    let mut usable: Vec<wgpu::Adapter> = adapters.into_iter().filter(has_compute).collect();
    let env_name = std::env::var("WGPU_ADAPTER_NAME")
        .ok()
        .filter(|s| !s.is_empty());
    let wanted = match (choice, env_name) {
        (DeviceChoice::Named(n), _) => Some(n.clone()),
        (DeviceChoice::Auto, Some(n)) => Some(n),
        _ => None,
    };
    if let Some(name) = wanted {
        let lower = name.to_lowercase();
        usable.retain(|a| a.get_info().name.to_lowercase().contains(&lower));
        if usable.is_empty() {
            return Err(Error::Gpu(format!(
                "no adapter with compute shaders matches `{name}` (found: {found})"
            )));
        }
    }
    match choice {
        DeviceChoice::Gpu => usable.retain(|a| type_rank(a.get_info().device_type) <= 2),
        DeviceChoice::Cpu => usable.retain(|a| a.get_info().device_type == wgpu::DeviceType::Cpu),
        _ => {}
    }
    usable.sort_by_key(|a| {
        let i = a.get_info();
        (type_rank(i.device_type), backend_rank(i.backend))
    });
    usable.into_iter().next().ok_or_else(|| {
        Error::Gpu(format!(
            "no adapter with compute shaders for device choice {choice:?} (found: {found})"
        ))
    })
}

/// The limits the kernels need, checked against the adapter before asking for a device.
fn required_limits(adapter: &wgpu::Adapter) -> Result<wgpu::Limits> {
    let have = adapter.limits();
    let wg = table::max_workgroup_size();
    let need_storage = table::max_storage_bindings();
    let need_wg_bytes = table::max_workgroup_bytes();
    let need_inv = table::max_invocations();
    let mut missing = Vec::new();
    let mut check = |name: &str, need: u64, got: u64| {
        if got < need {
            missing.push(format!("{name}: need {need}, adapter has {got}"));
        }
    };
    check(
        "max_storage_buffers_per_shader_stage",
        need_storage as u64,
        have.max_storage_buffers_per_shader_stage as u64,
    );
    check(
        "max_compute_workgroup_storage_size",
        need_wg_bytes as u64,
        have.max_compute_workgroup_storage_size as u64,
    );
    check(
        "max_compute_invocations_per_workgroup",
        need_inv as u64,
        have.max_compute_invocations_per_workgroup as u64,
    );
    check(
        "max_compute_workgroup_size_x",
        wg[0] as u64,
        have.max_compute_workgroup_size_x as u64,
    );
    check(
        "max_compute_workgroup_size_y",
        wg[1] as u64,
        have.max_compute_workgroup_size_y as u64,
    );
    check(
        "max_compute_workgroup_size_z",
        wg[2] as u64,
        have.max_compute_workgroup_size_z as u64,
    );
    check(
        "max_dynamic_uniform_buffers_per_pipeline_layout",
        1,
        have.max_dynamic_uniform_buffers_per_pipeline_layout as u64,
    );
    if !missing.is_empty() {
        return Err(Error::Gpu(format!(
            "adapter `{}` lacks limits the kernels need: {}",
            adapter.get_info().name,
            missing.join("; ")
        )));
    }
    // Start from what every downlevel device offers (never above the adapter), then ask for what
    // the kernels need and for the adapter's own buffer sizes and grid.
    let mut l = wgpu::Limits::downlevel_defaults().or_worse_values_from(&have);
    l.max_storage_buffers_per_shader_stage =
        need_storage.max(l.max_storage_buffers_per_shader_stage);
    l.max_compute_workgroup_storage_size = need_wg_bytes.max(l.max_compute_workgroup_storage_size);
    l.max_compute_invocations_per_workgroup = need_inv.max(l.max_compute_invocations_per_workgroup);
    l.max_compute_workgroup_size_x = wg[0].max(l.max_compute_workgroup_size_x);
    l.max_compute_workgroup_size_y = wg[1].max(l.max_compute_workgroup_size_y);
    l.max_compute_workgroup_size_z = wg[2].max(l.max_compute_workgroup_size_z);
    l.max_dynamic_uniform_buffers_per_pipeline_layout =
        l.max_dynamic_uniform_buffers_per_pipeline_layout.max(1);
    l.max_storage_buffer_binding_size = have.max_storage_buffer_binding_size;
    l.max_buffer_size = have.max_buffer_size;
    l.max_compute_workgroups_per_dimension = have.max_compute_workgroups_per_dimension;
    Ok(l)
}

/// A compute pipeline and its explicit bind-group layout (from the kernel table).
pub struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// The parameter slots of one submission and the bind groups built over them, each with the
/// last submission that used it (a bind group keeps its buffers alive, so groups unused for a
/// few submissions are dropped: the buffers of a finished candidate are not pinned).
pub(crate) struct ParamState {
    pub buffer: Option<wgpu::Buffer>,
    pub groups: HashMap<(KernelId, Vec<wgpu::Buffer>), (wgpu::BindGroup, u64)>,
    /// Submissions recorded so far.
    pub submissions: u64,
}

/// GPU time of one kernel over a profiled run: its dispatches and their summed time from
/// timestamp queries written at the start and end of each dispatch's own compute pass.
#[derive(Clone, Debug, Serialize)]
pub struct KernelTime {
    /// `file::entry` of the WGSL kernel.
    pub kernel: String,
    pub dispatches: u64,
    pub seconds: f64,
}

/// What a context has done since it opened: compute submissions and their dispatches, the
/// blocking read-backs with the bytes they brought to the host, and the bytes written from the
/// host (uploads). Take a snapshot before and after some work and subtract
/// ([`GpuCounters::since`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GpuCounters {
    pub submissions: u64,
    pub dispatches: u64,
    pub read_backs: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

impl GpuCounters {
    /// The work done between the snapshot `earlier` and this one.
    pub fn since(self, earlier: GpuCounters) -> GpuCounters {
        GpuCounters {
            submissions: self.submissions - earlier.submissions,
            dispatches: self.dispatches - earlier.dispatches,
            read_backs: self.read_backs - earlier.read_backs,
            bytes_read: self.bytes_read - earlier.bytes_read,
            bytes_written: self.bytes_written - earlier.bytes_written,
        }
    }
}

pub struct GpuContext {
    pub instance: wgpu::Instance,
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pub info: wgpu::AdapterInfo,
    modules: Vec<OnceLock<wgpu::ShaderModule>>,
    /// Errors no error scope caught (reported by the device's uncaptured-error handler, which
    /// would otherwise panic), returned by the next [`GpuContext::wait`] or read-back.
    uncaptured: Arc<Mutex<Vec<String>>>,
    pipelines: Mutex<HashMap<KernelId, Arc<Pipeline>>>,
    pub(crate) params: Mutex<ParamState>,
    staging: Mutex<Option<wgpu::Buffer>>,
    /// Per-kernel (dispatches, nanoseconds) while profiling (see [`GpuContext::start_profile`]).
    pub(crate) profile: Mutex<Option<BTreeMap<String, (u64, f64)>>>,
    counters: Mutex<GpuCounters>,
}

impl GpuContext {
    /// Open a device on the chosen adapter, on the backends `WGPU_BACKEND` allows.
    pub fn new(choice: &DeviceChoice) -> Result<Self> {
        Self::with_backends(choice, None)
    }

    /// Open a device on the chosen adapter among the given backends (e.g. only GL).
    pub fn with_backends(choice: &DeviceChoice, backends: Option<wgpu::Backends>) -> Result<Self> {
        let instance = instance(backends);
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        let adapter = choose(adapters, choice)?;
        let limits = required_limits(&adapter)?;
        // Timestamps are optional: the benchmark uses them where present, wall clock otherwise.
        let features = adapter.features() & wgpu::Features::TIMESTAMP_QUERY;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("msenas"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| {
            Error::Gpu(format!(
                "request_device on `{}`: {e}",
                adapter.get_info().name
            ))
        })?;
        let info = adapter.get_info();
        let uncaptured: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().unwrap().push(e.to_string());
        }));
        Ok(GpuContext {
            uncaptured,
            instance,
            adapter,
            device,
            queue,
            limits,
            features,
            info,
            modules: table::SHADER_FILES
                .iter()
                .map(|_| OnceLock::new())
                .collect(),
            pipelines: Mutex::new(HashMap::new()),
            params: Mutex::new(ParamState {
                buffer: None,
                groups: HashMap::new(),
                submissions: 0,
            }),
            staging: Mutex::new(None),
            profile: Mutex::new(None),
            counters: Mutex::default(),
        })
    }

    /// Time every dispatch from now on: each goes into its own compute pass with timestamp
    /// writes, and every submission waits for its timestamps (so profiled runs are slower than
    /// unprofiled ones; the per-kernel shares are what they are for). Refused where the adapter
    /// has no timestamp queries.
    pub fn start_profile(&self) -> Result<()> {
        if !self.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            return Err(Error::Gpu(format!(
                "`{}` has no timestamp queries: kernels cannot be timed on it",
                self.info.name
            )));
        }
        *self.profile.lock().unwrap() = Some(BTreeMap::new());
        Ok(())
    }

    /// The kernels timed since [`GpuContext::start_profile`], longest total first; stops
    /// profiling. Empty when it was not started.
    pub fn take_profile(&self) -> Vec<KernelTime> {
        let map = self.profile.lock().unwrap().take().unwrap_or_default();
        let mut v: Vec<KernelTime> = map
            .into_iter()
            .map(|(kernel, (dispatches, ns))| KernelTime {
                kernel,
                dispatches,
                seconds: ns * 1e-9,
            })
            .collect();
        v.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        v
    }

    /// Submissions, dispatches and read-backs so far.
    pub fn counters(&self) -> GpuCounters {
        *self.counters.lock().unwrap()
    }

    /// Count one compute submission of `dispatches` dispatches.
    pub(crate) fn count_submission(&self, dispatches: usize) {
        let mut c = self.counters.lock().unwrap();
        c.submissions += 1;
        c.dispatches += dispatches as u64;
    }

    /// Bind groups cached for reuse (bounded: see [`crate::gpu::recorder`]).
    pub fn cached_bind_groups(&self) -> usize {
        self.params.lock().map_or(0, |s| s.groups.len())
    }

    pub fn summary(&self) -> AdapterSummary {
        summary(&self.adapter)
    }

    pub fn is_cpu(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    fn module(&self, kernel: KernelId) -> &wgpu::ShaderModule {
        let file = kernel.info().file_index;
        self.modules[file].get_or_init(|| {
            let f = kernel.shader();
            self.device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(f.name),
                    source: wgpu::ShaderSource::Wgsl(f.source.into()),
                })
        })
    }

    /// The pipeline of a kernel, created on first use and cached for the context's life.
    pub fn pipeline(&self, kernel: KernelId) -> Result<Arc<Pipeline>> {
        if let Some(p) = self.pipelines.lock().unwrap().get(&kernel) {
            return Ok(p.clone());
        }
        let info = kernel.info();
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let entries: Vec<wgpu::BindGroupLayoutEntry> = info
            .bindings
            .iter()
            .map(|b| wgpu::BindGroupLayoutEntry {
                binding: b.binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match b.kind {
                        BindingKind::Uniform => wgpu::BufferBindingType::Uniform,
                        BindingKind::StorageRead => {
                            wgpu::BufferBindingType::Storage { read_only: true }
                        }
                        BindingKind::StorageReadWrite => {
                            wgpu::BufferBindingType::Storage { read_only: false }
                        }
                    },
                    has_dynamic_offset: b.kind == BindingKind::Uniform,
                    min_binding_size: if b.kind == BindingKind::Uniform {
                        wgpu::BufferSize::new(b.size as u64)
                    } else {
                        wgpu::BufferSize::new(4)
                    },
                },
                count: None,
            })
            .collect();
        let label = info.label();
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(&label),
                entries: &entries,
            });
        let pl = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(&label),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                layout: Some(&pl),
                module: self.module(kernel),
                entry_point: Some(info.entry),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!("pipeline {label}: {e}")));
        }
        let p = Arc::new(Pipeline { pipeline, layout });
        self.pipelines.lock().unwrap().insert(kernel, p.clone());
        Ok(p)
    }

    /// Build every kernel's pipeline now (so a broken driver shows up at start, not mid-run).
    pub fn warm_up(&self) -> Result<()> {
        for &k in KernelId::ALL {
            self.pipeline(k)?;
        }
        Ok(())
    }

    /// A storage buffer of `len` 4-byte elements (f32 or u32), zeroed.
    pub fn storage(&self, label: &str, len: usize) -> Result<wgpu::Buffer> {
        let size = (len.max(1) * 4) as u64;
        if size > self.limits.max_storage_buffer_binding_size {
            return Err(Error::Gpu(format!(
                "buffer `{label}` of {size} B exceeds the binding limit of {} B; split it",
                self.limits.max_storage_buffer_binding_size
            )));
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!(
                "out of memory creating buffer `{label}` of {size} B: {e}"
            )));
        }
        Ok(buffer)
    }

    /// The errors the device reported outside any error scope since the last call, as one
    /// [`Error::Gpu`].
    pub fn take_error(&self) -> Result<()> {
        let errors = std::mem::take(&mut *self.uncaptured.lock().unwrap());
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Gpu(errors.join("; ")))
        }
    }

    /// A storage buffer holding `data`.
    pub fn upload<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> Result<wgpu::Buffer> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let buf = self.storage(label, bytes.len().div_ceil(4))?;
        self.write(View::whole(&buf), data);
        Ok(buf)
    }

    /// Queue a write of `data` at the view's start (takes effect before the next submission).
    pub fn write<T: bytemuck::Pod>(&self, view: View<'_>, data: &[T]) {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        if !bytes.is_empty() {
            self.queue
                .write_buffer(view.buffer, view.offset as u64 * 4, bytes);
            self.counters.lock().unwrap().bytes_written += bytes.len() as u64;
        }
    }

    /// Copy a view back to the host (waits for the queue). One read-back per call: callers
    /// gather what they need into few views.
    pub fn read<T: bytemuck::Pod>(&self, view: View<'_>) -> Result<Vec<T>> {
        let size = view.len as u64 * 4;
        let mut out = vec![T::zeroed(); size as usize / std::mem::size_of::<T>()];
        if size == 0 {
            return Ok(out);
        }
        let mut staging = self.staging.lock().unwrap();
        if staging.as_ref().is_none_or(|s| s.size() < size) {
            *staging = Some(self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("staging"),
                size: size.next_power_of_two().max(1 << 16),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        let st = staging.as_ref().unwrap();
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("read"),
            });
        enc.copy_buffer_to_buffer(view.buffer, view.offset as u64 * 4, st, 0, size);
        self.queue.submit([enc.finish()]);
        {
            let mut c = self.counters.lock().unwrap();
            c.read_backs += 1;
            c.bytes_read += size;
        }
        let slice = st.slice(0..size);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("poll: {e}")))?;
        rx.recv()
            .map_err(|_| Error::Gpu("read-back: map callback dropped".into()))?
            .map_err(|e| Error::Gpu(format!("read-back: {e}")))?;
        {
            let data = slice
                .get_mapped_range()
                .map_err(|e| Error::Gpu(format!("read-back: {e}")))?;
            bytemuck::cast_slice_mut::<T, u8>(&mut out).copy_from_slice(&data);
        }
        st.unmap();
        self.take_error()?;
        Ok(out)
    }

    /// Wait for all submitted work.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("poll: {e}")))?;
        self.take_error()
    }
}
