//! The dump format of `msenas forward --dump DIR`: everything an independent implementation
//! needs to rebuild one CPU forward pass and compare its results.
//!
//! A dump folder holds raw little-endian files and a `manifest.json` describing them:
//!
//! | file | dtype | shape |
//! |---|---|---|
//! | `plan.json` | JSON | the [`Plan`] (ops, tensors, parameters, populations) |
//! | `params.f32` | f32 | `[num_params]`, the plan's flat parameter vector |
//! | `input.f32` | f32 | `[T, B, C, H, W]` (a static image is repeated T times) |
//! | `logits.f32` | f32 | `[B, classes]`, averaged over time |
//! | `logits_per_step.f32` | f32 | `[T, B, classes]` |
//! | `spikes_<i>.u32` | u32 | `[T, B, words]`, population `i` bit-packed (docs/design.md) |
//!
//! With gradients (`msenas forward --grads`), `manifest.json` also holds a `grads` section
//! ([`GradsEntry`]: loss, its value, label smoothing, surrogate, conventions) and the folder
//! these files:
//!
//! | file | dtype | shape |
//! |---|---|---|
//! | `grad_logits.f32` | f32 | `[B, classes]`, `dL/dlogits` |
//! | `grad_<j>.f32` | f32 | the shape of parameter `j` (conv `[cout, cin, k, k]`, batch norm `[c]`, linear `[out, in]` and `[out]`), `dL/dparam` |
//!
//! Every file is written atomically; `manifest.json` is written last, so a folder without it
//! is incomplete.

use crate::cpu::grad::Surrogate;
use crate::cpu::{words_per_row, ForwardOptions, ForwardOutput};
use crate::plan::{Op, Plan};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Version of the dump layout.
pub const FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    /// `f32`, `u32` or `json`.
    pub dtype: String,
    pub shape: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PopulationEntry {
    pub index: usize,
    pub name: String,
    pub neurons: usize,
    /// u32 words per packed sample row.
    pub words: usize,
    pub file: String,
    pub spike_count: u64,
    pub firing_rate: f32,
}

/// LIF constants (decay-input form, hard reset, V starts at 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LifEntry {
    pub form: String,
    pub tau: f32,
    pub tau_inv: f32,
    pub v_th: f32,
    pub reset: String,
    pub v0: f32,
}

/// Batch-norm constants.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BnEntry {
    /// `batch`: statistics of the batch over all `T*B*H*W` values per channel (biased variance).
    pub mode: String,
    pub eps: f32,
    pub momentum: f32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The genome's canonical key (the weight generator's key).
    pub key: String,
    pub key_hash: u64,
    pub dataset: String,
    /// Weight seed.
    pub seed: u64,
    pub timesteps: usize,
    pub batch: usize,
    pub width: usize,
    pub reduce_kernel: usize,
    pub num_params: usize,
    pub classes: usize,
    /// Sample indices in the test split and their labels.
    pub indices: Vec<usize>,
    pub labels: Vec<u16>,
    pub lif: LifEntry,
    pub bn: BnEntry,
    pub files: Vec<FileEntry>,
    pub populations: Vec<PopulationEntry>,
    /// Seconds the CPU forward pass took.
    pub forward_seconds: f64,
    /// The loss and parameter gradients, when computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grads: Option<GradsEntry>,
}

/// One parameter's gradient file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradParamEntry {
    /// Index in the plan's `params`.
    pub index: usize,
    pub name: String,
    /// Where the parameter lies in `params.f32`.
    pub offset: usize,
    pub len: usize,
    pub shape: Vec<usize>,
    pub file: String,
    /// Largest `|dL/dparam|`.
    pub max_abs: f32,
}

