//! The README's library example: load the bundled digits, sample a genome, compile it to a plan
//! and run the CPU reference. `cargo run --example quickstart`.

use msenas::{cpu, data, genome::SearchSpace, plan::Plan};
use rand::SeedableRng;

fn main() -> anyhow::Result<()> {
    let ds = data::load("digits", &data::DataOptions::default())?; // bundled, offline
    let space = SearchSpace::default(); // NRNRNR, k in {2,3}, 6 motifs
    let genome = space.sample(&mut rand::rngs::StdRng::seed_from_u64(0)); // pure data, JSON
    let plan = Plan::compile(&genome, &ds.spec, space.width, space.reduce_kernel)?; // primitive ops
    let params = cpu::init_params(&plan, 0); // counter-based, identical on the GPU
    let idx: Vec<usize> = (0..32).collect();
    let opts = cpu::ForwardOptions::new(4, 32);
    let out = cpu::forward(&plan, &params, &ds.test.batch(&idx, 4), &opts);
    println!(
        "{} parameters, {} LIF populations",
        plan.num_params,
        plan.populations.len()
    );
    println!("logits of sample 0: {:?}", &out.logits[..10]);
    println!("firing rates: {:?}", out.firing_rates);
    Ok(())
}
