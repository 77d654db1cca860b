//! Scoring candidates without training (SPEC §2.3): the probe, the [`Evaluator`] trait and the
//! CPU reference evaluator.
//!
//! An evaluation compiles the genome into a plan, initialises its weights from the
//! counter-based generator, runs the probe batch(es) with spikes recorded, reduces every LIF
//! population to integer [`PopulationStats`] and computes the requested scores from them. The
//! part that produces spikes is a [`SpikeBackend`]; everything after the integer statistics is
//! shared ([`ScoringEvaluator`]), so a GPU backend producing the same statistics gives the same
//! scores. An executor that batches whole generations can implement [`Evaluator`] directly.
//!
//! Rules:
//! - scores are averaged over `probe batches x weight seeds`; a score that fails in any run
//!   (e.g. a singular `sahd` kernel) takes its documented worst value and is named in `reason`;
//! - **dead network**: if the head population emits the same spike pattern for every probe
//!   sample in any run, every score is its worst value and the status is `dead`;
//! - **failure**: a plan that does not compile, non-finite logits or a panicking executor give
//!   status `failed` with the reason, every score at its worst value.

use std::collections::BTreeMap;
use std::time::Instant;

use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::cpu::grad::Surrogate;
use crate::data::Split;
use crate::engine::{Device, Engine, Outputs, ProbeBatch, RunJob, RunOutput, SpikeBackend};
use crate::fitness::{self, PopulationStats, ScoreId, ScoreInput, ScoreKind};
use crate::genome::{fnv1a64, Genome};
use crate::plan::{Op, Plan};
use crate::{DataSpec, Error, Result};

/// The kind of a validated score name.
fn kind_of(name: &str) -> ScoreKind {
    fitness::score_def(name).map_or(ScoreKind::Spike, |d| d.kind)
}

/// A seed derived from the run seed, a purpose tag and an index (SplitMix64 finaliser over
/// FNV-1a of the tag): independent streams for the probe, each generation and each weight seed.
pub fn derive_seed(seed: u64, tag: &str, index: u64) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    mix(mix(seed ^ fnv1a64(tag.as_bytes())) ^ index)
}

/// The weight seed of weight-seed index `w`: the run seed itself for `w = 0` (so a one-seed
/// search and `msenas score --seed` build the same network), derived seeds after that.
pub fn weight_seed(run_seed: u64, w: usize) -> u64 {
    if w == 0 {
        run_seed
    } else {
        derive_seed(run_seed, "weights", w as u64)
    }
}

/// The probe: `batches` disjoint batches of `B` training samples, stratified by class, drawn
/// once per run from a generator seeded by the run seed; identical for every candidate.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    pub timesteps: usize,
    pub batches: Vec<ProbeBatch>,
}

impl Probe {
    /// Draws `batches x size` distinct training samples with [`Split::stratified`] (round robin
    /// over the classes, so every consecutive run of `size` is balanced), cuts them into
    /// `batches` batches and orders each batch by class (stable), which changes no score and
    /// makes RDM plots readable.
    pub fn draw(
        train: &Split,
        size: usize,
        batches: usize,
        timesteps: usize,
        seed: u64,
    ) -> Result<Probe> {
        if size < 2 || batches == 0 {
            return Err(Error::input(format!(
                "probe: {batches} batch(es) of {size} samples (allowed: >= 1 batch of >= 2)"
            )));
        }
        let need = size * batches;
        if need > train.len() {
            return Err(Error::input(format!(
                "probe: {batches} x {size} = {need} samples, but the training split has {}",
                train.len()
            )));
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(derive_seed(seed, "probe", 0));
        let all = train.stratified(need, &mut rng);
        let batches = all
            .chunks(size)
            .map(|chunk| {
                let mut idx = chunk.to_vec();
                idx.sort_by_key(|&i| train.labels[i]);
                ProbeBatch {
                    labels: train.labels_of(&idx),
                    input: train.batch(&idx, timesteps),
                    indices: idx,
                }
            })
            .collect();
        Ok(Probe { timesteps, batches })
    }

    /// Probe batch size B.
    pub fn batch_size(&self) -> usize {
        self.batches.first().map(|b| b.len()).unwrap_or(0)
    }
}

/// What every evaluation of a run shares.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalSettings {
    /// The data shape (T included) the plans are compiled for.
    pub spec: DataSpec,
    pub width: usize,
    pub reduce_kernel: usize,
    /// The run seed (weights: [`weight_seed`]).
    pub seed: u64,
    pub weight_seeds: usize,
    /// Scores to compute: any training-free registry score (spike, cost or gradient kind).
    pub scores: Vec<ScoreId>,
}

impl EvalSettings {
    /// Every score must be known and computable without training; no duplicates.
    pub fn validate(&self) -> Result<()> {
        if self.scores.is_empty() {
            return Err(Error::input("no score requested"));
        }
        for (i, s) in self.scores.iter().enumerate() {
            if !s.training_free() {
                return Err(Error::input(format!(
                    "score `{s}` needs training and cannot be computed by the training-free \
                     evaluator (allowed: {})",
                    scorable().join(", ")
                )));
            }
            if self.scores[..i].contains(s) {
                return Err(Error::input(format!("score `{s}` requested twice")));
            }
        }
        if self.weight_seeds == 0 {
            return Err(Error::input("weight_seeds: 0 (allowed: >= 1)"));
        }
        Ok(())
    }
}

/// Names of every score the training-free evaluator computes, registry order.
pub fn scorable() -> Vec<&'static str> {
    fitness::registry()
        .iter()
        .filter(|d| d.id.training_free())
        .map(|d| d.name)
        .collect()
}

