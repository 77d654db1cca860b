//! Extra scores for the ranking benchmark, computed afterwards for the rows already in
//! `proxy.csv` (`msenas proxy-bench --rescore`): nothing is retrained, so a new score costs only
//! its own computation. The values go to `extra_scores.csv` beside `proxy.csv` and join the
//! summary as further columns.
//!
//! - `rdm_mem`: the RDM from membrane potentials instead of spikes. Per population and step,
//!   `d(i, j) = 1 - r(v_i, v_j)` with `r` the Pearson correlation across neurons of the
//!   pre-reset membranes of probe samples `i` and `j` (1 when either is constant); averaged over
//!   populations and steps; the score is the mean off-diagonal entry (as `rdm`).
//! - `rdm_mem_rsa`: Spearman correlation between that membrane RDM and the label RDM (as
//!   `rdm_rsa`).
//! - `rsa_ref`: RSA against one briefly trained reference network: the spike RDM (`d = mean
//!   |s_i - s_j|` over neurons, averaged over populations and steps) of the candidate at
//!   initialisation, Spearman-correlated with the spike RDM of a reference network on the same
//!   probe. The reference is the first architecture sampled from the same space (its own seed)
//!   that, trained under the benchmark's budget (the same epochs, data and rate as every row),
//!   reaches twice chance validation accuracy (after 8 tries, the best of them, with a warning).
//!
//! Every candidate runs with the benchmark's weights (`weight_seed(seed, 0)`) on its first probe
//! batch, with batch statistics. Dead or failed rows get the worst values (0, -1, -1).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::columns::EXTRA;
use super::proxy::Row;
use crate::engine::ProbeBatch;
use crate::engine::{init_params, LifParams};
use crate::fitness::evaluate::{derive_seed, weight_seed};
use crate::genome::Genome;
use crate::plan::{Op, Plan};
use crate::stats::spearman;
use crate::train::{self, backprop, Network};
use crate::{Error, Result};

/// Worst values, in the order of [`EXTRA`].
const WORST: [f64; 3] = [0.0, -1.0, -1.0];

/// The file beside `proxy.csv`.
pub const EXTRA_CSV: &str = "extra_scores.csv";

/// Spike and membrane RDMs (`b x b`, row-major) of one network on one probe batch.
#[derive(Clone, Debug)]
pub struct Rdms {
    pub b: usize,
    pub spikes: Vec<f64>,
    pub membrane: Vec<f64>,
}

/// Runs `plan` with `params` on `batch` (batch statistics) and averages the per-population,
/// per-step RDMs over populations and steps.
pub fn rdms(plan: &Plan, params: &[f32], batch: &ProbeBatch, t: usize) -> Rdms {
    let b = batch.len();
    let tape = backprop::forward_tape(
        plan,
        params,
        &batch.input,
        t,
        b,
        LifParams::default(),
        train::BN_EPS,
        backprop::Hooks::default(),
    );
    let mut spikes = vec![0.0f64; b * b];
    let mut membrane = vec![0.0f64; b * b];
    let mut terms = 0usize;
    for op in &plan.ops {
        let Op::Lif { s, pop, .. } = op else { continue };
        let sv = tape.tensors[*s].as_deref().expect("spikes on the tape");
        let vv = &tape.v_pre[*pop];
        let n = sv.len() / (t * b);
        if n == 0 {
            continue;
        }
        for step in 0..t {
            let row = |data: &[f32], i: usize| {
                let at = (step * b + i) * n;
                data[at..at + n].to_vec()
            };
            // Centred, unit-norm membranes (None: constant).
            let unit: Vec<Option<Vec<f64>>> = (0..b)
                .map(|i| {
                    let v = row(vv, i);
                    let mu = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
                    let c: Vec<f64> = v.iter().map(|&x| f64::from(x) - mu).collect();
                    let norm = c.iter().map(|x| x * x).sum::<f64>().sqrt();
                    (norm > 0.0).then(|| c.iter().map(|x| x / norm).collect())
                })
                .collect();
            let srows: Vec<Vec<f32>> = (0..b).map(|i| row(sv, i)).collect();
            for i in 0..b {
                for j in i + 1..b {
                    let d_s = srows[i]
                        .iter()
                        .zip(&srows[j])
                        .filter(|(a, c)| a != c)
                        .count() as f64
                        / n as f64;
                    let d_m = match (&unit[i], &unit[j]) {
                        (Some(a), Some(c)) => {
                            1.0 - a.iter().zip(c).map(|(x, y)| x * y).sum::<f64>()
                        }
                        _ => 1.0,
                    };
                    spikes[i * b + j] += d_s;
                    membrane[i * b + j] += d_m;
                }
            }
            terms += 1;
        }
    }
    let div = terms.max(1) as f64;
    for i in 0..b {
        for j in i + 1..b {
            for m in [&mut spikes, &mut membrane] {
                m[i * b + j] /= div;
                m[j * b + i] = m[i * b + j];
            }
        }
    }
    Rdms {
        b,
        spikes,
        membrane,
    }
}

