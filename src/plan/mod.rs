//! The plan: a genome compiled for a data spec and a width into a DAG of primitive ops
//! (SPEC §2.1). Plans are plain data; executors run plans and never see genomes.
//!
//! Every activation is a `[T, B, C, H, W]` tensor (docs/design.md). Edges that read the same
//! node state share one LIF population: [`Op::Lif`] is emitted once per analog tensor. A
//! feedback update creates a new tensor for the target node, so edges reading the updated state
//! get their own LIF. Nothing but LIF membranes carries across time steps, so executors run each
//! op over all T steps before the next (layer by layer).

pub mod describe;

use crate::genome::{CellKind, EdgeKind, Genome, ResolvedCell};
use crate::DataSpec;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub type TensorId = usize;
pub type ParamId = usize;

/// A `[T, B, c, h, w]` tensor (or `[B, c, h, w]` when `per_time` is false).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorDesc {
    pub name: String,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// Holds spikes (0/1) written by a LIF.
    pub spikes: bool,
    /// Has a time axis.
    pub per_time: bool,
}

impl TensorDesc {
    /// Values per (time step, sample).
    pub fn sample_len(&self) -> usize {
        self.c * self.h * self.w
    }
    pub fn hw(&self) -> usize {
        self.h * self.w
    }
}

/// The sign gate applied after batch norm (fused into the batch-norm op).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gate {
    None,
    /// `max(z, 0)`: only positive current passes.
    Excitatory,
    /// `min(z, 0)`: only negative current passes.
    Inhibitory,
}

/// How a parameter is initialised.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamInit {
    /// `U(-bound, bound)` from the counter-based generator at the parameter's flat indices.
    Uniform {
        bound: f32,
    },
    Const {
        value: f32,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamDesc {
    pub name: String,
    /// Offset in the plan's flat parameter vector (the generator's counter).
    pub offset: usize,
    pub len: usize,
    pub init: ParamInit,
    /// Weight decay applies (convolution and linear weights; not norms or biases).
    pub decay: bool,
}

/// One primitive op.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Multi-step LIF: analog `x` -> spikes `s`; population index `pop`.
    Lif {
        x: TensorId,
        s: TensorId,
        pop: usize,
    },
    /// Convolution without bias, padding k/2, optional one-pixel shift of the input.
    Conv {
        x: TensorId,
        y: TensorId,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        shift: bool,
        weight: ParamId,
    },
    /// Batch norm over all T*B*H*W values per channel, then the sign gate. `bn` indexes the
    /// running statistics.
    BatchNorm {
        x: TensorId,
        y: TensorId,
        gamma: ParamId,
        beta: ParamId,
        bn: usize,
        gate: Gate,
    },
    /// Element-wise sum.
    Add { xs: Vec<TensorId>, y: TensorId },
    /// Channel concatenation.
    Concat { xs: Vec<TensorId>, y: TensorId },
    /// Global average pool to `[T, B, C, 1, 1]`.
    AvgPool { x: TensorId, y: TensorId },
    /// `y = x W^T + b` per time step and sample.
    Linear {
        x: TensorId,
        y: TensorId,
        weight: ParamId,
        bias: ParamId,
    },
    /// Mean over time: `[T, B, K] -> [B, K]`.
    MeanTime { x: TensorId, y: TensorId },
}

impl Op {
    pub fn inputs(&self) -> Vec<TensorId> {
        match self {
            Op::Lif { x, .. }
            | Op::Conv { x, .. }
            | Op::BatchNorm { x, .. }
            | Op::AvgPool { x, .. }
            | Op::Linear { x, .. }
            | Op::MeanTime { x, .. } => vec![*x],
            Op::Add { xs, .. } | Op::Concat { xs, .. } => xs.clone(),
        }
    }
    pub fn output(&self) -> TensorId {
        match self {
            Op::Lif { s, .. } => *s,
            Op::Conv { y, .. }
            | Op::BatchNorm { y, .. }
            | Op::Add { y, .. }
            | Op::Concat { y, .. }
            | Op::AvgPool { y, .. }
            | Op::Linear { y, .. }
            | Op::MeanTime { y, .. } => *y,
        }
    }
}

