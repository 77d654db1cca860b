//! Events -> frames, the on-disk cache of framed tensors, and augmentation.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::Split;
use crate::Result;

/// One address event: time (µs), pixel, polarity (1 = ON, 0 = OFF).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub t: u64,
    pub x: u16,
    pub y: u16,
    pub p: u8,
}

/// Frames `events` into `t_bins` frames of per-polarity counts, `[T, 2, h, w]` (channel = p).
///
/// Bins are spikingjelly's `split_by="time"`: with `t0`/`t1` the first and last event times and
/// `dt = (t1 - t0) / T` (integer division), frame `j` takes `t0 + j*dt <= t < t0 + (j+1)*dt`,
/// and the last frame runs to (and includes) the final event. Unlike spikingjelly, an empty bin
/// is allowed (it stays zero); if `dt` is 0 (a span shorter than T µs) every event lands in the
/// last frame, as the same formula gives. No events give all-zero frames. Events outside the
/// `h x w` sensor or with `p > 1` are ignored (the readers reject them before).
pub fn frame_events(events: &[Event], t_bins: usize, h: usize, w: usize) -> Vec<f32> {
    let plane = h * w;
    let mut out = vec![0.0f32; t_bins * 2 * plane];
    if events.is_empty() || t_bins == 0 {
        return out;
    }
    let t0 = events.iter().map(|e| e.t).min().unwrap();
    let t1 = events.iter().map(|e| e.t).max().unwrap();
    let dt = (t1 - t0) / t_bins as u64;
    for e in events {
        let (x, y, p) = (e.x as usize, e.y as usize, e.p as usize);
        if x >= w || y >= h || p > 1 {
            continue;
        }
        let bin = match (e.t - t0).checked_div(dt) {
            Some(b) => (b as usize).min(t_bins - 1),
            None => t_bins - 1,
        };
        out[(bin * 2 + p) * plane + y * w + x] += 1.0;
    }
    out
}

/// Frames events at sensor size `h x w`, then resizes to `size x size` (see
/// [`super::resize`]): `[T, 2, size, size]`.
pub fn frame_and_resize(
    events: &[Event],
    t_bins: usize,
    h: usize,
    w: usize,
    size: usize,
) -> Vec<f32> {
    let f = frame_events(events, t_bins, h, w);
    super::resize::resize(&f, t_bins * 2, h, w, size, size)
}

// ---------------------------------------------------------------------------------------------
// Cache of framed splits.

const CACHE_MAGIC: &[u8; 8] = b"MSENASF1";

/// The cache file for `key` (a string holding every framing parameter) under `dir`.
pub fn cache_path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!(
        "{:016x}.frames",
        crate::genome::fnv1a64(key.as_bytes())
    ))
}