fn upper(m: &[f64], b: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(b * (b - 1) / 2);
    for i in 0..b {
        for j in i + 1..b {
            out.push(m[i * b + j]);
        }
    }
    out
}

/// Spearman correlation, -1 (the worst value) where it is undefined (a constant side).
fn rsa(x: &[f64], y: &[f64]) -> f64 {
    let constant = |v: &[f64]| v.iter().all(|&a| a == v[0]);
    if x.len() < 2 || constant(x) || constant(y) {
        return -1.0;
    }
    let r = spearman(x, y);
    if r.is_finite() {
        r
    } else {
        -1.0
    }
}

/// The three extra scores of one candidate given the reference's spike RDM.
pub fn extra_scores(cand: &Rdms, labels: &[u16], reference: &Rdms) -> [f64; 3] {
    let b = cand.b;
    let mem = upper(&cand.membrane, b);
    let rdm_mem = mem.iter().sum::<f64>() / mem.len().max(1) as f64;
    let label_rdm: Vec<f64> = {
        let mut v = Vec::new();
        for i in 0..b {
            for j in i + 1..b {
                v.push(if labels[i] == labels[j] { 0.0 } else { 1.0 });
            }
        }
        v
    };
    [
        rdm_mem,
        rsa(&mem, &label_rdm),
        rsa(
            &upper(&cand.spikes, b),
            &upper(&reference.spikes, reference.b),
        ),
    ]
}

/// What [`rescore`] needs from the benchmark run.
pub struct RescoreInput<'a> {
    pub cfg: &'a crate::evolve::config::Config,
    /// The dataset as the benchmark used it (budget training split, evaluation subsets).
    pub train_ds: &'a crate::data::Dataset,
    pub batch: &'a ProbeBatch,
    pub genomes: &'a [Genome],
}

