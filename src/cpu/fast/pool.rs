//! Buffers reused across ops and runs. A freed [`Buf`] goes back to its thread's pool instead of
//! the allocator: tensors of a few MiB are fresh pages from the OS on every allocation, and
//! faulting them in cost about a quarter of a forward pass. A thread keeps at most
//! [`POOL_BYTES`] of free buffers; taking one zeroes it.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// Most bytes of free buffers one thread keeps.
pub(crate) const POOL_BYTES: usize = 256 << 20;

/// An element type with a pool of its own.
pub(crate) trait Pooled: Copy + Default + 'static {
    fn with_pool<R>(f: impl FnOnce(&mut Pool<Self>) -> R) -> R;
}

/// One thread's free buffers of one element type.
pub(crate) struct Pool<T> {
    free: Vec<Vec<T>>,
    bytes: usize,
}

impl<T> Pool<T> {
    const fn new() -> Self {
        Pool {
            free: Vec::new(),
            bytes: 0,
        }
    }
}

macro_rules! pooled {
    ($($t:ty),*) => {$(
        impl Pooled for $t {
            fn with_pool<R>(f: impl FnOnce(&mut Pool<Self>) -> R) -> R {
                thread_local! {
                    static POOL: RefCell<Pool<$t>> = const { RefCell::new(Pool::new()) };
                }
                POOL.with(|p| f(&mut p.borrow_mut()))
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
            p.bytes -= v.capacity() * std::mem::size_of::<T>();
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
            if p.bytes + bytes <= POOL_BYTES {
                p.bytes += bytes;
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

    #[test]
    fn buffers_come_back_zeroed_and_are_reused() {
        let mut a = Buf::<f32>::zeroed(1000);
        a[3] = 7.0;
        let ptr = a.as_ptr();
        drop(a);
        let b = Buf::<f32>::zeroed(900);
        assert_eq!(b.as_ptr(), ptr, "the freed buffer is reused");
        assert!(b.iter().all(|&v| v == 0.0));
        assert_eq!(b.len(), 900);
        let c = Buf::<f32>::zeroed(2000);
        assert_ne!(c.as_ptr(), ptr);
        drop(b);
        let d = Buf::<f32>::stale(950);
        assert_eq!(d.len(), 950);
        assert!(d.iter().all(|&v| v == 0.0), "never-held values are zero");
        assert_eq!(Buf::from_slice(&[1u8, 2, 3]).into_vec(), vec![1, 2, 3]);
    }
}
