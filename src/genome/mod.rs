//! The multi-scale genome (SPEC §1): pure data, no GPU types.
//!
//! - micro: one gene per convolution edge of a cell's motif (kernel size, and with
//!   `micro = "full"` also the sign);
//! - meso: one motif id per normal cell;
//! - macro: the number of input slots `k` (global) and, per normal cell and slot, the offset back
//!   to the source output (1 = the output just before the cell).
//!
//! Outputs are numbered 0 = stem, i + 1 = cell i of the layout. An offset that reaches past the
//! stem reads the stem. A genome is immutable once validated; [`Genome::canonical_key`] is equal
//! for genomes that build the same network (unused genes, unreachable cells and offsets clamped
//! to the stem do not change it).

pub mod motifs;
mod space;

pub use motifs::{EdgeKind, MotifGraph};
pub use space::{Freeze, SearchSpace, MAX_TIMESTEPS};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How micro genes are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MicroVariant {
    /// The gene picks the kernel size (3 or 5); the sign comes from the motif template.
    Kernel,
    /// The gene picks one of E3, E5, I3, I5.
    Full,
}

impl MicroVariant {
    /// Number of values a micro gene takes.
    pub fn arity(self) -> u8 {
        match self {
            MicroVariant::Kernel => 2,
            MicroVariant::Full => 4,
        }
    }
    /// Names of the gene values as written in genome JSON.
    pub fn value_names(self) -> &'static [&'static str] {
        match self {
            MicroVariant::Kernel => &["k3", "k5"],
            MicroVariant::Full => &["E3", "E5", "I3", "I5"],
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "kernel" => Some(MicroVariant::Kernel),
            "full" => Some(MicroVariant::Full),
            _ => None,
        }
    }
}

/// A cell of the layout string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CellKind {
    Normal,
    Reduction,
}

/// Parse a layout string such as `NRNRNR`.
pub fn parse_layout(layout: &str) -> Result<Vec<CellKind>> {
    if layout.is_empty() {
        return Err(Error::input(
            "layout is empty (allowed: a string of N and R, e.g. NRNRNR)",
        ));
    }
    layout
        .chars()
        .map(|c| match c {
            'N' => Ok(CellKind::Normal),
            'R' => Ok(CellKind::Reduction),
            other => Err(Error::input(format!(
                "layout has '{other}' (allowed: N = normal cell, R = reduction cell, e.g. NRNRNR)"
            ))),
        })
        .collect()
}

/// The operation of one convolution edge, resolved from its micro gene and the template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EdgeOp {
    pub kernel: usize,
    pub inhibitory: bool,
}

impl EdgeOp {
    pub fn name(self) -> String {
        format!("{}{}", if self.inhibitory { "I" } else { "E" }, self.kernel)
    }
}

/// Genes of one normal cell.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CellGene {
    /// Motif id in [`motifs::REGISTRY`].
    pub motif: u8,
    /// Offset back to the source, one per slot (length = the largest k of the space).
    pub sources: Vec<usize>,
    /// Micro genes (length = the most convolution edges any allowed motif has).
    pub ops: Vec<u8>,
}

/// A validated architecture.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Genome {
    pub layout: String,
    pub micro: MicroVariant,
    pub k: usize,
    pub cells: Vec<CellGene>,
}

/// The resolved structure of one layout cell, as the plan compiler needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolvedCell {
    Reduction,
    Normal {
        motif: u8,
        graph: MotifGraph,
        /// Output index read by each of the k slots (0 = stem).
        sources: Vec<usize>,
        /// One op per convolution edge of the graph, in edge order.
        ops: Vec<EdgeOp>,
    },
    /// A silent cell: its output is output `source`, passed through.
    Silent {
        source: usize,
    },
}

impl Genome {
    pub fn layout_kinds(&self) -> Vec<CellKind> {
        parse_layout(&self.layout).expect("validated layout")
    }

