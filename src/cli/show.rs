//! `msenas show`: a genome in words (cells, motifs, edges, wiring, parameter count) and,
//! with `--plot`, as a PNG drawing.

use crate::data::spec_by_name;
use crate::evolve::config::Config;
use crate::genome::Genome;
use crate::plan::describe::{describe, draw};
use crate::plan::Plan;
use crate::{DataSpec, Error};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The genome file (JSON, as written by `msenas sample`).
    pub genome: PathBuf,
    /// The input the parameter count is for (digits: 1x16x16; cifar10: 3x32x32; default: the
    /// config's data.dataset).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Base width C (default: the config's space.width).
    #[arg(long)]
    pub width: Option<usize>,
    /// Draw the architecture to this PNG file.
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<PathBuf>,
    /// A JSON config file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override one config value, e.g. `--set space.width=16` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

/// Check a width given on the command line.
pub(super) fn check_width(w: usize) -> crate::Result<()> {
    if w < 2 || !w.is_multiple_of(2) || w > 512 {
        return Err(Error::input(format!(
            "--width: {w} (allowed: an even number 2..=512)"
        )));
    }
    Ok(())
}

/// Compile a genome; plan errors name the genome file.
pub(super) fn compile(
    path: &Path,
    genome: &Genome,
    spec: &DataSpec,
    width: usize,
    reduce_kernel: usize,
) -> crate::Result<Plan> {
    Plan::compile(genome, spec, width, reduce_kernel)
        .map_err(|e| Error::input(format!("{}: {e}", path.display())))
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let cfg = Config::load(None, a.config.as_deref(), &a.sets)?;
    let dataset = a.dataset.unwrap_or_else(|| cfg.data.dataset.clone());
    let spec = spec_by_name(&dataset, 4)?;
    let width = a.width.unwrap_or(cfg.space.width);
    check_width(width)?;
    let genome = super::read_genome(&a.genome)?;
    let plan = compile(&a.genome, &genome, &spec, width, cfg.space.reduce_kernel)?;
    let text = describe(&genome, &plan, &dataset);
    if let Some(p) = &a.plot {
        draw(p, &genome, &plan, &dataset)?;
    }
    print!("{text}");
    if let Some(p) = &a.plot {
        println!("plot: {}", p.display());
    }
    Ok(())
}
