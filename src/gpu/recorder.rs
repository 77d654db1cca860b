//! Work recorded as data, then encoded and submitted at once: one command encoder and one
//! compute pass per submission, all kernel parameters in one uniform buffer at dynamic offsets,
//! and bind groups cached by (kernel, buffers) so repeated candidates reuse them.

use std::collections::hash_map::Entry;

use bytemuck::Pod;

use super::context::GpuContext;
use super::kernels::table::KernelId;
use super::kernels::View;
use crate::{Error, Result};

enum Cmd {
    Dispatch {
        kernel: KernelId,
        param: u32,
        buffers: Vec<wgpu::Buffer>,
        groups: [u32; 3],
    },
    Clear {
        buffer: wgpu::Buffer,
        offset: u64,
        size: u64,
    },
    Copy {
        src: wgpu::Buffer,
        src_off: u64,
        dst: wgpu::Buffer,
        dst_off: u64,
        size: u64,
    },
}

/// Size of one parameter slot: every kernel's parameters fit, and 256 is the largest
/// `min_uniform_buffer_offset_alignment` wgpu allows.
const SLOT: usize = 256;
/// A hard bound on cached bind groups (a backstop; [`KEEP_SUBMISSIONS`] bounds them first).
const MAX_CACHED_GROUPS: usize = 4096;
/// More cached bind groups than this after a submission keeps only that submission's.
const TRIM_ABOVE: usize = 2048;
/// Bind groups unused for this many submissions are dropped. A training step or a repeated
/// forward pass reuses its groups every submission; a finished candidate's groups, and the
/// buffers they hold, go after this many others.
const KEEP_SUBMISSIONS: u64 = 16;

pub struct Recorder<'c> {
    ctx: &'c GpuContext,
    params: Vec<u8>,
    cmds: Vec<Cmd>,
    slot: usize,
}

impl<'c> Recorder<'c> {
    pub fn new(ctx: &'c GpuContext) -> Self {
        let slot = (ctx.limits.min_uniform_buffer_offset_alignment as usize).max(SLOT);
        Recorder {
            ctx,
            params: Vec::new(),
            cmds: Vec::new(),
            slot,
        }
    }

