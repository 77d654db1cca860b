//! The meso scale: a registry of circuit motifs (SPEC §1.3).
//!
//! A motif is a small graph over `k` input nodes (0..k) and a few computed nodes. Each computed
//! node is the sum of its incoming edges; feedback edges run from a later node back to an earlier
//! one and update the target's state right after their source is computed, within the same time
//! step. Inhibition follows Dale's principle: an interneuron is driven by excitation and its
//! outgoing edges are inhibitory. Adding a motif is one entry in [`REGISTRY`].

/// The template's sign of an edge (the micro gene picks the kernel; with `micro = "full"` it also
/// picks the sign).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EdgeKind {
    Excitatory,
    Inhibitory,
    /// A real-valued shortcut with no neuron and no micro gene.
    Identity,
}

/// One edge of a motif graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    pub kind: EdgeKind,
    /// A feedback edge: `to < from`; applied as `state[to] += op(state[from])` right after node
    /// `from` is computed.
    pub feedback: bool,
}

/// A motif instantiated for `k` inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MotifGraph {
    pub k: usize,
    /// Total nodes, inputs included.
    pub nodes: usize,
    /// Edges in evaluation order: forward edges grouped by target node in increasing order; a
    /// feedback edge follows the forward edges of its source node. The i-th edge that is not
    /// `Identity` owns micro gene i.
    pub edges: Vec<Edge>,
    /// Nodes concatenated into the cell output. Empty for the silent motif, whose output is the
    /// cell's most recent input.
    pub outputs: Vec<usize>,
}

impl MotifGraph {
    /// Number of edges that carry a micro gene (convolution edges).
    pub fn conv_edges(&self) -> usize {
        self.edges
            .iter()
            .filter(|e| e.kind != EdgeKind::Identity)
            .count()
    }
    pub fn is_silent(&self) -> bool {
        self.outputs.is_empty()
    }
}

/// A registry entry.
pub struct MotifDef {
    pub id: u8,
    pub name: &'static str,
    pub description: &'static str,
    build: fn(usize) -> MotifGraph,
}

impl MotifDef {
    pub fn graph(&self, k: usize) -> MotifGraph {
        (self.build)(k)
    }
}

/// Incremental builder used by the templates below.
struct G {
    k: usize,
    next: usize,
    edges: Vec<Edge>,
}

impl G {
    fn new(k: usize) -> Self {
        G {
            k,
            next: k,
            edges: Vec::new(),
        }
    }
    /// A new node fed by the given (source, kind) edges.
    fn node(&mut self, inputs: &[(usize, EdgeKind)]) -> usize {
        let id = self.next;
        self.next += 1;
        for &(from, kind) in inputs {
            self.edges.push(Edge {
                from,
                to: id,
                kind,
                feedback: false,
            });
        }
        id
    }
    /// A node fed excitatorily by every cell input.
    fn all_inputs(&mut self) -> usize {
        let ins: Vec<_> = (0..self.k).map(|i| (i, EdgeKind::Excitatory)).collect();
        self.node(&ins)
    }
    fn feedback(&mut self, from: usize, to: usize, kind: EdgeKind) {
        self.edges.push(Edge {
            from,
            to,
            kind,
            feedback: true,
        });
    }
    fn finish(self, outputs: Vec<usize>) -> MotifGraph {
        MotifGraph {
            k: self.k,
            nodes: self.next,
            edges: self.edges,
            outputs,
        }
    }
}

use EdgeKind::{Excitatory as E, Inhibitory as I};

fn silent(k: usize) -> MotifGraph {
    G::new(k).finish(vec![])
}

fn feedforward_excitation(k: usize) -> MotifGraph {
    let mut g = G::new(k);
    let a = g.all_inputs();
    let b = g.node(&[(a, E)]);
    g.finish(vec![a, b])
}

fn feedforward_inhibition(k: usize) -> MotifGraph {
    let mut g = G::new(k);
    let a = g.all_inputs();
    let inter = g.node(&[(a, E)]);
    let c = g.node(&[(a, E), (inter, I)]);
    g.finish(vec![a, inter, c])
}

