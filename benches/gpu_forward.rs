//! Scoring throughput of the GPU executor against the CPU reference, measured in the same run.
//! Prints one JSON object.
//!
//! Two scales: the CPU default (C 8, T 4, batch 128, 16x16x1, 16 candidates) and paper scale
//! (C 48, T 10, batch 128, 32x32x3, fewer candidates). Each candidate does what a search needs:
//! forward pass, per-population `PopulationStats` (GPU: on the device, only integers come
//! back; CPU: `fitness::population_stats` of the recorded spikes).
//!
//! Timing: wall clock around `run_many` (upload, record, one submission per budget group, fence
//! by the blocking read-back), after a warm-up generation that compiles pipelines and fills the
//! arena; plus GPU time from timestamp queries where the adapter has them. Conv GFLOP/s =
//! 2 x conv MACs / time. `MSENAS_PEAK_GFLOPS` (the card's FP32 peak, which wgpu cannot read)
//! adds the fraction of peak.
//!
//! `conv_kernels`: the convolution kernels alone at each scale: a cell's 3x3 convolution
//! forward (spikes in), its input and weight gradients, and the stem's dense forward; each `MSENAS_BENCH_CONV_REPS` dispatches (default 20; 3 on a CPU
//! adapter) in one timed submission, the tiled implicit GEMM the engine runs against the direct
//! kernel it replaced (the baseline), GFLOP/s from timestamps (wall clock without them).
//!
//! Knobs: `MSENAS_BENCH_SCALES` (`default,paper`), `MSENAS_BENCH_CANDIDATES` (default scale),
//! `MSENAS_BENCH_PAPER_CANDIDATES`, `MSENAS_BENCH_PAPER_CPU_CANDIDATES` (the CPU reference needs
//! minutes per paper-scale candidate; default 1), `MSENAS_BENCH_PAPER_BATCH`,
//! `MSENAS_BENCH_SKIP_CPU`. On a CPU adapter (lavapipe) everything is scaled down (2 candidates;
//! paper scale at batch 2, one candidate: batch 128 does not fit its 128 MiB per-binding limit
//! and would take hours); numbers there are correctness only.

use std::sync::Arc;
use std::time::Instant;

use msenas::cpu::{self, ForwardOptions};
use msenas::fitness::{population_stats, PopulationSpikes};
use msenas::genome::SearchSpace;
use msenas::gpu::kernels::{conv, grad};
use msenas::gpu::{
    memory_bytes, DeviceChoice, GpuContext, GpuExecutor, Job, Outputs, Recorder, View,
};
use msenas::plan::{Op, Plan};
use msenas::DataSpec;
use rand::SeedableRng;
use serde_json::{json, Value};

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

struct Scale {
    name: &'static str,
    width: usize,
    t: usize,
    batch: usize,
    nominal_batch: usize,
    in_ch: usize,
    size: usize,
    candidates: usize,
    /// The CPU reference runs the first this many (it is much slower at paper scale).
    cpu_candidates: usize,
}

fn plans(s: &Scale) -> Vec<Plan> {
    let space = SearchSpace {
        width: s.width,
        timesteps: s.t,
        ..SearchSpace::default()
    };
    let spec = DataSpec {
        in_ch: s.in_ch,
        height: s.size,
        width: s.size,
        classes: 10,
        timesteps: s.t,
        event: false,
    };
    (0..s.candidates as u64)
        .map(|seed| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let g = space.sample(&mut rng);
            Plan::compile(&g, &spec, s.width, space.reduce_kernel).expect("plan")
        })
        .collect()
}

fn conv_macs(plan: &Plan, t: usize, b: usize) -> f64 {
    plan.ops
        .iter()
        .filter(|o| matches!(o, Op::Conv { .. }))
        .map(|o| plan.macs(o) as f64)
        .sum::<f64>()
        * (t * b) as f64
}

fn input(plan: &Plan, b: usize) -> Vec<f32> {
    let len = b * plan.tensors[plan.input].sample_len();
    (0..len as u32)
        .map(|i| cpu::rng::unit(i, 0x1234_5678))
        .collect()
}

