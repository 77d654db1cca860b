//! Training throughput of the CPU engine: images per second of forward + backward + AdamW step
//! at C 8, T 4, batch 64, 16x16 digits-shaped input, on a few sampled genomes, with the fast
//! engine (`cpu::fast`) and, in the same run, the reference loops; the fast engine's convolution
//! kernels (forward, weight gradient, input gradient) in GMAC/s (multiply-accumulates a dense
//! convolution would do) at the shapes of the CPU-default networks, against this machine's
//! measured FP32 FMA peak and the reference loops; the same steps through `GpuTrainer` on the
//! adapter `--device auto` would open for a GPU job (any adapter, CPU drivers such as lavapipe
//! included: then `gpu.is_cpu` is true and the number only shows the path runs); then the same
//! networks in PyTorch eager and `torch.compile` (`scripts/train_torch_bench.py`) when
//! `python3 -c "import torch"` works. Every rate is the best of a few rounds. Prints one JSON
//! object.
//! `cargo bench --bench train [-- --quick]` (`--quick`: one genome, one round, no
//! `torch.compile`, whose compilation takes minutes per network).

use msenas::config::TrainConfig;
use msenas::cpu::backprop::gradient;
use msenas::cpu::fast::primitives::SpikeConv;
use msenas::cpu::grad::{softmax_cross_entropy, Surrogate};
use msenas::cpu::{init_params, ConvShape, Kernels, LifParams};
use msenas::genome::SearchSpace;
use msenas::gpu::{DeviceChoice, GpuContext, GpuTrainer, TrainSettings};
use msenas::plan::Plan;
use msenas::train::optim::AdamW;
use msenas::DataSpec;
use rand::SeedableRng;
use serde_json::{json, Value};
use std::time::Instant;

