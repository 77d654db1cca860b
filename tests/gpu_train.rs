//! Training on the device ([`msenas::gpu::GpuTrainer`]) against the CPU reference: one step
//! (loss, logits, parameter gradient, running statistics, AdamW update) on small sampled
//! genomes; a few steps on digits; the epoch loop (learning, exact resume from its own
//! checkpoints, a CPU checkpoint continued on the device); `msenas train --device`.
//!
//! Tolerances (f32 sums in other orders, FMA contraction, WGSL's 2.5-ulp division and sqrt; the
//! CPU sums batch-norm statistics and the loss in f64): loss 1e-5 relative, logits 1e-4 absolute,
//! parameter gradient 1e-3 of the largest magnitude in each parameter tensor, AdamW 1e-6
//! absolute plus 1e-5 relative, running statistics 1e-4 relative. On lavapipe the measured
//! worst cases are 1e-7 (loss), 0 (logits), 4e-6 (gradient), 0 (AdamW), 1e-6 (statistics). A spike that flips (a membrane within rounding of the threshold)
//! changes everything after it, so a network whose spikes differ from the tape's is reported and
//! skipped; enough networks must match.
//!
//! No adapter: with `CI` set the tests fail; otherwise they print a skip message and pass.

mod cli_common;
mod common;

use std::sync::{Arc, Mutex};

use msenas::config::TrainConfig;
use msenas::cpu::grad::{mse_rate_loss, softmax_cross_entropy, Surrogate};
use msenas::cpu::{bn_update_running, init_params, BnRunning, LifParams};
use msenas::data::{Dataset, Split};
use msenas::engine::TrainState;
use msenas::genome::{CellGene, Genome, MicroVariant, SearchSpace};
use msenas::gpu::{GpuContext, GpuTrainer, TrainSettings};
use msenas::plan::{Op, Plan};
use msenas::train::backprop::{backward, forward_tape, Hooks};

/// The CPU twin of the GPU trainer: the reference tape (the WGSL kernels' sum order).
const REFERENCE: Hooks<'static> = Hooks {
    spikes: None,
    gates: None,
};
use msenas::engine::Device;
use msenas::train::checkpoint::Checkpoint;
use msenas::train::optim::AdamW;
use msenas::train::{Loss, Network, Silent, TrainJob, BN_EPS, BN_MOMENTUM};
use msenas::DataSpec;
use rand::SeedableRng;

/// One device test at a time (lavapipe is slow and shares the machine's cores).
fn with_device(name: &str, body: impl FnOnce(Arc<GpuContext>)) {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    match common::primary() {
        Some(ctx) => body(ctx),
        None => eprintln!("skip {name}: no adapter with compute shaders"),
    }
}

fn settings(loss: Loss, surrogate: Surrogate, smoothing: f32, wd: f32) -> TrainSettings {
    TrainSettings {
        loss,
        label_smoothing: smoothing,
        surrogate,
        lif: LifParams::default(),
        eps: BN_EPS,
        momentum: BN_MOMENTUM,
        weight_decay: wd,
    }
}

