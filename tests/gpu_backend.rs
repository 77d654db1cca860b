//! The GPU scoring backend against the CPU reference: the same genomes give the same scores,
//! status and firing rates (the statistics are integers; spikes agree on these small networks);
//! the gradient scores, from the backward kernels, agree to float rounding.
//!
//! No adapter: with `CI` set the test fails; otherwise it prints a skip message and passes.

mod common;

use msenas::engine::ProbeBatch;
use msenas::engine::{Device, Engine, SpikeBackend};
use msenas::fitness::evaluate::ScoringEvaluator;
use msenas::fitness::evaluate::{EngineEvaluator, EvalSettings, Evaluator, Probe};
use msenas::genome::SearchSpace;
use msenas::DataSpec;
use rand::SeedableRng;

const T: usize = 2;

/// `batches` probe batches of 8 samples over 8x8 inputs, 4 classes.
fn probe(batches: usize) -> Probe {
    let (t, b) = (T, 8);
    Probe {
        timesteps: t,
        batches: (0..batches)
            .map(|k| ProbeBatch {
                indices: (0..b).collect(),
                labels: (0..b as u16).map(|i| i % 4).collect(),
                input: (0..t * b * 64)
                    .map(|i| msenas::cpu::rng::unit(i as u32, 77 + k as u32) * 1.5)
                    .collect(),
            })
            .collect(),
    }
}

fn spec() -> DataSpec {
    common::gray_spec(8, 4, T)
}

fn genomes(seeds: std::ops::Range<u64>) -> Vec<msenas::genome::Genome> {
    let space = SearchSpace {
        layout: "NRN".into(),
        width: 4,
        timesteps: T,
        ..SearchSpace::default()
    };
    seeds
        .map(|s| space.sample(&mut rand::rngs::StdRng::seed_from_u64(s)))
        .collect()
}

#[test]
fn gpu_scores_equal_cpu_scores() {
    let Some(ctx) = common::primary() else {
        return;
    };
    let backend = Engine::new(Device::from_gpu(ctx));
    let (t, b) = (2, 8);
    let spec = common::gray_spec(8, 4, t);
    let input: Vec<f32> = (0..t * b * 64)
        .map(|i| msenas::cpu::rng::unit(i as u32, 77) * 1.5)
        .collect();
    let probe = Probe {
        timesteps: t,
        batches: vec![ProbeBatch {
            indices: (0..b).collect(),
            labels: (0..b as u16).map(|i| i % 4).collect(),
            input,
        }],
    };
    let settings = EvalSettings {
        spec,
        width: 4,
        reduce_kernel: 1,
        seed: 3,
        weight_seeds: 2,
        scores: [
            "rdm",
            "rdm_corr",
            "sahd",
            "hamming",
            "firing_rate",
            "sops",
            "params",
            "grad_rms",
            "grad_norm",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect(),
    };
    let space = SearchSpace {
        layout: "NRN".into(),
        width: 4,
        timesteps: t,
        ..SearchSpace::default()
    };
    let genomes: Vec<_> = (0..4u64)
        .map(|s| space.sample(&mut rand::rngs::StdRng::seed_from_u64(s)))
        .collect();
    let mut gpu = ScoringEvaluator::new(backend, settings.clone(), probe.clone()).unwrap();
    let mut cpu = EngineEvaluator::cpu_reference(settings, probe).unwrap();
    eprintln!("{} vs {}", gpu.device(), cpu.device());
    let (g, c) = (gpu.evaluate(&genomes), cpu.evaluate(&genomes));
    for (g, c) in g.iter().zip(&c) {
        assert_eq!(g.status, c.status, "{}", g.key);
        // spike scores from integer statistics: identical
        for (name, v) in &c.scores {
            if name.starts_with("grad_") {
                continue;
            }
            assert_eq!(g.scores[name], *v, "{} {name}", g.key);
        }
        // gradient scores from the backward kernels: float rounding of the log-norm
        for name in ["grad_rms", "grad_norm"] {
            let (a, b) = (g.score(name), c.score(name));
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "{} {name}: gpu {a} cpu {b}",
                g.key
            );
        }
        eprintln!(
            "{:?} rdm {} grad_rms gpu {} cpu {}",
            g.status,
            g.score("rdm"),
            g.score("grad_rms"),
            c.score("grad_rms")
        );
    }
    assert!(g.iter().any(|e| e.status == msenas::evolve::Status::Ok));
}

