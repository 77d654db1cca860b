//! The CPU reference executor: runs a [`Plan`] layer by layer over all T steps, with the
//! primitives of this module. It is the oracle for the GPU engine and the fallback executor.

use super::{
    add_into, bn_apply, bn_stats, concat_channels, conv2d, global_avg_pool, lif, linear, mean_time,
    pack_spikes, uniform_fill, ConvShape, Gate as CpuGate, Kernels, LifParams,
};
use crate::plan::{Op, ParamInit, Plan};

/// Batch-norm running statistics, one entry per batch-norm layer of the plan.
#[derive(Clone, Debug, PartialEq)]
pub struct BnRunning {
    pub mean: Vec<Vec<f32>>,
    pub var: Vec<Vec<f32>>,
}

impl BnRunning {
    /// Fresh statistics (mean 0, variance 1), as PyTorch initialises them.
    pub fn new(plan: &Plan) -> Self {
        BnRunning {
            mean: plan.bn_channels.iter().map(|&c| vec![0.0; c]).collect(),
            var: plan.bn_channels.iter().map(|&c| vec![1.0; c]).collect(),
        }
    }

    /// Whether these are statistics of `plan`'s batch-norm layers (as many layers, each with
    /// its channel count, in mean and variance).
    pub fn fits(&self, plan: &Plan) -> bool {
        let ch = &plan.bn_channels;
        self.mean.len() == ch.len()
            && self.var.len() == ch.len()
            && self
                .mean
                .iter()
                .chain(&self.var)
                .zip(ch.iter().chain(ch))
                .all(|(v, &c)| v.len() == c)
    }

    /// The means and the variances, each flattened layer after layer.
    pub fn flatten(&self) -> (Vec<f32>, Vec<f32>) {
        (self.mean.concat(), self.var.concat())
    }
}

/// The inverse of [`BnRunning::flatten`] for a plan's batch-norm layers.
pub fn unflatten_bn(plan: &Plan, mean: &[f32], var: &[f32]) -> BnRunning {
    let mut r = BnRunning::new(plan);
    let mut at = 0;
    for (i, &c) in plan.bn_channels.iter().enumerate() {
        r.mean[i].copy_from_slice(&mean[at..at + c]);
        r.var[i].copy_from_slice(&var[at..at + c]);
        at += c;
    }
    r
}

/// Number of batch-norm channels of a plan (the length of a flattened statistics vector).
pub fn bn_len(plan: &Plan) -> usize {
    plan.bn_channels.iter().sum()
}

/// Which statistics batch norm uses.
#[derive(Clone, Copy, Debug)]
pub enum BnMode<'a> {
    /// The batch's own statistics (training, and the training-free fitness).
    Batch,
    /// Running statistics (evaluation).
    Running(&'a BnRunning),
}

#[derive(Clone, Copy, Debug)]
pub struct ForwardOptions<'a> {
    pub timesteps: usize,
    pub batch: usize,
    pub bn: BnMode<'a>,
    pub lif: LifParams,
    pub eps: f32,
    /// Return every population's spikes, bit-packed `[T][B][words]`.
    pub record_spikes: bool,
    /// Keep every intermediate tensor (for dumps; the pass then runs on the reference).
    pub keep_tensors: bool,
    /// The engine (default: the fast one).
    pub kernels: Kernels,
}

