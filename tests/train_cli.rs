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
        vec![
            "train".into(),
            "--resume".into(),
            dir.path().into(),
            "--set".into(),
            "train.epochs=3".into(),
        ],
        vec![
            "train".into(),
            "--resume".into(),
            dir.path().into(),
            "--config".into(),
            g.clone().into(),
        ],
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

/// The tiny settings, as flags the config cannot override.
const TINY: [&str; 7] = ["--size", "8", "--width", "2", "--timesteps", "1", "--quiet"];

#[test]
fn config_file_and_set_take_effect() {
    let dir = tempfile::tempdir().unwrap();
    let g = genome(dir.path());
    let file = dir.path().join("train.json");
    std::fs::write(
        &file,
        r#"{"train": {"epochs": 3, "batch_size": 64, "crop_pad": 0}}"#,
    )
    .unwrap();
    let run = dir.path().join("run");
    let out = msenas()
        .arg("train")
        .arg(&g)
        .args(TINY)
        .arg("--config")
        .arg(&file)
        .args(["--set", "train.epochs=1", "--set", "train.batch_size=8"])
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ck = msenas::train::checkpoint::Checkpoint::read(&run.join("state.ckpt")).unwrap();
    let c = &ck.meta.config;
    assert_eq!((c.epochs, c.batch_size, c.crop_pad), (1, 8, 0));
    assert_eq!(ck.meta.plan.spec.timesteps, 1);
    let log = std::fs::read_to_string(run.join("log.csv")).unwrap();
    assert_eq!(log.lines().count(), 2, "{log}");
}

#[test]
fn bad_set_keys_and_values_exit_2_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let g = genome(dir.path());
    let bad_file = dir.path().join("bad.json");
    std::fs::write(&bad_file, r#"{"train": {"epoch": 2}}"#).unwrap();
    let run = dir.path().join("run");
    let cases: Vec<(Vec<std::ffi::OsString>, &str)> = vec![
        (
            vec!["--set".into(), "train.epochz=1".into()],
            "train.epochz",
        ),
        (
            vec!["--set".into(), "train.batch_size=abc".into()],
            "train.batch_size",
        ),
        (
            vec!["--set".into(), "train.loss=hinge".into()],
            "train.loss",
        ),
        (
            vec!["--set".into(), "train.epochs=0".into()],
            "train.epochs",
        ),
        (
            vec!["--set".into(), "search.population=4".into()],
            "search.population",
        ),
        (vec!["--set".into(), "train.epochs".into()], "train.epochs"),
        (
            vec!["--config".into(), bad_file.clone().into()],
            "train.epoch",
        ),
        (vec!["--preset".into(), "huge".into()], "--preset"),
    ];
    for (extra, key) in cases {
        let out = msenas()
            .arg("train")
            .arg(&g)
            .args(TINY)
            .args(&extra)
            .arg("--out")
            .arg(&run)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{extra:?}: {err}");
        assert!(err.starts_with("msenas: error:"), "{extra:?}: {err}");
        assert!(err.contains(key), "{extra:?}: {err}");
        assert!(!run.exists(), "{extra:?}: the run folder was created");
    }
}
