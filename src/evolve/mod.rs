//! Evolutionary search on the host: the NSGA-II toolkit, candidate evaluation, the search loop
//! and its run folder.

pub mod config;
pub mod nsga2;
pub mod run_dir;
pub mod search;
pub mod short_train;

pub use crate::fitness::evaluate::{
    make_evaluator, EngineEvaluator, EvalSettings, Evaluation, Evaluator, Probe, Status,
};
pub use run_dir::{Record, RunDir};
pub use search::{Observer, Quiet, SearchOutcome};
