//! A buffer pool keyed by (size class, usage), reused across candidates and generations.
//!
//! Sizes round up to a class (powers of two from 256 B, then quarter steps between powers of two
//! above 1 MiB so big slabs waste at most 25 %), so buffers of similar size are interchangeable.
//! The pool is generic over how a buffer is made, so its bookkeeping is tested on plain host
//! values with no GPU.

use std::collections::HashMap;

use crate::{Error, Result};

/// A rounded buffer size in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SizeClass(pub u64);

const MIN_CLASS: u64 = 256;
const FINE_ABOVE: u64 = 1 << 20;

impl SizeClass {
    pub fn of(bytes: u64) -> SizeClass {
        let b = bytes.max(MIN_CLASS);
        let p = b.next_power_of_two();
        if p <= FINE_ABOVE {
            return SizeClass(p);
        }
        // Quarter steps between p/2 and p.
        let step = p / 8;
        SizeClass(b.div_ceil(step) * step)
    }
}

/// How the pool makes a buffer; the GPU one wraps `wgpu::Device::create_buffer`.
pub trait Allocate {
    type Buffer;
    fn allocate(&mut self, size: SizeClass, usage: u32) -> Result<Self::Buffer>;
}

/// A buffer taken from the pool; give it back with [`Arena::give`].
#[derive(Debug)]
pub struct Lease<B> {
    pub buffer: B,
    pub class: SizeClass,
    pub usage: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArenaStats {
    pub allocations: u64,
    pub reuses: u64,
    /// Bytes in all buffers the pool made (free or leased).
    pub held_bytes: u64,
    /// Bytes currently leased.
    pub leased_bytes: u64,
    pub peak_leased_bytes: u64,
}

pub struct Arena<A: Allocate> {
    alloc: A,
    free: HashMap<(SizeClass, u32), Vec<A::Buffer>>,
    max_bytes: u64,
    stats: ArenaStats,
}

impl<A: Allocate> Arena<A> {
    /// `max_bytes` caps one buffer (the device's storage binding limit).
    pub fn new(alloc: A, max_bytes: u64) -> Self {
        Arena {
            alloc,
            free: HashMap::new(),
            max_bytes,
            stats: ArenaStats::default(),
        }
    }

    pub fn stats(&self) -> ArenaStats {
        self.stats
    }

    /// A buffer of at least `bytes` with `usage` (bit flags), reused when one is free.
    pub fn take(&mut self, bytes: u64, usage: u32) -> Result<Lease<A::Buffer>> {
        let class = SizeClass::of(bytes);
        if class.0 > self.max_bytes {
            // A request just under the limit may round past it: use the exact limit then.
            if bytes > self.max_bytes {
                return Err(Error::Gpu(format!(
                    "a buffer of {bytes} B exceeds the {} B binding limit; the executor must split it",
                    self.max_bytes
                )));
            }
        }
        let class = if class.0 > self.max_bytes {
            SizeClass(self.max_bytes)
        } else {
            class
        };
        let buffer = match self.free.get_mut(&(class, usage)).and_then(Vec::pop) {
            Some(b) => {
                self.stats.reuses += 1;
                b
            }
            None => {
                let b = self.alloc.allocate(class, usage)?;
                self.stats.allocations += 1;
                self.stats.held_bytes += class.0;
                b
            }
        };
        self.stats.leased_bytes += class.0;
        self.stats.peak_leased_bytes = self.stats.peak_leased_bytes.max(self.stats.leased_bytes);
        Ok(Lease {
            buffer,
            class,
            usage,
        })
    }

    /// Return a buffer to the pool for the next `take` of its class and usage.
    pub fn give(&mut self, lease: Lease<A::Buffer>) {
        self.stats.leased_bytes -= lease.class.0;
        self.free
            .entry((lease.class, lease.usage))
            .or_default()
            .push(lease.buffer);
    }

