//! The training-free scores (SPEC §2.3), computed on the host from [`PopulationStats`].
//!
//! Notation: population `l` has `N_l` neurons; at step `t`, `d_H(i, j)` is the Hamming distance
//! between the spike patterns of probe samples `i` and `j`, and `r_i = counts[t][i] / N_l` is
//! sample `i`'s firing rate in that population at that step. Every mean "over l, t" weights each
//! (population, step) pair equally. A score never returns NaN: an undefined value is a
//! [`ScoreOutcome::Failed`] carrying the score's documented worst value.

use crate::cpu::spikes::PopulationStats;
use crate::stats::{log_abs_det, spearman};
use crate::{Error, Result};

/// Whether a larger or a smaller value is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Maximize,
    Minimize,
}

/// A named score: how to read it and the value a dead network or a failed computation gets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreDef {
    pub id: ScoreId,
    pub name: &'static str,
    pub direction: Direction,
    /// The documented worst value: given to dead networks and failed computations. Finite, so
    /// plots and sorting need no special case.
    pub worst: f64,
    pub formula: &'static str,
    /// Where the value comes from.
    pub kind: ScoreKind,
}

/// Where a score's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreKind {
    /// Computed by [`compute`] from the integer spike statistics of a probe batch.
    Spike,
    /// Computed from the plan or the forward pass (`params`, `sops`, `firing_rate`).
    Cost,
    /// Computed from gradients at initialisation (the engine's backward pass).
    Gradient,
    /// Needs the candidate trained (not training-free).
    Trained,
}

/// A registered score, typed: the one list of every score msenas computes. Its name is the
/// string used in configs, run folders and the CLI ([`ScoreId::name`], [`std::str::FromStr`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScoreId {
    Rdm,
    RdmLate,
    RdmRate,
    RdmCorr,
    RdmRsa,
    Sahd,
    Hamming,
    GradRms,
    GradNorm,
    ShortTrain,
    Params,
    Sops,
    FiringRate,
}

impl ScoreId {
    /// Every score, registry order.
    pub const ALL: [ScoreId; 13] = [
        ScoreId::Rdm,
        ScoreId::RdmLate,
        ScoreId::RdmRate,
        ScoreId::RdmCorr,
        ScoreId::RdmRsa,
        ScoreId::Sahd,
        ScoreId::Hamming,
        ScoreId::GradRms,
        ScoreId::GradNorm,
        ScoreId::ShortTrain,
        ScoreId::Params,
        ScoreId::Sops,
        ScoreId::FiringRate,
    ];

    /// The score's definition.
    pub fn def(self) -> &'static ScoreDef {
        &REGISTRY[self as usize]
    }
    pub fn name(self) -> &'static str {
        self.def().name
    }
    pub fn kind(self) -> ScoreKind {
        self.def().kind
    }
    pub fn direction(self) -> Direction {
        self.def().direction
    }
    /// Computable without training (every kind but [`ScoreKind::Trained`]).
    pub fn training_free(self) -> bool {
        self.kind() != ScoreKind::Trained
    }
    /// Every score of a kind, registry order.
    pub fn of_kind(kind: ScoreKind) -> impl Iterator<Item = ScoreId> {
        Self::ALL.into_iter().filter(move |s| s.kind() == kind)
    }
}

impl std::str::FromStr for ScoreId {
    type Err = Error;
    fn from_str(name: &str) -> Result<ScoreId> {
        score_def(name).map(|d| d.id)
    }
}

impl AsRef<str> for ScoreId {
    fn as_ref(&self) -> &str {
        self.name()
    }
}

impl std::fmt::Display for ScoreId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

impl serde::Serialize for ScoreId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for ScoreId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Worst value of the log-determinant scores (`sahd`, `hamming`). Any finite log-determinant
/// of a B x B kernel is far above it (|ln det| is at most a few B x ln(entry size)), and it stays
/// readable on plots, unlike `f64::MIN`.
pub const WORST_LOGDET: f64 = -1.0e9;
/// Worst value of the cost scores `params` and `sops` (minimised): above any real network.
pub const WORST_COST: f64 = 1.0e12;
/// Default number of populations `rdm_late` uses: the head and the last cell's.
pub const DEFAULT_LATE: usize = 2;

