//! Per-kernel GPU time (`Device::start_profile` / `take_profile`, `msenas forward --profile`):
//! every dispatch of a forward pass is timed by timestamps, the counts match the plan (one LIF
//! dispatch per population), profiling leaves the results bit for bit unchanged, and stopping
//! it stops it. On the CPU engine, and on an adapter without timestamp queries, it is refused.
//!
//! No adapter: with `CI` set the test fails; otherwise it prints a skip message and passes.

mod common;

use std::process::Command;

use msenas::engine::{Device, Engine, Outputs};
use msenas::genome::SearchSpace;
use msenas::plan::Plan;
use rand::SeedableRng;

#[test]
fn a_profiled_forward_pass_times_every_dispatch() {
    let Some(ctx) = common::primary() else {
        return;
    };
    let device = Device::from_gpu(ctx);
    let (t, b) = (2, 4);
    let spec = common::gray_spec(8, 4, t);
    let space = SearchSpace {
        layout: "NRN".into(),
        width: 4,
        timesteps: t,
        ..SearchSpace::default()
    };
    // A network with motif cells (spiking convolutions), not only the stem and the head.
    let plan = (0..100u64)
        .map(|s| {
            let g = space.sample(&mut rand::rngs::StdRng::seed_from_u64(s));
            Plan::compile(&g, &spec, 4, 1).unwrap()
        })
        .find(|p| p.populations.len() >= 4)
        .expect("a sampled network with motif cells");
    let input: Vec<f32> = (0..t * b * 64)
        .map(|i| msenas::cpu::rng::unit(i as u32, 11) * 1.5)
        .collect();
    let want = Outputs {
        firing_rates: true,
        ..Outputs::default()
    };
    let has_timestamps = device
        .adapter()
        .is_some_and(|a| a.features.iter().any(|f| f == "timestamp-query"));
    let mut engine = Engine::new(device);
    let plain = engine.forward(&plan, 1, &input, b, want).unwrap();
    if !has_timestamps {
        let e = engine.device().start_profile().unwrap_err().to_string();
        assert!(e.contains("timestamp"), "{e}");
        eprintln!("skip: {e}");
        return;
    }
    engine.device().start_profile().unwrap();
    let profiled = engine.forward(&plan, 1, &input, b, want).unwrap();
    let times = engine.device().take_profile();
    assert_eq!(profiled.logits, plain.logits);
    assert_eq!(profiled.firing_rates, plain.firing_rates);
    let count = |name: &str| {
        times
            .iter()
            .find(|k| k.kernel == name)
            .map_or(0, |k| k.dispatches)
    };
    // Every population once: through `run`, or `run_bn` where the batch norm feeding it is
    // applied on the fly (then that batch norm has no `apply` dispatch).
    assert_eq!(
        count("lif::run") + count("lif::run_bn"),
        plan.populations.len() as u64,
        "{times:?}"
    );
    assert!(count("lif::run_bn") > 0, "{times:?}");
    assert_eq!(
        count("batchnorm::apply") + count("lif::run_bn"),
        count("batchnorm::stats"),
        "{times:?}"
    );
    assert!(
        count("conv_gemm::spiking") > 0 && count("conv_gemm::dense") == 1,
        "{times:?}"
    );
    assert!(times.iter().all(|k| k.seconds >= 0.0 && k.dispatches > 0));
    assert!(times.iter().map(|k| k.seconds).sum::<f64>() > 0.0);
    assert!(times.windows(2).all(|w| w[0].seconds >= w[1].seconds));
    // The same pass records the same dispatches; once taken, profiling is off.
    engine.device().start_profile().unwrap();
    engine.forward(&plan, 1, &input, b, want).unwrap();
    let again = engine.device().take_profile();
    let counts = |v: &[msenas::engine::KernelTime]| {
        let mut c: Vec<(String, u64)> =
            v.iter().map(|k| (k.kernel.clone(), k.dispatches)).collect();
        c.sort();
        c
    };
    assert_eq!(counts(&again), counts(&times));
    // The representation tables: every population's for the spike scores, the head's alone
    // for the dead-network check. Spike counts for every population either way: beside the
    // tables from `rdm::counts`; without them, from `lif::run` itself, so only the head and the
    // populations fed by a batch norm (`lif::run_bn`) dispatch `rdm::counts`.
    let pops = plan.populations.len() as u64;
    for (outputs, tables) in [(Outputs::scores(), pops), (Outputs::head_stats(), 1)] {
        engine.device().start_profile().unwrap();
        engine.forward(&plan, 1, &input, b, outputs).unwrap();
        let times = engine.device().take_profile();
        let count = |name: &str| {
            times
                .iter()
                .find(|k| k.kernel == name)
                .map_or(0, |k| k.dispatches)
        };
        assert_eq!(count("rdm::pairs"), tables, "{times:?}");
        assert_eq!(count("rdm::dots"), tables, "{times:?}");
        if tables == pops {
            assert_eq!(count("rdm::counts"), pops, "{times:?}");
        } else {
            assert_eq!(count("lif::run") + count("lif::run_bn"), pops, "{times:?}");
            assert!(
                count("lif::run") >= 2,
                "the plan has populations fed without a batch norm"
            );
            let separate = count("rdm::counts");
            assert!(
                (1..=count("lif::run_bn") + 1).contains(&separate),
                "{separate} counting passes: {times:?}"
            );
        }
    }
    engine.forward(&plan, 1, &input, b, want).unwrap();
    assert!(engine.device().take_profile().is_empty());
}

#[test]
fn profile_on_the_cpu_engine_is_refused_with_one_line() {
    assert!(Device::cpu().start_profile().is_err());
    let dir = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_msenas");
    let ok = Command::new(exe)
        .args(["sample", "--seed", "2", "--out", "g.json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(ok.status.success());
    let o = Command::new(exe)
        .args([
            "forward",
            "g.json",
            "--device",
            "cpu",
            "--profile",
            "--batch",
            "2",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--profile") && err.trim_end().lines().count() == 1,
        "{err}"
    );
}
