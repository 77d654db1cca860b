//! Training by backpropagation through time with surrogate gradients (SPEC §4), on the CPU
//! reference: the oracle for the GPU backward kernels.
//!
//! - [`backprop`]: the tape forward pass and the reverse pass over a plan;
//! - [`optim`]: AdamW and the warm-up + cosine schedule;
//! - [`checkpoint`]: the binary checkpoint format (exact resume);
//! - [`eval`]: accuracy, firing rates, synaptic operations, energy, accuracy under noise;
//! - [`train`] / [`train_with`]: the epoch loop writing a run folder:
//!   `state.ckpt` (after every epoch), `model.ckpt` (the best epoch so far), `log.csv`,
//!   `curves.png`, `result.json`.
//!
//! Determinism: every random draw comes from [`rng::SplitMix64`] streams keyed by (seed, epoch),
//! every parallel primitive splits work so that no float sum depends on thread scheduling, so a
//! run is a function of its inputs and a resumed run ends bit-identical to an uninterrupted one.

pub mod checkpoint;
pub mod config;
pub mod eval;
pub mod rng;

pub use crate::cpu::grad::Loss;
pub use crate::cpu::{backprop, optim};

use crate::cpu::grad::Surrogate;
use crate::cpu::{bn_len, unflatten_bn};
use crate::cpu::{BnRunning, LifParams};
use crate::data::{augment_events, Dataset, EventAugment, Split};
use crate::engine::{Device, Model, TrainSession, TrainSettings, TrainState};
use crate::genome::Genome;
use crate::plan::Plan;
use crate::{Error, Result};
pub use checkpoint::EpochLog;
use checkpoint::{Checkpoint, Meta};
pub use config::{TrainConfig, MAX_BATCH};
use optim::{lr_at, peak_lr, AdamW};
use rng::{SplitMix64, STREAM_TRAIN};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use crate::cpu::{BN_EPS, BN_MOMENTUM};

/// A network to train: a plan, and the genome it came from when there is one.
#[derive(Clone, Debug)]
pub struct Network {
    pub genome: Option<Genome>,
    pub plan: Plan,
}

impl Network {
    /// Compile a genome for a dataset's data spec.
    pub fn from_genome(
        genome: Genome,
        spec: &crate::DataSpec,
        width: usize,
        reduce_kernel: usize,
    ) -> Result<Network> {
        let plan = Plan::compile(&genome, spec, width, reduce_kernel)
            .map_err(|e| Error::input(format!("genome does not compile: {e}")))?;
        Ok(Network {
            genome: Some(genome),
            plan,
        })
    }

    pub fn from_plan(plan: Plan) -> Network {
        Network { genome: None, plan }
    }
}

/// What a training run returns (also written as `result.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainResult {
    pub dataset: String,
    pub key: String,
    pub params: usize,
    pub epochs: usize,
    /// 1-based epoch whose weights were kept (highest validation accuracy, earliest on ties).
    pub best_epoch: usize,
    #[serde(deserialize_with = "checkpoint::de_nan")]
    pub best_val_acc: f64,
    /// Top-1 accuracy on the test split with the best weights, measured once at the end.
    #[serde(deserialize_with = "checkpoint::de_nan")]
    pub test_acc: f64,
    #[serde(deserialize_with = "checkpoint::de_nan")]
    pub test_loss: f64,
    pub history: Vec<EpochLog>,
    /// Wall time of this call (a resumed run counts only its own part).
    pub wall_s: f64,
    pub out_dir: PathBuf,
}

/// One training run: what to train on what, with which settings and seed, written to which
/// folder. [`TrainJob::run`] trains it on a [`Device`] and reports progress to a
/// [`TrainObserver`]; the library prints nothing.
#[derive(Clone, Debug)]
pub struct TrainJob<'a> {
    pub network: &'a Network,
    pub dataset: &'a Dataset,
    pub config: &'a TrainConfig,
    pub seed: u64,
    pub out_dir: PathBuf,
    /// Continue from `out_dir/state.ckpt`, which must have been written by the same network,
    /// dataset, config and seed.
    pub resume: bool,
    /// Return after this many completed epochs (counted from epoch 1), as if killed after the
    /// checkpoint was written; the result's test numbers are then NaN.
    pub stop_after: Option<usize>,
}