fn input(len: usize, salt: u32) -> Vec<f32> {
    (0..len)
        .map(|i| (msenas::cpu::bits(i as u32, salt) >> 8) as f32 / 16_777_216.0)
        .collect()
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

/// Largest `|gpu - cpu|` of each parameter tensor divided by its largest `|cpu|`.
fn worst_relative(plan: &Plan, gpu: &[f32], cpu: &[f32]) -> (f32, String) {
    let mut worst = (0.0f32, String::new());
    for p in &plan.params {
        let r = p.offset..p.offset + p.len;
        let scale = max_abs(&cpu[r.clone()]).max(1e-6);
        let d = gpu[r.clone()]
            .iter()
            .zip(&cpu[r])
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        if d / scale > worst.0 {
            worst = (d / scale, p.name.clone());
        }
    }
    worst
}

/// Spikes of every population: the number of values that differ between the device and the
/// tape.
fn spike_flips(g: &GpuTrainer, plan: &Plan, tape_tensors: &[Option<Vec<f32>>], b: usize) -> usize {
    plan.ops
        .iter()
        .filter_map(|op| match op {
            Op::Lif { s, .. } => Some(*s),
            _ => None,
        })
        .map(|s| {
            let gpu = g.read_tensor(s, b).unwrap();
            let cpu = tape_tensors[s].as_deref().unwrap();
            gpu.iter().zip(cpu).filter(|(a, b)| a != b).count()
        })
        .sum()
}

struct StepReport {
    flips: usize,
    loss_rel: f64,
    logits_abs: f32,
    grad_rel: (f32, String),
    adam_abs: f32,
    bn_rel: f32,
}

/// One step of `plan` on `b` samples both ways from the same state; `None` when spikes flipped.
#[allow(clippy::too_many_arguments)]
fn compare_step(
    g: &mut GpuTrainer,
    plan: &Plan,
    st: &TrainState,
    x: &[f32],
    labels: &[u16],
    s: TrainSettings,
    lr: f32,
) -> StepReport {
    let (t, b, k) = (plan.spec.timesteps, labels.len(), plan.spec.classes);
    g.write_state(st).unwrap();
    let out = g.step(x, labels, lr).unwrap();
    let grad_gpu = g.read_gradient().unwrap();
    let after = g.read_state().unwrap();

    let tape = forward_tape(plan, &st.params, x, t, b, s.lif, s.eps, REFERENCE);
    let flips = spike_flips(g, plan, &tape.tensors, b);
    let logits = tape.logits(plan).to_vec();
    let (loss, gl) = match s.loss {
        Loss::CrossEntropy => softmax_cross_entropy(&logits, labels, k, s.label_smoothing),
        Loss::Mse => mse_rate_loss(&logits, labels, k),
    };
    let mut bn = st.bn.clone();
    for (i, (m, v)) in tape.bn_stats.iter().enumerate() {
        let hw = plan
            .ops
            .iter()
            .find_map(|op| match op {
                Op::BatchNorm { y, bn, .. } if *bn == i => Some(plan.tensors[*y].hw()),
                _ => None,
            })
            .unwrap();
        bn_update_running(
            &mut bn.mean[i],
            &mut bn.var[i],
            m,
            v,
            t * b * hw,
            s.momentum,
        );
    }
    let grad_cpu = backward(plan, &st.params, tape, &gl, s.lif, s.surrogate, s.eps);
    // AdamW on the device's own gradient, by the CPU reference.
    let mut opt = AdamW::new(plan, s.weight_decay);
    opt.m = st.adam_m.clone();
    opt.v = st.adam_v.clone();
    opt.step = st.step;
    let mut p = st.params.clone();
    opt.update(&mut p, &grad_gpu, lr);
    let adam_abs = p
        .iter()
        .zip(&after.params)
        .chain(opt.m.iter().zip(&after.adam_m))
        .chain(opt.v.iter().zip(&after.adam_v))
        .fold(0.0f32, |w, (a, b)| {
            w.max((a - b).abs() - 1e-5 * a.abs().max(b.abs()))
        });
    assert_eq!(after.step, st.step + 1);
    let bn_rel = bn
        .mean
        .concat()
        .iter()
        .chain(&bn.var.concat())
        .zip(after.bn.mean.concat().iter().chain(&after.bn.var.concat()))
        .fold(0.0f32, |w, (a, b)| w.max((a - b).abs() / a.abs().max(1e-3)));
    StepReport {
        flips,
        loss_rel: ((out.loss - f64::from(loss)) / f64::from(loss)).abs(),
        logits_abs: out
            .logits
            .iter()
            .zip(&logits)
            .fold(0.0f32, |w, (a, b)| w.max((a - b).abs())),
        grad_rel: worst_relative(plan, &grad_gpu, &grad_cpu),
        adam_abs,
        bn_rel,
    }
}

fn check(r: &StepReport, what: &str) {
    eprintln!(
        "{what}: loss rel {:.2e}, logits abs {:.2e}, gradient rel {:.2e} ({}), adamw abs {:.2e}, \
         bn running rel {:.2e}",
        r.loss_rel, r.logits_abs, r.grad_rel.0, r.grad_rel.1, r.adam_abs, r.bn_rel
    );
    assert!(
        r.loss_rel < 1e-4,
        "{what}: loss differs by {:e}",
        r.loss_rel
    );
    assert!(
        r.logits_abs < 1e-4,
        "{what}: logits differ by {:e}",
        r.logits_abs
    );
    assert!(
        r.grad_rel.0 < 1e-3,
        "{what}: gradient of {} differs by {:e} of its scale",
        r.grad_rel.1,
        r.grad_rel.0
    );
    assert!(
        r.adam_abs < 1e-6,
        "{what}: AdamW differs by {:e}",
        r.adam_abs
    );
    assert!(
        r.bn_rel < 1e-4,
        "{what}: running statistics differ by {:e}",
        r.bn_rel
    );
}

#[test]
fn one_step_matches_the_cpu_reference() {
    with_device("one_step_matches_the_cpu_reference", |ctx| {
        let spec = common::gray_spec(8, 10, 2);
        let space = SearchSpace::default();
        let (b, width) = (4, 4);
        let labels: Vec<u16> = vec![3, 7, 0, 9];
        let mut compared = 0;
        for seed in 1..=12u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let genome = space.sample(&mut rng);
            let Ok(plan) = Plan::compile(&genome, &spec, width, space.reduce_kernel) else {
                continue;
            };
            let x = input(b * 64, seed as u32);
            let s = settings(Loss::CrossEntropy, Surrogate::default(), 0.1, 0.05);
            let params = init_params(&plan, seed);
            let mut g = GpuTrainer::new(ctx.clone(), &plan, 2, b, s, &params).unwrap();
            let fresh = TrainState {
                adam_m: vec![0.0; plan.num_params],
                adam_v: vec![0.0; plan.num_params],
                step: 0,
                bn: BnRunning::new(&plan),
                params,
            };
            let r = compare_step(&mut g, &plan, &fresh, &x, &labels, s, 0.01);
            if r.flips > 0 {
                eprintln!("genome seed {seed}: {} spikes flipped, skipped", r.flips);
                continue;
            }
            check(&r, &format!("genome seed {seed}, step 1"));
            // A later step from a used state, on a shorter batch (the last chunk of an epoch).
            let mut later = g.read_state().unwrap();
            later.adam_m.iter_mut().for_each(|v| *v *= 0.5);
            let r = compare_step(&mut g, &plan, &later, &x[..3 * 64], &labels[..3], s, 0.003);
            if r.flips == 0 {
                check(&r, &format!("genome seed {seed}, step 2, batch 3"));
            }
            compared += 1;
        }
        assert!(
            compared >= 3,
            "only {compared} networks ran without spike flips"
        );
    });
}