/// Reads a cached split; `None` when absent, for another key, or damaged.
pub fn read_cached(path: &Path, key: &str) -> Option<Split> {
    let b = crate::fsio::read_bounded(path, crate::fsio::MAX_DATA_BYTES, "frame cache").ok()?;
    let mut r = Reader { b: &b, pos: 0 };
    if r.take(8)? != CACHE_MAGIC {
        return None;
    }
    let klen = r.u64()? as usize;
    if r.take(klen)? != key.as_bytes() {
        return None;
    }
    let n = r.u64()? as usize;
    let frames = r.u64()? as usize;
    let c = r.u64()? as usize;
    let h = r.u64()? as usize;
    let w = r.u64()? as usize;
    let len = n
        .checked_mul(frames)?
        .checked_mul(c)?
        .checked_mul(h)?
        .checked_mul(w)?;
    let labels = r.take(n.checked_mul(2)?)?;
    let labels = labels
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let xs = r.take(len.checked_mul(4)?)?;
    if r.pos != b.len() {
        return None;
    }
    let x = xs
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Some(Split {
        x,
        labels,
        n,
        frames,
        c,
        h,
        w,
    })
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// Writes a split to the cache atomically (temporary file in the same folder, then rename).
pub fn write_cached(path: &Path, key: &str, s: &Split) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = crate::fsio::temp_path(dir);
    let res = (|| {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        f.write_all(CACHE_MAGIC)?;
        f.write_all(&(key.len() as u64).to_le_bytes())?;
        f.write_all(key.as_bytes())?;
        for v in [s.n, s.frames, s.c, s.h, s.w] {
            f.write_all(&(v as u64).to_le_bytes())?;
        }
        for l in &s.labels {
            f.write_all(&l.to_le_bytes())?;
        }
        for v in &s.x {
            f.write_all(&v.to_le_bytes())?;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Returns the split cached under `key` in `dir`, or builds it and caches it. A cache that
/// cannot be written is skipped (the result is the same, only slower next time); the returned
/// flag says whether the split came from the cache.
pub fn cached(
    dir: Option<&Path>,
    key: &str,
    build: impl FnOnce() -> Result<Split>,
) -> Result<(Split, bool)> {
    let Some(dir) = dir else {
        return Ok((build()?, false));
    };
    let path = cache_path(dir, key);
    if let Some(s) = read_cached(&path, key) {
        return Ok((s, true));
    }
    let s = build()?;
    let _ = write_cached(&path, key, &s);
    Ok((s, false))
}

// ---------------------------------------------------------------------------------------------
// Augmentation.

/// Random crop with `pad` pixels of zero padding, then a horizontal flip with probability 1/2,
/// on a time-first batch `[t, b, c, h, w]`; every sample gets one transform for all its time
/// steps and channels. Draws per sample, in order: the y offset, the x offset (each uniform in
/// `0..=2*pad`), then the flip.
#[allow(clippy::too_many_arguments)]
pub fn augment_static(
    batch: &mut [f32],
    t: usize,
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    pad: usize,
    rng: &mut impl rand::Rng,
) {
    let aug = EventAugment {
        pad,
        flip: true,
        max_rotate_deg: 0.0,
    };
    augment_events(batch, t, b, c, h, w, &aug, rng);
}

/// Augmentation of event frames.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EventAugment {
    /// Zero padding of the random crop (0: no crop).
    pub pad: usize,
    /// Horizontal flip with probability 1/2 (leave off where left/right carries the class,
    /// as in DVS128 Gesture's left/right hand waves).
    pub flip: bool,
    /// Rotation by an angle uniform in `[-max, max]` degrees about the image centre, bilinear
    /// sampling, zero outside (0: none).
    pub max_rotate_deg: f32,
}

impl Default for EventAugment {
    fn default() -> Self {
        EventAugment {
            pad: 4,
            flip: true,
            max_rotate_deg: 15.0,
        }
    }
}

/// Rotation, random crop with zero padding and horizontal flip on a time-first batch
/// `[t, b, c, h, w]`; every sample gets one transform for all its time steps and channels.
/// Output pixel `(y, x)` reads: flip (`x -> w-1-x`), then the crop offset, then the inverse
/// rotation about the centre. Draws per sample, in order: y offset, x offset, flip (if
/// enabled), angle (if enabled).
#[allow(clippy::too_many_arguments)]
pub fn augment_events(
    batch: &mut [f32],
    t: usize,
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    aug: &EventAugment,
    rng: &mut impl rand::Rng,
) {
    assert_eq!(batch.len(), t * b * c * h * w, "augment: batch length");
    let plane = h * w;
    let pad = aug.pad as isize;
    let mut tmp = vec![0.0f32; plane];
    for bi in 0..b {
        let dy = rng.random_range(0..=2 * aug.pad) as isize - pad;
        let dx = rng.random_range(0..=2 * aug.pad) as isize - pad;
        let flip = aug.flip && rng.random_bool(0.5);
        let angle = if aug.max_rotate_deg > 0.0 {
            rng.random_range(-aug.max_rotate_deg..=aug.max_rotate_deg)
                .to_radians()
        } else {
            0.0
        };
        if dy == 0 && dx == 0 && !flip && angle == 0.0 {
            continue;
        }
        let (sin, cos) = angle.sin_cos();
        let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
        for ti in 0..t {
            for ci in 0..c {
                let off = ((ti * b + bi) * c + ci) * plane;
                let p = &mut batch[off..off + plane];
                tmp.copy_from_slice(p);
                for y in 0..h {
                    for x in 0..w {
                        let fx = if flip { w - 1 - x } else { x };
                        let sy = y as isize + dy;
                        let sx = fx as isize + dx;
                        p[y * w + x] = if angle == 0.0 {
                            if sy >= 0 && sy < h as isize && sx >= 0 && sx < w as isize {
                                tmp[sy as usize * w + sx as usize]
                            } else {
                                0.0
                            }
                        } else {
                            let (ry, rx) = (sy as f32 - cy, sx as f32 - cx);
                            let uy = cos * ry - sin * rx + cy;
                            let ux = sin * ry + cos * rx + cx;
                            bilinear_zero(&tmp, h, w, uy, ux)
                        };
                    }
                }
            }
        }
    }
}

/// Bilinear sample at (y, x) with zero outside the plane.
fn bilinear_zero(p: &[f32], h: usize, w: usize, y: f32, x: f32) -> f32 {
    let (y0, x0) = (y.floor(), x.floor());
    let (ly, lx) = (y - y0, x - x0);
    let at = |yy: f32, xx: f32| -> f32 {
        if yy < 0.0 || xx < 0.0 || yy >= h as f32 || xx >= w as f32 {
            0.0
        } else {
            p[yy as usize * w + xx as usize]
        }
    };
    at(y0, x0) * (1.0 - ly) * (1.0 - lx)
        + at(y0, x0 + 1.0) * (1.0 - ly) * lx
        + at(y0 + 1.0, x0) * ly * (1.0 - lx)
        + at(y0 + 1.0, x0 + 1.0) * ly * lx
}