/// How an evaluation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// The head population is constant over the probe: every score at its worst value.
    Dead,
    /// Compile error, non-finite output or executor failure: every score at its worst value.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Dead => "dead",
            Status::Failed => "failed",
        }
    }
}

/// The result of scoring one genome.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub key: String,
    pub genome: Genome,
    /// Every requested score; always finite (worst values stand in for failures).
    pub scores: BTreeMap<String, f64>,
    pub status: Status,
    /// Why the candidate is dead or failed, or which scores failed.
    pub reason: Option<String>,
    /// Seconds spent: `compile`, `init`, `forward`, `stats`, each score, `total`.
    pub timings: BTreeMap<String, f64>,
}

impl Evaluation {
    /// A dead or failed evaluation: every score at its worst value. A genome that does not
    /// validate has no canonical key: its key is `invalid:` and its debug form.
    pub fn worst(genome: &Genome, scores: &[ScoreId], status: Status, reason: String) -> Self {
        let key = match genome.validate() {
            Ok(()) => genome.canonical_key(),
            Err(_) => format!("invalid:{genome:?}"),
        };
        Evaluation {
            key,
            genome: genome.clone(),
            scores: scores
                .iter()
                .map(|s| (s.name().to_string(), s.def().worst))
                .collect(),
            status,
            reason: Some(reason),
            timings: BTreeMap::new(),
        }
    }

    /// A score's value, by [`ScoreId`] or name (NaN when it was not computed).
    pub fn score(&self, id: impl AsRef<str>) -> f64 {
        self.scores.get(id.as_ref()).copied().unwrap_or(f64::NAN)
    }
}

/// Scores genomes. Implementations own the probe and the settings; every call scores each
/// genome independently (the result does not depend on the batch it came in).
pub trait Evaluator {
    /// A short description of the device, for logs and benchmark output.
    fn device(&self) -> String;
    /// How many genomes the evaluator prefers per call (a GPU may batch a generation). The
    /// search hands over at most this many at a time and records each result as it returns.
    fn batch_hint(&self) -> usize {
        1
    }
    fn settings(&self) -> &EvalSettings;
    /// One evaluation per genome, in order.
    fn evaluate(&mut self, genomes: &[Genome]) -> Vec<Evaluation>;
}

/// Population statistics reordered for [`ScoreInput`]: every population outside
/// `plan.late_populations` in plan order, then the late ones with the head last. Returns the
/// reordered statistics and the `late` count for `rdm_late`.
pub fn order_for_scores(plan: &Plan, stats: Vec<PopulationStats>) -> (Vec<PopulationStats>, usize) {
    let head = plan.head_population;
    let mut late: Vec<usize> = plan
        .late_populations
        .iter()
        .copied()
        .filter(|&p| p != head && p < stats.len())
        .collect();
    late.push(head);
    let mut slots: Vec<Option<PopulationStats>> = stats.into_iter().map(Some).collect();
    let mut out: Vec<PopulationStats> = Vec::with_capacity(slots.len());
    for (i, s) in slots.iter_mut().enumerate() {
        if !late.contains(&i) {
            out.push(s.take().expect("each population once"));
        }
    }
    for &i in &late {
        out.push(slots[i].take().expect("each population once"));
    }
    (out, late.len())
}

/// Synaptic operations per sample: for every convolution and linear op, its MACs per sample
/// per step times T, scaled by the input's firing rate when the input is a spike tensor.
pub fn sops(plan: &Plan, firing_rates: &[f64]) -> f64 {
    let t = plan.spec.timesteps as f64;
    let mut total = 0.0;
    for op in &plan.ops {
        let x = match op {
            Op::Conv { x, .. } | Op::Linear { x, .. } => *x,
            _ => continue,
        };
        let macs = plan.macs(op) as f64 * t;
        let rate = if plan.tensors[x].spikes {
            plan.populations
                .iter()
                .position(|p| p.tensor == x)
                .map(|p| firing_rates[p])
                .unwrap_or(1.0)
        } else {
            1.0
        };
        total += rate * macs;
    }
    total
}

/// Where an evaluation gets its forward runs: (backend, plan, weight seed, probe batch, run
/// index, timings) to the run's statistics, or the reason the candidate failed.
type RunFn<'a, B> = dyn FnMut(
        &mut B,
        &Plan,
        u64,
        &ProbeBatch,
        usize,
        &mut BTreeMap<String, f64>,
    ) -> std::result::Result<RunOutput, String>
    + 'a;

/// Where an evaluation gets the squared norm of its mean gradient: (backend, plan, weight seed,
/// weight-seed index, mini-batches) to `||mean_m g_m||^2`.
type NormFn<'a, B> =
    dyn FnMut(&mut B, &Plan, u64, usize, &[(Vec<f32>, Vec<u16>)]) -> Result<f64> + 'a;

/// Why a panic happened, from its payload.
fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// One forward run with executor errors and panics turned into a failure reason.
fn run_caught<B: SpikeBackend>(
    backend: &mut B,
    plan: &Plan,
    wseed: u64,
    batch: &ProbeBatch,
    want: Outputs,
    timings: &mut BTreeMap<String, f64>,
) -> std::result::Result<RunOutput, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        backend.run(plan, wseed, batch, want, timings)
    })) {
        Ok(Ok(o)) => Ok(o),
        Ok(Err(e)) => Err(format!("executor: {e}")),
        Err(p) => Err(format!("executor panicked: {}", panic_message(p))),
    }
}

/// Scores genomes by running a [`SpikeBackend`] and computing every score from the integer
/// statistics on the host.
pub struct ScoringEvaluator<B: SpikeBackend> {
    pub backend: B,
    pub settings: EvalSettings,
    pub probe: Probe,
}

