//! `msenas forward --dump DIR --grads`: the dump holds one gradient file per parameter with the
//! parameter's length and shape, a finite loss equal to the loss of the dumped logits and labels,
//! and a head gradient equal to finite differences of that loss. The head's linear layer is the
//! smooth case: its weights and bias move the logits linearly and change no spike, so
//! `dL/dW[o,i]` and `dL/db[o]` are ordinary derivatives of the loss of the dumped logits (the bias
//! shifts `logits[r, o]` by its change, the weight by its change times the time-averaged pooled
//! head spikes `m[r, i]`, read back from the dumped spike file).

use serde_json::Value;
use std::path::Path;

mod cli_common;
use cli_common::ok;
use std::process::Command;

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn f32s(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn u32s(path: &Path) -> Vec<u32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn uz(v: &Value) -> usize {
    v.as_u64().unwrap() as usize
}

/// The loss of `[B, K]` logits in f64: `ce` with label smoothing (mean over rows) or `mse`
/// against one-hot labels (mean over all entries).
fn loss64(logits: &[f64], labels: &[usize], k: usize, loss: &str, smoothing: f64) -> f64 {
    let b = labels.len();
    let mut total = 0.0;
    for (r, &label) in labels.iter().enumerate() {
        let row = &logits[r * k..(r + 1) * k];
        if loss == "ce" {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            for (j, v) in row.iter().enumerate() {
                let q = smoothing / k as f64 + if j == label { 1.0 - smoothing } else { 0.0 };
                total -= q * (v - lse);
            }
        } else {
            for (j, v) in row.iter().enumerate() {
                let d = v - if j == label { 1.0 } else { 0.0 };
                total += d * d;
            }
        }
    }
    if loss == "ce" {
        total / b as f64
    } else {
        total / (b * k) as f64
    }
}

/// Run `forward --grads` with `extra` flags and check the dump; returns the dump's manifest.
fn check_dump(d: &Path, name: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "forward",
        "g.json",
        "--batch",
        "6",
        "--timesteps",
        "3",
        "--width",
        "4",
        "--dump",
        name,
        "--grads",
    ];
    args.extend_from_slice(extra);
    let text = ok(&args, d);
    assert!(text.contains("gradients: "), "{text}");
    let dump = d.join(name);
    let man = json(&dump.join("manifest.json"));
    let plan = json(&dump.join("plan.json"));
    let g = &man["grads"];
    assert!(g.is_object(), "manifest has no grads section");
    assert_eq!(g["labels_source"], "dataset");
    assert_eq!(g["detach_reset"], true);

    // One file per parameter, its length and shape those of the parameter.
    let params = plan["params"].as_array().unwrap();
    let entries = g["params"].as_array().unwrap();
    assert_eq!(entries.len(), params.len());
    let files: Vec<&Value> = man["files"].as_array().unwrap().iter().collect();
    let mut grads = Vec::new();
    let mut overall = 0.0f32;
    for (j, (p, e)) in params.iter().zip(entries).enumerate() {
        assert_eq!(uz(&e["index"]), j);
        assert_eq!(e["name"], p["name"]);
        assert_eq!(e["offset"], p["offset"]);
        let len = uz(&p["len"]);
        let shape: usize = e["shape"].as_array().unwrap().iter().map(uz).product();
        assert_eq!(shape, len, "{}: shape {}", e["name"], e["shape"]);
        let file = e["file"].as_str().unwrap();
        let listed = files.iter().find(|f| f["name"] == file).expect("listed");
        assert_eq!(listed["shape"], e["shape"]);
        let v = f32s(&dump.join(file));
        assert_eq!(v.len(), len, "{file}");
        assert!(v.iter().all(|x| x.is_finite()), "{file}: not finite");
        let m = v.iter().fold(0.0f32, |a, &x| a.max(x.abs()));
        assert_eq!(e["max_abs"].as_f64().unwrap() as f32, m, "{file}: max_abs");
        overall = overall.max(m);
        grads.push(v);
    }
    assert!(overall > 0.0, "every gradient is zero");

    // The loss is finite and is the loss of the dumped logits and labels.
    let k = uz(&man["classes"]);
    let b = uz(&man["batch"]);
    let t = uz(&man["timesteps"]);
    let labels: Vec<usize> = man["labels"].as_array().unwrap().iter().map(uz).collect();
    assert_eq!(labels.len(), b);
    let logits: Vec<f64> = f32s(&dump.join("logits.f32"))
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let loss_name = g["loss"].as_str().unwrap();
    let smoothing = g["label_smoothing"].as_f64().unwrap();
    let value = g["loss_value"].as_f64().unwrap();
    assert!(value.is_finite());
    let want = loss64(&logits, &labels, k, loss_name, smoothing);
    assert!(
        (value - want).abs() <= 1e-5 * want.abs().max(1.0),
        "loss {value}, the dumped logits give {want}"
    );
    assert_eq!(f32s(&dump.join("grad_logits.f32")).len(), b * k);

    // The head: avg_pool of one population's spikes, then linear.
    let ops = plan["ops"].as_array().unwrap();
    let lin = ops.iter().find(|o| o["op"] == "linear").expect("linear");
    let pool = ops
        .iter()
        .find(|o| o["op"] == "avg_pool" && o["y"] == lin["x"])
        .expect("avg_pool before the linear layer");
    let lif = ops
        .iter()
        .find(|o| o["op"] == "lif" && o["s"] == pool["x"])
        .expect("lif before the pool");
    let pop = &man["populations"][uz(&lif["pop"])];
    let src = &plan["tensors"][uz(&pool["x"])];
    let (c, hw) = (uz(&src["c"]), uz(&src["h"]) * uz(&src["w"]));
    assert_eq!(uz(&pop["neurons"]), c * hw);
    let words = uz(&pop["words"]);
    let bits = u32s(&dump.join(pop["file"].as_str().unwrap()));
    assert_eq!(bits.len(), t * b * words);
    // m[r, i]: pooled head spikes averaged over time
    let mut m = vec![0.0f64; b * c];
    for step in 0..t {
        for r in 0..b {
            let row = &bits[(step * b + r) * words..(step * b + r + 1) * words];
            for n in 0..c * hw {
                if row[n / 32] >> (n % 32) & 1 == 1 {
                    m[r * c + n / hw] += 1.0 / (hw * t) as f64;
                }
            }
        }
    }
    let (gw, gb) = (&grads[uz(&lin["weight"])], &grads[uz(&lin["bias"])]);
    assert_eq!((gw.len(), gb.len()), (k * c, k));
    let h = 1e-3;
    let close = |fd: f64, got: f32, what: &str| {
        let got = f64::from(got);
        assert!(
            (fd - got).abs() <= 1e-4 * got.abs().max(1e-2),
            "{what}: finite difference {fd}, dumped gradient {got}"
        );
    };
    // every bias
    for o in 0..k {
        let shifted = |s: f64| {
            let mut l = logits.clone();
            for r in 0..b {
                l[r * k + o] += s;
            }
            loss64(&l, &labels, k, loss_name, smoothing)
        };
        let fd = (shifted(h) - shifted(-h)) / (2.0 * h);
        close(fd, gb[o], &format!("{name}: bias {o}"));
    }
    // the largest weight gradient and one more
    let big = (0..k * c)
        .max_by(|&x, &y| gw[x].abs().total_cmp(&gw[y].abs()))
        .unwrap();
    for at in [big, (big + c + 1) % (k * c)] {
        let (o, i) = (at / c, at % c);
        let shifted = |s: f64| {
            let mut l = logits.clone();
            for r in 0..b {
                l[r * k + o] += s * m[r * c + i];
            }
            loss64(&l, &labels, k, loss_name, smoothing)
        };
        let fd = (shifted(h) - shifted(-h)) / (2.0 * h);
        close(fd, gw[at], &format!("{name}: weight [{o}, {i}]"));
    }
    man
}