impl<'a> TrainJob<'a> {
    /// A fresh run (no resume, no early stop).
    pub fn new(
        network: &'a Network,
        dataset: &'a Dataset,
        config: &'a TrainConfig,
        seed: u64,
        out_dir: impl Into<PathBuf>,
    ) -> Self {
        TrainJob {
            network,
            dataset,
            config,
            seed,
            out_dir: out_dir.into(),
            resume: false,
            stop_after: None,
        }
    }

    /// Continue from the folder's `state.ckpt` (see [`TrainJob::resume`]).
    pub fn resuming(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// Stop after this many completed epochs (see [`TrainJob::stop_after`]).
    pub fn stopping_after(mut self, epochs: Option<usize>) -> Self {
        self.stop_after = epochs;
        self
    }

    /// Train on `device` (see [`train_with`] for what is written).
    pub fn run(&self, device: &Device, observer: &mut dyn TrainObserver) -> Result<TrainResult> {
        train_with(self, device, observer)
    }
}

/// Progress of the epoch in flight, after each step.
#[derive(Clone, Copy, Debug)]
pub struct StepProgress {
    pub epoch: usize,
    pub epochs: usize,
    /// Steps done in this epoch, and its number of steps.
    pub step: u64,
    pub steps: u64,
    /// Mean training loss and accuracy over this epoch's samples so far.
    pub loss: f64,
    pub acc: f64,
    pub images_per_s: f64,
}

/// Receives a training run's progress (the CLI draws a progress bar from it).
pub trait TrainObserver {
    fn epoch_started(&mut self, _epoch: usize, _epochs: usize, _steps: u64) {}
    fn step(&mut self, _p: &StepProgress) {}
    fn epoch_finished(&mut self, _log: &EpochLog) {}
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl TrainObserver for Silent {}

/// Resolved training settings.
struct Settings {
    loss: Loss,
    surrogate: Surrogate,
    lif: LifParams,
}

/// The configuration checked ([`TrainConfig::problems`], every problem in one line) and its
/// names resolved.
fn settings(cfg: &TrainConfig) -> Result<Settings> {
    let problems = cfg.problems();
    if !problems.is_empty() {
        return Err(Error::input(problems.join("; ")));
    }
    let loss = Loss::parse(&cfg.loss).expect("checked by problems()");
    let surrogate = Surrogate::parse(&cfg.surrogate).expect("checked by problems()");
    Ok(Settings {
        loss,
        surrogate,
        lif: LifParams::default(),
    })
}

/// A new training run of a genome: the dataset loaded at the settings' time steps (and
/// `size`, when given), the network compiled at the settings' width and reduce kernel, and the
/// destination checked (a folder that already holds a training run is refused). The CLI's
/// `msenas train GENOME` and Python's `msenas.train(genome, ...)` both start here.
pub struct NewRun {
    pub network: Network,
    pub dataset: Dataset,
    pub config: TrainConfig,
    pub seed: u64,
}

impl NewRun {
    /// `train` is the training configuration, `space` supplies `width`, `timesteps` and
    /// `reduce_kernel`; `data_dir` is needed for the sets that are not bundled.
    #[allow(clippy::too_many_arguments)]
    pub fn prepare(
        genome: Genome,
        train: &TrainConfig,
        space: &crate::genome::SearchSpace,
        dataset: &str,
        data_dir: Option<PathBuf>,
        size: Option<usize>,
        seed: u64,
        out: &Path,
    ) -> Result<NewRun> {
        if out.join("state.ckpt").exists() {
            return Err(Error::input(format!(
                "{}: already holds a training run (resume it, or choose another output folder)",
                out.display()
            )));
        }
        let timesteps = space.timesteps;
        let dataset = crate::data::load(
            dataset,
            &crate::data::DataOptions {
                data_dir,
                timesteps,
                size,
                seed,
                ..Default::default()
            },
        )?;
        let mut spec = dataset.spec;
        spec.timesteps = timesteps;
        let network = Network::from_genome(genome, &spec, space.width, space.reduce_kernel)?;
        Ok(NewRun {
            network,
            dataset,
            config: train.clone(),
            seed,
        })
    }
}

/// What a stopped training run needs to continue: read back from its folder's
/// `state.ckpt` (network, settings, seed) and the dataset it was trained on.
pub struct ResumedRun {
    pub network: Network,
    pub dataset: Dataset,
    pub config: TrainConfig,
    pub seed: u64,
}

impl ResumedRun {
    /// Read `dir/state.ckpt` and load its dataset (from `data_dir` when it is not bundled).
    pub fn read(dir: &Path, data_dir: Option<PathBuf>) -> Result<ResumedRun> {
        let path = dir.join("state.ckpt");
        let ck = Checkpoint::read(&path)?;
        let m = ck.meta;
        let genome = match &m.genome {
            Some(v) => Some(
                Genome::from_json(&v.to_string())
                    .map_err(|e| Error::input(format!("{}: genome: {e}", path.display())))?,
            ),
            None => None,
        };
        let dataset = crate::data::load(
            &m.dataset,
            &crate::data::DataOptions {
                data_dir,
                timesteps: m.plan.spec.timesteps,
                size: Some(m.plan.spec.height),
                seed: m.seed,
                ..Default::default()
            },
        )?;
        Ok(ResumedRun {
            network: Network {
                genome,
                plan: m.plan,
            },
            dataset,
            config: m.config,
            seed: m.seed,
        })
    }
}

/// Check that a plan was compiled for this dataset's data spec.
pub fn check_spec(plan: &Plan, ds: &Dataset) -> Result<()> {
    let (p, d) = (&plan.spec, &ds.spec);
    if (p.in_ch, p.height, p.width, p.classes) != (d.in_ch, d.height, d.width, d.classes) {
        return Err(Error::input(format!(
            "the network expects {} channels of {}x{} and {} classes; dataset '{}' has {} channels of {}x{} and {} classes",
            p.in_ch, p.height, p.width, p.classes, ds.name, d.in_ch, d.height, d.width, d.classes
        )));
    }
    if ds.train.frames > 1 && ds.train.frames != p.timesteps {
        return Err(Error::input(format!(
            "dataset '{}' was framed into {} time steps, the network runs {}",
            ds.name, ds.train.frames, p.timesteps
        )));
    }
    Ok(())
}

/// Loss and top-1 accuracy of a split through a trained [`Model`] (evaluation mode: running
/// batch-norm statistics), in batches of `batch` samples, on the model's device.
pub fn evaluate_split(
    model: &mut Model,
    split: &Split,
    batch: usize,
    loss: Loss,
    smoothing: f32,
) -> Result<(f64, f64)> {
    let spec = model.plan().spec;
    split_loss_accuracy(split, spec, batch, loss, smoothing, |x, b| {
        model.logits(x, b)
    })
}

/// [`evaluate_split`] through a training session with its current weights and running
/// statistics, in batches of [`TrainSession::eval_batch`].
pub fn session_evaluate_split(
    g: &mut TrainSession,
    plan: &Plan,
    split: &Split,
    loss: Loss,
    smoothing: f32,
) -> Result<(f64, f64)> {
    let batch = g.eval_batch();
    split_loss_accuracy(split, plan.spec, batch, loss, smoothing, |x, b| {
        g.evaluate(x, b)
    })
}

/// Mean loss and accuracy of `split` in batches of `batch`, with `logits(x, b)` giving the
/// `[b, classes]` logits of a batch.
fn split_loss_accuracy(
    split: &Split,
    spec: crate::DataSpec,
    batch: usize,
    loss: Loss,
    smoothing: f32,
    mut logits: impl FnMut(&[f32], usize) -> Result<Vec<f32>>,
) -> Result<(f64, f64)> {
    if split.is_empty() {
        return Ok((f64::NAN, f64::NAN));
    }
    let (t, k) = (spec.timesteps, spec.classes);
    let idx: Vec<usize> = (0..split.len()).collect();
    let (mut total_loss, mut correct) = (0.0f64, 0usize);
    for chunk in idx.chunks(batch.max(1)) {
        let x = split.batch(chunk, if split.frames == 1 { 1 } else { t });
        let out = logits(&x, chunk.len())?;
        let labels = split.labels_of(chunk);
        let (l, _) = loss.eval(&out, &labels, k, smoothing);
        total_loss += f64::from(l) * chunk.len() as f64;
        correct += count_correct(&out, &labels, k);
    }
    Ok((
        total_loss / split.len() as f64,
        correct as f64 / split.len() as f64,
    ))
}

/// Rows whose largest logit (first on ties) is the label.
pub fn count_correct(logits: &[f32], labels: &[u16], k: usize) -> usize {
    labels
        .iter()
        .enumerate()
        .filter(|&(r, &l)| argmax(&logits[r * k..(r + 1) * k]) == l as usize)
        .count()
}

pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}

/// Train `net` on `ds` on the CPU engine, silently (see [`train_with`]).
pub fn train(
    net: &Network,
    ds: &Dataset,
    cfg: &TrainConfig,
    seed: u64,
    out_dir: &Path,
) -> Result<TrainResult> {
    TrainJob::new(net, ds, cfg, seed, out_dir).run(&Device::cpu(), &mut Silent)
}

/// The whole state of a run between epochs.
struct State {
    params: Vec<f32>,
    bn: BnRunning,
    opt: AdamW,
    epoch: usize,
    best_epoch: usize,
    best_val_acc: f64,
    best_params: Vec<f32>,
    best_bn: BnRunning,
    history: Vec<EpochLog>,
}

/// Train with the epoch loop: each epoch shuffles the training split (seeded by (seed, epoch)),
/// augments every sample (random crop with `crop_pad` zero padding, horizontal flip when
/// `flip`, and for event data a rotation up to `event_rotate_deg`; one transform for all time
/// bins of a sample), runs forward + backward per batch, updates batch-norm running statistics and takes an
/// AdamW step at the scheduled rate; then measures the validation split and keeps the best
/// epoch's weights, writes `state.ckpt`, `model.ckpt` (when the best changed), `log.csv` and
/// `curves.png`. After the last epoch the test split is measured once with the best weights and
/// `result.json` is written. With `resume`, the run continues from `out_dir/state.ckpt`, which
/// must have been written by the same network, dataset, config and seed.
pub fn train_with(
    job: &TrainJob,
    device: &Device,
    observer: &mut dyn TrainObserver,
) -> Result<TrainResult> {
    let start = Instant::now();
    let (net, ds, cfg, seed) = (job.network, job.dataset, job.config, job.seed);
    let (out_dir, resume) = (job.out_dir.as_path(), job.resume);
    let plan = &net.plan;
    let st = settings(cfg)?;
    check_spec(plan, ds)?;
    for (split, s) in [
        ("training", &ds.train),
        ("validation", &ds.val),
        ("test", &ds.test),
    ] {
        if s.is_empty() {
            return Err(Error::input(format!(
                "dataset '{}' has no {split} samples (training needs all three splits)",
                ds.name
            )));
        }
    }
    if cfg.batch_size == 0 {
        return Err(Error::input("train.batch_size: 0 (allowed: >= 1)"));
    }
    plan.check_workload(cfg.batch_size.min(ds.train.len()), plan.spec.timesteps)
        .map_err(|e| Error::input(format!("train.batch_size: {e}")))?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    // One process per training folder.
    let _lock = crate::fsio::DirLock::acquire(out_dir)?;
    let genome_json: Option<serde_json::Value> = net
        .genome
        .as_ref()
        .map(|g| serde_json::from_str(&g.to_json()).expect("genome JSON"));
    let state_path = out_dir.join("state.ckpt");
    let mut s = if resume && state_path.exists() {
        load_state(&state_path, plan, cfg, seed, &ds.name)?
    } else if resume {
        return Err(Error::input(format!(
            "{}: no checkpoint to resume from",
            state_path.display()
        )));
    } else {
        let params = crate::cpu::init_params(plan, seed);
        State {
            bn: BnRunning::new(plan),
            opt: AdamW::new(plan, cfg.weight_decay),
            epoch: 0,
            best_epoch: 0,
            best_val_acc: -1.0,
            best_params: params.clone(),
            best_bn: BnRunning::new(plan),
            history: Vec::new(),
            params,
        }
    };

    let t = plan.spec.timesteps;
    let k = plan.spec.classes;
    let n_train = ds.train.len();
    let bs = cfg.batch_size.min(n_train);
    let steps_per_epoch = n_train.div_ceil(bs) as u64;
    let total_steps = steps_per_epoch * cfg.epochs as u64;
    let warmup = steps_per_epoch * cfg.warmup_epochs as u64;
    let peak = peak_lr(cfg.lr, bs);
    let static_images = ds.train.frames == 1;
    let aug = train_augment(cfg, static_images);
    let settings = TrainSettings {
        loss: st.loss,
        label_smoothing: cfg.label_smoothing,
        surrogate: st.surrogate,
        lif: st.lif,
        eps: BN_EPS,
        momentum: BN_MOMENTUM,
        weight_decay: cfg.weight_decay,
    };
    let mut session = TrainSession::new(
        device,
        plan,
        bs,
        settings,
        TrainState {
            params: s.params.clone(),
            adam_m: s.opt.m.clone(),
            adam_v: s.opt.v.clone(),
            step: s.opt.step,
            bn: s.bn.clone(),
        },
    )?;
    let meta_base = |kind: &str, epoch: usize, s: &State| Meta {
        kind: kind.into(),
        genome: genome_json.clone(),
        plan: plan.clone(),
        config: cfg.clone(),
        dataset: ds.name.clone(),
        seed,
        epoch,
        best_epoch: s.best_epoch,
        best_val_acc: s.best_val_acc,
        history: s.history.clone(),
        adam_step: s.opt.step,
        rng_state: SplitMix64::for_epoch(seed, s.epoch as u64, STREAM_TRAIN).state,
        sections: Vec::new(),
    };

    while s.epoch < cfg.epochs {
        if job.stop_after.is_some_and(|e| s.epoch >= e) {
            break;
        }
        let epoch_start = Instant::now();
        let mut rng = SplitMix64::for_epoch(seed, s.epoch as u64, STREAM_TRAIN);
        let mut order: Vec<usize> = (0..n_train).collect();
        rng.shuffle(&mut order);
        observer.epoch_started(s.epoch + 1, cfg.epochs, steps_per_epoch);
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut lr = 0.0;
        for chunk in order.chunks(bs) {
            let b = chunk.len();
            let x = augmented_batch(&ds.train, chunk, t, aug.as_ref(), &mut rng);
            let labels = ds.train.labels_of(chunk);
            lr = lr_at(peak, s.opt.step, total_steps, warmup);
            let out = session.step(&x, &labels, lr)?;
            if !out.loss.is_finite() {
                return Err(diverged(out_dir, s.epoch, s.opt.step, "the loss", out.loss));
            }
            correct += count_correct(&out.logits, &labels, k);
            loss_sum += out.loss * b as f64;
            seen += b;
            s.opt.step += 1;
            observer.step(&StepProgress {
                epoch: s.epoch + 1,
                epochs: cfg.epochs,
                step: seen.div_ceil(bs) as u64,
                steps: steps_per_epoch,
                loss: loss_sum / seen as f64,
                acc: correct as f64 / seen as f64,
                images_per_s: seen as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9),
            });
        }
        let train_secs = epoch_start.elapsed().as_secs_f64();
        let state = session.state()?;
        debug_assert_eq!(state.step, s.opt.step);
        s.params = state.params;
        s.opt.m = state.adam_m;
        s.opt.v = state.adam_v;
        s.bn = state.bn;
        if let Some(i) = s.params.iter().position(|v| !v.is_finite()) {
            return Err(diverged(
                out_dir,
                s.epoch,
                s.opt.step,
                &format!("weight {i}"),
                s.params[i] as f64,
            ));
        }
        let (val_loss, val_acc) =
            session_evaluate_split(&mut session, plan, &ds.val, st.loss, cfg.label_smoothing)?;
        s.epoch += 1;
        // With no validation split every epoch counts as better (the last one is kept).
        let improved = val_acc.is_nan() || val_acc > s.best_val_acc;
        if improved {
            s.best_val_acc = val_acc;
            s.best_epoch = s.epoch;
            s.best_params = s.params.clone();
            s.best_bn = s.bn.clone();
        }
        s.history.push(EpochLog {
            epoch: s.epoch,
            lr,
            train_loss: loss_sum / seen as f64,
            train_acc: correct as f64 / seen as f64,
            val_loss,
            val_acc,
            images_per_s: seen as f64 / train_secs.max(1e-9),
            seconds: epoch_start.elapsed().as_secs_f64(),
        });
        observer.epoch_finished(s.history.last().expect("this epoch's log"));
        if improved {
            model_checkpoint(meta_base("model", s.epoch, &s), &s.best_params, &s.best_bn)
                .write(&out_dir.join("model.ckpt"))?;
        }
        state_checkpoint(meta_base("state", s.epoch, &s), &s).write(&state_path)?;
        write_log(out_dir, &s.history)?;
    }