/// The evaluator on an [`Engine`] (any device).
pub type EngineEvaluator = ScoringEvaluator<Engine>;

impl EngineEvaluator {
    /// On the CPU engine.
    pub fn cpu(settings: EvalSettings, probe: Probe) -> Result<Self> {
        ScoringEvaluator::new(Engine::new(Device::cpu()), settings, probe)
    }

    /// On the CPU engine with the reference convolution loops: spike statistics bit-equal with
    /// the GPU engine's.
    pub fn cpu_reference(settings: EvalSettings, probe: Probe) -> Result<Self> {
        ScoringEvaluator::new(Engine::new(Device::cpu_reference()), settings, probe)
    }
}

impl<B: SpikeBackend> ScoringEvaluator<B> {
    pub fn new(backend: B, settings: EvalSettings, probe: Probe) -> Result<Self> {
        settings.validate()?;
        if probe.batches.is_empty() || probe.batch_size() < 2 {
            return Err(Error::input(
                "probe: needs at least one batch of >= 2 samples",
            ));
        }
        if probe.timesteps != settings.spec.timesteps {
            return Err(Error::input(format!(
                "probe has T = {}, the data spec T = {}",
                probe.timesteps, settings.spec.timesteps
            )));
        }
        Ok(ScoringEvaluator {
            backend,
            settings,
            probe,
        })
    }

    /// Score one genome (never panics: executor panics become failures).
    pub fn evaluate_one(&mut self, genome: &Genome) -> Evaluation {
        let start = Instant::now();
        let mut ev = match self.prepare(genome) {
            Err(ev) => *ev,
            Ok((plan, timings)) => {
                let want = self.want();
                self.finish(
                    genome,
                    &plan,
                    timings,
                    &mut |backend, plan, wseed, batch, _, timings| {
                        run_caught(backend, plan, wseed, batch, want, timings)
                    },
                    &mut |backend, plan, wseed, _, batches| {
                        backend.mean_gradient_norm2(plan, wseed, batches, Surrogate::default())
                    },
                )
            }
        };
        ev.timings
            .insert("total".into(), start.elapsed().as_secs_f64());
        ev
    }

    /// The statistics every run asks for: every population's representation tables only when
    /// a spike score reads them; otherwise the head's alone, for the dead-network check.
    fn want(&self) -> Outputs {
        let spike = self
            .settings
            .scores
            .iter()
            .any(|n| n.kind() == ScoreKind::Spike);
        if spike {
            Outputs::scores()
        } else {
            Outputs::head_stats()
        }
    }

    /// Compile the genome and check the probe fits it; a failure is the finished evaluation.
    fn prepare(
        &self,
        genome: &Genome,
    ) -> std::result::Result<(Plan, BTreeMap<String, f64>), Box<Evaluation>> {
        let s = &self.settings;
        let mut timings = BTreeMap::new();
        let t0 = Instant::now();
        let plan = match Plan::compile(genome, &s.spec, s.width, s.reduce_kernel) {
            Ok(p) => p,
            Err(e) => {
                let mut ev =
                    Evaluation::worst(genome, &s.scores, Status::Failed, format!("compile: {e}"));
                crate::engine::add_time(&mut ev.timings, "compile", t0);
                return Err(Box::new(ev));
            }
        };
        crate::engine::add_time(&mut timings, "compile", t0);
        if let Err(e) = plan.check_workload(self.probe.batch_size(), self.probe.timesteps) {
            let mut ev =
                Evaluation::worst(genome, &s.scores, Status::Failed, format!("probe: {e}"));
            ev.timings = timings;
            return Err(Box::new(ev));
        }
        Ok((plan, timings))
    }

