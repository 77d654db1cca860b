//! Golden snapshot of a seeded 3-generation search on the tiny space (preset `tiny`, seed 2024,
//! the default fitness `grad_rms`, objectives grad_rms + params): the canonical keys evaluated, in order, with their
//! status and scores, and the best genome's key.
//!
//! The fixture is `tests/fixtures/search_golden.json`. A deliberate change to the search, the
//! evaluator, the weight generator or the probe changes it; regenerate with
//!
//!     MSENAS_REGEN_GOLDEN=1 cargo test --test search_golden
//!
//! and review the diff (keys should only change when the search itself changed).
//!
//! It runs the CPU engine with the reference convolution loops: their float operations do not
//! depend on the machine, while the fast kernels' GEMM picks AVX2 or AVX-512 code at run time
//! and rounds differently on each (scores then agree to about 1e-9, not bit for bit).

use std::sync::atomic::AtomicBool;

use msenas::config::preset;
use msenas::evolve::run_dir::{RunDir, EVALUATIONS};
use msenas::evolve::search::{self, Quiet};
use msenas::fitness::evaluate::EngineEvaluator;
use serde_json::{json, Value};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/search_golden.json"
);

fn snapshot() -> Value {
    let mut cfg = preset("tiny").unwrap();
    cfg.seed = 2024;
    cfg.search.generations = 3;
    let tmp = tempfile::tempdir().unwrap();
    let mut run = RunDir::create(tmp.path(), &cfg).unwrap();
    let (settings, probe, _) = search::prepare(&cfg, search::search_scores(&cfg).unwrap()).unwrap();
    let mut ev = EngineEvaluator::cpu_reference(settings, probe).unwrap();
    let out = search::run(
        &cfg,
        &mut run,
        &mut ev,
        vec![],
        &AtomicBool::new(false),
        &mut Quiet,
    )
    .unwrap();
    let evaluations: Vec<Value> = std::fs::read_to_string(tmp.path().join(EVALUATIONS))
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            json!({
                "generation": v["generation"],
                "key": v["key"],
                "status": v["status"],
                "scores": v["scores"],
            })
        })
        .collect();
    json!({
        "config": "preset tiny, seed 2024, generations 3",
        "evaluations": evaluations,
        "best": out.best.map(|b| b.key),
    })
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

#[test]
fn seeded_tiny_search_matches_the_snapshot() {
    let got = snapshot();
    if std::env::var_os("MSENAS_REGEN_GOLDEN").is_some() {
        std::fs::write(FIXTURE, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
        return;
    }
    let want: Value = serde_json::from_str(
        &std::fs::read_to_string(FIXTURE).expect("fixture (regenerate: see the file header)"),
    )
    .unwrap();
    let (g, w) = (
        got["evaluations"].as_array().unwrap(),
        want["evaluations"].as_array().unwrap(),
    );
    assert_eq!(g.len(), w.len(), "number of evaluations");
    for (i, (a, b)) in g.iter().zip(w).enumerate() {
        assert_eq!(a["key"], b["key"], "evaluation {i}: key");
        assert_eq!(
            a["generation"], b["generation"],
            "evaluation {i}: generation"
        );
        assert_eq!(a["status"], b["status"], "evaluation {i}: status");
        let (sa, sb) = (
            a["scores"].as_object().unwrap(),
            b["scores"].as_object().unwrap(),
        );
        assert_eq!(sa.len(), sb.len(), "evaluation {i}: scores");
        for (name, x) in sa {
            let (x, y) = (x.as_f64().unwrap(), sb[name].as_f64().unwrap());
            assert!(
                close(x, y),
                "evaluation {i} ({}): {name} = {x}, snapshot {y}",
                a["key"]
            );
        }
    }
    assert_eq!(got["best"], want["best"]);
}