fn cpu_score(plan: &Plan, x: &[f32], t: usize, b: usize) -> Vec<f32> {
    let params = cpu::init_params(plan, 1);
    let mut o = ForwardOptions::new(t, b);
    o.record_spikes = true;
    let out = cpu::forward(plan, &params, x, &o);
    for (p, data) in plan.populations.iter().zip(out.spikes) {
        let st = population_stats(&PopulationSpikes {
            name: p.name.clone(),
            neurons: p.neurons,
            t,
            b,
            data,
        });
        std::hint::black_box(st);
    }
    out.logits
}

fn rate(n: usize, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

fn bench_scale(
    ctx: &GpuContext,
    ex: &mut GpuExecutor,
    s: &Scale,
    peak: Option<f64>,
    skip_cpu: bool,
    warm_up: bool,
) -> Value {
    let (t, b) = (s.t, s.batch);
    let ps = plans(s);
    let x = input(&ps[0], b);
    let macs: f64 = ps.iter().map(|p| conv_macs(p, t, b)).sum();
    let mem_max = ps.iter().map(|p| memory_bytes(p, t, b)).max().unwrap_or(0);
    let jobs: Vec<Job<'_>> = ps
        .iter()
        .map(|p| Job {
            plan: p,
            weight_seed: 1,
            input: &x,
        })
        .collect();
    let want = Outputs::scores();
    // Warm-up (first scale only): pipelines, arena buffers, bind groups. Later scales reuse the
    // pipelines; their first candidate is checked against the CPU from the timed run.
    let warm = Instant::now();
    let first = if warm_up {
        ex.run_many(&jobs[..1], t, b, want)
    } else {
        vec![Ok(Default::default())]
    };
    let warm_s = warm.elapsed().as_secs_f64();
    let mut gpu = json!({ "warmup_s": warm_s });
    match first.into_iter().next().expect("one") {
        Err(e) => {
            gpu["error"] = json!(e.to_string());
        }
        Ok(mut first) => {
            let subs0 = ex.submissions();
            let (g0, n0) = ex.gpu_time();
            let start = Instant::now();
            let outs = ex.run_many(&jobs, t, b, want);
            let wall = start.elapsed().as_secs_f64();
            let (g1, n1) = ex.gpu_time();
            let failed: Vec<String> = outs
                .iter()
                .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
                .collect();
            if let Some(Ok(o)) = outs.first() {
                first = o.clone();
            }
            let gpu_s = g1 - g0;
            let timed = n1 > n0;
            let conv_time = if timed { gpu_s } else { wall };
            let gflops = 2.0 * macs / conv_time / 1e9;
            gpu = json!({
                "warmup_s": warm_s,
                "wall_s": wall,
                "candidates_per_s": rate(s.candidates, wall),
                "gpu_s": if timed { json!(gpu_s) } else { Value::Null },
                "submissions": ex.submissions() - subs0,
                "conv_gflops": gflops,
                "conv_gflops_basis": if timed { "gpu timestamps" } else { "wall clock" },
                "fraction_of_peak": peak.map(|p| gflops / p),
                "failed": failed,
                "peak_arena_bytes": ex.arena_stats().peak_leased_bytes,
            });
            // The same generation once more with every dispatch timed (slower: each dispatch
            // in its own pass, a read-back per submission): where the time goes, per kernel.
            if ctx.start_profile().is_ok() {
                let outs = ex.run_many(&jobs, t, b, want);
                let kernels = ctx.take_profile();
                if outs.iter().all(|r| r.is_ok()) {
                    gpu["kernels"] = json!(kernels);
                }
            }
            if !skip_cpu {
                let nc = s.cpu_candidates.clamp(1, ps.len());
                let cpu_macs: f64 = ps[..nc].iter().map(|p| conv_macs(p, t, b)).sum();
                let start = Instant::now();
                let mut logits = Vec::new();
                for p in &ps[..nc] {
                    logits.push(cpu_score(p, &x, t, b));
                }
                let wall = start.elapsed().as_secs_f64();
                let diff = first
                    .logits
                    .iter()
                    .zip(&logits[0])
                    .map(|(a, c)| (a - c).abs())
                    .fold(0.0f32, f32::max);
                let cpu = json!({
                    "threads": rayon::current_num_threads(),
                    "wall_s": wall,
                    "candidates": nc,
                    "candidates_per_s": rate(nc, wall),
                    "conv_gflops": 2.0 * cpu_macs / wall / 1e9,
                    "max_logit_diff_vs_gpu_first_candidate": diff,
                });
                let speedup = gpu["candidates_per_s"].as_f64().unwrap_or(0.0)
                    / cpu["candidates_per_s"].as_f64().unwrap_or(f64::NAN);
                return json!({
                    "scale": scale_json(s),
                    "conv_gmac": macs / 1e9,
                    "max_candidate_bytes": mem_max,
                    "gpu": gpu,
                    "cpu": cpu,
                    "gpu_speedup_candidates_per_s": speedup,
                });
            }
        }
    }
    json!({
        "scale": scale_json(s),
        "conv_gmac": macs / 1e9,
        "max_candidate_bytes": mem_max,
        "gpu": gpu,
        "cpu": Value::Null,
    })
}

/// Records one dispatch (or two) of a kernel under test.
type Launch<'a> = Box<dyn Fn(&mut Recorder<'_>) -> msenas::Result<()> + 'a>;

