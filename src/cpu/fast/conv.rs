//! The fast engine's convolutions, channels innermost (`[image][y][x][c]`).
//!
//! - **Spiking input: lookup tables.** A convolution reading spikes (0/1) sums, per output pixel
//!   and tap, the weights of the input channels that spiked. For every tap and group of four
//!   input channels (a nibble of the spike byte) a table of 16 rows holds the sum of the weights
//!   of every subset ([`Lut`]); the output is then one table row added per tap and group,
//!   whatever the firing rate: `k*k*ceil(cin/4)` vector additions per output pixel where a dense
//!   product needs `k*k*cin` multiply-adds. (Groups of eight and 256-row tables need half the
//!   additions, but their tables outgrow the L1 cache and were slower on every layer of the
//!   sampled networks.)
//! - **Spiking input, weight gradient: buckets.** The transpose of the same idea: per tap and
//!   group, the output gradient of every pixel is added to the bucket of its input nibble; the
//!   weight gradient of channel `j` of the group is the sum of the buckets whose nibble has bit
//!   `j`.
//! - **Dense input** (the stem's image, and the input gradient of a stride-1 convolution, which
//!   is a convolution of the padded output gradient with the flipped kernel): register-tiled
//!   direct convolution, a few output pixels by up to 32 output channels per tile.
//!
//! Spikes are stored as bytes of eight channels, per image a plane padded by [`PAD`] pixels of
//! zeros on every side (`[(h + 2 PAD)][(w + 2 PAD)][ceil(c/8)]`), so that no tap needs a bounds
//! test; dense inputs of the direct kernels are padded the same way. Images are independent
//! tasks (rayon); the weight gradient sums fixed chunks of [`WGRAD_IMAGES`] images and adds the
//! chunk sums in order, so no result depends on the thread count.

use super::simd::{dispatch, Madd, LANES};
use crate::cpu::ConvShape;
use rayon::prelude::*;

/// Zero border of every padded plane: enough for a 5x5 kernel, or a 3x3 one shifted by a pixel.
pub(crate) const PAD: usize = 2;

/// Images per weight-gradient partial sum (fixed: the summation order must not depend on the
/// thread count).
pub(crate) const WGRAD_IMAGES: usize = 16;

/// Rows of a lookup table (and buckets of a weight gradient): one per subset of a group of four
/// channels.
const ENTRIES: usize = 16;

/// Rounds `c` up to whole vectors.
pub(crate) fn lanes_up(c: usize) -> usize {
    c.div_ceil(LANES) * LANES
}

/// Bytes of eight channels per pixel of a spike plane.
pub(crate) fn groups8(c: usize) -> usize {
    c.div_ceil(8)
}

/// Where each output pixel and tap reads in a padded plane.
#[derive(Clone, Debug)]
pub(crate) struct Taps {
    /// Per output pixel `q = oy * out_w + ox`: the padded-plane pixel that tap (0, 0) reads.
    pub bases: Vec<u32>,
    /// Per tap `dy * k + dx`: its offset in pixels from the base.
    pub offsets: Vec<u32>,
}

impl Taps {
    /// Output pixel `(oy, ox)` reads, through tap `(dy, dx)`, plane pixel
    /// `(oy*step + origin + dy, ox*step + origin + dx)` of a plane `plane_w` pixels wide.
    fn new(
        out_h: usize,
        out_w: usize,
        plane_w: usize,
        origin: usize,
        step: usize,
        k: usize,
    ) -> Taps {
        let mut bases = Vec::with_capacity(out_h * out_w);
        for oy in 0..out_h {
            for ox in 0..out_w {
                bases.push(((oy * step + origin) * plane_w + ox * step + origin) as u32);
            }
        }
        let offsets = (0..k * k)
            .map(|t| ((t / k) * plane_w + t % k) as u32)
            .collect();
        Taps { bases, offsets }
    }

    /// The forward convolution of `s` over its padded input plane.
    pub fn forward(s: &ConvShape) -> Taps {
        let (p, sh) = (s.pad(), s.shift as usize);
        assert!(
            p + sh <= PAD,
            "fast engine: a {}x{} kernel{} needs more than {PAD} pixels of padding",
            s.k,
            s.k,
            if s.shift { " shifted by one" } else { "" }
        );
        Taps::new(
            s.out_h(),
            s.out_w(),
            s.w + 2 * PAD,
            PAD - p + sh,
            s.stride,
            s.k,
        )
    }