/// The loss and gradients of one batch (reverse pass of `crate::train::backprop` over the
/// forward pass with batch statistics).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradsEntry {
    /// `ce` (softmax cross-entropy of the time-averaged logits with label smoothing, mean over
    /// the batch) or `mse` (mean over `B*classes` of `(logits - onehot(label))^2`).
    pub loss: String,
    /// Label smoothing of `ce` (0 for `mse`, which has none).
    pub label_smoothing: f32,
    /// The loss value.
    pub loss_value: f32,
    /// The surrogate derivative of the spike (`{"name": .., "alpha": ..}`).
    pub surrogate: Surrogate,
    /// Where the manifest's `labels` come from: `dataset` (the labels of the test samples).
    pub labels_source: String,
    /// `true`: the reset is not differentiated (SpikingJelly's `detach_reset`).
    pub detach_reset: bool,
    /// Sign-gate gradient convention: `relu` (passes where the gated output is non-zero).
    pub gate_grad: String,
    pub params: Vec<GradParamEntry>,
}

/// What `--grads` adds to a dump.
pub struct GradDump<'a> {
    /// `ce` or `mse`.
    pub loss: &'a str,
    pub label_smoothing: f32,
    pub loss_value: f32,
    pub surrogate: Surrogate,
    pub labels_source: &'a str,
    /// `dL/dlogits`, `[B, classes]`.
    pub grad_logits: &'a [f32],
    /// `dL/dparams`, aligned with the plan's flat parameter vector.
    pub grads: &'a [f32],
}

/// The shape of every parameter, from the op that reads it (`[len]` for a parameter no op
/// reads).
pub fn param_shapes(plan: &Plan) -> Vec<Vec<usize>> {
    let mut shapes: Vec<Vec<usize>> = plan.params.iter().map(|p| vec![p.len]).collect();
    for op in &plan.ops {
        match op {
            Op::Conv {
                cin,
                cout,
                k,
                weight,
                ..
            } => shapes[*weight] = vec![*cout, *cin, *k, *k],
            Op::Linear { x, y, weight, bias } => {
                let (fin, fout) = (plan.tensors[*x].sample_len(), plan.tensors[*y].c);
                shapes[*weight] = vec![fout, fin];
                shapes[*bias] = vec![fout];
            }
            _ => {}
        }
    }
    for (s, p) in shapes.iter_mut().zip(&plan.params) {
        if s.iter().product::<usize>() != p.len {
            *s = vec![p.len];
        }
    }
    shapes
}

