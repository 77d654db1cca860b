//! 2-D convolution, no bias, zero padding, optional one-pixel shift.
//!
//! `out[n,o,oy,ox] = sum_{i,dy,dx} w[o,i,dy,dx] * in[n,i, oy*s + dy - p + sh, ox*s + dx - p + sh]`
//! with `p = k/2`, `sh` = 1 for the shifted branch of a factorised reduce and 0 otherwise; reads
//! outside the image are zero. Output size `(H + 2p - k)/s + 1`. Weights `[O, I, k, k]`.
//! Each output element accumulates in f32 over i, then dy, then dx, starting from +0.

use rayon::prelude::*;

/// Shape of one convolution over `n` images (`n = T*B`: all time steps at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// Number of images (`T * B`).
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    /// Read one pixel down and right (the shifted branch of a factorised reduce).
    pub shift: bool,
}

impl ConvShape {
    /// Zero padding on each side: `k / 2`.
    pub fn pad(&self) -> usize {
        self.k / 2
    }

    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.pad() - self.k) / self.stride + 1
    }

    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pad() - self.k) / self.stride + 1
    }

    /// Panics unless `k` and the stride are at least 1 and the kernel fits the padded input.
    pub fn assert_valid(&self) {
        assert!(
            self.k >= 1 && self.stride >= 1,
            "conv2d: k and stride must be >= 1"
        );
        assert!(
            self.h + 2 * self.pad() >= self.k && self.w + 2 * self.pad() >= self.k,
            "conv2d: kernel larger than padded input"
        );
    }

    /// Number of weights, `cout * cin * k * k`.
    pub fn weight_len(&self) -> usize {
        self.cout * self.cin * self.k * self.k
    }

    #[cfg(any(test, feature = "internals"))]
    /// Multiply-accumulates per image (counting padded positions).
    pub fn macs_per_image(&self) -> usize {
        self.cout * self.out_h() * self.out_w() * self.cin * self.k * self.k
    }

    /// Input length `n * cin * h * w`.
    pub fn in_len(&self) -> usize {
        self.n * self.cin * self.h * self.w
    }

    /// Output length `n * cout * out_h * out_w`.
    pub fn out_len(&self) -> usize {
        self.n * self.cout * self.out_h() * self.out_w()
    }
}

/// The range of output coordinates `o` in `0..out` whose input coordinate `o*s + off` lies in
/// `0..size`.
pub(crate) fn valid_range(off: isize, s: usize, size: usize, out: usize) -> std::ops::Range<usize> {
    let s = s as isize;
    // o*s + off >= 0  <=>  o >= ceil(-off / s)
    let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
    // o*s + off < size  <=>  o < ceil((size - off) / s)
    let room = size as isize - off;
    let hi = if room <= 0 { 0 } else { (room + s - 1) / s };
    let lo = (lo as usize).min(out);
    let hi = (hi as usize).min(out);
    lo..hi.max(lo)
}

/// Convolution per `docs/design.md`. `x` is `[n, cin, h, w]`, `w` is `[cout, cin, k, k]`, `out`
/// is `[n, cout, out_h, out_w]` (overwritten). Images run in parallel; within one image the loop
/// is o, i, dy, dx, oy, ox, so every output element sees its terms in the order i, dy, dx.
/// Terms that read padding are skipped (adding `w * 0` to an accumulator that starts at +0 never
/// changes it).
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
    let (ho, wo) = (s.out_h(), s.out_w());
    let (in_img, out_img) = (s.cin * s.h * s.w, s.cout * ho * wo);
    if in_img == 0 || out_img == 0 {
        out.fill(0.0);
        return;
    }
    out.par_chunks_mut(out_img)
        .zip(x.par_chunks(in_img))
        .for_each(|(out_n, x_n)| conv2d_image(x_n, w, s, out_n));
}

