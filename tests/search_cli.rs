//! The `search` and `score` commands as a user runs them: bad settings are one line and exit
//! 2; a search killed with SIGKILL mid-run and resumed ends exactly like an uninterrupted one;
//! a network whose head cannot fire is scored as dead.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn msenas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_msenas"))
        .args(args)
        .output()
        .expect("run msenas")
}

fn assert_user_error(args: &[&str], needle: &str) {
    let out = msenas(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: not one line: {err}"
    );
    assert!(err.starts_with("msenas: error:"), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: `{needle}` not in {err}");
}

#[test]
fn bad_settings_are_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = out.to_str().unwrap();
    assert_user_error(
        &[
            "search",
            "--preset",
            "tiny",
            "--set",
            "search.population=1",
            "--out",
            o,
        ],
        "search.population",
    );
    assert_user_error(
        &["search", "--set", "space.widht=8", "--out", o],
        "space.widht",
    );
    assert_user_error(&["search", "--preset", "huge", "--out", o], "--preset");
    assert_user_error(
        &[
            "search",
            "--preset",
            "tiny",
            "--fitness",
            "rdmm",
            "--out",
            o,
        ],
        "rdmm",
    );
    assert_user_error(
        &[
            "search",
            "--preset",
            "tiny",
            "--set",
            "search.short_train.samples=0",
            "--out",
            o,
        ],
        "search.short_train",
    );
    assert_user_error(
        &["search", "--preset", "tiny", "--device", "gpu", "--out", o],
        "--device gpu",
    );
    assert_user_error(
        &["search", "--config", "/nonexistent/msenas.json", "--out", o],
        "/nonexistent/msenas.json",
    );
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, r#"{"search": {"populaton": 4}}"#).unwrap();
    assert_user_error(
        &["search", "--config", bad.to_str().unwrap(), "--out", o],
        "search.populaton",
    );
    // nothing was created by the refused runs
    assert!(!out.exists());
    assert_user_error(&["search", "--resume", o], "config.json");
    assert_user_error(
        &["search", "--resume", o, "--seed", "3"],
        "--seed cannot be combined",
    );
}

