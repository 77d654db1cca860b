//! The command line end to end: sample -> show -> forward -> forward --dump, and every kind of
//! bad input gives exit code 2, exactly one line on stderr and no output file.

use std::path::{Path, PathBuf};

mod cli_common;
use cli_common::{ok, run};
use std::process::Command;

/// Files under `dir`, recursively, relative names sorted.
fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p.strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    out.sort();
    out
}

#[test]
fn sample_show_forward_dump() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(&["sample", "--seed", "1", "--out", "g.json"], d);

    let text = ok(&["show", "g.json", "--plot", "arch.png"], d);
    for want in [
        "cell1 ",
        "cell6 ",
        "slots: in0 <- stem",
        "head:",
        "params: ",
    ] {
        assert!(text.contains(want), "show lacks {want:?}:\n{text}");
    }
    assert!(text.contains(" E3") || text.contains(" E5") || text.contains("SILENT"));
    let png = std::fs::read(d.join("arch.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // the parameter count depends on the input
    let cifar = ok(
        &["show", "g.json", "--dataset", "cifar10", "--width", "4"],
        d,
    );
    let count = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("params: "))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .to_string()
    };
    assert_ne!(count(&text), count(&cifar));

    let fwd = ok(
        &["forward", "g.json", "--batch", "8", "--timesteps", "2"],
        d,
    );
    assert!(fwd.contains("forward: ") && fwd.contains("(head)"), "{fwd}");

    ok(
        &[
            "forward",
            "g.json",
            "--batch",
            "8",
            "--timesteps",
            "2",
            "--seed",
            "3",
            "--dump",
            "dump",
        ],
        d,
    );
    let dump = d.join("dump");
    let man: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dump.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(man["batch"], 8);
    assert_eq!(man["timesteps"], 2);
    assert_eq!(man["seed"], 3);
    assert_eq!(man["lif"]["v_th"], 0.5);
    assert_eq!(man["lif"]["tau"], 2.0);
    assert!(man["bn"]["eps"].as_f64().unwrap() > 0.0);
    assert_eq!(man["labels"].as_array().unwrap().len(), 8);
    let pops = man["populations"].as_array().unwrap();
    assert!(!pops.is_empty());
    // every file has the size its shape and dtype say
    for f in man["files"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        let len = std::fs::metadata(dump.join(name)).unwrap().len() as usize;
        if f["dtype"] == "json" {
            assert!(len > 0);
            continue;
        }
        let n: usize = f["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .product();
        assert_eq!(len, 4 * n, "{name}");
    }
    for p in pops {
        let words = p["neurons"].as_u64().unwrap().div_ceil(32);
        assert_eq!(p["words"].as_u64().unwrap(), words);
        assert!(dump.join(p["file"].as_str().unwrap()).is_file());
    }
    let input = std::fs::metadata(dump.join("input.f32")).unwrap().len();
    assert_eq!(input, 2 * 8 * 16 * 16 * 4);
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dump.join("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["num_params"], man["num_params"]);
    // no temporary files left behind
    assert!(listing(&dump)
        .iter()
        .all(|p| !p.to_string_lossy().ends_with(".tmp")));

    // The PyTorch cross-check, where python3 is present (it exits 0 without torch).
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/crosscheck_torch.py");
    if let Ok(o) = Command::new("python3").arg(&script).arg(&dump).output() {
        assert!(
            o.status.success(),
            "crosscheck_torch.py failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// Each case: a command line that must fail with exit 2, one stderr line containing `needle`,
/// and leave the folder as it was.
#[test]
fn bad_input_is_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(&["sample", "--seed", "2", "--out", "good.json"], d);
    let good: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("good.json")).unwrap()).unwrap();
    let write = |name: &str, v: &serde_json::Value| {
        std::fs::write(d.join(name), serde_json::to_string_pretty(v).unwrap()).unwrap()
    };
    std::fs::write(d.join("notjson.json"), "cells: [1, 2]\n").unwrap();
    let mut v = good.clone();
    v.as_object_mut().unwrap().remove("k");
    write("missing.json", &v);
    let mut v = good.clone();
    v["cells"][0]["ops"][0] = "k7".into();
    write("range.json", &v);
    let mut v = good.clone();
    v["k"] = 9.into();
    write("k.json", &v);
    let mut v = good.clone();
    v["cells"][1]["motif"] = "grid_cells".into();
    write("motif.json", &v);
    let mut v = good.clone();
    v["cells"][0]["motif"] = "lateral_inhibition".into();
    let ops = v["cells"][0]["ops"].as_array().unwrap()[..1].to_vec();
    v["cells"][0]["ops"] = ops.into();
    write("short.json", &v);
    let mut v = good.clone();
    v["cells"][0]["sources"] = "abc".into();
    write("type.json", &v);
    let before = listing(d);

    let cases: &[(&[&str], &str)] = &[
        (&["show", "notjson.json"], "notjson.json: not valid JSON"),
        (&["show", "missing.json"], "missing.json: missing field `k`"),
        (&["show", "range.json"], "cells[0].ops[0]: 'k7'"),
        (&["show", "k.json"], "k.json: k: 9 (allowed"),
        (
            &["show", "motif.json"],
            "cells[1].motif: 'grid_cells' unknown",
        ),
        (&["show", "short.json"], "cells[0].ops: 1 entries"),
        (&["show", "type.json"], "type.json: invalid type"),
        (&["show", "absent.json"], "absent.json"),
        (&["show", "good.json", "--dataset", "imagenet"], "--dataset"),
        (
            &["show", "good.json", "--set", "space.widht=8"],
            "space.widht",
        ),
        (
            &["show", "good.json", "--config", "absent.json"],
            "absent.json",
        ),
        (
            &["show", "notjson.json", "--plot", "arch.png"],
            "not valid JSON",
        ),
        (
            &[
                "show",
                "good.json",
                "--set",
                "space.width=abc",
                "--plot",
                "a.png",
            ],
            "--set space.width=abc",
        ),
        (
            &["forward", "short.json", "--dump", "out"],
            "short.json: cells[0].ops",
        ),
        (
            &["forward", "motif.json", "--batch", "4", "--dump", "out"],
            "grid_cells",
        ),
        (&["forward", "absent.json", "--dump", "out"], "absent.json"),
        (
            &[
                "forward",
                "good.json",
                "--set",
                "space.width=abc",
                "--dump",
                "out",
            ],
            "expected usize",
        ),
        (
            &[
                "forward",
                "good.json",
                "--set",
                "search.bogus=1",
                "--dump",
                "out",
            ],
            "unknown key 'search.bogus'",
        ),
        (
            &["forward", "good.json", "--width", "7", "--dump", "out"],
            "--width: 7",
        ),
        (
            &["forward", "good.json", "--batch", "100000", "--dump", "out"],
            "--batch",
        ),
        (&["forward", "good.json", "--timesteps", "0"], "--timesteps"),
        (&["forward", "good.json", "--dataset", "nope"], "nope"),
        (
            &["forward", "good.json", "--loss", "mse", "--dump", "out"],
            "--loss: needs --grads",
        ),
        (
            &["forward", "good.json", "--surrogate", "atan"],
            "--surrogate: needs --grads",
        ),
        (
            &["forward", "good.json", "--grads"],
            "--grads: needs --dump",
        ),
        (
            &[
                "forward",
                "good.json",
                "--grads",
                "--dump",
                "out",
                "--loss",
                "hinge",
            ],
            "--loss: 'hinge' (allowed: ce, mse)",
        ),
        (
            &[
                "forward",
                "good.json",
                "--grads",
                "--dump",
                "out",
                "--surrogate",
                "relu",
            ],
            "--surrogate: 'relu'",
        ),
        (
            &[
                "forward",
                "good.json",
                "--grads",
                "--dump",
                "out",
                "--surrogate",
                "atan:0",
            ],
            "--surrogate: 'atan:0'",
        ),
        (
            &[
                "forward",
                "good.json",
                "--grads",
                "--dump",
                "out",
                "--label-smoothing",
                "1",
            ],
            "--label-smoothing: 1 (allowed",
        ),
        (
            &[
                "forward",
                "good.json",
                "--grads",
                "--dump",
                "out",
                "--label-smoothing",
                "abc",
            ],
            "--label-smoothing: 'abc'",
        ),
        (
            &[
                "forward",
                "good.json",
                "--grads",
                "--dump",
                "out",
                "--loss",
                "mse",
                "--label-smoothing",
                "0.1",
            ],
            "--label-smoothing: applies to --loss ce only",
        ),
    ];
    for (args, needle) in cases {
        let o = run(args, d);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "msenas {args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "msenas {args:?}: {err:?}");
        assert!(err.starts_with("msenas: error: "), "{err}");
        assert!(
            err.contains(needle),
            "msenas {args:?}: {err} lacks {needle:?}"
        );
        assert!(o.stdout.is_empty(), "msenas {args:?} printed to stdout");
        assert_eq!(listing(d), before, "msenas {args:?} left files behind");
    }
}