#[test]
fn mse_loss_sigmoid_surrogate_and_time_varying_input() {
    with_device("mse_loss_sigmoid_surrogate_and_time_varying_input", |ctx| {
        let spec = DataSpec {
            in_ch: 2,
            height: 8,
            width: 8,
            classes: 4,
            timesteps: 3,
            event: true,
        };
        let space = SearchSpace::default();
        let (t, b) = (3, 4);
        let labels: Vec<u16> = vec![1, 3, 0, 2];
        let mut compared = 0;
        for seed in 20..=30u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let genome = space.sample(&mut rng);
            let Ok(plan) = Plan::compile(&genome, &spec, 2, space.reduce_kernel) else {
                continue;
            };
            // Event-like input: one frame per step.
            let x: Vec<f32> = input(t * b * 128, seed as u32)
                .into_iter()
                .map(|v| (v > 0.7) as u8 as f32)
                .collect();
            let s = settings(Loss::Mse, Surrogate::Sigmoid { alpha: 4.0 }, 0.0, 0.0);
            let params = init_params(&plan, seed);
            let mut g = GpuTrainer::new(ctx.clone(), &plan, t, b, s, &params).unwrap();
            let fresh = TrainState {
                adam_m: vec![0.0; plan.num_params],
                adam_v: vec![0.0; plan.num_params],
                step: 0,
                bn: BnRunning::new(&plan),
                params,
            };
            let r = compare_step(&mut g, &plan, &fresh, &x, &labels, s, 0.01);
            if r.flips > 0 {
                eprintln!("genome seed {seed}: {} spikes flipped, skipped", r.flips);
                continue;
            }
            check(&r, &format!("mse, genome seed {seed}"));
            compared += 1;
            if compared == 2 {
                break;
            }
        }
        assert!(
            compared >= 2,
            "only {compared} networks ran without spike flips"
        );
    });
}

