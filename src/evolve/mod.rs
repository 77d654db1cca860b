//! Evolutionary search on the host: the NSGA-II toolkit, candidate evaluation, the search loop
//! and its run folder.

pub mod evaluate;
pub mod gpu_backend;
pub mod gradient;
pub mod nsga2;
pub mod proxy;
pub mod proxy_extra;
pub mod run_dir;
pub mod search;
pub mod short_train;

pub use evaluate::{
    make_evaluator, CpuEvaluator, EvalSettings, Evaluation, Evaluator, Probe, ProbeBatch, Status,
};
pub use run_dir::{Record, RunDir};
pub use search::{Observer, Quiet, SearchOutcome};