#[test]
fn forward_grads_dump_is_consistent() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(&["sample", "--seed", "4", "--out", "g.json"], d);

    let man = check_dump(d, "ce", &[]);
    let g = &man["grads"];
    assert_eq!(g["loss"], "ce");
    assert_eq!(g["surrogate"]["name"], "triangle");
    assert_eq!(g["surrogate"]["alpha"], 2.0);
    assert!((g["label_smoothing"].as_f64().unwrap() - 0.1).abs() < 1e-7);

    let man = check_dump(
        d,
        "mse",
        &["--loss", "mse", "--surrogate", "sigmoid:3", "--seed", "7"],
    );
    let g = &man["grads"];
    assert_eq!(g["loss"], "mse");
    assert_eq!(g["label_smoothing"], 0.0);
    assert_eq!(g["surrogate"]["name"], "sigmoid");
    assert_eq!(g["surrogate"]["alpha"], 3.0);

    let man = check_dump(
        d,
        "atan",
        &["--surrogate", "atan", "--label-smoothing", "0"],
    );
    assert_eq!(man["grads"]["surrogate"]["name"], "atan");
    assert_eq!(man["grads"]["label_smoothing"], 0.0);

    // A dump without --grads has no gradient files.
    ok(
        &[
            "forward",
            "g.json",
            "--batch",
            "2",
            "--timesteps",
            "1",
            "--dump",
            "plain",
        ],
        d,
    );
    let man = json(&d.join("plain/manifest.json"));
    assert!(man.get("grads").is_none());
    assert!(!d.join("plain/grad_0.f32").exists());

    // The PyTorch cross-check of the forward pass and the gradients, where python3 is present
    // (it exits 0 without torch).
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/crosscheck_torch.py");
    if let Ok(o) = Command::new("python3")
        .arg(&script)
        .arg("--quiet")
        .args([d.join("ce"), d.join("mse"), d.join("atan")])
        .output()
    {
        assert!(
            o.status.success(),
            "crosscheck_torch.py failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