/// What a dump records beyond the plan and the forward results.
pub struct DumpInfo<'a> {
    pub dataset: &'a str,
    pub seed: u64,
    pub indices: &'a [usize],
    pub labels: &'a [u16],
    pub forward_seconds: f64,
    /// Loss and gradients to write as well.
    pub grads: Option<GradDump<'a>>,
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn u32_bytes(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Build the manifest of a forward pass (spikes must have been recorded).
pub fn manifest(
    plan: &Plan,
    opts: &ForwardOptions,
    out: &ForwardOutput,
    info: &DumpInfo,
) -> Manifest {
    let (t, b) = (opts.timesteps, opts.batch);
    let inp = &plan.tensors[plan.input];
    let k = plan.spec.classes;
    let f = |name: &str, dtype: &str, shape: Vec<usize>| FileEntry {
        name: name.into(),
        dtype: dtype.into(),
        shape,
    };
    let mut files = vec![
        f("plan.json", "json", vec![]),
        f("params.f32", "f32", vec![plan.num_params]),
        f("input.f32", "f32", vec![t, b, inp.c, inp.h, inp.w]),
        f("logits.f32", "f32", vec![b, k]),
        f("logits_per_step.f32", "f32", vec![t, b, k]),
    ];
    let mut pops = Vec::new();
    for (i, p) in plan.populations.iter().enumerate() {
        let words = words_per_row(p.neurons);
        let file = format!("spikes_{i}.u32");
        files.push(f(&file, "u32", vec![t, b, words]));
        pops.push(PopulationEntry {
            index: i,
            name: p.name.clone(),
            neurons: p.neurons,
            words,
            file,
            spike_count: out.spike_counts[i],
            firing_rate: out.firing_rates[i],
        });
    }
    Manifest {
        format: FORMAT,
        key: plan.key.clone(),
        key_hash: plan.key_hash,
        dataset: info.dataset.to_string(),
        seed: info.seed,
        timesteps: t,
        batch: b,
        width: plan.width,
        reduce_kernel: plan.reduce_kernel,
        num_params: plan.num_params,
        classes: k,
        indices: info.indices.to_vec(),
        labels: info.labels.to_vec(),
        lif: LifEntry {
            form: "decay_input".into(),
            tau: 1.0 / opts.lif.tau_inv,
            tau_inv: opts.lif.tau_inv,
            v_th: opts.lif.v_th,
            reset: "hard".into(),
            v0: 0.0,
        },
        bn: BnEntry {
            mode: "batch".into(),
            eps: opts.eps,
            momentum: 0.1,
        },
        files,
        populations: pops,
        forward_seconds: info.forward_seconds,
        grads: None,
    }
}

/// Write a dump folder. `input` is the full `[T, B, C, H, W]` input; `out` must hold recorded
/// spikes. The manifest is written last.
pub fn write(
    dir: &Path,
    plan: &Plan,
    params: &[f32],
    input: &[f32],
    opts: &ForwardOptions,
    out: &ForwardOutput,
    info: &DumpInfo,
) -> Result<Manifest> {
    if out.spikes.len() != plan.populations.len() {
        return Err(Error::input(
            "dump: the forward pass did not record spikes (ForwardOptions::record_spikes)",
        ));
    }
    let mut m = manifest(plan, opts, out, info);
    let w = |name: &str, bytes: &[u8]| crate::fsio::write_atomic(&dir.join(name), bytes);
    if let Some(g) = &info.grads {
        let k = plan.spec.classes;
        if g.grads.len() != plan.num_params || g.grad_logits.len() != opts.batch * k {
            return Err(Error::input(
                "dump: gradient lengths do not match the plan (num_params, batch x classes)",
            ));
        }
        w("grad_logits.f32", &f32_bytes(g.grad_logits))?;
        m.files.push(FileEntry {
            name: "grad_logits.f32".into(),
            dtype: "f32".into(),
            shape: vec![opts.batch, k],
        });
        let mut params = Vec::with_capacity(plan.params.len());
        for (j, (p, shape)) in plan.params.iter().zip(param_shapes(plan)).enumerate() {
            let file = format!("grad_{j}.f32");
            let v = &g.grads[p.offset..p.offset + p.len];
            w(&file, &f32_bytes(v))?;
            m.files.push(FileEntry {
                name: file.clone(),
                dtype: "f32".into(),
                shape: shape.clone(),
            });
            params.push(GradParamEntry {
                index: j,
                name: p.name.clone(),
                offset: p.offset,
                len: p.len,
                shape,
                file,
                max_abs: v.iter().fold(0.0f32, |a, &x| a.max(x.abs())),
            });
        }
        m.grads = Some(GradsEntry {
            loss: g.loss.to_string(),
            label_smoothing: g.label_smoothing,
            loss_value: g.loss_value,
            surrogate: g.surrogate,
            labels_source: g.labels_source.to_string(),
            detach_reset: true,
            gate_grad: "relu".into(),
            params,
        });
    }
    let plan_json = serde_json::to_string_pretty(plan).expect("plan serialises") + "\n";
    w("plan.json", plan_json.as_bytes())?;
    w("params.f32", &f32_bytes(params))?;
    w("input.f32", &f32_bytes(input))?;
    w("logits.f32", &f32_bytes(&out.logits))?;
    w("logits_per_step.f32", &f32_bytes(&out.logits_per_step))?;
    for (p, s) in m.populations.iter().zip(&out.spikes) {
        w(&p.file, &u32_bytes(s))?;
    }
    let text = serde_json::to_string_pretty(&m).expect("manifest serialises") + "\n";
    w("manifest.json", text.as_bytes())?;
    Ok(m)
}

/// Read a dump's manifest.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join("manifest.json");
    let text = crate::fsio::read_text(&path, "dump manifest")?;
    serde_json::from_str(&text).map_err(|e| Error::input(format!("{}: {e}", path.display())))
}
