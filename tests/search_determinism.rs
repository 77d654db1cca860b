//! A seeded search is reproducible: the same seed gives the same evaluations (timings aside),
//! another seed differs, no canonical key is evaluated twice, and a search stopped by its stop
//! flag (what Ctrl-C raises) and resumed ends exactly like an uninterrupted one.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use msenas::config::{preset, Config};
use msenas::evolve::run_dir::{RunDir, EVALUATIONS};
use msenas::evolve::search::{self, Observer, Quiet, SearchOutcome};
use msenas::fitness::evaluate::{EngineEvaluator, Evaluation};
use serde_json::Value;

fn tiny(seed: u64) -> Config {
    let mut c = preset("tiny").unwrap();
    c.seed = seed;
    c.search.generations = 3;
    c
}

fn evaluator(cfg: &Config) -> EngineEvaluator {
    let (settings, probe, _) = search::prepare(cfg, search::search_scores(cfg).unwrap()).unwrap();
    EngineEvaluator::cpu(settings, probe).unwrap()
}

fn run_new(cfg: &Config, dir: &Path, stop: &AtomicBool, obs: &mut dyn Observer) -> SearchOutcome {
    let mut run = RunDir::create(dir, cfg).unwrap();
    search::run(cfg, &mut run, &mut evaluator(cfg), vec![], stop, obs).unwrap()
}

/// The log's lines without timings.
fn log_without_timings(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join(EVALUATIONS))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("timings");
            // The line's checksum covers the timings too.
            o.remove("crc");
            v
        })
        .collect()
}

#[test]
fn same_seed_same_log_other_seed_differs_no_key_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    let stop = AtomicBool::new(false);
    let oa = run_new(&tiny(11), &a, &stop, &mut Quiet);
    run_new(&tiny(11), &b, &stop, &mut Quiet);
    run_new(&tiny(12), &c, &stop, &mut Quiet);
    let (la, lb, lc) = (
        log_without_timings(&a),
        log_without_timings(&b),
        log_without_timings(&c),
    );
    assert_eq!(la, lb);
    assert_ne!(la, lc);
    // tiny: population 4 + 2 generations x 4 offspring
    assert!(la.len() > 4 && la.len() <= 12, "{} evaluations", la.len());
    let mut keys: Vec<&str> = la.iter().map(|v| v["key"].as_str().unwrap()).collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "a key was evaluated twice");
    assert!(!oa.interrupted && oa.generations == 3 && oa.fresh == n);
    for f in [
        "pareto.json",
        "best.json",
        "population_2.json",
        "fitness.png",
        "pareto.png",
        "motifs.png",
    ] {
        assert!(a.join(f).exists(), "{f} missing");
    }
    // best.json is a plain genome file
    let best = std::fs::read_to_string(a.join("best.json")).unwrap();
    msenas::genome::Genome::from_json(&best).unwrap();
    assert_eq!(
        std::fs::read(a.join("best.json")).unwrap(),
        std::fs::read(b.join("best.json")).unwrap()
    );
}

/// Raises the stop flag after `after` fresh evaluations, like Ctrl-C.
struct StopAfter<'a> {
    after: usize,
    seen: usize,
    stop: &'a AtomicBool,
}

impl Observer for StopAfter<'_> {
    fn evaluated(&mut self, _g: usize, _e: &Evaluation, replayed: bool) {
        if !replayed {
            self.seen += 1;
            if self.seen == self.after {
                self.stop.store(true, Ordering::SeqCst);
            }
        }
    }
}

#[test]
fn stopped_and_resumed_equals_uninterrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let (full, cut) = (tmp.path().join("full"), tmp.path().join("cut"));
    let cfg = tiny(5);
    let never = AtomicBool::new(false);
    let whole = run_new(&cfg, &full, &never, &mut Quiet);

    let stop = AtomicBool::new(false);
    let mut obs = StopAfter {
        after: 6,
        seen: 0,
        stop: &stop,
    };
    let first = run_new(&cfg, &cut, &stop, &mut obs);
    assert!(first.interrupted);
    // The stop is seen between evaluator calls: the call in flight (the CPU engine takes a few
    // candidates per call) finishes and is logged.
    assert!(first.fresh >= 6 && first.fresh < 16, "{}", first.fresh);
    assert_eq!(log_without_timings(&cut).len(), first.fresh);

    let (mut run, back, records) = RunDir::resume(&cut).unwrap();
    assert_eq!(back, cfg);
    let resumed = search::run(
        &back,
        &mut run,
        &mut evaluator(&back),
        records,
        &never,
        &mut Quiet,
    )
    .unwrap();
    assert!(!resumed.interrupted);
    assert_eq!(resumed.replayed, first.fresh);
    assert_eq!(log_without_timings(&cut), log_without_timings(&full));
    assert_eq!(resumed.best.unwrap().key, whole.best.unwrap().key);
    assert_eq!(
        std::fs::read(cut.join("pareto.json")).unwrap(),
        std::fs::read(full.join("pareto.json")).unwrap()
    );
}

#[test]
fn ask_tell_in_reverse_order_writes_the_same_run_as_the_loop() {
    use msenas::evolve::search::Search;
    use msenas::fitness::evaluate::Evaluator;
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("loop"), tmp.path().join("asktell"));
    let cfg = tiny(21);
    let stop = AtomicBool::new(false);
    let reference = run_new(&cfg, &a, &stop, &mut Quiet);
    let mut ev = evaluator(&cfg);
    let mut s = Search::new(&cfg, RunDir::create(&b, &cfg).unwrap(), vec![]).unwrap();
    assert!(s
        .tell(vec![], &mut Quiet)
        .unwrap_err()
        .to_string()
        .contains("call ask first"));
    let mut generations = 0;
    loop {
        let todo = s.ask(&mut Quiet).unwrap();
        if todo.is_empty() {
            break;
        }
        generations += 1;
        let evals = ev.evaluate(&todo);
        // Told one at a time, last first; a repeat is refused and changes nothing.
        for e in evals.iter().rev() {
            s.tell(vec![e.clone()], &mut Quiet).unwrap();
            if s.generation() == generations {
                break;
            }
            let err = s.tell(vec![e.clone()], &mut Quiet).unwrap_err();
            assert!(err.to_string().contains("was not asked for"), "{err}");
        }
    }
    assert!(s.is_done());
    let out = s.finish().unwrap();
    assert!(!out.interrupted);
    assert_eq!(out.generations, reference.generations);
    assert_eq!(
        out.best.as_ref().map(|e| &e.key),
        reference.best.as_ref().map(|e| &e.key)
    );
    // The same records; within a generation in the order they were told.
    let key = |v: &Value| {
        (
            v["generation"].as_u64(),
            v["key"].as_str().map(String::from),
        )
    };
    let (mut la, mut lb) = (log_without_timings(&a), log_without_timings(&b));
    la.sort_by_key(key);
    lb.sort_by_key(key);
    assert_eq!(la, lb);
    for f in [
        "pareto.json",
        "best.json",
        "population_0.json",
        "population_2.json",
    ] {
        assert_eq!(
            std::fs::read_to_string(a.join(f)).unwrap(),
            std::fs::read_to_string(b.join(f)).unwrap(),
            "{f}"
        );
    }
}
