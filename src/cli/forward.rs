//! `msenas forward`: one CPU reference forward pass of a genome on test images; firing rate of
//! every LIF population and the time taken; `--dump DIR` writes everything an independent
//! implementation needs to check the pass (see [`crate::dump`]); `--grads` adds the loss and the
//! gradient of every parameter on the same batch (the labels of the test samples), from the
//! training reverse pass ([`crate::train::backprop`]).

use crate::cpu::grad::Surrogate;
use crate::cpu::{forward, init_params, ForwardOptions};
use crate::data::{self, DataOptions};
use crate::dump::{self, DumpInfo, GradDump};
use crate::engine::{Device, Engine, Outputs};
use crate::evolve::config::Config;
use crate::train::backprop::{backward, forward_tape, Hooks};
use crate::train::Loss;
use crate::Error;
use rand::SeedableRng;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The genome file (JSON, as written by `msenas sample`).
    pub genome: PathBuf,
    /// Dataset (default: the config's data.dataset).
    #[arg(long)]
    pub dataset: Option<String>,
    /// The dataset's folder (not needed for the bundled digits).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Batch size B: the first B test images (or a stratified sample with --stratified).
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Draw a class-stratified batch (with --seed) instead of the first B test images.
    #[arg(long)]
    pub stratified: bool,
    /// Weight seed (default: the config's seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Time steps T (default: the config's space.timesteps).
    #[arg(long)]
    pub timesteps: Option<usize>,
    /// Base width C (default: the config's space.width).
    #[arg(long)]
    pub width: Option<usize>,
    /// Write the plan, weights, input, logits and spikes of every population to this folder.
    #[arg(long, value_name = "DIR")]
    pub dump: Option<PathBuf>,
    /// With --dump: also compute the loss on the batch's labels (those of the test samples) and
    /// the gradient of every parameter (batch statistics, the training reverse pass), and write
    /// them to the dump.
    #[arg(long)]
    pub grads: bool,
    /// Loss for --grads: ce (cross-entropy with label smoothing) or mse (on the time-averaged
    /// outputs). Default: the config's train.loss.
    #[arg(long, value_name = "ce|mse")]
    pub loss: Option<String>,
    /// Surrogate gradient for --grads: triangle, sigmoid or atan, optionally NAME:ALPHA.
    /// Default: the config's train.surrogate.
    #[arg(long, value_name = "NAME[:ALPHA]")]
    pub surrogate: Option<String>,
    /// Label smoothing of --loss ce for --grads, in [0, 1). Default: the config's
    /// train.label_smoothing.
    #[arg(long, value_name = "X")]
    pub label_smoothing: Option<String>,
    /// Where to run: cpu (the reference), auto, gpu, or part of an adapter's name (`msenas
    /// devices` lists them). --dump needs cpu.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// On a GPU: after the timed pass, run the pass once more with every kernel timed by GPU
    /// timestamps and print the time per kernel (needs an adapter with timestamp queries).
    #[arg(long)]
    pub profile: bool,
    /// A JSON config file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override one config value, e.g. `--set space.width=16` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

/// The loss settings of `--grads`.
struct GradSettings {
    loss: Loss,
    loss_name: &'static str,
    smoothing: f32,
    surrogate: Surrogate,
}