fn digits(size: usize, t: usize) -> Dataset {
    msenas::data::load(
        "digits",
        &msenas::data::DataOptions {
            timesteps: t,
            size: Some(size),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn a_few_steps_on_digits_reach_the_cpu_loss() {
    with_device("a_few_steps_on_digits_reach_the_cpu_loss", |ctx| {
        let (t, b, steps) = (2, 16, 12);
        let ds = digits(8, t);
        let mut spec = ds.spec;
        spec.timesteps = t;
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let genome = SearchSpace::default().sample(&mut rng);
        let plan = Plan::compile(&genome, &spec, 4, 1).unwrap();
        let s = settings(Loss::CrossEntropy, Surrogate::default(), 0.1, 0.01);
        let params = init_params(&plan, 0);
        let mut g = GpuTrainer::new(ctx, &plan, t, b, s, &params).unwrap();
        let mut p = params;
        let mut opt = AdamW::new(&plan, s.weight_decay);
        let (mut cpu, mut gpu) = (Vec::new(), Vec::new());
        for step in 0..steps {
            let idx: Vec<usize> = (step * b..(step + 1) * b).collect();
            let x = ds.train.batch(&idx, 1);
            let labels = ds.train.labels_of(&idx);
            let lr = 0.02;
            gpu.push(g.step(&x, &labels, lr).unwrap().loss);
            let tape = forward_tape(&plan, &p, &x, t, b, s.lif, s.eps, REFERENCE);
            let (loss, gl) =
                softmax_cross_entropy(tape.logits(&plan), &labels, 10, s.label_smoothing);
            cpu.push(f64::from(loss));
            let grad = backward(&plan, &p, tape, &gl, s.lif, s.surrogate, s.eps);
            opt.update(&mut p, &grad, lr);
        }
        eprintln!("cpu losses {cpu:.4?}\ngpu losses {gpu:.4?}");
        let tail = |v: &[f64]| v[steps - 4..].iter().sum::<f64>() / 4.0;
        let (c, d) = (tail(&cpu), tail(&gpu));
        assert!(
            c < cpu[0] && d < gpu[0],
            "no learning: cpu {cpu:?}, gpu {gpu:?}"
        );
        assert!(
            (c - d).abs() < 0.1 * c,
            "last losses: cpu {c:.4}, gpu {d:.4}"
        );
        assert!((cpu[0] - gpu[0]).abs() < 1e-4 * cpu[0]);
    });
}

/// The training loop's two-class bars task (tests/train_loop.rs), 8x8, T 2.
fn bars_split(n: usize, salt: u32) -> Split {
    let mut s = Split::empty(1, 1, 8, 8);
    for i in 0..n {
        let label = (i % 2) as u16;
        let r = |j: u32| (msenas::cpu::bits(j, salt + i as u32) >> 8) as f32 / 16_777_216.0;
        let (y0, x0) = ((r(1000) * 5.0) as usize + 1, (r(1001) * 5.0) as usize + 1);
        let mut img = vec![0.0f32; 64];
        for (j, v) in img.iter_mut().enumerate() {
            *v = 0.2 * r(j as u32);
        }
        for a in 0..3 {
            for b in 0..2 {
                let (y, x) = if label == 0 {
                    (y0 + b, x0 + a)
                } else {
                    (y0 + a, x0 + b)
                };
                img[y.min(7) * 8 + x.min(7)] = 1.0;
            }
        }
        s.push(&img, label);
    }
    s
}

fn bars() -> (Dataset, Network) {
    let ds = Dataset {
        name: "bars".into(),
        // 30 samples at batch 4: the last chunk of every epoch holds 2.
        train: bars_split(30, 1),
        val: bars_split(16, 100),
        test: bars_split(16, 200),
        spec: common::gray_spec(8, 2, 2),
        class_names: vec!["horizontal".into(), "vertical".into()],
        notes: String::new(),
    };
    let g = Genome {
        layout: "N".into(),
        micro: MicroVariant::Kernel,
        k: 2,
        cells: vec![CellGene {
            motif: 1,
            sources: vec![1, 1],
            ops: vec![0; 4],
        }],
    };
    let net = Network::from_genome(g, &ds.spec, 4, 1).unwrap();
    (ds, net)
}

fn bars_config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 4,
        lr: 2.0,
        crop_pad: 1,
        flip: true,
        ..TrainConfig::default()
    }
}

fn sections(path: &std::path::Path) -> Vec<(String, Vec<u32>)> {
    Checkpoint::read(path)
        .unwrap()
        .sections
        .into_iter()
        .map(|(n, v)| (n, v.iter().map(|x| x.to_bits()).collect()))
        .collect()
}

#[test]
fn the_epoch_loop_learns_on_the_device_and_resumes_exactly() {
    with_device(
        "the_epoch_loop_learns_on_the_device_and_resumes_exactly",
        |ctx| {
            let (ds, net) = bars();
            let cfg = bars_config(6);
            let gpu = Device::from_gpu(ctx.clone());
            let run = |dir: &std::path::Path, resume: bool, stop: Option<usize>, d: &Device| {
                TrainJob::new(&net, &ds, &cfg, 3, dir)
                    .resuming(resume)
                    .stopping_after(stop)
                    .run(d, &mut Silent)
            };
            let cpu_dir = tempfile::tempdir().unwrap();
            let cpu = run(cpu_dir.path(), false, None, &Device::cpu()).unwrap();
            let a = tempfile::tempdir().unwrap();
            let full = run(a.path(), false, None, &gpu).unwrap();
            let losses = |r: &msenas::train::TrainResult| -> Vec<f64> {
                r.history.iter().map(|e| e.train_loss).collect()
            };
            eprintln!(
                "cpu train losses {:.4?}, val acc {:.3}",
                losses(&cpu),
                cpu.best_val_acc
            );
            eprintln!(
                "gpu train losses {:.4?}, val acc {:.3}",
                losses(&full),
                full.best_val_acc
            );
            assert!(
                full.best_val_acc >= 0.8,
                "validation accuracy {}",
                full.best_val_acc
            );
            assert!(full.history[5].train_loss < full.history[0].train_loss);
            assert!((full.history[0].train_loss - cpu.history[0].train_loss).abs() < 0.05);
            assert!((full.history[5].train_loss - cpu.history[5].train_loss).abs() < 0.15);
            for f in [
                "state.ckpt",
                "model.ckpt",
                "log.csv",
                "curves.png",
                "result.json",
            ] {
                assert!(a.path().join(f).is_file(), "{f} missing");
            }
            // Interrupted after epochs 2 and 4, resumed: the same bits as the uninterrupted run.
            let b = tempfile::tempdir().unwrap();
            run(b.path(), false, Some(2), &gpu).unwrap();
            run(b.path(), true, Some(4), &gpu).unwrap();
            let resumed = run(b.path(), true, None, &gpu).unwrap();
            assert_eq!(resumed.test_acc.to_bits(), full.test_acc.to_bits());
            assert_eq!(resumed.test_loss.to_bits(), full.test_loss.to_bits());
            for (x, y) in resumed.history.iter().zip(&full.history) {
                assert_eq!(x.train_loss.to_bits(), y.train_loss.to_bits());
                assert_eq!(x.val_loss.to_bits(), y.val_loss.to_bits());
            }
            for f in ["state.ckpt", "model.ckpt"] {
                assert_eq!(
                    sections(&a.path().join(f)),
                    sections(&b.path().join(f)),
                    "{f}"
                );
            }
            // A CPU run's checkpoint continues on the device (same format).
            let c = tempfile::tempdir().unwrap();
            run(c.path(), false, Some(5), &Device::cpu()).unwrap();
            let mixed = run(c.path(), true, None, &gpu).unwrap();
            assert_eq!(mixed.epochs, 6);
            assert!(mixed.test_acc.is_finite());
            for (x, y) in mixed.history[..5].iter().zip(&cpu.history) {
                assert_eq!(x.train_loss.to_bits(), y.train_loss.to_bits());
            }
        },
    );
}

// ---------------------------------------------------------------- the CLI

fn msenas() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_msenas"))
}

