//! The fast engine's element-wise work, channels innermost: batch-norm views applied on read,
//! sums, concatenation, the LIF population (spike planes, counts, membranes) and the backward
//! passes of batch norm. Images run in parallel; every reduction sums per image in a fixed
//! order and then over images in image order, so results do not depend on the thread count.

use super::conv::{groups8, PAD};
use super::pool::Buf;
use crate::cpu::{Gate, LifParams};
use rayon::prelude::*;

/// A batch norm applied on read: `gate(x * scale + shift)` per channel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Affine<'a> {
    pub scale: &'a [f32],
    pub shift: &'a [f32],
    pub gate: Gate,
}

/// An analog tensor as a consumer reads it: image `i`, pixel `p`, channel `ch` is
/// `data[(i * hw + p) * stride + offset + ch]`, through `affine` when set.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub hw: usize,
    pub c: usize,
    pub stride: usize,
    pub offset: usize,
    pub affine: Option<Affine<'a>>,
}

impl View<'_> {
    /// Image `img`'s value of pixel `p` into `out` (`c` values).
    #[inline(always)]
    pub fn read(&self, img: usize, p: usize, out: &mut [f32]) {
        let at = (img * self.hw + p) * self.stride + self.offset;
        let src = &self.data[at..at + self.c];
        match self.affine {
            None => out.copy_from_slice(src),
            Some(a) => {
                for (((o, &x), &sc), &sh) in out.iter_mut().zip(src).zip(a.scale).zip(a.shift) {
                    *o = a.gate.apply(x * sc + sh);
                }
            }
        }
    }

    /// Adds image `img`'s value of pixel `p` into `acc`.
    #[inline(always)]
    fn add_to(&self, img: usize, p: usize, acc: &mut [f32]) {
        let at = (img * self.hw + p) * self.stride + self.offset;
        let src = &self.data[at..at + self.c];
        match self.affine {
            None => {
                for (a, &x) in acc.iter_mut().zip(src) {
                    *a += x;
                }
            }
            Some(a) => {
                for (((o, &x), &sc), &sh) in acc.iter_mut().zip(src).zip(a.scale).zip(a.shift) {
                    *o += a.gate.apply(x * sc + sh);
                }
            }
        }
    }
}

/// `sum_i xs[i]` in input order (as the reference adds them), `[n][hw][c]`.
pub(crate) fn add(xs: &[View], n: usize) -> Buf<f32> {
    let (hw, c) = (xs[0].hw, xs[0].c);
    let mut out = Buf::stale(n * hw * c);
    if hw * c == 0 {
        return out;
    }
    out.par_chunks_mut(hw * c).enumerate().for_each(|(img, o)| {
        for (p, px) in o.chunks_exact_mut(c).enumerate() {
            xs[0].read(img, p, px);
            for x in &xs[1..] {
                x.add_to(img, p, px);
            }
        }
    });
    out
}

/// Channel concatenation of `xs` (each `[n][hw][c_i]`) into `[n][hw][sum c_i]`.
pub(crate) fn concat(xs: &[View], n: usize) -> Buf<f32> {
    let hw = xs[0].hw;
    let c: usize = xs.iter().map(|v| v.c).sum();
    let mut out = Buf::stale(n * hw * c);
    if hw * c == 0 {
        return out;
    }
    out.par_chunks_mut(hw * c).enumerate().for_each(|(img, o)| {
        for (p, px) in o.chunks_exact_mut(c).enumerate() {
            let mut at = 0;
            for x in xs {
                x.read(img, p, &mut px[at..at + x.c]);
                at += x.c;
            }
        }
    });
    out
}

/// Per-image channel sums and sums of squares (`[n][c]` each, f64) of `view` (no affine).
#[derive(Clone, Debug)]
pub(crate) struct ChannelSums {
    pub c: usize,
    pub sum: Vec<f64>,
    pub sq: Vec<f64>,
}

impl ChannelSums {
    pub fn new(n: usize, c: usize) -> ChannelSums {
        ChannelSums {
            c,
            sum: vec![0.0; n * c],
            sq: vec![0.0; n * c],
        }
    }

