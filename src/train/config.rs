//! The `train` section of a run's configuration (SPEC §4): epochs, batch, learning-rate
//! schedule, loss, surrogate and augmentation.

use serde::{Deserialize, Serialize};

/// The largest batch of any kind (training, probe, evaluation).
pub const MAX_BATCH: usize = 65_536;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Base learning rate; the peak rate used is `lr * batch_size / 1024` (SPEC §4), reached
    /// after `warmup_epochs` of linear warm-up and followed by a cosine decay to zero.
    ///
    /// Default 0.1 (peak 6.25e-3 at batch 64), for short CPU runs: a sampled default-space genome
    /// (C 8, T 4, 16x16 digits) reaches about 98-99% test accuracy in 5 epochs with it, while the
    /// SPEC's paper value 5e-3 (peak 3.1e-4 at batch 64) is too slow for a few epochs (see the
    /// `paper` preset, which uses it for 300-epoch runs).
    pub lr: f32,
    pub weight_decay: f32,
    pub warmup_epochs: usize,
    pub label_smoothing: f32,
    /// `triangle`, `sigmoid` or `atan`.
    pub surrogate: String,
    /// `ce` or `mse`.
    pub loss: String,
    /// Random-crop padding (0 disables) and horizontal flip with probability 1/2, applied to
    /// static images and to event frames (one transform for all time bins of a sample). Leave
    /// `flip` off where left and right carry the class (DVS128 Gesture's hand waves).
    pub crop_pad: usize,
    pub flip: bool,
    /// Event data only: rotation by an angle uniform in `[-deg, deg]` about the image centre,
    /// the same for all time bins of a sample (0 disables; static images are never rotated).
    pub event_rotate_deg: f32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 5,
            batch_size: 64,
            lr: 0.1,
            weight_decay: 0.01,
            warmup_epochs: 1,
            label_smoothing: 0.1,
            surrogate: "triangle".into(),
            loss: "ce".into(),
            crop_pad: 1,
            flip: false,
            event_rotate_deg: 0.0,
        }
    }
}

impl TrainConfig {
    /// This section's problems, each naming its key (`train.…`) and what is allowed.
    pub fn problems(&self) -> Vec<String> {
        let mut errs = Vec::new();
        let mut range = |key: &str, v: usize, lo: usize, hi: usize| {
            if !(lo..=hi).contains(&v) {
                errs.push(format!("{key}: {v} (allowed: {lo}..={hi})"));
            }
        };
        range("train.batch_size", self.batch_size, 1, MAX_BATCH);
        range("train.epochs", self.epochs, 1, 100_000);
        range("train.warmup_epochs", self.warmup_epochs, 0, 100_000);
        range("train.crop_pad", self.crop_pad, 0, 64);
        let ls = self.label_smoothing;
        if !(ls.is_finite() && (0.0..1.0).contains(&ls)) {
            errs.push(format!(
                "train.label_smoothing: {ls} (allowed: a number in [0, 1))"
            ));
        }
        let wd = self.weight_decay;
        if !(wd.is_finite() && wd >= 0.0) {
            errs.push(format!("train.weight_decay: {wd} (allowed: >= 0)"));
        }
        if crate::cpu::grad::Surrogate::parse(&self.surrogate).is_none() {
            errs.push(format!(
                "train.surrogate: '{}' (allowed: triangle, sigmoid, atan, optionally NAME:ALPHA)",
                self.surrogate
            ));
        }
        if !["ce", "mse"].contains(&self.loss.as_str()) {
            errs.push(format!("train.loss: '{}' (allowed: ce, mse)", self.loss));
        }
        let deg = self.event_rotate_deg;
        if !(deg.is_finite() && (0.0..=180.0).contains(&deg)) {
            errs.push(format!("train.event_rotate_deg: {deg} (allowed: 0 to 180)"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            errs.push(format!("train.lr: {} (allowed: > 0)", self.lr));
        }
        errs
    }
}