    /// Drop every free buffer (e.g. after a generation at an unusually large size).
    pub fn trim(&mut self) {
        for ((class, _), v) in self.free.drain() {
            self.stats.held_bytes -= class.0 * v.len() as u64;
        }
    }
}

/// Makes wgpu buffers for the pool.
pub struct GpuAllocator {
    pub device: wgpu::Device,
}

impl Allocate for GpuAllocator {
    type Buffer = wgpu::Buffer;
    fn allocate(&mut self, size: SizeClass, usage: u32) -> Result<wgpu::Buffer> {
        let usage = wgpu::BufferUsages::from_bits(usage)
            .ok_or_else(|| Error::Gpu(format!("arena: bad buffer usage bits {usage:#x}")))?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("arena"),
            size: size.0,
            usage,
            mapped_at_creation: false,
        });
        match pollster::block_on(scope.pop()) {
            Some(e) => Err(Error::Gpu(format!(
                "out of memory creating an arena buffer of {} B: {e}",
                size.0
            ))),
            None => Ok(buffer),
        }
    }
}

/// The usage of activation and weight slabs: storage, copied in and out.
pub fn storage_usage() -> u32 {
    (wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST)
        .bits()
}

impl Arena<GpuAllocator> {
    pub fn for_context(ctx: &super::GpuContext) -> Self {
        Arena::new(
            GpuAllocator {
                device: ctx.device.clone(),
            },
            ctx.limits.max_storage_buffer_binding_size,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Host stand-in: a buffer is its id and size.
    #[derive(Default)]
    struct Host {
        made: Vec<(u64, u32)>,
    }
    impl Allocate for Host {
        type Buffer = (usize, u64);
        fn allocate(&mut self, size: SizeClass, usage: u32) -> Result<(usize, u64)> {
            self.made.push((size.0, usage));
            Ok((self.made.len() - 1, size.0))
        }
    }

    #[test]
    fn size_classes_round_up_and_are_monotone() {
        assert_eq!(SizeClass::of(0).0, 256);
        assert_eq!(SizeClass::of(257).0, 512);
        assert_eq!(SizeClass::of(1 << 20).0, 1 << 20);
        // Above 1 MiB: quarter steps.
        let c = SizeClass::of((1 << 20) + 1).0;
        assert_eq!(c, (1 << 20) + (1 << 18));
        let mut last = 0;
        for b in (0..50_000_000u64).step_by(9_973) {
            let c = SizeClass::of(b).0;
            assert!(c >= b && c >= last);
            assert!(b < 256 || (c as f64) <= b as f64 * 2.0);
            if b > 1 << 20 {
                assert!((c as f64) < b as f64 * 1.25 + 1.0, "{b} -> {c}");
            }
            last = c;
        }
    }

    #[test]
    fn reuses_by_class_and_usage() {
        let mut a = Arena::new(Host::default(), 1 << 30);
        let x = a.take(1000, 1).unwrap();
        let y = a.take(1000, 2).unwrap();
        assert_eq!(a.stats().allocations, 2);
        let xid = x.buffer.0;
        a.give(x);
        // Same class (1024) and usage: reused; another usage is not.
        let z = a.take(700, 1).unwrap();
        assert_eq!(z.buffer.0, xid);
        assert_eq!(a.stats().reuses, 1);
        let w = a.take(1000, 3).unwrap();
        assert_ne!(w.buffer.0, xid);
        assert_eq!(a.stats().allocations, 3);
        a.give(y);
        a.give(z);
        a.give(w);
        assert_eq!(a.stats().leased_bytes, 0);
        assert_eq!(a.stats().peak_leased_bytes, 3 * 1024);
        assert_eq!(a.stats().held_bytes, 3 * 1024);
        assert_eq!(a.free.values().map(Vec::len).sum::<usize>(), 3);
        a.trim();
        assert_eq!(a.stats().held_bytes, 0);
        assert_eq!(a.free.values().map(Vec::len).sum::<usize>(), 0);
    }

    #[test]
    fn generations_reach_a_steady_state() {
        let mut a = Arena::new(Host::default(), 1 << 30);
        for _generation in 0..5 {
            let leases: Vec<_> = [300u64, 5000, 5000, 2_000_000]
                .iter()
                .map(|&b| a.take(b, 1).unwrap())
                .collect();
            for l in leases {
                a.give(l);
            }
        }
        assert_eq!(a.stats().allocations, 4);
        assert_eq!(a.stats().reuses, 16);
    }

    #[test]
    fn refuses_buffers_past_the_binding_limit() {
        let mut a = Arena::new(Host::default(), 1 << 20);
        assert!(a.take((1 << 20) + 1, 1).is_err());
        // Just under the limit rounds to the limit itself.
        let l = a.take((1 << 20) - 5, 1).unwrap();
        assert_eq!(l.class.0, 1 << 20);
    }
}