    /// Mean and biased variance per channel over `count` values, the images added in order.
    pub fn mean_var(&self, count: usize) -> (Vec<f32>, Vec<f32>) {
        let c = self.c;
        let mut s = vec![0.0f64; c];
        let mut q = vec![0.0f64; c];
        for (si, qi) in self.sum.chunks_exact(c).zip(self.sq.chunks_exact(c)) {
            for ch in 0..c {
                s[ch] += si[ch];
                q[ch] += qi[ch];
            }
        }
        if count == 0 {
            return (vec![0.0; c], vec![0.0; c]);
        }
        let cnt = count as f64;
        let mean: Vec<f32> = s.iter().map(|&v| (v / cnt) as f32).collect();
        let var = s
            .iter()
            .zip(&q)
            .map(|(&sv, &qv)| {
                let m = sv / cnt;
                (qv / cnt - m * m).max(0.0) as f32
            })
            .collect();
        (mean, var)
    }
}

/// Image `img`'s channel sums of an output image (`hw` pixels at `stride`, channels
/// `offset..offset + c`) into `sums` at channel `at` (f32 within a row of pixels, then f64).
pub(crate) fn image_sums(
    out_n: &[f32],
    hw: usize,
    stride: usize,
    offset: usize,
    c: usize,
    sum: &mut [f64],
    sq: &mut [f64],
) {
    image_sums_d(out_n, hw, stride, offset, c, sum, sq)
}

#[inline(always)]
fn image_sums_impl<M: super::simd::Madd>(
    out_n: &[f32],
    hw: usize,
    stride: usize,
    offset: usize,
    c: usize,
    sum: &mut [f64],
    sq: &mut [f64],
) {
    const ROW: usize = 16;
    let (sum, sq) = (&mut sum[..c], &mut sq[..c]);
    let mut rs = vec![0.0f32; c];
    let mut rq = vec![0.0f32; c];
    for p0 in (0..hw).step_by(ROW) {
        rs.fill(0.0);
        rq.fill(0.0);
        for p in p0..(p0 + ROW).min(hw) {
            let px = &out_n[p * stride + offset..][..c];
            for ch in 0..c {
                rs[ch] += px[ch];
                rq[ch] += px[ch] * px[ch];
            }
        }
        for ch in 0..c {
            sum[ch] += f64::from(rs[ch]);
            sq[ch] += f64::from(rq[ch]);
        }
    }
}

super::simd::dispatch!(fn image_sums_d<>(
    out_n: &[f32], hw: usize, stride: usize, offset: usize, c: usize, sum: &mut [f64],
    sq: &mut [f64],
) => image_sums_impl);

/// Channel sums of every image of a view (a tensor whose producer did not provide them).
pub(crate) fn view_sums(v: &View, n: usize) -> ChannelSums {
    let mut s = ChannelSums::new(n, v.c);
    let c = v.c;
    s.sum
        .par_chunks_mut(c)
        .zip(s.sq.par_chunks_mut(c))
        .enumerate()
        .for_each(|(img, (sum, sq))| {
            let data = &v.data[img * v.hw * v.stride..(img + 1) * v.hw * v.stride];
            image_sums(data, v.hw, v.stride, v.offset, c, sum, sq);
        });
    s
}

/// What a LIF population writes besides its spike planes.
pub(crate) struct LifOut<'a> {
    /// `[n][hp][wp][groups8(c)]` bytes, borders zero (see [`super::conv`]).
    pub planes: &'a mut [u8],
    /// Spikes per image.
    pub counts: &'a mut [u32],
    /// The membrane before the reset, `[n][hw][c]` (training).
    pub v_pre: Option<&'a mut [f32]>,
}