#[test]
fn cli_train_on_the_device_then_resume() {
    with_device("cli_train_on_the_device_then_resume", |ctx| {
        let dir = tempfile::tempdir().unwrap();
        cli_common::ok(&["sample", "--seed", "7", "--out", "g.json"], dir.path());
        let g = dir.path().join("g.json");
        let run = dir.path().join("run");
        let name = ctx.info.name.clone();
        let tiny = [
            "--size",
            "8",
            "--width",
            "2",
            "--timesteps",
            "1",
            "--epochs",
            "1",
            "--batch-size",
            "128",
        ];
        let out = msenas()
            .arg("train")
            .arg(&g)
            .args(tiny)
            .args(["--device", &name, "--out"])
            .arg(&run)
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{stderr}");
        assert!(stdout.contains("test accuracy"), "{stdout}");
        assert!(stdout.contains(&name), "the device is named: {stdout}");
        for f in [
            "state.ckpt",
            "model.ckpt",
            "log.csv",
            "curves.png",
            "result.json",
        ] {
            assert!(run.join(f).is_file(), "{f} missing");
        }
        let log = std::fs::read_to_string(run.join("log.csv")).unwrap();
        assert_eq!(log.lines().count(), 2, "{log}");
        let before: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("result.json")).unwrap())
                .unwrap();
        // Resuming a finished run measures the test split again, on the device: the same result.
        let out = msenas()
            .arg("train")
            .arg("--resume")
            .arg(&run)
            .args(["--device", &name, "--quiet"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let after: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("result.json")).unwrap())
                .unwrap();
        assert_eq!(before["test_acc"], after["test_acc"]);
        assert_eq!(before["history"], after["history"]);
        // Evaluation on the device reports what the CPU engine does, to a flipped spike.
        let report = |device: &str| -> serde_json::Value {
            let args = [
                "evaluate",
                "run",
                "--noise",
                "gaussian:0.2",
                "--json",
                "--device",
                device,
            ];
            serde_json::from_str(&cli_common::ok(&args, dir.path())).unwrap()
        };
        let (on_gpu, on_cpu) = (report(&name), report("cpu"));
        let n = on_cpu["samples"].as_f64().unwrap();
        assert_eq!(on_gpu["samples"], on_cpu["samples"]);
        for (what, g, c) in [
            ("accuracy", &on_gpu["accuracy"], &on_cpu["accuracy"]),
            (
                "accuracy under noise",
                &on_gpu["noise"][0]["accuracy"],
                &on_cpu["noise"][0]["accuracy"],
            ),
        ] {
            let (g, c) = (g.as_f64().unwrap(), c.as_f64().unwrap());
            assert!(
                (g - c).abs() * n <= 2.0 + 1e-9,
                "{what}: {g} on the GPU, {c} on the CPU"
            );
        }
        let (rate_gpu, rate_cpu) = (
            on_gpu["mean_firing_rate"].as_f64().unwrap(),
            on_cpu["mean_firing_rate"].as_f64().unwrap(),
        );
        assert!(
            rate_cpu > 0.0 && (rate_gpu - rate_cpu).abs() <= 1e-3 * rate_cpu,
            "firing rate {rate_gpu} vs {rate_cpu}"
        );
        // A device that does not exist: one line, exit 2, nothing written.
        let other = dir.path().join("other");
        let out = msenas()
            .arg("train")
            .arg(&g)
            .args(tiny)
            .args(["--device", "no-such-adapter-xyz", "--out"])
            .arg(&other)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("--device no-such-adapter-xyz"), "{stderr}");
        assert!(!other.exists());
    });
}