static REGISTRY: [ScoreDef; 13] = [
    ScoreDef {
        id: ScoreId::Rdm,
        name: "rdm",
        direction: Direction::Maximize,
        worst: 0.0,
        formula: "RDM[i,j] = mean over l,t of d_H(i,j)/N_l; score = mean off-diagonal entry (in [0,1])",
        kind: ScoreKind::Spike,
    },
    ScoreDef {
        id: ScoreId::RdmLate,
        name: "rdm_late",
        direction: Direction::Maximize,
        worst: 0.0,
        formula: "rdm over the last `late` populations only (default 2: the head and the last cell's; \
                  all populations when there are fewer)",
        kind: ScoreKind::Spike,
    },
    ScoreDef {
        id: ScoreId::RdmRate,
        name: "rdm_rate",
        direction: Direction::Maximize,
        worst: 0.0,
        formula: "rdm with each d_H(i,j) divided by N_l s_ij, its expectation for independent spikes at the \
                  two samples' rates (s_ij = r_i(1-r_j) + r_j(1-r_i), per l,t); a pair with s_ij = 0 (both \
                  silent or both saturated, so d_H = 0) counts 0",
        kind: ScoreKind::Spike,
    },
    ScoreDef {
        id: ScoreId::RdmCorr,
        name: "rdm_corr",
        direction: Direction::Maximize,
        worst: 0.0,
        formula: "per l, 1 - Pearson correlation across neurons of the time-summed spike counts of samples i \
                  and j (1 when either sample's counts have zero variance); mean over l; score = mean \
                  off-diagonal entry (in [0,2])",
        kind: ScoreKind::Spike,
    },
    ScoreDef {
        id: ScoreId::RdmRsa,
        name: "rdm_rsa",
        direction: Direction::Maximize,
        worst: -1.0,
        formula: "Spearman correlation (average ranks for ties) between the upper triangle of the rdm RDM and \
                  of the label RDM (0 same class, 1 different); fails when either is constant",
        kind: ScoreKind::Spike,
    },
    ScoreDef {
        id: ScoreId::Sahd,
        name: "sahd",
        direction: Direction::Maximize,
        worst: WORST_LOGDET,
        formula: "K[i,j] = sum over l,t of (N_l - d_H(i,j) / (2 s_ij + 1e-3)), s_ij = r_i(1-r_j) + r_j(1-r_i) \
                  with rates per l,t; score = ln|det K| (LU, partial pivoting, f64); a singular K fails",
        kind: ScoreKind::Spike,
    },
    ScoreDef {
        id: ScoreId::Hamming,
        name: "hamming",
        direction: Direction::Maximize,
        worst: WORST_LOGDET,
        formula: "K[i,j] = sum over l,t of (N_l - d_H(i,j)); score = ln|det K| (LU, partial pivoting, f64); \
                  a singular K fails",
        kind: ScoreKind::Spike,
    },
    ScoreDef {
        id: ScoreId::GradRms,
        name: "grad_rms",
        direction: Direction::Minimize,
        worst: WORST_COST,
        formula: "ln(||mean_m g_m|| / sqrt(P)): the log root mean square over the P parameters of the \
                  cross-entropy gradient at initialisation (through the triangle surrogate, batch \
                  statistics), averaged over 4 interleaved mini-batches of the first probe batch; lower \
                  is better; fails when every gradient is zero",
        kind: ScoreKind::Gradient,
    },
    ScoreDef {
        id: ScoreId::GradNorm,
        name: "grad_norm",
        direction: Direction::Minimize,
        worst: WORST_COST,
        formula: "ln ||mean_m g_m|| of the same gradients as grad_rms (without the size correction)",
        kind: ScoreKind::Gradient,
    },
    ScoreDef {
        id: ScoreId::ShortTrain,
        name: "short_train",
        direction: Direction::Maximize,
        worst: 0.0,
        formula: "validation accuracy after one pass over a stratified subset of the training split \
                  (search.short_train: samples, batch_size, lr; accuracy on val_samples validation samples); \
                  trains the candidate, so not training-free",
        kind: ScoreKind::Trained,
    },
    ScoreDef {
        id: ScoreId::Params,
        name: "params",
        direction: Direction::Minimize,
        worst: WORST_COST,
        formula: "parameter count (computed from the plan)",
        kind: ScoreKind::Cost,
    },
    ScoreDef {
        id: ScoreId::Sops,
        name: "sops",
        direction: Direction::Minimize,
        worst: WORST_COST,
        formula: "synaptic operations per sample (computed by the executor)",
        kind: ScoreKind::Cost,
    },
    ScoreDef {
        id: ScoreId::FiringRate,
        name: "firing_rate",
        direction: Direction::Minimize,
        worst: 1.0,
        formula: "mean spike rate (computed by the executor; 1 = every neuron fires at every step)",
        kind: ScoreKind::Cost,
    },
];