/// The LIF population of `x` over `t` steps of `b` images (`n = t*b`, step-major) of `h x w`
/// pixels: per neuron `v = v + (x - v) * tau_inv`, spike when `v > v_th`, `v = v * (1 - s)`,
/// exactly the reference's f32 operations.
pub(crate) fn lif(x: &View, t: usize, b: usize, h: usize, w: usize, p: LifParams, out: LifOut) {
    let (hw, c) = (h * w, x.c);
    let g8 = groups8(c);
    let wp = w + 2 * PAD;
    let plane_len = (h + 2 * PAD) * wp * g8;
    let n = t * b;
    assert_eq!(out.planes.len(), n * plane_len, "lif: planes length");
    assert_eq!(out.counts.len(), n, "lif: counts length");
    // Step-major outputs, gathered per sample so that one task owns all steps of its sample.
    struct Step<'s> {
        plane: &'s mut [u8],
        v_pre: Option<&'s mut [f32]>,
        count: &'s mut u32,
    }
    let mut v_pre = out.v_pre.map(|v| v.chunks_mut((hw * c).max(1)));
    let mut per_sample: Vec<Vec<Step>> = (0..b).map(|_| Vec::with_capacity(t)).collect();
    for (img, (plane, count)) in out
        .planes
        .chunks_mut(plane_len.max(1))
        .zip(out.counts.iter_mut())
        .enumerate()
    {
        per_sample[img % b].push(Step {
            plane,
            v_pre: v_pre.as_mut().and_then(|it| it.next()),
            count,
        });
    }
    let row = w * c;
    per_sample
        .par_iter_mut()
        .enumerate()
        .for_each(|(bi, steps)| {
            let mut v = vec![0.0f32; row];
            let mut xs = vec![0.0f32; row];
            let mut spk = vec![0u8; row];
            for st in steps.iter_mut() {
                *st.count = 0;
            }
            for y in 0..h {
                v.fill(0.0);
                for (step, st) in steps.iter_mut().enumerate() {
                    let img = step * b + bi;
                    for (pix, px) in xs.chunks_exact_mut(c.max(1)).enumerate() {
                        x.read(img, y * w + pix, px);
                    }
                    let vp = st
                        .v_pre
                        .as_deref_mut()
                        .map(|vp| &mut vp[y * row..(y + 1) * row]);
                    lif_row(&mut v, &xs, vp, &mut spk, p);
                    let dst = &mut st.plane[((y + PAD) * wp + PAD) * g8..][..w * g8];
                    if c.is_multiple_of(8) {
                        for (d, s8) in dst.iter_mut().zip(spk.chunks_exact(8)) {
                            *d = pack8(s8);
                        }
                    } else {
                        for (pix, d) in dst.chunks_exact_mut(g8).enumerate() {
                            for (g, byte) in d.iter_mut().enumerate() {
                                let lo = pix * c + g * 8;
                                let hi = (lo + 8).min((pix + 1) * c);
                                *byte = spk[lo..hi]
                                    .iter()
                                    .enumerate()
                                    .fold(0u8, |a, (j, &s)| a | (s << j));
                            }
                        }
                    }
                    *st.count += dst.iter().map(|b| b.count_ones()).sum::<u32>();
                }
            }
        });
}

/// Eight 0/1 bytes as the bits of one byte (byte `j` -> bit `j`).
#[inline(always)]
fn pack8(s: &[u8]) -> u8 {
    let x = u64::from_le_bytes(s.try_into().expect("eight bytes"));
    (x.wrapping_mul(0x0102_0408_1020_4080) >> 56) as u8
}

/// One step of a row of LIF neurons: `v = v + (x - v) * tau_inv`, the membrane before the reset
/// into `v_pre`, the spike (0/1) into `spk`, `v = v * (1 - s)`.
#[inline(always)]
fn lif_row_impl<M: super::simd::Madd>(
    v: &mut [f32],
    x: &[f32],
    v_pre: Option<&mut [f32]>,
    spk: &mut [u8],
    p: LifParams,
) {
    let step = |v: &mut f32, x: f32, s: &mut u8| {
        let vv = *v + (x - *v) * p.tau_inv;
        let spike = vv > p.v_th;
        let f = if spike { 1.0f32 } else { 0.0 };
        *s = u8::from(spike);
        *v = vv * (1.0 - f);
        vv
    };
    match v_pre {
        Some(vp) => {
            for (((v, &x), s), vp) in v.iter_mut().zip(x).zip(spk.iter_mut()).zip(vp) {
                *vp = step(v, x, s);
            }
        }
        None => {
            for ((v, &x), s) in v.iter_mut().zip(x).zip(spk.iter_mut()) {
                step(v, x, s);
            }
        }
    }
}

super::simd::dispatch!(fn lif_row<>(
    v: &mut [f32], x: &[f32], v_pre: Option<&mut [f32]>, spk: &mut [u8], p: LifParams,
) => lif_row_impl);

