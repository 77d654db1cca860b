//! The columns of the ranking benchmark, typed: the registry's scores (their names and
//! directions are the registry's, [`crate::fitness::scores`]) and the benchmark's research
//! variants, each named and given its direction here, before any data exists. The CSV files,
//! the summary and the plots name a column by [`Column::name`].

use std::fmt;

use crate::fitness::scores::Direction;
use crate::fitness::ScoreId;

/// One score column of the ranking benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Column {
    /// A registry score, as the search's evaluator computes it (`short_train`: one short pass
    /// over a small subset; `grad_rms`: from `grad_norm` and `params` over the sample).
    Score(ScoreId),
    /// `rdm` averaged over 3 probe batches x 3 weight seeds.
    RdmAvg9,
    /// `hamming` minus `B ln P`, `P` the (population, step) pairs summed into its kernel.
    HammingNorm,
    /// `sahd` normalised as `hamming_norm`.
    SahdNorm,
    /// A ZiCo-style gradient statistic at initialisation through the surrogate.
    Zico,
    /// Over the sample: the mean of the ranks of `rdm` and `ln params`.
    RankRdmParams,
    /// Over the sample: the mean of the ranks of `-grad_rms` and `ln params` (live rows; dead
    /// ones get the sample's minimum minus one).
    RankGradParams,
    /// Over the sample: `rdm`'s residual after a least-squares line on `ln params`.
    RdmResid,
    /// Over the sample: `zico`'s residual after a least-squares line on `ln params`.
    ZicoResid,
    /// `--rescore`: the RDM of membrane potentials instead of spikes.
    RdmMem,
    /// `--rescore`: Spearman correlation of the membrane RDM with the label RDM.
    RdmMemRsa,
    /// `--rescore`: RSA against one briefly trained reference network.
    RsaRef,
}

/// Where a column's values come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Computed per architecture and stored in `proxy.csv`.
    Measured,
    /// Computed over the whole sample at summary time from the measured columns.
    Derived,
    /// Computed afterwards by `proxy-bench --rescore` into `extra_scores.csv`.
    Extra,
}

/// The columns of `proxy.csv`, in file order.
pub const MEASURED: [Column; 16] = [
    Column::Score(ScoreId::Rdm),
    Column::Score(ScoreId::RdmLate),
    Column::Score(ScoreId::RdmRate),
    Column::Score(ScoreId::RdmCorr),
    Column::Score(ScoreId::RdmRsa),
    Column::Score(ScoreId::Sahd),
    Column::Score(ScoreId::Hamming),
    Column::Score(ScoreId::FiringRate),
    Column::Score(ScoreId::Sops),
    Column::Score(ScoreId::Params),
    Column::RdmAvg9,
    Column::HammingNorm,
    Column::SahdNorm,
    Column::Zico,
    Column::Score(ScoreId::GradNorm),
    Column::Score(ScoreId::ShortTrain),
];

/// The columns derived over the sample at summary time, in table order.
pub const DERIVED: [Column; 5] = [
    Column::RankRdmParams,
    Column::RdmResid,
    Column::ZicoResid,
    Column::Score(ScoreId::GradRms),
    Column::RankGradParams,
];

/// The columns of `extra_scores.csv`, in file order.
pub const EXTRA: [Column; 3] = [Column::RdmMem, Column::RdmMemRsa, Column::RsaRef];

impl Column {
    /// Every column: measured, derived, extra.
    pub fn all() -> impl Iterator<Item = Column> {
        MEASURED.into_iter().chain(DERIVED).chain(EXTRA)
    }

    /// The name in files, tables and plots (a registry score's is the registry's).
    pub fn name(self) -> &'static str {
        match self {
            Column::Score(s) => s.name(),
            Column::RdmAvg9 => "rdm_avg9",
            Column::HammingNorm => "hamming_norm",
            Column::SahdNorm => "sahd_norm",
            Column::Zico => "zico",
            Column::RankRdmParams => "rank_rdm_params",
            Column::RankGradParams => "rank_grad_params",
            Column::RdmResid => "rdm_resid",
            Column::ZicoResid => "zico_resid",
            Column::RdmMem => "rdm_mem",
            Column::RdmMemRsa => "rdm_mem_rsa",
            Column::RsaRef => "rsa_ref",
        }
    }

    /// The column of `name`, if there is one.
    pub fn parse(name: &str) -> Option<Column> {
        Column::all().find(|c| c.name() == name)
    }

    /// Which way is better, fixed before any data: a registry score's is the registry's; the
    /// variants keep their source score's (`rdm`, `hamming`, `sahd`: higher), ZiCo's is its
    /// paper's (higher), the residuals read "higher `rdm` (or `zico`) for the size", and the
    /// combined ranks "higher: a better source score and a larger network".
    pub fn direction(self) -> Direction {
        match self {
            Column::Score(s) => s.direction(),
            Column::HammingNorm => ScoreId::Hamming.direction(),
            Column::SahdNorm => ScoreId::Sahd.direction(),
            Column::RdmAvg9 | Column::RdmResid | Column::RankRdmParams | Column::RdmMem => {
                ScoreId::Rdm.direction()
            }
            Column::RdmMemRsa => ScoreId::RdmRsa.direction(),
            Column::Zico | Column::ZicoResid | Column::RsaRef | Column::RankGradParams => {
                Direction::Maximize
            }
        }
    }

    pub fn stage(self) -> Stage {
        if DERIVED.contains(&self) {
            Stage::Derived
        } else if EXTRA.contains(&self) {
            Stage::Extra
        } else {
            Stage::Measured
        }
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every column has one name, no two share it, and each parses back; the registry's
    /// scores the benchmark lists keep the registry's names.
    #[test]
    fn names_are_unique_and_parse_back() {
        let all: Vec<Column> = Column::all().collect();
        assert_eq!(all.len(), MEASURED.len() + DERIVED.len() + EXTRA.len());
        let mut names: Vec<&str> = all.iter().map(|c| c.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len(), "a name is used twice");
        for c in all {
            assert_eq!(Column::parse(c.name()), Some(c));
        }
        assert_eq!(Column::Score(ScoreId::GradRms).name(), "grad_rms");
        assert_eq!(
            Column::Score(ScoreId::GradRms).direction(),
            Direction::Minimize
        );
        assert_eq!(Column::parse("nope"), None);
        assert_eq!(Column::Zico.stage(), Stage::Measured);
        assert_eq!(Column::ZicoResid.stage(), Stage::Derived);
        assert_eq!(Column::RsaRef.stage(), Stage::Extra);
    }
}
