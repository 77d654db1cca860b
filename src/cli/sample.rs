//! `msenas sample`: a valid random genome as JSON.

use crate::evolve::config::Config;
use rand::SeedableRng;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A JSON config file (see `msenas search --help` for the keys).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override one config value, e.g. `--set space.layout=NRN` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Write the genome here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let cfg = Config::load(None, a.config.as_deref(), &a.sets)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
    let genome = cfg.space.sample(&mut rng);
    let json = genome.to_json() + "\n";
    match a.out {
        Some(p) => super::write_atomic(&p, json.as_bytes())?,
        None => print!("{json}"),
    }
    Ok(())
}
