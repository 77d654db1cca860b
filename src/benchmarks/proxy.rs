//! The proxy ranking benchmark (SPEC §5, "ranking quality"): how well does each training-free
//! score rank architectures by their trained accuracy?
//!
//! [`run`] samples `archs` genomes with distinct canonical keys from the configured search space,
//! computes for each one every spike score, the cost scores, a few variants and a short-training
//! baseline, then trains it with `train_seeds` seeds under one budget, appending one row per
//! architecture to `proxy.csv` (a rerun skips the rows already there). [`summarise`] turns the
//! rows into Kendall / Spearman correlations with bootstrap intervals, the seed-to-seed ceiling
//! and partial correlations given parameter count; [`write_report`] writes them as JSON,
//! markdown and a scatter-plot PNG.
//!
//! Scores per architecture (columns of the CSV):
//! - `rdm` ... `params`: the registry scores on one probe batch and one weight seed;
//! - `rdm_avg9`: `rdm` averaged over 3 probe batches x 3 weight seeds;
//! - `hamming_norm`, `sahd_norm`: `log|det(K / P)| = log|det K| - B ln P` with `P` the number of
//!   (population, step) pairs summed into K, so deeper networks do not score higher by summing
//!   more terms;
//! - `zico`: a ZiCo-style gradient statistic at initialisation through the surrogate: the probe
//!   batch is cut into `M` interleaved mini-batches, the cross-entropy gradient of each is taken
//!   with [`crate::train::backprop`], and for every weight tensor `log(sum_j mean_m|g_mj| / std_m g_mj)` is
//!   summed over tensors (high when gradients are large *and* agree across samples);
//! - `grad_norm`: `log ||mean_m g_m||` of the same gradients;
//! - `short_train`: validation accuracy after one short pass over a small stratified subset of
//!   the training split (the honest upper baseline, not training-free).
//!
//! Derived over the sample at summary time: `rank_rdm_params` (mean of the ranks of `rdm` and
//! `params`), `rank_grad_params` (mean of the ranks of `-grad_rms` and `params`, over live
//! networks), `rdm_resid` / `zico_resid` (the residual of the score after a least-squares fit
//! on `ln params`, over live networks: "compared within equal size") and `grad_rms`
//! (`grad_norm - ln(params) / 2`, see [`crate::fitness::gradient`]).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;

use super::columns::{Column, DERIVED, EXTRA, MEASURED};
use crate::data::Dataset;
use crate::engine::Surrogate;
use crate::evolve::config::Config;
use crate::evolve::search::load_data;
use crate::fitness::evaluate::{
    derive_seed, weight_seed, EngineEvaluator, EvalSettings, Probe, Status,
};
pub use crate::fitness::gradient::{gradient_scores, GRAD_WORST};
use crate::fitness::scores::Direction;
use crate::fitness::ScoreId;
use crate::genome::Genome;
use crate::plan::Plan;
use crate::report::plot;
use crate::stats::{
    bootstrap_ci, kendall_tau_b, partial_kendall, partial_kendall_given, ranks, spearman,
};
use crate::train::{self, Network};
use crate::{Error, Result};

/// The registry scores computed on one probe batch and one weight seed.
pub const BASE_SCORES: [ScoreId; 10] = [
    ScoreId::Rdm,
    ScoreId::RdmLate,
    ScoreId::RdmRate,
    ScoreId::RdmCorr,
    ScoreId::RdmRsa,
    ScoreId::Sahd,
    ScoreId::Hamming,
    ScoreId::FiringRate,
    ScoreId::Sops,
    ScoreId::Params,
];

/// The CSV file name inside the output folder.
pub const CSV: &str = "proxy.csv";

/// What a benchmark run does besides the config.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub archs: usize,
    pub train_seeds: usize,
    /// Train on a stratified subset of this many training samples (None: the whole split).
    pub train_subset: Option<usize>,
    /// Measure validation and test accuracy on stratified subsets of this many samples each
    /// (None: the whole splits).
    pub eval_subset: Option<usize>,
    /// `short_train`: samples of the training split seen once, and its batch size.
    pub short_samples: usize,
    pub short_batch: usize,
    /// `zico`: mini-batches the first probe batch is cut into.
    pub zico_batches: usize,
    pub boot_reps: usize,
    pub out: PathBuf,
    /// Keep the per-training run folders (checkpoints, curves) under `out/runs`.
    pub keep_runs: bool,
}

/// One architecture's row.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub index: usize,
    pub key_hash: String,
    pub status: String,
    pub populations: usize,
    /// The score columns.
    pub scores: BTreeMap<Column, f64>,
    /// Validation and test accuracy per training seed.
    pub val: Vec<f64>,
    pub test: Vec<f64>,
    pub score_s: f64,
    pub train_s: f64,
    pub key: String,
}

impl Row {
    pub fn val_mean(&self) -> f64 {
        mean(&self.val)
    }
    pub fn test_mean(&self) -> f64 {
        mean(&self.test)
    }
    pub fn live(&self) -> bool {
        self.status == "ok"
    }
}

fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        f64::NAN
    } else {
        x.iter().sum::<f64>() / x.len() as f64
    }
}

/// `archs` genomes with distinct canonical keys from the configured space, drawn from a
/// generator seeded by the run seed (the same list every time, so a resumed run continues it).
pub fn sample_genomes(cfg: &Config, archs: usize) -> Result<Vec<Genome>> {
    let mut rng = StdRng::seed_from_u64(derive_seed(cfg.seed, "proxy-archs", 0));
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(archs);
    let mut tries = 0usize;
    while out.len() < archs {
        tries += 1;
        if tries > archs * 1000 + 1000 {
            return Err(Error::input(format!(
                "the search space holds fewer than {archs} distinct architectures (found {})",
                out.len()
            )));
        }
        let g = cfg.space.sample(&mut rng);
        if seen.insert(g.canonical_key()) {
            out.push(g);
        }
    }
    Ok(out)
}

fn header(train_seeds: usize) -> String {
    let mut h = vec![
        "index".to_string(),
        "key_hash".into(),
        "status".into(),
        "populations".into(),
    ];
    h.extend(MEASURED.iter().map(|c| c.name().to_string()));
    for s in 0..train_seeds {
        h.push(format!("val_{s}"));
    }
    for s in 0..train_seeds {
        h.push(format!("test_{s}"));
    }
    h.extend(["val_mean", "test_mean", "score_s", "train_s", "key"].map(String::from));
    h.join(",")
}

fn row_line(r: &Row) -> String {
    let mut f: Vec<String> = vec![
        r.index.to_string(),
        r.key_hash.clone(),
        r.status.clone(),
        r.populations.to_string(),
    ];
    for c in MEASURED {
        f.push(format!("{}", r.scores.get(&c).copied().unwrap_or(f64::NAN)));
    }
    f.extend(r.val.iter().map(|v| format!("{v}")));
    f.extend(r.test.iter().map(|v| format!("{v}")));
    f.push(format!("{}", r.val_mean()));
    f.push(format!("{}", r.test_mean()));
    f.push(format!("{:.2}", r.score_s));
    f.push(format!("{:.2}", r.train_s));
    f.push(r.key.replace(',', ";"));
    f.join(",")
}

/// Reads `proxy.csv` (rows written by [`run`] with the same number of training seeds).
pub fn read_csv(path: &Path, train_seeds: usize) -> Result<Vec<Row>> {
    let text = crate::fsio::read_text(path, "score table")?;
    let mut lines = text.lines();
    let want = header(train_seeds);
    match lines.next() {
        Some(h) if h == want => {}
        Some(_) => {
            return Err(Error::input(format!(
                "{}: header differs from this run's (another --train-seeds or version?)",
                path.display()
            )))
        }
        None => return Ok(Vec::new()),
    }
    let ncol = want.split(',').count();
    let mut rows = Vec::new();
    for (ln, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != ncol {
            // A row cut short by an interruption: dropped, recomputed on resume.
            continue;
        }
        let num = |s: &str| -> Result<f64> {
            s.parse::<f64>().map_err(|_| {
                Error::input(format!(
                    "{}: line {}: bad number `{s}`",
                    path.display(),
                    ln + 2
                ))
            })
        };
        let mut i = 4;
        let mut scores = BTreeMap::new();
        for c in MEASURED {
            scores.insert(c, num(f[i])?);
            i += 1;
        }
        let val = (0..train_seeds)
            .map(|k| num(f[i + k]))
            .collect::<Result<Vec<_>>>()?;
        i += train_seeds;
        let test = (0..train_seeds)
            .map(|k| num(f[i + k]))
            .collect::<Result<Vec<_>>>()?;
        i += train_seeds + 2;
        rows.push(Row {
            index: f[0].parse().map_err(|_| Error::input("bad index"))?,
            key_hash: f[1].to_string(),
            status: f[2].to_string(),
            populations: f[3].parse().unwrap_or(0),
            scores,
            val,
            test,
            score_s: num(f[i])?,
            train_s: num(f[i + 1])?,
            key: f[i + 2].to_string(),
        });
    }
    Ok(rows)
}

/// Everything shared by the per-architecture work.
struct Bench<'a> {
    cfg: &'a Config,
    opts: &'a BenchOptions,
    ds: Dataset,
    /// The dataset the budgeted training uses (training split possibly subset).
    train_ds: Dataset,
    short_ds: Dataset,
    base: EngineEvaluator,
    avg9: EngineEvaluator,
    surrogate: Surrogate,
}

pub(crate) fn subset_dataset(ds: &Dataset, n: usize, seed: u64, tag: &str) -> Dataset {
    let mut rng = StdRng::seed_from_u64(derive_seed(seed, tag, 0));
    let idx = ds.train.stratified(n, &mut rng);
    let mut out = ds.clone();
    out.train = ds.train.subset(&idx);
    out
}

