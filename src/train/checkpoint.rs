//! Checkpoint files: one binary file, written atomically.
//!
//! ```text
//! bytes 0..8    b"MSENASCK"
//! bytes 8..12   format version, u32 little-endian (1)
//! bytes 12..20  length L of the JSON header, u64 little-endian
//! bytes 20..20+L  the header (UTF-8 JSON, [`Meta`]): genome, plan, training config, dataset,
//!               seed, epoch, history, optimiser step, and the list of sections
//! then          each section in the header's order: `len` f32 little-endian values
//! last 32 bytes SHA-256 of every byte before them (format version 2)
//! ```
//!
//! A file whose checksum does not match (a flipped bit, a torn copy) is refused with one line;
//! version-1 files (no checksum) are still read.
//!
//! A *model* checkpoint (`model.ckpt`) holds the sections `params`, `bn_mean`, `bn_var` (the best
//! epoch's weights and batch-norm running statistics, each layer's channels in plan order). A
//! *state* checkpoint (`state.ckpt`, written after every epoch) adds the optimiser's moments
//! (`adam_m`, `adam_v`) and the best weights so far (`best_params`, `best_bn_mean`,
//! `best_bn_var`): everything an exact resume needs.

use crate::plan::Plan;
use crate::train::TrainConfig;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

const MAGIC: &[u8; 8] = b"MSENASCK";
const VERSION: u32 = 2;
/// Bytes of the SHA-256 trailer.
const SUM: usize = 32;

/// Reads a JSON number, or `null` (how serde_json writes NaN and infinities) as NaN.
pub fn de_nan<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// One epoch's numbers (a row of `log.csv`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based.
    pub epoch: usize,
    /// Learning rate of the epoch's last step.
    pub lr: f32,
    #[serde(deserialize_with = "de_nan")]
    pub train_loss: f64,
    #[serde(deserialize_with = "de_nan")]
    pub train_acc: f64,
    #[serde(deserialize_with = "de_nan")]
    pub val_loss: f64,
    #[serde(deserialize_with = "de_nan")]
    pub val_acc: f64,
    #[serde(deserialize_with = "de_nan")]
    pub images_per_s: f64,
    #[serde(deserialize_with = "de_nan")]
    pub seconds: f64,
}

/// The JSON header of a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// `model` or `state`.
    pub kind: String,
    /// The genome (as its JSON value), when the network came from one.
    pub genome: Option<serde_json::Value>,
    pub plan: Plan,
    pub config: TrainConfig,
    pub dataset: String,
    pub seed: u64,
    /// Epochs completed (state) or the epoch whose weights these are (model).
    pub epoch: usize,
    /// The best epoch so far (1-based; 0: none yet) and its validation accuracy.
    pub best_epoch: usize,
    #[serde(deserialize_with = "de_nan")]
    pub best_val_acc: f64,
    pub history: Vec<EpochLog>,
    /// Optimiser steps taken.
    pub adam_step: u64,
    /// The generator state the next epoch starts from (derived from seed and epoch; recorded
    /// for inspection).
    pub rng_state: u64,
    /// Section names and lengths, in file order.
    pub sections: Vec<(String, usize)>,
}

/// A checkpoint in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub meta: Meta,
    pub sections: Vec<(String, Vec<f32>)>,
}

impl Checkpoint {
    pub fn section(&self, name: &str) -> Option<&[f32]> {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// A section that must exist with a given length.
    pub fn need(&self, name: &str, len: usize, path: &Path) -> Result<Vec<f32>> {
        match self.section(name) {
            Some(v) if v.len() == len => match v.iter().position(|x| !x.is_finite()) {
                None => Ok(v.to_vec()),
                Some(i) => Err(Error::input(format!(
                    "{}: section '{name}' holds a non-finite value ({}) at index {i}; the \
                     checkpoint cannot be used",
                    path.display(),
                    v[i]
                ))),
            },
            Some(v) => Err(Error::input(format!(
                "{}: section '{name}' has {} values, the plan needs {len}",
                path.display(),
                v.len()
            ))),
            None => Err(Error::input(format!(
                "{}: no section '{name}' (not a {} checkpoint?)",
                path.display(),
                if name.starts_with("adam") || name.starts_with("best") {
                    "training-state"
                } else {
                    "model"
                }
            ))),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut meta = self.meta.clone();
        meta.sections = self
            .sections
            .iter()
            .map(|(n, v)| (n.clone(), v.len()))
            .collect();
        let header = serde_json::to_vec(&meta).expect("checkpoint header serialises");
        let floats: usize = self.sections.iter().map(|(_, v)| v.len()).sum();
        let mut out = Vec::with_capacity(20 + header.len() + 4 * floats);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        for (_, v) in &self.sections {
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        use sha2::Digest as _;
        let sum = sha2::Sha256::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint> {
        let bad = |what: &str| {
            Error::input(format!(
                "{}: {what} (expected an msenas checkpoint: MSENASCK, version, JSON header, f32 sections)",
                path.display()
            ))
        };
        if bytes.len() < 20 || &bytes[..8] != MAGIC {
            return Err(bad("not a checkpoint file"));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        let bytes = match version {
            1 => bytes,
            VERSION => {
                use sha2::Digest as _;
                if bytes.len() < 20 + SUM {
                    return Err(bad("truncated: no checksum"));
                }
                let (body, sum) = bytes.split_at(bytes.len() - SUM);
                if sha2::Sha256::digest(body).as_slice() != sum {
                    return Err(Error::input(format!(
                        "{}: checksum mismatch: the file is corrupted or was changed after it \
                         was written (restore it, or start the run again)",
                        path.display()
                    )));
                }
                body
            }
            _ => {
                return Err(bad(&format!(
                    "format version {version}, this build reads 1 and {VERSION}"
                )))
            }
        };
        let hlen = u64::from_le_bytes(bytes[12..20].try_into().unwrap());
        let hlen = usize::try_from(hlen)
            .ok()
            .filter(|&h| h <= bytes.len() - 20)
            .ok_or_else(|| bad("truncated header"))?;
        let body = &bytes[20..20 + hlen];
        let meta: Meta = serde_json::from_slice(body).map_err(|e| bad(&format!("header: {e}")))?;
        let mut at = 20 + hlen;
        let mut sections = Vec::with_capacity(meta.sections.len());
        for (name, len) in &meta.sections {
            let end = len
                .checked_mul(4)
                .and_then(|l| at.checked_add(l))
                .filter(|&e| e <= bytes.len())
                .ok_or_else(|| bad(&format!("section '{name}' is truncated")))?;
            let v: Vec<f32> = bytes[at..end]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            sections.push((name.clone(), v));
            at = end;
        }
        if at != bytes.len() {
            return Err(bad("trailing bytes after the last section"));
        }
        Ok(Checkpoint { meta, sections })
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        crate::fsio::write_atomic(path, &self.to_bytes())
    }

    pub fn read(path: &Path) -> Result<Checkpoint> {
        let bytes = crate::fsio::read_bounded(path, crate::fsio::MAX_DATA_BYTES, "checkpoint")?;
        Checkpoint::from_bytes(&bytes, path)
    }
}
