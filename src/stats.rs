//! General statistics: ranks, correlations, bootstrap intervals and a small log-determinant.
//!
//! Used by the training-free scores and by the ranking benchmark. All arithmetic is f64.
//! Functions that can be undefined (a constant input, fewer than two points) return NaN and say
//! so; callers that must never produce NaN (the scores) check `is_finite`.

use rand::Rng;

/// Ranks from 1 to n, ties given the average of the ranks they span (scipy's `rankdata`
/// "average" method). Equal values (`==`, so -0.0 ties 0.0) share a rank; inputs should be finite.
pub fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && x[order[end]] == x[order[start]] {
            end += 1;
        }
        // Positions start..end (0-based) hold ranks start+1..=end; their mean:
        let avg = (start + 1 + end) as f64 / 2.0;
        for &k in &order[start..end] {
            r[k] = avg;
        }
        start = end;
    }
    r
}

/// Pearson correlation. NaN when the lengths differ, n < 2 or either input is constant.
/// The result is clamped to [-1, 1] (rounding can step just outside).
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len();
    if n != y.len() || n < 2 {
        return f64::NAN;
    }
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return f64::NAN;
    }
    (sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0)
}

/// Spearman rank correlation: Pearson of the average ranks. NaN as for [`pearson`].
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    if x.len() != y.len() {
        return f64::NAN;
    }
    pearson(&ranks(x), &ranks(y))
}

/// Kendall's tau-b, which corrects for ties in either input (scipy's `kendalltau` default):
/// `(P - Q) / sqrt((P + Q + U) (P + Q + V))` with P concordant pairs, Q discordant, U pairs tied
/// only in y, V pairs tied only in x. NaN when the lengths differ, n < 2 or either input is
/// constant. Equal values (`==`) are ties. O(n^2), which is plenty for benchmark sizes.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len();
    if n != y.len() || n < 2 {
        return f64::NAN;
    }
    let (mut p, mut q, mut tied_x_only, mut tied_y_only) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..n {
        for j in i + 1..n {
            let (dx, dy) = (sign(x[i] - x[j]), sign(y[i] - y[j]));
            match (dx, dy) {
                (0, 0) => {}
                (0, _) => tied_x_only += 1,
                (_, 0) => tied_y_only += 1,
                _ if dx == dy => p += 1,
                _ => q += 1,
            }
        }
    }
    let den = ((p + q + tied_y_only) as f64 * (p + q + tied_x_only) as f64).sqrt();
    if den == 0.0 {
        return f64::NAN;
    }
    ((p as f64 - q as f64) / den).clamp(-1.0, 1.0)
}

/// -1, 0 or 1; 0 for equal values (so -0.0 ties 0.0, which `total_cmp` would not) and NaN.
fn sign(d: f64) -> i8 {
    if d > 0.0 {
        1
    } else if d < 0.0 {
        -1
    } else {
        0
    }
}

/// Partial Kendall tau of x and y given z:
/// `(t_xy - t_xz t_yz) / sqrt((1 - t_xz^2) (1 - t_yz^2))`, all taus tau-b.
/// NaN when any tau is undefined or z ranks exactly like x or y (zero denominator).
pub fn partial_kendall(x: &[f64], y: &[f64], z: &[f64]) -> f64 {
    let txy = kendall_tau_b(x, y);
    let txz = kendall_tau_b(x, z);
    let tyz = kendall_tau_b(y, z);
    let den = ((1.0 - txz * txz) * (1.0 - tyz * tyz)).sqrt();
    if den.is_nan() || den <= 0.0 {
        return f64::NAN;
    }
    (txy - txz * tyz) / den
}