    let finished = s.epoch >= cfg.epochs;
    let (test_loss, test_acc) = if finished {
        session.set_model(&s.best_params, &s.best_bn)?;
        session_evaluate_split(&mut session, plan, &ds.test, st.loss, cfg.label_smoothing)?
    } else {
        (f64::NAN, f64::NAN)
    };
    let result = TrainResult {
        dataset: ds.name.clone(),
        key: plan.key.clone(),
        params: plan.num_params,
        epochs: s.epoch,
        best_epoch: s.best_epoch,
        best_val_acc: s.best_val_acc,
        test_acc,
        test_loss,
        history: s.history.clone(),
        wall_s: start.elapsed().as_secs_f64(),
        out_dir: out_dir.to_path_buf(),
    };
    if finished {
        let json = serde_json::to_string_pretty(&result).expect("result serialises") + "\n";
        crate::fsio::write_atomic(&out_dir.join("result.json"), json.as_bytes())?;
    }
    Ok(result)
}

/// The augmentation of a run's training batches, `None` when it changes nothing: random crop
/// and flip from `crop_pad` and `flip`, and for event data (`static_images` false) the rotation
/// of `event_rotate_deg`.
fn train_augment(cfg: &TrainConfig, static_images: bool) -> Option<EventAugment> {
    let aug = EventAugment {
        pad: cfg.crop_pad,
        flip: cfg.flip,
        max_rotate_deg: if static_images {
            0.0
        } else {
            cfg.event_rotate_deg
        },
    };
    (aug.pad > 0 || aug.flip || aug.max_rotate_deg > 0.0).then_some(aug)
}

