//! CPU engine forward time per candidate (the fast engine; the reference loops in the same run)
//! at the CPU default (C 8, T 4, batch 128, digits 1x16x16, 10 classes) for the genomes
//! `msenas sample --seed 0..9` gives, printed as JSON. Where PyTorch is importable, the same
//! networks run in PyTorch on the CPU in the same run (`scripts/crosscheck_torch.py --bench`),
//! eager and under `torch.compile`, and the ratios are reported.
//!
//! `cargo bench --bench cpu_forward`; `MSENAS_BENCH_REPEATS` (default 3) sets the repeats,
//! `MSENAS_BENCH_CANDIDATES` (default 10) the number of genomes, `MSENAS_BENCH_NO_COMPILE=1`
//! skips `torch.compile` (its compilation takes a minute or two per network).

use msenas::config::Config;
use msenas::cpu::{forward, init_params, ForwardOptions};
use msenas::data::{self, DataOptions};
use msenas::dump::{self, DumpInfo};
use msenas::plan::Plan;
use rand::SeedableRng;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn torch_available() -> Option<String> {
    let o = Command::new("python3")
        .args(["-c", "import torch; print(torch.__version__)"])
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn torch_bench(script: &Path, dir: &Path, repeats: usize, compile: bool) -> Result<Value, String> {
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg("--bench")
        .arg(dir)
        .arg("--repeats")
        .arg(repeats.to_string());
    if compile {
        cmd.arg("--compile");
    }
    let o = cmd.output().map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).trim().to_string());
    }
    let text = String::from_utf8_lossy(&o.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))
}

fn main() {
    let repeats = env_usize("MSENAS_BENCH_REPEATS", 3).max(1);
    let candidates = env_usize("MSENAS_BENCH_CANDIDATES", 10);
    let batch = 128;
    let cfg = Config::default();
    let (width, t) = (cfg.space.width, cfg.space.timesteps);
    let ds = data::load(
        "digits",
        &DataOptions {
            timesteps: t,
            ..DataOptions::default()
        },
    )
    .expect("bundled digits");
    let mut spec = ds.spec;
    spec.timesteps = t;
    let idx: Vec<usize> = (0..batch).collect();
    let input = ds.test.batch(&idx, t);
    let labels = ds.test.labels_of(&idx);
    let torch = torch_available();
    let compile = std::env::var("MSENAS_BENCH_NO_COMPILE").map_or(true, |v| v != "1");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/crosscheck_torch.py");
    let tmp = tempfile::tempdir().expect("temporary folder");

    let mut rows = Vec::new();
    let (mut cpu_total, mut torch_total, mut compiled_total) = (0.0f64, 0.0f64, 0.0f64);
    for seed in 0..candidates as u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let genome = cfg.space.sample(&mut rng);
        let plan = Plan::compile(&genome, &spec, width, cfg.space.reduce_kernel).expect("compiles");
        let params = init_params(&plan, 0);
        let opts = ForwardOptions::new(t, batch);
        forward(&plan, &params, &input, &opts); // warm-up
        let mut times = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let start = Instant::now();
            std::hint::black_box(forward(&plan, &params, &input, &opts));
            times.push(start.elapsed().as_secs_f64());
        }
        let cpu_med = median(&times);
        let mut ropts = opts;
        ropts.kernels = msenas::cpu::Kernels::Reference;
        let mut rtimes = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let start = Instant::now();
            std::hint::black_box(forward(&plan, &params, &input, &ropts));
            rtimes.push(start.elapsed().as_secs_f64());
        }
        let ref_med = median(&rtimes);
        let neurons: usize = plan.populations.iter().map(|p| p.neurons).sum();
        let mut row = json!({
            "seed": seed,
            "key": plan.key,
            "params": plan.num_params,
            "populations": plan.populations.len(),
            "neurons": neurons,
            "cpu": {
                "median_s": cpu_med,
                "min_s": times.iter().cloned().fold(f64::INFINITY, f64::min),
                "max_s": times.iter().cloned().fold(0.0, f64::max),
                "images_per_s": batch as f64 / cpu_med,
            },
            "cpu_reference_loops_median_s": ref_med,
        });
        if torch.is_some() {
            // Dump the network (with its spikes, so the folder is also a valid cross-check
            // input) and time it in PyTorch.
            let dir = tmp.path().join(format!("seed{seed}"));
            let mut rec = opts;
            rec.record_spikes = true;
            let out = forward(&plan, &params, &input, &rec);
            let info = DumpInfo {
                dataset: "digits",
                seed: 0,
                indices: &idx,
                labels: &labels,
                forward_seconds: cpu_med,
                grads: None,
            };
            dump::write(&dir, &plan, &params, &input, &rec, &out, &info).expect("dump");
            match torch_bench(&script, &dir, repeats, compile) {
                Ok(v) => {
                    let tm = v["median_s"].as_f64().unwrap_or(f64::NAN);
                    cpu_total += cpu_med;
                    torch_total += tm;
                    compiled_total += v["compiled"]["median_s"].as_f64().unwrap_or(0.0);
                    row["torch_over_cpu"] = json!(tm / cpu_med);
                    row["torch"] = v;
                }
                Err(e) => row["torch_error"] = json!(e),
            }
        }
        eprintln!("seed {seed}: {:.3} s", cpu_med);
        rows.push(row);
    }
    let cpu_sum: f64 = rows
        .iter()
        .map(|r| r["cpu"]["median_s"].as_f64().unwrap())
        .sum();
    let ref_sum: f64 = rows
        .iter()
        .map(|r| r["cpu_reference_loops_median_s"].as_f64().unwrap())
        .sum();
    let report = json!({
        "bench": "cpu_forward",
        "setting": {
            "dataset": "digits",
            "input": [spec.in_ch, spec.height, spec.width],
            "classes": spec.classes,
            "width": width,
            "timesteps": t,
            "batch": batch,
            "reduce_kernel": cfg.space.reduce_kernel,
            "repeats": repeats,
            "threads": rayon::current_num_threads(),
            "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        },
        "torch": torch,
        "candidates": rows,
        "summary": {
            "cpu_median_sum_s": cpu_sum,
            "cpu_candidates_per_s": candidates as f64 / cpu_sum,
            "cpu_reference_loops_median_sum_s": ref_sum,
            "reference_loops_over_cpu": ref_sum / cpu_sum,
            "torch_median_sum_s": if torch_total > 0.0 { json!(torch_total) } else { Value::Null },
            "torch_over_cpu": if torch_total > 0.0 { json!(torch_total / cpu_total) } else { Value::Null },
            "torch_compiled_median_sum_s": if compiled_total > 0.0 { json!(compiled_total) } else { Value::Null },
            "torch_compiled_over_cpu": if compiled_total > 0.0 { json!(compiled_total / cpu_total) } else { Value::Null },
        },
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
}