    /// Score a compiled genome from its forward runs (`forward` gives run `w * batches + bi`:
    /// weight seed `w` on probe batch `bi`), then, where a score needs them, from the squared
    /// norm of its mean gradient for each weight seed (`norm2`).
    fn finish(
        &mut self,
        genome: &Genome,
        plan: &Plan,
        mut timings: BTreeMap<String, f64>,
        forward: &mut RunFn<'_, B>,
        norm2: &mut NormFn<'_, B>,
    ) -> Evaluation {
        let s = &self.settings;
        let spike_scores: Vec<ScoreId> = s
            .scores
            .iter()
            .copied()
            .filter(|n| n.kind() == ScoreKind::Spike)
            .collect();
        let mut sums: BTreeMap<ScoreId, f64> = s.scores.iter().map(|&n| (n, 0.0)).collect();
        let mut failed_scores: BTreeMap<String, String> = BTreeMap::new();
        let mut runs = 0usize;
        let mut dead: Option<String> = None;
        let nb = self.probe.batches.len();
        for w in 0..s.weight_seeds {
            let wseed = weight_seed(s.seed, w);
            for (bi, batch) in self.probe.batches.iter().enumerate() {
                let out = match forward(
                    &mut self.backend,
                    plan,
                    wseed,
                    batch,
                    w * nb + bi,
                    &mut timings,
                ) {
                    Ok(o) => o,
                    Err(reason) => return self.failed(genome, timings, reason),
                };
                if !out.finite {
                    return self.failed(
                        genome,
                        timings,
                        format!("non-finite logits (weight seed {w}, probe batch {bi})"),
                    );
                }
                if dead.is_none() && fitness::is_dead(&out.stats[plan.head_population]) {
                    dead = Some(format!(
                        "dead: the head population `{}` emits the same spikes for every probe \
                         sample (weight seed {w}, probe batch {bi})",
                        plan.populations[plan.head_population].name
                    ));
                }
                runs += 1;
                let rates = out.firing_rates.clone();
                let (ordered, late) = order_for_scores(plan, out.stats);
                let input = ScoreInput {
                    pops: &ordered,
                    labels: &batch.labels,
                    late,
                };
                for &id in &spike_scores {
                    let t0 = Instant::now();
                    let outcome = fitness::compute(id.name(), &input);
                    crate::engine::add_time(&mut timings, id.name(), t0);
                    match outcome {
                        Ok(fitness::ScoreOutcome::Value(v)) => {
                            *sums.get_mut(&id).unwrap() += v;
                        }
                        Ok(fitness::ScoreOutcome::Failed { reason, .. }) => {
                            failed_scores.entry(id.name().into()).or_insert(reason);
                        }
                        Err(e) => {
                            failed_scores
                                .entry(id.name().into())
                                .or_insert(e.to_string());
                        }
                    }
                }
                for id in ScoreId::of_kind(ScoreKind::Cost) {
                    let name = id.name();
                    if let Some(v) = sums.get_mut(&id) {
                        let t0 = Instant::now();
                        *v += match id {
                            ScoreId::Params => plan.num_params as f64,
                            ScoreId::Sops => sops(plan, &rates),
                            _ => rates.iter().sum::<f64>() / rates.len().max(1) as f64,
                        };
                        crate::engine::add_time(&mut timings, name, t0);
                    }
                }
            }
        }

        if let Some(reason) = dead {
            let mut ev = Evaluation::worst(genome, &s.scores, Status::Dead, reason);
            ev.timings = timings;
            return ev;
        }
        let gradient: Vec<ScoreId> = s
            .scores
            .iter()
            .copied()
            .filter(|n| n.kind() == ScoreKind::Gradient)
            .collect();
        if !gradient.is_empty() {
            let t0 = Instant::now();
            let mut norms = Vec::with_capacity(s.weight_seeds);
            let batches = super::gradient::mini_batches(
                &self.probe.batches[0],
                self.probe.timesteps,
                super::gradient::GRAD_MINI_BATCHES,
            );
            for w in 0..s.weight_seeds {
                let norm2 = norm2(&mut self.backend, plan, weight_seed(s.seed, w), w, &batches);
                match norm2 {
                    Ok(n2) => norms.push(super::gradient::grad_norm(n2)),
                    Err(e) => return self.failed(genome, timings, format!("gradients: {e}")),
                }
            }
            let dead_grad = norms.contains(&super::gradient::GRAD_WORST);
            let gn = norms.iter().sum::<f64>() / norms.len().max(1) as f64;
            for &id in &gradient {
                if dead_grad {
                    failed_scores
                        .entry(id.name().into())
                        .or_insert_with(|| "every gradient is zero".into());
                    continue;
                }
                let v = match id {
                    ScoreId::GradNorm => gn,
                    _ => super::gradient::grad_rms(gn, plan.num_params),
                };
                *sums.get_mut(&id).unwrap() = v * runs as f64;
            }
            for id in gradient {
                crate::engine::add_time(&mut timings, id.name(), t0);
            }
        }
        let mut scores = BTreeMap::new();
        for &id in &s.scores {
            let name = id.name();
            let v = if failed_scores.contains_key(name) {
                id.def().worst
            } else {
                let v = sums[&id] / runs as f64;
                if v.is_finite() {
                    v
                } else {
                    failed_scores.insert(name.into(), "non-finite value".into());
                    id.def().worst
                }
            };
            scores.insert(name.to_string(), v);
        }
        let reason = if failed_scores.is_empty() {
            None
        } else {
            Some(
                failed_scores
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        };
        Evaluation {
            key: plan.key.clone(),
            genome: genome.clone(),
            scores,
            status: Status::Ok,
            reason,
            timings,
        }
    }

    /// Every genome's forward runs (all weight seeds and probe batches) handed to the backend
    /// in one call ([`SpikeBackend::run_many`], or [`SpikeBackend::run_many_with_gradients`]
    /// when a gradient score is asked for and the backend records gradient passes with forward
    /// passes: on a GPU, one submission and one read-back for as many candidates as its memory
    /// budget holds), then each scored as [`Self::evaluate_one`] would: the same evaluations,
    /// each with an equal share of the shared time.
    fn evaluate_batched(&mut self, genomes: &[Genome]) -> Vec<Evaluation> {
        let prepared: Vec<_> = genomes.iter().map(|g| self.prepare(g)).collect();
        let live: Vec<usize> = (0..genomes.len())
            .filter(|&k| prepared[k].is_ok())
            .collect();
        let want = self.want();
        let nb = self.probe.batches.len();
        let runs = self.settings.weight_seeds * nb;
        let mut outs: Vec<Vec<Option<std::result::Result<RunOutput, String>>>> =
            (0..genomes.len()).map(|_| vec![None; runs]).collect();
        let mut norms: Vec<Vec<Option<Result<f64>>>> =
            (0..genomes.len()).map(|_| Vec::new()).collect();
        let mut shared = vec![0.0f64; genomes.len()];
        let mut shared_grad = vec![0.0f64; genomes.len()];
        let gradient = self
            .settings
            .scores
            .iter()
            .any(|n| n.kind() == ScoreKind::Gradient);
        let grad_batches = if gradient {
            super::gradient::mini_batches(
                &self.probe.batches[0],
                self.probe.timesteps,
                super::gradient::GRAD_MINI_BATCHES,
            )
        } else {
            Vec::new()
        };
        // Every run of the generation (candidate, weight seed, probe batch) in one call; where
        // the backend records gradient passes with forward passes, every live candidate's
        // gradient norm per weight seed rides along with its first probe batch's run (one
        // read-back for both; a candidate the runs rule out wastes its gradient passes).
        let together = gradient && self.backend.gradients_with_runs();
        let mut jobs: Vec<RunJob<'_>> = Vec::with_capacity(live.len() * runs);
        let mut owner: Vec<(usize, usize)> = Vec::with_capacity(live.len() * runs);
        for &k in &live {
            let plan = &prepared[k].as_ref().expect("live").0;
            for w in 0..self.settings.weight_seeds {
                let weight_seed = weight_seed(self.settings.seed, w);
                for (bi, batch) in self.probe.batches.iter().enumerate() {
                    jobs.push(RunJob {
                        plan,
                        weight_seed,
                        batch,
                    });
                    owner.push((k, w * nb + bi));
                }
            }
        }
        let flags: Vec<bool> = owner
            .iter()
            .map(|&(_, r)| together && r % nb == 0)
            .collect();
        let t0 = Instant::now();
        let backend = &mut self.backend;
        let many = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if together {
                backend.run_many_with_gradients(
                    &jobs,
                    want,
                    &flags,
                    &grad_batches,
                    Surrogate::default(),
                )
            } else {
                (backend.run_many(&jobs, want), Vec::new())
            }
        }));
        // The shared call's time, forward (and gradient passes recorded with it) split evenly.
        let share = t0.elapsed().as_secs_f64() / live.len().max(1) as f64;
        match many {
            Ok((results, got_norms)) => {
                for (&(k, run), r) in owner.iter().zip(results) {
                    outs[k][run] = Some(r.map_err(|e| format!("executor: {e}")));
                }
                for (&(k, _), n) in owner.iter().zip(got_norms) {
                    if let Some(n) = n {
                        norms[k].push(Some(n));
                    }
                }
                for &k in &live {
                    shared[k] += share;
                }
            }
            // Find the culprit: each run on its own (gradient norms below, as needed).
            Err(_) => {
                for (j, &(k, run)) in jobs.iter().zip(&owner) {
                    let mut own = BTreeMap::new();
                    outs[k][run] = Some(run_caught(
                        backend,
                        j.plan,
                        j.weight_seed,
                        j.batch,
                        want,
                        &mut own,
                    ));
                    shared[k] += own.values().sum::<f64>();
                }
            }
        }
        // The gradient norms not computed yet of every candidate whose runs all gave finite
        // outputs from a live head (the others are scored as failed or dead without them), a
        // weight seed at a time.
        if gradient {
            let need: Vec<usize> = live
                .iter()
                .copied()
                .filter(|&k| {
                    let head = prepared[k].as_ref().expect("live").0.head_population;
                    norms[k].is_empty()
                        && outs[k].iter().all(|o| {
                            matches!(o, Some(Ok(r)) if r.finite && !fitness::is_dead(&r.stats[head]))
                        })
                })
                .collect();
            for w in 0..self.settings.weight_seeds {
                if need.is_empty() {
                    break;
                }
                let wseed = weight_seed(self.settings.seed, w);
                let jobs: Vec<(&Plan, u64)> = need
                    .iter()
                    .map(|&k| (&prepared[k].as_ref().expect("live").0, wseed))
                    .collect();
                let t0 = Instant::now();
                let results = self.backend.mean_gradient_norm2_many(
                    &jobs,
                    &grad_batches,
                    Surrogate::default(),
                );
                let share = t0.elapsed().as_secs_f64() / need.len() as f64;
                for (&k, r) in need.iter().zip(results) {
                    norms[k].push(Some(r));
                    shared_grad[k] += share;
                }
            }
        }
        let mut evals = Vec::with_capacity(genomes.len());
        for (k, (g, prep)) in genomes.iter().zip(prepared).enumerate() {
            let t0 = Instant::now();
            let mut ev = match prep {
                Err(ev) => *ev,
                Ok((plan, mut timings)) => {
                    *timings.entry("forward".into()).or_insert(0.0) += shared[k];
                    let own = &mut outs[k];
                    let own_norms = &mut norms[k];
                    let mut ev = self.finish(
                        g,
                        &plan,
                        timings,
                        &mut |_, _, _, _, run, _| own[run].take().expect("each run once"),
                        &mut |_, _, _, w, _| own_norms[w].take().expect("a norm per weight seed"),
                    );
                    // The gradient scores' time: their share of the generation's gradient work.
                    for (name, t) in ev.timings.iter_mut() {
                        if kind_of(name) == ScoreKind::Gradient {
                            *t += shared_grad[k];
                        }
                    }
                    ev
                }
            };
            let compile = ev.timings.get("compile").copied().unwrap_or(0.0);
            ev.timings.insert(
                "total".into(),
                compile + shared[k] + shared_grad[k] + t0.elapsed().as_secs_f64(),
            );
            evals.push(ev);
        }
        evals
    }

    fn failed(
        &self,
        genome: &Genome,
        timings: BTreeMap<String, f64>,
        reason: String,
    ) -> Evaluation {
        let mut ev = Evaluation::worst(genome, &self.settings.scores, Status::Failed, reason);
        ev.timings = timings;
        ev
    }
}