fn score_row(
    bench: &mut Bench,
    index: usize,
    genome: &Genome,
    log: &mut dyn FnMut(&str),
) -> Result<Row> {
    let t_score = Instant::now();
    let ev = bench.base.evaluate_one(genome);
    let mut scores: BTreeMap<Column, f64> = BASE_SCORES
        .iter()
        .map(|&id| (Column::Score(id), ev.score(id)))
        .collect();
    let plan = Plan::compile(
        genome,
        &bench.ds.spec,
        bench.cfg.space.width,
        bench.cfg.space.reduce_kernel,
    );
    let populations = plan.as_ref().map(|p| p.populations.len()).unwrap_or(0);
    // A dead network's cost scores are their worst values in the evaluator; the benchmark
    // keeps its real parameter count (a property of the plan, not of its spikes).
    if let Ok(p) = &plan {
        scores.insert(Column::Score(ScoreId::Params), p.num_params as f64);
    }
    let avg = bench.avg9.evaluate_one(genome);
    scores.insert(Column::RdmAvg9, avg.score(ScoreId::Rdm));
    let b = bench.base.probe.batch_size() as f64;
    let pairs = (populations * bench.ds.spec.timesteps).max(1) as f64;
    let dead = ev.status != Status::Ok;
    for (src, dst) in [
        (ScoreId::Hamming, Column::HammingNorm),
        (ScoreId::Sahd, Column::SahdNorm),
    ] {
        let v = ev.score(src);
        let v = if dead { v } else { v - b * pairs.ln() };
        scores.insert(dst, v);
    }
    let (zico, gn) = match &plan {
        Ok(p) => gradient_scores(
            p,
            &bench.base.probe,
            weight_seed(bench.cfg.seed, 0),
            bench.opts.zico_batches,
            bench.surrogate,
        ),
        Err(_) => (GRAD_WORST, GRAD_WORST),
    };
    scores.insert(Column::Zico, zico);
    scores.insert(Column::Score(ScoreId::GradNorm), gn);
    let score_s = t_score.elapsed().as_secs_f64();

    let work = bench.opts.out.join("runs").join(format!("{index:03}"));
    let net = Network::from_genome(
        genome.clone(),
        &bench.ds.spec,
        bench.cfg.space.width,
        bench.cfg.space.reduce_kernel,
    )?;
    // short_train: one pass over a small subset, no warm-up, validation accuracy.
    let t0 = Instant::now();
    let mut short_cfg = bench.cfg.train.clone();
    short_cfg.epochs = 1;
    short_cfg.warmup_epochs = 0;
    short_cfg.batch_size = bench.opts.short_batch;
    let short = train::train(
        &net,
        &bench.short_ds,
        &short_cfg,
        bench.cfg.seed,
        &work.join("short"),
    )?;
    scores.insert(Column::Score(ScoreId::ShortTrain), short.best_val_acc);
    let short_s = t0.elapsed().as_secs_f64();

    let t_train = Instant::now();
    let (mut val, mut test) = (Vec::new(), Vec::new());
    for s in 0..bench.opts.train_seeds {
        let seed = derive_seed(bench.cfg.seed, "proxy-train", s as u64);
        let r = train::train(
            &net,
            &bench.train_ds,
            &bench.cfg.train,
            seed,
            &work.join(format!("seed{s}")),
        )?;
        val.push(r.best_val_acc);
        test.push(r.test_acc);
    }
    if !bench.opts.keep_runs {
        let _ = std::fs::remove_dir_all(&work);
    }
    let train_s = t_train.elapsed().as_secs_f64() + short_s;
    log(&format!(
        "[{index:3}] {:<5} params {:>7} rdm {:.4} zico {:.1} short {:.3} val {:?} ({:.1}+{:.1}+{:.1} s)",
        ev.status.as_str(),
        scores[&Column::Score(ScoreId::Params)],
        scores[&Column::Score(ScoreId::Rdm)],
        zico,
        scores[&Column::Score(ScoreId::ShortTrain)],
        val.iter().map(|v| (v * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
        score_s,
        short_s,
        train_s - short_s
    ));
    Ok(Row {
        index,
        key_hash: format!("{:016x}", genome.key_hash()),
        status: ev.status.as_str().to_string(),
        populations,
        scores,
        val,
        test,
        score_s,
        train_s,
        key: ev.key.clone(),
    })
}

/// The dataset of a benchmark run (validation and test possibly cut to stratified subsets) and
/// the one its budgeted training uses (training split possibly cut too).
fn bench_data(cfg: &Config, opts: &BenchOptions) -> Result<(Dataset, Dataset)> {
    let mut ds = load_data(cfg)?;
    if let Some(n) = opts.eval_subset {
        let mut rng = StdRng::seed_from_u64(derive_seed(cfg.seed, "proxy-eval-subset", 0));
        if n < ds.val.len() {
            let idx = ds.val.stratified(n, &mut rng);
            ds.val = ds.val.subset(&idx);
        }
        if n < ds.test.len() {
            let idx = ds.test.stratified(n, &mut rng);
            ds.test = ds.test.subset(&idx);
        }
    }
    let train_ds = match opts.train_subset {
        Some(n) if n < ds.train.len() => subset_dataset(&ds, n, cfg.seed, "proxy-train-subset"),
        _ => ds.clone(),
    };
    Ok((ds, train_ds))
}

/// Scores and trains every architecture not yet in `out/proxy.csv`, appending a row after each.
/// Returns every row (old and new), in index order.
pub fn run(cfg: &Config, opts: &BenchOptions, log: &mut dyn FnMut(&str)) -> Result<Vec<Row>> {
    if opts.archs < 2 || opts.train_seeds == 0 {
        return Err(Error::input(
            "proxy-bench: needs >= 2 architectures and >= 1 training seed",
        ));
    }
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, e))?;
    let genomes = sample_genomes(cfg, opts.archs)?;
    let csv = opts.out.join(CSV);
    let mut rows = if csv.exists() {
        read_csv(&csv, opts.train_seeds)?
    } else {
        Vec::new()
    };
    // Rows of this sample only (a row whose hash does not match its index is from another
    // configuration: refuse rather than mix).
    for r in &rows {
        if let Some(g) = genomes.get(r.index) {
            if format!("{:016x}", g.key_hash()) != r.key_hash {
                return Err(Error::input(format!(
                    "{}: row {} belongs to another sample (other seed or space?)",
                    csv.display(),
                    r.index
                )));
            }
        }
    }
    let done: HashSet<usize> = rows.iter().map(|r| r.index).collect();
    // Rewrite the file with the complete rows only (drops a row cut short by a kill).
    {
        let mut text = header(opts.train_seeds);
        text.push('\n');
        for r in &rows {
            text.push_str(&row_line(r));
            text.push('\n');
        }
        crate::fsio::write_atomic(&csv, text.as_bytes())?;
    }
    let mut genome_lines = String::new();
    for g in &genomes {
        genome_lines.push_str(
            &serde_json::to_string(
                &serde_json::from_str::<serde_json::Value>(&g.to_json()).expect("genome JSON"),
            )
            .expect("json"),
        );
        genome_lines.push('\n');
    }
    let gpath = opts.out.join("genomes.jsonl");
    crate::fsio::write_atomic(&gpath, genome_lines.as_bytes())?;
    if done.len() >= opts.archs {
        log(&format!("all {} architectures already done", opts.archs));
        rows.sort_by_key(|r| r.index);
        return Ok(rows);
    }

    let (ds, train_ds) = bench_data(cfg, opts)?;
    let short_ds = subset_dataset(&ds, opts.short_samples, cfg.seed, "proxy-short");
    let probe1 = Probe::draw(
        &ds.train,
        cfg.search.probe_size,
        1,
        cfg.space.timesteps,
        cfg.seed,
    )?;
    let probe3 = Probe::draw(
        &ds.train,
        cfg.search.probe_size,
        3,
        cfg.space.timesteps,
        cfg.seed,
    )?;
    let surrogate = Surrogate::parse(&cfg.train.surrogate).ok_or_else(|| {
        Error::input(format!(
            "train.surrogate: '{}' unknown",
            cfg.train.surrogate
        ))
    })?;
    let mk = |scores: Vec<ScoreId>, w: usize, probe: Probe| -> Result<EngineEvaluator> {
        let s = EvalSettings {
            spec: ds.spec,
            width: cfg.space.width,
            reduce_kernel: cfg.space.reduce_kernel,
            seed: cfg.seed,
            weight_seeds: w,
            scores,
        };
        EngineEvaluator::cpu(s, probe)
    };
    let base = mk(BASE_SCORES.to_vec(), 1, probe1)?;
    let avg9 = mk(vec![ScoreId::Rdm], 3, probe3)?;
    let mut bench = Bench {
        cfg,
        opts,
        ds: ds.clone(),
        train_ds,
        short_ds,
        base,
        avg9,
        surrogate,
    };
    log(&format!(
        "{} architectures ({} done), {} training seed(s), {} epochs on {} of {} training samples, {} validation / {} test samples, width {}, T {}",
        opts.archs,
        done.len(),
        opts.train_seeds,
        cfg.train.epochs,
        bench.train_ds.train.len(),
        ds.train.len(),
        ds.val.len(),
        ds.test.len(),
        cfg.space.width,
        cfg.space.timesteps
    ));
    for (i, g) in genomes.iter().enumerate() {
        if done.contains(&i) {
            continue;
        }
        let row = score_row(&mut bench, i, g, log)?;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&csv)
            .map_err(|e| Error::io(&csv, e))?;
        writeln!(f, "{}", row_line(&row)).map_err(|e| Error::io(&csv, e))?;
        rows.push(row);
    }
    rows.sort_by_key(|r| r.index);
    Ok(rows)
}

