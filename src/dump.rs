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
//! Every file is written atomically; `manifest.json` is written last, so a folder without it
//! is incomplete.

use crate::cpu::{words_per_row, ForwardOptions, ForwardOutput};
use crate::plan::Plan;
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
}

/// What a dump records beyond the plan and the forward results.
pub struct DumpInfo<'a> {
    pub dataset: &'a str,
    pub seed: u64,
    pub indices: &'a [usize],
    pub labels: &'a [u16],
    pub forward_seconds: f64,
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
    let m = manifest(plan, opts, out, info);
    let w = |name: &str, bytes: &[u8]| crate::fsio::write_atomic(&dir.join(name), bytes);
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
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::input(format!("{}: {e}", path.display())))
}