/// A trained network's evaluation on the device ([`msenas::engine::Model`], batches of 128 on
/// the GPU, 256 on the CPU) against the CPU engine: 300 samples with per-step inputs, so that
/// both split the batch; running statistics away from their initial values.
#[test]
fn a_model_evaluates_as_on_the_cpu() {
    with_device("a_model_evaluates_as_on_the_cpu", |ctx| {
        let gpu = Device::from_gpu(ctx);
        let (t, b) = (2, 300);
        let spec = common::gray_spec(8, 4, t);
        let mut checked = 0;
        for seed in [3u64, 4, 5] {
            let genome =
                SearchSpace::default().sample(&mut rand::rngs::StdRng::seed_from_u64(seed));
            let plan = Plan::compile(&genome, &spec, 4, 1).unwrap();
            let params = init_params(&plan, seed);
            let mut bn = BnRunning::new(&plan);
            for (m, v) in bn.mean.iter_mut().zip(&mut bn.var) {
                for (j, (m, v)) in m.iter_mut().zip(v.iter_mut()).enumerate() {
                    *m = 0.05 * (j % 5) as f32 - 0.1;
                    *v = 0.01 + 0.01 * (j % 7) as f32;
                }
            }
            let x = input(t * b * 64, 11);
            let want =
                msenas::engine::Model::new(&Device::cpu(), &plan, params.clone(), bn.clone())
                    .unwrap()
                    .evaluate(&x, b)
                    .unwrap();
            let mut model = msenas::engine::Model::new(&gpu, &plan, params, bn).unwrap();
            let got = model.evaluate(&x, b).unwrap();
            assert_eq!(model.logits(&x, b).unwrap(), got.logits);
            // Spike counts summed on the device: equal but for the spikes a membrane within
            // rounding of the threshold flips.
            assert_eq!(got.spike_counts.len(), plan.populations.len());
            let firing = want.spike_counts.iter().filter(|&&c| c > 0).count();
            assert!(
                2 * firing >= want.spike_counts.len(),
                "seed {seed}: only {firing} populations fire, the counts are not checked deep"
            );
            for (p, (&g, &w)) in got.spike_counts.iter().zip(&want.spike_counts).enumerate() {
                let off = g.abs_diff(w);
                eprintln!("seed {seed}, population {p}: {g} spikes, {off} off the CPU's");
                assert!(
                    off <= w / 1000 + 2,
                    "seed {seed}, population {p}: {g} vs {w}"
                );
            }
            let (got, want) = (got.logits, want.logits);
            assert_eq!(got.len(), want.len());
            // A row differs where a membrane within rounding of the threshold flips a spike.
            let rows_off = got
                .chunks(4)
                .zip(want.chunks(4))
                .filter(|(g, w)| g.iter().zip(*w).any(|(a, b)| (a - b).abs() > 1e-4))
                .count();
            eprintln!("seed {seed}: {rows_off} of {b} rows differ by more than 1e-4");
            assert!(
                rows_off <= b / 100,
                "seed {seed}: {rows_off} of {b} rows differ"
            );
            checked += 1;
        }
        assert_eq!(checked, 3);
    });
}

