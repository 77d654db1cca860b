//! The `short_train` score inside a search: each live candidate is trained for one short pass
//! over a stratified subset of the training split and scored by its accuracy on a stratified
//! subset of the validation split (SPEC §2.3's "a few hundred training steps"). It is not
//! training-free: it is the measured upper baseline of the ranking benchmark
//! (docs/proxy-ranking.md), offered as a fitness or objective for users who can afford it.
//!
//! [`ShortTrainEvaluator`] wraps a training-free evaluator: that one computes every other
//! requested score and decides whether the candidate is dead or failed (a dead or failed
//! candidate is not trained; its `short_train` is the worst value, 0). The training is the CPU
//! reference trainer, deterministic for the run seed, so a resumed search replays identically.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::Status;
use crate::data::Dataset;
use crate::evolve::config::Config;
use crate::fitness::evaluate::{derive_seed, EvalSettings, Evaluation, Evaluator};
use crate::fitness::{ScoreId, ScoreKind};
use crate::genome::Genome;
use crate::train::TrainConfig;
use crate::train::{self, Network};
use crate::{Error, Result};

/// The settings with the training scores removed (what the training-free evaluator computes).
/// When nothing is left, `params` stands in so the wrapped evaluator still decides liveness.
pub fn training_free_part(settings: &EvalSettings) -> EvalSettings {
    let mut s = settings.clone();
    s.scores.retain(|n| n.training_free());
    if s.scores.is_empty() {
        s.scores.push(ScoreId::Params);
    }
    s
}

/// Whether any requested score trains.
pub fn needs_training(scores: &[ScoreId]) -> bool {
    scores.iter().any(|n| !n.training_free())
}

/// The evaluator of a search or `msenas score` run: `training_free` makes the evaluator of the
/// training-free scores (the caller picks its device: `fitness::evaluate::make_evaluator`),
/// wrapped in a [`ShortTrainEvaluator`] when `short_train` is requested.
pub fn make_search_evaluator(
    cfg: &Config,
    settings: EvalSettings,
    ds: &Dataset,
    training_free: impl FnOnce(EvalSettings) -> Result<Box<dyn Evaluator + Send>>,
) -> Result<Box<dyn Evaluator + Send>> {
    if !needs_training(&settings.scores) {
        return training_free(settings);
    }
    let inner = training_free(training_free_part(&settings))?;
    Ok(Box::new(ShortTrainEvaluator::new(
        inner, settings, cfg, ds,
    )?))
}

/// Adds `short_train` to a training-free evaluator's scores (see the module doc).
pub struct ShortTrainEvaluator {
    inner: Box<dyn Evaluator + Send>,
    settings: EvalSettings,
    /// Training split: the stratified subset; validation split: the stratified subset.
    ds: Dataset,
    train_cfg: TrainConfig,
    seed: u64,
}

impl ShortTrainEvaluator {
    pub fn new(
        inner: Box<dyn Evaluator + Send>,
        settings: EvalSettings,
        cfg: &Config,
        ds: &Dataset,
    ) -> Result<Self> {
        let st = &cfg.search.short_train;
        if ds.train.is_empty() || ds.val.is_empty() {
            return Err(Error::input(format!(
                "short_train: dataset '{}' needs non-empty training and validation splits",
                ds.name
            )));
        }
        let mut rng = StdRng::seed_from_u64(derive_seed(cfg.seed, "short-train-data", 0));
        let train_idx = ds.train.stratified(st.samples, &mut rng);
        let val_idx = ds.val.stratified(st.val_samples, &mut rng);
        let mut sub = ds.clone();
        sub.train = ds.train.subset(&train_idx);
        sub.val = ds.val.subset(&val_idx);
        let mut train_cfg = cfg.train.clone();
        train_cfg.epochs = 1;
        train_cfg.warmup_epochs = 0;
        train_cfg.batch_size = st.batch_size;
        train_cfg.lr = st.lr;
        Ok(ShortTrainEvaluator {
            inner,
            settings,
            ds: sub,
            train_cfg,
            seed: derive_seed(cfg.seed, "short-train", 0),
        })
    }

    /// Validation accuracy after the short pass.
    fn short_train(&self, genome: &Genome) -> Result<f64> {
        let s = &self.settings;
        let net = Network::from_genome(genome.clone(), &self.ds.spec, s.width, s.reduce_kernel)?;
        let work = scratch_dir();
        let result = train::train(&net, &self.ds, &self.train_cfg, self.seed, &work);
        let _ = std::fs::remove_dir_all(&work);
        Ok(result?.best_val_acc)
    }

