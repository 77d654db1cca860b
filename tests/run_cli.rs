//! `msenas run` end to end on the tiny preset, and transfer of a search run to another dataset.

use std::process::Command;

fn msenas() -> Command {
    Command::new(env!("CARGO_BIN_EXE_msenas"))
}

#[test]
fn run_end_to_end_then_transfer_to_event_digits() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = msenas()
        .args(["run", "--preset", "tiny", "--quiet", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "report.md",
        "evaluation.json",
        "architecture.png",
        "search/best.json",
        "search/fitness.png",
        "train/model.ckpt",
        "train/curves.png",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("test accuracy") && report.contains("energy per sample"));
    // The report counts the best genome's active cells, and explains silent ones.
    let best = msenas::genome::Genome::from_json(
        &std::fs::read_to_string(out.join("search/best.json")).unwrap(),
    )
    .unwrap();
    let active = best.active_motifs().len();
    let line = format!(
        "Active cells: {active} of {} normal cells",
        best.cells.len()
    );
    assert!(report.contains(&line), "{line}\n{report}");
    assert_eq!(
        report.contains("leave `silent` out of `space.motifs`"),
        active < best.cells.len()
    );
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("evaluation.json")).unwrap())
            .unwrap();
    let acc = eval["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    assert_eq!(eval["noise"].as_array().unwrap().len(), 3);

    // Running the same command again continues: nothing is redone, the report is rewritten.
    let o = msenas()
        .args(["run", "--preset", "tiny", "--quiet", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Transfer: the genome found on digits trains on the event digits (2 input channels).
    let t = dir.path().join("transfer");
    let o = msenas()
        .args(["train"])
        .arg(out.join("search"))
        .args([
            "--dataset",
            "digits_dvs",
            "--epochs",
            "1",
            "--quiet",
            "--out",
        ])
        .arg(&t)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.join("result.json")).unwrap()).unwrap();
    assert_eq!(r["dataset"], "digits_dvs");
}

#[test]
fn run_refuses_bad_settings_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = msenas()
        .args(["run", "--set", "space.width=3", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("space.width"), "{err}");
    assert!(!out.exists());
}
