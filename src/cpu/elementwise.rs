//! Element-wise and reduction primitives: add, channel concat, global average pool, linear,
//! mean over time. All f32; sums accumulate in index order.

/// `acc[j] += x[j]`.
pub fn add_into(acc: &mut [f32], x: &[f32]) {
    assert_eq!(acc.len(), x.len(), "add_into: length mismatch");
    for (a, &v) in acc.iter_mut().zip(x) {
        *a += v;
    }
}

/// Workgroups of the GPU's `reduce::sum_squares` for `len` elements: one per 256 elements, at
/// most 256 (the partial sums [`sum_squares_partials`] returns).
pub fn sum_squares_groups(len: usize) -> usize {
    len.div_ceil(256).clamp(1, 256)
}

#[cfg(any(test, feature = "internals"))]
/// The partial sums of squares of the GPU's `reduce::sum_squares`, in its order: partial `g`
/// adds, for each of 256 lanes `l`, `x[i]^2` over `i = g * 256 + l + k * groups * 256` in
/// increasing `i`, then the lane sums pairwise (`l + h` into `l` for `h = 128, 64, ..., 1`).
/// Their sum is `sum x^2`.
pub fn sum_squares_partials(x: &[f32], groups: usize) -> Vec<f32> {
    let stride = groups * 256;
    (0..groups)
        .map(|g| {
            let mut part: Vec<f32> = (0..256)
                .map(|l| {
                    x.iter()
                        .skip(g * 256 + l)
                        .step_by(stride)
                        .fold(0.0f32, |s, &v| s + v * v)
                })
                .collect();
            let mut h = 128;
            while h > 0 {
                for l in 0..h {
                    part[l] += part[l + h];
                }
                h >>= 1;
            }
            part[0]
        })
        .collect()
}

/// Concatenates `[n, c_i, hw]` tensors along channels into `out` (`[n, sum c_i, hw]`). Each input
/// is given as `(data, c_i)`.
pub fn concat_channels(inputs: &[(&[f32], usize)], n: usize, hw: usize, out: &mut [f32]) {
    let c_total: usize = inputs.iter().map(|&(_, c)| c).sum();
    assert_eq!(
        out.len(),
        n * c_total * hw,
        "concat_channels: out must be [n, sum c, hw]"
    );
    for &(data, c) in inputs {
        assert_eq!(
            data.len(),
            n * c * hw,
            "concat_channels: input must be [n, c, hw]"
        );
    }
    for img in 0..n {
        let mut at = img * c_total * hw;
        for &(data, c) in inputs {
            let len = c * hw;
            out[at..at + len].copy_from_slice(&data[img * len..(img + 1) * len]);
            at += len;
        }
    }
}

/// Mean over the `hw` positions of each channel: `x` `[n, c, hw]` -> `out` `[n, c]`. The sum
/// accumulates in f32 in index order and is divided by `hw`.
pub fn global_avg_pool(x: &[f32], n: usize, c: usize, hw: usize, out: &mut [f32]) {
    assert_eq!(x.len(), n * c * hw, "global_avg_pool: x must be [n, c, hw]");
    assert_eq!(out.len(), n * c, "global_avg_pool: out must be [n, c]");
    for (o, plane) in out.iter_mut().zip(x.chunks_exact(hw.max(1))) {
        let mut acc = 0.0f32;
        for &v in plane {
            acc += v;
        }
        *o = acc / hw as f32;
    }
}

/// Fully connected layer: `out[r, o] = (sum_i x[r, i] * w[o, i]) + bias[o]` for `x` `[n, in_f]`,
/// `w` `[out_f, in_f]`, `bias` `[out_f]`, `out` `[n, out_f]`. The sum accumulates in f32 over i
/// from +0; the bias is added last.
pub fn linear(
    x: &[f32],
    n: usize,
    in_f: usize,
    w: &[f32],
    bias: &[f32],
    out_f: usize,
    out: &mut [f32],
) {
    assert_eq!(x.len(), n * in_f, "linear: x must be [n, in_f]");
    assert_eq!(w.len(), out_f * in_f, "linear: w must be [out_f, in_f]");
    assert_eq!(bias.len(), out_f, "linear: bias must be [out_f]");
    assert_eq!(out.len(), n * out_f, "linear: out must be [n, out_f]");
    for r in 0..n {
        let xr = &x[r * in_f..(r + 1) * in_f];
        for o in 0..out_f {
            let wo = &w[o * in_f..(o + 1) * in_f];
            let mut acc = 0.0f32;
            for (&a, &b) in xr.iter().zip(wo) {
                acc += a * b;
            }
            out[r * out_f + o] = acc + bias[o];
        }
    }
}