fn recurrent_excitation(k: usize) -> MotifGraph {
    let mut g = G::new(k);
    let a = g.all_inputs();
    let b = g.node(&[(a, E)]);
    g.feedback(b, a, E);
    let c = g.node(&[(a, E)]);
    g.finish(vec![a, b, c])
}

fn lateral_inhibition(k: usize) -> MotifGraph {
    let mut g = G::new(k);
    let a = g.all_inputs();
    let b = g.all_inputs();
    let inter = g.node(&[(a, E), (b, E)]);
    let d = g.node(&[(a, E), (inter, I)]);
    let e = g.node(&[(b, E), (inter, I)]);
    g.finish(vec![a, b, inter, d, e])
}

fn feedback_inhibition(k: usize) -> MotifGraph {
    let mut g = G::new(k);
    let a = g.all_inputs();
    let inter = g.node(&[(a, E)]);
    g.feedback(inter, a, I);
    g.finish(vec![a, inter])
}

/// Every motif msenas knows, by id.
pub static REGISTRY: &[MotifDef] = &[
    MotifDef {
        id: 0,
        name: "silent",
        description: "module removed: passes the cell's most recent input through",
        build: silent,
    },
    MotifDef {
        id: 1,
        name: "feedforward_excitation",
        description: "n3 = E(inputs); n4 = E(n3); out n3, n4",
        build: feedforward_excitation,
    },
    MotifDef {
        id: 2,
        name: "feedforward_inhibition",
        description: "n3 = E(inputs); n4 = E(n3) interneuron; n5 = E(n3) + I(n4); out n3..n5",
        build: feedforward_inhibition,
    },
    MotifDef {
        id: 3,
        name: "recurrent_excitation",
        description: "n3 = E(inputs); n4 = E(n3); feedback n4 -> n3 via E; n5 = E(n3); out n3..n5",
        build: recurrent_excitation,
    },
    MotifDef {
        id: 4,
        name: "lateral_inhibition",
        description: "n3, n4 = E(inputs); n5 = E(n3) + E(n4); n6 = E(n3) + I(n5); n7 = E(n4) + I(n5); out n3..n7",
        build: lateral_inhibition,
    },
    MotifDef {
        id: 5,
        name: "feedback_inhibition",
        description: "n3 = E(inputs); n4 = E(n3) interneuron; feedback n4 -> n3 via I; out n3, n4",
        build: feedback_inhibition,
    },
];

pub fn by_name(name: &str) -> Option<&'static MotifDef> {
    REGISTRY.iter().find(|m| m.name == name)
}

pub fn by_id(id: u8) -> Option<&'static MotifDef> {
    REGISTRY.iter().find(|m| m.id == id)
}

pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|m| m.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k3_edge_counts_follow_the_table() {
        let counts: Vec<usize> = REGISTRY.iter().map(|m| m.graph(3).conv_edges()).collect();
        assert_eq!(counts, vec![0, 4, 6, 6, 12, 5]);
        let counts2: Vec<usize> = REGISTRY.iter().map(|m| m.graph(2).conv_edges()).collect();
        assert_eq!(counts2, vec![0, 3, 5, 5, 10, 4]);
    }

    #[test]
    fn dale_principle_interneurons_only_inhibit() {
        for m in REGISTRY {
            let g = m.graph(3);
            for e in &g.edges {
                if e.kind == EdgeKind::Inhibitory {
                    // The source of an inhibitory edge is driven only by excitation.
                    assert!(g
                        .edges
                        .iter()
                        .filter(|d| d.to == e.from && !d.feedback)
                        .all(|d| d.kind == EdgeKind::Excitatory));
                }
            }
        }
    }

    #[test]
    fn forward_edges_point_forward_and_feedback_backward() {
        for m in REGISTRY {
            for k in [2, 3, 4] {
                let g = m.graph(k);
                for e in &g.edges {
                    assert!(e.to < g.nodes && e.from < g.nodes);
                    assert_eq!(e.feedback, e.to < e.from, "{} {:?}", m.name, e);
                    assert!(e.to >= k, "inputs have no incoming edges");
                }
            }
        }
    }
}