/// Seconds of `reps` launches in one submission: GPU timestamps where the adapter has them,
/// else wall clock around submit and read-back. One untimed warm-up first.
fn time_launch(ctx: &GpuContext, launch: &Launch<'_>, reps: usize) -> msenas::Result<f64> {
    let stamps_buf = ctx.storage("stamps", 4)?;
    let stamps = View::whole(&stamps_buf);
    for n in [1, reps] {
        let mut rec = Recorder::new(ctx);
        for _ in 0..n {
            launch(&mut rec)?;
        }
        let t0 = Instant::now();
        rec.submit_timed(Some(stamps))?;
        let st = ctx.read::<u32>(stamps)?;
        let wall = t0.elapsed().as_secs_f64();
        if n == reps {
            if Recorder::can_time(ctx) {
                let begin = st[0] as u64 | (st[1] as u64) << 32;
                let end = st[2] as u64 | (st[3] as u64) << 32;
                return Ok(end.saturating_sub(begin) as f64
                    * ctx.queue.get_timestamp_period() as f64
                    * 1e-9);
            }
            return Ok(wall);
        }
    }
    unreachable!("the loop returns on its last round")
}

/// Which convolution kernel a row measures.
#[derive(Clone, Copy)]
enum ConvKind {
    /// Forward, reading bit-packed spikes (20 % firing).
    Spiking,
    /// Forward, reading dense f32.
    Dense,
    /// Input gradient.
    Input,
    /// Weight gradient.
    Weight,
}