/// Trains the reference, then computes the extra scores of every row; returns the scores per
/// row index and the reference's validation accuracy.
pub fn rescore(
    input: &RescoreInput,
    rows: &[Row],
    work: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<(BTreeMap<usize, [f64; 3]>, f64)> {
    let cfg = input.cfg;
    let t = cfg.space.timesteps;
    let spec = input.train_ds.spec;
    let mut rng = StdRng::seed_from_u64(derive_seed(cfg.seed, "proxy-reference", 0));
    // The reference must have learned something: the first sampled architecture whose
    // validation accuracy reaches twice chance (at most 8 tries; a dead one cannot).
    let chance = 1.0 / spec.classes.max(1) as f64;
    let mut found = None;
    for attempt in 0..8u64 {
        let genome = cfg.space.sample(&mut rng);
        let net = Network::from_genome(genome, &spec, cfg.space.width, cfg.space.reduce_kernel)?;
        let seed = derive_seed(cfg.seed, "proxy-reference-train", attempt);
        let dir = work.join("reference");
        let result = train::train(&net, input.train_ds, &cfg.train, seed, &dir)?;
        let (_, params, _) = train::load_model(&dir.join("model.ckpt"))?;
        let _ = std::fs::remove_dir_all(&dir);
        log(&format!(
            "reference try {attempt}: {} ({} parameters), validation accuracy {:.3}",
            net.plan.key, net.plan.num_params, result.best_val_acc
        ));
        let good = result.best_val_acc >= 2.0 * chance;
        let better = found
            .as_ref()
            .is_none_or(|(_, _, acc): &(Network, Vec<f32>, f64)| result.best_val_acc > *acc);
        if better {
            found = Some((net, params, result.best_val_acc));
        }
        if good {
            break;
        }
    }
    let (net, ref_params, ref_acc) = found.expect("at least one try");
    if ref_acc < 2.0 * chance {
        log(&format!(
            "warning: no reference reached twice chance accuracy in 8 tries; using the best \
             ({ref_acc:.3}): rsa_ref is not meaningful for this budget"
        ));
    }
    let reference = rdms(&net.plan, &ref_params, input.batch, t);
    let mut out = BTreeMap::new();
    for r in rows {
        let g = input
            .genomes
            .get(r.index)
            .ok_or_else(|| Error::input(format!("row {} is outside the sample", r.index)))?;
        if r.status != "ok" {
            out.insert(r.index, WORST);
            continue;
        }
        let plan = Plan::compile(g, &spec, cfg.space.width, cfg.space.reduce_kernel)
            .map_err(|e| Error::input(format!("row {}: {e}", r.index)))?;
        let params = init_params(&plan, weight_seed(cfg.seed, 0));
        let cand = rdms(&plan, &params, input.batch, t);
        let v = extra_scores(&cand, &input.batch.labels, &reference);
        log(&format!(
            "[{:3}] rdm_mem {:.4} rdm_mem_rsa {:+.3} rsa_ref {:+.3}",
            r.index, v[0], v[1], v[2]
        ));
        out.insert(r.index, v);
    }
    Ok((out, ref_acc))
}

/// The column names of [`EXTRA`], comma-separated.
fn extra_header() -> String {
    EXTRA.map(|c| c.name()).join(",")
}

/// Writes `extra_scores.csv` (index, key hash, the extra columns) atomically.
pub fn write_csv(path: &Path, rows: &[Row], scores: &BTreeMap<usize, [f64; 3]>) -> Result<()> {
    let mut text = format!("index,key_hash,{}\n", extra_header());
    for r in rows {
        if let Some(v) = scores.get(&r.index) {
            let _ = writeln!(
                text,
                "{},{},{},{},{}",
                r.index, r.key_hash, v[0], v[1], v[2]
            );
        }
    }
    crate::fsio::write_atomic(path, text.as_bytes())
}

/// Adds the columns of `extra_scores.csv` (when it exists) to the rows' scores. A row whose key
/// hash differs is refused (the file belongs to another sample).
pub fn merge(path: &Path, rows: &mut [Row]) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let text = crate::fsio::read_text(path, "score table")?;
    let mut lines = text.lines();
    let want = format!("index,key_hash,{}", extra_header());
    if lines.next() != Some(want.as_str()) {
        return Err(Error::input(format!(
            "{}: header differs (expected `{want}`)",
            path.display()
        )));
    }
    let mut by_index: BTreeMap<usize, (String, [f64; 3])> = BTreeMap::new();
    for (ln, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let bad = || Error::input(format!("{}: line {}: malformed", path.display(), ln + 2));
        if f.len() != 2 + EXTRA.len() {
            return Err(bad());
        }
        let idx: usize = f[0].parse().map_err(|_| bad())?;
        let mut v = [0.0; 3];
        for (k, x) in v.iter_mut().enumerate() {
            *x = f[2 + k].parse().map_err(|_| bad())?;
        }
        by_index.insert(idx, (f[1].to_string(), v));
    }
    for r in rows.iter_mut() {
        if let Some((hash, v)) = by_index.get(&r.index) {
            if *hash != r.key_hash {
                return Err(Error::input(format!(
                    "{}: row {} belongs to another sample",
                    path.display(),
                    r.index
                )));
            }
            for (k, c) in EXTRA.into_iter().enumerate() {
                r.scores.insert(c, v[k]);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rd(b: usize, spikes: Vec<f64>, membrane: Vec<f64>) -> Rdms {
        Rdms {
            b,
            spikes,
            membrane,
        }
    }

    #[test]
    fn extra_scores_by_hand() {
        // 3 samples; labels 0, 0, 1: label RDM upper triangle (0, 1, 1).
        let labels = [0u16, 0, 1];
        let m = |a: f64, b: f64, c: f64| vec![0.0, a, b, a, 0.0, c, b, c, 0.0];
        let cand = rd(3, m(0.1, 0.5, 0.4), m(0.2, 0.8, 0.6));
        let reference = rd(3, m(0.2, 0.9, 0.7), m(0.0, 0.0, 0.0));
        let v = extra_scores(&cand, &labels, &reference);
        assert!((v[0] - (0.2 + 0.8 + 0.6) / 3.0).abs() < 1e-12);
        // membrane (0.2, 0.8, 0.6) vs labels (0, 1, 1): ranks (1, 3, 2) vs (1, 2.5, 2.5)
        let expect = spearman(&[0.2, 0.8, 0.6], &[0.0, 1.0, 1.0]);
        assert!((v[1] - expect).abs() < 1e-12 && expect > 0.0);
        // same order of the spike RDMs: +1
        assert!((v[2] - 1.0).abs() < 1e-12);
        // a constant reference is undefined: worst
        let flat = rd(3, m(0.3, 0.3, 0.3), m(0.0, 0.0, 0.0));
        assert_eq!(extra_scores(&cand, &labels, &flat)[2], -1.0);
    }

    #[test]
    fn membrane_rdm_of_identical_samples_is_zero() {
        let mut cfg = crate::evolve::config::preset("tiny").unwrap();
        cfg.space.timesteps = 2;
        let ds = crate::evolve::search::load_data(&cfg).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let g = cfg.space.sample(&mut rng);
        let plan = Plan::compile(&g, &ds.spec, cfg.space.width, cfg.space.reduce_kernel).unwrap();
        let params = init_params(&plan, 7);
        // samples 0 and 1 are the same image, sample 2 another one
        let idx = [0usize, 0, 5];
        let batch = ProbeBatch {
            indices: idx.to_vec(),
            labels: ds.train.labels_of(&idx),
            input: ds.train.batch(&idx, 1),
        };
        let r = rdms(&plan, &params, &batch, 2);
        assert!(r.membrane[1].abs() < 1e-9, "{}", r.membrane[1]);
        assert_eq!(r.spikes[1], 0.0);
        assert!(r.membrane[2] > 0.0 && r.spikes[2] > 0.0);
        assert_eq!(r.membrane[2], r.membrane[6]);
    }
}
