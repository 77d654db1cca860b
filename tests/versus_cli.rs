//! `msenas versus-random`: a small benchmark end to end (tiny space, one epoch on a subset):
//! the report's statistics follow from the trained accuracies it lists, a second run reads every
//! training back and reports the same, and other options on the same folder are refused.

mod cli_common;

use cli_common::{ok, run};
use serde_json::Value;

const ARGS: &[&str] = &[
    "versus-random",
    "--preset",
    "tiny",
    "--seed",
    "5",
    "--device",
    "cpu",
    "--random",
    "3",
    "--seeds",
    "2",
    "--top",
    "2",
    "--train-subset",
    "96",
    "--eval-subset",
    "40",
    "--out",
    "bench",
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

#[test]
fn versus_random_trains_both_sides_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let first = ok(ARGS, tmp.path());
    assert!(first.contains("fitness grad_rms: pick"), "{first}");
    let dir = tmp.path().join("bench");
    for f in ["versus.json", "versus.md", "versus.png", "search/best.json"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("versus.json")).unwrap()).unwrap();
    let archs = r["archs"].as_array().unwrap();
    let names: Vec<&str> = archs.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["pick", "top2", "random01", "random02", "random03"]);
    let mut keys: Vec<&str> = archs.iter().map(|a| a["key"].as_str().unwrap()).collect();
    keys.sort();
    keys.dedup();
    assert!(keys.len() >= 4, "random draws are distinct: {keys:?}");
    let mean = |a: &Value| -> f64 {
        let v: Vec<f64> = a["test_acc"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(v.len(), 2);
        assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
        v.iter().sum::<f64>() / 2.0
    };
    let random: Vec<f64> = archs[2..].iter().map(mean).collect();
    let pick = mean(&archs[0]);
    assert!((r["pick_mean"].as_f64().unwrap() - pick).abs() < 1e-12);
    assert!((r["random_median"].as_f64().unwrap() - median(random.clone())).abs() < 1e-12);
    let below = random.iter().filter(|&&x| x < pick).count() as f64
        + 0.5 * random.iter().filter(|&&x| x == pick).count() as f64;
    assert!((r["pick_percentile"].as_f64().unwrap() - 100.0 * below / 3.0).abs() < 1e-9);
    let (lo, hi) = (
        r["diff_median_ci"][0].as_f64().unwrap(),
        r["diff_median_ci"][1].as_f64().unwrap(),
    );
    assert!(lo <= hi);

    // Again: every training is read back, the report is the same.
    let second = ok(ARGS, tmp.path());
    assert_eq!(first, second);
    // Other options on the same folder: one line, exit 2, nothing changed.
    let mut other = ARGS.to_vec();
    other[8] = "4";
    let o = run(&other, tmp.path());
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("other options"), "{err}");
}