/// The training batch of samples `idx`, `[T, B, C, H, W]` for event data (one frame per time
/// step) or `[B, C, H, W]` for static images, augmented with `aug`: one random transform per
/// sample, the same for all its frames. Draws from `rng` per sample, in order (see
/// [`augment_events`]).
fn augmented_batch(
    split: &Split,
    idx: &[usize],
    t: usize,
    aug: Option<&EventAugment>,
    rng: &mut SplitMix64,
) -> Vec<f32> {
    let frames = if split.frames == 1 { 1 } else { t };
    let mut x = split.batch(idx, frames);
    if let Some(aug) = aug {
        let (c, h, w) = (split.c, split.h, split.w);
        augment_events(&mut x, frames, idx.len(), c, h, w, aug, rng);
    }
    x
}

fn model_checkpoint(meta: Meta, params: &[f32], bn: &BnRunning) -> Checkpoint {
    let (m, v) = bn.flatten();
    Checkpoint {
        meta,
        sections: vec![
            ("params".into(), params.to_vec()),
            ("bn_mean".into(), m),
            ("bn_var".into(), v),
        ],
    }
}

fn state_checkpoint(meta: Meta, s: &State) -> Checkpoint {
    let mut ck = model_checkpoint(meta, &s.params, &s.bn);
    let (bm, bv) = s.best_bn.flatten();
    ck.sections.extend([
        ("adam_m".into(), s.opt.m.clone()),
        ("adam_v".into(), s.opt.v.clone()),
        ("best_params".into(), s.best_params.clone()),
        ("best_bn_mean".into(), bm),
        ("best_bn_var".into(), bv),
    ]);
    ck
}