/// One correlation with its bootstrap interval.
#[derive(Clone, Debug, Serialize)]
pub struct Corr {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Corr {
    /// Not computed (or not computable): every field NaN.
    pub const UNDEFINED: Corr = Corr {
        value: f64::NAN,
        lo: f64::NAN,
        hi: f64::NAN,
    };
}

/// One score's statistics.
#[derive(Clone, Debug, Serialize)]
pub struct ScoreStats {
    pub score: String,
    /// Which way is better (`higher` or `lower`), fixed before the run ([`Column::direction`]).
    pub better: &'static str,
    pub tau_all: Corr,
    pub rho_all: Corr,
    pub tau_live: Corr,
    pub rho_live: Corr,
    /// Partial Kendall tau given ln(params), over live networks.
    pub partial_tau_live: Corr,
    /// Partial Kendall tau given ln(params) and the number of active cells on the head's path
    /// (live networks; NaN without the genomes).
    pub partial_tau_size_depth_live: Corr,
    /// Kendall tau of the score with ln(params), over live networks.
    pub tau_with_params: f64,
    /// Mean seconds per architecture (scores: the whole training-free pass).
    pub seconds: f64,
}

/// The whole summary.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub archs: usize,
    pub live: usize,
    pub dead: usize,
    pub train_seeds: usize,
    pub val_min: f64,
    pub val_max: f64,
    pub val_median: f64,
    /// Kendall tau between the first two seeds' validation accuracies (all, live).
    pub seed_tau_all: Option<Corr>,
    pub seed_tau_live: Option<Corr>,
    pub seed_mean_abs_diff: Option<f64>,
    pub test_val_tau: f64,
    pub scores: Vec<ScoreStats>,
    pub mean_score_s: f64,
    pub mean_train_s: f64,
    /// Kendall tau of the number of active cells on the head's path with accuracy (live).
    pub active_cells_tau_live: Option<Corr>,
    /// Mean validation accuracy of the live networks by number of active cells.
    pub by_active_cells: Vec<Group>,
    /// Mean validation accuracy of the live networks with at least one active cell of each
    /// motif family (a network counts in every family it holds).
    pub by_motif: Vec<Group>,
}