    /// The input gradient of a stride-1 convolution `s` as a convolution of the padded output
    /// gradient (`out_h x out_w` inside [`PAD`]) with the flipped kernel: input pixel `(y, x)`
    /// reads, through flipped tap `(dy', dx')`, gradient pixel `(y + PAD - p - sh + dy', ...)`.
    pub fn input_gradient(s: &ConvShape) -> Taps {
        assert_eq!(s.stride, 1, "input_gradient taps: stride 1 only");
        let (p, sh) = (s.pad(), s.shift as usize);
        assert!(p + sh <= PAD, "fast engine: padding");
        Taps::new(s.h, s.w, s.out_w() + 2 * PAD, PAD - p - sh, 1, s.k)
    }
}

/// Per output pixel, its pixel in a plane padded by [`PAD`] (where gradients of convolution
/// outputs are kept).
pub(crate) fn padded_pixels(h: usize, w: usize) -> Vec<u32> {
    let wp = w + 2 * PAD;
    (0..h * w)
        .map(|q| ((q / w + PAD) * wp + q % w + PAD) as u32)
        .collect()
}

/// Lookup tables of one convolution's weights (see the module documentation).
pub(crate) struct Lut {
    /// `rows[((tap * groups + g) * ENTRIES + m) * coutp + o]`: the sum of the weights of output
    /// channel `o`, tap `tap` over the input channels `4g + j` whose bit `j` is set in `m`.
    pub rows: Vec<f32>,
    /// Groups of four input channels per tap (two per spike byte).
    pub groups: usize,
    /// Output channels rounded up to whole vectors (the extra lanes hold zeros).
    pub coutp: usize,
}

impl Lut {
    /// Builds the tables of weights `w` (`[cout][cin][k][k]`) into `rows` (reused).
    pub fn build(w: &[f32], s: &ConvShape, mut rows: Vec<f32>) -> Lut {
        let (cin, cout, taps) = (s.cin, s.cout, s.k * s.k);
        let coutp = lanes_up(cout);
        let groups = 2 * groups8(cin);
        rows.clear();
        rows.resize(taps * groups * ENTRIES * coutp, 0.0);
        // Weights transposed to [tap][ci][o] so that a row is built from contiguous values.
        let mut wt = vec![0.0f32; taps * cin * coutp];
        for o in 0..cout {
            for ci in 0..cin {
                for t in 0..taps {
                    wt[(t * cin + ci) * coutp + o] = w[(o * cin + ci) * taps + t];
                }
            }
        }
        rows.par_chunks_mut(groups * ENTRIES * coutp)
            .enumerate()
            .for_each(|(t, tap_rows)| {
                for (g, table) in tap_rows.chunks_mut(ENTRIES * coutp).enumerate() {
                    for m in 1..ENTRIES {
                        // Row m = row (m without its lowest bit) + the weight of that bit.
                        let ci = g * 4 + m.trailing_zeros() as usize;
                        let (done, rest) = table.split_at_mut(m * coutp);
                        let prev = &done[(m & (m - 1)) * coutp..][..coutp];
                        let row = &mut rest[..coutp];
                        if ci < cin {
                            let wr = &wt[(t * cin + ci) * coutp..][..coutp];
                            for ((r, &p), &wv) in row.iter_mut().zip(prev).zip(wr) {
                                *r = p + wv;
                            }
                        } else {
                            row.copy_from_slice(prev);
                        }
                    }
                }
            });
        Lut {
            rows,
            groups,
            coutp,
        }
    }
}

/// The nibble of group `g` (channels `4g..4g + 4`) of a pixel's spike bytes at `at`.
#[inline(always)]
fn nibble(bytes: *const u8, at: usize, g: usize) -> usize {
    // SAFETY: the callers pass an `at` whose bytes `at..at + groups8(cin)` are in the plane.
    let byte = unsafe { *bytes.add(at + g / 2) };
    ((byte >> ((g & 1) * 4)) & 15) as usize
}

/// Output channels per register tile: up to four vectors.
const BLOCK: usize = 4 * LANES;

/// Splits `coutp` channels into register tiles: `(first channel, vectors)`.
fn blocks(coutp: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..coutp)
        .step_by(BLOCK)
        .map(move |b| (b, (coutp - b).min(BLOCK) / LANES))
}

