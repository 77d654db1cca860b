//! Training-free fitness: the RDM family and its rivals (SPEC §2.3).
//!
//! [`spikes`] turns bit-packed spikes into integer sufficient statistics (the CPU twin of the
//! GPU reduction); [`scores`] turns those statistics into scores. Nothing here knows how the
//! spikes were produced.

pub mod evaluate;
pub mod gradient;
pub mod scores;
pub use crate::cpu::spikes;

#[cfg(test)]
mod fixture_tests;

pub use crate::cpu::spikes::{population_stats, words_for, PopulationSpikes, PopulationStats};
pub use scores::{
    compute, is_dead, rdm_matrix, registry, score_def, Direction, ScoreDef, ScoreId, ScoreInput,
    ScoreKind, ScoreOutcome, DEFAULT_LATE, WORST_COST, WORST_LOGDET,
};