/// Bit-packed spike rows `[n][words]` of a population from its planes, neuron `(y*w + x)*c + ch`
/// (channels innermost: the fast engine's order, a permutation of the plan's `(ch*h + y)*w + x`
/// that every population statistic is invariant to).
pub(crate) fn pack_rows_nhwc(planes: &[u8], n: usize, h: usize, w: usize, c: usize) -> Vec<u32> {
    let g8 = groups8(c);
    let wp = w + 2 * PAD;
    let plane_len = (h + 2 * PAD) * wp * g8;
    let neurons = h * w * c;
    let words = neurons.div_ceil(32);
    let mut out = vec![0u32; n * words];
    if words == 0 {
        return out;
    }
    out.par_chunks_mut(words)
        .zip(planes.par_chunks(plane_len))
        .for_each(|(row, plane)| {
            if c.is_multiple_of(8) {
                // Bytes in order: neuron 8k + j is bit j of byte k.
                let mut k = 0usize;
                for y in 0..h {
                    let src = &plane[((y + PAD) * wp + PAD) * g8..][..w * g8];
                    for &byte in src {
                        row[k / 4] |= u32::from(byte) << ((k % 4) * 8);
                        k += 1;
                    }
                }
            } else {
                for pix in 0..h * w {
                    let at = ((pix / w + PAD) * wp + pix % w + PAD) * g8;
                    for ch in 0..c {
                        if plane[at + ch / 8] >> (ch % 8) & 1 == 1 {
                            let nn = pix * c + ch;
                            row[nn / 32] |= 1 << (nn % 32);
                        }
                    }
                }
            }
        });
    out
}

/// Bit-packed spike rows `[n][words]` in the plan's neuron order `(ch*h + y)*w + x`
/// (docs/design.md), from the planes.
pub(crate) fn pack_rows_plan(planes: &[u8], n: usize, h: usize, w: usize, c: usize) -> Vec<u32> {
    let g8 = groups8(c);
    let wp = w + 2 * PAD;
    let plane_len = (h + 2 * PAD) * wp * g8;
    let words = (h * w * c).div_ceil(32);
    let mut out = vec![0u32; n * words];
    if words == 0 {
        return out;
    }
    out.par_chunks_mut(words)
        .zip(planes.par_chunks(plane_len))
        .for_each(|(row, plane)| {
            for pix in 0..h * w {
                let at = ((pix / w + PAD) * wp + pix % w + PAD) * g8;
                for ch in 0..c {
                    if plane[at + ch / 8] >> (ch % 8) & 1 == 1 {
                        let nn = ch * h * w + pix;
                        row[nn / 32] |= 1 << (nn % 32);
                    }
                }
            }
        });
    out
}

/// Backward of a batch norm with batch statistics and its gate (the reference's
/// [`crate::cpu::grad::bn_backward`], channels innermost). `x` is the BN input, `gy` the
/// gradient of its output (`[n][hw][c]`), `affine` the forward's scale/shift/gate, `mean`,
/// `inv_sd` the batch statistics. Writes `gx` at `gx[img * gx_image + gx_pixels[p] * c + ch]`
/// (a padded plane when it feeds a convolution's backward pass), `ggamma` and `gbeta`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn bn_backward(
    x: &View,
    gy: &[f32],
    n: usize,
    affine: Affine,
    mean: &[f32],
    inv_sd: &[f32],
    gamma: &[f32],
    gx: &mut [f32],
    gx_image: usize,
    gx_pixels: &[u32],
    ggamma: &mut [f32],
    gbeta: &mut [f32],
) {
    let (hw, c) = (x.hw, x.c);
    let raw = View { affine: None, ..*x };
    let k = BnBackward {
        scale: affine.scale,
        shift: affine.shift,
        mean,
        inv_sd,
    };
    let gate = match affine.gate {
        Gate::None => 0,
        Gate::Excitatory => 1,
        Gate::Inhibitory => 2,
    };
    // Per image: the sums of g and of g * x̂ per channel (f32 over a run of pixels, f64 per
    // image, images in order).
    let mut parts = vec![0.0f64; n * 2 * c];
    parts
        .par_chunks_mut((2 * c).max(1))
        .enumerate()
        .for_each(|(img, part)| {
            let (sg, sgx) = part.split_at_mut(c);
            match gate {
                0 => bn_sums::<0>(&raw, img, gy, &k, sg, sgx),
                1 => bn_sums::<1>(&raw, img, gy, &k, sg, sgx),
                _ => bn_sums::<2>(&raw, img, gy, &k, sg, sgx),
            }
        });
    let mut sg = vec![0.0f64; c];
    let mut sgx = vec![0.0f64; c];
    for part in parts.chunks_exact((2 * c).max(1)) {
        for ch in 0..c {
            sg[ch] += part[ch];
            sgx[ch] += part[c + ch];
        }
    }
    let count = (n * hw).max(1) as f64;
    let mut coef = vec![0.0f32; 3 * c];
    for ch in 0..c {
        gbeta[ch] = sg[ch] as f32;
        ggamma[ch] = sgx[ch] as f32;
        coef[ch] = gamma[ch] * inv_sd[ch];
        coef[c + ch] = (sg[ch] / count) as f32;
        coef[2 * c + ch] = (sgx[ch] / count) as f32;
    }
    if hw * c == 0 {
        return;
    }
    gx.par_chunks_mut(gx_image)
        .enumerate()
        .for_each(|(img, gx_n)| match gate {
            0 => bn_gx::<0>(&raw, img, gy, &k, &coef, gx_n, gx_pixels),
            1 => bn_gx::<1>(&raw, img, gy, &k, &coef, gx_n, gx_pixels),
            _ => bn_gx::<2>(&raw, img, gy, &k, &coef, gx_n, gx_pixels),
        });
}

