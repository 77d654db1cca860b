//! The `msenas` command line. Each command lives in its own file; user mistakes print one line
//! and exit with code 2, other failures exit with 1.

use clap::{Parser, Subcommand};

mod devices;
mod evaluate;
mod export;
mod forward;
mod progress;
mod proxy_bench;
mod run;
mod sample;
mod score;
mod search;
mod show;
mod train;
mod versus;

/// Brain-inspired multi-scale evolutionary architecture search for spiking neural networks.
#[derive(Parser, Debug)]
#[command(name = "msenas", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print a valid random genome as JSON.
    Sample(sample::Args),
    /// List GPU adapters (backend, type, limits, features) and the one --device picks.
    Devices(devices::Args),
    /// Describe a genome: cells, motifs, edges, wiring, parameter count; `--plot` draws it.
    Show(show::Args),
    /// Run a forward pass on test images (CPU engine): firing rate of every population, time taken;
    /// `--dump DIR` writes plan, weights, input, logits and spikes for cross-checks.
    Forward(forward::Args),
    /// The whole job: search, train the best genome, evaluate it, write report.md.
    Run(run::Args),
    /// Score one genome without training (every training-free score, with timings).
    Score(score::Args),
    /// Search architectures with NSGA-II and a training-free fitness; writes a run folder.
    Search(search::Args),
    /// Train a genome on a dataset (backpropagation through time, CPU engine or GPU).
    Train(train::Args),
    /// Accuracy, firing rates, synaptic operations, energy and noise robustness of a trained network.
    Evaluate(evaluate::Args),
    /// Rank sampled architectures by every training-free score and by trained accuracy:
    /// Kendall tau, partial tau given parameter count, the seed-to-seed ceiling.
    ProxyBench(proxy_bench::Args),
    /// The search's pick and top genomes against random architectures from the same space, all
    /// trained with the same budget and seeds: mean accuracy, bootstrap intervals, percentile.
    VersusRandom(versus::Args),
    /// A trained network (or a genome at its initial weights) as a folder PyTorch loads with
    /// `msenas.torch.load(DIR)`.
    Export(export::Args),
}

/// Exit codes.
pub const EXIT_USAGE: i32 = 2;

/// Run the CLI; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return 0;
        }
        Err(e) => {
            eprintln!("msenas: error: {}", usage_line(&e));
            return EXIT_USAGE;
        }
    };
    let result = match cli.command {
        Command::Sample(a) => sample::run(a),
        Command::Devices(a) => devices::run(a),
        Command::Show(a) => show::run(a),
        Command::Forward(a) => forward::run(a),
        Command::Run(a) => run::run(a),
        Command::Score(a) => score::run(a),
        Command::Search(a) => search::run(a),
        Command::Train(a) => train::run(a),
        Command::Evaluate(a) => evaluate::run(a),
        Command::ProxyBench(a) => proxy_bench::run(a),
        Command::VersusRandom(a) => versus::run(a),
        Command::Export(a) => export::run(a),
    };
    match result {
        Ok(()) => 0,
        Err(e) => report(&e),
    }
}

/// A command-line parse error as one line: clap's message without its usage block, and where
/// to read more.
fn usage_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more"));
    let first = lines
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ");
    // A suggestion ("tip: a similar argument exists: '--seed'") is worth keeping.
    let tip: Vec<&str> = lines.filter(|l| l.starts_with("tip:")).collect();
    let mut line = first.to_string();
    for t in tip {
        line.push_str("; ");
        line.push_str(t);
    }
    line.push_str(" (see `msenas --help`)");
    line
}

/// One line on stderr; exit 2 for user input errors, 1 otherwise.
pub fn report(e: &anyhow::Error) -> i32 {
    let user = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<crate::Error>(),
            Some(crate::Error::Input(_)) | Some(crate::Error::Io { .. })
        )
    });
    // Join the chain, skipping a cause whose text its parent already shows (an I/O error
    // displays its source after the path).
    let mut line = String::new();
    for c in e.chain() {
        let m = c.to_string();
        if !line.ends_with(&m) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&m);
        }
    }
    let line = line.replace(['\n', '\r'], " ");
    eprintln!("msenas: error: {line}");
    if user {
        EXIT_USAGE
    } else {
        1
    }
}

/// Read and validate a genome file; errors name the file.
pub fn read_genome(path: &std::path::Path) -> crate::Result<crate::genome::Genome> {
    let text = crate::fsio::read_text(path, "genome")?;
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
        return Err(crate::Error::input(format!(
            "{}: not valid JSON: {e} (expected a genome as written by `msenas sample`)",
            path.display()
        )));
    }
    crate::genome::Genome::from_json(&text)
        .map_err(|e| crate::Error::input(format!("{}: {e}", path.display())))
}

pub use crate::fsio::write_atomic;
