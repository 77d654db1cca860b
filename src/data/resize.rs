//! Image resizing, one rule for every dataset:
//!
//! - shrinking (output not larger than input on both axes): **area** averaging, exactly
//!   PyTorch's `F.interpolate(mode="area")` (= `adaptive_avg_pool2d`): output pixel `i` averages
//!   input rows `floor(i*in/out) .. ceil((i+1)*in/out)` (and the same for columns), so integer
//!   factors are plain average pooling and event counts keep their mean;
//! - otherwise: **bilinear** with `align_corners=false`, exactly PyTorch's
//!   `F.interpolate(mode="bilinear", align_corners=False)` without antialias: the source
//!   coordinate of output pixel `i` is `(i + 0.5) * in/out - 0.5`, clamped at 0, and the last
//!   input row/column is repeated at the far edge.

/// Resizes `planes` row-major `h x w` planes to `oh x ow`.
pub fn resize(src: &[f32], planes: usize, h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    assert_eq!(src.len(), planes * h * w, "resize: input length");
    if oh == h && ow == w {
        return src.to_vec();
    }
    let mut out = vec![0.0f32; planes * oh * ow];
    if oh <= h && ow <= w {
        let rows = area_windows(h, oh);
        let cols = area_windows(w, ow);
        for p in 0..planes {
            let s = &src[p * h * w..(p + 1) * h * w];
            let o = &mut out[p * oh * ow..(p + 1) * oh * ow];
            for (oy, &(y0, y1)) in rows.iter().enumerate() {
                for (ox, &(x0, x1)) in cols.iter().enumerate() {
                    let mut acc = 0.0f32;
                    for y in y0..y1 {
                        for x in x0..x1 {
                            acc += s[y * w + x];
                        }
                    }
                    o[oy * ow + ox] = acc / ((y1 - y0) * (x1 - x0)) as f32;
                }
            }
        }
    } else {
        let rows = linear_taps(h, oh);
        let cols = linear_taps(w, ow);
        for p in 0..planes {
            let s = &src[p * h * w..(p + 1) * h * w];
            let o = &mut out[p * oh * ow..(p + 1) * oh * ow];
            for (oy, &(y0, y1, ly)) in rows.iter().enumerate() {
                for (ox, &(x0, x1, lx)) in cols.iter().enumerate() {
                    let top = s[y0 * w + x0] * (1.0 - lx) + s[y0 * w + x1] * lx;
                    let bot = s[y1 * w + x0] * (1.0 - lx) + s[y1 * w + x1] * lx;
                    o[oy * ow + ox] = top * (1.0 - ly) + bot * ly;
                }
            }
        }
    }
    out
}

/// Adaptive-average-pool windows `[start, end)` for `n_in -> n_out`.
fn area_windows(n_in: usize, n_out: usize) -> Vec<(usize, usize)> {
    (0..n_out)
        .map(|i| {
            let start = i * n_in / n_out;
            let end = ((i + 1) * n_in).div_ceil(n_out);
            (start, end)
        })
        .collect()
}

/// Bilinear taps `(i0, i1, lambda)` for `n_in -> n_out`, align_corners=false.
fn linear_taps(n_in: usize, n_out: usize) -> Vec<(usize, usize, f32)> {
    let scale = n_in as f32 / n_out as f32;
    (0..n_out)
        .map(|i| {
            let src = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(n_in - 1);
            let i1 = if i0 + 1 < n_in { i0 + 1 } else { i0 };
            (i0, i1, src - i0 as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_matches_pytorch_2x() {
        // F.interpolate(torch.tensor([[[[0.,1.],[2.,3.]]]]), size=4, mode="bilinear",
        // align_corners=False)
        let out = resize(&[0.0, 1.0, 2.0, 3.0], 1, 2, 2, 4, 4);
        let want = [
            0.0, 0.25, 0.75, 1.0, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2.0, 2.25, 2.75, 3.0,
        ];
        for (a, b) in out.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn area_is_average_pool_and_adaptive() {
        let src: Vec<f32> = (0..16).map(|v| v as f32).collect();
        assert_eq!(resize(&src, 1, 4, 4, 2, 2), vec![2.5, 4.5, 10.5, 12.5]);
        // 3 -> 2: windows [0,2) and [1,3)
        assert_eq!(resize(&[0.0, 3.0, 6.0], 1, 1, 3, 1, 2), vec![1.5, 4.5]);
    }
}
