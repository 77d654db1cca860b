//! The production CPU convolutions: forward, input gradient and weight gradient as blocked
//! single-precision GEMMs (the `gemm` crate, which picks AVX2/FMA or AVX-512 kernels at run time
//! and is fast at the small matrices convolutions of narrow layers give), with im2col / col2im
//! around them and rayon over images.
//!
//! Per image `n` (`n = T*B` images, all time steps at once), with `K = cin*k*k` and `P =
//! out_h*out_w`:
//!
//! - forward: `col[K, P] = im2col(x_n)`, `y_n[cout, P] = W[cout, K] · col`;
//! - input gradient: `gcol[K, P] = Wᵀ · gy_n`, `gx_n = col2im(gcol)`;
//! - weight gradient: `gW = Σ_n gy_n · col_nᵀ`, summed per fixed chunk of [`WGRAD_CHUNK`]
//!   images and the chunk partials added in chunk order, so the result does not depend on the
//!   number of threads.
//!
//! A 1x1 convolution with stride 1 and no shift needs no im2col: `col` is the image itself.
//! Scratch buffers are per thread and reused, so the hot loop allocates nothing once warm.
//!
//! The direct loops of [`super::conv::conv2d`] and [`super::grad`] stay as the oracle: they sum
//! in the order the WGSL kernels do (bit-equal parity with the GPU engine); these sum in GEMM
//! blocking order, equal to them within float tolerance (`tests` below).

use super::conv::{valid_range, ConvShape};
use rayon::prelude::*;
use std::cell::RefCell;

/// Images per weight-gradient partial sum (fixed: the summation order must not depend on the
/// thread count).
pub const WGRAD_CHUNK: usize = 8;

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer of at least `len` floats (contents unspecified).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < len {
            s.resize(len, 0.0);
        }
        f(&mut s[..len])
    })
}

/// `c[m, n] = a[m, k] · b[k, n] + beta * c` (`c` not read when `beta` is 0), with explicit row
/// and column strides.
#[allow(clippy::too_many_arguments)]
fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    beta: f32,
    c: &mut [f32],
    (rsc, csc): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    // Bounds: the largest index each matrix is read or written at.
    assert!(
        c.len() > (m - 1) * rsc + (n - 1) * csc,
        "sgemm: c too short"
    );
    assert!(
        k == 0
            || (a.len() > (m - 1) * rsa + (k - 1) * csa && b.len() > (k - 1) * rsb + (n - 1) * csb),
        "sgemm: a or b too short"
    );
    // SAFETY: every index the product touches lies inside the slices (checked above), and `c`
    // does not alias `a` or `b` (it is borrowed mutably). `gemm` takes column strides before
    // row strides, and computes `dst = alpha * dst + beta * lhs · rhs` (dst read when
    // `read_dst`).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            csc as isize,
            rsc as isize,
            beta != 0.0,
            a.as_ptr(),
            csa as isize,
            rsa as isize,
            b.as_ptr(),
            csb as isize,
            rsb as isize,
            beta,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Whether the convolution is a plain matrix product over pixels (1x1, stride 1, no shift).
fn pointwise(s: &ConvShape) -> bool {
    s.k == 1 && s.stride == 1 && !s.shift
}

