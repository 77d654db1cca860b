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

use crate::data::Split;
use crate::engine::{Device, Engine, ProbeBatch, SpikeBackend};
use crate::fitness::{self, PopulationStats, ScoreId, ScoreInput, ScoreKind};
use crate::genome::{fnv1a64, Genome};
use crate::plan::{Op, Plan};
use crate::{DataSpec, Error, Result};

fn training_free(def: &fitness::ScoreDef) -> bool {
    def.id.training_free()
}

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
    /// Scores to compute (spike scores from the registry, `params`, `sops`, `firing_rate`).
    pub scores: Vec<String>,
}

impl EvalSettings {
    /// Every score must be known and computable without training; no duplicates.
    pub fn validate(&self) -> Result<()> {
        if self.scores.is_empty() {
            return Err(Error::input("no score requested"));
        }
        for (i, s) in self.scores.iter().enumerate() {
            let def = fitness::score_def(s)?;
            if !training_free(def) {
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
        .filter(|d| training_free(d))
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
    /// A dead or failed evaluation: every score at its worst value.
    pub fn worst(genome: &Genome, scores: &[String], status: Status, reason: String) -> Self {
        Evaluation {
            key: genome.canonical_key(),
            genome: genome.clone(),
            scores: scores
                .iter()
                .map(|s| {
                    let w = fitness::score_def(s).map(|d| d.worst).unwrap_or(f64::NAN);
                    (s.clone(), w)
                })
                .collect(),
            status,
            reason: Some(reason),
            timings: BTreeMap::new(),
        }
    }

    /// A score's value (NaN when it was not computed).
    pub fn score(&self, name: &str) -> f64 {
        self.scores.get(name).copied().unwrap_or(f64::NAN)
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
        let mut ev = self.evaluate_inner(genome);
        ev.timings
            .insert("total".into(), start.elapsed().as_secs_f64());
        ev
    }

    fn evaluate_inner(&mut self, genome: &Genome) -> Evaluation {
        let s = &self.settings;
        let mut timings = BTreeMap::new();
        let t0 = Instant::now();
        let plan = match Plan::compile(genome, &s.spec, s.width, s.reduce_kernel) {
            Ok(p) => p,
            Err(e) => {
                let mut ev =
                    Evaluation::worst(genome, &s.scores, Status::Failed, format!("compile: {e}"));
                crate::engine::add_time(&mut ev.timings, "compile", t0);
                return ev;
            }
        };
        crate::engine::add_time(&mut timings, "compile", t0);
        if let Err(e) = plan.check_workload(self.probe.batch_size(), self.probe.timesteps) {
            let mut ev =
                Evaluation::worst(genome, &s.scores, Status::Failed, format!("probe: {e}"));
            ev.timings = timings;
            return ev;
        }

        let spike_scores: Vec<&String> = s
            .scores
            .iter()
            .filter(|n| kind_of(n) == ScoreKind::Spike)
            .collect();
        let mut sums: BTreeMap<String, f64> = s.scores.iter().map(|n| (n.clone(), 0.0)).collect();
        let mut failed_scores: BTreeMap<String, String> = BTreeMap::new();
        let mut runs = 0usize;
        let mut dead: Option<String> = None;

        for w in 0..s.weight_seeds {
            let wseed = weight_seed(s.seed, w);
            for (bi, batch) in self.probe.batches.iter().enumerate() {
                let backend = &mut self.backend;
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    backend.run(&plan, wseed, batch, &mut timings)
                }));
                let out = match result {
                    Ok(Ok(o)) => o,
                    Ok(Err(e)) => return self.failed(genome, timings, format!("executor: {e}")),
                    Err(p) => {
                        let msg = p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "unknown panic".into());
                        return self.failed(genome, timings, format!("executor panicked: {msg}"));
                    }
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
                let (ordered, late) = order_for_scores(&plan, out.stats);
                let input = ScoreInput {
                    pops: &ordered,
                    labels: &batch.labels,
                    late,
                };
                for name in &spike_scores {
                    let t0 = Instant::now();
                    let outcome = fitness::compute(name, &input);
                    crate::engine::add_time(&mut timings, name, t0);
                    match outcome {
                        Ok(fitness::ScoreOutcome::Value(v)) => {
                            *sums.get_mut(*name).unwrap() += v;
                        }
                        Ok(fitness::ScoreOutcome::Failed { reason, .. }) => {
                            failed_scores.entry((*name).clone()).or_insert(reason);
                        }
                        Err(e) => {
                            failed_scores
                                .entry((*name).clone())
                                .or_insert(e.to_string());
                        }
                    }
                }
                for id in ScoreId::of_kind(ScoreKind::Cost) {
                    let name = id.name();
                    if let Some(v) = sums.get_mut(name) {
                        let t0 = Instant::now();
                        *v += match id {
                            ScoreId::Params => plan.num_params as f64,
                            ScoreId::Sops => sops(&plan, &rates),
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
        let gradient: Vec<&String> = s
            .scores
            .iter()
            .filter(|n| kind_of(n) == ScoreKind::Gradient)
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
                let grads = self.backend.gradients(
                    &plan,
                    weight_seed(s.seed, w),
                    &batches,
                    crate::cpu::grad::Surrogate::default(),
                );
                match grads {
                    Ok(g) => norms.push(super::gradient::scores_of(&plan, &g).1),
                    Err(e) => return self.failed(genome, timings, format!("gradients: {e}")),
                }
            }
            let dead_grad = norms.contains(&super::gradient::GRAD_WORST);
            let gn = norms.iter().sum::<f64>() / norms.len().max(1) as f64;
            for name in gradient {
                if dead_grad {
                    failed_scores
                        .entry(name.clone())
                        .or_insert_with(|| "every gradient is zero".into());
                    continue;
                }
                let v = match name.as_str() {
                    "grad_norm" => gn,
                    _ => super::gradient::grad_rms(gn, plan.num_params),
                };
                *sums.get_mut(name).unwrap() = v * runs as f64;
            }
            for name in s
                .scores
                .iter()
                .filter(|n| kind_of(n) == ScoreKind::Gradient)
            {
                crate::engine::add_time(&mut timings, name, t0);
            }
        }
        let mut scores = BTreeMap::new();
        for name in &s.scores {
            let def = fitness::score_def(name).expect("validated score");
            let v = if failed_scores.contains_key(name) {
                def.worst
            } else {
                let v = sums[name] / runs as f64;
                if v.is_finite() {
                    v
                } else {
                    failed_scores.insert(name.clone(), "non-finite value".into());
                    def.worst
                }
            };
            scores.insert(name.clone(), v);
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
    fn settings(&self) -> &EvalSettings {
        &self.settings
    }
    fn evaluate(&mut self, genomes: &[Genome]) -> Vec<Evaluation> {
        genomes.iter().map(|g| self.evaluate_one(g)).collect()
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
            scores: scores.iter().map(|s| s.to_string()).collect(),
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
        assert!(settings(&["rdmm"]).validate().is_err());
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
