//! Batch norm over all `T*B*H*W` values of a channel, followed by an optional sign gate.
//!
//! Layout: `x` is `[n, c, hw]` with `n = T*B` and `hw = H*W`. Statistics are per channel: `mean`
//! and the biased `var` over `n*hw` values. `y = (x - mean) / sqrt(var + eps) * gamma + beta`.
//! Running statistics follow PyTorch (momentum 0.1 in use, unbiased variance).

use rayon::prelude::*;

/// Batch-norm epsilon and running-statistics momentum (PyTorch's).
pub const BN_EPS: f32 = 1e-5;
pub const BN_MOMENTUM: f32 = 0.1;

/// The sign gate applied after normalisation: none, excitatory `max(z, 0)` or inhibitory
/// `min(z, 0)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    None,
    Excitatory,
    Inhibitory,
}

impl Gate {
    /// Applies the gate to one value.
    pub fn apply(self, z: f32) -> f32 {
        match self {
            Gate::None => z,
            Gate::Excitatory => z.max(0.0),
            Gate::Inhibitory => z.min(0.0),
        }
    }
}

/// Per-channel mean and biased variance of `x` (`[n, c, hw]`) over its `n*hw` values.
/// Two passes, accumulated in f64 in the order n, then hw; the results are rounded to f32.
/// A channel with no values gets mean 0 and variance 0.
pub fn bn_stats(x: &[f32], n: usize, c: usize, hw: usize) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), n * c * hw, "bn_stats: x must be [n, c, hw]");
    let count = (n * hw) as f64;
    let mut mean = vec![0.0f32; c];
    let mut var = vec![0.0f32; c];
    if n * hw == 0 {
        return (mean, var);
    }
    // Channels in parallel; each channel's sums run in the same order as a serial loop.
    mean.par_iter_mut()
        .zip(var.par_iter_mut())
        .enumerate()
        .for_each(|(ch, (mean, var))| {
            let values =
                || (0..n).flat_map(move |img| &x[(img * c + ch) * hw..(img * c + ch + 1) * hw]);
            let m = values().map(|&v| f64::from(v)).sum::<f64>() / count;
            let v = values()
                .map(|&v| {
                    let d = f64::from(v) - m;
                    d * d
                })
                .sum::<f64>()
                / count;
            *mean = m as f32;
            *var = v as f32;
        });
    (mean, var)
}

/// Normalises `x` (`[n, c, hw]`) into `out` with per-channel `mean`, `var`, `gamma`, `beta`,
/// then applies `gate`. Per element, in f32: `gate((x - mean) / sqrt(var + eps) * gamma + beta)`.
#[allow(clippy::too_many_arguments)]
pub fn bn_apply(
    x: &[f32],
    n: usize,
    c: usize,
    hw: usize,
    mean: &[f32],
    var: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    gate: Gate,
    out: &mut [f32],
) {
    assert_eq!(x.len(), n * c * hw, "bn_apply: x must be [n, c, hw]");
    assert_eq!(out.len(), x.len(), "bn_apply: out must be [n, c, hw]");
    for (name, p) in [
        ("mean", mean),
        ("var", var),
        ("gamma", gamma),
        ("beta", beta),
    ] {
        assert_eq!(p.len(), c, "bn_apply: {name} must have c entries");
    }
    if c * hw == 0 {
        return;
    }
    out.par_chunks_mut(c * hw)
        .zip(x.par_chunks(c * hw))
        .for_each(|(out, x)| {
            for ch in 0..c {
                let at = ch * hw;
                let sd = (var[ch] + eps).sqrt();
                for (o, &v) in out[at..at + hw].iter_mut().zip(&x[at..at + hw]) {
                    *o = gate.apply((v - mean[ch]) / sd * gamma[ch] + beta[ch]);
                }
            }
        });
}