/// `col[(i*k + dy)*k + dx, oy*wo + ox] = x_n[i, oy*st + dy + base, ox*st + dx + base]`, zero
/// outside the image.
fn im2col(x_n: &[f32], s: &ConvShape, col: &mut [f32]) {
    let (h, wd, k, st) = (s.h, s.w, s.k, s.stride);
    let (ho, wo) = (s.out_h(), s.out_w());
    let p = ho * wo;
    let base = s.shift as isize - s.pad() as isize;
    for i in 0..s.cin {
        let xin = &x_n[i * h * wd..(i + 1) * h * wd];
        for dy in 0..k {
            let ys = valid_range(dy as isize + base, st, h, ho);
            for dx in 0..k {
                let row = &mut col[((i * k + dy) * k + dx) * p..((i * k + dy) * k + dx + 1) * p];
                let xoff = dx as isize + base;
                let xs = valid_range(xoff, st, wd, wo);
                if xs.is_empty() || ys.is_empty() {
                    row.fill(0.0);
                    continue;
                }
                row[..ys.start * wo].fill(0.0);
                row[ys.end * wo..].fill(0.0);
                if st == 1 && wo == wd {
                    // Rows `ys` of the column are the plane shifted by `d` (one contiguous copy,
                    // clipped to the plane), with the columns outside `xs` (which wrapped
                    // around a row end) then zeroed.
                    let yoff = dy as isize + base;
                    let d = yoff * wd as isize + xoff;
                    let (q0, q1) = ((ys.start * wo) as isize, (ys.end * wo) as isize);
                    let lo = q0.max(-d);
                    let hi = q1.min((h * wd) as isize - d).max(lo);
                    zero_short(&mut row[q0 as usize..lo as usize]);
                    row[lo as usize..hi as usize]
                        .copy_from_slice(&xin[(lo + d) as usize..(hi + d) as usize]);
                    zero_short(&mut row[hi as usize..q1 as usize]);
                    zero_outside(row, ys.clone(), wo, &xs);
                    continue;
                }
                let ix0 = ((xs.start * st) as isize + xoff) as usize;
                for oy in ys.clone() {
                    let iy = ((oy * st) as isize + dy as isize + base) as usize;
                    let in_row = &xin[iy * wd..(iy + 1) * wd];
                    let out_row = &mut row[oy * wo..(oy + 1) * wo];
                    zero_short(&mut out_row[..xs.start]);
                    zero_short(&mut out_row[xs.end..]);
                    if st == 1 {
                        out_row[xs.clone()].copy_from_slice(&in_row[ix0..ix0 + xs.len()]);
                    } else {
                        for (j, o) in out_row[xs.clone()].iter_mut().enumerate() {
                            *o = in_row[ix0 + j * st];
                        }
                    }
                }
            }
        }
    }
}

/// Zeroes `s`. Runs of one or two (a row's padding columns for k <= 5) are stored directly:
/// a `fill` there becomes a `memset` call per run, which cost more than the im2col copy itself.
#[inline(always)]
fn zero_short(s: &mut [f32]) {
    match s {
        [] => {}
        [a] => *a = 0.0,
        [a, b] => {
            *a = 0.0;
            *b = 0.0;
        }
        _ => s.fill(0.0),
    }
}

/// Zeroes, in rows `ys` of a `wo`-wide column row, the entries whose column is outside `xs`.
fn zero_outside(
    row: &mut [f32],
    ys: std::ops::Range<usize>,
    wo: usize,
    xs: &std::ops::Range<usize>,
) {
    if xs.start == 0 && xs.end == wo {
        return;
    }
    for oy in ys {
        let r = &mut row[oy * wo..(oy + 1) * wo];
        zero_short(&mut r[..xs.start]);
        zero_short(&mut r[xs.end..]);
    }
}