/// A LIF population: the spikes of one LIF op.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Population {
    pub name: String,
    /// The spike tensor.
    pub tensor: TensorId,
    /// The analog tensor it integrates.
    pub input: TensorId,
    pub neurons: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub spec: DataSpec,
    pub width: usize,
    pub reduce_kernel: usize,
    /// Canonical key of the genome and its 64-bit hash (the weight generator's key).
    pub key: String,
    pub key_hash: u64,
    pub tensors: Vec<TensorDesc>,
    /// Ops in execution order.
    pub ops: Vec<Op>,
    pub params: Vec<ParamDesc>,
    /// Length of the flat parameter vector (= trainable parameter count).
    pub num_params: usize,
    /// Channels of each batch-norm layer (running statistics slots).
    pub bn_channels: Vec<usize>,
    pub populations: Vec<Population>,
    /// The head population (LIF before the pool), used by the dead-network rule.
    pub head_population: usize,
    /// The last population of the last cell's output path (for `rdm_late`): populations are
    /// listed in creation order; `late_populations` names the ones `rdm_late` uses by default.
    pub late_populations: Vec<usize>,
    pub input: TensorId,
    /// `[B, classes]` time-averaged logits.
    pub logits: TensorId,
    /// `[T, B, classes]` per-step logits.
    pub logits_per_step: TensorId,
}

/// A genome that does not compile for a data spec is a user error (`genome: ...`).
impl From<PlanError> for crate::Error {
    fn from(e: crate::plan::PlanError) -> Self {
        crate::Error::Input(format!("genome does not compile: {e}"))
    }
}

/// Why a genome does not compile for a data spec.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("input {h}x{w} is too small for {reductions} reduction cells (each halves the size)")]
    TooSmall {
        h: usize,
        w: usize,
        reductions: usize,
    },
    #[error("width: {0} (allowed: an even number >= 2)")]
    Width(usize),
    #[error("reduce_kernel: {0} (allowed: 1, 3)")]
    ReduceKernel(usize),
    #[error("genome: {0}")]
    Genome(String),
}

struct Builder {
    tensors: Vec<TensorDesc>,
    ops: Vec<Op>,
    params: Vec<ParamDesc>,
    bn_channels: Vec<usize>,
    populations: Vec<Population>,
    lif_of: HashMap<TensorId, TensorId>,
    reduce_kernel: usize,
}

impl Builder {
    fn tensor(&mut self, name: String, c: usize, h: usize, w: usize, spikes: bool) -> TensorId {
        self.tensors.push(TensorDesc {
            name,
            c,
            h,
            w,
            spikes,
            per_time: true,
        });
        self.tensors.len() - 1
    }
    fn param(&mut self, name: String, len: usize, init: ParamInit, decay: bool) -> ParamId {
        let offset = self.params.last().map(|p| p.offset + p.len).unwrap_or(0);
        self.params.push(ParamDesc {
            name,
            offset,
            len,
            init,
            decay,
        });
        self.params.len() - 1
    }
    fn desc(&self, t: TensorId) -> &TensorDesc {
        &self.tensors[t]
    }

    /// The spikes of `x`: one LIF population per analog tensor, shared by all its readers.
    fn lif(&mut self, x: TensorId) -> TensorId {
        if let Some(&s) = self.lif_of.get(&x) {
            return s;
        }
        let d = self.desc(x).clone();
        let s = self.tensor(format!("lif({})", d.name), d.c, d.h, d.w, true);
        let pop = self.populations.len();
        self.populations.push(Population {
            name: d.name.clone(),
            tensor: s,
            input: x,
            neurons: d.sample_len(),
        });
        self.ops.push(Op::Lif { x, s, pop });
        self.lif_of.insert(x, s);
        s
    }

    fn conv(
        &mut self,
        x: TensorId,
        cout: usize,
        k: usize,
        stride: usize,
        shift: bool,
        name: String,
    ) -> TensorId {
        let d = self.desc(x).clone();
        let p = k / 2;
        let ho = (d.h + 2 * p - k) / stride + 1;
        let wo = (d.w + 2 * p - k) / stride + 1;
        let fan_in = d.c * k * k;
        let bound = (1.0 / (fan_in as f64).sqrt()) as f32;
        let weight = self.param(
            format!("{name}.weight"),
            cout * d.c * k * k,
            ParamInit::Uniform { bound },
            true,
        );
        let y = self.tensor(name, cout, ho, wo, false);
        self.ops.push(Op::Conv {
            x,
            y,
            cin: d.c,
            cout,
            k,
            stride,
            shift,
            weight,
        });
        y
    }