    fn complete(&self, genome: &Genome, mut ev: Evaluation) -> Evaluation {
        let requested = |n: &str| self.settings.scores.iter().any(|s| s.name() == n);
        // Drop the stand-in score when it was not requested.
        ev.scores.retain(|k, _| requested(k));
        let trained =
            ScoreId::of_kind(ScoreKind::Trained).filter(|s| self.settings.scores.contains(s));
        for id in trained {
            let (name, worst) = (id.name(), id.def().worst);
            if ev.status != Status::Ok {
                ev.scores.insert((*name).into(), worst);
                continue;
            }
            let t0 = Instant::now();
            let v = match self.short_train(genome) {
                Ok(v) if v.is_finite() => v,
                Ok(_) => {
                    note(&mut ev, name, "non-finite validation accuracy");
                    worst
                }
                Err(e) => {
                    note(&mut ev, name, &e.to_string());
                    worst
                }
            };
            ev.scores.insert((*name).into(), v);
            ev.timings
                .insert((*name).into(), t0.elapsed().as_secs_f64());
            if let Some(total) = ev.timings.get_mut("total") {
                *total += t0.elapsed().as_secs_f64();
            }
        }
        ev
    }
}

fn note(ev: &mut Evaluation, name: &str, why: &str) {
    let line = format!("{name}: {why}");
    ev.reason = Some(match ev.reason.take() {
        Some(r) => format!("{r}; {line}"),
        None => line,
    });
}

/// A fresh folder for one short training run (removed afterwards).
fn scratch_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "msenas-short-train-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

impl Evaluator for ShortTrainEvaluator {
    fn device(&self) -> String {
        format!("{} + CPU short training", self.inner.device())
    }
    fn batch_hint(&self) -> usize {
        self.inner.batch_hint()
    }
    fn settings(&self) -> &EvalSettings {
        &self.settings
    }
    fn evaluate(&mut self, genomes: &[Genome]) -> Vec<Evaluation> {
        let evs = self.inner.evaluate(genomes);
        genomes
            .iter()
            .zip(evs)
            .map(|(g, ev)| self.complete(g, ev))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Device;
    use crate::evolve::search;
    use crate::fitness::evaluate::{make_evaluator, Probe};

    /// The training-free evaluator on the CPU engine.
    fn cpu(probe: Probe) -> impl FnOnce(EvalSettings) -> Result<Box<dyn Evaluator + Send>> {
        move |s| make_evaluator(&Device::cpu(), s, probe)
    }

    fn tiny(scores: &[&str]) -> (Config, EvalSettings, Probe, Dataset) {
        let mut cfg = crate::evolve::config::preset("tiny").unwrap();
        cfg.search.device = "cpu".into();
        cfg.search.short_train.samples = 40;
        cfg.search.short_train.val_samples = 30;
        let scores = scores.iter().map(|s| s.parse().unwrap()).collect();
        let (settings, probe, ds) = search::prepare(&cfg, scores).unwrap();
        (cfg, settings, probe, ds)
    }

    #[test]
    fn short_train_is_a_validation_accuracy_and_deterministic() {
        let (cfg, settings, probe, ds) = tiny(&["short_train", "params"]);
        let mut ev =
            make_search_evaluator(&cfg, settings.clone(), &ds, cpu(probe.clone())).unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        let g = cfg.space.sample(&mut rng);
        let a = ev.evaluate(std::slice::from_ref(&g)).pop().unwrap();
        assert_eq!(a.status, Status::Ok, "{:?}", a.reason);
        let acc = a.score("short_train");
        // 30 validation samples: an accuracy is a multiple of 1/30 in [0, 1].
        assert!((0.0..=1.0).contains(&acc), "{acc}");
        assert!(((acc * 30.0) - (acc * 30.0).round()).abs() < 1e-9, "{acc}");
        assert_eq!(a.scores.len(), 2, "{:?}", a.scores);
        let mut ev2 = make_search_evaluator(&cfg, settings, &ds, cpu(probe)).unwrap();
        let b = ev2.evaluate(std::slice::from_ref(&g)).pop().unwrap();
        assert_eq!(a.scores, b.scores);
    }

    #[test]
    fn only_short_train_drops_the_stand_in() {
        let (cfg, settings, probe, ds) = tiny(&["short_train"]);
        let mut ev = make_search_evaluator(&cfg, settings, &ds, cpu(probe)).unwrap();
        let mut rng = StdRng::seed_from_u64(5);
        let g = cfg.space.sample(&mut rng);
        let e = ev.evaluate(std::slice::from_ref(&g)).pop().unwrap();
        assert_eq!(e.scores.keys().collect::<Vec<_>>(), vec!["short_train"]);
    }
}
