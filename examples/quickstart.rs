//! The README's library example: load the bundled digits, sample a genome, compile it to a plan,
//! run it on the engine (a GPU when one opens, else the CPU engine: the same call and result
//! types on both), score it without training, and train it for one epoch.
//! `cargo run --release --example quickstart [DEVICE]` (default `auto`).

use msenas::engine::{Device, Engine, Outputs};
use msenas::fitness::evaluate::{make_evaluator, EvalSettings, Probe};
use msenas::fitness::ScoreId;
use msenas::train::{Network, Silent, TrainConfig, TrainJob};
use msenas::{data, genome::SearchSpace, plan::Plan};
use rand::SeedableRng;

fn main() -> anyhow::Result<()> {
    let device = Device::resolve(&std::env::args().nth(1).unwrap_or("auto".into()))?;
    let ds = data::load("digits", &data::DataOptions::default())?; // bundled, offline, T = 4
    let space = SearchSpace::default(); // NRNRNR, k in {2,3}, 6 motifs
    let genome = space.sample(&mut rand::rngs::StdRng::seed_from_u64(0)); // pure data, JSON
    let plan = Plan::compile(&genome, &ds.spec, space.width, space.reduce_kernel)?;

    // 1. A forward pass with the counter-based initial weights of seed 0.
    let mut engine = Engine::new(device.clone());
    let idx: Vec<usize> = (0..32).collect();
    let input = ds.test.batch(&idx, 1); // [B, C, H, W], repeated over T
    let out = engine.forward(&plan, 0, &input, idx.len(), Outputs::scores())?;
    println!("{}: {} parameters", device.describe(), plan.num_params);
    println!("logits of sample 0: {:?}", &out.logits[..10]);
    println!("firing rates: {:?}", out.firing_rates);

    // 2. Training-free scores of the genome on a probe of 32 training samples.
    let probe = Probe::draw(&ds.train, 32, 1, ds.spec.timesteps, 1)?;
    let settings = EvalSettings {
        spec: ds.spec,
        width: space.width,
        reduce_kernel: space.reduce_kernel,
        seed: 0,
        weight_seeds: 1,
        scores: vec![ScoreId::GradRms, ScoreId::Rdm, ScoreId::Params],
    };
    let mut evaluator = make_evaluator(&device, settings, probe)?;
    let e = &evaluator.evaluate(std::slice::from_ref(&genome))[0];
    println!("{:?}: {:?}", e.status, e.scores);

    // 3. One epoch of surrogate-gradient training, written to a run folder.
    let net = Network::from_genome(genome, &ds.spec, space.width, space.reduce_kernel)?;
    let cfg = TrainConfig {
        epochs: 1,
        ..TrainConfig::default()
    };
    let dir = std::env::temp_dir().join("msenas-quickstart");
    let _ = std::fs::remove_dir_all(&dir);
    let r = TrainJob::new(&net, &ds, &cfg, 0, &dir).run(&device, &mut Silent)?;
    println!("test accuracy after one epoch: {:.2}%", 100.0 * r.test_acc);
    Ok(())
}