/// Partial Kendall tau of `x` and `y` given every variable in `given`: the partial
/// correlation read from the inverse of the Kendall tau-b matrix of `(x, y, given...)`,
/// `-P[0][1] / sqrt(P[0][0] P[1][1])`. With one control it equals [`partial_kendall`]. NaN
/// when the matrix is singular (a constant or duplicated control).
pub fn partial_kendall_given(x: &[f64], y: &[f64], given: &[&[f64]]) -> f64 {
    let vars: Vec<&[f64]> = [x, y].into_iter().chain(given.iter().copied()).collect();
    let n = vars.len();
    let mut m = vec![vec![0.0; 2 * n]; n];
    for i in 0..n {
        for j in 0..n {
            m[i][j] = if i == j {
                1.0
            } else {
                kendall_tau_b(vars[i], vars[j])
            };
        }
        m[i][n + i] = 1.0;
    }
    // Gauss-Jordan with partial pivoting on [T | I].
    for c in 0..n {
        let p = (c..n)
            .max_by(|&a, &b| m[a][c].abs().total_cmp(&m[b][c].abs()))
            .expect("non-empty");
        let pivot = m[p][c].abs();
        if pivot.is_nan() || pivot <= 1e-12 {
            return f64::NAN;
        }
        m.swap(c, p);
        let d = m[c][c];
        m[c].iter_mut().for_each(|v| *v /= d);
        let row = m[c].clone();
        for (r, other) in m.iter_mut().enumerate() {
            let f = other[c];
            if r != c && f != 0.0 {
                other.iter_mut().zip(&row).for_each(|(v, w)| *v -= f * w);
            }
        }
    }
    let (p00, p11, p01) = (m[0][n], m[1][n + 1], m[0][n + 1]);
    let den = (p00 * p11).sqrt();
    if den.is_nan() || den <= 0.0 {
        return f64::NAN;
    }
    -p01 / den
}

/// Percentile bootstrap interval `(lo, hi)` at level `1 - alpha` of a statistic of `n` items.
///
/// Each of `reps` replicates draws `n` indices in `0..n` with replacement and calls `stat` on
/// them. Replicates whose statistic is not finite (e.g. a resample with a constant input) are
/// dropped; the bounds are the `alpha/2` and `1 - alpha/2` quantiles of the rest with linear
/// interpolation (numpy's default `percentile`). `(NaN, NaN)` when no replicate is finite.
pub fn bootstrap_ci(
    n: usize,
    stat: &dyn Fn(&[usize]) -> f64,
    reps: usize,
    alpha: f64,
    rng: &mut impl Rng,
) -> (f64, f64) {
    let mut values = Vec::with_capacity(reps);
    let mut idx = vec![0usize; n];
    if n > 0 {
        for _ in 0..reps {
            for k in idx.iter_mut() {
                *k = rng.random_range(0..n);
            }
            let v = stat(&idx);
            if v.is_finite() {
                values.push(v);
            }
        }
    }
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    values.sort_by(f64::total_cmp);
    (
        quantile_sorted(&values, alpha / 2.0),
        quantile_sorted(&values, 1.0 - alpha / 2.0),
    )
}

/// Quantile `q` in [0, 1] of sorted, non-empty data, linear interpolation between order
/// statistics at position `q (n - 1)`.
pub(crate) fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// `ln |det m|` of a row-major `n x n` matrix by LU decomposition with partial pivoting in f64.
///
/// `None` when the matrix is singular or not finite. Singular means a pivot no larger than
/// `n * f64::EPSILON * max|m_ij|` (the usual rank-deficiency tolerance), so a matrix with two
/// equal rows is reported singular instead of giving a rounding-noise determinant. The empty
/// matrix has determinant 1.
///
/// # Panics
/// If `m.len() != n * n`.
pub fn log_abs_det(m: &[f64], n: usize) -> Option<f64> {
    assert_eq!(
        m.len(),
        n * n,
        "log_abs_det: matrix of {} values is not {n} x {n}",
        m.len()
    );
    if m.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let scale = m.iter().fold(0.0f64, |acc, v| acc.max(v.abs()));
    if n > 0 && scale == 0.0 {
        return None;
    }
    let tol = n as f64 * f64::EPSILON * scale;
    let mut a = m.to_vec();
    let mut log_det = 0.0;
    for col in 0..n {
        let pivot_row = (col..n)
            .max_by(|&r, &s| a[r * n + col].abs().total_cmp(&a[s * n + col].abs()))
            .expect("non-empty range");
        let pivot = a[pivot_row * n + col];
        if pivot.is_nan() || pivot.abs() <= tol {
            return None;
        }
        if pivot_row != col {
            for k in 0..n {
                a.swap(col * n + k, pivot_row * n + k);
            }
        }
        log_det += pivot.abs().ln();
        for r in col + 1..n {
            let f = a[r * n + col] / pivot;
            if f != 0.0 {
                for k in col + 1..n {
                    a[r * n + k] -= f * a[col * n + k];
                }
            }
        }
    }
    log_det.is_finite().then_some(log_det)
}

