//! Training throughput of the CPU engine: images per second of forward + backward + AdamW step
//! at C 8, T 4, batch 64, 16x16 digits-shaped input, on a few sampled genomes, with the fast
//! convolutions (GEMMs) and, in the same run, the reference loops (the previous path); the
//! convolution primitives in GMAC/s for both, against this machine's measured FP32 FMA peak; the
//! same
//! steps through `GpuTrainer` on the adapter `--device auto` would open for a GPU job (any
//! adapter, CPU drivers such as lavapipe included: then `gpu.is_cpu` is true and the number only
//! shows the path runs); then the same networks in PyTorch (`scripts/train_torch_bench.py`) when
//! `python3 -c "import torch"` works. Prints one JSON object.
//! `cargo bench --bench train [-- --quick]`.

use msenas::config::TrainConfig;
use msenas::cpu::grad::{softmax_cross_entropy, Surrogate};
use msenas::cpu::{init_params, ConvShape, Kernels, LifParams};
use msenas::genome::SearchSpace;
use msenas::gpu::{DeviceChoice, GpuContext, GpuTrainer, TrainSettings};
use msenas::plan::Plan;
use msenas::train::backprop::{backward, forward_tape, Hooks};
use msenas::train::optim::AdamW;
use msenas::DataSpec;
use rand::SeedableRng;
use std::time::Instant;

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
    let reps = if quick { 1 } else { 3 };
    let x: Vec<f32> = (0..b * size * size)
        .map(|i| ((i * 37) % 17) as f32 / 16.0)
        .collect();
    let labels: Vec<u16> = (0..b).map(|i| (i % 10) as u16).collect();
    let mut nets = Vec::new();
    let ctx = GpuContext::new(&DeviceChoice::Auto).map(std::sync::Arc::new);
    let mut gpu_ips: Vec<Result<f64, String>> = Vec::new();
    let dump_dir = std::env::temp_dir().join(format!("msenas-train-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dump_dir).unwrap();
    for &seed in &seeds {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let g = space.sample(&mut rng);
        let plan = Plan::compile(&g, &spec, c, space.reduce_kernel).unwrap();
        let params = init_params(&plan, 0);
        let opt = AdamW::new(&plan, TrainConfig::default().weight_decay);
        let macs: usize = plan.ops.iter().map(|op| plan.macs(op)).sum();
        let step = |params: &mut Vec<f32>, opt: &mut AdamW, kernels: Kernels| {
            let tape = forward_tape(
                &plan,
                params,
                &x,
                t,
                b,
                LifParams::default(),
                1e-5,
                Hooks {
                    kernels,
                    ..Hooks::default()
                },
            );
            let (loss, gl) = softmax_cross_entropy(tape.logits(&plan), &labels, 10, 0.1);
            let grad = backward(
                &plan,
                params,
                tape,
                &gl,
                LifParams::default(),
                Surrogate::default(),
                1e-5,
            );
            opt.update(params, &grad, 1e-4);
            loss
        };
        let rate = |kernels: Kernels| {
            let (mut params, mut opt) = (params.clone(), opt.clone());
            step(&mut params, &mut opt, kernels); // warm-up
            let start = Instant::now();
            for _ in 0..reps {
                step(&mut params, &mut opt, kernels);
            }
            (reps * b) as f64 / start.elapsed().as_secs_f64()
        };
        let ips = rate(Kernels::Fast);
        // `--no-reference` (for profiling the fast path) skips the reference loops.
        let ips_ref = if no_reference {
            f64::NAN
        } else {
            rate(Kernels::Reference)
        };
        gpu_ips.push(match &ctx {
            Ok(ctx) => gpu_step_rate(ctx.clone(), &plan, &x, &labels, t, b, reps),
            Err(e) => Err(e.to_string()),
        });
        let path = dump_dir.join(format!("plan{seed}.json"));
        std::fs::write(&path, serde_json::to_string(&plan).unwrap()).unwrap();
        nets.push((
            seed,
            g.canonical_key(),
            plan.num_params,
            macs,
            ips,
            ips_ref,
            path,
        ));
    }
    // Convolution primitives at a typical shape (T*B = 256 images, 8 -> 8 channels, 16x16, k 3).
    let s = ConvShape {
        n: t * b,
        cin: 8,
        h: 16,
        w: 16,
        cout: 8,
        k: 3,
        stride: 1,
        shift: false,
    };
    let xs: Vec<f32> = (0..s.in_len())
        .map(|i| ((i * 7) % 5 == 0) as u8 as f32)
        .collect();
    let w: Vec<f32> = (0..s.weight_len()).map(|i| (i % 7) as f32 * 0.01).collect();
    let gy: Vec<f32> = (0..s.out_len()).map(|i| (i % 11) as f32 * 0.01).collect();
    let time = |f: &mut dyn FnMut()| {
        f();
        let st = Instant::now();
        for _ in 0..5 {
            f();
        }
        st.elapsed().as_secs_f64() / 5.0
    };
    let gmacs = |secs: f64| s.macs_per_image() as f64 * s.n as f64 / secs / 1e9;
    let conv_rates = |k: Kernels| {
        let mut y = vec![0.0; s.out_len()];
        let fwd = time(&mut || k.conv2d(&xs, &w, &s, &mut y));
        let mut gx = vec![0.0; s.in_len()];
        let bin = time(&mut || k.conv2d_backward_input(&gy, &w, &s, &mut gx));
        let mut gw = vec![0.0; s.weight_len()];
        let bw = time(&mut || k.conv2d_backward_weight(&xs, &gy, &s, &mut gw));
        format!(
            "{{\"forward\": {:.3}, \"backward_input\": {:.3}, \"backward_weight\": {:.3}}}",
            gmacs(fwd),
            gmacs(bin),
            gmacs(bw)
        )
    };
    let conv_fast = conv_rates(Kernels::Fast);
    let conv_ref = conv_rates(Kernels::Reference);
    let peak = fma_peak_gflops();

    let torch = torch_bench(&nets, c, t, b, size, quick);
    let rows: Vec<String> = nets
        .iter()
        .zip(&gpu_ips)
        .map(|((seed, key, params, macs, ips, ips_ref, _), gpu)| {
            let gpu = match gpu {
                Ok(v) => format!("{v:.2}"),
                Err(e) => format!("{{\"error\": {e:?}}}"),
            };
            format!(
                "{{\"genome_seed\": {seed}, \"key\": {key:?}, \"params\": {params}, \"macs_per_step\": {macs}, \"cpu_images_per_s\": {ips:.2}, \"cpu_reference_loops_images_per_s\": {}, \"gpu_images_per_s\": {gpu}}}",
                if ips_ref.is_finite() {
                    format!("{ips_ref:.2}")
                } else {
                    "null".into()
                }
            )
        })
        .collect();
    let gpu = match &ctx {
        Ok(ctx) => format!(
            "{{\"adapter\": {:?}, \"backend\": \"{:?}\", \"device_type\": \"{:?}\", \"is_cpu\": {}, \"note\": {:?}}}",
            ctx.info.name,
            ctx.info.backend,
            ctx.info.device_type,
            ctx.is_cpu(),
            if ctx.is_cpu() {
                "a CPU implementation of the GPU API: the GPU numbers show the path runs, not GPU speed"
            } else {
                "one submission and one read-back per step"
            }
        ),
        Err(e) => format!("{{\"error\": {:?}}}", e.to_string()),
    };
    println!(
        "{{\"bench\": \"train\", \"width\": {c}, \"timesteps\": {t}, \"batch\": {b}, \"size\": {size}, \"threads\": {}, \"gpu\": {gpu}, \"networks\": [{}], \"conv_shape\": \"{s:?}\", \"conv_gmacs_per_s\": {conv_fast}, \"conv_gmacs_per_s_reference_loops\": {conv_ref}, \"fp32_fma_peak_gmacs_per_s\": {peak:.2}, \"torch\": {torch}}}",
        rayon::current_num_threads(),
        rows.join(", "),
    );
    let _ = std::fs::remove_dir_all(&dump_dir);
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

/// Runs `scripts/train_torch_bench.py` on the dumped plans; `null` when torch is missing.
fn torch_bench(
    nets: &[(u64, String, usize, usize, f64, f64, std::path::PathBuf)],
    c: usize,
    t: usize,
    b: usize,
    size: usize,
    quick: bool,
) -> String {
    let _ = (c, size);
    let ok = std::process::Command::new("python3")
        .args(["-c", "import torch"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        return "null".into();
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/train_torch_bench.py");
    let mut args = vec![
        script.to_string(),
        "--timesteps".into(),
        t.to_string(),
        "--batch".into(),
        b.to_string(),
        "--reps".into(),
        if quick { "1".into() } else { "3".into() },
    ];
    for n in nets {
        args.push(n.6.display().to_string());
    }
    match std::process::Command::new("python3").args(&args).output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => format!(
            "{{\"error\": {:?}}}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(e) => format!("{{\"error\": {:?}}}", e.to_string()),
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