    pub fn ctx(&self) -> &'c GpuContext {
        self.ctx
    }

    /// Record one dispatch: `params` is the kernel's uniform, `buffers` its storage bindings in
    /// binding order (as the kernel table lists them).
    pub fn dispatch<P: Pod>(
        &mut self,
        kernel: KernelId,
        params: &P,
        buffers: &[&wgpu::Buffer],
        groups: [u32; 3],
    ) -> Result<()> {
        let info = kernel.info();
        let want = info.storage().count();
        if buffers.len() != want {
            return Err(Error::Gpu(format!(
                "{}: {} buffers given, kernel binds {want}",
                info.label(),
                buffers.len()
            )));
        }
        let bytes = bytemuck::bytes_of(params);
        let usize_ = info.uniform().map_or(0, |u| u.size as usize);
        if bytes.len() < usize_ || bytes.len() > self.slot {
            return Err(Error::Gpu(format!(
                "{}: parameters of {} B, the shader's uniform is {usize_} B",
                info.label(),
                bytes.len()
            )));
        }
        let max = self.ctx.limits.max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            return Err(Error::Gpu(format!(
                "{}: grid {groups:?} exceeds {max} per dimension",
                info.label()
            )));
        }
        if groups.contains(&0) {
            return Ok(());
        }
        let param = self.params.len() as u32;
        self.params.extend_from_slice(bytes);
        self.params
            .resize(self.params.len().next_multiple_of(self.slot), 0);
        self.cmds.push(Cmd::Dispatch {
            kernel,
            param,
            buffers: buffers.iter().map(|b| (*b).clone()).collect(),
            groups,
        });
        Ok(())
    }

    /// Zero a view.
    pub fn clear(&mut self, view: View<'_>) {
        self.cmds.push(Cmd::Clear {
            buffer: view.buffer.clone(),
            offset: view.offset as u64 * 4,
            size: view.len as u64 * 4,
        });
    }

    /// Copy `src` into the start of `dst`.
    pub fn copy(&mut self, src: View<'_>, dst: View<'_>) -> Result<()> {
        if dst.len < src.len {
            return Err(Error::Gpu(format!(
                "copy of {} elements into a view of {}",
                src.len, dst.len
            )));
        }
        self.cmds.push(Cmd::Copy {
            src: src.buffer.clone(),
            src_off: src.offset as u64 * 4,
            dst: dst.buffer.clone(),
            dst_off: dst.offset as u64 * 4,
            size: src.len as u64 * 4,
        });
        Ok(())
    }

    #[cfg(any(test, feature = "internals"))]
    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }

    /// Encode everything into one command buffer and submit it. Does not wait.
    pub fn submit(self) -> Result<()> {
        self.submit_timed(None)
    }

    /// Whether [`Recorder::submit_timed`] can time submissions on this device.
    pub fn can_time(ctx: &GpuContext) -> bool {
        ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// As [`Recorder::submit`]; with `stamps` (4 u32 elements) and a device with timestamp
    /// queries, also writes the GPU timestamps (u64 ticks, see `Queue::get_timestamp_period`)
    /// at the start of the first compute pass and the end of the last into `stamps`, so they
    /// come back with the submission's other outputs.
    pub fn submit_timed(self, stamps: Option<View<'_>>) -> Result<()> {
        let ctx = self.ctx;
        let stamps = stamps.filter(|_| Self::can_time(ctx));
        if let Some(v) = stamps {
            v.need("stamps", "recorder", 4)?;
        }
        if self.cmds.is_empty() {
            return Ok(());
        }
        let mut pipes = Vec::new();
        for c in &self.cmds {
            if let Cmd::Dispatch { kernel, .. } = c {
                pipes.push((*kernel, ctx.pipeline(*kernel)?));
            }
        }
        let mut state = ctx.params.lock().unwrap();
        let need = self.params.len().max(self.slot) as u64;
        if state.buffer.as_ref().is_none_or(|b| b.size() < need) {
            // Growing replaces the buffer, so the bind groups over the old one go too.
            state.groups.clear();
            state.buffer = Some(ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("kernel params"),
                size: need.next_power_of_two(),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        // Bind groups keep their buffers alive: drop those no recent submission used.
        state.submissions += 1;
        let now = state.submissions;
        state
            .groups
            .retain(|_, (_, used)| *used + KEEP_SUBMISSIONS >= now);
        if state.groups.len() > MAX_CACHED_GROUPS {
            state.groups.clear();
        }
        let pbuf = state.buffer.clone().unwrap();
        if !self.params.is_empty() {
            ctx.queue.write_buffer(&pbuf, 0, &self.params);
        }
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        // Bind groups first (they must outlive the pass).
        let mut pi = 0;
        for c in &self.cmds {
            if let Cmd::Dispatch {
                kernel, buffers, ..
            } = c
            {
                let key = (*kernel, buffers.clone());
                match state.groups.entry(key) {
                    Entry::Occupied(mut hit) => hit.get_mut().1 = now,
                    Entry::Vacant(slot) => {
                        let info = kernel.info();
                        let pipe = &pipes[pi].1;
                        let mut entries = Vec::new();
                        let mut storage = buffers.iter();
                        for b in info.bindings {
                            let resource = if b.kind == super::kernels::table::BindingKind::Uniform
                            {
                                wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                    buffer: &pbuf,
                                    offset: 0,
                                    size: wgpu::BufferSize::new(
                                        (b.size as u64).next_multiple_of(16).min(self.slot as u64),
                                    ),
                                })
                            } else {
                                storage.next().unwrap().as_entire_binding()
                            };
                            entries.push(wgpu::BindGroupEntry {
                                binding: b.binding,
                                resource,
                            });
                        }
                        let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                            label: Some(&info.label()),
                            layout: &pipe.layout,
                            entries: &entries,
                        });
                        slot.insert((bg, now));
                    }
                }
                pi += 1;
            }
        }
        // A submission that records many candidates (a generation) brings many groups: above
        // TRIM_ABOVE, keep only this submission's, so finished candidates' buffers go now.
        if state.groups.len() > TRIM_ABOVE {
            state.groups.retain(|_, (_, used)| *used == now);
        }
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("msenas"),
            });
        // Profiling (only started where timestamps exist): every dispatch in its own pass,
        // timed at both ends.
        let profiling = ctx.profile.lock().unwrap().is_some();
        let dispatches = pipes.len();
        let passes = if profiling {
            dispatches
        } else {
            self.cmds
                .iter()
                .enumerate()
                .filter(|(i, c)| {
                    matches!(c, Cmd::Dispatch { .. })
                        && (*i == 0 || !matches!(self.cmds[i - 1], Cmd::Dispatch { .. }))
                })
                .count()
        };
        let per_set = (wgpu::QUERY_SET_MAX_QUERIES / 2) as usize;
        let profile_sets: Vec<wgpu::QuerySet> = if profiling {
            (0..dispatches.div_ceil(per_set))
                .map(|k| {
                    ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                        label: Some("kernel times"),
                        ty: wgpu::QueryType::Timestamp,
                        count: (2 * (dispatches - k * per_set).min(per_set)) as u32,
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        let queries = stamps.filter(|_| !profiling).map(|_| {
            ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("submission time"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            })
        });
        let mut pass_index = 0;
        let mut i = 0;
        let mut pi = 0;
        while i < self.cmds.len() {
            match &self.cmds[i] {
                Cmd::Clear {
                    buffer,
                    offset,
                    size,
                } => {
                    enc.clear_buffer(buffer, *offset, Some(*size));
                    i += 1;
                }
                Cmd::Copy {
                    src,
                    src_off,
                    dst,
                    dst_off,
                    size,
                } => {
                    enc.copy_buffer_to_buffer(src, *src_off, dst, *dst_off, *size);
                    i += 1;
                }
                Cmd::Dispatch { .. } => {
                    // Consecutive dispatches share one pass (wgpu orders them with barriers),
                    // except when profiling.
                    let (first, last) = (pass_index == 0, pass_index + 1 == passes);
                    let writes = if profiling {
                        let (set, k) = (pi / per_set, (pi % per_set) as u32);
                        Some(wgpu::ComputePassTimestampWrites {
                            query_set: &profile_sets[set],
                            beginning_of_pass_write_index: Some(2 * k),
                            end_of_pass_write_index: Some(2 * k + 1),
                        })
                    } else {
                        queries.as_ref().filter(|_| first || last).map(|q| {
                            wgpu::ComputePassTimestampWrites {
                                query_set: q,
                                beginning_of_pass_write_index: first.then_some(0),
                                end_of_pass_write_index: last.then_some(1),
                            }
                        })
                    };
                    pass_index += 1;
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: None,
                        timestamp_writes: writes,
                    });
                    while let Some(Cmd::Dispatch {
                        kernel,
                        param,
                        buffers,
                        groups,
                    }) = self.cmds.get(i)
                    {
                        let bg = &state.groups[&(*kernel, buffers.clone())].0;
                        pass.set_pipeline(&pipes[pi].1.pipeline);
                        pass.set_bind_group(0, bg, &[*param]);
                        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
                        pi += 1;
                        i += 1;
                        if profiling {
                            break;
                        }
                    }
                }
            }
        }
        if let (Some(q), Some(v)) = (&queries, stamps) {
            if passes > 0 {
                let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("timestamps"),
                    size: 16,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                });
                enc.resolve_query_set(q, 0..2, &resolve, 0);
                enc.copy_buffer_to_buffer(&resolve, 0, v.buffer, v.offset as u64 * 4, 16);
            }
        }
        let profile_buf = (dispatches > 0 && profiling).then(|| {
            let buf = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("kernel times"),
                size: 16 * dispatches as u64,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            for (k, set) in profile_sets.iter().enumerate() {
                let n = (dispatches - k * per_set).min(per_set) as u32;
                enc.resolve_query_set(set, 0..2 * n, &buf, 16 * (k * per_set) as u64);
            }
            // The submission's own stamps: the first dispatch's start, the last one's end.
            if let Some(v) = stamps {
                let off = v.offset as u64 * 4;
                enc.copy_buffer_to_buffer(&buf, 0, v.buffer, off, 8);
                let end = 16 * dispatches as u64 - 8;
                enc.copy_buffer_to_buffer(&buf, end, v.buffer, off + 8, 8);
            }
            buf
        });
        ctx.queue.submit([enc.finish()]);
        ctx.count_submission(dispatches);
        drop(state);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!("submission: {e}")));
        }
        ctx.take_error()?;
        if let Some(buf) = profile_buf {
            let ticks: Vec<u64> = ctx.read(View {
                buffer: &buf,
                offset: 0,
                len: 4 * dispatches as u32,
            })?;
            let period = ctx.queue.get_timestamp_period() as f64;
            let mut guard = ctx.profile.lock().unwrap();
            if let Some(map) = guard.as_mut() {
                for (k, (kernel, _)) in pipes.iter().enumerate() {
                    let ns = ticks[2 * k + 1].saturating_sub(ticks[2 * k]) as f64 * period;
                    let e = map.entry(kernel.info().label()).or_insert((0, 0.0));
                    e.0 += 1;
                    e.1 += ns;
                }
            }
        }
        Ok(())
    }
}