/// Every score msenas knows, spike-based or not.
pub fn registry() -> &'static [ScoreDef] {
    &REGISTRY
}

/// The definition of a named score, or an input error listing the known names.
pub fn score_def(name: &str) -> Result<&'static ScoreDef> {
    REGISTRY.iter().find(|d| d.name == name).ok_or_else(|| {
        let known: Vec<&str> = REGISTRY.iter().map(|d| d.name).collect();
        Error::input(format!(
            "unknown score `{name}`; known scores: {}",
            known.join(", ")
        ))
    })
}

/// What the spike scores see: the statistics of every LIF population (in plan order, the head
/// population last) over one probe batch, and the probe labels.
#[derive(Clone, Copy, Debug)]
pub struct ScoreInput<'a> {
    pub pops: &'a [PopulationStats],
    pub labels: &'a [u16],
    /// `rdm_late` uses the last `late` populations (all of them when there are fewer).
    pub late: usize,
}

impl<'a> ScoreInput<'a> {
    /// An input with `late` = [`DEFAULT_LATE`].
    pub fn new(pops: &'a [PopulationStats], labels: &'a [u16]) -> Self {
        ScoreInput {
            pops,
            labels,
            late: DEFAULT_LATE,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ScoreOutcome {
    Value(f64),
    /// The score is undefined for this network (e.g. "non-finite: singular kernel"); `worst` is
    /// the score's documented worst value, to be used in its place.
    Failed {
        reason: String,
        worst: f64,
    },
}

impl ScoreOutcome {
    /// The value, or the worst value of a failure: always finite.
    pub fn value_or_worst(&self) -> f64 {
        match self {
            ScoreOutcome::Value(v) => *v,
            ScoreOutcome::Failed { worst, .. } => *worst,
        }
    }
}

/// Computes the named spike score.
///
/// Errors: an unknown name (listing the known ones), a score that is not computed from spikes,
/// or an inconsistent input (no population, differing or fewer than 2 samples, labels of the
/// wrong length, malformed statistics, `late` = 0 for `rdm_late`). Dead networks are the
/// caller's rule (see [`is_dead`]); this function scores whatever it is given.
pub fn compute(name: &str, input: &ScoreInput) -> Result<ScoreOutcome> {
    let def = score_def(name)?;
    if def.kind != ScoreKind::Spike {
        return Err(Error::input(format!(
            "score `{name}` is not computed from spike statistics: {}",
            def.formula
        )));
    }
    let b = check_input(input)?;
    let pops = input.pops;
    let fail = |reason: &str| ScoreOutcome::Failed {
        reason: reason.to_string(),
        worst: def.worst,
    };
    let outcome = match name {
        "rdm" => ScoreOutcome::Value(mean_off_diagonal(&rdm_matrix(pops), b)),
        "rdm_late" => {
            if input.late == 0 {
                return Err(Error::input(
                    "rdm_late: `late` must be at least 1 population",
                ));
            }
            let late = &pops[pops.len() - input.late.min(pops.len())..];
            ScoreOutcome::Value(mean_off_diagonal(&rdm_matrix(late), b))
        }
        "rdm_rate" => ScoreOutcome::Value(mean_off_diagonal(&rdm_rate_matrix(pops), b)),
        "rdm_corr" => ScoreOutcome::Value(mean_off_diagonal(&rdm_corr_matrix(pops), b)),
        "rdm_rsa" => rdm_rsa(pops, input.labels, &fail),
        "sahd" => match log_abs_det(&sahd_kernel(pops), b) {
            Some(v) => ScoreOutcome::Value(v),
            None => fail("non-finite: singular kernel"),
        },
        "hamming" => match log_abs_det(&hamming_kernel(pops), b) {
            Some(v) => ScoreOutcome::Value(v),
            None => fail("non-finite: singular kernel"),
        },
        _ => unreachable!("registry lists spike score `{name}` without an implementation"),
    };
    Ok(match outcome {
        ScoreOutcome::Value(v) if !v.is_finite() => fail("non-finite value"),
        o => o,
    })
}

/// Checks the input and returns the probe batch size B.
fn check_input(input: &ScoreInput) -> Result<usize> {
    let first = input
        .pops
        .first()
        .ok_or_else(|| Error::input("scores need at least one population"))?;
    let b = first.b;
    for p in input.pops {
        p.validate()?;
        if p.b != b {
            return Err(Error::input(format!(
                "population `{}` has {} probe samples, population `{}` has {b}",
                p.name, p.b, first.name
            )));
        }
    }
    if b < 2 {
        return Err(Error::input(format!(
            "scores need at least 2 probe samples, got {b}"
        )));
    }
    if input.labels.len() != b {
        return Err(Error::input(format!(
            "{} labels for {b} probe samples",
            input.labels.len()
        )));
    }
    Ok(b)
}

/// The `rdm` matrix, B x B row-major: mean over l, t of `d_H(i,j) / N_l` (zero diagonal), for
/// plots. Empty when `pops` is.
///
/// # Panics
/// If the populations differ in B.
pub fn rdm_matrix(pops: &[PopulationStats]) -> Vec<f64> {
    mean_over_steps(pops, |p, t, i, j| {
        p.hamming(t, i, j) as f64 / p.neurons as f64
    })
}

/// `rdm_rate`'s matrix: mean over l, t of `d_H / (N_l s_ij)`, computed from integers as
/// `d_H N_l / (c_i (N_l - c_j) + c_j (N_l - c_i))` with `c` the spike counts; 0 when the
/// denominator is 0 (then `d_H` is 0 too: both samples silent or both saturated, so they are
/// indistinguishable there, as in `rdm`; counting it as 1 would reward silent layers in a
/// maximised score, skipping it would let a mostly silent network score like an active one).
fn rdm_rate_matrix(pops: &[PopulationStats]) -> Vec<f64> {
    mean_over_steps(pops, |p, t, i, j| {
        let n = p.neurons as u64;
        let (ci, cj) = (p.count(t, i) as u64, p.count(t, j) as u64);
        let den = ci * (n - cj) + cj * (n - ci);
        if den == 0 {
            0.0
        } else {
            (p.hamming(t, i, j) as u64 * n) as f64 / den as f64
        }
    })
}

/// Mean over every (population, step) of `dist(pop, t, i, j)` for i < j, mirrored, zero
/// diagonal.
fn mean_over_steps(
    pops: &[PopulationStats],
    dist: impl Fn(&PopulationStats, usize, usize, usize) -> f64,
) -> Vec<f64> {
    let Some(first) = pops.first() else {
        return Vec::new();
    };
    let b = first.b;
    let mut m = vec![0.0; b * b];
    let mut steps = 0usize;
    for p in pops {
        assert_eq!(
            p.b, b,
            "population `{}` has {} probe samples, `{}` has {b}",
            p.name, p.b, first.name
        );
        for t in 0..p.t {
            steps += 1;
            for i in 0..b {
                for j in i + 1..b {
                    m[i * b + j] += dist(p, t, i, j);
                }
            }
        }
    }
    let steps = steps.max(1) as f64;
    for i in 0..b {
        for j in i + 1..b {
            m[i * b + j] /= steps;
            m[j * b + i] = m[i * b + j];
        }
    }
    m
}

/// `rdm_corr`'s matrix: mean over l of `1 - pearson(C_i, C_j)` across the neurons of l, with
/// `C_i` the time-summed spike counts. The Pearson terms are exact integers
/// (`N sum C_i C_j - sum C_i sum C_j`, and the same for the variances) until the final division.
/// A sample whose counts are constant across the neurons (silent, saturated, or a single neuron)
/// has no correlation; its distance to every other sample is defined as 1, the value of
/// uncorrelated patterns. Zero diagonal.
fn rdm_corr_matrix(pops: &[PopulationStats]) -> Vec<f64> {
    let Some(first) = pops.first() else {
        return Vec::new();
    };
    let b = first.b;
    let mut m = vec![0.0; b * b];
    for p in pops {
        assert_eq!(
            p.b, b,
            "population `{}` has {} probe samples, `{}` has {b}",
            p.name, p.b, first.name
        );
        let n = p.neurons as i128;
        let totals: Vec<i128> = (0..b).map(|i| p.total(i) as i128).collect();
        let var: Vec<i128> = (0..b)
            .map(|i| n * p.dot(i, i) as i128 - totals[i] * totals[i])
            .collect();
        for i in 0..b {
            for j in i + 1..b {
                let d = if var[i] == 0 || var[j] == 0 {
                    1.0
                } else {
                    let cov = n * p.dot(i, j) as i128 - totals[i] * totals[j];
                    let r = cov as f64 / ((var[i] as f64).sqrt() * (var[j] as f64).sqrt());
                    1.0 - r.clamp(-1.0, 1.0)
                };
                m[i * b + j] += d;
            }
        }
    }
    for i in 0..b {
        for j in i + 1..b {
            m[i * b + j] /= pops.len() as f64;
            m[j * b + i] = m[i * b + j];
        }
    }
    m
}

fn rdm_rsa(
    pops: &[PopulationStats],
    labels: &[u16],
    fail: &dyn Fn(&str) -> ScoreOutcome,
) -> ScoreOutcome {
    let b = labels.len();
    let rdm = rdm_matrix(pops);
    let mut model = Vec::with_capacity(b * (b - 1) / 2);
    let mut label_rdm = Vec::with_capacity(b * (b - 1) / 2);
    for i in 0..b {
        for j in i + 1..b {
            model.push(rdm[i * b + j]);
            label_rdm.push(if labels[i] == labels[j] { 0.0 } else { 1.0 });
        }
    }
    if label_rdm.iter().all(|&v| v == label_rdm[0]) {
        return fail("non-finite: constant label RDM (Spearman undefined)");
    }
    if model.iter().all(|&v| v == model[0]) {
        return fail("non-finite: constant RDM (Spearman undefined)");
    }
    ScoreOutcome::Value(spearman(&model, &label_rdm))
}

/// SAHD kernel (SNASNet's form as SPEC §2.3 fixes it): `N_l - d_H / (2 s_ij + 1e-3)` summed over
/// l, t, with the rates `r = count / N_l` of that population at that step. Where `s_ij = 0`,
/// `d_H = 0` and the term is `N_l`.
fn sahd_kernel(pops: &[PopulationStats]) -> Vec<f64> {
    let b = pops[0].b;
    let mut k = vec![0.0; b * b];
    for p in pops {
        let n = p.neurons as f64;
        for t in 0..p.t {
            for i in 0..b {
                k[i * b + i] += n;
                let ri = p.count(t, i) as f64 / n;
                for j in i + 1..b {
                    let rj = p.count(t, j) as f64 / n;
                    let s = ri * (1.0 - rj) + rj * (1.0 - ri);
                    k[i * b + j] += n - p.hamming(t, i, j) as f64 / (2.0 * s + 1e-3);
                }
            }
        }
    }
    mirror_upper(&mut k, b);
    k
}

/// NASWOT's kernel on spikes: `sum over l, t of (N_l - d_H)`, an exact integer.
fn hamming_kernel(pops: &[PopulationStats]) -> Vec<f64> {
    let b = pops[0].b;
    let mut k = vec![0u64; b * b];
    for p in pops {
        let n = p.neurons as u64;
        for t in 0..p.t {
            for i in 0..b {
                for j in i..b {
                    k[i * b + j] += n - p.hamming(t, i, j) as u64;
                }
            }
        }
    }
    let mut k: Vec<f64> = k.into_iter().map(|v| v as f64).collect();
    mirror_upper(&mut k, b);
    k
}

fn mirror_upper(m: &mut [f64], b: usize) {
    for i in 0..b {
        for j in i + 1..b {
            m[j * b + i] = m[i * b + j];
        }
    }
}

fn mean_off_diagonal(m: &[f64], b: usize) -> f64 {
    let mut s = 0.0;
    for i in 0..b {
        for j in 0..b {
            if i != j {
                s += m[i * b + j];
            }
        }
    }
    s / (b * (b - 1)) as f64
}

/// Dead network test on the head population: every probe sample emits the same spike pattern
/// at every step (all Hamming distances zero), so the logits cannot depend on the input.
pub fn is_dead(head: &PopulationStats) -> bool {
    head.hamming_per_t.iter().all(|&d| d == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::spikes::{population_stats, PopulationSpikes};

    /// Stats from rows of '0'/'1' characters, `rows[t][i]`, neuron 0 first.
    fn pop(name: &str, rows: &[&[&str]]) -> PopulationStats {
        let t = rows.len();
        let b = rows[0].len();
        let n = rows[0][0].len();
        let dense: Vec<f32> = rows
            .iter()
            .flat_map(|step| {
                step.iter()
                    .flat_map(|r| r.bytes().map(|c| (c == b'1') as u8 as f32))
            })
            .collect();
        population_stats(&PopulationSpikes::from_dense(name, n, t, b, &dense))
    }

    /// The two-population hand case, T = 1, B = 3:
    /// A (N = 4): s0 = 1100, s1 = 1010, s2 = 0000. d01 = d02 = d12 = 2; counts 2, 2, 0.
    /// B (N = 2): s0 = 10, s1 = 10, s2 = 11.       d01 = 0, d02 = d12 = 1; counts 1, 1, 2.
    fn hand() -> Vec<PopulationStats> {
        vec![
            pop("a", &[&["1100", "1010", "0000"]]),
            pop("b", &[&["10", "10", "11"]]),
        ]
    }

    fn value(name: &str, pops: &[PopulationStats], labels: &[u16], late: usize) -> f64 {
        match compute(name, &ScoreInput { pops, labels, late }).unwrap() {
            ScoreOutcome::Value(v) => v,
            f => panic!("{name}: {f:?}"),
        }
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn score_ids_are_the_registry_in_order_and_round_trip_by_name() {
        assert_eq!(ScoreId::ALL.len(), registry().len());
        for (i, id) in ScoreId::ALL.into_iter().enumerate() {
            assert_eq!(registry()[i].id, id);
            assert_eq!(id.name().parse::<ScoreId>().unwrap(), id);
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(json, format!("\"{}\"", id.name()));
            assert_eq!(serde_json::from_str::<ScoreId>(&json).unwrap(), id);
        }
        let e = "rdmm".parse::<ScoreId>().unwrap_err().to_string();
        assert!(
            e.contains("unknown score `rdmm`; known scores: rdm, rdm_late"),
            "{e}"
        );
        let cost: Vec<&str> = ScoreId::of_kind(ScoreKind::Cost)
            .map(|s| s.name())
            .collect();
        assert_eq!(cost, ["params", "sops", "firing_rate"]);
        let trained: Vec<ScoreId> = ScoreId::ALL
            .into_iter()
            .filter(|s| !s.training_free())
            .collect();
        assert_eq!(trained, [ScoreId::ShortTrain]);
    }

    #[test]
    fn rdm_hand_case() {
        // A: 2/4 = 0.5 for every pair. B: 0/2, 1/2, 1/2. Mean over l:
        // (0,1) 0.25, (0,2) 0.5, (1,2) 0.5; score = 1.25 / 3.
        let pops = hand();
        let m = rdm_matrix(&pops);
        assert_eq!(m, vec![0.0, 0.25, 0.5, 0.25, 0.0, 0.5, 0.5, 0.5, 0.0]);
        close(value("rdm", &pops, &[0, 1, 2], 2), 1.25 / 3.0);
    }

    #[test]
    fn rdm_late_hand_case() {
        // late = 1: population b only: (0 + 0.5 + 0.5) / 3. late = 2 or more: all of them.
        let pops = hand();
        close(value("rdm_late", &pops, &[0, 1, 2], 1), 1.0 / 3.0);
        close(value("rdm_late", &pops, &[0, 1, 2], 2), 1.25 / 3.0);
        close(value("rdm_late", &pops, &[0, 1, 2], 9), 1.25 / 3.0);
        assert!(compute(
            "rdm_late",
            &ScoreInput {
                pops: &pops,
                labels: &[0, 1, 2],
                late: 0
            }
        )
        .is_err());
    }

    #[test]
    fn rdm_rate_hand_case() {
        // A: r = .5, .5, 0. N s: (0,1) 4(.25+.25) = 2, (0,2) 4(.5) = 2, (1,2) 2; ratios 2/2 = 1.
        // B: r = .5, .5, 1. N s: (0,1) 2(.5) = 1 -> 0/1 = 0; (0,2) 2(.5*0 + 1*.5) = 1 -> 1/1 = 1;
        // (1,2) 1. Mean over l: 0.5, 1, 1; score = 2.5 / 3.
        close(value("rdm_rate", &hand(), &[0, 1, 2], 2), 2.5 / 3.0);
        // Both samples silent (s = 0): the pair counts 0. Sample 2 fires 1 of 2: N s = 2(.5) = 1,
        // d = 1, ratio 1 for (0,2) and (1,2); score = (0 + 1 + 1) / 3.
        close(
            value(
                "rdm_rate",
                &[pop("s", &[&["00", "00", "10"]])],
                &[0, 1, 2],
                2,
            ),
            2.0 / 3.0,
        );
    }

    #[test]
    fn rdm_corr_hand_case() {
        // Hand populations (T = 1, counts = spikes):
        // A: C0 = [1,1,0,0], C1 = [1,0,1,0]: centred [.5,.5,-.5,-.5] . [.5,-.5,.5,-.5] = 0, r = 0,
        //    distance 1; C2 = 0 has zero variance: distance 1 to both.
        // B: C0 = C1 = [1,0]: r = 1, distance 0; C2 = [1,1] zero variance: distance 1.
        // Mean over l: 0.5, 1, 1; score = 2.5 / 3.
        close(value("rdm_corr", &hand(), &[0, 1, 2], 2), 2.5 / 3.0);
        // One population, T = 2, N = 3: t0 rows 110, 100, 011; t1 rows 100, 110, 010.
        // C0 = [2,1,0], C1 = [2,1,0], C2 = [0,2,1] (all means 1).
        // r01 = 1 -> 0. r02: centred [1,0,-1] . [-1,1,0] = -1, norms sqrt 2, sqrt 2: r = -0.5 ->
        // 1.5; r12 the same. Score = (0 + 1.5 + 1.5) / 3 = 1.
        let p = pop("t2", &[&["110", "100", "011"], &["100", "110", "010"]]);
        assert_eq!(p.summed_dot, vec![5, 5, 2, 5, 5, 2, 2, 2, 5]);
        close(
            value("rdm_corr", std::slice::from_ref(&p), &[0, 1, 2], 2),
            1.0,
        );
        // rdm of the same population: t0 d = 1, 2, 3; t1 d = 1, 2, 1. Mean over t / 3:
        // 1/3, 2/3, 2/3; score = 5/9.
        close(value("rdm", &[p], &[0, 1, 2], 2), 5.0 / 9.0);
    }

    #[test]
    fn rdm_rsa_hand_case() {
        // RDM upper triangle [0.25, 0.5, 0.5] -> ranks [1, 2.5, 2.5].
        // Labels [0,0,1]: label RDM [0, 1, 1] -> same ranks: Spearman 1.
        close(value("rdm_rsa", &hand(), &[0, 0, 1], 2), 1.0);
        // Labels [0,1,0]: label RDM [1, 0, 1] -> ranks [2.5, 1, 2.5]; centred [-1,.5,.5] and
        // [.5,-1,.5]: dot -0.75, norms^2 1.5: Spearman -0.5.
        close(value("rdm_rsa", &hand(), &[0, 1, 0], 2), -0.5);
        // A single class: undefined, the named failure with the worst value -1.
        match compute("rdm_rsa", &ScoreInput::new(&hand(), &[4, 4, 4])).unwrap() {
            ScoreOutcome::Failed { reason, worst } => {
                assert!(reason.contains("label"), "{reason}");
                assert_eq!(worst, -1.0);
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn hamming_hand_case() {
        // K = sum_l (N_l - d): diagonal 4 + 2 = 6; (0,1) (4-2) + (2-0) = 4; (0,2) 2 + 1 = 3;
        // (1,2) 3. det [[6,4,3],[4,6,3],[3,3,6]] = 6(36-9) - 4(24-9) + 3(12-18) = 84.
        close(value("hamming", &hand(), &[0, 1, 2], 2), 84f64.ln());
    }

    #[test]
    fn sahd_hand_case() {
        // A: s = .5 for every pair (r = .5, .5, 0), d = 2: term 4 - 2/1.001; diagonal 4.
        // B: r = .5, .5, 1; s01 = .5, d = 0: term 2; s02 = s12 = .5, d = 1: term 2 - 1/1.001.
        // K = [[6,a,c],[a,6,c],[c,c,6]] with a = 6 - 2/1.001, c = 6 - 3/1.001;
        // det = 216 - 6a^2 - 12c^2 + 2ac^2.
        let a = 6.0 - 2.0 / 1.001;
        let c = 6.0 - 3.0 / 1.001;
        let det: f64 = 216.0 - 6.0 * a * a - 12.0 * c * c + 2.0 * a * c * c;
        close(value("sahd", &hand(), &[0, 1, 2], 2), det.abs().ln());
    }

    #[test]
    fn dead_head_detected() {
        assert!(!is_dead(&hand()[1]));
        assert!(is_dead(&pop(
            "head",
            &[&["101", "101", "101"], &["011", "011", "011"]]
        )));
        assert!(!is_dead(&pop(
            "head",
            &[&["101", "101", "101"], &["011", "011", "010"]]
        )));
    }

    #[test]
    fn registry_and_errors() {
        let names: Vec<&str> = registry().iter().map(|d| d.name).collect();
        for n in [
            "rdm",
            "rdm_late",
            "rdm_rate",
            "rdm_corr",
            "rdm_rsa",
            "sahd",
            "hamming",
            "params",
            "sops",
            "firing_rate",
            "grad_rms",
            "grad_norm",
            "short_train",
        ] {
            assert!(names.contains(&n), "{n}");
        }
        assert!(registry().iter().all(|d| d.worst.is_finite()));
        let pops = hand();
        let e = compute("nope", &ScoreInput::new(&pops, &[0, 1, 2]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("nope") && e.contains("rdm_corr") && e.contains("sahd"),
            "{e}"
        );
        assert!(compute("params", &ScoreInput::new(&pops, &[0, 1, 2])).is_err());
        assert!(compute("rdm", &ScoreInput::new(&pops, &[0, 1])).is_err());
        assert!(compute("rdm", &ScoreInput::new(&[], &[])).is_err());
        let mixed = vec![hand()[0].clone(), pop("x", &[&["1", "0"]])];
        assert!(compute("rdm", &ScoreInput::new(&mixed, &[0, 1, 2])).is_err());
        let one = vec![pop("x", &[&["1"]])];
        assert!(compute("rdm", &ScoreInput::new(&one, &[0])).is_err());
    }

    /// Every spike score on a degenerate probe is finite or a named failure with a finite worst.
    fn assert_no_nan(
        pops: &[PopulationStats],
        labels: &[u16],
    ) -> Vec<(&'static str, ScoreOutcome)> {
        let mut out = Vec::new();
        for d in registry().iter().filter(|d| d.kind == ScoreKind::Spike) {
            let o = compute(d.name, &ScoreInput::new(pops, labels)).unwrap();
            match &o {
                ScoreOutcome::Value(v) => assert!(v.is_finite(), "{}: {v}", d.name),
                ScoreOutcome::Failed { reason, worst } => {
                    assert!(worst.is_finite() && !reason.is_empty(), "{}", d.name);
                    assert_eq!(*worst, d.worst);
                }
            }
            out.push((d.name, o));
        }
        out
    }

    fn constant_pops(bit: f32, t: usize, b: usize) -> Vec<PopulationStats> {
        [5usize, 33, 64]
            .iter()
            .map(|&n| {
                population_stats(&PopulationSpikes::from_dense(
                    format!("p{n}"),
                    n,
                    t,
                    b,
                    &vec![bit; t * b * n],
                ))
            })
            .collect()
    }

    #[test]
    fn no_nan_all_silent_or_all_firing() {
        for bit in [0.0, 1.0] {
            let pops = constant_pops(bit, 3, 4);
            assert!(is_dead(pops.last().unwrap()));
            let out = assert_no_nan(&pops, &[0, 0, 1, 1]);
            let get = |n: &str| out.iter().find(|(k, _)| *k == n).unwrap().1.clone();
            assert_eq!(get("rdm"), ScoreOutcome::Value(0.0));
            assert_eq!(get("rdm_rate"), ScoreOutcome::Value(0.0));
            assert_eq!(get("rdm_corr"), ScoreOutcome::Value(1.0));
            assert!(matches!(get("sahd"), ScoreOutcome::Failed { .. }));
            assert!(matches!(get("hamming"), ScoreOutcome::Failed { .. }));
            assert!(matches!(get("rdm_rsa"), ScoreOutcome::Failed { .. }));
        }
    }

    #[test]
    fn no_nan_duplicate_samples() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let (t, b) = (3, 5);
        let pops: Vec<PopulationStats> = [7usize, 40]
            .iter()
            .map(|&n| {
                let mut dense: Vec<f32> = (0..t * b * n)
                    .map(|_| rng.random_bool(0.4) as u8 as f32)
                    .collect();
                for step in 0..t {
                    // Sample 3 repeats sample 1 exactly.
                    let (src, dst) = ((step * b + 1) * n, (step * b + 3) * n);
                    dense.copy_within(src..src + n, dst);
                }
                population_stats(&PopulationSpikes::from_dense(
                    format!("p{n}"),
                    n,
                    t,
                    b,
                    &dense,
                ))
            })
            .collect();
        let out = assert_no_nan(&pops, &[0, 1, 2, 0, 1]);
        for (name, o) in out {
            if name == "sahd" || name == "hamming" {
                assert_eq!(
                    o,
                    ScoreOutcome::Failed {
                        reason: "non-finite: singular kernel".into(),
                        worst: WORST_LOGDET
                    }
                );
            }
        }
    }
}