/// Accuracy of a group of live networks.
#[derive(Clone, Debug, Serialize)]
pub struct Group {
    pub label: String,
    pub archs: usize,
    pub mean_val: f64,
    pub min_val: f64,
    pub max_val: f64,
}

impl Group {
    fn of(label: String, accs: &[f64]) -> Group {
        Group {
            label,
            archs: accs.len(),
            mean_val: mean(accs),
            min_val: accs.iter().copied().fold(f64::INFINITY, f64::min),
            max_val: accs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// The first row whose key hash is not that of the genome at its index in `sample`.
fn mismatched_row(sample: &[Genome], rows: &[Row]) -> Option<usize> {
    rows.iter()
        .find(|r| {
            sample
                .get(r.index)
                .is_none_or(|g| format!("{:016x}", g.key_hash()) != r.key_hash)
        })
        .map(|r| r.index)
}

/// The sample of `cfg` up to the last row's index, when every row is the genome at its index
/// (the structure statistics of [`summarise`] need the genomes).
pub fn genomes_of(cfg: &Config, rows: &[Row]) -> Result<Option<Vec<Genome>>> {
    let n = rows.iter().map(|r| r.index + 1).max().unwrap_or(0);
    let sample = sample_genomes(cfg, n)?;
    Ok(mismatched_row(&sample, rows).is_none().then_some(sample))
}

fn corr_ci(x: &[f64], y: &[f64], f: fn(&[f64], &[f64]) -> f64, reps: usize, seed: u64) -> Corr {
    let value = f(x, y);
    if x.len() < 3 {
        return Corr {
            value,
            ..Corr::UNDEFINED
        };
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let stat = |idx: &[usize]| {
        let xs: Vec<f64> = idx.iter().map(|&i| x[i]).collect();
        let ys: Vec<f64> = idx.iter().map(|&i| y[i]).collect();
        f(&xs, &ys)
    };
    let (lo, hi) = bootstrap_ci(x.len(), &stat, reps, 0.05, &mut rng);
    Corr { value, lo, hi }
}

/// Partial Kendall tau of `x` and `y` given the controls (the first-order formula for one,
/// the inverse of the tau matrix for more), with its bootstrap interval (none below
/// `controls + 3` items).
fn partial_ci(x: &[f64], y: &[f64], given: &[&[f64]], reps: usize, seed: u64) -> Corr {
    let partial = |x: &[f64], y: &[f64], given: &[&[f64]]| match given {
        [z] => partial_kendall(x, y, z),
        _ => partial_kendall_given(x, y, given),
    };
    let value = partial(x, y, given);
    if x.len() < given.len() + 3 {
        return Corr {
            value,
            ..Corr::UNDEFINED
        };
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let stat = |idx: &[usize]| {
        let pick = |v: &[f64]| idx.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        let picked: Vec<Vec<f64>> = given.iter().map(|z| pick(z)).collect();
        let refs: Vec<&[f64]> = picked.iter().map(Vec::as_slice).collect();
        partial(&pick(x), &pick(y), &refs)
    };
    let (lo, hi) = bootstrap_ci(x.len(), &stat, reps, 0.05, &mut rng);
    Corr { value, lo, hi }
}

/// Residual of `y` after a least-squares line on `x` (over every index).
fn residual(y: &[f64], x: &[f64]) -> Vec<f64> {
    let n = y.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let sxx: f64 = x.iter().map(|v| (v - mx) * (v - mx)).sum();
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let beta = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    y.iter()
        .zip(x)
        .map(|(b, a)| b - my - beta * (a - mx))
        .collect()
}

/// A column derived over the live rows only: `values` (one per entry of `live`, in order) at
/// their rows and every other row at the values' minimum minus one, below every live one; all
/// zeros when there are no values (too few live rows).
fn place_live(n: usize, live: &[usize], values: Option<Vec<f64>>) -> Vec<f64> {
    let Some(values) = values else {
        return vec![0.0; n];
    };
    let mut out = vec![f64::NAN; n];
    for (&i, v) in live.iter().zip(values) {
        out[i] = v;
    }
    // `f64::min` passes over NaN: the floor is the minimum of the placed values.
    let floor = out.iter().cloned().fold(f64::INFINITY, f64::min) - 1.0;
    for v in out.iter_mut().filter(|v| v.is_nan()) {
        *v = floor;
    }
    out
}

/// `ln params` of every row.
fn ln_params(rows: &[Row]) -> Vec<f64> {
    rows.iter()
        .map(|r| r.scores[&Column::Score(ScoreId::Params)].max(1.0).ln())
        .collect()
}

/// Every column's values over `rows` (the measured columns, the extra ones when every row has
/// them, then the derived ones). Derived columns are computed over live rows; dead rows get
/// the sample's minimum minus one.
pub fn score_table(rows: &[Row]) -> BTreeMap<Column, Vec<f64>> {
    let mut t: BTreeMap<Column, Vec<f64>> = BTreeMap::new();
    for c in MEASURED {
        t.insert(c, rows.iter().map(|r| r.scores[&c]).collect());
    }
    // Extra columns (`proxy-bench --rescore`) when every row has them.
    for c in EXTRA {
        if !rows.is_empty() && rows.iter().all(|r| r.scores.contains_key(&c)) {
            t.insert(c, rows.iter().map(|r| r.scores[&c]).collect());
        }
    }
    let lp = ln_params(rows);
    let rr = ranks(&t[&Column::Score(ScoreId::Rdm)]);
    let rp = ranks(&lp);
    t.insert(
        Column::RankRdmParams,
        rr.iter().zip(&rp).map(|(a, b)| 0.5 * (a + b)).collect(),
    );
    // grad_rms (lower is better): a dead row, or one whose gradients all vanished, gets the
    // registry's worst value, as the search's evaluator gives it.
    t.insert(
        Column::Score(ScoreId::GradRms),
        rows.iter()
            .map(|r| {
                let g = crate::fitness::gradient::grad_rms(
                    r.scores[&Column::Score(ScoreId::GradNorm)],
                    r.scores[&Column::Score(ScoreId::Params)] as usize,
                );
                if !r.live() || g == GRAD_WORST {
                    crate::fitness::WORST_COST
                } else {
                    g
                }
            })
            .collect(),
    );
    let live: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].live()).collect();
    let on_live = |col: &[f64]| -> Vec<f64> { live.iter().map(|&i| col[i]).collect() };
    let x = on_live(&lp);
    // The combined rank of grad_rms (lower is better) and size, over live rows.
    let g: Vec<f64> = on_live(&t[&Column::Score(ScoreId::GradRms)])
        .iter()
        .map(|v| -v)
        .collect();
    let combined = (!live.is_empty()).then(|| {
        let rx = ranks(&x);
        ranks(&g)
            .iter()
            .zip(&rx)
            .map(|(a, b)| 0.5 * (a + b))
            .collect()
    });
    t.insert(
        Column::RankGradParams,
        place_live(rows.len(), &live, combined),
    );
    for (src, dst) in [
        (Column::Score(ScoreId::Rdm), Column::RdmResid),
        (Column::Zico, Column::ZicoResid),
    ] {
        let res = (live.len() >= 2).then(|| residual(&on_live(&t[&src]), &x));
        t.insert(dst, place_live(rows.len(), &live, res));
    }
    t
}

/// The columns in the order the tables list them: measured, derived, then the extra columns
/// present in `table`.
fn table_order(table: &BTreeMap<Column, Vec<f64>>) -> Vec<Column> {
    MEASURED
        .into_iter()
        .chain(DERIVED)
        .chain(EXTRA.into_iter().filter(|c| table.contains_key(c)))
        .collect()
}

/// Correlations of every score with the mean validation accuracy, the seed-to-seed ceiling and
/// partial correlations given ln(params); with `genomes` (the sample, indexed by
/// [`Row::index`], as [`genomes_of`] gives it), also given ln(params) and the number of active
/// cells on the head's path, and accuracy by active cells and by motif family.
pub fn summarise(rows: &[Row], genomes: Option<&[Genome]>, reps: usize, seed: u64) -> Summary {
    let table = score_table(rows);
    let acc: Vec<f64> = rows.iter().map(|r| r.val_mean()).collect();
    let live: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].live()).collect();
    let pick = |v: &[f64]| live.iter().map(|&i| v[i]).collect::<Vec<f64>>();
    let acc_live = pick(&acc);
    let lp = ln_params(rows);
    let lp_live = pick(&lp);
    let train_seeds = rows.first().map(|r| r.val.len()).unwrap_or(0);
    let (seed_tau_all, seed_tau_live, seed_mad) = if train_seeds >= 2 {
        let a: Vec<f64> = rows.iter().map(|r| r.val[0]).collect();
        let b: Vec<f64> = rows.iter().map(|r| r.val[1]).collect();
        let mad = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len() as f64;
        (
            Some(corr_ci(&a, &b, kendall_tau_b, reps, seed ^ 1)),
            Some(corr_ci(&pick(&a), &pick(&b), kendall_tau_b, reps, seed ^ 2)),
            Some(mad),
        )
    } else {
        (None, None, None)
    };
    let score_s = mean(&rows.iter().map(|r| r.score_s).collect::<Vec<_>>());
    let train_s = mean(&rows.iter().map(|r| r.train_s).collect::<Vec<_>>());
    let motifs: Option<Vec<Vec<u8>>> =
        genomes.map(|g| rows.iter().map(|r| g[r.index].active_motifs()).collect());
    let depth_live: Option<Vec<f64>> = motifs
        .as_ref()
        .map(|m| live.iter().map(|&i| m[i].len() as f64).collect());
    let mut scores = Vec::new();
    let params = Column::Score(ScoreId::Params);
    for (k, col) in table_order(&table).into_iter().enumerate() {
        let x = &table[&col];
        let xl = pick(x);
        let s = seed.wrapping_add(100 * k as u64);
        scores.push(ScoreStats {
            score: col.name().to_string(),
            better: match col.direction() {
                Direction::Maximize => "higher",
                Direction::Minimize => "lower",
            },
            tau_all: corr_ci(x, &acc, kendall_tau_b, reps, s),
            rho_all: corr_ci(x, &acc, spearman, reps, s + 1),
            tau_live: corr_ci(&xl, &acc_live, kendall_tau_b, reps, s + 2),
            rho_live: corr_ci(&xl, &acc_live, spearman, reps, s + 3),
            partial_tau_live: if col == params {
                Corr::UNDEFINED
            } else {
                partial_ci(&xl, &acc_live, &[&lp_live], reps, s + 4)
            },
            partial_tau_size_depth_live: match &depth_live {
                Some(d) if col != params => partial_ci(&xl, &acc_live, &[&lp_live, d], reps, s + 5),
                _ => Corr::UNDEFINED,
            },
            tau_with_params: kendall_tau_b(&xl, &lp_live),
            seconds: if col == Column::Score(ScoreId::ShortTrain) {
                train_s
            } else {
                score_s
            },
        });
    }
    let mut sorted = acc.clone();
    sorted.sort_by(f64::total_cmp);
    let tests: Vec<f64> = rows.iter().map(|r| r.test_mean()).collect();
    let (mut by_active_cells, mut by_motif) = (Vec::new(), Vec::new());
    if let Some(m) = &motifs {
        let most = live.iter().map(|&i| m[i].len()).max().unwrap_or(0);
        for n in 0..=most {
            let a: Vec<f64> = live
                .iter()
                .filter(|&&i| m[i].len() == n)
                .map(|&i| acc[i])
                .collect();
            if !a.is_empty() {
                by_active_cells.push(Group::of(format!("{n} active cell(s)"), &a));
            }
        }
        for def in crate::genome::motifs::REGISTRY
            .iter()
            .filter(|d| d.name != "silent")
        {
            let a: Vec<f64> = live
                .iter()
                .filter(|&&i| m[i].contains(&def.id))
                .map(|&i| acc[i])
                .collect();
            if !a.is_empty() {
                by_motif.push(Group::of(def.name.to_string(), &a));
            }
        }
    }
    Summary {
        archs: rows.len(),
        live: live.len(),
        dead: rows.len() - live.len(),
        train_seeds,
        val_min: sorted.first().copied().unwrap_or(f64::NAN),
        val_max: sorted.last().copied().unwrap_or(f64::NAN),
        val_median: crate::stats::median(&acc),
        seed_tau_all,
        seed_tau_live,
        seed_mean_abs_diff: seed_mad,
        test_val_tau: kendall_tau_b(&tests, &acc),
        scores,
        mean_score_s: score_s,
        mean_train_s: train_s,
        active_cells_tau_live: depth_live
            .as_ref()
            .map(|d| corr_ci(d, &acc_live, kendall_tau_b, reps, seed ^ 3)),
        by_active_cells,
        by_motif,
    }
}

fn fmt_c(c: &Corr) -> String {
    if c.lo.is_finite() {
        format!("{:+.2} [{:+.2}, {:+.2}]", c.value, c.lo, c.hi)
    } else if c.value.is_finite() {
        format!("{:+.2}", c.value)
    } else {
        "-".into()
    }
}

/// The summary as markdown tables.
pub fn markdown(s: &Summary, title: &str) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "### {title}\n");
    let _ = writeln!(
        m,
        "{} architectures ({} live, {} dead), {} training seed(s); mean validation accuracy {:.3}-{:.3} (median {:.3}).",
        s.archs, s.live, s.dead, s.train_seeds, s.val_min, s.val_max, s.val_median
    );
    if let (Some(a), Some(l), Some(d)) = (&s.seed_tau_all, &s.seed_tau_live, s.seed_mean_abs_diff) {
        let _ = writeln!(
            m,
            "Seed-to-seed Kendall tau of validation accuracy (the ceiling): all {}, live {}; mean |difference| {:.1} points.",
            fmt_c(a),
            fmt_c(l),
            100.0 * d
        );
    }
    let _ = writeln!(
        m,
        "Kendall tau of test vs validation accuracy: {:+.2}. Mean seconds per architecture: training-free scores {:.1}, short_train + training {:.1}.\n",
        s.test_val_tau, s.mean_score_s, s.mean_train_s
    );
    let _ = writeln!(
        m,
        "| score | better | tau (all) | rho (all) | tau (live) | rho (live) | partial tau given ln(params) (live) | partial tau given ln(params) and active cells (live) | tau with ln(params) |"
    );
    let _ = writeln!(m, "|---|---|---|---|---|---|---|---|---|");
    for r in &s.scores {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:+.2} |",
            r.score,
            r.better,
            fmt_c(&r.tau_all),
            fmt_c(&r.rho_all),
            fmt_c(&r.tau_live),
            fmt_c(&r.rho_live),
            fmt_c(&r.partial_tau_live),
            fmt_c(&r.partial_tau_size_depth_live),
            r.tau_with_params
        );
    }
    if let Some(t) = &s.active_cells_tau_live {
        let _ = writeln!(
            m,
            "\nActive cells on the head's path (normal cells that compute and are read): Kendall tau with accuracy {} (live).\n",
            fmt_c(t)
        );
        let _ = writeln!(m, "| group | networks | mean val acc | min | max |");
        let _ = writeln!(m, "|---|---|---|---|---|");
        for g in s.by_active_cells.iter().chain(&s.by_motif) {
            let _ = writeln!(
                m,
                "| {} | {} | {:.3} | {:.3} | {:.3} |",
                g.label, g.archs, g.mean_val, g.min_val, g.max_val
            );
        }
    }
    m
}