/// The adjoint of [`im2col`]: `gx_n[i, iy, ix] += gcol[...]` for every column entry that read
/// it (`gx_n` is overwritten: it starts from zero). `gcol` is scratch: entries that read
/// padding are zeroed on the way.
fn col2im(gcol: &mut [f32], s: &ConvShape, gx_n: &mut [f32]) {
    let (h, wd, k, st) = (s.h, s.w, s.k, s.stride);
    let (ho, wo) = (s.out_h(), s.out_w());
    let p = ho * wo;
    let base = s.shift as isize - s.pad() as isize;
    gx_n.fill(0.0);
    for i in 0..s.cin {
        let gin = &mut gx_n[i * h * wd..(i + 1) * h * wd];
        for dy in 0..k {
            let ys = valid_range(dy as isize + base, st, h, ho);
            for dx in 0..k {
                let row = &mut gcol[((i * k + dy) * k + dx) * p..((i * k + dy) * k + dx + 1) * p];
                let xoff = dx as isize + base;
                let xs = valid_range(xoff, st, wd, wo);
                if xs.is_empty() || ys.is_empty() {
                    continue;
                }
                if st == 1 && wo == wd {
                    // The adjoint of the contiguous copy in `im2col`: entries that read padding
                    // (wrapped columns) are zeroed, then rows `ys` are added to the plane
                    // shifted by `d` in one pass (adding +0 leaves a sum unchanged).
                    zero_outside(row, ys.clone(), wo, &xs);
                    let yoff = dy as isize + base;
                    let d = yoff * wd as isize + xoff;
                    let (q0, q1) = ((ys.start * wo) as isize, (ys.end * wo) as isize);
                    let lo = q0.max(-d);
                    let hi = q1.min((h * wd) as isize - d).max(lo);
                    let dst = &mut gin[(lo + d) as usize..(hi + d) as usize];
                    for (a, &g) in dst.iter_mut().zip(&row[lo as usize..hi as usize]) {
                        *a += g;
                    }
                    continue;
                }
                let ix0 = ((xs.start * st) as isize + xoff) as usize;
                for oy in ys.clone() {
                    let iy = ((oy * st) as isize + dy as isize + base) as usize;
                    let g_row = &row[oy * wo..(oy + 1) * wo];
                    let in_row = &mut gin[iy * wd..(iy + 1) * wd];
                    if st == 1 {
                        for (a, &g) in in_row[ix0..ix0 + xs.len()]
                            .iter_mut()
                            .zip(&g_row[xs.clone()])
                        {
                            *a += g;
                        }
                    } else {
                        for (j, &g) in g_row[xs.clone()].iter().enumerate() {
                            in_row[ix0 + j * st] += g;
                        }
                    }
                }
            }
        }
    }
}

/// Convolution (the same function as [`super::conv::conv2d`]): `x` is `[n, cin, h, w]`, `w` is
/// `[cout, cin, k, k]`, `out` is `[n, cout, out_h, out_w]` (overwritten).
pub fn conv2d(x: &[f32], w: &[f32], s: &ConvShape, out: &mut [f32]) {
    s.assert_valid();
    assert_eq!(x.len(), s.in_len(), "conv2d: x must be [n, cin, h, w]");
    assert_eq!(
        w.len(),
        s.weight_len(),
        "conv2d: w must be [cout, cin, k, k]"
    );
    assert_eq!(
        out.len(),
        s.out_len(),
        "conv2d: out must be [n, cout, out_h, out_w]"
    );
    let p = s.out_h() * s.out_w();
    let kk = s.cin * s.k * s.k;
    let (in_img, out_img) = (s.cin * s.h * s.w, s.cout * p);
    if in_img == 0 || out_img == 0 || kk == 0 {
        out.fill(0.0);
        return;
    }
    out.par_chunks_mut(out_img)
        .zip(x.par_chunks(in_img))
        .for_each(|(y_n, x_n)| {
            if pointwise(s) {
                sgemm(s.cout, kk, p, w, (kk, 1), x_n, (p, 1), 0.0, y_n, (p, 1));
            } else {
                with_scratch(kk * p, |col| {
                    im2col(x_n, s, col);
                    sgemm(s.cout, kk, p, w, (kk, 1), col, (p, 1), 0.0, y_n, (p, 1));
                });
            }
        });
}

/// Input gradient (the same function as [`super::grad::conv2d_backward_input`]): `gy` is `[n,
/// cout, out_h, out_w]`, `gx` is `[n, cin, h, w]` (overwritten).
pub fn conv2d_backward_input(gy: &[f32], w: &[f32], s: &ConvShape, gx: &mut [f32]) {
    s.assert_valid();
    assert_eq!(gy.len(), s.out_len(), "conv2d_backward_input: gy length");
    assert_eq!(w.len(), s.weight_len(), "conv2d_backward_input: w length");
    assert_eq!(gx.len(), s.in_len(), "conv2d_backward_input: gx length");
    let p = s.out_h() * s.out_w();
    let kk = s.cin * s.k * s.k;
    let (in_img, out_img) = (s.cin * s.h * s.w, s.cout * p);
    if in_img == 0 || out_img == 0 || kk == 0 {
        gx.fill(0.0);
        return;
    }
    gx.par_chunks_mut(in_img)
        .zip(gy.par_chunks(out_img))
        .for_each(|(gx_n, gy_n)| {
            // Wᵀ as a [K, cout] matrix: element (r, o) = w[o*K + r].
            if pointwise(s) {
                sgemm(kk, s.cout, p, w, (1, kk), gy_n, (p, 1), 0.0, gx_n, (p, 1));
            } else {
                with_scratch(kk * p, |gcol| {
                    sgemm(kk, s.cout, p, w, (1, kk), gy_n, (p, 1), 0.0, gcol, (p, 1));
                    col2im(gcol, s, gx_n);
                });
            }
        });
}

