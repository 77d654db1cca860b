//! Search throughput: candidates scored per second for `--preset cpu` on the CPU engine, and in
//! the same run with the reference convolution loops (the previous path) and on a GPU where one
//! opens; and how the time of one generation grows with
//! the population size and with the probe size.
//!
//!     cargo bench --bench search                      # full: the whole --preset cpu search
//!     MSENAS_BENCH_QUICK=1 cargo bench --bench search # scaling only, smaller sweeps
//!
//! Where a GPU opens (`MSENAS_BENCH_GPU`, default `gpu`; `llvmpipe` for lavapipe), the same
//! search runs twice more on it, `gpu_generation_vs_one_by_one`: each generation handed to the
//! evaluator whole (its forward passes recorded together) and one candidate at a time, with the
//! device's submissions, dispatches, read-backs and bytes read back per generation; and a
//! third time one at a time with every mini-batch gradient read back and reduced on the host
//! (the previous path of the gradient scores).
//! `MSENAS_BENCH_GPU_PRESET` (default `cpu`), `MSENAS_BENCH_GPU_GENERATIONS`,
//! `MSENAS_BENCH_GPU_POPULATION` and `MSENAS_BENCH_GPU_FITNESS` change it (e.g. `tiny` for
//! lavapipe, which runs the `cpu` preset's networks at a few seconds per candidate).
//!
//! Prints one JSON object on standard output. Each scaling point is one generation
//! (generation 0: `population` fresh candidates, evaluated one by one) of the cpu preset with
//! one setting changed; the time includes NSGA-II selection and the run-folder writes.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use msenas::config::{preset, Config};
use msenas::engine::{Outputs, ProbeBatch, RunOutput, SpikeBackend};
use msenas::evolve::run_dir::RunDir;
use msenas::evolve::search::{self, Quiet};
use msenas::fitness::evaluate::make_evaluator;
use msenas::fitness::evaluate::ScoringEvaluator;
use msenas::genome::Genome;
use msenas::plan::Plan;
use serde_json::{json, Value};

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

struct Timed {
    counters: Option<msenas::engine::GpuCounters>,
    generations: usize,
    seconds: f64,
    evaluations: usize,
    dead: usize,
    failed: usize,
    device: String,
    best: Option<f64>,
}

/// An evaluator handed one genome at a time (the per-candidate path).
struct OneByOne(Box<dyn msenas::fitness::evaluate::Evaluator>);

impl msenas::fitness::evaluate::Evaluator for OneByOne {
    fn device(&self) -> String {
        self.0.device()
    }
    fn settings(&self) -> &msenas::fitness::evaluate::EvalSettings {
        self.0.settings()
    }
    fn evaluate(&mut self, genomes: &[Genome]) -> Vec<msenas::fitness::evaluate::Evaluation> {
        self.0.evaluate(genomes)
    }
}

/// The engine without its own gradient-norm reduction: the trait's default, which reads every
/// mini-batch gradient back and reduces on the host (the path before the device reduction).
struct HostReduced(msenas::engine::Engine);

impl SpikeBackend for HostReduced {
    fn device(&self) -> String {
        self.0.device().describe()
    }
    fn run(
        &mut self,
        plan: &Plan,
        seed: u64,
        batch: &ProbeBatch,
        want: Outputs,
        timings: &mut std::collections::BTreeMap<String, f64>,
    ) -> msenas::Result<RunOutput> {
        self.0.run(plan, seed, batch, want, timings)
    }
    fn gradients(
        &mut self,
        plan: &Plan,
        seed: u64,
        batches: &[(Vec<f32>, Vec<u16>)],
        surrogate: msenas::cpu::grad::Surrogate,
    ) -> msenas::Result<Vec<Vec<f32>>> {
        self.0.gradients(plan, seed, batches, surrogate)
    }
}

/// How the GPU column hands candidates over.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// As the search does: a generation at a time (the GPU's batch hint).
    Generation,
    /// One candidate per call.
    OneByOne,
    /// One candidate per call, every mini-batch gradient read back and reduced on the host.
    HostGradients,
}

fn run_with(cfg: &Config, device: &str, mode: Mode) -> Result<Timed, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let scores = search::search_scores(cfg).map_err(|e| e.to_string())?;
    let (settings, probe, _) = search::prepare(cfg, scores).map_err(|e| e.to_string())?;
    let mut resolved = None;
    let mut ev: Box<dyn msenas::fitness::evaluate::Evaluator> = if device == "cpu-reference-loops" {
        // The previous CPU path: the direct convolution loops.
        Box::new(
            msenas::fitness::evaluate::EngineEvaluator::cpu_reference(settings, probe)
                .map_err(|e| e.to_string())?,
        )
    } else {
        let device = msenas::engine::Device::resolve(device).map_err(|e| e.to_string())?;
        resolved = Some(device.clone());
        if mode == Mode::HostGradients {
            let engine = msenas::engine::Engine::new(device);
            Box::new(
                ScoringEvaluator::new(HostReduced(engine), settings, probe)
                    .map_err(|e| e.to_string())?,
            )
        } else {
            make_evaluator(&device, settings, probe).map_err(|e| e.to_string())?
        }
    };
    if mode != Mode::Generation {
        ev = Box::new(OneByOne(ev));
    }
    let counters0 = resolved.as_ref().and_then(|d| d.counters());
    let mut dir = RunDir::create(tmp.path(), cfg).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let out = search::run(
        cfg,
        &mut dir,
        ev.as_mut(),
        Vec::new(),
        &AtomicBool::new(false),
        &mut Quiet,
    )
    .map_err(|e| e.to_string())?;
    let seconds = t0.elapsed().as_secs_f64();
    let counters = resolved
        .as_ref()
        .and_then(|d| d.counters())
        .zip(counters0)
        .map(|(c, c0)| c.since(c0));
    let log = std::fs::read_to_string(tmp.path().join("evaluations.jsonl")).unwrap_or_default();
    let count = |s: &str| log.matches(&format!("\"status\":\"{s}\"")).count();
    Ok(Timed {
        counters,
        generations: out.generations,
        seconds,
        evaluations: out.fresh,
        dead: count("dead"),
        failed: count("failed"),
        device: ev.device(),
        best: out.best.map(|b| b.score(&cfg.search.fitness)),
    })
}

