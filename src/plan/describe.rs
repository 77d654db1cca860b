//! A genome compiled for an input, in words (cells, motifs, edges, wiring, parameter count)
//! and as a PNG drawing: what `msenas show` prints and `msenas run` draws.

use super::Plan;
use crate::genome::{motifs, CellKind, EdgeKind, Genome, ResolvedCell};
use crate::report::plot::{graph, GraphEdge, GraphNode};
use std::fmt::Write as _;
use std::path::Path;

/// Name of output `i` (0 = stem, i = cell i).
fn output_name(i: usize) -> String {
    if i == 0 {
        "stem".into()
    } else {
        format!("cell{i}")
    }
}

fn node_name(k: usize, n: usize) -> String {
    if n < k {
        format!("in{n}")
    } else {
        format!("n{n}")
    }
}

/// Parameters whose name starts with `prefix.`.
fn params_under(plan: &Plan, prefix: &str) -> usize {
    let p = format!("{prefix}.");
    plan.params
        .iter()
        .filter(|d| d.name.starts_with(&p))
        .map(|d| d.len)
        .sum()
}

/// The text description.
pub fn describe(genome: &Genome, plan: &Plan, dataset: &str) -> String {
    let mut s = String::new();
    let spec = &plan.spec;
    let cells = genome.resolve();
    let live = genome.reachable();
    let kinds = genome.layout_kinds();
    let _ = writeln!(
        s,
        "genome: layout {}, k = {}, micro = {}",
        genome.layout,
        genome.k,
        genome.micro.value_names().join("/")
    );
    let _ = writeln!(s, "key: {}", plan.key);
    let _ = writeln!(
        s,
        "input: {dataset} {}x{}x{}, {} classes; width C = {}, reduce kernel {}",
        spec.in_ch, spec.height, spec.width, spec.classes, plan.width, plan.reduce_kernel
    );
    let _ = writeln!(
        s,
        "stem: conv3x3 {} -> {} + BN (no neuron), {}x{}; {} params",
        spec.in_ch,
        3 * plan.width,
        spec.height,
        spec.width,
        params_under(plan, "stem")
    );
    let mut c = plan.width;
    let mut h = spec.height;
    let mut w = spec.width;
    for (pos, cell) in cells.iter().enumerate() {
        let name = output_name(pos + 1);
        if kinds[pos] == CellKind::Reduction {
            c *= 2;
            h = (h - 1) / 2 + 1;
            w = (w - 1) / 2 + 1;
        }
        // The compiled shape where the cell is computed (a reduction after a silent cell that
        // passes an earlier, larger output halves that output).
        let probe = match cell {
            ResolvedCell::Reduction => format!("{name}.bn"),
            ResolvedCell::Normal { graph: g, .. } => format!("{name}.n{}", g.k),
            ResolvedCell::Silent { .. } => String::new(),
        };
        if let Some(t) = plan.tensors.iter().find(|t| t.name == probe) {
            c = if kinds[pos] == CellKind::Reduction {
                t.c / 3
            } else {
                t.c
            };
            h = t.h;
            w = t.w;
        }
        let p = params_under(plan, &name);
        let dead = if live[pos + 1] {
            String::new()
        } else {
            " -- UNREACHABLE: nothing the head depends on reads its output, so it is not computed"
                .to_string()
        };
        match cell {
            ResolvedCell::Reduction => {
                let _ = writeln!(
                    s,
                    "{name} [R] reduction: factorised reduce of {} -> {} channels at {h}x{w}; {p} params{dead}",
                    output_name(pos),
                    3 * c
                );
            }
            ResolvedCell::Silent { source } => {
                let _ = writeln!(
                    s,
                    "{name} [N] motif silent: SILENT, the module is removed and {} passes through unchanged{dead}",
                    output_name(*source)
                );
            }
            ResolvedCell::Normal {
                motif,
                graph: g,
                sources,
                ops,
            } => {
                let def = motifs::by_id(*motif).expect("validated motif");
                let outs: Vec<String> = g.outputs.iter().map(|&n| node_name(g.k, n)).collect();
                let _ = writeln!(
                    s,
                    "{name} [N] motif {}: C = {c}, {h}x{w}, output concat({}) = {} channels; {p} params{dead}",
                    def.name,
                    outs.join(", "),
                    g.outputs.len() * c
                );
                let wiring: Vec<String> = sources
                    .iter()
                    .enumerate()
                    .map(|(slot, &src)| format!("in{slot} <- {}", output_name(src)))
                    .collect();
                let _ = writeln!(s, "    slots: {}", wiring.join(", "));
                let mut conv = 0;
                for (ei, e) in g.edges.iter().enumerate() {
                    let op = match e.kind {
                        EdgeKind::Identity => "identity".to_string(),
                        _ => {
                            let o = ops[conv].name();
                            conv += 1;
                            o
                        }
                    };
                    let fb = if e.feedback { "  (feedback)" } else { "" };
                    let _ = writeln!(
                        s,
                        "    e{ei}: {} -> {}  {op}{fb}",
                        node_name(g.k, e.from),
                        node_name(g.k, e.to)
                    );
                }
            }
        }
    }
    let last = plan.tensors[plan.populations[plan.head_population].tensor].c;
    let _ = writeln!(
        s,
        "head: LIF -> global average pool -> linear {last} -> {}; {} params",
        spec.classes,
        params_under(plan, "head")
    );
    let neurons: usize = plan.populations.iter().map(|p| p.neurons).sum();
    let _ = writeln!(
        s,
        "params: {} ({dataset}, C = {}); LIF populations: {}; neurons per sample and step: {neurons}",
        plan.num_params,
        plan.width,
        plan.populations.len()
    );
    s
}

