//! Buffers reused across ops and runs. A freed [`Buf`] goes back to a process-wide pool instead
//! of the allocator: tensors of a few MiB are fresh pages from the OS on every allocation, and
//! faulting them in cost about a quarter of a forward pass. The pools keep at most
//! [`POOL_BYTES`] of free buffers in all; [`release`] hands them back to the allocator.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Most bytes of free buffers kept, over every element type.
pub(crate) const POOL_BYTES: usize = 512 << 20;

/// Bytes of free buffers kept now.
static KEPT: AtomicUsize = AtomicUsize::new(0);

/// An element type with a pool of its own.
pub(crate) trait Pooled: Copy + Default + 'static {
    fn with_pool<R>(f: impl FnOnce(&mut Pool<Self>) -> R) -> R;
}

/// The free buffers of one element type.
pub(crate) struct Pool<T> {
    free: Vec<Vec<T>>,
}

impl<T> Pool<T> {
    const fn new() -> Self {
        Pool { free: Vec::new() }
    }
}

macro_rules! pooled {
    ($($t:ty),*) => {$(
        impl Pooled for $t {
            fn with_pool<R>(f: impl FnOnce(&mut Pool<Self>) -> R) -> R {
                static POOL: Mutex<Pool<$t>> = Mutex::new(Pool::new());
                // A panic elsewhere cannot leave a pool inconsistent: it holds whole vectors.
                f(&mut POOL.lock().unwrap_or_else(|e| e.into_inner()))
            }
        }
    )*};
}
pooled!(f32, u8);

/// A zero-initialised buffer that returns to its thread's pool when dropped.
pub(crate) struct Buf<T: Pooled> {
    v: Vec<T>,
}

impl<T: Pooled> Buf<T> {
    /// `len` zeros, in the smallest free buffer that holds them (or a new one).
    pub fn zeroed(len: usize) -> Buf<T> {
        let mut b = Buf::take(len);
        b.v.clear();
        b.v.resize(len, T::default());
        b
    }

    /// `len` values of unspecified content (a reused buffer keeps what it held; only what it
    /// never held is zeroed), for outputs that are overwritten whole.
    pub fn stale(len: usize) -> Buf<T> {
        let mut b = Buf::take(len);
        if b.v.len() >= len {
            b.v.truncate(len);
        } else {
            b.v.resize(len, T::default());
        }
        b
    }

    /// The smallest free buffer that holds `len` values (or a new, empty one).
    fn take(len: usize) -> Buf<T> {
        let reused = T::with_pool(|p| {
            let best = p
                .free
                .iter()
                .enumerate()
                .filter(|(_, v)| v.capacity() >= len)
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i)?;
            let v = p.free.swap_remove(best);
            KEPT.fetch_sub(v.capacity() * std::mem::size_of::<T>(), Ordering::Relaxed);
            Some(v)
        });
        Buf {
            v: reused.unwrap_or_else(|| Vec::with_capacity(len)),
        }
    }

    /// A copy of `src` in a pooled buffer.
    pub fn from_slice(src: &[T]) -> Buf<T> {
        let mut b = Buf::stale(src.len());
        b.copy_from_slice(src);
        b
    }

    /// The values as a plain vector (leaving the pool).
    pub fn into_vec(mut self) -> Vec<T> {
        std::mem::take(&mut self.v)
    }
}

impl<T: Pooled> Drop for Buf<T> {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.v);
        let bytes = v.capacity() * std::mem::size_of::<T>();
        if bytes == 0 {
            return;
        }
        T::with_pool(|p| {
            if KEPT.load(Ordering::Relaxed) + bytes <= POOL_BYTES {
                KEPT.fetch_add(bytes, Ordering::Relaxed);
                p.free.push(v);
            }
        });
    }
}

impl<T: Pooled> Deref for Buf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.v
    }
}

impl<T: Pooled> DerefMut for Buf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.v
    }
}

impl<T: Pooled + std::fmt::Debug> std::fmt::Debug for Buf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buf({} values)", self.v.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands every free buffer back to the allocator (the engine keeps up to `POOL_BYTES`
    /// (512 MiB) of them between runs otherwise).
    fn release() {
        fn drain<T: Pooled>() {
            T::with_pool(|p| {
                for v in p.free.drain(..) {
                    KEPT.fetch_sub(v.capacity() * std::mem::size_of::<T>(), Ordering::Relaxed);
                }
            });
        }
        drain::<f32>();
        drain::<u8>();
    }

    #[test]
    fn buffers_come_back_with_the_contents_asked_for() {
        // (Other tests share the pools, so which buffer comes back is not asserted.)
        let mut a = Buf::<f32>::zeroed(1000);
        a[3] = 7.0;
        drop(a);
        let b = Buf::<f32>::zeroed(900);
        assert_eq!(b.len(), 900);
        assert!(b.iter().all(|&v| v == 0.0), "zeroed");
        drop(b);
        let c = Buf::<f32>::stale(950);
        assert_eq!(c.len(), 950);
        assert_eq!(Buf::from_slice(&[1u8, 2, 3]).into_vec(), vec![1, 2, 3]);
        drop(c);
        release();
        assert!(KEPT.load(Ordering::Relaxed) <= POOL_BYTES);
    }
}