/// Check the `--grads` flags (and their config defaults); `None` without `--grads`.
fn grad_settings(a: &Args, cfg: &Config) -> crate::Result<Option<GradSettings>> {
    if !a.grads {
        for (flag, given) in [
            ("--loss", a.loss.is_some()),
            ("--surrogate", a.surrogate.is_some()),
            ("--label-smoothing", a.label_smoothing.is_some()),
        ] {
            if given {
                return Err(Error::input(format!("{flag}: needs --grads")));
            }
        }
        return Ok(None);
    }
    if a.dump.is_none() {
        return Err(Error::input("--grads: needs --dump DIR"));
    }
    let (name, flag) = match &a.loss {
        Some(v) => (v.as_str(), "--loss"),
        None => (cfg.train.loss.as_str(), "train.loss"),
    };
    let loss = Loss::parse(name)
        .ok_or_else(|| Error::input(format!("{flag}: '{name}' (allowed: ce, mse)")))?;
    let (name, flag) = match &a.surrogate {
        Some(v) => (v.as_str(), "--surrogate"),
        None => (cfg.train.surrogate.as_str(), "train.surrogate"),
    };
    let surrogate = Surrogate::parse(name).ok_or_else(|| {
        Error::input(format!(
            "{flag}: '{name}' (allowed: triangle, sigmoid, atan, optionally NAME:ALPHA with ALPHA > 0)"
        ))
    })?;
    let smoothing = match &a.label_smoothing {
        Some(v) => {
            let x: f32 = v.trim().parse().map_err(|_| {
                Error::input(format!(
                    "--label-smoothing: '{v}' (allowed: a number in [0, 1))"
                ))
            })?;
            if !(0.0..1.0).contains(&x) {
                return Err(Error::input(format!(
                    "--label-smoothing: {v} (allowed: a number in [0, 1))"
                )));
            }
            if loss == Loss::Mse {
                return Err(Error::input(
                    "--label-smoothing: applies to --loss ce only (mse has no smoothing)",
                ));
            }
            x
        }
        None => cfg.train.label_smoothing,
    };
    let (loss_name, smoothing) = match loss {
        Loss::CrossEntropy => ("ce", smoothing),
        Loss::Mse => ("mse", 0.0),
    };
    if !(0.0..1.0).contains(&smoothing) {
        return Err(Error::input(format!(
            "train.label_smoothing: {smoothing} (allowed: [0, 1))"
        )));
    }
    Ok(Some(GradSettings {
        loss,
        loss_name,
        smoothing,
        surrogate,
    }))
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let cfg = Config::load(None, a.config.as_deref(), &a.sets)?;
    let gs = grad_settings(&a, &cfg)?;
    let dataset = a.dataset.unwrap_or_else(|| cfg.data.dataset.clone());
    let t = a.timesteps.unwrap_or(cfg.space.timesteps);
    if t == 0 || t > 64 {
        return Err(Error::input(format!("--timesteps: {t} (allowed: 1..=64)")).into());
    }
    let width = a.width.unwrap_or(cfg.space.width);
    super::show::check_width(width)?;
    if a.batch == 0 {
        return Err(Error::input("--batch: 0 (allowed: >= 1)").into());
    }
    let seed = a.seed.unwrap_or(cfg.seed);
    let genome = super::read_genome(&a.genome)?;
    let opts = DataOptions {
        data_dir: a
            .data_dir
            .clone()
            .or_else(|| cfg.data.data_dir.as_ref().map(PathBuf::from)),
        timesteps: t,
        size: cfg.data.size,
        seed,
        ..DataOptions::default()
    };
    let ds = data::load(&dataset, &opts)?;
    let split = &ds.test;
    if a.batch > split.len() {
        return Err(Error::input(format!(
            "--batch: {} exceeds the {} test samples of {dataset} (allowed: 1..={})",
            a.batch,
            split.len(),
            split.len()
        ))
        .into());
    }
    let mut spec = ds.spec;
    spec.timesteps = t;
    let plan = super::show::compile(&a.genome, &genome, &spec, width, cfg.space.reduce_kernel)?;
    plan.check_workload(a.batch, t)
        .map_err(|e| Error::input(format!("--batch: {e}")))?;
    let idx: Vec<usize> = if a.stratified {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        split.stratified(a.batch, &mut rng)
    } else {
        (0..a.batch).collect()
    };
    let labels = split.labels_of(&idx);
    let input = split.batch(&idx, t);
    let device = Device::resolve(&a.device)?;
    if a.dump.is_some() && device.cpu_kernels().is_none() {
        return Err(Error::input("--dump: needs --device cpu (the CPU engine)").into());
    }
    if a.profile && !device.is_gpu() {
        return Err(Error::input(
            "--profile: times GPU kernels (allowed with --device gpu, auto on a GPU, or an adapter)",
        )
        .into());
    }
    let params = init_params(&plan, seed);
    let mut fo = ForwardOptions::new(t, a.batch);
    fo.record_spikes = a.dump.is_some();
    let mut profile = None;
    let (secs, rates, counts, device, out) = if a.dump.is_some() {
        // The dump holds every tensor and spike record of the CPU engine's pass: that pass is
        // the one timed and reported.
        let start = Instant::now();
        let out = forward(&plan, &params, &input, &fo);
        let secs = start.elapsed().as_secs_f64();
        let rates: Vec<f64> = out.firing_rates.iter().map(|&r| r as f64).collect();
        let counts = out.spike_counts.clone();
        (secs, rates, counts, device.describe(), Some(out))
    } else {
        let mut engine = Engine::new(device);
        let want = Outputs {
            firing_rates: true,
            ..Outputs::default()
        };
        // The first pass builds pipelines and buffers on a GPU; time the second.
        if engine.device().is_gpu() {
            engine.forward(&plan, seed, &input, a.batch, want)?;
        }
        let start = Instant::now();
        let g = engine.forward(&plan, seed, &input, a.batch, want)?;
        let secs = start.elapsed().as_secs_f64();
        if a.profile {
            engine.device().start_profile()?;
            let p = engine.forward(&plan, seed, &input, a.batch, want);
            let times = engine.device().take_profile();
            if p?.logits != g.logits {
                anyhow::bail!("--profile: the profiled pass gave other logits than the timed one");
            }
            profile = Some(times);
        }
        (
            secs,
            g.firing_rates,
            g.spike_counts,
            engine.device().describe(),
            None,
        )
    };
    println!(
        "{}: {dataset} test, {} {} images, T = {t}, C = {width}, seed {seed}; {} params",
        a.genome.display(),
        if a.stratified { "stratified" } else { "first" },
        a.batch,
        plan.num_params
    );
    let name_w = plan
        .populations
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(4)
        .max(10);
    println!(
        "{:>3}  {:<name_w$}  {:>8}  {:>8}",
        "#", "population", "neurons", "rate"
    );
    for (i, p) in plan.populations.iter().enumerate() {
        let tag = if i == plan.head_population {
            "  (head)"
        } else {
            ""
        };
        println!(
            "{i:>3}  {:<name_w$}  {:>8}  {:>8.4}{tag}",
            p.name, p.neurons, rates[i]
        );
    }
    let total: u64 = counts.iter().sum();
    let slots: usize = plan.populations.iter().map(|p| p.neurons).sum::<usize>() * t * a.batch;
    println!(
        "mean rate {:.4} over {} populations; silent populations: {}",
        total as f64 / slots.max(1) as f64,
        plan.populations.len(),
        counts.iter().filter(|&&c| c == 0).count()
    );
    println!(
        "forward: {:.3} s on {device}, {:.2} ms per image",
        secs,
        secs * 1e3 / a.batch as f64
    );
    if let Some(times) = &profile {
        print_profile(times);
    }
    if let (Some(dir), Some(out)) = (&a.dump, &out) {
        // The loss and gradients: the training forward pass (the executor's, bit for bit, which
        // the logits check) and its reverse pass, on the test samples' labels.
        let grads = match &gs {
            Some(g) => {
                let start = Instant::now();
                let tape = forward_tape(
                    &plan,
                    &params,
                    &input,
                    t,
                    a.batch,
                    fo.lif,
                    fo.eps,
                    Hooks::default(),
                );
                if tape.logits(&plan) != out.logits.as_slice() {
                    anyhow::bail!("--grads: the training forward pass differs from the reference");
                }
                let k = plan.spec.classes;
                let (loss, gl) = g.loss.eval(tape.logits(&plan), &labels, k, g.smoothing);
                let gp = backward(&plan, &params, tape, &gl, fo.lif, g.surrogate, fo.eps);
                let max = gp.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
                let (sg_name, alpha) = match g.surrogate {
                    Surrogate::Triangle { alpha } => ("triangle", alpha),
                    Surrogate::Sigmoid { alpha } => ("sigmoid", alpha),
                    Surrogate::Atan { alpha } => ("atan", alpha),
                };
                println!(
                    "gradients: {} loss {loss:.6} (surrogate {sg_name}:{alpha}{}), max |dL/dparam| {max:.3e}, {:.3} s",
                    g.loss_name,
                    if g.loss == Loss::CrossEntropy {
                        format!(", label smoothing {}", g.smoothing)
                    } else {
                        String::new()
                    },
                    start.elapsed().as_secs_f64()
                );
                Some((loss, gl, gp))
            }
            None => None,
        };
        let info = DumpInfo {
            dataset: &dataset,
            seed,
            indices: &idx,
            labels: &labels,
            forward_seconds: secs,
            grads: match (&gs, &grads) {
                (Some(g), Some((loss, gl, gp))) => Some(GradDump {
                    loss: g.loss_name,
                    label_smoothing: g.smoothing,
                    loss_value: *loss,
                    surrogate: g.surrogate,
                    labels_source: "dataset",
                    grad_logits: gl,
                    grads: gp,
                }),
                _ => None,
            },
        };
        dump::write(dir, &plan, &params, &input, &fo, out, &info)?;
        println!("dump: {}", dir.display());
    }
    Ok(())
}

/// The per-kernel GPU times of `--profile`, longest first.
fn print_profile(times: &[crate::engine::KernelTime]) {
    let total: f64 = times.iter().map(|k| k.seconds).sum();
    let dispatches: u64 = times.iter().map(|k| k.dispatches).sum();
    println!(
        "profile: {dispatches} dispatches, {:.3} ms of GPU time (timestamps around each dispatch)",
        total * 1e3
    );
    let w = times
        .iter()
        .map(|k| k.kernel.len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!(
        "{:<w$}  {:>10}  {:>10}  {:>6}",
        "kernel", "dispatches", "ms", "share"
    );
    for k in times {
        println!(
            "{:<w$}  {:>10}  {:>10.3}  {:>5.1}%",
            k.kernel,
            k.dispatches,
            k.seconds * 1e3,
            100.0 * k.seconds / total.max(f64::MIN_POSITIVE)
        );
    }
}
