//! `msenas train` and `msenas evaluate` as a user runs them (tiny settings: digits at 8x8,
//! width 2, one time step, one epoch).

use std::process::Command;

fn msenas() -> Command {
    Command::new(env!("CARGO_BIN_EXE_msenas"))
}

fn genome(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("g.json");
    let out = msenas()
        .args(["sample", "--seed", "7", "--out"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p
}

#[test]
fn train_then_evaluate_then_resume() {
    let dir = tempfile::tempdir().unwrap();
    let g = genome(dir.path());
    let run = dir.path().join("run");
    let tiny = [
        "--size",
        "8",
        "--width",
        "2",
        "--timesteps",
        "1",
        "--epochs",
        "1",
        "--batch-size",
        "128",
        "--quiet",
    ];
    let out = msenas()
        .arg("train")
        .arg(&g)
        .args(tiny)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("test accuracy"), "{stdout}");
    for f in [
        "state.ckpt",
        "model.ckpt",
        "log.csv",
        "curves.png",
        "result.json",
    ] {
        assert!(run.join(f).is_file(), "{f}");
    }
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("result.json")).unwrap()).unwrap();
    let test_acc = result["test_acc"].as_f64().unwrap();

    // evaluate a run folder, as JSON, with noise.
    let out = msenas()
        .arg("evaluate")
        .arg(&run)
        .args(["--json", "--noise", "gaussian:0.1,saltpepper:0.05"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rep["accuracy"].as_f64().unwrap(), test_acc);
    assert_eq!(rep["noise"].as_array().unwrap().len(), 2);
    assert_eq!(rep["noise"][0]["noise"], "gaussian:0.1");
    assert!(rep["sops_per_sample"].as_f64().unwrap() >= 0.0);
    assert!(rep["energy_uj_per_sample"].as_f64().unwrap() > 0.0);
    assert!(!rep["populations"].as_array().unwrap().is_empty());
    // The human-readable report.
    let out = msenas()
        .arg("evaluate")
        .arg(run.join("model.ckpt"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("top-1 accuracy"));

    // A finished run resumes to the same result.
    let out = msenas()
        .args(["train", "--quiet", "--resume"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("result.json")).unwrap()).unwrap();
    assert_eq!(again["test_acc"], result["test_acc"]);

    // Training into a folder that holds a run is refused.
    let out = msenas()
        .arg("train")
        .arg(&g)
        .args(tiny)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));
}

#[test]
fn user_mistakes_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let g = genome(dir.path());
    let cases: Vec<Vec<std::ffi::OsString>> = vec![
        vec!["train".into()],
        vec![
            "train".into(),
            g.clone().into(),
            "--surrogate".into(),
            "relu".into(),
            "--quiet".into(),
            "--epochs".into(),
            "1".into(),
        ],
        vec![
            "train".into(),
            g.clone().into(),
            "--dataset".into(),
            "nope".into(),
        ],
        vec![
            "train".into(),
            "--resume".into(),
            dir.path().into(),
            "--epochs".into(),
            "3".into(),
        ],
        vec!["train".into(), "--resume".into(), dir.path().into()],
        vec!["evaluate".into(), dir.path().into()],
        vec!["evaluate".into(), g.clone().into()],
    ];
    for args in cases {
        let out = msenas().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("msenas: error:"), "{args:?}: {err}");
    }
}