/// One image: `x_n` is `[cin, h, w]`, `out_n` is `[cout, out_h, out_w]`.
fn conv2d_image(x_n: &[f32], w: &[f32], s: &ConvShape, out_n: &mut [f32]) {
    let (h, wd, k, st) = (s.h, s.w, s.k, s.stride);
    let (ho, wo) = (s.out_h(), s.out_w());
    let base = s.shift as isize - s.pad() as isize; // input coord = o*st + d + base
    for o in 0..s.cout {
        let plane = &mut out_n[o * ho * wo..(o + 1) * ho * wo];
        plane.fill(0.0);
        for i in 0..s.cin {
            let xin = &x_n[i * h * wd..(i + 1) * h * wd];
            let wk = &w[(o * s.cin + i) * k * k..(o * s.cin + i + 1) * k * k];
            for dy in 0..k {
                let ys = valid_range(dy as isize + base, st, h, ho);
                for dx in 0..k {
                    let wv = wk[dy * k + dx];
                    let xoff = dx as isize + base;
                    let xs = valid_range(xoff, st, wd, wo);
                    if xs.is_empty() {
                        continue;
                    }
                    for oy in ys.clone() {
                        let iy = (oy * st) as isize + dy as isize + base;
                        let in_row = &xin[iy as usize * wd..(iy as usize + 1) * wd];
                        let out_row = &mut plane[oy * wo..(oy + 1) * wo];
                        let ix0 = ((xs.start * st) as isize + xoff) as usize;
                        if st == 1 {
                            let src = &in_row[ix0..ix0 + xs.len()];
                            for (a, &v) in out_row[xs.clone()].iter_mut().zip(src) {
                                *a += wv * v;
                            }
                        } else {
                            for (j, a) in out_row[xs.clone()].iter_mut().enumerate() {
                                *a += wv * in_row[ix0 + j * st];
                            }
                        }
                    }
                }
            }
        }
    }
}