/// The tiled kernel the engine runs against the direct one it replaced, on one layer shape.
fn conv_layer(
    ctx: &GpuContext,
    name: &str,
    s: &cpu::conv::ConvShape,
    kind: ConvKind,
    reps: usize,
    peak: Option<f64>,
) -> Value {
    let run = || -> msenas::Result<Value> {
        let unit = |n: usize, seed: u32| -> Vec<f32> {
            (0..n as u32)
                .map(|i| cpu::rng::unit(i, seed) * 2.0 - 1.0)
                .collect()
        };
        let spikes: Vec<f32> = (0..s.in_len() as u32)
            .map(|i| (cpu::rng::unit(i, 11) < 0.2) as u8 as f32)
            .collect();
        let x = match kind {
            ConvKind::Spiking => ctx.upload(
                "packed",
                &cpu::lif::pack_spikes(&spikes, 1, s.n, s.cin * s.h * s.w),
            )?,
            ConvKind::Weight => ctx.upload("x", &spikes)?,
            ConvKind::Dense => ctx.upload("x", &unit(s.in_len(), 13))?,
            ConvKind::Input => ctx.upload("gy", &unit(s.out_len(), 13))?,
        };
        let w = match kind {
            ConvKind::Weight => ctx.upload("gy", &unit(s.out_len(), 12))?,
            _ => ctx.upload("w", &unit(s.weight_len(), 12))?,
        };
        let out_len = match kind {
            ConvKind::Spiking | ConvKind::Dense => s.out_len(),
            ConvKind::Input => s.in_len(),
            ConvKind::Weight => s.weight_len(),
        };
        let out = ctx.storage("out", out_len)?;
        // As the trainer gives it: a buffer of the layer's largest activation.
        let scratch = ctx.storage("scratch", s.in_len().max(s.out_len()))?;
        let (xv, wv, ov) = (View::whole(&x), View::whole(&w), View::whole(&out));
        let launchers: [(&str, Launch<'_>); 2] = match kind {
            ConvKind::Spiking => [
                (
                    "tiled",
                    Box::new(move |r| conv::conv2d_spiking(r, xv, wv, s, ov)),
                ),
                (
                    "direct",
                    Box::new(move |r| conv::conv2d_spiking_direct(r, xv, wv, s, ov)),
                ),
            ],
            ConvKind::Dense => [
                ("tiled", Box::new(move |r| conv::conv2d(r, xv, wv, s, ov))),
                (
                    "direct",
                    Box::new(move |r| conv::conv2d_direct(r, xv, wv, s, ov)),
                ),
            ],
            ConvKind::Input => [
                (
                    "tiled",
                    Box::new(move |r| grad::conv2d_backward_input(r, xv, wv, s, ov)),
                ),
                (
                    "direct",
                    Box::new(move |r| grad::conv2d_backward_input_direct(r, xv, wv, s, ov)),
                ),
            ],
            ConvKind::Weight => {
                let sv = View::whole(&scratch);
                [
                    (
                        "tiled",
                        Box::new(move |r| grad::conv2d_backward_weight(r, xv, wv, s, ov, sv)),
                    ),
                    (
                        "direct",
                        Box::new(move |r| grad::conv2d_backward_weight_direct(r, xv, wv, s, ov)),
                    ),
                ]
            }
        };
        let flops = 2.0 * (s.out_len() * s.cin * s.k * s.k) as f64 * reps as f64;
        let mut row = json!({
            "layer": name,
            "shape": { "images": s.n, "cin": s.cin, "cout": s.cout, "h": s.h, "w": s.w, "k": s.k, "stride": s.stride },
            "reps": reps,
        });
        let mut secs = Vec::new();
        for (kernel, launch) in &launchers {
            let t = time_launch(ctx, launch, reps)?;
            let gflops = flops / t * 1e-9;
            row[*kernel] = json!({
                "seconds": t,
                "gflops": gflops,
                "fraction_of_peak": peak.map(|p| gflops / p),
            });
            secs.push(t);
        }
        row["tiled_speedup"] = json!(secs[1] / secs[0]);
        Ok(row)
    };
    run().unwrap_or_else(|e| json!({ "layer": name, "error": e.to_string() }))
}

/// The convolution kernels of each scale: a cell's 3x3 spiking convolution (width in and out)
/// and the stem's dense one (input channels to width).
fn conv_kernels(ctx: &GpuContext, scales: &[Scale], reps: usize, peak: Option<f64>) -> Vec<Value> {
    let mut rows = Vec::new();
    for s in scales {
        let n = s.t * s.batch;
        let cell = cpu::conv::ConvShape {
            n,
            cin: s.width,
            h: s.size,
            w: s.size,
            cout: s.width,
            k: 3,
            stride: 1,
            shift: false,
        };
        let stem = cpu::conv::ConvShape {
            cin: s.in_ch,
            ..cell
        };
        for (layer, shape, kind) in [
            ("cell 3x3 forward (spikes in)", cell, ConvKind::Spiking),
            ("stem 3x3 forward (dense in)", stem, ConvKind::Dense),
            ("cell 3x3 input gradient", cell, ConvKind::Input),
            ("cell 3x3 weight gradient", cell, ConvKind::Weight),
        ] {
            let name = format!("{} {layer}", s.name);
            let row = conv_layer(ctx, &name, &shape, kind, reps, peak);
            eprintln!("{row}");
            rows.push(row);
        }
    }
    rows
}

fn scale_json(s: &Scale) -> Value {
    json!({
        "name": s.name,
        "width": s.width,
        "timesteps": s.t,
        "batch": s.batch,
        "nominal_batch": s.nominal_batch,
        "input": [s.in_ch, s.size, s.size],
        "layout": SearchSpace::default().layout,
        "candidates": s.candidates,
    })
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the command line.
    let peak = std::env::var("MSENAS_PEAK_GFLOPS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok());
    let ctx = match GpuContext::new(&DeviceChoice::Auto) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            println!("{}", json!({ "error": e.to_string() }));
            return;
        }
    };
    let cpu_adapter = ctx.is_cpu();
    let timestamps = Recorder::can_time(&ctx);
    let scales_env = std::env::var("MSENAS_BENCH_SCALES").unwrap_or("default,paper".into());
    let skip_cpu = std::env::var_os("MSENAS_BENCH_SKIP_CPU").is_some();
    let mut scales = Vec::new();
    // On a CPU adapter everything is scaled down to keep the run to a few minutes.
    let small = cpu_adapter;
    if scales_env.split(',').any(|s| s == "default") {
        let candidates = env_usize("MSENAS_BENCH_CANDIDATES").unwrap_or(if small { 2 } else { 16 });
        scales.push(Scale {
            name: "cpu_default",
            width: 8,
            t: 4,
            batch: 128,
            nominal_batch: 128,
            in_ch: 1,
            size: 16,
            candidates,
            cpu_candidates: candidates,
        });
    }
    if scales_env.split(',').any(|s| s == "paper") {
        let batch = env_usize("MSENAS_BENCH_PAPER_BATCH").unwrap_or(if small { 2 } else { 128 });
        let candidates =
            env_usize("MSENAS_BENCH_PAPER_CANDIDATES").unwrap_or(if small { 1 } else { 4 });
        scales.push(Scale {
            name: "paper",
            width: 48,
            t: 10,
            batch,
            nominal_batch: 128,
            in_ch: 3,
            size: 32,
            candidates,
            cpu_candidates: env_usize("MSENAS_BENCH_PAPER_CPU_CANDIDATES").unwrap_or(1),
        });
    }
    let mut ex = GpuExecutor::new(ctx.clone());
    ex.time_gpu = true;
    let results: Vec<Value> = scales
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let r = bench_scale(&ctx, &mut ex, s, peak, skip_cpu, i == 0);
            eprintln!("{}: done", s.name);
            r
        })
        .collect();
    let reps = env_usize("MSENAS_BENCH_CONV_REPS").unwrap_or(if small { 3 } else { 20 });
    let convs = conv_kernels(&ctx, &scales, reps, peak);
    let info = &ctx.info;
    let out = json!({
        "bench": "gpu_forward",
        "adapter": {
            "name": info.name,
            "backend": format!("{:?}", info.backend),
            "device_type": format!("{:?}", info.device_type),
            "driver": format!("{} {}", info.driver, info.driver_info).trim(),
        },
        "timing_method": if timestamps {
            "wall clock around each generation (fenced by the blocking read-back) and GPU timestamp queries around each submission; `kernels`: a second, profiled run of the generation with timestamps around every dispatch"
        } else {
            "wall clock around each generation, fenced by the blocking read-back (no timestamp queries on this adapter)"
        },
        "work": "forward pass + per-population PopulationStats (what the search scores from)",
        "peak_gflops": peak,
        "note": if cpu_adapter {
            "CPU adapter (lavapipe or similar): correctness only, not performance evidence; paper scale runs at a reduced batch"
        } else if peak.is_none() {
            "set MSENAS_PEAK_GFLOPS to the card's FP32 peak for the fraction of peak"
        } else {
            "fraction_of_peak = conv GFLOP/s / MSENAS_PEAK_GFLOPS"
        },
        "results": results,
        "conv_kernels": convs,
    });
    println!("{}", serde_json::to_string_pretty(&out).expect("json"));
}