/// Median (mean of the two middle values for an even count). NaN for empty input.
pub fn median(x: &[f64]) -> f64 {
    if x.is_empty() {
        return f64::NAN;
    }
    let mut v = x.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ranks_average_ties() {
        assert_eq!(ranks(&[0.0, -0.0, 1.0]), vec![1.5, 1.5, 3.0]);
        assert_eq!(
            ranks(&[10.0, 20.0, 10.0, 30.0, 20.0, 20.0]),
            vec![1.5, 4.0, 1.5, 6.0, 4.0, 4.0]
        );
        assert!(ranks(&[]).is_empty());
    }

    #[test]
    fn pearson_and_spearman_simple() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert!((pearson(&x, &[2.0, 4.0, 6.0, 8.0]) - 1.0).abs() < 1e-15);
        assert!((pearson(&x, &[8.0, 6.0, 4.0, 2.0]) + 1.0).abs() < 1e-15);
        // Monotone but not linear: Spearman 1, Pearson below 1.
        let y = [1.0, 4.0, 9.0, 100.0];
        assert!((spearman(&x, &y) - 1.0).abs() < 1e-15);
        assert!(pearson(&x, &y) < 0.95);
        assert!(pearson(&x, &[1.0; 4]).is_nan());
        assert!(pearson(&[1.0], &[1.0]).is_nan());
    }

    #[test]
    fn kendall_hand_case() {
        // x = [1,2,3,4], y = [1,3,2,4]: pairs (6): one discordant (2,3), five concordant.
        // tau = (5 - 1) / 6.
        let t = kendall_tau_b(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]);
        assert!((t - 4.0 / 6.0).abs() < 1e-15);
        // With a tie in x: x = [1,1,2], y = [1,2,3]: pair (0,1) tied in x only; (0,2), (1,2)
        // concordant. tau_b = 2 / sqrt((2 + 0) (2 + 1)) = 2 / sqrt(6).
        let t = kendall_tau_b(&[1.0, 1.0, 2.0], &[1.0, 2.0, 3.0]);
        assert!((t - 2.0 / 6f64.sqrt()).abs() < 1e-15);
        assert!(kendall_tau_b(&[1.0, 1.0], &[1.0, 2.0]).is_nan());
        // -0.0 ties 0.0.
        assert_eq!(
            kendall_tau_b(&[0.0, -0.0, 1.0], &[1.0, 2.0, 3.0]),
            kendall_tau_b(&[0.0, 0.0, 1.0], &[1.0, 2.0, 3.0])
        );
    }

    #[test]
    fn partial_kendall_reduces_when_z_is_independent() {
        // z constant in rank relation to nothing: with t_xz = t_yz = 0 the partial tau is t_xy.
        let x = [1.0, 2.0, 3.0, 4.0];
        let y = [1.0, 3.0, 2.0, 4.0];
        let z = [1.0, 2.0, 2.0, 1.0]; // tau with x: P = 2, Q = 2 (ties excluded) -> 0.
        assert_eq!(kendall_tau_b(&x, &z), 0.0);
        let tyz = kendall_tau_b(&y, &z);
        let expect = (kendall_tau_b(&x, &y) - 0.0 * tyz) / (1.0 - tyz * tyz).sqrt();
        assert!((partial_kendall(&x, &y, &z) - expect).abs() < 1e-15);
        assert!(partial_kendall(&x, &y, &x).is_nan());
    }

    #[test]
    fn log_abs_det_small() {
        // [[2,1],[1,3]]: det 5. With a row swap needed: [[0,2],[3,1]]: det -6.
        assert!((log_abs_det(&[2.0, 1.0, 1.0, 3.0], 2).unwrap() - 5f64.ln()).abs() < 1e-14);
        assert!((log_abs_det(&[0.0, 2.0, 3.0, 1.0], 2).unwrap() - 6f64.ln()).abs() < 1e-14);
        assert_eq!(log_abs_det(&[1.0, 2.0, 2.0, 4.0], 2), None);
        assert_eq!(log_abs_det(&[0.0; 4], 2), None);
        assert_eq!(log_abs_det(&[f64::NAN, 0.0, 0.0, 1.0], 2), None);
        assert_eq!(log_abs_det(&[], 0), Some(0.0));
        // Two equal rows of awkward values: singular, not rounding noise.
        let m = [0.1, 0.7, 0.3, 0.1, 0.7, 0.3, 0.9, 0.2, 0.5];
        assert_eq!(log_abs_det(&m, 3), None);
    }

    #[test]
    fn median_odd_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn bootstrap_ci_brackets_the_mean() {
        let data: Vec<f64> = (0..200).map(|i| (i % 17) as f64).collect();
        let mean = |idx: &[usize]| idx.iter().map(|&i| data[i]).sum::<f64>() / idx.len() as f64;
        let full = mean(&(0..data.len()).collect::<Vec<_>>());
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (lo, hi) = bootstrap_ci(data.len(), &mean, 500, 0.05, &mut rng);
        assert!(lo < full && full < hi, "{lo} {full} {hi}");
        assert!(hi - lo < 2.0);
        // A statistic that is never finite gives NaN bounds, not a panic.
        let (lo, hi) = bootstrap_ci(10, &|_| f64::NAN, 20, 0.05, &mut rng);
        assert!(lo.is_nan() && hi.is_nan());
    }

    #[test]
    fn quantile_interpolates() {
        let v = [0.0, 10.0, 20.0, 30.0, 40.0];
        assert_eq!(quantile_sorted(&v, 0.5), 20.0);
        assert_eq!(quantile_sorted(&v, 0.125), 5.0);
        assert_eq!(quantile_sorted(&v, 1.0), 40.0);
    }

    #[test]
    fn partial_given_one_control_is_the_first_order_formula() {
        let x = [1.0, 4.0, 2.0, 8.0, 5.0, 7.0, 3.0, 6.0];
        let y = [2.0, 3.0, 1.0, 7.0, 8.0, 6.0, 4.0, 5.0];
        let z = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 7.0];
        let a = partial_kendall(&x, &y, &z);
        let b = partial_kendall_given(&x, &y, &[&z]);
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        // No control: the plain tau-b.
        let t = partial_kendall_given(&x, &y, &[]);
        assert!((t - kendall_tau_b(&x, &y)).abs() < 1e-12);
    }

    #[test]
    fn partial_given_two_controls_removes_what_they_explain() {
        // x and y both follow z1 (plus independent noise), x also z2: their tau is large,
        // and nearly nothing is left given z1 and z2; a constant control is singular.
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let n = 200;
        let z1: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
        let z2: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
        let x: Vec<f64> = (0..n)
            .map(|i| z1[i] + 0.5 * z2[i] + 0.1 * rng.random::<f64>())
            .collect();
        let y: Vec<f64> = (0..n).map(|i| z1[i] + 0.1 * rng.random::<f64>()).collect();
        let raw = kendall_tau_b(&x, &y);
        let p = partial_kendall_given(&x, &y, &[&z1, &z2]);
        // (rank partials do not reach 0 exactly: Kendall's tau is not linear in the noise)
        assert!(raw > 0.5 && p.abs() < raw / 3.0, "tau {raw}, partial {p}");
        let c = vec![2.0; n];
        assert!(partial_kendall_given(&x, &y, &[&z1, &c]).is_nan());
    }
}