impl ConvShape {
    /// The shape of a plan's convolution op over `n` images (`T*B`); `None` for other ops.
    pub fn of_op(plan: &crate::plan::Plan, op: &crate::plan::Op, n: usize) -> Option<ConvShape> {
        match op {
            crate::plan::Op::Conv {
                x,
                cin,
                cout,
                k,
                stride,
                shift,
                ..
            } => {
                let xd = &plan.tensors[*x];
                Some(ConvShape {
                    n,
                    cin: *cin,
                    h: xd.h,
                    w: xd.w,
                    cout: *cout,
                    k: *k,
                    stride: *stride,
                    shift: *shift,
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct transcription of the formula, written without the row tricks above.
    fn naive(x: &[f32], w: &[f32], s: &ConvShape) -> Vec<f32> {
        let p = (s.k / 2) as i64;
        let sh = if s.shift { 1 } else { 0 };
        let ho = (s.h as i64 + 2 * p - s.k as i64) / s.stride as i64 + 1;
        let wo = (s.w as i64 + 2 * p - s.k as i64) / s.stride as i64 + 1;
        let mut out = Vec::new();
        for n in 0..s.n as i64 {
            for o in 0..s.cout as i64 {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut acc = 0.0f32;
                        for i in 0..s.cin as i64 {
                            for dy in 0..s.k as i64 {
                                for dx in 0..s.k as i64 {
                                    let iy = oy * s.stride as i64 + dy - p + sh;
                                    let ix = ox * s.stride as i64 + dx - p + sh;
                                    let v =
                                        if iy < 0 || ix < 0 || iy >= s.h as i64 || ix >= s.w as i64
                                        {
                                            0.0
                                        } else {
                                            x[(((n * s.cin as i64 + i) * s.h as i64 + iy)
                                                * s.w as i64
                                                + ix)
                                                as usize]
                                        };
                                    let wi = ((o * s.cin as i64 + i) * s.k as i64 + dy)
                                        * s.k as i64
                                        + dx;
                                    acc += w[wi as usize] * v;
                                }
                            }
                        }
                        out.push(acc);
                    }
                }
            }
        }
        out
    }

    /// Deterministic small values, a mix of signs, some exact zeros (like spikes).
    fn fill(len: usize, salt: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| {
                let b = crate::cpu::rng::bits(i, salt);
                if b.is_multiple_of(5) {
                    0.0
                } else {
                    (b >> 8) as f32 / 16_777_216.0 * 2.0 - 1.0
                }
            })
            .collect()
    }

    fn run(s: &ConvShape, x: &[f32], w: &[f32]) -> Vec<f32> {
        let mut out = vec![f32::NAN; s.out_len()];
        conv2d(x, w, s, &mut out);
        out
    }

    #[test]
    fn shapes() {
        let s = ConvShape {
            n: 2,
            cin: 3,
            h: 7,
            w: 5,
            cout: 4,
            k: 3,
            stride: 2,
            shift: false,
        };
        assert_eq!((s.pad(), s.out_h(), s.out_w()), (1, 4, 3));
        assert_eq!(s.weight_len(), 4 * 3 * 9);
        assert_eq!(s.macs_per_image(), 4 * 4 * 3 * 3 * 9);
        let s1 = ConvShape {
            k: 1,
            stride: 2,
            ..s
        };
        assert_eq!((s1.pad(), s1.out_h(), s1.out_w()), (0, 4, 3));
        let s5 = ConvShape {
            k: 5,
            stride: 1,
            ..s
        };
        assert_eq!((s5.pad(), s5.out_h(), s5.out_w()), (2, 7, 5));
    }

    #[test]
    fn hand_3x3_identity_and_sum() {
        // 1 image, 1 channel 3x3 input 1..9, k = 3, stride 1, pad 1.
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let s = ConvShape {
            n: 1,
            cin: 1,
            h: 3,
            w: 3,
            cout: 2,
            k: 3,
            stride: 1,
            shift: false,
        };
        // Output 0: centre tap only -> identity. Output 1: all ones -> 3x3 neighbourhood sums.
        let mut w = vec![0.0f32; 18];
        w[4] = 1.0;
        w[9..].fill(1.0);
        let out = run(&s, &x, &w);
        assert_eq!(&out[..9], &x[..]);
        #[rustfmt::skip]
        let sums = [12.0, 21.0, 16.0,
                    27.0, 45.0, 33.0,
                    24.0, 39.0, 28.0];
        assert_eq!(&out[9..], &sums);
    }

    #[test]
    fn hand_stride2_and_shift() {
        // 4x4 input 0..15, k = 1, stride 2: picks (0,0), (0,2), (2,0), (2,2).
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let s = ConvShape {
            n: 1,
            cin: 1,
            h: 4,
            w: 4,
            cout: 1,
            k: 1,
            stride: 2,
            shift: false,
        };
        assert_eq!(run(&s, &x, &[2.0]), [0.0, 4.0, 16.0, 20.0]);
        // Shifted: picks (1,1), (1,3), (3,1), (3,3).
        let s = ConvShape { shift: true, ..s };
        assert_eq!(run(&s, &x, &[1.0]), [5.0, 7.0, 13.0, 15.0]);
        // k = 1, stride 1, shifted on 3x3 input 1..9: out[y][x] = in[y+1][x+1], zero past the edge.
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let s = ConvShape {
            n: 1,
            cin: 1,
            h: 3,
            w: 3,
            cout: 1,
            k: 1,
            stride: 1,
            shift: true,
        };
        assert_eq!(
            run(&s, &x, &[1.0]),
            [5.0, 6.0, 0.0, 8.0, 9.0, 0.0, 0.0, 0.0, 0.0]
        );
    }

    #[test]
    fn hand_two_input_channels() {
        // 1x1 conv mixing 2 channels of a 1x2 image: out = 2*a - b.
        let x = [1.0, 2.0, 10.0, 20.0];
        let s = ConvShape {
            n: 1,
            cin: 2,
            h: 1,
            w: 2,
            cout: 1,
            k: 1,
            stride: 1,
            shift: false,
        };
        assert_eq!(run(&s, &x, &[2.0, -1.0]), [-8.0, -16.0]);
    }

    #[test]
    fn matches_naive_all_variants() {
        for k in [1, 3, 5] {
            for stride in [1, 2] {
                for shift in [false, true] {
                    for (h, w) in [(5, 7), (6, 6), (3, 4), (9, 5)] {
                        if h + 2 * (k / 2) < k || w + 2 * (k / 2) < k {
                            continue;
                        }
                        let s = ConvShape {
                            n: 3,
                            cin: 3,
                            h,
                            w,
                            cout: 2,
                            k,
                            stride,
                            shift,
                        };
                        let salt = (k * 100 + stride * 10 + shift as usize + h * 1000) as u32;
                        let x = fill(s.in_len(), salt);
                        let wt = fill(s.weight_len(), salt + 1);
                        let got = run(&s, &x, &wt);
                        let want = naive(&x, &wt, &s);
                        assert_eq!(got.len(), want.len());
                        // Same accumulation order: bit-identical.
                        for (a, b) in got.iter().zip(&want) {
                            assert_eq!(a.to_bits(), b.to_bits(), "{s:?}");
                        }
                    }
                }
            }
        }
    }
}