/// Mean over time: `x` `[T, m]` -> `out` `[m]`, summing t = 0..T in f32 and dividing by `T`.
pub fn mean_time(x: &[f32], t: usize, m: usize, out: &mut [f32]) {
    assert_eq!(x.len(), t * m, "mean_time: x must be [T, m]");
    assert_eq!(out.len(), m, "mean_time: out must be [m]");
    for (j, o) in out.iter_mut().enumerate() {
        let mut acc = 0.0f32;
        for step in 0..t {
            acc += x[step * m + j];
        }
        *o = acc / t as f32;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sum_squares_partials_add_up_to_the_sum_of_squares() {
        assert_eq!(super::sum_squares_groups(0), 1);
        assert_eq!(super::sum_squares_groups(256), 1);
        assert_eq!(super::sum_squares_groups(257), 2);
        assert_eq!(super::sum_squares_groups(10_000_000), 256);
        for len in [0usize, 1, 300, 65_536, 100_003] {
            let x: Vec<f32> = (0..len)
                .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                .collect();
            let groups = super::sum_squares_groups(len);
            let parts = super::sum_squares_partials(&x, groups);
            assert_eq!(parts.len(), groups);
            let got: f64 = parts.iter().map(|&v| f64::from(v)).sum();
            let want: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            assert!(
                (got - want).abs() <= 1e-5 * want.max(1.0),
                "len {len}: {got} vs {want}"
            );
        }
    }

    use super::*;

    #[test]
    fn add_by_hand() {
        let mut a = [1.0, 2.0, 3.0];
        add_into(&mut a, &[0.5, -2.0, 4.0]);
        assert_eq!(a, [1.5, 0.0, 7.0]);
    }

    #[test]
    fn concat_by_hand() {
        // n = 2, hw = 2; a has 1 channel, b has 2.
        let a = [1.0, 2.0, /* img 1 */ 3.0, 4.0];
        let b = [
            10.0, 11.0, 12.0, 13.0, /* img 1 */ 20.0, 21.0, 22.0, 23.0,
        ];
        let mut out = [0.0f32; 12];
        concat_channels(&[(&a, 1), (&b, 2)], 2, 2, &mut out);
        assert_eq!(
            out,
            [1.0, 2.0, 10.0, 11.0, 12.0, 13.0, 3.0, 4.0, 20.0, 21.0, 22.0, 23.0]
        );
    }

    #[test]
    fn pool_by_hand() {
        // n = 1, c = 2, hw = 4.
        let x = [1.0, 2.0, 3.0, 6.0, -1.0, -1.0, 0.0, 2.0];
        let mut out = [0.0f32; 2];
        global_avg_pool(&x, 1, 2, 4, &mut out);
        assert_eq!(out, [3.0, 0.0]);
    }

    #[test]
    fn linear_by_hand() {
        // x [2, 3], w [2, 3].
        let x = [1.0, 2.0, 3.0, -1.0, 0.0, 1.0];
        let w = [1.0, 0.0, -1.0, 0.5, 0.5, 0.5];
        let bias = [0.25, -1.0];
        let mut out = [0.0f32; 4];
        linear(&x, 2, 3, &w, &bias, 2, &mut out);
        // row 0: 1 - 3 + 0.25 = -1.75; 0.5*6 - 1 = 2. row 1: -1 - 1 + 0.25 = -1.75; 0 - 1 = -1.
        assert_eq!(out, [-1.75, 2.0, -1.75, -1.0]);
    }

    #[test]
    fn mean_time_by_hand() {
        // T = 4, m = 2.
        let x = [1.0, 0.0, 0.0, 0.0, 1.0, 2.0, 1.0, 0.0];
        let mut out = [0.0f32; 2];
        mean_time(&x, 4, 2, &mut out);
        assert_eq!(out, [0.75, 0.5]);
    }
}