    /// Check internal consistency; every problem is listed with its field and the allowed values.
    pub fn validate(&self) -> std::result::Result<(), Vec<String>> {
        let mut errs = Vec::new();
        let kinds = match parse_layout(&self.layout) {
            Ok(k) => k,
            Err(e) => return Err(vec![format!("layout: {e}")]),
        };
        let normals = kinds.iter().filter(|k| **k == CellKind::Normal).count();
        if self.cells.len() != normals {
            errs.push(format!(
                "cells: {} given, but layout {} has {} normal cells (one entry per N)",
                self.cells.len(),
                self.layout,
                normals
            ));
        }
        if !(2..=4).contains(&self.k) {
            errs.push(format!("k: {} (allowed: 2, 3 or 4)", self.k));
        }
        for (i, c) in self.cells.iter().enumerate() {
            let Some(def) = motifs::by_id(c.motif) else {
                errs.push(format!(
                    "cells[{i}].motif: id {} unknown (allowed: {})",
                    c.motif,
                    motifs::names().join(", ")
                ));
                continue;
            };
            if c.sources.len() < self.k {
                errs.push(format!(
                    "cells[{i}].sources: {} entries, need at least k = {}",
                    c.sources.len(),
                    self.k
                ));
            }
            for (s, &o) in c.sources.iter().enumerate() {
                if o == 0 {
                    errs.push(format!("cells[{i}].sources[{s}]: 0 (allowed: an offset >= 1 back to an earlier output)"));
                }
            }
            let need = def.graph(self.k.clamp(2, 4)).conv_edges();
            if c.ops.len() < need {
                errs.push(format!(
                    "cells[{i}].ops: {} entries, motif {} with k = {} needs {}",
                    c.ops.len(),
                    def.name,
                    self.k,
                    need
                ));
            }
            for (e, &g) in c.ops.iter().enumerate() {
                if g >= self.micro.arity() {
                    errs.push(format!(
                        "cells[{i}].ops[{e}]: value {g} out of range (allowed: {})",
                        self.micro.value_names().join(", ")
                    ));
                }
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }

    /// Resolve every layout cell: effective sources (clamped to the stem), ops with their signs,
    /// silent cells as pass-throughs. Cells whose output cannot reach the head are resolved too;
    /// [`Genome::reachable`] says which ones matter.
    pub fn resolve(&self) -> Vec<ResolvedCell> {
        let mut out = Vec::new();
        let mut normal = 0;
        for (pos, kind) in self.layout_kinds().into_iter().enumerate() {
            // this cell's output index is pos + 1; available sources are 0..=pos
            match kind {
                CellKind::Reduction => out.push(ResolvedCell::Reduction),
                CellKind::Normal => {
                    let c = &self.cells[normal];
                    normal += 1;
                    let sources: Vec<usize> = c.sources[..self.k]
                        .iter()
                        .map(|&o| (pos + 1).saturating_sub(o))
                        .collect();
                    let def = motifs::by_id(c.motif).expect("validated motif");
                    let graph = def.graph(self.k);
                    if graph.is_silent() {
                        let most_recent = *sources.iter().max().expect("k >= 2");
                        out.push(ResolvedCell::Silent {
                            source: most_recent,
                        });
                        continue;
                    }
                    let ops = graph
                        .edges
                        .iter()
                        .filter(|e| e.kind != EdgeKind::Identity)
                        .zip(&c.ops)
                        .map(|(e, &g)| match self.micro {
                            MicroVariant::Kernel => EdgeOp {
                                kernel: if g == 0 { 3 } else { 5 },
                                inhibitory: e.kind == EdgeKind::Inhibitory,
                            },
                            MicroVariant::Full => EdgeOp {
                                kernel: if g % 2 == 0 { 3 } else { 5 },
                                inhibitory: g >= 2,
                            },
                        })
                        .collect();
                    out.push(ResolvedCell::Normal {
                        motif: c.motif,
                        graph,
                        sources,
                        ops,
                    });
                }
            }
        }
        out
    }

    /// Which outputs (0 = stem, i + 1 = cell i) the head depends on.
    pub fn reachable(&self) -> Vec<bool> {
        let cells = self.resolve();
        let n = cells.len();
        let mut live = vec![false; n + 1];
        live[n] = true;
        for pos in (0..n).rev() {
            if !live[pos + 1] {
                continue;
            }
            match &cells[pos] {
                ResolvedCell::Reduction => live[pos] = true,
                ResolvedCell::Silent { source } => live[*source] = true,
                ResolvedCell::Normal { sources, .. } => {
                    for &s in sources {
                        live[s] = true;
                    }
                }
            }
        }
        live
    }

    /// The motif ids of the normal cells the head depends on that compute something (not
    /// silent), in layout order: the active cells on the head's path.
    pub fn active_motifs(&self) -> Vec<u8> {
        let live = self.reachable();
        self.resolve()
            .iter()
            .enumerate()
            .filter_map(|(pos, c)| match c {
                ResolvedCell::Normal { motif, .. } if live[pos + 1] => Some(*motif),
                _ => None,
            })
            .collect()
    }

    /// A string equal for genomes that build the same network.
    pub fn canonical_key(&self) -> String {
        let cells = self.resolve();
        let live = self.reachable();
        let mut key = format!("{}|k{}", self.layout, self.k);
        for (pos, c) in cells.iter().enumerate() {
            key.push('|');
            if !live[pos + 1] {
                key.push('x');
                continue;
            }
            match c {
                ResolvedCell::Reduction => key.push('R'),
                ResolvedCell::Silent { source } => key.push_str(&format!("S{source}")),
                ResolvedCell::Normal {
                    motif,
                    sources,
                    ops,
                    ..
                } => {
                    key.push_str(&format!("m{motif}<"));
                    let s: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
                    key.push_str(&s.join(","));
                    key.push('>');
                    for op in ops {
                        key.push_str(&op.name());
                    }
                }
            }
        }
        key
    }

    /// 64-bit hash of the canonical key (FNV-1a), the weight generator's key.
    pub fn key_hash(&self) -> u64 {
        fnv1a64(self.canonical_key().as_bytes())
    }

    /// Parse and validate genome JSON. Errors name the field and the allowed values.
    pub fn from_json(text: &str) -> Result<Genome> {
        let raw: GenomeJson =
            serde_json::from_str(text).map_err(|e| Error::input(e.to_string()))?;
        raw.into_genome()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&GenomeJson::from(self)).expect("genome serialises")
    }
}

/// FNV-1a, 64 bit.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The JSON form: motif and op names instead of numbers, so files are readable and checked.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenomeJson {
    layout: String,
    micro: String,
    k: usize,
    cells: Vec<CellJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CellJson {
    motif: String,
    sources: Vec<usize>,
    ops: Vec<String>,
}

impl From<&Genome> for GenomeJson {
    fn from(g: &Genome) -> Self {
        GenomeJson {
            layout: g.layout.clone(),
            micro: match g.micro {
                MicroVariant::Kernel => "kernel".into(),
                MicroVariant::Full => "full".into(),
            },
            k: g.k,
            cells: g
                .cells
                .iter()
                .map(|c| CellJson {
                    motif: motifs::by_id(c.motif)
                        .map(|m| m.name.to_string())
                        .unwrap_or_default(),
                    sources: c.sources.clone(),
                    ops: c
                        .ops
                        .iter()
                        .map(|&o| g.micro.value_names()[o as usize].to_string())
                        .collect(),
                })
                .collect(),
        }
    }
}

impl GenomeJson {
    fn into_genome(self) -> Result<Genome> {
        let micro = MicroVariant::parse(&self.micro).ok_or_else(|| {
            Error::input(format!(
                "micro: '{}' unknown (allowed: kernel, full)",
                self.micro
            ))
        })?;
        let mut cells = Vec::new();
        for (i, c) in self.cells.into_iter().enumerate() {
            let def = motifs::by_name(&c.motif).ok_or_else(|| {
                Error::input(format!(
                    "cells[{i}].motif: '{}' unknown (allowed: {})",
                    c.motif,
                    motifs::names().join(", ")
                ))
            })?;
            let ops = c
                .ops
                .iter()
                .enumerate()
                .map(|(e, name)| {
                    micro.value_names().iter().position(|v| v == name).map(|p| p as u8).ok_or_else(|| {
                        Error::input(format!(
                            "cells[{i}].ops[{e}]: '{name}' not allowed with micro = {} (allowed: {})",
                            self.micro,
                            micro.value_names().join(", ")
                        ))
                    })
                })
                .collect::<Result<Vec<u8>>>()?;
            cells.push(CellGene {
                motif: def.id,
                sources: c.sources,
                ops,
            });
        }
        let g = Genome {
            layout: self.layout,
            micro,
            k: self.k,
            cells,
        };
        g.validate().map_err(|e| Error::input(e.join("; ")))?;
        Ok(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn genome(motif: u8, sources: [usize; 3]) -> Genome {
        Genome {
            layout: "NRN".into(),
            micro: MicroVariant::Kernel,
            k: 3,
            cells: vec![
                CellGene {
                    motif,
                    sources: sources.to_vec(),
                    ops: vec![0; 12],
                },
                CellGene {
                    motif: 1,
                    sources: vec![1, 2, 3],
                    ops: vec![1; 12],
                },
            ],
        }
    }

    /// An `NNN` genome of three normal cells, each `(motif, sources)` with kernel-3 micro genes.
    fn nnn(k: usize, cells: [(u8, [usize; 3]); 3]) -> Genome {
        Genome {
            layout: "NNN".into(),
            micro: MicroVariant::Kernel,
            k,
            cells: cells
                .iter()
                .map(|&(motif, sources)| CellGene {
                    motif,
                    sources: sources.to_vec(),
                    ops: vec![0; 12],
                })
                .collect(),
        }
    }

    #[test]
    fn sources_clamp_to_the_stem() {
        let g = genome(1, [1, 2, 3]);
        match &g.resolve()[0] {
            ResolvedCell::Normal { sources, .. } => assert_eq!(sources, &vec![0, 0, 0]),
            other => panic!("{other:?}"),
        }
        match &g.resolve()[2] {
            ResolvedCell::Normal { sources, .. } => assert_eq!(sources, &vec![2, 1, 0]),
            other => panic!("{other:?}"),
        }
        // clamping means offsets past the stem give the same key
        assert_eq!(g.canonical_key(), genome(1, [3, 1, 2]).canonical_key());
    }

    #[test]
    fn silent_cell_passes_most_recent_input() {
        let g = nnn(2, [(1, [1, 2, 3]), (0, [2, 1, 3]), (1, [1, 2, 3])]);
        assert_eq!(g.resolve()[1], ResolvedCell::Silent { source: 1 });
    }

    #[test]
    fn json_round_trip_and_errors() {
        let g = genome(4, [1, 2, 3]);
        let back = Genome::from_json(&g.to_json()).unwrap();
        assert_eq!(g, back);
        let bad = g
            .to_json()
            .replace("lateral_inhibition", "lateral_excitement");
        let e = Genome::from_json(&bad).unwrap_err();
        let e = e.to_string();
        assert!(e.contains("cells[0].motif") && e.contains("allowed"), "{e}");
    }

    #[test]
    fn active_motifs_skip_silent_and_unreachable_cells() {
        // NNN: cell 0 feedforward excitation reading the stem, cell 1 silent, cell 2
        // lateral inhibition reading cell 1 only (which passes cell 0 through).
        let silent = motifs::by_name("silent").unwrap().id;
        let mut g = nnn(3, [(1, [1, 1, 1]), (silent, [1, 1, 1]), (4, [1, 1, 1])]);
        assert_eq!(g.active_motifs(), vec![1, 4]);
        // Cell 2 reading only the stem leaves cells 0 and 1 off the head's path.
        g.cells[2].sources = vec![3, 3, 3];
        assert_eq!(g.active_motifs(), vec![4]);
    }
}