/// Seconds of the fastest of `rounds` calls of `f` (after one warm-up call).
fn best_secs(rounds: usize, f: &mut dyn FnMut()) -> f64 {
    f();
    (0..rounds)
        .map(|_| {
            let st = Instant::now();
            f();
            st.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let no_reference = std::env::args().any(|a| a == "--no-reference");
    let (c, t, b, size) = (8usize, 4usize, 64usize, 16usize);
    let spec = DataSpec {
        in_ch: 1,
        height: size,
        width: size,
        classes: 10,
        timesteps: t,
        event: false,
    };
    let space = SearchSpace::default();
    let seeds: Vec<u64> = if quick { vec![1] } else { vec![1, 2, 3] };
    let rounds = if quick { 1 } else { 5 };
    let x: Vec<f32> = (0..b * size * size)
        .map(|i| ((i * 37) % 17) as f32 / 16.0)
        .collect();
    let labels: Vec<u16> = (0..b).map(|i| (i % 10) as u16).collect();
    let mut nets = Vec::new();
    let ctx = GpuContext::new(&DeviceChoice::Auto).map(std::sync::Arc::new);
    let dump_dir = std::env::temp_dir().join(format!("msenas-train-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dump_dir).unwrap();
    let mut rows = Vec::new();
    for &seed in &seeds {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let g = space.sample(&mut rng);
        let plan = Plan::compile(&g, &spec, c, space.reduce_kernel).unwrap();
        let macs: usize = plan.ops.iter().map(|op| plan.macs(op)).sum();
        let rate = |kernels: Kernels| {
            let mut params = init_params(&plan, 0);
            let mut opt = AdamW::new(&plan, TrainConfig::default().weight_decay);
            let secs = best_secs(rounds, &mut || {
                let grads = gradient(
                    &plan,
                    &params,
                    &x,
                    t,
                    b,
                    LifParams::default(),
                    Surrogate::default(),
                    1e-5,
                    kernels,
                    |logits| Some(softmax_cross_entropy(logits, &labels, 10, 0.1).1),
                )
                .grads
                .expect("a gradient");
                opt.update(&mut params, &grads, 1e-4);
            });
            b as f64 / secs
        };
        let ips = rate(Kernels::Fast);
        // `--no-reference` (for profiling the fast path) skips the reference loops.
        let ips_ref = (!no_reference).then(|| rate(Kernels::Reference));
        let gpu = match &ctx {
            Ok(ctx) => gpu_step_rate(ctx.clone(), &plan, &x, &labels, t, b, rounds.min(3)),
            Err(e) => Err(e.to_string()),
        };
        let path = dump_dir.join(format!("plan{seed}.json"));
        std::fs::write(&path, serde_json::to_string(&plan).unwrap()).unwrap();
        rows.push(json!({
            "genome_seed": seed,
            "key": g.canonical_key(),
            "params": plan.num_params,
            "macs_per_step": macs,
            "cpu_images_per_s": ips,
            "cpu_reference_loops_images_per_s": ips_ref,
            "gpu_images_per_s": match gpu { Ok(v) => json!(v), Err(e) => json!({"error": e}) },
        }));
        nets.push(path);
    }
    // The fast engine's convolution kernels at the shapes of the CPU-default networks (T*B =
    // 256 images at 20% firing), and the reference loops at the first of them.
    let peak = fma_peak_gflops();
    let mut kernels = Vec::new();
    let shapes = [
        (8usize, 16usize, 3usize),
        (8, 16, 5),
        (16, 8, 5),
        (32, 4, 5),
    ];
    for (i, &(ch, hw, k)) in shapes.iter().enumerate() {
        let s = ConvShape {
            n: t * b,
            cin: ch,
            h: hw,
            w: hw,
            cout: ch,
            k,
            stride: 1,
            shift: false,
        };
        let mut conv = SpikeConv::new(s, 0.2, 7);
        let macs = conv.macs() as f64;
        let gmacs = |secs: f64| macs / secs / 1e9;
        let f = gmacs(best_secs(rounds.max(3), &mut || {
            conv.forward();
        }));
        let wg = gmacs(best_secs(rounds.max(3), &mut || {
            conv.weight_gradient();
        }));
        let ig = gmacs(best_secs(rounds.max(3), &mut || {
            conv.input_gradient();
        }));
        let frac = |v: f64| {
            if peak > 0.0 {
                json!(v / peak)
            } else {
                Value::Null
            }
        };
        let mut row = json!({
            "shape": format!("{s:?}"),
            "gmacs_per_s": {"forward": f, "weight_gradient": wg, "input_gradient": ig},
            "fraction_of_peak": {"forward": frac(f), "weight_gradient": frac(wg), "input_gradient": frac(ig)},
        });
        if i == 0 {
            row["reference_loops_gmacs_per_s"] = reference_rates(&s);
        }
        kernels.push(row);
    }
    let gpu = match &ctx {
        Ok(ctx) => json!({
            "adapter": ctx.info.name,
            "backend": format!("{:?}", ctx.info.backend),
            "device_type": format!("{:?}", ctx.info.device_type),
            "is_cpu": ctx.is_cpu(),
            "note": if ctx.is_cpu() {
                "a CPU implementation of the GPU API: the GPU numbers show the path runs, not GPU speed"
            } else {
                "one submission and one read-back per step"
            },
        }),
        Err(e) => json!({"error": e.to_string()}),
    };
    let torch = torch_bench(&nets, t, b, rounds, quick);
    let report = json!({
        "bench": "train",
        "width": c,
        "timesteps": t,
        "batch": b,
        "size": size,
        "threads": rayon::current_num_threads(),
        "gpu": gpu,
        "networks": rows,
        "conv_kernels": kernels,
        "fp32_fma_peak_gmacs_per_s": peak,
        "torch": torch,
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    let _ = std::fs::remove_dir_all(&dump_dir);
}

/// The reference loops' GMAC/s on `s` (0/1 input at 20%, as the fast kernels see it).
fn reference_rates(s: &ConvShape) -> Value {
    use msenas::cpu::{conv::conv2d, grad};
    let xs: Vec<f32> = (0..s.in_len()).map(|i| (i % 5 == 0) as u8 as f32).collect();
    let w: Vec<f32> = (0..s.weight_len()).map(|i| (i % 7) as f32 * 0.01).collect();
    let gy: Vec<f32> = (0..s.out_len()).map(|i| (i % 11) as f32 * 0.01).collect();
    let gmacs = |secs: f64| (s.macs_per_image() * s.n) as f64 / secs / 1e9;
    let mut y = vec![0.0; s.out_len()];
    let mut gx = vec![0.0; s.in_len()];
    let mut gw = vec![0.0; s.weight_len()];
    json!({
        "forward": gmacs(best_secs(2, &mut || conv2d(&xs, &w, s, &mut y))),
        "weight_gradient": gmacs(best_secs(2, &mut || grad::conv2d_backward_weight(&xs, &gy, s, &mut gw))),
        "input_gradient": gmacs(best_secs(2, &mut || grad::conv2d_backward_input(&gy, &w, s, &mut gx))),
    })
}

/// Images per second of `GpuTrainer` steps (forward, loss, backward, running statistics, AdamW,
/// the step's read-back) after one warm-up step.
fn gpu_step_rate(
    ctx: std::sync::Arc<GpuContext>,
    plan: &Plan,
    x: &[f32],
    labels: &[u16],
    t: usize,
    b: usize,
    reps: usize,
) -> Result<f64, String> {
    let settings = TrainSettings {
        loss: msenas::train::Loss::CrossEntropy,
        label_smoothing: 0.1,
        surrogate: Surrogate::default(),
        lif: LifParams::default(),
        eps: 1e-5,
        momentum: 0.1,
        weight_decay: TrainConfig::default().weight_decay,
    };
    let mut g = GpuTrainer::new(ctx, plan, t, b, settings, &init_params(plan, 0))
        .map_err(|e| e.to_string())?;
    g.step(x, labels, 1e-4).map_err(|e| e.to_string())?;
    let start = Instant::now();
    for _ in 0..reps {
        g.step(x, labels, 1e-4).map_err(|e| e.to_string())?;
    }
    Ok((reps * b) as f64 / start.elapsed().as_secs_f64())
}

/// Runs `scripts/train_torch_bench.py` on the dumped plans, eager and (unless `quick`)
/// `torch.compile`; `null` when torch is missing.
fn torch_bench(
    nets: &[std::path::PathBuf],
    t: usize,
    b: usize,
    rounds: usize,
    quick: bool,
) -> Value {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import torch"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        return Value::Null;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/train_torch_bench.py");
    let mut args = vec![
        script.to_string(),
        "--timesteps".into(),
        t.to_string(),
        "--batch".into(),
        b.to_string(),
        "--reps".into(),
        rounds.to_string(),
    ];
    if !quick {
        args.push("--compile".into());
    }
    args.extend(nets.iter().map(|n| n.display().to_string()));
    match std::process::Command::new("python3").args(&args).output() {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            serde_json::from_str(text.trim()).unwrap_or_else(|e| json!({"error": e.to_string()}))
        }
        Ok(o) => json!({"error": String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")}),
        Err(e) => json!({"error": e.to_string()}),
    }
}

/// This machine's FP32 multiply-add peak in GMAC/s over all rayon threads: independent FMA
/// chains on the widest vectors it has (AVX-512, else AVX2), long enough to hide latency. 0
/// where neither AVX2 + FMA nor AVX-512 is present.
fn fma_peak_gflops() -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        let avx512 = is_x86_feature_detected!("avx512f");
        if avx512 || (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            use rayon::prelude::*;
            let threads = rayon::current_num_threads();
            let iters = 20_000_000u64;
            let start = Instant::now();
            let sink: f32 = (0..threads)
                .into_par_iter()
                .map(|i| unsafe {
                    if avx512 {
                        fma_chains_512(iters, i as f32)
                    } else {
                        fma_chains_256(iters, i as f32)
                    }
                })
                .sum();
            let secs = start.elapsed().as_secs_f64();
            std::hint::black_box(sink);
            let lanes = if avx512 { 16 } else { 8 };
            // 12 chains x `lanes` per iteration.
            return (threads as u64 * iters * 12 * lanes) as f64 / secs / 1e9;
        }
    }
    0.0
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains_256(iters: u64, seed: f32) -> f32 {
    use std::arch::x86_64::*;
    let a = _mm256_set1_ps(0.999_999);
    let b = _mm256_set1_ps(1e-7);
    let mut acc = [_mm256_set1_ps(seed); 12];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm256_fmadd_ps(*v, a, b);
        }
    }
    let mut out = [0.0f32; 8];
    let mut sum = _mm256_setzero_ps();
    for v in acc {
        sum = _mm256_add_ps(sum, v);
    }
    _mm256_storeu_ps(out.as_mut_ptr(), sum);
    out.iter().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_chains_512(iters: u64, seed: f32) -> f32 {
    use std::arch::x86_64::*;
    let a = _mm512_set1_ps(0.999_999);
    let b = _mm512_set1_ps(1e-7);
    let mut acc = [_mm512_set1_ps(seed); 12];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_ps(*v, a, b);
        }
    }
    let mut sum = _mm512_setzero_ps();
    for v in acc {
        sum = _mm512_add_ps(sum, v);
    }
    _mm512_reduce_add_ps(sum)
}