/// Writes `summary.json`, `summary.md` and `scatter.png` into `out`.
pub fn write_report(rows: &[Row], summary: &Summary, out: &Path, title: &str) -> Result<()> {
    let json = serde_json::to_string_pretty(summary).expect("summary JSON");
    let p = out.join("summary.json");
    crate::fsio::write_atomic(&p, json.as_bytes())?;
    let p = out.join("summary.md");
    crate::fsio::write_atomic(&p, markdown(summary, title).as_bytes())?;
    let table = score_table(rows);
    let acc: Vec<f64> = rows.iter().map(|r| r.val_mean()).collect();
    let live: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].live()).collect();
    let panels: Vec<plot::Panel> = table_order(&table)
        .into_iter()
        .map(|col| {
            let name = col.name();
            let log_x = matches!(col, Column::Score(ScoreId::Params | ScoreId::Sops));
            let pts = live
                .iter()
                .map(|&i| {
                    let x = table[&col][i];
                    (if log_x { x.max(1.0).log10() } else { x }, acc[i])
                })
                .collect();
            let tau = summary
                .scores
                .iter()
                .find(|s| s.score == name)
                .map(|s| s.tau_live.value)
                .unwrap_or(f64::NAN);
            (
                format!("{name} (tau {tau:+.2})"),
                if log_x {
                    format!("log10 {name}")
                } else {
                    name.to_string()
                },
                "mean val acc".to_string(),
                pts,
            )
        })
        .collect();
    plot::scatter_grid(
        &out.join("scatter.png"),
        &format!("{title}: score vs mean validation accuracy (live networks)"),
        &panels,
        5,
    )
}