/// A generation handed over whole: the GPU runs every candidate's forward passes (all weight
/// seeds and probe batches) and, for a gradient score, every candidate's gradient norms in one
/// submission with one read-back, and the evaluations are those of scoring the genomes one at
/// a time.
#[test]
fn a_generation_runs_in_one_submission_with_one_read_back() {
    let Some(ctx) = common::primary() else {
        return;
    };
    let runs = 2 * 2; // weight seeds x probe batches
    let mut gs = genomes(10..16);
    // Every synapse inhibitory (I3, `micro` full): the head never fires, a dead network.
    let mut dead = gs[0].clone();
    dead.micro = msenas::genome::MicroVariant::Full;
    for c in &mut dead.cells {
        c.ops.iter_mut().for_each(|o| *o = 2);
    }
    gs.push(dead);
    for (scores, gradient) in [
        (&["rdm", "hamming", "params", "sops"][..], false),
        (&["grad_rms", "params"][..], true),
    ] {
        let settings = EvalSettings {
            spec: spec(),
            width: 4,
            reduce_kernel: 1,
            seed: 5,
            weight_seeds: 2,
            scores: scores.iter().map(|s| s.parse().unwrap()).collect(),
        };
        let mut ev = ScoringEvaluator::new(
            Engine::new(Device::from_gpu(ctx.clone())),
            settings,
            probe(2),
        )
        .unwrap();
        assert!(ev.batch_hint() >= gs.len());
        let c0 = ev.backend.device().counters().unwrap();
        let whole = ev.evaluate(&gs);
        let c1 = ev.backend.device().counters().unwrap();
        let one_by_one: Vec<_> = gs.iter().map(|g| ev.evaluate_one(g)).collect();
        let c2 = ev.backend.device().counters().unwrap();
        let (batched, single) = (c1.since(c0), c2.since(c1));
        eprintln!(
            "{scores:?}, generation of {}: {batched:?}; one by one: {single:?}",
            gs.len()
        );
        let live = whole
            .iter()
            .filter(|e| e.status == msenas::evolve::Status::Ok)
            .count() as u64;
        assert_eq!(whole.last().unwrap().status, msenas::evolve::Status::Dead);
        assert!(live > 0 && live < gs.len() as u64);
        assert_eq!(batched.submissions, 1);
        assert_eq!(batched.read_backs, 1);
        // One at a time: a submission per run, and one per weight seed for each live
        // candidate's gradient norm.
        let single_grads = if gradient { 2 * live } else { 0 };
        assert_eq!(single.submissions, (runs * gs.len()) as u64 + single_grads);
        assert_eq!(single.read_backs, (runs * gs.len()) as u64 + single_grads);
        if gradient {
            // The whole generation's gradient passes ran with the forward passes, also those
            // of the dead candidate, which one at a time never gets them.
            assert!(batched.dispatches > single.dispatches);
            assert!(batched.bytes_read > single.bytes_read);
            // More trainers (14 against 12), yet fewer bytes uploaded: the generation's
            // trainers read one upload of the mini-batches, one at a time each uploads its own.
            assert!(batched.bytes_written < single.bytes_written);
        } else {
            // The same work either way.
            assert_eq!(batched.dispatches, single.dispatches);
            assert_eq!(batched.bytes_read, single.bytes_read);
        }
        for (a, b) in whole.iter().zip(&one_by_one) {
            assert_eq!((&a.key, a.status, &a.reason), (&b.key, b.status, &b.reason));
            assert_eq!(a.scores, b.scores, "{}", a.key);
            assert!(a.timings["forward"] > 0.0 && a.timings["total"] >= a.timings["forward"]);
        }
    }
}

/// `grad_rms` reads one number per candidate and weight seed: the squared norm of the mean
/// mini-batch gradient, reduced on the device and read back as at most 256 partial sums. It
/// equals the host reduction of the device's gradients (and the CPU's) to float rounding.
#[test]
fn the_mean_gradient_norm_is_reduced_on_the_device() {
    let Some(ctx) = common::primary() else {
        return;
    };
    let mut gpu = Engine::new(Device::from_gpu(ctx.clone()));
    let mut cpu = Engine::new(Device::cpu_reference());
    let p = probe(1);
    let batches = msenas::fitness::gradient::mini_batches(&p.batches[0], T, 4);
    let surrogate = msenas::cpu::grad::Surrogate::default();
    let mut live = 0;
    for g in genomes(40..44) {
        let plan = msenas::plan::Plan::compile(&g, &spec(), 4, 1).unwrap();
        let c0 = gpu.device().counters().unwrap();
        let on_device = gpu
            .mean_gradient_norm2(&plan, 9, &batches, surrogate)
            .unwrap();
        let c = gpu.device().counters().unwrap().since(c0);
        assert_eq!(c.submissions, 1, "{c:?}");
        assert_eq!(c.read_backs, 1, "{c:?}");
        let groups = msenas::cpu::elementwise::sum_squares_groups(plan.num_params);
        assert_eq!(c.bytes_read, (4 * groups) as u64, "{c:?}");
        // The weights the engine generated on the device are the host generator's: a trainer
        // given `init_params` gives the same number to the bit.
        let settings = msenas::gpu::TrainSettings {
            loss: msenas::cpu::grad::Loss::CrossEntropy,
            label_smoothing: 0.0,
            surrogate,
            lif: msenas::cpu::LifParams::default(),
            eps: msenas::cpu::BN_EPS,
            momentum: msenas::cpu::BN_MOMENTUM,
            weight_decay: 0.0,
        };
        let uploaded = msenas::gpu::GpuTrainer::new(
            ctx.clone(),
            &plan,
            T,
            batches.iter().map(|b| b.1.len()).max().unwrap(),
            settings,
            &msenas::cpu::init_params(&plan, 9),
        )
        .unwrap()
        .mean_gradient_norm2(&batches)
        .unwrap();
        assert_eq!(on_device.to_bits(), uploaded.to_bits());
        let grads = gpu.gradients(&plan, 9, &batches, surrogate).unwrap();
        let host = msenas::engine::mean_norm2(&grads, plan.num_params);
        let reference = msenas::engine::mean_norm2(
            &cpu.gradients(&plan, 9, &batches, surrogate).unwrap(),
            plan.num_params,
        );
        eprintln!("norm2 on the device {on_device:e}, host {host:e}, cpu {reference:e}");
        for (what, other) in [("host", host), ("cpu", reference)] {
            assert!(
                (on_device - other).abs() <= 1e-4 * other.abs(),
                "{what}: {on_device} vs {other}"
            );
        }
        live += usize::from(host > 0.0);
    }
    assert!(live > 0, "a network with a non-zero gradient");
    // A label past the classes: refused before anything is recorded.
    let plan = msenas::plan::Plan::compile(&genomes(40..41)[0], &spec(), 4, 1).unwrap();
    let mut bad = batches.clone();
    bad[1].1[0] = 9;
    let e = gpu
        .mean_gradient_norm2(&plan, 9, &bad, surrogate)
        .unwrap_err()
        .to_string();
    assert!(e.contains("label 9"), "{e}");
}
