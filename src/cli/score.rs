//! `msenas score`: the training-free scores of one genome, with the time each took.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::json;

use crate::evolve::config::Config;
use crate::evolve::search;
use crate::fitness::evaluate::{cpu_probe_stats, scorable};
use crate::fitness::{rdm_matrix, ScoreId};
use crate::report::plot;
use crate::Error;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The genome file (e.g. a run's best.json, or `msenas sample` output).
    pub genome: PathBuf,
    /// Scores to compute, comma-separated (default: every training-free score).
    #[arg(long, value_delimiter = ',')]
    pub fitness: Option<Vec<String>>,
    /// Dataset the probe comes from.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Folder holding the dataset's files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Probe batch size B (default: the config's search.probe_size).
    #[arg(long)]
    pub probe_size: Option<usize>,
    /// Seed of the probe and the weights.
    #[arg(long)]
    pub seed: Option<u64>,
    /// auto, cpu or gpu.
    #[arg(long)]
    pub device: Option<String>,
    /// A JSON config file (e.g. a run's config.json, for its width, T and probe).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override one config value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write the RDM (probe ordered by class) beside the label RDM as a PNG.
    #[arg(long, value_name = "FILE.png")]
    pub plot_rdm: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let mut cfg = Config::load(None, a.config.as_deref(), &a.sets)?;
    if let Some(d) = &a.dataset {
        cfg.data.dataset = d.clone();
    }
    if let Some(d) = &a.data_dir {
        cfg.data.data_dir = Some(d.display().to_string());
    }
    if let Some(b) = a.probe_size {
        cfg.search.probe_size = b;
    }
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    if let Some(d) = &a.device {
        cfg.search.device = d.clone();
    }
    cfg.validate()?;
    let scores: Vec<ScoreId> = match &a.fitness {
        Some(list) => list
            .iter()
            .map(|s| {
                s.trim()
                    .parse()
                    .map_err(|e| Error::input(format!("--fitness: {e}")))
            })
            .collect::<crate::Result<_>>()?,
        None => scorable()
            .iter()
            .map(|s| s.parse())
            .collect::<crate::Result<_>>()?,
    };
    let genome = super::read_genome(&a.genome)?;
    let (settings, probe, ds) = search::prepare(&cfg, scores)?;
    let device = crate::engine::Device::resolve(&cfg.search.device)?;
    let mut evaluator =
        crate::evolve::short_train::make_search_evaluator(&cfg, settings.clone(), &ds, |s| {
            crate::fitness::evaluate::make_evaluator(&device, s, probe.clone())
        })?;
    let ev = evaluator
        .evaluate(std::slice::from_ref(&genome))
        .pop()
        .expect("one evaluation");

    if let Some(path) = &a.plot_rdm {
        let batch = &probe.batches[0];
        let (_, stats) = cpu_probe_stats(&genome, &settings, batch)?;
        let b = batch.len();
        let rdm: Vec<f32> = rdm_matrix(&stats).iter().map(|&v| v as f32).collect();
        let labels: Vec<f32> = (0..b * b)
            .map(|k| (batch.labels[k / b] != batch.labels[k % b]) as u8 as f32)
            .collect();
        plot::heatmaps(
            path,
            &format!(
                "{}: RDM of {} probe samples (ordered by class)",
                search::key_short(&ev.key),
                b
            ),
            &[
                ("RDM (mean Hamming / N)".to_string(), b, rdm),
                ("label RDM (0 same class)".to_string(), b, labels),
            ],
        )?;
    }

    let mut out = String::new();
    if a.json {
        let v = json!({
            "key": ev.key,
            "status": ev.status,
            "reason": ev.reason,
            "scores": ev.scores,
            "timings": ev.timings,
            "device": evaluator.device(),
            "dataset": ds.name,
            "probe_size": probe.batch_size(),
            "probe_batches": probe.batches.len(),
            "weight_seeds": cfg.search.weight_seeds,
            "seed": cfg.seed,
        });
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&v).expect("JSON"));
        emit(&out);
        return Ok(());
    }
    let _ = writeln!(out, "genome   {}", ev.key);
    let _ = writeln!(
        out,
        "probe    {}: {} x {} samples (stratified, seed {}), T = {}, {} weight seed(s), device {}",
        ds.name,
        probe.batches.len(),
        probe.batch_size(),
        cfg.seed,
        cfg.space.timesteps,
        cfg.search.weight_seeds,
        evaluator.device()
    );
    let _ = writeln!(out, "status   {}", ev.status.as_str());
    if let Some(r) = &ev.reason {
        let _ = writeln!(out, "reason   {r}");
    }
    out.push('\n');
    let _ = writeln!(out, "{:<12} {:>16} {:>12}", "score", "value", "time");
    for name in settings.scores.iter().map(|s| s.name()) {
        let t = ev.timings.get(name).copied().unwrap_or(0.0);
        let _ = writeln!(
            out,
            "{:<12} {:>16} {:>9.3} ms",
            name,
            format_value(ev.score(name)),
            t * 1e3
        );
    }
    out.push('\n');
    for k in ["compile", "init", "forward", "stats", "total"] {
        if let Some(t) = ev.timings.get(k) {
            let _ = writeln!(out, "{:<12} {:>29.3} ms", k, t * 1e3);
        }
    }
    if let Some(p) = &a.plot_rdm {
        let _ = writeln!(out, "RDM plot: {}", p.display());
    }
    emit(&out);
    if ev.scores.is_empty() {
        return Err(Error::input("no score computed").into());
    }
    Ok(())
}

fn format_value(v: f64) -> String {
    if v.abs() >= 1e6 && v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.6}")
    }
}

/// Print to standard output; a closed pipe (`| head`) is not an error.
fn emit(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush());
}
