//! `msenas export --to torch`: the folder's files and shapes agree with the network, the
//! weights are msenas's own (initial weights of the seed: the same bytes as `forward --dump`'s
//! params), and bad sources, an existing destination and `--to nir` (no rectifier node in NIR
//! for the sign gates) are refused with one line, exit 2.

mod cli_common;
use cli_common::{ok, run};

#[test]
fn a_genome_exports_its_initial_weights_and_refusals_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&["sample", "--seed", "4", "--out", "g.json"], d);
    let line = ok(&["export", "g.json", "--to", "torch", "--seed", "9"], d);
    assert!(line.contains("msenas.torch.load"), "{line}");
    let out = d.join("g.json-torch");
    let man: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(man["format"], "msenas-torch-1");
    assert_eq!(man["trained"], false);
    let n = man["num_params"].as_u64().unwrap() as usize;
    let params = std::fs::read(out.join("params.f32")).unwrap();
    assert_eq!(params.len(), 4 * n);
    let nb: u64 = man["bn"]["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(
        std::fs::read(out.join("bn_var.f32")).unwrap().len() as u64,
        4 * nb
    );
    // The same weights as the forward pass of the same seed dumps.
    ok(
        &[
            "forward", "g.json", "--device", "cpu", "--batch", "2", "--seed", "9", "--dump", "dump",
        ],
        d,
    );
    assert_eq!(params, std::fs::read(d.join("dump/params.f32")).unwrap());
    assert_eq!(
        std::fs::read_to_string(out.join("plan.json")).unwrap(),
        std::fs::read_to_string(d.join("dump/plan.json")).unwrap()
    );
    for (args, want) in [
        (
            vec!["export", "g.json", "--to", "torch", "--seed", "9"],
            "already exists",
        ),
        (vec!["export", "nothing", "--to", "torch"], "no model.ckpt"),
        (vec!["export", "g.json", "--to", "onnx"], "onnx"),
        (vec!["export", "g.json", "--to", "nir"], "no rectifier node"),
    ] {
        let o = run(&args, d);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    assert!(!d.join("g.json-nir").exists());
    // Nothing half-written beside the destination.
    let stray: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(stray.is_empty());
}