fn point(cfg: &Config, device: &str) -> Value {
    point_with(cfg, device, Mode::Generation)
}

fn point_with(cfg: &Config, device: &str, mode: Mode) -> Value {
    match run_with(cfg, device, mode) {
        Ok(t) => json!({
            "generations": t.generations,
            "per_generation": t.counters.map(|c| {
                let g = t.generations.max(1) as f64;
                json!({
                    "submissions": c.submissions as f64 / g,
                    "dispatches": c.dispatches as f64 / g,
                    "read_backs": c.read_backs as f64 / g,
                    "bytes_read": c.bytes_read as f64 / g,
                    "bytes_written": c.bytes_written as f64 / g,
                })
            }),
            "seconds": t.seconds,
            "evaluations": t.evaluations,
            "candidates_per_s": t.evaluations as f64 / t.seconds,
            "seconds_per_candidate": t.seconds / t.evaluations.max(1) as f64,
            "dead": t.dead,
            "failed": t.failed,
            "device": t.device,
            "best_fitness": t.best,
        }),
        Err(e) => json!({ "unavailable": e }),
    }
}

fn main() {
    let quick = std::env::var_os("MSENAS_BENCH_QUICK").is_some();
    let base = preset("cpu").expect("cpu preset");
    let mut report = json!({
        "bench": "search",
        "threads": rayon::current_num_threads(),
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "preset_cpu": {
            "dataset": base.data.dataset,
            "layout": base.space.layout,
            "width": base.space.width,
            "timesteps": base.space.timesteps,
            "population": base.search.population,
            "offspring": base.search.offspring,
            "generations": base.search.generations,
            "probe_size": base.search.probe_size,
            "fitness": base.search.fitness,
        },
    });

    if !quick {
        report["preset_cpu_search"] = json!({
            "cpu": point(&base, "cpu"),
            "cpu_reference_loops": point(&base, "cpu-reference-loops"),
            "gpu": point(&base, "gpu"),
        });
    }

    let gpu = std::env::var("MSENAS_BENCH_GPU").unwrap_or_else(|_| "gpu".into());
    if msenas::engine::Device::resolve(&gpu).is_ok() {
        let name = std::env::var("MSENAS_BENCH_GPU_PRESET").unwrap_or_else(|_| "cpu".into());
        let mut c = preset(&name).expect("MSENAS_BENCH_GPU_PRESET: cpu, paper or tiny");
        if let Some(g) = env_usize("MSENAS_BENCH_GPU_GENERATIONS") {
            c.search.generations = g;
        }
        if let Some(p) = env_usize("MSENAS_BENCH_GPU_POPULATION") {
            c.search.population = p;
            c.search.offspring = p;
        }
        if let Ok(f) = std::env::var("MSENAS_BENCH_GPU_FITNESS") {
            c.search.fitness = f;
        }
        let whole = point_with(&c, &gpu, Mode::Generation);
        let single = point_with(&c, &gpu, Mode::OneByOne);
        let host = point_with(&c, &gpu, Mode::HostGradients);
        let ratio = |other: &Value| {
            whole["seconds"]
                .as_f64()
                .zip(other["seconds"].as_f64())
                .map(|(w, s)| s / w)
        };
        report["gpu_generation_vs_one_by_one"] = json!({
            "device": gpu,
            "preset": name,
            "population": c.search.population,
            "generations": c.search.generations,
            "fitness": c.search.fitness,
            "generation": whole,
            "one_by_one_over_generation_time": ratio(&single),
            "host_gradients_over_generation_time": ratio(&host),
            "one_by_one": single,
            "one_by_one_host_gradients": host,
        });
    }

    let one_generation = |f: &dyn Fn(&mut Config)| {
        let mut c = base.clone();
        c.search.generations = 1;
        f(&mut c);
        c
    };
    let pops: &[usize] = if quick { &[4, 8] } else { &[4, 8, 16, 32] };
    report["generation_vs_population"] = pops
        .iter()
        .map(|&p| {
            let c = one_generation(&|c: &mut Config| {
                c.search.population = p;
                c.search.offspring = p;
            });
            json!({ "population": p, "probe_size": c.search.probe_size, "cpu": point(&c, "cpu") })
        })
        .collect::<Vec<_>>()
        .into();
    let probes: &[usize] = if quick { &[16, 32] } else { &[16, 32, 64, 128] };
    report["generation_vs_probe_size"] = probes
        .iter()
        .map(|&b| {
            let c = one_generation(&|c: &mut Config| {
                c.search.probe_size = b;
                c.search.population = 8;
                c.search.offspring = 8;
            });
            json!({ "probe_size": b, "population": 8, "cpu": point(&c, "cpu") })
        })
        .collect::<Vec<_>>()
        .into();
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
}