/// The per-channel values of a batch norm's backward pass.
struct BnBackward<'a> {
    scale: &'a [f32],
    shift: &'a [f32],
    mean: &'a [f32],
    inv_sd: &'a [f32],
}

/// Whether the gate passes (and so the gradient flows) at `z`: `G` 0 none, 1 excitatory,
/// 2 inhibitory (a constant, so each loop is specialised).
#[inline(always)]
fn passes<const G: usize>(z: f32) -> bool {
    match G {
        0 => true,
        1 => z > 0.0,
        _ => z < 0.0,
    }
}

#[inline(always)]
fn bn_sums_impl<M: super::simd::Madd, const G: usize>(
    x: &View,
    img: usize,
    gy: &[f32],
    k: &BnBackward,
    sg: &mut [f64],
    sgx: &mut [f64],
) {
    const RUN: usize = 16;
    let (hw, c) = (x.hw, x.c);
    // Slices of exactly c values, so that the channel loops need no bounds checks.
    let (scale, shift, mean, inv_sd) = (&k.scale[..c], &k.shift[..c], &k.mean[..c], &k.inv_sd[..c]);
    let (sg, sgx) = (&mut sg[..c], &mut sgx[..c]);
    let mut s = vec![0.0f32; c];
    let mut sx = vec![0.0f32; c];
    for p0 in (0..hw).step_by(RUN) {
        s.fill(0.0);
        sx.fill(0.0);
        for p in p0..(p0 + RUN).min(hw) {
            let at = (img * hw + p) * x.stride + x.offset;
            let xs = &x.data[at..at + c];
            let g = &gy[(img * hw + p) * c..][..c];
            for ch in 0..c {
                let z = xs[ch] * scale[ch] + shift[ch];
                let gv = if passes::<G>(z) { g[ch] } else { 0.0 };
                let xh = (xs[ch] - mean[ch]) * inv_sd[ch];
                s[ch] += gv;
                sx[ch] += gv * xh;
            }
        }
        for ch in 0..c {
            sg[ch] += f64::from(s[ch]);
            sgx[ch] += f64::from(sx[ch]);
        }
    }
}

super::simd::dispatch!(fn bn_sums<const G: usize>(
    x: &View, img: usize, gy: &[f32], k: &BnBackward, sg: &mut [f64], sgx: &mut [f64],
) => bn_sums_impl);

#[inline(always)]
fn bn_gx_impl<M: super::simd::Madd, const G: usize>(
    x: &View,
    img: usize,
    gy: &[f32],
    k: &BnBackward,
    coef: &[f32],
    gx_n: &mut [f32],
    gx_pixels: &[u32],
) {
    let (hw, c) = (x.hw, x.c);
    let (scale, shift, mean, inv_sd) = (&k.scale[..c], &k.shift[..c], &k.mean[..c], &k.inv_sd[..c]);
    let (kk, mg, mgx) = (&coef[..c], &coef[c..2 * c], &coef[2 * c..3 * c]);
    for p in 0..hw {
        let at = (img * hw + p) * x.stride + x.offset;
        let xs = &x.data[at..at + c];
        let g = &gy[(img * hw + p) * c..][..c];
        let dst = &mut gx_n[gx_pixels[p] as usize * c..][..c];
        for ch in 0..c {
            let z = xs[ch] * scale[ch] + shift[ch];
            let gv = if passes::<G>(z) { g[ch] } else { 0.0 };
            let xh = (xs[ch] - mean[ch]) * inv_sd[ch];
            dst[ch] = kk[ch] * (gv - mg[ch] - xh * mgx[ch]);
        }
    }
}