impl<B: SpikeBackend> Evaluator for ScoringEvaluator<B> {
    fn device(&self) -> String {
        self.backend.device()
    }
    fn batch_hint(&self) -> usize {
        self.backend.batch_hint()
    }
    fn settings(&self) -> &EvalSettings {
        &self.settings
    }
    fn evaluate(&mut self, genomes: &[Genome]) -> Vec<Evaluation> {
        if genomes.len() < 2 || self.backend.batch_hint() < 2 {
            return genomes.iter().map(|g| self.evaluate_one(g)).collect();
        }
        self.evaluate_batched(genomes)
    }
}

/// The scoring evaluator on a resolved device (see [`Device::resolve`]).
pub fn make_evaluator(
    device: &Device,
    settings: EvalSettings,
    probe: Probe,
) -> Result<Box<dyn Evaluator + Send>> {
    Ok(Box::new(ScoringEvaluator::new(
        Engine::new(device.clone()),
        settings,
        probe,
    )?))
}

/// Statistics of one genome on the first probe batch with the first weight seed, reordered as
/// the scores see them (for RDM plots).
pub fn cpu_probe_stats(
    genome: &Genome,
    settings: &EvalSettings,
    batch: &ProbeBatch,
) -> Result<(Plan, Vec<PopulationStats>)> {
    let plan = Plan::compile(
        genome,
        &settings.spec,
        settings.width,
        settings.reduce_kernel,
    )
    .map_err(|e| Error::input(format!("genome does not compile: {e}")))?;
    let mut timings = BTreeMap::new();
    let out = Engine::new(Device::cpu()).run(
        &plan,
        weight_seed(settings.seed, 0),
        batch,
        Outputs::scores(),
        &mut timings,
    )?;
    let (ordered, _) = order_for_scores(&plan, out.stats);
    Ok((plan, ordered))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RunOutput;
    use crate::fitness::{population_stats, PopulationSpikes};
    use crate::genome::{CellGene, MicroVariant};

    fn spec() -> DataSpec {
        DataSpec {
            in_ch: 1,
            height: 8,
            width: 8,
            classes: 2,
            timesteps: 2,
            event: false,
        }
    }

    /// A synthetic probe: B = 6 samples of two classes with distinct bright patches.
    fn probe() -> Probe {
        let b = 6;
        let mut input = vec![0.0f32; 2 * b * 64];
        for t in 0..2 {
            for i in 0..b {
                for p in 0..64 {
                    input[(t * b + i) * 64 + p] = if (p * (i + 3)) % 7 < 3 { 1.0 } else { 0.1 };
                }
            }
        }
        Probe {
            timesteps: 2,
            batches: vec![ProbeBatch {
                indices: (0..b).collect(),
                labels: vec![0, 0, 0, 1, 1, 1],
                input,
            }],
        }
    }

    fn settings(scores: &[&str]) -> EvalSettings {
        EvalSettings {
            spec: spec(),
            width: 4,
            reduce_kernel: 1,
            seed: 3,
            weight_seeds: 1,
            scores: scores.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    fn genome(micro: MicroVariant, op: u8) -> Genome {
        Genome {
            layout: "NRN".into(),
            micro,
            k: 2,
            cells: vec![
                CellGene {
                    motif: 1,
                    sources: vec![1, 2],
                    ops: vec![op; 4],
                };
                2
            ],
        }
    }

    #[test]
    fn derived_seeds_differ_by_tag_and_index() {
        assert_ne!(derive_seed(1, "a", 0), derive_seed(1, "b", 0));
        assert_ne!(derive_seed(1, "a", 0), derive_seed(1, "a", 1));
        assert_ne!(derive_seed(1, "a", 0), derive_seed(2, "a", 0));
        assert_eq!(weight_seed(9, 0), 9);
    }

    #[test]
    fn live_network_gets_every_score() {
        let all: Vec<&str> = scorable();
        let mut ev = EngineEvaluator::cpu(settings(&all), probe()).unwrap();
        let e = ev.evaluate_one(&genome(MicroVariant::Kernel, 0));
        assert_eq!(e.status, Status::Ok, "{:?}", e.reason);
        assert_eq!(e.scores.len(), all.len());
        assert!(e.scores.values().all(|v| v.is_finite()));
        assert!(e.score("rdm") > 0.0 && e.score("rdm") <= 1.0);
        assert!(e.score("params") > 0.0 && e.score("sops") > 0.0);
        assert!(e.timings.contains_key("rdm") && e.timings.contains_key("total"));
        // deterministic
        let again = ev.evaluate_one(&genome(MicroVariant::Kernel, 0));
        assert_eq!(again.scores, e.scores);
    }

    #[test]
    fn gradient_scores_follow_their_definition() {
        let mut ev =
            EngineEvaluator::cpu(settings(&["grad_rms", "grad_norm", "params"]), probe()).unwrap();
        let e = ev.evaluate_one(&genome(MicroVariant::Kernel, 0));
        assert_eq!(e.status, Status::Ok, "{:?}", e.reason);
        let (gn, p) = (e.score("grad_norm"), e.score("params"));
        assert!(
            gn.is_finite() && gn != super::super::gradient::GRAD_WORST,
            "{gn}"
        );
        assert_eq!(e.score("grad_rms"), gn - 0.5 * p.ln());
        // the same number as the benchmark's gradient signal on the first probe batch
        let plan = Plan::compile(&genome(MicroVariant::Kernel, 0), &spec(), 4, 1).unwrap();
        let (_, direct) = super::super::gradient::gradient_scores(
            &plan,
            &probe(),
            weight_seed(3, 0),
            super::super::gradient::GRAD_MINI_BATCHES,
            crate::cpu::grad::Surrogate::default(),
        );
        assert_eq!(gn, direct);
        // a dead network gets the worst value, not the "best" (smallest) gradient
        let d = ev.evaluate_one(&genome(MicroVariant::Full, 2));
        assert_eq!(d.status, Status::Dead);
        assert_eq!(d.score("grad_rms"), fitness::WORST_COST);
    }

    #[test]
    fn scores_without_spike_scores_ask_for_the_head_tables_alone() {
        /// The CPU engine, recording what each run asks for.
        struct Recording(Engine, Vec<Outputs>);
        impl SpikeBackend for Recording {
            fn device(&self) -> String {
                self.0.device().describe()
            }
            fn run(
                &mut self,
                plan: &Plan,
                seed: u64,
                batch: &ProbeBatch,
                want: Outputs,
                timings: &mut BTreeMap<String, f64>,
            ) -> crate::Result<RunOutput> {
                self.1.push(want);
                self.0.run(plan, seed, batch, want, timings)
            }
            fn gradients(
                &mut self,
                plan: &Plan,
                seed: u64,
                batches: &[(Vec<f32>, Vec<u16>)],
                surrogate: crate::cpu::grad::Surrogate,
            ) -> crate::Result<Vec<Vec<f32>>> {
                SpikeBackend::gradients(&mut self.0, plan, seed, batches, surrogate)
            }
        }
        let lean = ["grad_rms", "params", "sops", "firing_rate"];
        let mut with_rdm = lean.to_vec();
        with_rdm.push("rdm");
        let backend = || Recording(Engine::new(Device::cpu()), Vec::new());
        let mut a = ScoringEvaluator::new(backend(), settings(&lean), probe()).unwrap();
        let mut b = ScoringEvaluator::new(backend(), settings(&with_rdm), probe()).unwrap();
        let genomes = [
            genome(MicroVariant::Kernel, 0),
            genome(MicroVariant::Kernel, 5),
            genome(MicroVariant::Full, 2), // dead
        ];
        let mut statuses = Vec::new();
        for g in &genomes {
            let (x, y) = (a.evaluate_one(g), b.evaluate_one(g));
            assert_eq!(x.status, y.status);
            assert_eq!(x.reason, y.reason);
            for n in lean {
                assert_eq!(x.score(n).to_bits(), y.score(n).to_bits(), "{n}");
            }
            statuses.push(x.status);
        }
        assert!(statuses.contains(&Status::Ok) && statuses.contains(&Status::Dead));
        assert!(!a.backend.1.is_empty() && !b.backend.1.is_empty());
        assert!(a.backend.1.iter().all(|w| *w == Outputs::head_stats()));
        assert!(b.backend.1.iter().all(|w| *w == Outputs::scores()));
    }

    #[test]
    fn a_batched_generation_scores_as_one_by_one() {
        /// The CPU engine behind `run_many`, failing the plans whose key is `fail` (a
        /// returned error) or `panic`, counting what each `run_many` and gradient-norm call
        /// held, and saying it records gradients with runs when `together`.
        struct Batching {
            engine: Engine,
            fail: String,
            panic: String,
            together: bool,
            calls: Vec<usize>,
            grad_calls: Vec<usize>,
        }
        impl SpikeBackend for Batching {
            fn device(&self) -> String {
                "batching".into()
            }
            fn batch_hint(&self) -> usize {
                8
            }
            fn run(
                &mut self,
                plan: &Plan,
                seed: u64,
                batch: &ProbeBatch,
                want: Outputs,
                timings: &mut BTreeMap<String, f64>,
            ) -> crate::Result<RunOutput> {
                if plan.key == self.fail {
                    return Err(Error::Gpu("out of memory".into()));
                }
                assert!(plan.key != self.panic, "kernel fault");
                self.engine.run(plan, seed, batch, want, timings)
            }
            fn run_many(
                &mut self,
                jobs: &[RunJob<'_>],
                want: Outputs,
            ) -> Vec<crate::Result<RunOutput>> {
                self.calls.push(jobs.len());
                jobs.iter()
                    .map(|j| self.run(j.plan, j.weight_seed, j.batch, want, &mut BTreeMap::new()))
                    .collect()
            }
            fn gradients_with_runs(&self) -> bool {
                self.together
            }
            fn mean_gradient_norm2_many(
                &mut self,
                jobs: &[(&Plan, u64)],
                batches: &[(Vec<f32>, Vec<u16>)],
                surrogate: crate::cpu::grad::Surrogate,
            ) -> Vec<crate::Result<f64>> {
                self.grad_calls.push(jobs.len());
                jobs.iter()
                    .map(|&(p, s)| self.mean_gradient_norm2(p, s, batches, surrogate))
                    .collect()
            }
            fn gradients(
                &mut self,
                plan: &Plan,
                seed: u64,
                batches: &[(Vec<f32>, Vec<u16>)],
                surrogate: crate::cpu::grad::Surrogate,
            ) -> crate::Result<Vec<Vec<f32>>> {
                SpikeBackend::gradients(&mut self.engine, plan, seed, batches, surrogate)
            }
        }
        let mut uncompilable = genome(MicroVariant::Kernel, 0);
        uncompilable.cells.pop();
        let mut mixed = genome(MicroVariant::Kernel, 0);
        mixed.cells[0].ops[0] = 1;
        let gs = vec![
            genome(MicroVariant::Kernel, 0),
            uncompilable,
            genome(MicroVariant::Full, 2), // dead
            genome(MicroVariant::Kernel, 1),
            mixed,
        ];
        let key = |g: &Genome| Plan::compile(g, &spec(), 4, 1).unwrap().key;
        let backend = |panic: &str, together: bool| Batching {
            engine: Engine::new(Device::cpu()),
            fail: key(&gs[3]),
            panic: panic.to_string(),
            together,
            calls: Vec::new(),
            grad_calls: Vec::new(),
        };
        let mut s = settings(&["rdm", "params", "grad_rms"]);
        s.weight_seeds = 2;
        for (panic, together) in [
            (String::new(), false),
            (String::new(), true),
            (key(&gs[4]), false),
            (key(&gs[4]), true),
        ] {
            let mut ev =
                ScoringEvaluator::new(backend(&panic, together), s.clone(), probe()).unwrap();
            let whole = ev.evaluate(&gs);
            // Two weight seeds x one probe batch of every compiled candidate in one call.
            assert_eq!(ev.backend.calls, vec![8]);
            // Gradient norms: with the runs, of all 4 compiled candidates x 2 seeds; otherwise
            // a call per seed for the candidates the runs keep (0 and 4; 4 panics in its run).
            let grads = match (panic.is_empty(), together) {
                (true, true) => vec![8],
                (true, false) => vec![2, 2],
                (false, _) => vec![1, 1],
            };
            assert_eq!(ev.backend.grad_calls, grads, "together {together}");
            let single: Vec<_> = gs.iter().map(|g| ev.evaluate_one(g)).collect();
            assert_eq!(ev.backend.calls.len(), 1, "one by one: no run_many");
            for (a, b) in whole.iter().zip(&single) {
                assert_eq!((&a.key, a.status, &a.reason), (&b.key, b.status, &b.reason));
                assert_eq!(a.scores, b.scores);
            }
            let status: Vec<Status> = whole.iter().map(|e| e.status).collect();
            let last = if panic.is_empty() {
                Status::Ok
            } else {
                Status::Failed
            };
            assert_eq!(
                status,
                [
                    Status::Ok,
                    Status::Failed,
                    Status::Dead,
                    Status::Failed,
                    last
                ]
            );
            assert!(whole[1].reason.as_deref().unwrap().starts_with("compile"));
            assert!(whole[3]
                .reason
                .as_deref()
                .unwrap()
                .contains("out of memory"));
            if !panic.is_empty() {
                assert!(whole[4].reason.as_deref().unwrap().contains("kernel fault"));
            }
        }
    }

    #[test]
    fn all_inhibitory_last_cell_is_dead() {
        // micro = full, every op I3: the last cell's nodes are sums of min(z, 0) <= 0, so the
        // head LIF never fires for any sample.
        let mut ev = EngineEvaluator::cpu(settings(&["rdm", "sahd", "params"]), probe()).unwrap();
        let e = ev.evaluate_one(&genome(MicroVariant::Full, 2));
        assert_eq!(e.status, Status::Dead);
        assert!(e.reason.as_deref().unwrap().contains("dead"));
        assert_eq!(e.score("rdm"), 0.0);
        assert_eq!(e.score("sahd"), fitness::WORST_LOGDET);
        assert_eq!(e.score("params"), fitness::WORST_COST);
    }

    #[test]
    fn dead_rule_on_a_synthetic_backend() {
        /// Every population constant over the batch except population 0.
        struct Constant;
        impl SpikeBackend for Constant {
            fn device(&self) -> String {
                "synthetic".into()
            }
            fn run(
                &mut self,
                plan: &Plan,
                _: u64,
                batch: &ProbeBatch,
                _: Outputs,
                _: &mut BTreeMap<String, f64>,
            ) -> crate::Result<RunOutput> {
                let b = batch.len();
                let stats = plan
                    .populations
                    .iter()
                    .enumerate()
                    .map(|(p, pop)| {
                        let dense: Vec<f32> = (0..plan.spec.timesteps * b * pop.neurons)
                            .map(|k| {
                                let n = k % pop.neurons;
                                let i = (k / pop.neurons) % b;
                                if p == 0 {
                                    ((n + i) % 2) as f32
                                } else {
                                    (n % 3 == 0) as u8 as f32
                                }
                            })
                            .collect();
                        population_stats(&PopulationSpikes::from_dense(
                            &pop.name,
                            pop.neurons,
                            plan.spec.timesteps,
                            b,
                            &dense,
                        ))
                    })
                    .collect::<Vec<_>>();
                let n = stats.len();
                Ok(RunOutput {
                    stats,
                    firing_rates: vec![0.3; n],
                    finite: true,
                })
            }
        }
        let mut ev =
            ScoringEvaluator::new(Constant, settings(&["rdm", "params"]), probe()).unwrap();
        let e = ev.evaluate_one(&genome(MicroVariant::Kernel, 0));
        assert_eq!(e.status, Status::Dead);
        assert_eq!(e.score("rdm"), 0.0);
    }

    #[test]
    fn compile_failure_is_recorded_with_worst_values() {
        let mut s = settings(&["rdm", "params"]);
        s.spec.height = 1;
        s.spec.width = 1;
        let mut p = probe();
        p.batches[0].input = vec![0.5; 2 * 6];
        let mut ev = EngineEvaluator::cpu(s, p).unwrap();
        let e = ev.evaluate_one(&genome(MicroVariant::Kernel, 0));
        assert_eq!(e.status, Status::Failed);
        assert!(e.reason.as_deref().unwrap().starts_with("compile"));
        assert_eq!(e.score("params"), fitness::WORST_COST);
    }

    #[test]
    fn settings_refuse_training_scores_and_unknown_names() {
        assert!(settings(&["short_train"]).validate().is_err());
        // Unknown names are refused where a name becomes a `ScoreId`.
        let e = "rdmm".parse::<ScoreId>().unwrap_err().to_string();
        assert!(e.contains("rdmm") && e.contains("grad_rms"), "{e}");
        assert!(settings(&["rdm", "rdm"]).validate().is_err());
        assert!(Device::resolve("no-such-adapter-anywhere").is_err());
    }

    #[test]
    fn head_is_last_after_reordering() {
        let g = genome(MicroVariant::Kernel, 1);
        let plan = Plan::compile(&g, &spec(), 4, 1).unwrap();
        let (_, stats) = cpu_probe_stats(&g, &settings(&["rdm"]), &probe().batches[0]).unwrap();
        assert_eq!(
            stats.last().unwrap().name,
            plan.populations[plan.head_population].name
        );
        assert_eq!(stats.len(), plan.populations.len());
    }
}