/// PyTorch's running-statistics update from a batch's `mean` and biased `var` over `count`
/// values: `r_mean = (1 - m) * r_mean + m * mean`, `r_var = (1 - m) * r_var + m * var_unbiased`
/// with `var_unbiased = var * count / (count - 1)` (the biased `var` when `count < 2`).
pub fn bn_update_running(
    running_mean: &mut [f32],
    running_var: &mut [f32],
    mean: &[f32],
    var: &[f32],
    count: usize,
    momentum: f32,
) {
    let c = running_mean.len();
    assert_eq!(
        running_var.len(),
        c,
        "bn_update_running: running_var length"
    );
    assert_eq!(mean.len(), c, "bn_update_running: mean length");
    assert_eq!(var.len(), c, "bn_update_running: var length");
    let correction = if count >= 2 {
        count as f32 / (count - 1) as f32
    } else {
        1.0
    };
    for ch in 0..c {
        running_mean[ch] = (1.0 - momentum) * running_mean[ch] + momentum * mean[ch];
        running_var[ch] = (1.0 - momentum) * running_var[ch] + momentum * (var[ch] * correction);
    }
}

impl From<crate::plan::Gate> for Gate {
    fn from(g: crate::plan::Gate) -> Self {
        match g {
            crate::plan::Gate::None => Gate::None,
            crate::plan::Gate::Excitatory => Gate::Excitatory,
            crate::plan::Gate::Inhibitory => Gate::Inhibitory,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn stats_by_hand() {
        // n = 2, c = 2, hw = 2. Channel 0: 1, 2 | 3, 4 -> mean 2.5, var (2.25+0.25+0.25+2.25)/4 = 1.25.
        // Channel 1: 5, 5 | 5, 5 -> mean 5, var 0.
        let x = [1.0, 2.0, 5.0, 5.0, 3.0, 4.0, 5.0, 5.0];
        let (m, v) = bn_stats(&x, 2, 2, 2);
        assert_eq!(m, [2.5, 5.0]);
        assert_eq!(v, [1.25, 0.0]);
    }

    #[test]
    fn apply_by_hand_with_gates() {
        // One channel, values 1, 2, 3, 4: mean 2.5, var 1.25, eps 0 -> z = (x - 2.5) / sqrt(1.25).
        // gamma 2, beta 1 -> y = 1 + 2 z.
        let x = [1.0, 2.0, 3.0, 4.0];
        let (m, v) = bn_stats(&x, 2, 1, 2);
        let sd = 1.25f32.sqrt();
        let y: Vec<f32> = x.iter().map(|&a| (a - 2.5) / sd * 2.0 + 1.0).collect();
        // (-1.5/1.118 * 2 + 1 = -1.683, -0.5/1.118*2+1 = 0.106, 1.894, 3.683)
        close(&y, &[-1.683_281_6, 0.105_572_81, 1.894_427_2, 3.683_281_6]);
        let mut out = [0.0f32; 4];
        bn_apply(
            &x,
            2,
            1,
            2,
            &m,
            &v,
            &[2.0],
            &[1.0],
            0.0,
            Gate::None,
            &mut out,
        );
        close(&out, &y);
        bn_apply(
            &x,
            2,
            1,
            2,
            &m,
            &v,
            &[2.0],
            &[1.0],
            0.0,
            Gate::Excitatory,
            &mut out,
        );
        close(&out, &[0.0, y[1], y[2], y[3]]);
        bn_apply(
            &x,
            2,
            1,
            2,
            &m,
            &v,
            &[2.0],
            &[1.0],
            0.0,
            Gate::Inhibitory,
            &mut out,
        );
        close(&out, &[y[0], 0.0, 0.0, 0.0]);
        // Default init (gamma 1, beta 0) with eps: a constant channel maps to 0.
        bn_apply(
            &[7.0; 4],
            4,
            1,
            1,
            &[7.0],
            &[0.0],
            &[1.0],
            &[0.0],
            1e-5,
            Gate::None,
            &mut out,
        );
        assert_eq!(out, [0.0; 4]);
    }

    #[test]
    fn running_update_by_hand() {
        // count 4, var 1.25 -> unbiased 5/3. momentum 0.1 from (0, 1):
        // mean = 0.9*0 + 0.1*2.5 = 0.25; var = 0.9*1 + 0.1*5/3 = 1.0666667.
        let mut rm = [0.0f32];
        let mut rv = [1.0f32];
        bn_update_running(&mut rm, &mut rv, &[2.5], &[1.25], 4, 0.1);
        close(&rm, &[0.25]);
        close(&rv, &[1.066_666_7]);
    }
}