/// Training stopped on a non-finite number: the error says where and what is kept.
fn diverged(out_dir: &Path, epoch: usize, step: u64, what: &str, value: f64) -> Error {
    Error::Diverged(format!(
        "training diverged in epoch {} (optimiser step {step}): {what} is {value}; nothing of \
         this epoch was saved ({} holds the state after epoch {epoch}); lower train.lr or \
         change the network",
        epoch + 1,
        out_dir.join("state.ckpt").display()
    ))
}

fn load_state(
    path: &Path,
    plan: &Plan,
    cfg: &TrainConfig,
    seed: u64,
    dataset: &str,
) -> Result<State> {
    let ck = Checkpoint::read(path)?;
    let m = &ck.meta;
    let mismatch = |what: &str| {
        Error::input(format!(
            "{}: the checkpoint was written with a different {what}; resume with the same settings",
            path.display()
        ))
    };
    if m.kind != "state" {
        return Err(Error::input(format!(
            "{}: not a training-state checkpoint",
            path.display()
        )));
    }
    if m.plan != *plan {
        return Err(mismatch("network"));
    }
    if m.config != *cfg {
        return Err(mismatch("training config"));
    }
    if m.seed != seed {
        return Err(mismatch("seed"));
    }
    if m.dataset != dataset {
        return Err(mismatch("dataset"));
    }
    let np = plan.num_params;
    let nb = bn_len(plan);
    let mut opt = AdamW::new(plan, cfg.weight_decay);
    opt.step = m.adam_step;
    opt.m = ck.need("adam_m", np, path)?;
    opt.v = ck.need("adam_v", np, path)?;
    Ok(State {
        params: ck.need("params", np, path)?,
        bn: unflatten_bn(
            plan,
            &ck.need("bn_mean", nb, path)?,
            &ck.need("bn_var", nb, path)?,
        ),
        opt,
        epoch: m.epoch,
        best_epoch: m.best_epoch,
        best_val_acc: m.best_val_acc,
        best_params: ck.need("best_params", np, path)?,
        best_bn: unflatten_bn(
            plan,
            &ck.need("best_bn_mean", nb, path)?,
            &ck.need("best_bn_var", nb, path)?,
        ),
        history: m.history.clone(),
    })
}

