//! Training-free fitness: the RDM family and its rivals (SPEC §2.3).
//!
//! [`spikes`] turns bit-packed spikes into integer sufficient statistics (the CPU twin of the
//! GPU reduction); [`scores`] turns those statistics into scores. Nothing here knows how the
//! spikes were produced.

pub mod scores;
pub mod spikes;

#[cfg(test)]
mod fixture_tests;

pub use scores::{
    compute, is_dead, rdm_matrix, registry, score_def, Direction, ScoreDef, ScoreInput,
    ScoreOutcome, DEFAULT_LATE, WORST_COST, WORST_LOGDET,
};
pub use spikes::{population_stats, words_for, PopulationSpikes, PopulationStats};
