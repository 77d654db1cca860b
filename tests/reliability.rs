//! Hostile input through the command line: argument errors, crafted headers, oversized files
//! and flags, non-object configs, output paths that must not be replaced, run folders whose
//! settings changed, shorter re-runs, corrupted checkpoints. Every refusal is exit code 2, one
//! line on stderr, and leaves the folder as it was.

use std::io::Write as _;
use std::path::{Path, PathBuf};

mod cli_common;
use cli_common::{ok, run};

/// Files under `dir`, recursively, with their sizes and modification times: what a refused
/// command must leave untouched (folders are listed without their times: taking a lock may
/// touch them).
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p.clone());
            }
            // A folder's lock file holds the process id of its last holder; it is housekeeping,
            // not results.
            if p.file_name().is_some_and(|n| n == ".lock") {
                continue;
            }
            out.push((
                p.strip_prefix(dir).unwrap().to_path_buf(),
                if m.is_dir() { 0 } else { m.len() },
                if m.is_dir() {
                    std::time::UNIX_EPOCH
                } else {
                    m.modified().unwrap()
                },
            ));
        }
    }
    out.sort();
    out
}

/// Runs a command that must be refused: exit 2, one line containing `needle`, nothing on
/// stdout, nothing in `dir` changed.
fn refused(args: &[&str], dir: &Path, needle: &str) {
    let before = snapshot(dir);
    let o = run(args, dir);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "msenas {args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "msenas {args:?}: {err:?}");
    assert!(err.starts_with("msenas: error: "), "{err}");
    assert!(
        err.contains(needle),
        "msenas {args:?}: {err} lacks {needle:?}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(o.stdout.is_empty(), "msenas {args:?} printed to stdout");
    assert_eq!(snapshot(dir), before, "msenas {args:?} changed the folder");
}

fn gz(path: &Path, bytes: &[u8]) {
    let f = std::fs::File::create(path).unwrap();
    let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap();
}

#[test]
fn argument_errors_are_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for (args, needle) in [
        (&["forward"][..], "required"),
        (&["--bogus"][..], "--bogus"),
        (&["nope"][..], "unrecognized subcommand"),
        (&["search", "--population", "abc"][..], "--population"),
        (&["search", "--sed", "1"][..], "--seed"),
        (&["score"][..], "required"),
    ] {
        refused(args, d, needle);
    }
    // Help still prints in full, exit 0.
    let o = run(&["search", "--help"], d);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).lines().count() > 5);
}

#[test]
fn headers_flags_and_file_sizes_are_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(&["sample", "--seed", "3", "--out", "g.json"], d);

    // An IDX header whose sizes overflow: one line, no panic.
    let mnist = d.join("mnist");
    std::fs::create_dir(&mnist).unwrap();
    let mut h = Vec::new();
    for v in [2051u32, u32::MAX, u32::MAX, u32::MAX] {
        h.extend_from_slice(&v.to_be_bytes());
    }
    for name in ["train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"] {
        gz(&mnist.join(name), &h);
    }
    for name in ["train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        gz(&mnist.join(name), &[0, 0, 8, 1, 0, 0, 0, 0]);
    }
    refused(
        &[
            "forward",
            "g.json",
            "--dataset",
            "mnist",
            "--data-dir",
            "mnist",
        ],
        d,
        "overflows",
    );
    // An input size that would need terabytes: refused before anything is allocated.
    refused(
        &["forward", "g.json", "--set", "data.size=4000000"],
        d,
        "data.size: 4000000 (allowed: 1..=512)",
    );
    refused(
        &["train", "g.json", "--size", "4000000", "--out", "t"],
        d,
        "input size 4000000",
    );
    refused(
        &["train", "g.json", "--batch-size", "0", "--out", "t"],
        d,
        "batch_size",
    );
    refused(
        &["search", "--population", "1000000000000", "--out", "r"],
        d,
        "search.population",
    );
    // Large inputs within the limits but activations beyond the memory bound.
    refused(
        &[
            "forward",
            "g.json",
            "--batch",
            "300",
            "--width",
            "512",
            "--timesteps",
            "64",
        ],
        d,
        "GiB of activations",
    );
    // Genome and config files are read up to a bound.
    let big = d.join("big.json");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(17 << 20).unwrap();
    refused(&["show", "big.json"], d, "larger than any genome");
    refused(
        &["show", "g.json", "--config", "big.json"],
        d,
        "larger than any config",
    );
    std::fs::remove_file(&big).unwrap();
    refused(&["show", "mnist"], d, "not a regular file");
}