/// The GPU trainer takes a state or a model only after the check every engine makes
/// (`TrainState::check`): running statistics of the right total length but other channel
/// counts per layer are refused, and nothing is written.
#[test]
fn the_trainer_refuses_a_state_of_another_plan() {
    with_device("the_trainer_refuses_a_state_of_another_plan", |ctx| {
        let spec = common::gray_spec(8, 4, 2);
        let plan = (1..)
            .map(|seed| {
                let g = SearchSpace::default().sample(&mut rand::rngs::StdRng::seed_from_u64(seed));
                Plan::compile(&g, &spec, 4, 1).unwrap()
            })
            .find(|p| p.bn_channels.windows(2).any(|w| w[0] != w[1]))
            .unwrap();
        let params = init_params(&plan, 1);
        let s = settings(Loss::CrossEntropy, Surrogate::default(), 0.0, 0.0);
        let mut g = GpuTrainer::new(ctx, &plan, 2, 4, s, &params).unwrap();
        let before = g.read_state().unwrap();
        let i = plan
            .bn_channels
            .windows(2)
            .position(|w| w[0] != w[1])
            .unwrap();
        let mut moved = before.clone();
        for stats in [&mut moved.bn.mean, &mut moved.bn.var] {
            let v = stats[i].pop().unwrap();
            stats[i + 1].push(v + 0.5);
        }
        let e = g.write_state(&moved).unwrap_err().to_string();
        assert!(e.contains("running statistics of another plan"), "{e}");
        let e = g.write_model(&params, &moved.bn).unwrap_err().to_string();
        assert!(e.contains("running statistics of another plan"), "{e}");
        let e = g
            .write_model(&params[1..], &before.bn)
            .unwrap_err()
            .to_string();
        assert!(e.contains("parameters for a plan of"), "{e}");
        assert_eq!(
            g.read_state().unwrap(),
            before,
            "a refused state changed the trainer"
        );
    });
}