super::simd::dispatch!(fn bn_gx<const G: usize>(
    x: &View, img: usize, gy: &[f32], k: &BnBackward, coef: &[f32], gx_n: &mut [f32],
    gx_pixels: &[u32],
) => bn_gx_impl);

/// Neurons per task of [`lif_backward`].
const LIF_CHUNK: usize = 2048;

/// Backward of a LIF population through time (the reference's
/// [`crate::cpu::grad::lif_backward`], the same f32 operations per neuron): `gs` and `v_pre`
/// are `[T, n]`, writes `gx` (`[T, n]`). Neurons are independent, so any layout of the `n`
/// neurons works; tasks take a run of neurons through every step.
pub(crate) fn lif_backward(
    gs: &[f32],
    v_pre: &[f32],
    t: usize,
    p: LifParams,
    sg: crate::cpu::grad::Surrogate,
    gx: &mut [f32],
) {
    use crate::cpu::grad::Surrogate;
    let n = gs.len() / t.max(1);
    assert_eq!(v_pre.len(), t * n, "lif_backward: v_pre");
    assert_eq!(gx.len(), t * n, "lif_backward: gx");
    if n == 0 {
        return;
    }
    let mut steps: Vec<std::slice::ChunksMut<f32>> =
        gx.chunks_mut(n).map(|s| s.chunks_mut(LIF_CHUNK)).collect();
    let tasks: Vec<(usize, Vec<&mut [f32]>)> = (0..n.div_ceil(LIF_CHUNK))
        .map(|i| {
            (
                i * LIF_CHUNK,
                steps.iter_mut().map(|s| s.next().unwrap()).collect(),
            )
        })
        .collect();
    let (kind, alpha) = match sg {
        Surrogate::Triangle { alpha } => (0, alpha),
        Surrogate::Sigmoid { alpha } => (1, alpha),
        Surrogate::Atan { alpha } => (2, alpha),
    };
    tasks.into_par_iter().for_each(|(start, mut gx_steps)| {
        let len = gx_steps[0].len();
        let mut g_v = vec![0.0f32; len];
        for step in (0..t).rev() {
            let r = step * n + start..step * n + start + len;
            let (g, v, o) = (&gs[r.clone()], &v_pre[r], &mut *gx_steps[step]);
            match kind {
                0 => lif_backward_step::<0>(g, v, o, &mut g_v, p, alpha),
                1 => lif_backward_step::<1>(g, v, o, &mut g_v, p, alpha),
                _ => lif_backward_step::<2>(g, v, o, &mut g_v, p, alpha),
            }
        }
    });
}

#[inline(always)]
fn lif_backward_step_impl<M: super::simd::Madd, const S: usize>(
    gs: &[f32],
    v_pre: &[f32],
    gx: &mut [f32],
    g_v: &mut [f32],
    p: LifParams,
    alpha: f32,
) {
    use crate::cpu::grad::Surrogate;
    let sg = match S {
        0 => Surrogate::Triangle { alpha },
        1 => Surrogate::Sigmoid { alpha },
        _ => Surrogate::Atan { alpha },
    };
    let keep = 1.0 - p.tau_inv;
    for (((g_v, &gs), &h), gx) in g_v.iter_mut().zip(gs).zip(v_pre).zip(gx.iter_mut()) {
        let through = if h > p.v_th { 0.0 } else { *g_v };
        let g_h = gs * sg.grad(h - p.v_th) + through;
        *gx = g_h * p.tau_inv;
        *g_v = g_h * keep;
    }
}

super::simd::dispatch!(fn lif_backward_step<const S: usize>(
    gs: &[f32], v_pre: &[f32], gx: &mut [f32], g_v: &mut [f32], p: LifParams, alpha: f32,
) => lif_backward_step_impl);