/// Rows of the cells in the drawing (the stem and head sit at 0.5): chosen so that a straight
/// arrow from up to four outputs back passes at least a fifth of the height away from the
/// centre of every box in between.
const ROWS: [f64; 3] = [1.0, 0.0, 0.3];

fn motif_colour(id: u8) -> (u8, u8, u8) {
    const PALETTE: [(u8, u8, u8); 8] = [
        (230, 230, 230),
        (166, 206, 227),
        (251, 154, 153),
        (178, 223, 138),
        (253, 191, 111),
        (202, 178, 214),
        (255, 255, 153),
        (177, 89, 40),
    ];
    PALETTE[id as usize % PALETTE.len()]
}

/// Draw the architecture: stem, cells and head left to right, slot wiring as arrows.
pub fn draw(path: &Path, genome: &Genome, plan: &Plan, dataset: &str) -> crate::Result<()> {
    let cells = genome.resolve();
    let live = genome.reachable();
    let n = cells.len() + 2; // stem, cells, head
    let x = |i: usize| i as f64 / (n - 1) as f64;
    let grey = (215, 215, 215);
    let mut nodes = vec![GraphNode {
        label: format!("stem\nconv3x3 -> {}", 3 * plan.width),
        x: 0.0,
        y: 0.5,
        colour: (200, 200, 200),
    }];
    let mut edges = Vec::new();
    let black = (40, 40, 40);
    for (pos, cell) in cells.iter().enumerate() {
        let i = pos + 1;
        let alive = live[i];
        let y = ROWS[pos % ROWS.len()];
        let (label, colour) = match cell {
            ResolvedCell::Reduction => (format!("cell{i}\nreduction"), (160, 180, 200)),
            ResolvedCell::Silent { source } => (
                format!("cell{i}\nsilent\n(passes {})", output_name(*source)),
                motif_colour(0),
            ),
            ResolvedCell::Normal { motif, ops, .. } => {
                let name = motifs::by_id(*motif).map(|m| m.name).unwrap_or("?");
                let ops: Vec<String> = ops.iter().map(|o| o.name()).collect();
                let ops = if ops.len() > 6 {
                    format!("{} ...", ops[..6].join(" "))
                } else {
                    ops.join(" ")
                };
                (format!("cell{i}\n{name}\n{ops}"), motif_colour(*motif))
            }
        };
        let label = if alive {
            label
        } else {
            format!("{label}\n(unreachable)")
        };
        nodes.push(GraphNode {
            label,
            x: x(i),
            y,
            colour: if alive { colour } else { grey },
        });
        let edge_colour = if alive { black } else { (170, 170, 170) };
        match cell {
            ResolvedCell::Reduction => edges.push(GraphEdge {
                from: pos,
                to: i,
                label: "reduce".into(),
                colour: edge_colour,
                dashed: !alive,
            }),
            ResolvedCell::Silent { source } => edges.push(GraphEdge {
                from: *source,
                to: i,
                label: "pass".into(),
                colour: edge_colour,
                dashed: true,
            }),
            ResolvedCell::Normal { sources, .. } => {
                // One arrow per distinct source, labelled with the slots it feeds.
                let mut seen: Vec<(usize, Vec<String>)> = Vec::new();
                for (slot, &src) in sources.iter().enumerate() {
                    match seen.iter_mut().find(|(s, _)| *s == src) {
                        Some((_, l)) => l.push(format!("in{slot}")),
                        None => seen.push((src, vec![format!("in{slot}")])),
                    }
                }
                for (src, slots) in seen {
                    edges.push(GraphEdge {
                        from: src,
                        to: i,
                        label: slots.join(","),
                        colour: edge_colour,
                        dashed: !alive,
                    });
                }
            }
        }
    }
    let head = n - 1;
    nodes.push(GraphNode {
        label: format!("head\nLIF-pool-linear\n{} classes", plan.spec.classes),
        x: 1.0,
        y: 0.5,
        colour: (200, 200, 200),
    });
    edges.push(GraphEdge {
        from: head - 1,
        to: head,
        label: String::new(),
        colour: black,
        dashed: false,
    });
    let title = format!(
        "{} ({dataset}, C = {}): {} params",
        genome.layout, plan.width, plan.num_params
    );
    let width = (220 * n as u32).clamp(900, 4000);
    graph(path, &title, &nodes, &edges, (width, 640))
}