/// `proxy-bench --rescore`: computes the extra scores ([`super::proxy_extra`]) of every row
/// for the sample and budget of `cfg`/`opts` and writes `extra_scores.csv`; nothing is
/// retrained but the one reference network.
pub fn rescore(
    cfg: &Config,
    opts: &BenchOptions,
    rows: &[Row],
    log: &mut dyn FnMut(&str),
) -> Result<()> {
    use super::proxy_extra as extra;
    let genomes = sample_genomes(
        cfg,
        opts.archs
            .max(rows.iter().map(|r| r.index + 1).max().unwrap_or(0)),
    )?;
    if let Some(index) = mismatched_row(&genomes, rows) {
        return Err(Error::input(format!(
            "{}: row {index} belongs to another sample (other seed or space?)",
            opts.out.join(CSV).display(),
        )));
    }
    let (ds, train_ds) = bench_data(cfg, opts)?;
    let probe = Probe::draw(
        &ds.train,
        cfg.search.probe_size,
        1,
        cfg.space.timesteps,
        cfg.seed,
    )?;
    let input = extra::RescoreInput {
        cfg,
        train_ds: &train_ds,
        batch: &probe.batches[0],
        genomes: &genomes,
    };
    let (scores, _) = extra::rescore(&input, rows, &opts.out, log)?;
    extra::write_csv(&opts.out.join(extra::EXTRA_CSV), rows, &scores)
}
