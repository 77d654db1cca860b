//! Bounds of the search: which layouts, k, motifs and micro genes are allowed, and the flat
//! integer-vector encoding NSGA-II works on.

use super::{motifs, parse_layout, CellGene, CellKind, Genome, MicroVariant};
use rand::Rng;

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// The most time steps T of any network.
pub const MAX_TIMESTEPS: usize = 64;

/// Scales held fixed (for ablations). A frozen scale keeps its default: micro genes 0 (kernel 3,
/// template sign), the first allowed motif, the largest allowed k with the k immediately
/// preceding outputs as sources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Freeze {
    pub micro: bool,
    pub meso: bool,
    #[serde(rename = "macro")]
    pub macro_: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchSpace {
    /// Cell layout, N = normal cell with an evolved motif, R = reduction cell.
    pub layout: String,
    /// Allowed values of the global number of input slots k.
    pub ks: Vec<usize>,
    /// Allowed motifs, by name.
    pub motifs: Vec<String>,
    /// How micro genes are read: `kernel` (template signs) or `full` (E3, E5, I3, I5).
    pub micro: MicroVariant,
    /// Largest offset a slot may point back.
    pub max_offset: usize,
    /// Base width C (doubles at every reduction cell).
    pub width: usize,
    /// Time steps T.
    pub timesteps: usize,
    /// Kernel of the factorised reduce convolutions (1 or 3).
    pub reduce_kernel: usize,
    pub freeze: Freeze,
}

impl Default for SearchSpace {
    fn default() -> Self {
        SearchSpace {
            layout: "NRNRNR".into(),
            ks: vec![2, 3],
            motifs: motifs::names().iter().map(|s| s.to_string()).collect(),
            micro: MicroVariant::Kernel,
            max_offset: 4,
            width: 8,
            timesteps: 4,
            reduce_kernel: 1,
            freeze: Freeze::default(),
        }
    }
}