    fn bn(&mut self, x: TensorId, gate: Gate, name: String) -> TensorId {
        let d = self.desc(x).clone();
        let gamma = self.param(
            format!("{name}.gamma"),
            d.c,
            ParamInit::Const { value: 1.0 },
            false,
        );
        let beta = self.param(
            format!("{name}.beta"),
            d.c,
            ParamInit::Const { value: 0.0 },
            false,
        );
        let bn = self.bn_channels.len();
        self.bn_channels.push(d.c);
        let y = self.tensor(name, d.c, d.h, d.w, false);
        self.ops.push(Op::BatchNorm {
            x,
            y,
            gamma,
            beta,
            bn,
            gate,
        });
        y
    }

    fn add(&mut self, xs: Vec<TensorId>, name: String) -> TensorId {
        if xs.len() == 1 {
            return xs[0];
        }
        let d = self.desc(xs[0]).clone();
        let y = self.tensor(name, d.c, d.h, d.w, false);
        self.ops.push(Op::Add { xs, y });
        y
    }

    fn concat(&mut self, xs: Vec<TensorId>, name: String) -> TensorId {
        if xs.len() == 1 {
            return xs[0];
        }
        let d = self.desc(xs[0]).clone();
        let c = xs.iter().map(|&t| self.desc(t).c).sum();
        let y = self.tensor(name, c, d.h, d.w, false);
        self.ops.push(Op::Concat { xs, y });
        y
    }

    /// Factorised reduce: LIF -> two stride-2 convs (on the input and on the input shifted by
    /// one pixel), concatenated to `cout` channels -> BN.
    fn factorised_reduce(&mut self, x: TensorId, cout: usize, name: &str) -> TensorId {
        let s = self.lif(x);
        let rk = self.reduce_kernel;
        let a = self.conv(s, cout / 2, rk, 2, false, format!("{name}.conv_a"));
        let b = self.conv(s, cout - cout / 2, rk, 2, true, format!("{name}.conv_b"));
        let cat = self.concat(vec![a, b], format!("{name}.cat"));
        self.bn(cat, Gate::None, format!("{name}.bn"))
    }

    /// Bring a source output to a cell's width and size.
    fn preprocess(&mut self, src: TensorId, c: usize, h: usize, name: &str) -> TensorId {
        let mut x = src;
        let mut step = 0;
        while self.desc(x).h > h {
            x = self.factorised_reduce(x, c, &format!("{name}.reduce{step}"));
            step += 1;
        }
        if step > 0 {
            return x;
        }
        let s = self.lif(x);
        let y = self.conv(s, c, 1, 1, false, format!("{name}.conv"));
        self.bn(y, Gate::None, format!("{name}.bn"))
    }

    /// A convolution edge: LIF -> Conv_kxk -> BN -> sign gate.
    fn conv_edge(
        &mut self,
        x: TensorId,
        c: usize,
        k: usize,
        inhibitory: bool,
        name: String,
    ) -> TensorId {
        let s = self.lif(x);
        let y = self.conv(s, c, k, 1, false, format!("{name}.conv"));
        let gate = if inhibitory {
            Gate::Inhibitory
        } else {
            Gate::Excitatory
        };
        self.bn(y, gate, format!("{name}.bn"))
    }
}

/// The most activation memory one forward pass or training step may need: 32 GiB.
pub const MAX_WORKLOAD_BYTES: u64 = 32 << 30;

