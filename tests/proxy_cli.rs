//! `msenas proxy-bench` on a tiny space: the CSV, the summary and the plot are written, a rerun
//! skips the rows already done, and the statistics are finite.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use msenas::benchmarks::columns::{Column, MEASURED};
use msenas::benchmarks::proxy::{self, Row};
use msenas::fitness::ScoreId;

fn bench(out: &Path) -> Output {
    bench_with(out, &[])
}

fn bench_with(out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_msenas"))
        .arg("proxy-bench")
        .args(extra)
        .args([
            "--preset",
            "tiny",
            "--archs",
            "3",
            "--epochs",
            "1",
            "--train-seeds",
            "2",
            "--train-subset",
            "40",
            "--short-samples",
            "20",
            "--short-batch",
            "10",
            "--boot",
            "50",
            "--set",
            "search.probe_size=12",
            "--set",
            "train.batch_size=20",
            "--seed",
            "3",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .expect("run msenas")
}

fn data_lines(csv: &Path) -> Vec<String> {
    std::fs::read_to_string(csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(String::from)
        .collect()
}

#[test]
fn writes_csv_summary_plot_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bench");
    let o = bench(&out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let csv = out.join(proxy::CSV);
    let rows = data_lines(&csv);
    assert_eq!(rows.len(), 3, "{rows:?}");
    for f in ["summary.json", "summary.md", "scatter.png", "genomes.jsonl"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let parsed = proxy::read_csv(&csv, 2).unwrap();
    assert_eq!(parsed.len(), 3);
    for r in &parsed {
        for c in MEASURED {
            assert!(r.scores[&c].is_finite(), "row {}: {c} not finite", r.index);
        }
        assert!(r.val_mean().is_finite() && r.test_mean().is_finite());
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["archs"], 3);
    assert!(
        summary["seed_tau_all"]["value"].is_number() || summary["val_min"] == summary["val_max"]
    );
    // The rows are this sample's: every live network is in one active-cell group, and in the
    // motif group of each family its active cells hold (the genomes from genomes.jsonl).
    let groups = summary["by_active_cells"].as_array().unwrap();
    let total: u64 = groups.iter().map(|g| g["archs"].as_u64().unwrap()).sum();
    assert_eq!(total, summary["live"].as_u64().unwrap());
    let genomes: Vec<msenas::genome::Genome> = std::fs::read_to_string(out.join("genomes.jsonl"))
        .unwrap()
        .lines()
        .map(|l| msenas::genome::Genome::from_json(l).unwrap())
        .collect();
    let live: Vec<bool> = parsed.iter().map(|r| r.live()).collect();
    for g in summary["by_motif"].as_array().unwrap() {
        let id = msenas::genome::motifs::by_name(g["label"].as_str().unwrap())
            .unwrap()
            .id;
        let want = genomes
            .iter()
            .zip(&live)
            .filter(|(gen, &l)| l && gen.active_motifs().contains(&id))
            .count();
        assert_eq!(g["archs"].as_u64().unwrap() as usize, want, "{g}");
    }
    assert!(std::fs::read_to_string(out.join("summary.md"))
        .unwrap()
        .contains("active cell(s)"));

    // Drop the last row (as if killed during it) and rerun: only that one is recomputed.
    let kept: Vec<String> = rows[..2].to_vec();
    let header = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    std::fs::write(&csv, format!("{header}\n{}\n", kept.join("\n"))).unwrap();
    let o = bench(&out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("(2 done)"), "{err}");
    assert_eq!(
        err.matches("\n[").count() + usize::from(err.starts_with('[')),
        1,
        "{err}"
    );
    let again = data_lines(&csv);
    assert_eq!(again.len(), 3);
    assert_eq!(&again[..2], &kept[..]);
    // Scores are deterministic: the recomputed row's training-free columns match.
    let a: Vec<&str> = rows[2].split(',').take(4 + 15).collect();
    let b: Vec<&str> = again[2].split(',').take(4 + 15).collect();
    assert_eq!(a, b);

    // Everything done: nothing recomputed.
    let o = bench(&out);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already done"));

    // --rescore adds the extra columns for every row without touching proxy.csv.
    let before = std::fs::read_to_string(&csv).unwrap();
    let o = bench_with(&out, &["--rescore"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("reference"), "{err}");
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), before);
    let extra = std::fs::read_to_string(out.join("extra_scores.csv")).unwrap();
    assert_eq!(extra.lines().count(), 4, "{extra}");
    let mut rows = proxy::read_csv(&csv, 2).unwrap();
    msenas::benchmarks::proxy_extra::merge(&out.join("extra_scores.csv"), &mut rows).unwrap();
    for r in &rows {
        let m = r.scores[&Column::RdmMem];
        assert!((0.0..=2.0).contains(&m), "rdm_mem {m}");
        for c in [Column::RdmMemRsa, Column::RsaRef] {
            assert!((-1.0..=1.0).contains(&r.scores[&c]), "{c} {}", r.scores[&c]);
        }
    }
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("| rsa_ref |"), "{summary}");
}

fn row(index: usize, params: f64, rdm: f64, acc: [f64; 2], status: &str) -> Row {
    let mut scores = BTreeMap::new();
    for (k, c) in MEASURED.into_iter().enumerate() {
        scores.insert(c, rdm * (k as f64 + 1.0) + (index % 3) as f64);
    }
    scores.insert(Column::Score(ScoreId::Params), params);
    scores.insert(Column::Score(ScoreId::Rdm), rdm);
    Row {
        index,
        key_hash: format!("{index:016x}"),
        status: status.into(),
        populations: 5,
        scores,
        val: acc.to_vec(),
        test: acc.to_vec(),
        score_s: 1.0,
        train_s: 2.0,
        key: String::new(),
    }
}

#[test]
fn summary_statistics_are_finite() {
    let rows: Vec<Row> = (0..12)
        .map(|i| {
            let p = 1000.0 * (1.0 + ((i * 7) % 12) as f64);
            let r = 0.1 + 0.01 * ((i * 5) % 11) as f64;
            let a = 0.5 + 0.03 * i as f64;
            let status = if i == 0 { "dead" } else { "ok" };
            row(i, p, r, [a, a + 0.01 * ((i % 4) as f64 - 1.5)], status)
        })
        .collect();
    let s = proxy::summarise(&rows, None, 100, 7);
    assert_eq!((s.archs, s.live, s.dead), (12, 11, 1));
    assert!(s.seed_tau_all.as_ref().unwrap().value.is_finite());
    for sc in &s.scores {
        for c in [&sc.tau_all, &sc.rho_all, &sc.tau_live, &sc.rho_live] {
            assert!(c.value.is_finite(), "{}: {c:?}", sc.score);
            assert!(c.lo.is_finite() && c.hi.is_finite(), "{}: {c:?}", sc.score);
            assert!(c.lo <= c.hi + 1e-12);
        }
        if sc.score != "params" {
            assert!(sc.partial_tau_live.value.is_finite(), "{}", sc.score);
        }
    }
    let md = proxy::markdown(&s, "synthetic");
    // Every column's direction as registered: the registry's for its scores, the benchmark's
    // own for the variants.
    for (name, better) in [
        ("rdm", "higher"),
        ("grad_rms", "lower"),
        ("params", "lower"),
        ("rdm_resid", "higher"),
        ("zico", "higher"),
        ("rank_grad_params", "higher"),
    ] {
        assert!(
            md.contains(&format!("| {name} | {better} |")),
            "{name}: {md}"
        );
    }
}

/// `rank_grad_params` is the mean of the ranks (among live rows) of `-grad_rms` and
/// `ln params`; a dead row is below every live one.
#[test]
fn the_combined_gradient_rank_is_the_mean_of_two_ranks() {
    // grad_rms = grad_norm - ln(params) / 2.
    let spec = [
        (1000.0, -1.0, "ok"),
        (4000.0, -1.0, "ok"),
        (2000.0, -3.0, "ok"),
        (8000.0, -0.5, "dead"),
    ];
    let rows: Vec<Row> = spec
        .iter()
        .enumerate()
        .map(|(i, &(p, g, st))| {
            let mut r = row(i, p, 0.2, [0.5, 0.5], st);
            r.scores.insert(Column::Score(ScoreId::GradNorm), g);
            r
        })
        .collect();
    let t = proxy::score_table(&rows);
    let grad: Vec<f64> = (0..3).map(|i| spec[i].1 - spec[i].0.ln() / 2.0).collect();
    assert_eq!(t[&Column::Score(ScoreId::GradRms)][..3], grad[..]);
    // -grad_rms ranks: row 2 best (3), row 1 (2), row 0 (1); ln params ranks: 1, 3, 2.
    let c = &t[&Column::RankGradParams];
    assert_eq!(c[..3], [1.0, 2.5, 2.5]);
    assert!(c[3] < 1.0, "a dead row ranks below the live ones: {c:?}");
}
