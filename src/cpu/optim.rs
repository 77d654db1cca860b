//! AdamW with decoupled weight decay, and the learning-rate schedule (linear warm-up, then a
//! cosine decay to zero), per optimiser step.

use super::BnRunning;
use crate::plan::Plan;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Everything an optimiser step changes, as the checkpoints store it; the same on every engine.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    pub params: Vec<f32>,
    pub adam_m: Vec<f32>,
    pub adam_v: Vec<f32>,
    /// AdamW steps taken.
    pub step: u64,
    pub bn: BnRunning,
}

impl TrainState {
    /// Whether this is a state of `plan`: parameters and both AdamW moments of its parameter
    /// count, running statistics of its batch-norm layers. The one check every engine makes
    /// before it takes a state.
    pub fn check(&self, plan: &Plan) -> Result<()> {
        check_lengths(
            plan,
            &[
                ("parameters", self.params.len()),
                ("AdamW first moments", self.adam_m.len()),
                ("AdamW second moments", self.adam_v.len()),
            ],
        )?;
        check_model(plan, &self.params, &self.bn)
    }
}

fn check_lengths(plan: &Plan, parts: &[(&str, usize)]) -> Result<()> {
    let np = plan.num_params;
    for &(what, n) in parts {
        if n != np {
            return Err(Error::input(format!(
                "train state: {n} {what} for a plan of {np} parameters"
            )));
        }
    }
    Ok(())
}

/// Whether `params` and `bn` are a network of `plan` (its parameter count, its batch-norm
/// layers and their channels): [`TrainState::check`] without the optimiser's moments.
pub fn check_model(plan: &Plan, params: &[f32], bn: &BnRunning) -> Result<()> {
    check_lengths(plan, &[("parameters", params.len())])?;
    if !bn.fits(plan) {
        return Err(Error::input(
            "train state: running statistics of another plan (the batch-norm layers or their channels differ)",
        ));
    }
    Ok(())
}

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

    /// A plan with at least two batch-norm layers of different widths, and its fresh state.
    fn state() -> (Plan, TrainState) {
        use rand::SeedableRng;
        let spec = crate::DataSpec {
            in_ch: 1,
            height: 8,
            width: 8,
            classes: 4,
            timesteps: 2,
            event: false,
        };
        let space = crate::genome::SearchSpace::default();
        let plan = (1..)
            .map(|seed| {
                let g = space.sample(&mut rand::rngs::StdRng::seed_from_u64(seed));
                Plan::compile(&g, &spec, 4, 1).unwrap()
            })
            .find(|p| p.bn_channels.windows(2).any(|w| w[0] != w[1]))
            .unwrap();
        let np = plan.num_params;
        let st = TrainState {
            params: vec![0.0; np],
            adam_m: vec![0.0; np],
            adam_v: vec![0.0; np],
            step: 0,
            bn: BnRunning::new(&plan),
        };
        (plan, st)
    }

    /// Every part of a state is checked against the plan, the statistics layer by layer (a
    /// state of the same total length but other channel counts is another network's).
    #[test]
    fn a_state_of_another_plan_is_refused() {
        let (plan, st) = state();
        st.check(&plan).unwrap();
        let mut short = st.clone();
        short.adam_v.pop();
        let e = short.check(&plan).unwrap_err().to_string();
        assert!(e.contains("AdamW second moments for a plan of"), "{e}");
        let mut long = st.clone();
        long.params.push(0.0);
        let e = long.check(&plan).unwrap_err().to_string();
        assert!(e.contains("parameters for a plan of"), "{e}");
        let mut moved = st.clone();
        let i = plan
            .bn_channels
            .windows(2)
            .position(|w| w[0] != w[1])
            .unwrap();
        for stats in [&mut moved.bn.mean, &mut moved.bn.var] {
            let v = stats[i].pop().unwrap();
            stats[i + 1].push(v);
        }
        let (m, v) = moved.bn.flatten();
        assert_eq!(
            (m.len(), v.len()),
            (st.bn.flatten().0.len(), st.bn.flatten().1.len())
        );
        let e = moved.check(&plan).unwrap_err().to_string();
        assert!(e.contains("running statistics of another plan"), "{e}");
    }

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