impl SearchSpace {
    /// Every problem, each naming the field and the allowed values.
    pub fn validate(&self) -> std::result::Result<(), Vec<String>> {
        let mut errs = Vec::new();
        match parse_layout(&self.layout) {
            Ok(kinds) => {
                if !kinds.contains(&CellKind::Normal) {
                    errs.push("layout: has no normal cell N (allowed: a string of N and R with at least one N)".into());
                }
            }
            Err(e) => errs.push(format!("layout: {e}")),
        }
        if self.ks.is_empty() {
            errs.push("ks: empty (allowed: a non-empty subset of 2, 3, 4)".into());
        }
        for &k in &self.ks {
            if !(2..=4).contains(&k) {
                errs.push(format!("ks: {k} (allowed: 2, 3, 4)"));
            }
        }
        if self.motifs.is_empty() {
            errs.push(format!(
                "motifs: empty (allowed: a non-empty subset of {})",
                motifs::names().join(", ")
            ));
        }
        for m in &self.motifs {
            if motifs::by_name(m).is_none() {
                errs.push(format!(
                    "motifs: '{m}' unknown (allowed: {})",
                    motifs::names().join(", ")
                ));
            }
        }
        if self.max_offset == 0 || self.max_offset > 16 {
            errs.push(format!("max_offset: {} (allowed: 1..=16)", self.max_offset));
        }
        if self.width == 0 || !self.width.is_multiple_of(2) || self.width > 512 {
            errs.push(format!(
                "width: {} (allowed: an even number 2..=512)",
                self.width
            ));
        }
        if self.timesteps == 0 || self.timesteps > MAX_TIMESTEPS {
            errs.push(format!(
                "timesteps: {} (allowed: 1..={MAX_TIMESTEPS})",
                self.timesteps
            ));
        }
        if self.reduce_kernel != 1 && self.reduce_kernel != 3 {
            errs.push(format!(
                "reduce_kernel: {} (allowed: 1, 3)",
                self.reduce_kernel
            ));
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }

    fn kinds(&self) -> Vec<CellKind> {
        parse_layout(&self.layout).expect("validated space")
    }

    pub fn normal_cells(&self) -> usize {
        self.kinds()
            .iter()
            .filter(|k| **k == CellKind::Normal)
            .count()
    }

    pub fn k_max(&self) -> usize {
        *self.ks.iter().max().expect("validated space")
    }

    fn motif_ids(&self) -> Vec<u8> {
        self.motifs
            .iter()
            .map(|m| motifs::by_name(m).expect("validated space").id)
            .collect()
    }

    /// Micro genes per cell: the most convolution edges any allowed motif has at the largest k.
    pub fn ops_per_cell(&self) -> usize {
        let k = self.k_max();
        self.motif_ids()
            .iter()
            .map(|&id| motifs::by_id(id).unwrap().graph(k).conv_edges())
            .max()
            .unwrap_or(0)
    }

    /// Genes per normal cell in the vector encoding: motif, k_max offsets, the micro genes.
    fn genes_per_cell(&self) -> usize {
        1 + self.k_max() + self.ops_per_cell()
    }

    /// Length of the integer vector.
    pub fn n_var(&self) -> usize {
        1 + self.normal_cells() * self.genes_per_cell()
    }

    /// Inclusive bounds of every gene (equal bounds for frozen scales).
    pub fn bounds(&self) -> (Vec<i64>, Vec<i64>) {
        let mut lo = Vec::with_capacity(self.n_var());
        let mut hi = Vec::with_capacity(self.n_var());
        let kmax_index = self.k_index_of(self.k_max()) as i64;
        if self.freeze.macro_ {
            lo.push(kmax_index);
            hi.push(kmax_index);
        } else {
            lo.push(0);
            hi.push(self.ks.len() as i64 - 1);
        }
        for _ in 0..self.normal_cells() {
            lo.push(0);
            hi.push(if self.freeze.meso {
                0
            } else {
                self.motifs.len() as i64 - 1
            });
            for s in 0..self.k_max() {
                if self.freeze.macro_ {
                    let d = (s + 1).min(self.max_offset) as i64;
                    lo.push(d);
                    hi.push(d);
                } else {
                    lo.push(1);
                    hi.push(self.max_offset as i64);
                }
            }
            for _ in 0..self.ops_per_cell() {
                lo.push(0);
                hi.push(if self.freeze.micro {
                    0
                } else {
                    self.micro.arity() as i64 - 1
                });
            }
        }
        (lo, hi)
    }

    fn k_index_of(&self, k: usize) -> usize {
        self.ks.iter().position(|&x| x == k).expect("k in space")
    }

    /// Decode an integer vector (within [`SearchSpace::bounds`]) into a genome.
    pub fn decode(&self, v: &[i64]) -> Result<Genome> {
        if v.len() != self.n_var() {
            return Err(Error::input(format!(
                "genome vector has {} genes, this space needs {}",
                v.len(),
                self.n_var()
            )));
        }
        let (lo, hi) = self.bounds();
        for (i, ((&x, &l), &h)) in v.iter().zip(&lo).zip(&hi).enumerate() {
            if x < l || x > h {
                return Err(Error::input(format!("gene {i} = {x} outside [{l}, {h}]")));
            }
        }
        let ids = self.motif_ids();
        let k = self.ks[v[0] as usize];
        let per = self.genes_per_cell();
        let kmax = self.k_max();
        let cells = (0..self.normal_cells())
            .map(|c| {
                let g = &v[1 + c * per..1 + (c + 1) * per];
                CellGene {
                    motif: ids[g[0] as usize],
                    sources: g[1..1 + kmax].iter().map(|&x| x as usize).collect(),
                    ops: g[1 + kmax..].iter().map(|&x| x as u8).collect(),
                }
            })
            .collect();
        let genome = Genome {
            layout: self.layout.clone(),
            micro: self.micro,
            k,
            cells,
        };
        genome.validate().map_err(|e| Error::input(e.join("; ")))?;
        Ok(genome)
    }

    /// Encode a genome of this space. Errors say which gene does not belong to the space.
    pub fn encode(&self, g: &Genome) -> Result<Vec<i64>> {
        self.check(g)?;
        let ids = self.motif_ids();
        let mut v = vec![self.k_index_of(g.k) as i64];
        for c in &g.cells {
            v.push(ids.iter().position(|&id| id == c.motif).unwrap() as i64);
            v.extend(c.sources.iter().map(|&s| s as i64));
            v.extend(c.ops.iter().map(|&o| o as i64));
        }
        Ok(v)
    }

    /// Does the genome belong to this space (layout, lengths, allowed values)?
    pub fn check(&self, g: &Genome) -> Result<()> {
        if g.layout != self.layout {
            return Err(Error::input(format!(
                "layout: genome has {}, the space {}",
                g.layout, self.layout
            )));
        }
        if g.micro != self.micro {
            return Err(Error::input(format!(
                "micro: genome has {:?}, the space {:?}",
                g.micro, self.micro
            )));
        }
        if !self.ks.contains(&g.k) {
            return Err(Error::input(format!(
                "k: {} not in the space's ks {:?}",
                g.k, self.ks
            )));
        }
        let ids = self.motif_ids();
        for (i, c) in g.cells.iter().enumerate() {
            if !ids.contains(&c.motif) {
                return Err(Error::input(format!(
                    "cells[{i}].motif: not among the space's motifs {:?}",
                    self.motifs
                )));
            }
            if c.sources.len() != self.k_max() {
                return Err(Error::input(format!(
                    "cells[{i}].sources: {} entries, the space has {}",
                    c.sources.len(),
                    self.k_max()
                )));
            }
            if let Some(o) = c.sources.iter().find(|&&o| o > self.max_offset) {
                return Err(Error::input(format!(
                    "cells[{i}].sources: offset {o} beyond max_offset {}",
                    self.max_offset
                )));
            }
            if c.ops.len() != self.ops_per_cell() {
                return Err(Error::input(format!(
                    "cells[{i}].ops: {} entries, the space has {}",
                    c.ops.len(),
                    self.ops_per_cell()
                )));
            }
        }
        Ok(())
    }

    /// A uniformly random integer vector within the bounds.
    pub fn sample_vector(&self, rng: &mut impl Rng) -> Vec<i64> {
        let (lo, hi) = self.bounds();
        lo.iter()
            .zip(&hi)
            .map(|(&l, &h)| rng.random_range(l..=h))
            .collect()
    }

    /// A random valid genome.
    pub fn sample(&self, rng: &mut impl Rng) -> Genome {
        self.decode(&self.sample_vector(rng))
            .expect("sampled within bounds")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn default_space_sizes() {
        let s = SearchSpace::default();
        s.validate().unwrap();
        assert_eq!(s.normal_cells(), 3);
        assert_eq!(s.ops_per_cell(), 12);
        assert_eq!(s.n_var(), 1 + 3 * (1 + 3 + 12));
    }

    #[test]
    fn frozen_scales_have_fixed_genes() {
        let s = SearchSpace {
            freeze: Freeze {
                micro: true,
                meso: false,
                macro_: true,
            },
            ..Default::default()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..50 {
            let g = s.sample(&mut rng);
            assert_eq!(g.k, 3);
            for c in &g.cells {
                assert_eq!(c.sources, vec![1, 2, 3]);
                assert!(c.ops.iter().all(|&o| o == 0));
            }
        }
    }

    #[test]
    fn validate_lists_every_problem() {
        let s = SearchSpace {
            layout: "NXR".into(),
            ks: vec![5],
            width: 7,
            ..Default::default()
        };
        let e = s.validate().unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
    }
}
