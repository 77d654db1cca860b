//! `msenas versus-random`: the search's pick and top genomes against architectures drawn at
//! random from the same space, all trained with the same budget and seeds.

use std::time::Instant;

use crate::benchmarks::versus::{self, VersusObserver, VersusOptions};
use crate::engine::Device;
use crate::train::TrainResult;

#[derive(clap::Args, Debug)]
#[group(skip)]
pub struct Args {
    #[command(flatten)]
    pub search: super::search::Args,
    /// Architectures drawn at random from the search space.
    #[arg(long, default_value_t = 10)]
    pub random: usize,
    /// Training seeds per architecture.
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
    /// The search's pick and its next best genomes by the fitness.
    #[arg(long, default_value_t = 3)]
    pub top: usize,
    /// Train on a stratified subset of this many training samples (default: the whole split).
    #[arg(long)]
    pub train_subset: Option<usize>,
    /// Validate and test on stratified subsets of this many samples each (default: the whole
    /// splits).
    #[arg(long)]
    pub eval_subset: Option<usize>,
}

/// A line per stage and per training, with the rate and the time left.
struct Lines {
    quiet: bool,
    start: Instant,
    first: Option<(Instant, usize)>,
}

impl VersusObserver for Lines {
    fn stage(&mut self, what: &str) {
        eprintln!("versus-random: {what}");
    }

    fn trained(&mut self, done: usize, total: usize, name: &str, seed: usize, r: &TrainResult) {
        if self.quiet {
            return;
        }
        // The rate counts only trainings run by this process (read-back ones take no time).
        let (t0, d0) = *self.first.get_or_insert((Instant::now(), done));
        let eta = if done > d0 {
            let per = t0.elapsed().as_secs_f64() / (done - d0) as f64;
            format!("{:.0} s left", per * (total - done) as f64)
        } else {
            "ETA after the next".into()
        };
        eprintln!(
            "versus-random: [{done}/{total}] {name} seed {seed}: test {:.2}% ({:.1} s); {} \
             elapsed, {eta}",
            100.0 * r.test_acc,
            r.wall_s,
            format_args!("{:.0} s", self.start.elapsed().as_secs_f64())
        );
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if a.search.resume.is_some() {
        return Err(crate::Error::input(
            "--resume: not used here; run the same command again to continue a benchmark",
        )
        .into());
    }
    let cfg = super::search::resolve_config(&a.search)?;
    let opts = VersusOptions {
        random: a.random,
        seeds: a.seeds,
        top: a.top,
        train_subset: a.train_subset,
        eval_subset: a.eval_subset,
    };
    opts.validate()?;
    let device = Device::resolve(&cfg.search.device)?;
    let out = a
        .search
        .out
        .clone()
        .unwrap_or_else(|| versus::default_out(&cfg));
    let mut obs = Lines {
        quiet: a.search.quiet,
        start: Instant::now(),
        first: None,
    };
    let r = versus::run(&cfg, &opts, &out, &device, &mut obs)?;
    println!(
        "{}; report {}",
        r.summary(),
        out.join(versus::REPORT_MD).display()
    );
    Ok(())
}
