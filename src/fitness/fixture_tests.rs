//! Scores and statistics against numpy/scipy on fixed data: `tests/fixtures/fitness_fixture.json`,
//! written by `scripts/make_fitness_fixture.py` from dense spikes, independently of this crate.

use super::scores::{compute, rdm_matrix, ScoreInput, ScoreOutcome};
use super::spikes::{population_stats, PopulationSpikes, PopulationStats};
use crate::stats;
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fitness_fixture.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("fixture lacks number `{key}`"))
}

fn close(what: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol * want.abs().max(1.0),
        "{what}: got {got}, numpy/scipy {want}"
    );
}

fn spike_case(f: &Value) -> (Vec<PopulationStats>, Vec<u16>) {
    let s = &f["spikes"];
    let (t, b) = (
        s["t"].as_u64().unwrap() as usize,
        s["b"].as_u64().unwrap() as usize,
    );
    let labels = s["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_u64().unwrap() as u16)
        .collect();
    let pops = s["pops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let n = p["neurons"].as_u64().unwrap() as usize;
            let dense: Vec<f32> = f64s(&p["dense"]).into_iter().map(|v| v as f32).collect();
            population_stats(&PopulationSpikes::from_dense(
                p["name"].as_str().unwrap(),
                n,
                t,
                b,
                &dense,
            ))
        })
        .collect();
    (pops, labels)
}

fn score(name: &str, pops: &[PopulationStats], labels: &[u16], late: usize) -> f64 {
    match compute(name, &ScoreInput { pops, labels, late }).unwrap() {
        ScoreOutcome::Value(v) => v,
        o => panic!("{name}: {o:?}"),
    }
}

#[test]
fn spike_scores_match_numpy() {
    let f = fixture();
    let (pops, labels) = spike_case(&f);
    let want = &f["spikes"]["expected"];
    for (got, want) in rdm_matrix(&pops).into_iter().zip(f64s(&want["rdm_matrix"])) {
        close("rdm_matrix", got, want, 1e-12);
    }
    for name in ["rdm", "rdm_rate", "rdm_corr", "rdm_rsa", "sahd", "hamming"] {
        close(name, score(name, &pops, &labels, 2), num(want, name), 1e-10);
    }
    close(
        "rdm_late 1",
        score("rdm_late", &pops, &labels, 1),
        num(want, "rdm_late_1"),
        1e-12,
    );
    close(
        "rdm_late 2",
        score("rdm_late", &pops, &labels, 2),
        num(want, "rdm_late_2"),
        1e-12,
    );
}

#[test]
fn statistics_match_scipy() {
    let f = fixture();
    let s = &f["stats"];
    let (x, y, z) = (f64s(&s["x"]), f64s(&s["y"]), f64s(&s["z"]));
    assert_eq!(stats::ranks(&z), f64s(&s["ranks_z"]));
    close(
        "pearson",
        stats::pearson(&x, &y),
        num(s, "pearson_xy"),
        1e-12,
    );
    close(
        "spearman xy",
        stats::spearman(&x, &y),
        num(s, "spearman_xy"),
        1e-12,
    );
    close(
        "spearman xz",
        stats::spearman(&x, &z),
        num(s, "spearman_xz"),
        1e-12,
    );
    close(
        "kendall xy",
        stats::kendall_tau_b(&x, &y),
        num(s, "kendall_xy"),
        1e-12,
    );
    close(
        "kendall xz",
        stats::kendall_tau_b(&x, &z),
        num(s, "kendall_xz"),
        1e-12,
    );
    close(
        "kendall yz",
        stats::kendall_tau_b(&y, &z),
        num(s, "kendall_yz"),
        1e-12,
    );
    close(
        "partial kendall",
        stats::partial_kendall(&x, &y, &z),
        num(s, "partial_kendall_xy_z"),
        1e-12,
    );
    assert_eq!(stats::median(&x), num(s, "median_x"));
    assert_eq!(stats::median(&x[..x.len() - 1]), num(s, "median_x_odd"));
}

#[test]
fn log_abs_det_matches_numpy_slogdet() {
    let f = fixture();
    for case in f["logdet"].as_array().unwrap() {
        let n = case["n"].as_u64().unwrap() as usize;
        let got = stats::log_abs_det(&f64s(&case["m"]), n);
        match case["logabsdet"].as_f64() {
            Some(want) => close(
                &format!("log_abs_det n={n}"),
                got.expect("non-singular"),
                want,
                1e-10,
            ),
            None => assert_eq!(got, None, "n={n}: singular by construction"),
        }
    }
}
