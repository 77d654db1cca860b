//! Gradient signals at initialisation through the surrogate (training-free: no weight changes).
//!
//! The first probe batch is cut into `M` interleaved mini-batches; the cross-entropy gradient of
//! each (no label smoothing) is taken with the training reverse pass ([`crate::cpu::backprop`]) at the
//! initial weights, with batch statistics and the given surrogate. From the `M` gradients:
//!
//! - `zico`: for every weight tensor `ln(sum_j mean_m|g_mj| / std_m g_mj)`, summed over tensors;
//! - `grad_norm`: `ln ||mean_m g_m||` over all `P` parameters;
//! - `grad_rms`: `grad_norm - ln(P) / 2 = ln(||mean_m g_m|| / sqrt(P))`, the log root mean square
//!   of the mean gradient per parameter: the norm with the size effect of `sqrt(P)` removed.
//!   Lower is better: the ranking benchmark (docs/proxy-ranking.md) measured networks with
//!   smaller initial gradients per parameter training to higher accuracy.

use super::evaluate::Probe;
use crate::cpu::grad::Surrogate;
use crate::cpu::init_params;
use crate::engine::{cpu_gradients, mean_norm2, ProbeBatch};
use crate::plan::Plan;

/// Value standing in for a gradient score that could not be computed (dead gradients).
pub const GRAD_WORST: f64 = -1e9;

/// Mini-batches the probe batch is cut into for the registry's gradient scores.
pub const GRAD_MINI_BATCHES: usize = 4;

/// The `m` interleaved mini-batches of a probe batch (`x` as `[T, nb, ...]`, labels), `m`
/// clamped to `[2, B / 2]`.
pub fn mini_batches(batch: &ProbeBatch, t: usize, m: usize) -> Vec<(Vec<f32>, Vec<u16>)> {
    let b = batch.len();
    let m = m.clamp(2, (b / 2).max(2));
    let sample_len = batch.input.len() / (t * b);
    (0..m)
        .map(|mb| {
            let idx: Vec<usize> = (mb..b).step_by(m).collect();
            let nb = idx.len();
            let mut x = vec![0.0f32; t * nb * sample_len];
            for step in 0..t {
                for (r, &i) in idx.iter().enumerate() {
                    let src = (step * b + i) * sample_len;
                    let dst = (step * nb + r) * sample_len;
                    x[dst..dst + sample_len].copy_from_slice(&batch.input[src..src + sample_len]);
                }
            }
            (x, idx.iter().map(|&i| batch.labels[i]).collect())
        })
        .collect()
}

/// ZiCo and `grad_norm` (the log-norm of the mean gradient) on the first probe batch, on the
/// CPU reference; each is [`GRAD_WORST`] where every gradient is zero or not finite.
pub fn gradient_scores(
    plan: &Plan,
    probe: &Probe,
    wseed: u64,
    mini_batches_n: usize,
    surrogate: Surrogate,
) -> (f64, f64) {
    let t = probe.timesteps;
    let params = init_params(plan, wseed);
    let batches = mini_batches(&probe.batches[0], t, mini_batches_n);
    let g = cpu_gradients(plan, &params, &batches, t, surrogate, Default::default());
    scores_of(plan, &g)
}

/// ZiCo and `grad_norm` from the mini-batch gradients.
pub fn scores_of(plan: &Plan, grads: &[Vec<f32>]) -> (f64, f64) {
    let m = grads.len().max(1);
    let mut zico = 0.0f64;
    let mut any = false;
    for p in plan.params.iter().filter(|p| p.decay) {
        let mut sum = 0.0f64;
        for j in p.offset..p.offset + p.len {
            let vals: Vec<f64> = grads.iter().map(|g| f64::from(g[j])).collect();
            let mu = vals.iter().sum::<f64>() / m as f64;
            let var = vals.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / m as f64;
            let mabs = vals.iter().map(|v| v.abs()).sum::<f64>() / m as f64;
            let sd = var.sqrt();
            if sd > 0.0 && mabs > 0.0 {
                sum += mabs / sd;
            }
        }
        if sum > 0.0 {
            zico += sum.ln();
            any = true;
        }
    }
    let zico = if any && zico.is_finite() {
        zico
    } else {
        GRAD_WORST
    };
    (zico, grad_norm(mean_norm2(grads, plan.num_params)))
}

/// `grad_norm = ln sqrt(norm2)` from the squared norm of the mean gradient ([`GRAD_WORST`]
/// where it is zero or not finite).
pub fn grad_norm(norm2: f64) -> f64 {
    if norm2 > 0.0 && norm2.is_finite() {
        0.5 * norm2.ln()
    } else {
        GRAD_WORST
    }
}

/// `grad_rms` from `grad_norm` and the parameter count ([`GRAD_WORST`] stays).
pub fn grad_rms(grad_norm: f64, params: usize) -> f64 {
    if grad_norm == GRAD_WORST {
        GRAD_WORST
    } else {
        grad_norm - 0.5 * (params.max(1) as f64).ln()
    }
}