impl Plan {
    /// Compile a genome for a data spec, base width C and factorised-reduce kernel (1 or 3).
    pub fn compile(
        genome: &Genome,
        spec: &DataSpec,
        width: usize,
        reduce_kernel: usize,
    ) -> Result<Plan, PlanError> {
        genome
            .validate()
            .map_err(|e| PlanError::Genome(e.join("; ")))?;
        if width < 2 || !width.is_multiple_of(2) {
            return Err(PlanError::Width(width));
        }
        if reduce_kernel != 1 && reduce_kernel != 3 {
            return Err(PlanError::ReduceKernel(reduce_kernel));
        }
        let kinds = genome.layout_kinds();
        let reductions = kinds.iter().filter(|k| **k == CellKind::Reduction).count();
        if (spec.height >> reductions) == 0 || (spec.width >> reductions) == 0 {
            return Err(PlanError::TooSmall {
                h: spec.height,
                w: spec.width,
                reductions,
            });
        }
        let mut b = Builder {
            tensors: Vec::new(),
            ops: Vec::new(),
            params: Vec::new(),
            bn_channels: Vec::new(),
            populations: Vec::new(),
            lif_of: HashMap::new(),
            reduce_kernel,
        };
        let input = b.tensor("input".into(), spec.in_ch, spec.height, spec.width, false);
        // Stem: Conv3x3(in -> 3C) + BN, no neuron.
        let stem_conv = b.conv(input, 3 * width, 3, 1, false, "stem.conv".into());
        let stem = b.bn(stem_conv, Gate::None, "stem".into());

        let cells = genome.resolve();
        let live = genome.reachable();
        let mut outputs: Vec<TensorId> = vec![stem];
        let mut c_k = width;
        let mut h_k = spec.height;
        for (pos, cell) in cells.iter().enumerate() {
            let name = format!("cell{}", pos + 1);
            if !live[pos + 1] {
                // Unreachable from the head: nothing is computed; keep the index aligned. A
                // reduction cell still starts a new stage (C doubles at every R, SPEC 1.1):
                // later cells run at its width and size whether or not they read it.
                if matches!(cell, ResolvedCell::Reduction) {
                    c_k *= 2;
                    h_k = (h_k - 1) / 2 + 1;
                }
                outputs.push(*outputs.last().unwrap());
                continue;
            }
            let out = match cell {
                ResolvedCell::Reduction => {
                    // A new stage: C doubles and the size halves. The input is normally one
                    // stage larger; a silent cell in front may pass through an older, larger
                    // output, which is reduced again until it reaches the stage's size.
                    c_k *= 2;
                    h_k = (h_k - 1) / 2 + 1;
                    let mut y = b.factorised_reduce(outputs[pos], 3 * c_k, &name);
                    let mut step = 1;
                    while b.desc(y).h > h_k {
                        y = b.factorised_reduce(y, 3 * c_k, &format!("{name}.reduce{step}"));
                        step += 1;
                    }
                    y
                }
                ResolvedCell::Silent { source } => outputs[*source],
                ResolvedCell::Normal {
                    graph,
                    sources,
                    ops,
                    ..
                } => {
                    let mut state: Vec<Option<TensorId>> = vec![None; graph.nodes];
                    for (slot, &src) in sources.iter().enumerate() {
                        state[slot] =
                            Some(b.preprocess(outputs[src], c_k, h_k, &format!("{name}.in{slot}")));
                    }
                    let mut op_index = 0;
                    let mut fb_count = 0;
                    let mut pending: Vec<TensorId> = Vec::new();
                    let mut current: Option<usize> = None;
                    for (ei, e) in graph.edges.iter().enumerate() {
                        // Forward edges into node e.to accumulate until the target changes.
                        if !e.feedback {
                            if current != Some(e.to) {
                                if let Some(n) = current {
                                    state[n] = Some(
                                        b.add(std::mem::take(&mut pending), format!("{name}.n{n}")),
                                    );
                                }
                                current = Some(e.to);
                            }
                        } else if let Some(n) = current.take() {
                            state[n] =
                                Some(b.add(std::mem::take(&mut pending), format!("{name}.n{n}")));
                        }
                        let src = state[e.from].expect("edges read computed nodes");
                        let term = match e.kind {
                            EdgeKind::Identity => src,
                            _ => {
                                let op = ops[op_index];
                                op_index += 1;
                                b.conv_edge(
                                    src,
                                    c_k,
                                    op.kernel,
                                    op.inhibitory,
                                    format!("{name}.e{ei}"),
                                )
                            }
                        };
                        if e.feedback {
                            fb_count += 1;
                            let old = state[e.to].expect("feedback targets a computed node");
                            state[e.to] = Some(
                                b.add(vec![old, term], format!("{name}.n{}.fb{fb_count}", e.to)),
                            );
                        } else {
                            pending.push(term);
                        }
                    }
                    if let Some(n) = current {
                        state[n] = Some(b.add(pending, format!("{name}.n{n}")));
                    }
                    let outs: Vec<TensorId> = graph
                        .outputs
                        .iter()
                        .map(|&n| state[n].expect("output computed"))
                        .collect();
                    b.concat(outs, format!("{name}.out"))
                }
            };
            outputs.push(out);
        }

        // Head: LIF -> global average pool -> Linear -> mean over T.
        let last = *outputs.last().unwrap();
        let s = b.lif(last);
        let head_population = b.populations.iter().position(|p| p.tensor == s).unwrap();
        let c_last = b.desc(last).c;
        let pooled = b.tensor("head.pool".into(), c_last, 1, 1, false);
        b.ops.push(Op::AvgPool { x: s, y: pooled });
        let bound = (1.0 / (c_last as f64).sqrt()) as f32;
        let weight = b.param(
            "head.fc.weight".into(),
            spec.classes * c_last,
            ParamInit::Uniform { bound },
            true,
        );
        let bias = b.param(
            "head.fc.bias".into(),
            spec.classes,
            ParamInit::Uniform { bound },
            false,
        );
        let per_step = b.tensor("head.fc".into(), spec.classes, 1, 1, false);
        b.ops.push(Op::Linear {
            x: pooled,
            y: per_step,
            weight,
            bias,
        });
        b.tensors.push(TensorDesc {
            name: "logits".into(),
            c: spec.classes,
            h: 1,
            w: 1,
            spikes: false,
            per_time: false,
        });
        let logits = b.tensors.len() - 1;
        b.ops.push(Op::MeanTime {
            x: per_step,
            y: logits,
        });

        // rdm_late: the head's population and the last population created before it that is
        // not the head (the last cell's deepest spiking layer).
        let mut late = vec![head_population];
        if let Some(p) = (0..b.populations.len())
            .rev()
            .find(|&p| p != head_population)
        {
            late.insert(0, p);
        }
        let num_params = b.params.last().map(|p| p.offset + p.len).unwrap_or(0);
        Ok(Plan {
            spec: *spec,
            width,
            reduce_kernel,
            key: genome.canonical_key(),
            key_hash: genome.key_hash(),
            tensors: b.tensors,
            ops: b.ops,
            params: b.params,
            num_params,
            bn_channels: b.bn_channels,
            populations: b.populations,
            head_population,
            late_populations: late,
            input,
            logits,
            logits_per_step: per_step,
        })
    }