/// Weight gradient (the same function as [`super::grad::conv2d_backward_weight`]): `gw` is
/// `[cout, cin, k, k]` (overwritten). Images are summed per chunk of [`WGRAD_CHUNK`] in image
/// order, and the chunks in chunk order: the same result for any number of threads.
pub fn conv2d_backward_weight(x: &[f32], gy: &[f32], s: &ConvShape, gw: &mut [f32]) {
    s.assert_valid();
    assert_eq!(x.len(), s.in_len(), "conv2d_backward_weight: x length");
    assert_eq!(gy.len(), s.out_len(), "conv2d_backward_weight: gy length");
    assert_eq!(
        gw.len(),
        s.weight_len(),
        "conv2d_backward_weight: gw length"
    );
    let p = s.out_h() * s.out_w();
    let kk = s.cin * s.k * s.k;
    let (in_img, out_img) = (s.cin * s.h * s.w, s.cout * p);
    gw.fill(0.0);
    if in_img == 0 || out_img == 0 || kk == 0 || s.n == 0 {
        return;
    }
    let chunks = s.n.div_ceil(WGRAD_CHUNK);
    let wl = s.cout * kk;
    let mut partials = vec![0.0f32; chunks * wl];
    partials
        .par_chunks_mut(wl)
        .enumerate()
        .for_each(|(c, part)| {
            let imgs = c * WGRAD_CHUNK..((c + 1) * WGRAD_CHUNK).min(s.n);
            for (j, img) in imgs.enumerate() {
                let x_n = &x[img * in_img..(img + 1) * in_img];
                let gy_n = &gy[img * out_img..(img + 1) * out_img];
                let beta = if j == 0 { 0.0 } else { 1.0 };
                // gW[cout, K] += gy_n[cout, P] · colᵀ[P, K]; colᵀ element (q, r) = col[r*P + q].
                if pointwise(s) {
                    sgemm(
                        s.cout,
                        p,
                        kk,
                        gy_n,
                        (p, 1),
                        x_n,
                        (1, p),
                        beta,
                        part,
                        (kk, 1),
                    );
                } else {
                    with_scratch(kk * p, |col| {
                        im2col(x_n, s, col);
                        sgemm(
                            s.cout,
                            p,
                            kk,
                            gy_n,
                            (p, 1),
                            col,
                            (1, p),
                            beta,
                            part,
                            (kk, 1),
                        );
                    });
                }
            }
        });
    for part in partials.chunks_exact(wl) {
        for (g, &v) in gw.iter_mut().zip(part) {
            *g += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::grad::{
        conv2d_backward_input as ref_bwd_input, conv2d_backward_weight as ref_bwd_weight,
    };
    use rand::{Rng, SeedableRng};

    /// Every shape family the plans use: stem (dense input, k 3), cell convolutions (k 1 and
    /// 3), the factorised reduce (k 1 or 3, stride 2, with and without shift), odd sizes,
    /// one-pixel images, more images than a weight-gradient chunk.
    fn shapes() -> Vec<ConvShape> {
        let mut v = Vec::new();
        for &(n, cin, h, w, cout, k, stride, shift) in &[
            (3, 1, 8, 8, 6, 3, 1, false),
            (17, 4, 5, 7, 3, 3, 1, false),
            (9, 5, 6, 6, 4, 1, 1, false),
            (4, 3, 7, 7, 2, 1, 2, false),
            (4, 3, 7, 7, 2, 1, 2, true),
            (5, 3, 8, 6, 4, 3, 2, false),
            (5, 3, 8, 6, 4, 3, 2, true),
            (2, 2, 1, 1, 3, 3, 1, false),
            (2, 2, 1, 1, 3, 1, 1, false),
            (1, 8, 4, 4, 16, 3, 1, false),
            (3, 2, 5, 6, 3, 1, 1, true),
            (3, 2, 5, 6, 3, 3, 1, true),
            (2, 3, 2, 9, 2, 3, 1, false),
        ] {
            v.push(ConvShape {
                n,
                cin,
                h,
                w,
                cout,
                k,
                stride,
                shift,
            });
        }
        v
    }

    fn rand_vec(rng: &mut rand::rngs::StdRng, n: usize, spikes: bool) -> Vec<f32> {
        (0..n)
            .map(|_| {
                if spikes {
                    (rng.random::<f32>() < 0.3) as u8 as f32
                } else {
                    rng.random::<f32>() * 2.0 - 1.0
                }
            })
            .collect()
    }

    /// |a - b| <= 1e-5 * (1 + sum of |terms|) element by element, with the term magnitudes from
    /// the same product on absolute values.
    fn assert_close(what: &str, fast: &[f32], reference: &[f32], magnitude: &[f32]) {
        assert_eq!(fast.len(), reference.len());
        for i in 0..fast.len() {
            let tol = 1e-5 * (1.0 + magnitude[i]);
            assert!(
                (fast[i] - reference[i]).abs() <= tol,
                "{what}[{i}]: fast {} reference {} (tol {tol:e})",
                fast[i],
                reference[i]
            );
        }
    }

    fn abs(v: &[f32]) -> Vec<f32> {
        v.iter().map(|x| x.abs()).collect()
    }

    #[test]
    fn fast_convolutions_match_the_direct_loops() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for s in shapes() {
            for spikes in [false, true] {
                let x = rand_vec(&mut rng, s.in_len(), spikes);
                let w = rand_vec(&mut rng, s.weight_len(), false);
                let gy = rand_vec(&mut rng, s.out_len(), false);
                let what = format!("{s:?} spikes {spikes}");

                let (mut a, mut b, mut m) = (
                    vec![0.0; s.out_len()],
                    vec![1.0; s.out_len()],
                    vec![0.0; s.out_len()],
                );
                conv2d(&x, &w, &s, &mut a);
                super::super::conv::conv2d(&x, &w, &s, &mut b);
                super::super::conv::conv2d(&abs(&x), &abs(&w), &s, &mut m);
                assert_close(&format!("forward {what}"), &a, &b, &m);

                let (mut a, mut b, mut m) = (
                    vec![0.0; s.in_len()],
                    vec![1.0; s.in_len()],
                    vec![0.0; s.in_len()],
                );
                conv2d_backward_input(&gy, &w, &s, &mut a);
                ref_bwd_input(&gy, &w, &s, &mut b);
                ref_bwd_input(&abs(&gy), &abs(&w), &s, &mut m);
                assert_close(&format!("input gradient {what}"), &a, &b, &m);

                let (mut a, mut b, mut m) = (
                    vec![7.0; s.weight_len()],
                    vec![0.0; s.weight_len()],
                    vec![0.0; s.weight_len()],
                );
                conv2d_backward_weight(&x, &gy, &s, &mut a);
                ref_bwd_weight(&x, &gy, &s, &mut b);
                ref_bwd_weight(&abs(&x), &abs(&gy), &s, &mut m);
                assert_close(&format!("weight gradient {what}"), &a, &b, &m);
            }
        }
    }

    #[test]
    fn weight_gradient_does_not_depend_on_the_thread_count() {
        let s = ConvShape {
            n: 37,
            cin: 6,
            h: 9,
            w: 9,
            cout: 5,
            k: 3,
            stride: 1,
            shift: false,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let x = rand_vec(&mut rng, s.in_len(), true);
        let gy = rand_vec(&mut rng, s.out_len(), false);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut gw = vec![0.0; s.weight_len()];
            pool.install(|| conv2d_backward_weight(&x, &gy, &s, &mut gw));
            gw.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(3));
    }
}