fn log_without_timings(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("evaluations.jsonl"))
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

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[test]
fn sigkill_then_resume_equals_uninterrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let (full, cut) = (tmp.path().join("full"), tmp.path().join("cut"));
    let args = |dir: &Path| -> Vec<String> {
        [
            "search",
            "--preset",
            "tiny",
            "--seed",
            "3",
            "--generations",
            "5",
            "--quiet",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([dir.display().to_string()])
        .collect()
    };
    let out = msenas(&args(&full).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let total = lines(&full.join("evaluations.jsonl"));

    let mut child = Command::new(env!("CARGO_BIN_EXE_msenas"))
        .args(args(&cut))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let log = cut.join("evaluations.jsonl");
    let t0 = Instant::now();
    while lines(&log) < 3 && t0.elapsed() < Duration::from_secs(120) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().ok(); // SIGKILL on Unix
    child.wait().unwrap();
    let kept = lines(&log);
    if kept >= total {
        eprintln!("note: the run finished before it was killed; resume is still checked");
    }
    // as if the kill had landed in the middle of writing a line
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(br#"{"generation":1,"key":"NRN|k2|m"#);
    std::fs::write(&log, bytes).unwrap();

    let out = msenas(&["search", "--resume", cut.to_str().unwrap(), "--quiet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(log_without_timings(&cut), log_without_timings(&full));
    for f in ["best.json", "pareto.json", "population_4.json"] {
        assert_eq!(
            std::fs::read(cut.join(f)).unwrap(),
            std::fs::read(full.join(f)).unwrap(),
            "{f} differs"
        );
    }
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_after_the_evaluation_in_flight_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let (full, cut) = (tmp.path().join("full"), tmp.path().join("cut"));
    let args = |dir: &Path| -> Vec<String> {
        [
            "search",
            "--preset",
            "tiny",
            "--seed",
            "4",
            "--generations",
            "6",
            "--quiet",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([dir.display().to_string()])
        .collect()
    };
    let out = msenas(&args(&full).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let child = Command::new(env!("CARGO_BIN_EXE_msenas"))
        .args(args(&cut))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = cut.join("evaluations.jsonl");
    let t0 = Instant::now();
    while lines(&log) < 2 && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(130) {
        assert!(err.contains("--resume"), "{err}");
    } else {
        // the run ended before the signal arrived
        assert!(out.status.success(), "{err}");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.ends_with('\n'), "the log ends with a complete line");

    let out = msenas(&["search", "--resume", cut.to_str().unwrap(), "--quiet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(log_without_timings(&cut), log_without_timings(&full));
    assert_eq!(
        std::fs::read(cut.join("best.json")).unwrap(),
        std::fs::read(full.join("best.json")).unwrap()
    );
}

#[test]
fn head_that_cannot_fire_is_dead() {
    // micro = full with every edge I3: the last cell sums min(z, 0) currents, so the head LIF
    // never fires, for every probe sample.
    let tmp = tempfile::tempdir().unwrap();
    let g = tmp.path().join("dead.json");
    let cell =
        r#"{"motif": "feedforward_excitation", "sources": [1, 2], "ops": ["I3", "I3", "I3"]}"#;
    std::fs::write(
        &g,
        format!(r#"{{"layout": "NRN", "micro": "full", "k": 2, "cells": [{cell}, {cell}]}}"#),
    )
    .unwrap();
    let score = |fitness: &str| -> Value {
        let out = msenas(&[
            "score",
            g.to_str().unwrap(),
            "--set",
            "space.width=4",
            "--set",
            "space.timesteps=2",
            "--probe-size",
            "16",
            "--fitness",
            fitness,
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v = score("rdm,sahd,params");
    assert_eq!(v["status"], "dead", "{v}");
    assert_eq!(v["scores"]["rdm"], 0.0);
    assert_eq!(v["scores"]["sahd"], -1.0e9);
    assert_eq!(v["scores"]["params"], 1.0e12);
    // a dead network is not trained: short_train is its worst value, 0
    let v = score("short_train");
    assert_eq!(v["status"], "dead", "{v}");
    assert_eq!(v["scores"]["short_train"], 0.0, "{v}");
    // the score command refuses what it cannot compute
    assert_user_error(
        &["score", g.to_str().unwrap(), "--fitness", "short_trian"],
        "short_trian",
    );
    assert_user_error(
        &["score", g.to_str().unwrap(), "--device", "gpu"],
        "--device gpu",
    );
}

/// `short_train` (one short training pass, the ranking benchmark's best score) works as a search
/// fitness and objective: every live candidate gets a validation accuracy in [0, 1] on the
/// configured number of validation samples, and best.json is the candidate with the highest.
#[test]
fn short_train_is_a_search_fitness() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = out.to_str().unwrap();
    let run = msenas(&[
        "search",
        "--preset",
        "tiny",
        "--device",
        "cpu",
        "--fitness",
        "short_train",
        "--objectives",
        "short_train,params",
        "--set",
        "search.short_train.samples=32",
        "--set",
        "search.short_train.val_samples=20",
        "--quiet",
        "--out",
        o,
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let log = log_without_timings(&out);
    assert!(!log.is_empty());
    let mut best = (f64::NEG_INFINITY, String::new());
    for e in &log {
        let v = e["scores"]["short_train"]
            .as_f64()
            .expect("short_train logged");
        if e["status"] == "ok" {
            // an accuracy on 20 validation samples
            assert!((0.0..=1.0).contains(&v), "{v}");
            assert!((v * 20.0 - (v * 20.0).round()).abs() < 1e-9, "{v}");
        } else {
            assert_eq!(v, 0.0, "a dead or failed candidate is not trained");
        }
        if v > best.0 {
            best = (v, e["key"].as_str().unwrap().to_string());
        }
    }
    let genome = std::fs::read_to_string(out.join("best.json")).unwrap();
    let keys: Vec<&Value> = log
        .iter()
        .filter(|e| e["scores"]["short_train"].as_f64() == Some(best.0))
        .map(|e| &e["genome"])
        .collect();
    let best_json: Value = serde_json::from_str(&genome).unwrap();
    assert!(
        keys.contains(&&best_json),
        "best.json is not a top short_train candidate"
    );
}