    /// For each tensor, the index of the last op reading it (`None`: never read). Executors free
    /// buffers after their last use.
    pub fn last_use(&self) -> Vec<Option<usize>> {
        let mut last = vec![None; self.tensors.len()];
        for (i, op) in self.ops.iter().enumerate() {
            for x in op.inputs() {
                last[x] = Some(i);
            }
        }
        last
    }

    /// Multiply-accumulates per sample per time step of each op (0 for ops without MACs), for
    /// synaptic-operation and energy accounting.
    pub fn macs(&self, op: &Op) -> usize {
        match op {
            Op::Conv { y, cin, k, .. } => {
                let d = &self.tensors[*y];
                d.sample_len() * cin * k * k
            }
            Op::Linear { x, y, .. } => self.tensors[*x].c * self.tensors[*y].c,
            _ => 0,
        }
    }

    /// Floats of activation memory per sample per time step if every tensor were kept.
    pub fn activation_floats(&self) -> usize {
        self.tensors.iter().map(|t| t.sample_len()).sum()
    }

    /// Refuses a workload whose activations (every tensor kept for `batch` samples over
    /// `timesteps` steps, as a training step keeps them) would need more than
    /// [`MAX_WORKLOAD_BYTES`]; checked before anything is allocated.
    pub fn check_workload(&self, batch: usize, timesteps: usize) -> crate::Result<()> {
        let bytes = (self.activation_floats() as u64)
            .checked_mul(batch as u64)
            .and_then(|v| v.checked_mul(timesteps as u64))
            .and_then(|v| v.checked_mul(4));
        match bytes {
            Some(b) if b <= MAX_WORKLOAD_BYTES => Ok(()),
            _ => Err(crate::Error::input(format!(
                "batch {batch} over {timesteps} time steps needs {} of activations \
                 (allowed: at most {} GiB; lower the batch, the input size, the width or T)",
                match bytes {
                    Some(b) => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
                    None => "more than 2^64 bytes".to_string(),
                },
                MAX_WORKLOAD_BYTES >> 30
            ))),
        }
    }
}

#[cfg(test)]
mod tests;