/// `log.csv` (one row per epoch) and `curves.png` (loss and accuracy per epoch).
fn write_log(out_dir: &Path, history: &[EpochLog]) -> Result<()> {
    let mut csv =
        String::from("epoch,lr,train_loss,train_acc,val_loss,val_acc,images_per_s,seconds\n");
    for e in history {
        csv += &format!(
            "{},{:e},{:.6},{:.6},{:.6},{:.6},{:.2},{:.3}\n",
            e.epoch,
            e.lr,
            e.train_loss,
            e.train_acc,
            e.val_loss,
            e.val_acc,
            e.images_per_s,
            e.seconds
        );
    }
    crate::fsio::write_atomic(&out_dir.join("log.csv"), csv.as_bytes())?;
    use crate::report::plot::{line_chart, Series};
    let pts = |f: &dyn Fn(&EpochLog) -> f64| -> Vec<(f64, f64)> {
        history.iter().map(|e| (e.epoch as f64, f(e))).collect()
    };
    line_chart(
        &out_dir.join("curves.png"),
        "training curves",
        "epoch",
        "loss / accuracy",
        &[
            Series::new("train loss", pts(&|e| e.train_loss)),
            Series::new("val loss", pts(&|e| e.val_loss)),
            Series::new("train accuracy", pts(&|e| e.train_acc)),
            Series::new("val accuracy", pts(&|e| e.val_acc)),
        ],
    )
}

