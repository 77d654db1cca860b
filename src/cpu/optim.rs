//! AdamW with decoupled weight decay, and the learning-rate schedule (linear warm-up, then a
//! cosine decay to zero), per optimiser step.

use crate::plan::Plan;
use serde::{Deserialize, Serialize};

/// PyTorch's `torch.optim.AdamW` (betas 0.9 / 0.999, eps 1e-8, no amsgrad), with weight decay
/// only where the plan's `ParamDesc::decay` is set (convolution and linear weights; not batch
/// norm or biases). One step, per element, in f32:
///
/// ```text
/// p <- p - lr * wd * p                      (decay parameters only)
/// m <- b1 m + (1 - b1) g ;  v <- b2 v + (1 - b2) g^2
/// p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamW {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// Steps taken.
    pub step: u64,
    /// First and second moment estimates, aligned with the plan's parameters.
    #[serde(skip)]
    pub m: Vec<f32>,
    #[serde(skip)]
    pub v: Vec<f32>,
    /// Per element: weight decay applies.
    #[serde(skip)]
    pub decay: Vec<bool>,
}

impl AdamW {
    pub fn new(plan: &Plan, weight_decay: f32) -> AdamW {
        let mut decay = vec![false; plan.num_params];
        for p in &plan.params {
            decay[p.offset..p.offset + p.len].fill(p.decay);
        }
        AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            step: 0,
            m: vec![0.0; plan.num_params],
            v: vec![0.0; plan.num_params],
            decay,
        }
    }

    /// One update of `params` with gradient `grad` at learning rate `lr`.
    pub fn update(&mut self, params: &mut [f32], grad: &[f32], lr: f32) {
        assert_eq!(params.len(), self.m.len(), "AdamW: parameter length");
        assert_eq!(grad.len(), self.m.len(), "AdamW: gradient length");
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
        for j in 0..params.len() {
            let g = grad[j];
            if self.decay[j] {
                params[j] -= lr * self.weight_decay * params[j];
            }
            self.m[j] = self.beta1 * self.m[j] + (1.0 - self.beta1) * g;
            self.v[j] = self.beta2 * self.v[j] + (1.0 - self.beta2) * g * g;
            let mhat = self.m[j] / bc1;
            let vhat = self.v[j] / bc2;
            params[j] -= lr * mhat / (vhat.sqrt() + self.eps);
        }
    }
}

/// The peak learning rate: `base_lr * batch / 1024` (SPEC §4).
pub fn peak_lr(base_lr: f32, batch: usize) -> f32 {
    base_lr * batch as f32 / 1024.0
}

/// Learning rate of optimiser step `step` (0-based) of `total` steps with `warmup` warm-up
/// steps: `peak * (step + 1) / warmup` during the warm-up, then
/// `peak * (1 + cos(pi * s / (total - warmup))) / 2` with `s = step - warmup`, so the first
/// step after the warm-up runs at the peak and the rate falls towards zero at the end.
pub fn lr_at(peak: f32, step: u64, total: u64, warmup: u64) -> f32 {
    if step < warmup {
        return peak * (step + 1) as f32 / warmup as f32;
    }
    let span = total.saturating_sub(warmup).max(1);
    let s = (step - warmup).min(span) as f64;
    (f64::from(peak) * 0.5 * (1.0 + (std::f64::consts::PI * s / span as f64).cos())) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_by_hand() {
        assert_eq!(peak_lr(5e-3, 64), 5e-3 * 64.0 / 1024.0);
        // warm-up of 4 steps to 1.0, then cosine over 4 steps.
        let lrs: Vec<f32> = (0..8).map(|s| lr_at(1.0, s, 8, 4)).collect();
        assert_eq!(&lrs[..4], &[0.25, 0.5, 0.75, 1.0]);
        assert!((lrs[4] - 1.0).abs() < 1e-7);
        assert!((lrs[5] - (1.0 + (std::f32::consts::PI / 4.0).cos()) / 2.0).abs() < 1e-6);
        assert!((lrs[6] - 0.5).abs() < 1e-6);
        assert!(lrs[7] < 0.15 && lrs[7] > 0.0);
        // No warm-up.
        assert_eq!(lr_at(2.0, 0, 10, 0), 2.0);
    }

    #[test]
    fn adamw_matches_hand_computation() {
        // Two parameters, one with decay. lr 0.1, wd 0.5, g = (0.2, -0.4).
        let mut opt = AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.5,
            step: 0,
            m: vec![0.0; 2],
            v: vec![0.0; 2],
            decay: vec![true, false],
        };
        let mut p = vec![1.0f32, 1.0];
        opt.update(&mut p, &[0.2, -0.4], 0.1);
        // Step 1: mhat = g, vhat = g^2, so the Adam step is lr * sign(g) (up to eps).
        // p0 = 1 - 0.1*0.5*1 - 0.1 = 0.85; p1 = 1 + 0.1 = 1.1.
        assert!((p[0] - 0.85).abs() < 1e-6, "{p:?}");
        assert!((p[1] - 1.1).abs() < 1e-6, "{p:?}");
        // Step 2 with g = 0: m = 0.9 m, v = 0.999 v; mhat = 0.9*0.1*g/(1-0.81)... checked
        // against the formula in f64.
        opt.update(&mut p, &[0.0, 0.0], 0.1);
        let m = 0.9 * 0.1 * 0.2f64;
        let v = 0.999 * 0.001 * 0.04f64;
        let step = m / (1.0 - 0.81) / ((v / (1.0 - 0.998001)).sqrt() + 1e-8);
        let want0 = 0.85 * (1.0 - 0.1 * 0.5) - 0.1 * step;
        assert!((f64::from(p[0]) - want0).abs() < 1e-5, "{p:?} vs {want0}");
        assert_eq!(opt.step, 2);
    }
}