#[test]
fn configs_must_be_objects_of_known_sections() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(&["sample", "--seed", "3", "--out", "g.json"], d);
    for (name, text, needle) in [
        (
            "a.json",
            "[8, 4]",
            "a config must be a JSON object of keys, not an array",
        ),
        (
            "b.json",
            r#"{"space": [8, 4]}"#,
            "section 'space' must be a JSON object",
        ),
        (
            "c.json",
            r#"{"search": {"short_train": 1}}"#,
            "search.short_train",
        ),
        ("d.json", r#"{"spaec": {}}"#, "unknown key 'spaec'"),
    ] {
        std::fs::write(d.join(name), text).unwrap();
        refused(&["show", "g.json", "--config", name], d, needle);
    }
}

#[test]
fn outputs_replace_only_regular_files() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir(d.join("folder")).unwrap();
    refused(&["sample", "--out", "folder"], d, "is a folder");
    #[cfg(unix)]
    {
        std::fs::write(d.join("target.json"), "keep").unwrap();
        std::os::unix::fs::symlink(d.join("target.json"), d.join("link.json")).unwrap();
        refused(&["sample", "--out", "link.json"], d, "symbolic link");
        assert_eq!(
            std::fs::read_to_string(d.join("target.json")).unwrap(),
            "keep"
        );
    }
    // A long but legal name is written.
    let long = "g".repeat(240) + ".json";
    ok(&["sample", "--out", &long], d);
    assert!(d.join(&long).is_file());
}

#[test]
fn run_folders_keep_their_settings_and_are_never_shortened() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let base = [
        "search", "--preset", "tiny", "--device", "cpu", "--quiet", "--out", "r",
    ];
    ok(&base, d);
    // A finished 2-generation search is not rewritten by a 1-generation one.
    refused(
        &["search", "--resume", "r", "--generations", "1", "--quiet"],
        d,
        "--generations: 1 is fewer than the 2 generations",
    );
    // An edited config.json is refused, naming what differs.
    let cp = d.join("r").join("config.json");
    let good = std::fs::read_to_string(&cp).unwrap();
    std::fs::write(
        &cp,
        good.replace("\"probe_size\": 16", "\"probe_size\": 24"),
    )
    .unwrap();
    refused(
        &["search", "--resume", "r", "--quiet"],
        d,
        "search.probe_size (16 -> 24)",
    );
    std::fs::write(&cp, &good).unwrap();
    // A corrupted log line is refused, naming the line.
    let log = d.join("r").join("evaluations.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let first = text.lines().next().unwrap();
    let at = first.find("\"generation\":0").expect("generation field");
    let mut bad = text.clone();
    bad.replace_range(at..at + 14, "\"generation\":1");
    std::fs::write(&log, bad).unwrap();
    refused(
        &["search", "--resume", "r", "--quiet"],
        d,
        "line 1: checksum mismatch",
    );
    std::fs::write(&log, &text).unwrap();
    // Restored: more generations continue it.
    ok(
        &["search", "--resume", "r", "--generations", "3", "--quiet"],
        d,
    );

    // `msenas run` on a folder with other settings refuses; with the same flags it continues.
    let run_base = [
        "run", "--preset", "tiny", "--device", "cpu", "--quiet", "--out", "j",
    ];
    ok(&run_base, d);
    refused(
        &[
            "run", "--preset", "tiny", "--device", "cpu", "--quiet", "--out", "j", "--seed", "5",
        ],
        d,
        "seed (0 -> 5)",
    );
    refused(
        &[
            "run",
            "--preset",
            "tiny",
            "--device",
            "cpu",
            "--quiet",
            "--out",
            "j",
            "--set",
            "train.epochs=2",
        ],
        d,
        "train.epochs (1 -> 2)",
    );
    ok(&run_base, d);
    // The result file is not trusted: a finished training folder resumes to its end from its
    // checkpoint and writes the result again.
    let result = d.join("j").join("train").join("result.json");
    let good = std::fs::read_to_string(&result).unwrap();
    std::fs::write(
        &result,
        good.replace("\"test_acc\": 0.", "\"test_acc\": 0.0"),
    )
    .unwrap();
    ok(&run_base, d);
    let numbers = |text: &str| {
        let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
        v.as_object_mut().unwrap().remove("wall_s");
        v
    };
    assert_eq!(
        numbers(&std::fs::read_to_string(&result).unwrap()),
        numbers(&good)
    );

    // A corrupted checkpoint: one line, exit 2.
    let ck = d.join("j").join("train").join("model.ckpt");
    let mut bytes = std::fs::read(&ck).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0x10;
    std::fs::write(&ck, &bytes).unwrap();
    refused(&["evaluate", "j/train/model.ckpt"], d, "checksum mismatch");
}