impl ForwardOptions<'_> {
    pub fn new(timesteps: usize, batch: usize) -> Self {
        ForwardOptions {
            timesteps,
            batch,
            bn: BnMode::Batch,
            lif: LifParams::default(),
            eps: 1e-5,
            record_spikes: false,
            keep_tensors: false,
            kernels: Kernels::Fast,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ForwardOutput {
    /// `[B, classes]`, averaged over time.
    pub logits: Vec<f32>,
    /// `[T, B, classes]`.
    pub logits_per_step: Vec<f32>,
    /// Spike count of every population over the whole batch and all steps.
    pub spike_counts: Vec<u64>,
    /// Mean spike rate of every population.
    pub firing_rates: Vec<f32>,
    /// Bit-packed spikes per population (when recorded).
    pub spikes: Vec<Vec<u32>>,
    /// Batch statistics `(mean, biased var)` of every batch-norm layer (batch mode).
    pub bn_batch_stats: Vec<(Vec<f32>, Vec<f32>)>,
    /// Every tensor (when kept); `None` for tensors freed or never produced.
    pub tensors: Vec<Option<Vec<f32>>>,
}

/// Initial parameters of a plan from the counter-based generator keyed by (seed, canonical key,
/// flat parameter index); see docs/design.md.
pub fn init_params(plan: &Plan, seed: u64) -> Vec<f32> {
    let s = super::stream(seed, plan.key_hash);
    let mut out = vec![0.0f32; plan.num_params];
    for p in &plan.params {
        let dst = &mut out[p.offset..p.offset + p.len];
        match p.init {
            ParamInit::Uniform { bound } => uniform_fill(s, p.offset as u32, bound, dst),
            ParamInit::Const { value } => dst.fill(value),
        }
    }
    out
}

/// The output of an op that reads only its inputs and parameters (convolution, addition,
/// channel concatenation, global average pooling, linear, mean over time), over `t * b`
/// samples; `get` returns an input tensor. `None` for LIF and batch norm, whose callers keep
/// state (membranes, statistics) of their own. The CPU executor and the training tape both run
/// these ops through here.
pub(crate) fn apply_op<'a>(
    plan: &Plan,
    params: &[f32],
    op: &Op,
    t: usize,
    b: usize,
    get: impl Fn(usize) -> &'a [f32],
) -> Option<Vec<f32>> {
    let n = t * b;
    let y_desc = &plan.tensors[op.output()];
    let param = |id: usize| {
        let p = &plan.params[id];
        &params[p.offset..p.offset + p.len]
    };
    Some(match op {
        Op::Lif { .. } | Op::BatchNorm { .. } => return None,
        Op::Conv { x, weight, .. } => {
            let shape = ConvShape::of_op(plan, op, n).expect("a conv op");
            let mut y = vec![0.0; shape.out_len()];
            conv2d(get(*x), param(*weight), &shape, &mut y);
            y
        }
        Op::Add { xs, .. } => {
            let mut acc = get(xs[0]).to_vec();
            for &x in &xs[1..] {
                add_into(&mut acc, get(x));
            }
            acc
        }
        Op::Concat { xs, .. } => {
            let ins: Vec<(&[f32], usize)> =
                xs.iter().map(|&x| (get(x), plan.tensors[x].c)).collect();
            let mut y = vec![0.0; n * y_desc.sample_len()];
            concat_channels(&ins, n, y_desc.hw(), &mut y);
            y
        }
        Op::AvgPool { x, .. } => {
            let xd = &plan.tensors[*x];
            let mut y = vec![0.0; n * xd.c];
            global_avg_pool(get(*x), n, xd.c, xd.hw(), &mut y);
            y
        }
        Op::Linear {
            x, weight, bias, ..
        } => {
            let in_f = plan.tensors[*x].sample_len();
            let mut y = vec![0.0; n * y_desc.c];
            linear(
                get(*x),
                n,
                in_f,
                param(*weight),
                param(*bias),
                y_desc.c,
                &mut y,
            );
            y
        }
        Op::MeanTime { x, .. } => {
            let m = b * y_desc.c;
            let mut y = vec![0.0; m];
            mean_time(get(*x), t, m, &mut y);
            y
        }
    })
}

/// Run the plan on `input` (`[T, B, C, H, W]`, or `[B, C, H, W]` repeated over T when its length
/// is one step's worth): on the fast engine with [`Kernels::Fast`] (unless it does not support
/// the plan or `keep_tensors` is set), else on the reference primitives.
pub fn forward(plan: &Plan, params: &[f32], input: &[f32], opts: &ForwardOptions) -> ForwardOutput {
    if opts.kernels == Kernels::Fast && !opts.keep_tensors && super::fast::supports(plan) {
        return super::fast::forward(plan, params, input, opts, super::fast::SpikeOrder::Plan);
    }
    let t = opts.timesteps;
    let b = opts.batch;
    let n = t * b;
    assert_eq!(params.len(), plan.num_params, "parameter vector length");
    let in_desc = &plan.tensors[plan.input];
    let step = b * in_desc.sample_len();
    let input = if input.len() == step {
        input.repeat(t)
    } else {
        assert_eq!(input.len(), n * in_desc.sample_len(), "input length");
        input.to_vec()
    };
    let last_use = plan.last_use();
    let mut tensors: Vec<Option<Vec<f32>>> = vec![None; plan.tensors.len()];
    tensors[plan.input] = Some(input);
    let npop = plan.populations.len();
    let mut out = ForwardOutput {
        spike_counts: vec![0; npop],
        firing_rates: vec![0.0; npop],
        spikes: vec![Vec::new(); if opts.record_spikes { npop } else { 0 }],
        bn_batch_stats: vec![(Vec::new(), Vec::new()); plan.bn_channels.len()],
        ..Default::default()
    };
    let param = |id: usize| {
        let p = &plan.params[id];
        &params[p.offset..p.offset + p.len]
    };
    for (i, op) in plan.ops.iter().enumerate() {
        let y_desc = &plan.tensors[op.output()];
        let get = |id: usize| tensors[id].as_deref().expect("tensor produced before use");
        let y: Vec<f32> = match op {
            Op::Lif { x, pop, .. } => {
                let xv = get(*x);
                let per_t = xv.len() / t;
                let mut s = vec![0.0; xv.len()];
                lif(xv, t, per_t, opts.lif, &mut s);
                let count = s.iter().filter(|&&v| v != 0.0).count() as u64;
                out.spike_counts[*pop] = count;
                out.firing_rates[*pop] = count as f32 / s.len().max(1) as f32;
                if opts.record_spikes {
                    out.spikes[*pop] = pack_spikes(&s, t, b, plan.populations[*pop].neurons);
                }
                s
            }
            Op::BatchNorm {
                x,
                gamma,
                beta,
                bn,
                gate,
                ..
            } => {
                let xv = get(*x);
                let hw = y_desc.hw();
                let (mean, var) = match opts.bn {
                    BnMode::Batch => {
                        let st = bn_stats(xv, n, y_desc.c, hw);
                        out.bn_batch_stats[*bn] = st.clone();
                        st
                    }
                    BnMode::Running(r) => (r.mean[*bn].clone(), r.var[*bn].clone()),
                };
                let mut y = vec![0.0; xv.len()];
                bn_apply(
                    xv,
                    n,
                    y_desc.c,
                    hw,
                    &mean,
                    &var,
                    param(*gamma),
                    param(*beta),
                    opts.eps,
                    CpuGate::from(*gate),
                    &mut y,
                );
                y
            }
            _ => apply_op(plan, params, op, t, b, get).expect("an op without state"),
        };
        tensors[op.output()] = Some(y);
        if !opts.keep_tensors {
            for x in op.inputs() {
                if last_use[x] == Some(i) && x != plan.logits_per_step {
                    tensors[x] = None;
                }
            }
        }
    }
    out.logits = tensors[plan.logits].clone().expect("logits");
    out.logits_per_step = tensors[plan.logits_per_step]
        .clone()
        .expect("per-step logits");
    if opts.keep_tensors {
        out.tensors = tensors;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genome::{motifs, CellGene, Genome, MicroVariant};
    use crate::DataSpec;

    #[test]
    fn every_motif_k_and_micro_op_runs_with_finite_outputs() {
        let spec = DataSpec {
            in_ch: 1,
            height: 8,
            width: 8,
            classes: 3,
            timesteps: 2,
            event: false,
        };
        let input: Vec<f32> = (0..4 * 64).map(|i| ((i * 37) % 17) as f32 / 16.0).collect();
        for m in motifs::REGISTRY {
            for k in [2usize, 3] {
                for micro in [MicroVariant::Kernel, MicroVariant::Full] {
                    for op in 0..micro.arity() {
                        let g = Genome {
                            layout: "NRN".into(),
                            micro,
                            k,
                            cells: vec![
                                CellGene {
                                    motif: m.id,
                                    sources: vec![1, 2, 3],
                                    ops: vec![op; 12]
                                };
                                2
                            ],
                        };
                        let plan = Plan::compile(&g, &spec, 4, 1).unwrap();
                        let params = init_params(&plan, 1);
                        let mut o = ForwardOptions::new(2, 4);
                        o.record_spikes = true;
                        let r = forward(&plan, &params, &input, &o);
                        assert_eq!(r.logits.len(), 4 * 3);
                        assert!(r.logits.iter().all(|v| v.is_finite()), "{}", m.name);
                        assert!(r.firing_rates.iter().all(|v| (0.0..=1.0).contains(v)));
                        assert_eq!(r.spikes.len(), plan.populations.len());
                    }
                }
            }
        }
    }

    #[test]
    fn params_are_deterministic_and_keyed() {
        let spec = DataSpec {
            in_ch: 1,
            height: 8,
            width: 8,
            classes: 3,
            timesteps: 2,
            event: false,
        };
        let mk = |op: u8| Genome {
            layout: "N".into(),
            micro: MicroVariant::Kernel,
            k: 2,
            cells: vec![CellGene {
                motif: 1,
                sources: vec![1, 1],
                ops: vec![op; 4],
            }],
        };
        let p = Plan::compile(&mk(0), &spec, 4, 1).unwrap();
        assert_eq!(init_params(&p, 5), init_params(&p, 5));
        assert_ne!(init_params(&p, 5), init_params(&p, 6));
        // batch-norm gammas are ones
        let gamma = p.params.iter().find(|d| d.name.ends_with("gamma")).unwrap();
        assert!(init_params(&p, 5)[gamma.offset..gamma.offset + gamma.len]
            .iter()
            .all(|&v| v == 1.0));
    }
}
