//! Search throughput: candidates scored per second for `--preset cpu` on the CPU engine, and in
//! the same run with the reference convolution loops (the previous path) and on a GPU where one
//! opens; and how the time of one generation grows with
//! the population size and with the probe size.
//!
//!     cargo bench --bench search                      # full: the whole --preset cpu search
//!     MSENAS_BENCH_QUICK=1 cargo bench --bench search # scaling only, smaller sweeps
//!
//! Prints one JSON object on standard output. Each scaling point is one generation
//! (generation 0: `population` fresh candidates, evaluated one by one) of the cpu preset with
//! one setting changed; the time includes NSGA-II selection and the run-folder writes.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use msenas::config::{preset, Config};
use msenas::evolve::run_dir::RunDir;
use msenas::evolve::search::{self, Quiet};
use msenas::fitness::evaluate::make_evaluator;
use serde_json::{json, Value};

struct Timed {
    seconds: f64,
    evaluations: usize,
    dead: usize,
    failed: usize,
    device: String,
    best: Option<f64>,
}

fn run(cfg: &Config, device: &str) -> Result<Timed, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let scores = search::search_scores(cfg).map_err(|e| e.to_string())?;
    let (settings, probe, _) = search::prepare(cfg, scores).map_err(|e| e.to_string())?;
    let mut ev: Box<dyn msenas::fitness::evaluate::Evaluator> = if device == "cpu-reference-loops" {
        // The previous CPU path: the direct convolution loops.
        Box::new(
            msenas::fitness::evaluate::EngineEvaluator::cpu_reference(settings, probe)
                .map_err(|e| e.to_string())?,
        )
    } else {
        let device = msenas::engine::Device::resolve(device).map_err(|e| e.to_string())?;
        make_evaluator(&device, settings, probe).map_err(|e| e.to_string())?
    };
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
    let log = std::fs::read_to_string(tmp.path().join("evaluations.jsonl")).unwrap_or_default();
    let count = |s: &str| log.matches(&format!("\"status\":\"{s}\"")).count();
    Ok(Timed {
        seconds,
        evaluations: out.fresh,
        dead: count("dead"),
        failed: count("failed"),
        device: ev.device(),
        best: out.best.map(|b| b.score(&cfg.search.fitness)),
    })
}

fn point(cfg: &Config, device: &str) -> Value {
    match run(cfg, device) {
        Ok(t) => json!({
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
