//! msenas: a portable GPU engine (wgpu + WGSL) for brain-inspired multi-scale evolutionary
//! architecture search of spiking neural networks, with a CPU engine for machines without a GPU.
//!
//! Layers, each using only those before it:
//!
//! 1. [`genome`]: the search space (micro operations, meso motifs, macro wiring);
//! 2. [`plan`]: a genome compiled for a data shape (tensors, ops, parameters, populations);
//! 3. `cpu` and `gpu`: the two executors, internal to the crate (the CPU engine is the oracle
//!    of every WGSL kernel; no wgpu type leaves `gpu`; the `internals` feature makes both
//!    public for the kernel tests and benchmarks);
//! 4. [`engine`]: one [`engine::Device`] resolved once and one [`engine::Engine`] with the same
//!    calls on both;
//! 5. [`fitness`] (training-free scores, the scoring evaluator) and [`train`] (the epoch loop,
//!    checkpoints, evaluation), written against the engine;
//! 6. [`evolve`]: NSGA-II, the search loop and its run folder; it sees scores, never devices;
//! 7. [`benchmarks`]: the ranking benchmark of the scores against trained accuracy;
//! 8. the `msenas` command line.
//!
//! [`data`] is shared by every layer (as are the crate-internal plotting, statistics and file
//! helpers). Each layer owns its section of a run's configuration and checks its keys
//! ([`data::DataConfig`], [`train::TrainConfig`], [`evolve::config::SearchConfig`]; the whole
//! [`evolve::config::Config`] with presets, files and `--set`); [`config`] only gathers those
//! names for callers. Scores are named by the typed [`fitness::ScoreId`] (registry in
//! [`fitness::scores`]); their names are the strings of configs, run folders and the CLI.
//!
//! # Embed a forward pass (a GPU when there is one, else the CPU engine)
//!
//! ```
//! use msenas::engine::{Device, Engine, Outputs};
//! use msenas::genome::SearchSpace;
//! use msenas::plan::Plan;
//! use msenas::DataSpec;
//! use rand::SeedableRng;
//!
//! let mut engine = Engine::new(Device::resolve("auto")?);
//! let spec = DataSpec { in_ch: 1, height: 8, width: 8, classes: 4, timesteps: 2, event: false };
//! let genome = SearchSpace::default().sample(&mut rand::rngs::StdRng::seed_from_u64(1));
//! let plan = Plan::compile(&genome, &spec, 4, 1)?;
//! let batch = 3;
//! let input = vec![0.5f32; batch * 64]; // [B, C, H, W], repeated over the T steps
//! let out = engine.forward(&plan, 7, &input, batch, Outputs::scores())?;
//! println!("{}: logits {:?}", engine.device().describe(), &out.logits[..4]);
//! assert_eq!(out.stats.len(), plan.populations.len());
//! # Ok::<(), msenas::Error>(())
//! ```
//!
//! # Score a population without training
//!
//! ```
//! use msenas::engine::{Device, ProbeBatch};
//! use msenas::fitness::evaluate::{make_evaluator, EvalSettings, Probe, Status};
//! use msenas::fitness::ScoreId;
//! use msenas::genome::{Genome, SearchSpace};
//! use msenas::DataSpec;
//! use rand::SeedableRng;
//!
//! let spec = DataSpec { in_ch: 1, height: 8, width: 8, classes: 2, timesteps: 2, event: false };
//! let b = 8;
//! let probe = Probe {
//!     timesteps: 2,
//!     batches: vec![ProbeBatch {
//!         indices: (0..b).collect(),
//!         labels: (0..b as u16).map(|i| i % 2).collect(),
//!         input: (0..b * 64).map(|i| ((i * 7919) % 13) as f32 / 13.0).collect(),
//!     }],
//! };
//! let settings = EvalSettings {
//!     spec,
//!     width: 4,
//!     reduce_kernel: 1,
//!     seed: 1,
//!     weight_seeds: 1,
//!     scores: vec![ScoreId::GradRms, ScoreId::Rdm, ScoreId::Params],
//! };
//! let mut evaluator = make_evaluator(&Device::resolve("auto")?, settings, probe)?;
//! let space = SearchSpace::default();
//! let mut rng = rand::rngs::StdRng::seed_from_u64(5);
//! let population: Vec<Genome> = (0..4).map(|_| space.sample(&mut rng)).collect();
//! for e in evaluator.evaluate(&population) {
//!     println!("{} {:?} grad_rms {:.3}", e.key, e.status, e.score(ScoreId::GradRms));
//!     assert!(e.status != Status::Ok || e.score(ScoreId::Params) > 0.0);
//! }
//! # Ok::<(), msenas::Error>(())
//! ```
//!
//! # Train a genome
//!
//! ```
//! use msenas::train::TrainConfig;
//! use msenas::data::{self, DataOptions};
//! use msenas::engine::Device;
//! use msenas::genome::SearchSpace;
//! use msenas::train::{Network, Silent, TrainJob};
//! use rand::SeedableRng;
//!
//! // The bundled handwritten digits, resized to 8x8, two time steps.
//! let opts = DataOptions { timesteps: 2, size: Some(8), ..Default::default() };
//! let ds = data::load("digits", &opts)?;
//! let genome = SearchSpace::default().sample(&mut rand::rngs::StdRng::seed_from_u64(3));
//! let net = Network::from_genome(genome, &ds.spec, 4, 1)?;
//! let cfg = TrainConfig { epochs: 1, batch_size: 64, ..TrainConfig::default() };
//! let dir = std::env::temp_dir().join(format!("msenas-doc-train-{}", std::process::id()));
//! let result = TrainJob::new(&net, &ds, &cfg, 1, &dir).run(&Device::cpu(), &mut Silent)?;
//! println!("test accuracy {:.1}%", 100.0 * result.test_acc);
//! assert!(dir.join("model.ckpt").is_file() && result.test_acc.is_finite());
//! std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), msenas::Error>(())
//! ```

pub mod benchmarks;
#[doc(hidden)]
pub mod cli;
pub mod config;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod cpu;
#[cfg(not(feature = "internals"))]
pub(crate) mod cpu;
pub mod data;
pub mod dump;
pub mod engine;
pub mod error;
pub mod evolve;
pub mod export;
pub mod fitness;
pub(crate) mod fsio;
pub mod genome;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod gpu;
#[cfg(not(feature = "internals"))]
pub(crate) mod gpu;
pub mod plan;
pub(crate) mod report;
pub mod spec;
pub(crate) mod stats;
pub mod train;

pub use error::{Error, Result};
pub use spec::DataSpec;