/// Where a convolution writes one image: `out[q * stride + offset + o]`, `o < channels`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OutImage {
    pub stride: usize,
    pub offset: usize,
    pub channels: usize,
}

#[inline(always)]
fn store<const NV: usize>(acc: &[[f32; LANES]; NV], out: &mut [f32], at: usize, valid: usize) {
    let dst = &mut out[at..at + valid];
    if valid == NV * LANES {
        for (d, a) in dst.chunks_exact_mut(LANES).zip(acc) {
            d.copy_from_slice(a);
        }
    } else {
        for (i, d) in dst.iter_mut().enumerate() {
            *d = acc[i / LANES][i % LANES];
        }
    }
}

/// `acc += row` lane by lane.
#[inline(always)]
fn add_row<const NV: usize>(acc: &mut [[f32; LANES]; NV], row: &[[f32; LANES]; NV]) {
    for v in 0..NV {
        for j in 0..LANES {
            acc[v][j] += row[v][j];
        }
    }
}

/// `PX` output pixels from `q` of one cout tile of a lookup-table convolution.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn lut_pixels<const NV: usize, const PX: usize>(
    plane: &[u8],
    g8: usize,
    lut: &Lut,
    block: usize,
    taps: &Taps,
    q: usize,
    out: &mut [f32],
    o: OutImage,
) {
    let coutp = lut.coutp;
    let groups = lut.groups;
    let mut acc = [[[0.0f32; LANES]; NV]; PX];
    let mut base = [0usize; PX];
    for (px, b) in base.iter_mut().enumerate() {
        *b = taps.bases[q + px] as usize * g8;
    }
    // Every byte read below is inside the plane and every row inside the tables: the largest
    // byte index is base + tap offset + group < plane.len() (the padded plane holds every tap
    // of every output pixel, checked by the caller), and a row starts at most at
    // ((taps * groups - 1) * ENTRIES + 15) * coutp + block with block + NV * LANES <= coutp.
    debug_assert!(base
        .iter()
        .all(|&b| b + *taps.offsets.last().unwrap() as usize * g8 + g8 <= plane.len()));
    debug_assert!(block + NV * LANES <= coutp);
    debug_assert_eq!(
        lut.rows.len(),
        taps.offsets.len() * groups * ENTRIES * coutp
    );
    let rows = lut.rows.as_ptr();
    let bytes = plane.as_ptr();
    for (ti, &toff) in taps.offsets.iter().enumerate() {
        let toff = toff as usize * g8;
        for g in 0..groups {
            // SAFETY: see above.
            let table = unsafe { rows.add((ti * groups + g) * ENTRIES * coutp + block) };
            for px in 0..PX {
                let m = nibble(bytes, base[px] + toff, g);
                // SAFETY: see above; [[f32; LANES]; NV] has the layout of NV * LANES floats.
                let row = unsafe { &*(table.add(m * coutp) as *const [[f32; LANES]; NV]) };
                add_row(&mut acc[px], row);
            }
        }
    }
    let valid = (o.channels - block).min(NV * LANES);
    for (px, a) in acc.iter().enumerate() {
        store(a, out, (q + px) * o.stride + o.offset + block, valid);
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn lut_image_impl<M: Madd, const NV: usize, const PX: usize>(
    plane: &[u8],
    g8: usize,
    lut: &Lut,
    block: usize,
    taps: &Taps,
    out: &mut [f32],
    o: OutImage,
) {
    let np = taps.bases.len();
    let mut q = 0;
    while q + PX <= np {
        lut_pixels::<NV, PX>(plane, g8, lut, block, taps, q, out, o);
        q += PX;
    }
    while q < np {
        lut_pixels::<NV, 1>(plane, g8, lut, block, taps, q, out, o);
        q += 1;
    }
}

dispatch!(fn lut_image<const NV: usize, const PX: usize>(
    plane: &[u8], g8: usize, lut: &Lut, block: usize, taps: &Taps, out: &mut [f32], o: OutImage,
) => lut_image_impl);

/// One image's output of a lookup-table convolution over its spike plane (`[hp][wp][g8]`
/// bytes): every cout tile, in tiles of pixels.
pub(crate) fn lut_conv_image(
    plane: &[u8],
    g8: usize,
    lut: &Lut,
    taps: &Taps,
    out: &mut [f32],
    o: OutImage,
) {
    let last = taps.bases.iter().max().copied().unwrap_or(0) as usize
        + taps.offsets.last().copied().unwrap_or(0) as usize;
    assert!(
        taps.bases.is_empty() || (last + 1) * g8 <= plane.len(),
        "lut_conv_image: plane too small for the taps"
    );
    assert_eq!(
        lut.rows.len(),
        taps.offsets.len() * lut.groups * ENTRIES * lut.coutp,
        "lut_conv_image: tables"
    );
    for (block, nv) in blocks(lut.coutp) {
        match nv {
            1 => lut_image::<1, 8>(plane, g8, lut, block, taps, out, o),
            2 => lut_image::<2, 4>(plane, g8, lut, block, taps, out, o),
            3 => lut_image::<3, 4>(plane, g8, lut, block, taps, out, o),
            _ => lut_image::<4, 2>(plane, g8, lut, block, taps, out, o),
        }
    }
}

/// Weights of a direct convolution as `[tap][ci][coutp]` (`flip`: the kernel rotated by 180°
/// with input and output channels swapped, for the input gradient).
pub(crate) fn direct_weights(w: &[f32], s: &ConvShape, flip: bool) -> (Vec<f32>, usize) {
    let taps = s.k * s.k;
    let (cin, cout) = if flip {
        (s.cout, s.cin)
    } else {
        (s.cin, s.cout)
    };
    let coutp = lanes_up(cout);
    let mut wt = vec![0.0f32; taps * cin * coutp];
    for o in 0..s.cout {
        for i in 0..s.cin {
            for t in 0..taps {
                let v = w[(o * s.cin + i) * taps + t];
                if flip {
                    wt[((taps - 1 - t) * cin + o) * coutp + i] = v;
                } else {
                    wt[(t * cin + i) * coutp + o] = v;
                }
            }
        }
    }
    (wt, coutp)
}

/// Weights as `[tap][o][cinp]` for [`scatter_input_gradient_image`].
pub(crate) fn scatter_weights(w: &[f32], s: &ConvShape) -> (Vec<f32>, usize) {
    let taps = s.k * s.k;
    let cinp = lanes_up(s.cin);
    let mut wt = vec![0.0f32; taps * s.cout * cinp];
    for o in 0..s.cout {
        for i in 0..s.cin {
            for t in 0..taps {
                wt[(t * s.cout + o) * cinp + i] = w[(o * s.cin + i) * taps + t];
            }
        }
    }
    (wt, cinp)
}

/// A dense input plane: `data[pixel * stride + offset + ci]`, `ci < channels`.
#[derive(Clone, Copy)]
pub(crate) struct InPlane<'a> {
    pub data: &'a [f32],
    pub stride: usize,
    pub offset: usize,
    pub channels: usize,
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn direct_pixels<M: Madd, const NV: usize, const PX: usize>(
    x: InPlane,
    wt: &[f32],
    coutp: usize,
    block: usize,
    taps: &Taps,
    q: usize,
    out: &mut [f32],
    o: OutImage,
) {
    let cin = x.channels;
    // Every value read below is inside the plane and the weights (checked by the caller:
    // the largest pixel any tap reads is in the plane, and the weights hold taps * cin rows of
    // coutp >= block + NV * LANES values).
    let mut acc = [[[0.0f32; LANES]; NV]; PX];
    let mut px_at = [std::ptr::null::<f32>(); PX];
    for (px, p) in px_at.iter_mut().enumerate() {
        // SAFETY: see above.
        *p = unsafe {
            x.data
                .as_ptr()
                .add(taps.bases[q + px] as usize * x.stride + x.offset)
        };
    }
    for (ti, &toff) in taps.offsets.iter().enumerate() {
        let toff = toff as usize * x.stride;
        for ci in 0..cin {
            // SAFETY: see above; [[f32; LANES]; NV] has the layout of NV * LANES floats.
            let wr = unsafe {
                &*(wt.as_ptr().add((ti * cin + ci) * coutp + block) as *const [[f32; LANES]; NV])
            };
            for (px, a) in acc.iter_mut().enumerate() {
                // SAFETY: see above.
                let xv = unsafe { *px_at[px].add(toff + ci) };
                for v in 0..NV {
                    for j in 0..LANES {
                        a[v][j] = M::madd(xv, wr[v][j], a[v][j]);
                    }
                }
            }
        }
    }
    let valid = (o.channels - block).min(NV * LANES);
    for (px, a) in acc.iter().enumerate() {
        store(a, out, (q + px) * o.stride + o.offset + block, valid);
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn direct_image_impl<M: Madd, const NV: usize, const PX: usize>(
    x: InPlane,
    wt: &[f32],
    coutp: usize,
    block: usize,
    taps: &Taps,
    out: &mut [f32],
    o: OutImage,
) {
    let np = taps.bases.len();
    let mut q = 0;
    while q + PX <= np {
        direct_pixels::<M, NV, PX>(x, wt, coutp, block, taps, q, out, o);
        q += PX;
    }
    while q < np {
        direct_pixels::<M, NV, 1>(x, wt, coutp, block, taps, q, out, o);
        q += 1;
    }
}

dispatch!(fn direct_image<const NV: usize, const PX: usize>(
    x: InPlane, wt: &[f32], coutp: usize, block: usize, taps: &Taps, out: &mut [f32], o: OutImage,
) => direct_image_impl);

/// One image of a direct convolution (weights from [`direct_weights`]).
pub(crate) fn direct_conv_image(
    x: InPlane,
    wt: &[f32],
    coutp: usize,
    taps: &Taps,
    out: &mut [f32],
    o: OutImage,
) {
    let last = taps.bases.iter().max().copied().unwrap_or(0) as usize
        + taps.offsets.last().copied().unwrap_or(0) as usize;
    assert!(
        taps.bases.is_empty() || last * x.stride + x.offset + x.channels <= x.data.len(),
        "direct_conv_image: plane too small for the taps"
    );
    assert!(
        wt.len() >= taps.offsets.len() * x.channels * coutp && coutp.is_multiple_of(LANES),
        "direct_conv_image: weights"
    );
    // Tiles of at most 12 accumulators; with four vectors, two pixels (three spilled registers
    // and left a one-pixel tail on 4x4 images: half the speed).
    for (block, nv) in blocks(coutp) {
        match nv {
            1 => direct_image::<1, 8>(x, wt, coutp, block, taps, out, o),
            2 => direct_image::<2, 6>(x, wt, coutp, block, taps, out, o),
            3 => direct_image::<3, 4>(x, wt, coutp, block, taps, out, o),
            _ => direct_image::<4, 2>(x, wt, coutp, block, taps, out, o),
        }
    }
}

/// Adds, for one image, every output pixel's gradient `gy` (cout values at
/// `gy[gy_pixels[q] * gs + go ..]`) into the bucket of its input byte, per tap and group.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn bucket_image_impl<M: Madd, const NV: usize>(
    plane: &[u8],
    g8: usize,
    taps: &Taps,
    gy: &[f32],
    gy_pixels: &[u32],
    gs: usize,
    go: usize,
    cout: usize,
    block: usize,
    groups: usize,
    coutp: usize,
    buckets: &mut [f32],
) {
    let valid = (cout - block).min(NV * LANES);
    // Every byte read below is in the plane (the largest base plus the last tap offset, and
    // g8 bytes from there) and every bucket row in the table (taps * groups * ENTRIES rows of
    // coutp >= block + NV * LANES values): checked once here.
    let last = taps.bases.iter().max().copied().unwrap_or(0) as usize
        + taps.offsets.last().copied().unwrap_or(0) as usize;
    assert!(
        gy_pixels.is_empty() || (last + 1) * g8 <= plane.len(),
        "bucket_image: plane too small for the taps"
    );
    assert!(
        buckets.len() >= taps.offsets.len() * groups * ENTRIES * coutp
            && block + NV * LANES <= coutp,
        "bucket_image: buckets"
    );
    let rows = buckets.as_mut_ptr();
    // The taps in runs whose buckets fit the L1 cache, every pixel once per run.
    let per_tap = groups * ENTRIES * NV * LANES * 4;
    let run = ((32 << 10) / per_tap).max(1);
    let ntaps = taps.offsets.len();
    for t0 in (0..ntaps).step_by(run) {
        let t1 = (t0 + run).min(ntaps);
        for (q, &gp) in gy_pixels.iter().enumerate() {
            let mut g = [[0.0f32; LANES]; NV];
            let src = &gy[gp as usize * gs + go + block..][..valid];
            for (i, &v) in src.iter().enumerate() {
                g[i / LANES][i % LANES] = v;
            }
            let base = taps.bases[q] as usize * g8;
            for ti in t0..t1 {
                let at = base + taps.offsets[ti] as usize * g8;
                for gi in 0..groups {
                    let m = nibble(plane.as_ptr(), at, gi);
                    // SAFETY: see above; [[f32; LANES]; NV] has the layout of NV * LANES floats.
                    let row = unsafe {
                        &mut *(rows.add(((ti * groups + gi) * ENTRIES + m) * coutp + block)
                            as *mut [[f32; LANES]; NV])
                    };
                    add_row(row, &g);
                }
            }
        }
    }
}

dispatch!(fn bucket_image<const NV: usize>(
    plane: &[u8], g8: usize, taps: &Taps, gy: &[f32], gy_pixels: &[u32], gs: usize, go: usize,
    cout: usize, block: usize, groups: usize, coutp: usize, buckets: &mut [f32],
) => bucket_image_impl);

/// A dense gradient of convolution outputs: `data[image * image_len + pixels[q] * stride +
/// offset + o]` for output pixel `q` and channel `o < cout`.
#[derive(Clone, Copy)]
pub(crate) struct GradOut<'a> {
    pub data: &'a [f32],
    pub image_len: usize,
    pub pixels: &'a [u32],
    pub stride: usize,
    pub offset: usize,
}

/// Weight gradient `[cout][cin][k][k]` of a convolution over spike planes (see the module
/// documentation), overwriting `gw`. A task is a chunk of [`WGRAD_IMAGES`] images with buckets
/// of its own (every tap's, small enough for the L1 cache); the chunks' sums are added in order.
pub(crate) fn bucket_weight_gradient(
    planes: &[u8],
    s: &ConvShape,
    taps: &Taps,
    gy: GradOut,
    gw: &mut [f32],
) {
    let g8 = groups8(s.cin);
    let plane_len = (s.h + 2 * PAD) * (s.w + 2 * PAD) * g8;
    assert_eq!(
        planes.len(),
        s.n * plane_len,
        "bucket_weight_gradient: planes"
    );
    assert_eq!(gw.len(), s.weight_len(), "bucket_weight_gradient: gw");
    let groups = 2 * g8;
    let coutp = lanes_up(s.cout);
    let ntaps = s.k * s.k;
    let table_len = ntaps * groups * ENTRIES * coutp;
    let chunks = s.n.div_ceil(WGRAD_IMAGES);
    let wl = gw.len();
    let partials: Vec<Vec<f32>> = (0..chunks)
        .into_par_iter()
        .map(|c| {
            let mut buckets = vec![0.0f32; table_len];
            for img in c * WGRAD_IMAGES..((c + 1) * WGRAD_IMAGES).min(s.n) {
                let plane = &planes[img * plane_len..(img + 1) * plane_len];
                let gy_n = &gy.data[img * gy.image_len..(img + 1) * gy.image_len];
                for (block, nv) in blocks(coutp) {
                    macro_rules! go {
                        ($nv:literal) => {
                            bucket_image::<$nv>(
                                plane,
                                g8,
                                taps,
                                gy_n,
                                gy.pixels,
                                gy.stride,
                                gy.offset,
                                s.cout,
                                block,
                                groups,
                                coutp,
                                &mut buckets,
                            )
                        };
                    }
                    match nv {
                        1 => go!(1),
                        2 => go!(2),
                        3 => go!(3),
                        _ => go!(4),
                    }
                }
            }
            // Collapse: weight (o, ci, tap) = sum of the buckets of (tap, group of ci) whose
            // nibble has ci's bit, nibbles in ascending order.
            let mut part = vec![0.0f32; wl];
            let mut sum = vec![0.0f32; coutp];
            for ti in 0..ntaps {
                for gi in 0..groups {
                    let table = &buckets[(ti * groups + gi) * ENTRIES * coutp..][..ENTRIES * coutp];
                    for bit in 0..4 {
                        let ci = gi * 4 + bit;
                        if ci >= s.cin {
                            break;
                        }
                        sum.fill(0.0);
                        for m in (0..ENTRIES).filter(|m| m >> bit & 1 == 1) {
                            for (a, &v) in sum.iter_mut().zip(&table[m * coutp..(m + 1) * coutp]) {
                                *a += v;
                            }
                        }
                        for (o, &v) in sum[..s.cout].iter().enumerate() {
                            part[(o * s.cin + ci) * ntaps + ti] = v;
                        }
                    }
                }
            }
            part
        })
        .collect();
    gw.fill(0.0);
    for part in &partials {
        for (g, &v) in gw.iter_mut().zip(part) {
            *g += v;
        }
    }
}

/// Weight gradient of a convolution over a dense padded input (the stem): per chunk of images
/// `gw[tap][ci][o] += x[tap pixel][ci] * gy[q][o]`, chunks added in order. Overwrites `gw`
/// (`[cout][cin][k][k]`).
pub(crate) fn dense_weight_gradient(
    x: &[f32],
    plane_len: usize,
    cin: usize,
    s: &ConvShape,
    taps: &Taps,
    gy: GradOut,
    gw: &mut [f32],
) {
    let coutp = lanes_up(s.cout);
    let ntaps = s.k * s.k;
    let chunks = s.n.div_ceil(WGRAD_IMAGES);
    let partials: Vec<Vec<f32>> = (0..chunks)
        .into_par_iter()
        .map(|c| {
            let mut acc = vec![0.0f32; ntaps * cin * coutp];
            let mut g = vec![0.0f32; coutp];
            for img in c * WGRAD_IMAGES..((c + 1) * WGRAD_IMAGES).min(s.n) {
                let plane = &x[img * plane_len..(img + 1) * plane_len];
                let gy_n = &gy.data[img * gy.image_len..(img + 1) * gy.image_len];
                for (q, &gp) in gy.pixels.iter().enumerate() {
                    let at = gp as usize * gy.stride + gy.offset;
                    g[..s.cout].copy_from_slice(&gy_n[at..at + s.cout]);
                    let base = taps.bases[q] as usize;
                    for (ti, &toff) in taps.offsets.iter().enumerate() {
                        let px = (base + toff as usize) * cin;
                        for ci in 0..cin {
                            let xv = plane[px + ci];
                            let row = &mut acc[(ti * cin + ci) * coutp..][..coutp];
                            for (a, &gv) in row.iter_mut().zip(&g) {
                                *a += xv * gv;
                            }
                        }
                    }
                }
            }
            acc
        })
        .collect();
    gw.fill(0.0);
    for part in &partials {
        for o in 0..s.cout {
            for ci in 0..cin {
                for t in 0..ntaps {
                    gw[(o * cin + ci) * ntaps + t] += part[(t * cin + ci) * coutp + o];
                }
            }
        }
    }
}

/// Input gradient of one image of a strided (or shifted) convolution by scattering: every
/// output pixel's gradient times each tap's `[cout][cin]` weights is added into a padded
/// scratch plane `gxp` (`[hp][wp][cinp]`, zeroed here), whose interior is then the gradient.
/// `wt` is `[tap][o][cinp]` ([`scatter_weights`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn scatter_input_gradient_image(
    gy_n: &[f32],
    gy: GradOut,
    s: &ConvShape,
    taps: &Taps,
    wt: &[f32],
    cinp: usize,
    gxp: &mut [f32],
    gx_n: &mut [f32],
) {
    gxp.fill(0.0);
    let mut acc = vec![0.0f32; cinp];
    for (q, &gp) in gy.pixels.iter().enumerate() {
        let g = &gy_n[gp as usize * gy.stride + gy.offset..][..s.cout];
        let base = taps.bases[q] as usize;
        for (ti, &toff) in taps.offsets.iter().enumerate() {
            acc.fill(0.0);
            for (o, &gv) in g.iter().enumerate() {
                let row = &wt[(ti * s.cout + o) * cinp..][..cinp];
                for (a, &wv) in acc.iter_mut().zip(row) {
                    *a += gv * wv;
                }
            }
            let dst = &mut gxp[(base + toff as usize) * cinp..][..cinp];
            for (d, &a) in dst.iter_mut().zip(&acc) {
                *d += a;
            }
        }
    }
    let wp = s.w + 2 * PAD;
    for y in 0..s.h {
        for x in 0..s.w {
            let src = &gxp[((y + PAD) * wp + x + PAD) * cinp..][..s.cin];
            gx_n[(y * s.w + x) * s.cin..][..s.cin].copy_from_slice(src);
        }
    }
}