/// The model file a path names: a checkpoint file itself, or a training folder's `model.ckpt`.
pub fn model_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("model.ckpt")
    } else {
        path.to_path_buf()
    }
}

/// Read a model checkpoint (or the best weights of a training-state checkpoint): the plan, the
/// weights and the batch-norm running statistics.
pub fn load_model(path: &Path) -> Result<(Checkpoint, Vec<f32>, BnRunning)> {
    let ck = Checkpoint::read(path)?;
    let plan = &ck.meta.plan;
    let np = plan.num_params;
    let nb = bn_len(plan);
    let (p, m, v) = if ck.meta.kind == "state" {
        ("best_params", "best_bn_mean", "best_bn_var")
    } else {
        ("params", "bn_mean", "bn_var")
    };
    let params = ck.need(p, np, path)?;
    let bn = unflatten_bn(plan, &ck.need(m, nb, path)?, &ck.need(v, nb, path)?);
    Ok((ck, params, bn))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{load, DataOptions};

    /// The `(dy, dx, flip)` crop offsets and flip (within `pad`) mapping every frame of `raw`
    /// (`[t][c, h, w]` planes of one sample) onto `aug`, with zeros outside.
    fn find_shift(
        raw: &[Vec<f32>],
        aug: &[Vec<f32>],
        c: usize,
        h: usize,
        w: usize,
        pad: isize,
    ) -> Vec<(isize, isize, bool)> {
        let mut found = Vec::new();
        for dy in -pad..=pad {
            for dx in -pad..=pad {
                for flip in [false, true] {
                    let fits = raw.iter().zip(aug).all(|(r, a)| {
                        (0..c * h * w).all(|i| {
                            let (ci, y, x) = (i / (h * w), (i / w) % h, i % w);
                            let fx = if flip { w - 1 - x } else { x };
                            let (sy, sx) = (y as isize + dy, fx as isize + dx);
                            let v = if sy >= 0 && sy < h as isize && sx >= 0 && sx < w as isize {
                                r[(ci * h + sy as usize) * w + sx as usize]
                            } else {
                                0.0
                            };
                            a[i] == v
                        })
                    });
                    if fits {
                        found.push((dy, dx, flip));
                    }
                }
            }
        }
        found
    }

    #[test]
    fn event_batches_are_augmented_alike_over_time_and_deterministically() {
        let t = 4;
        let opts = DataOptions {
            timesteps: t,
            size: Some(12),
            ..Default::default()
        };
        let ds = load("digits_dvs", &opts).unwrap();
        let split = &ds.train;
        assert_eq!(split.frames, t);
        let cfg = TrainConfig {
            crop_pad: 2,
            flip: true,
            ..TrainConfig::default()
        };
        let aug = train_augment(&cfg, false).unwrap();
        assert_eq!(aug.max_rotate_deg, 0.0);
        let idx: Vec<usize> = (0..16).collect();
        let (b, c, h, w) = (idx.len(), split.c, split.h, split.w);
        let raw = split.batch(&idx, t);
        let mut rng = SplitMix64::for_epoch(3, 0, STREAM_TRAIN);
        let x = augmented_batch(split, &idx, t, Some(&aug), &mut rng);
        assert_eq!(x.len(), raw.len());
        assert_ne!(x, raw, "augmentation changed nothing");
        // Each sample: one crop offset and flip for all its time bins.
        let fl = c * h * w;
        let frames = |v: &[f32], bi: usize| -> Vec<Vec<f32>> {
            (0..t)
                .map(|ti| v[(ti * b + bi) * fl..(ti * b + bi + 1) * fl].to_vec())
                .collect()
        };
        let mut moved = 0;
        for bi in 0..b {
            let (r, a) = (frames(&raw, bi), frames(&x, bi));
            assert!(r.iter().any(|f| f.iter().any(|&v| v != 0.0)));
            let fits = find_shift(&r, &a, c, h, w, 2);
            assert!(
                !fits.is_empty(),
                "sample {bi}: no single shift maps all frames"
            );
            if !fits.contains(&(0, 0, false)) {
                moved += 1;
            }
        }
        assert!(moved > b / 2, "only {moved} of {b} samples moved");
        // The same seed gives the same batch; another seed another.
        let mut rng = SplitMix64::for_epoch(3, 0, STREAM_TRAIN);
        assert_eq!(augmented_batch(split, &idx, t, Some(&aug), &mut rng), x);
        let mut rng = SplitMix64::for_epoch(4, 0, STREAM_TRAIN);
        assert_ne!(augmented_batch(split, &idx, t, Some(&aug), &mut rng), x);
        // Rotation (event data only) keeps the shape and stays deterministic.
        let rot = TrainConfig {
            event_rotate_deg: 10.0,
            ..cfg.clone()
        };
        assert_eq!(train_augment(&rot, true), train_augment(&cfg, true));
        let aug = train_augment(&rot, false).unwrap();
        assert_eq!(aug.max_rotate_deg, 10.0);
        let mut rng = SplitMix64::for_epoch(3, 0, STREAM_TRAIN);
        let r1 = augmented_batch(split, &idx, t, Some(&aug), &mut rng);
        let mut rng = SplitMix64::for_epoch(3, 0, STREAM_TRAIN);
        assert_eq!(augmented_batch(split, &idx, t, Some(&aug), &mut rng), r1);
        assert!(r1.iter().all(|v| v.is_finite()));
        // Nothing to do: no augmentation.
        let none = TrainConfig {
            crop_pad: 0,
            ..TrainConfig::default()
        };
        assert!(train_augment(&none, false).is_none());
    }
}
