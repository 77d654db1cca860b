//! Datasets: readers for the on-disk formats (all our own code, nothing is downloaded), splits,
//! time-first batches and augmentation.
//!
//! Every dataset is one entry in [`REGISTRY`]; [`load`] looks a name up and [`names`] lists them.
//! A split holds its samples as `[N, frames, C, H, W]` f32 (row-major, W fastest): `frames` is 1
//! for a static image (repeated T times by [`Split::batch`]) and T for event data (T distinct
//! frames of per-polarity counts, channel = polarity).
//!
//! Resizing (`size` option) uses one rule everywhere (see [`resize`]): area averaging when
//! shrinking (PyTorch's `F.interpolate(mode="area")`), bilinear with `align_corners=false` when
//! growing (PyTorch's `F.interpolate(mode="bilinear", align_corners=False)`, no antialias).
//!
//! Every split that is not given by the dataset's release (digits 60/20/20, the validation
//! hold-outs, CIFAR10-DVS 9:1) is a fixed property of the dataset: it does not depend on
//! [`DataOptions::seed`], so results compare across runs and machines.

mod aedat;
mod cifar;
mod digits;
mod dvs;
pub mod frames;
mod idx;
pub mod resize;

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::{DataSpec, Error, Result};
use serde::{Deserialize, Serialize};

pub use frames::{augment_events, augment_static, frame_events, Event, EventAugment};

/// One split (train, val or test) of a dataset.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Split {
    /// Samples, `[n, frames, c, h, w]` row-major.
    pub x: Vec<f32>,
    /// Class of each sample, `0..classes`.
    pub labels: Vec<u16>,
    pub n: usize,
    /// 1 for static images, T for event data.
    pub frames: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Split {
    /// An empty split of the given sample shape.
    pub fn empty(frames: usize, c: usize, h: usize, w: usize) -> Split {
        Split {
            x: Vec::new(),
            labels: Vec::new(),
            n: 0,
            frames,
            c,
            h,
            w,
        }
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Values per frame, `c * h * w`.
    pub fn frame_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Values per sample, `frames * c * h * w`.
    pub fn sample_len(&self) -> usize {
        self.frames * self.frame_len()
    }

    /// The stored values of sample `i`, `[frames, c, h, w]`.
    pub fn sample(&self, i: usize) -> &[f32] {
        let l = self.sample_len();
        &self.x[i * l..(i + 1) * l]
    }

    /// Appends one sample (`sample_len()` values).
    pub fn push(&mut self, x: &[f32], label: u16) {
        assert_eq!(x.len(), self.sample_len(), "sample length");
        self.x.extend_from_slice(x);
        self.labels.push(label);
        self.n += 1;
    }

    /// The samples at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> Split {
        let mut s = Split::empty(self.frames, self.c, self.h, self.w);
        s.x.reserve(idx.len() * self.sample_len());
        for &i in idx {
            s.push(self.sample(i), self.labels[i]);
        }
        s
    }

    /// Time-first batch `[T, B, C, H, W]` for the given sample indices: a static image is
    /// repeated T times; event frames are used as is (frames must equal `t`).
    pub fn batch(&self, idx: &[usize], t: usize) -> Vec<f32> {
        let fl = self.frame_len();
        let b = idx.len();
        assert!(
            self.frames == 1 || self.frames == t,
            "batch: the split holds {} frames per sample, asked for T = {t}",
            self.frames
        );
        let mut out = vec![0.0f32; t * b * fl];
        for step in 0..t {
            let f = if self.frames == 1 { 0 } else { step };
            for (bi, &i) in idx.iter().enumerate() {
                let src = &self.sample(i)[f * fl..(f + 1) * fl];
                out[(step * b + bi) * fl..(step * b + bi + 1) * fl].copy_from_slice(src);
            }
        }
        out
    }

    pub fn labels_of(&self, idx: &[usize]) -> Vec<u16> {
        idx.iter().map(|&i| self.labels[i]).collect()
    }

    /// Stratified sample of `b` indices (at most `len()`): every class's indices are shuffled
    /// with `rng` (classes in ascending order), then taken round-robin over the classes (one of
    /// class 0, one of class 1, ..., skipping exhausted classes) until `b` are drawn. Identical
    /// for a given rng state.
    pub fn stratified(&self, b: usize, rng: &mut impl rand::Rng) -> Vec<usize> {
        use rand::seq::SliceRandom;
        let mut per = by_class(&self.labels);
        for v in per.iter_mut() {
            v.shuffle(rng);
        }
        let b = b.min(self.n);
        let mut out = Vec::with_capacity(b);
        let mut k = 0;
        while out.len() < b {
            for v in &per {
                if out.len() < b && k < v.len() {
                    out.push(v[k]);
                }
            }
            k += 1;
        }
        out
    }
}

/// A loaded dataset: three splits plus what the plan compiler and reports need.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub name: String,
    pub train: Split,
    pub val: Split,
    pub test: Split,
    pub spec: DataSpec,
    pub class_names: Vec<String>,
    /// Where the data came from and which split was used.
    pub notes: String,
}

/// The `data` section of a run's configuration: which dataset, where, at what size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Dataset name (`digits`, `mnist`, `fashion_mnist`, `cifar10`, `cifar100`, `dvs128_gesture`,
    /// `cifar10_dvs`, `digits_dvs`).
    pub dataset: String,
    /// Folder holding the dataset's files (not needed for the bundled sets).
    pub data_dir: Option<String>,
    /// Resize inputs to size x size (None: the dataset's default).
    pub size: Option<usize>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dataset: "digits".into(),
            data_dir: None,
            size: None,
        }
    }
}

/// The largest input side accepted (`data.size`, `--size`): 512 (DVS128 is 128, CIFAR 32).
pub const MAX_INPUT_SIZE: usize = 512;

impl DataConfig {
    /// This section's problems, each naming its key (`data.…`).
    pub fn problems(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if let Some(size) = self.size {
            if !(1..=MAX_INPUT_SIZE).contains(&size) {
                errs.push(format!("data.size: {size} (allowed: 1..={MAX_INPUT_SIZE})"));
            }
        }
        errs
    }
}

/// How to load a dataset.
#[derive(Clone, Debug)]
pub struct DataOptions {
    /// The dataset's folder (see each dataset's expected layout). `None`: the dataset's default
    /// (embedded for `digits`/`digits_dvs`, `/usr/share/datasets/fashion-mnist` for
    /// `fashion_mnist`; the others need a folder).
    pub data_dir: Option<PathBuf>,
    /// Time steps T (event data is framed into T frames).
    pub timesteps: usize,
    /// Resize to `size x size`; `None` = the dataset's default (digits 16, MNIST 28, CIFAR 32,
    /// DVS sets 48, digits_dvs 16).
    pub size: Option<usize>,
    /// Run seed. The built-in splits are properties of the datasets and do not use it.
    pub seed: u64,
    /// CIFAR-100: the 20 coarse labels instead of the 100 fine labels.
    pub cifar100_coarse: bool,
    /// CIFAR10-DVS split: `"9:1"` (default) or `"tebn"`.
    pub cifar10_dvs_split: String,
    /// Where framed event tensors are cached; `None` = `<data_dir>/.msenas-cache` (no cache
    /// when there is no data folder either).
    pub cache_dir: Option<PathBuf>,
}

impl Default for DataOptions {
    fn default() -> Self {
        DataOptions {
            data_dir: None,
            timesteps: 4,
            size: None,
            seed: 0,
            cifar100_coarse: false,
            cifar10_dvs_split: "9:1".to_string(),
            cache_dir: None,
        }
    }
}

impl DataOptions {
    /// The cache folder for framed tensors, if any.
    pub fn resolved_cache_dir(&self) -> Option<PathBuf> {
        self.cache_dir
            .clone()
            .or_else(|| self.data_dir.as_ref().map(|d| d.join(".msenas-cache")))
    }
}

/// One registry entry: a dataset name and its loader.
pub struct Entry {
    pub name: &'static str,
    pub about: &'static str,
    pub load: fn(&DataOptions) -> Result<Dataset>,
}

/// Every dataset msenas knows. Adding a dataset is one entry here.
pub const REGISTRY: &[Entry] = &[
    Entry {
        name: "digits",
        about: "1,797 handwritten 8x8 digits (embedded), upsampled; split 60/20/20 per class",
        load: digits::load_digits,
    },
    Entry {
        name: "digits_dvs",
        about: "events made offline from the digits by saccade-like shifts (embedded)",
        load: digits::load_digits_dvs,
    },
    Entry {
        name: "mnist",
        about: "MNIST, gzipped IDX files (train-images-idx3-ubyte.gz, ...)",
        load: idx::load_mnist,
    },
    Entry {
        name: "fashion_mnist",
        about: "Fashion-MNIST, gzipped IDX files (default /usr/share/datasets/fashion-mnist)",
        load: idx::load_fashion_mnist,
    },
    Entry {
        name: "cifar10",
        about: "CIFAR-10 binary version (cifar-10-batches-bin/)",
        load: cifar::load_cifar10,
    },
    Entry {
        name: "cifar100",
        about: "CIFAR-100 binary version (cifar-100-binary/)",
        load: cifar::load_cifar100,
    },
    Entry {
        name: "dvs128_gesture",
        about: "IBM DVS128 Gesture, AEDAT 3.1 (DvsGesture/)",
        load: dvs::load_gesture,
    },
    Entry {
        name: "cifar10_dvs",
        about: "CIFAR10-DVS, AEDAT 2.0 per class folder",
        load: dvs::load_cifar10_dvs,
    },
];

/// The known dataset names, in registry order.
pub fn names() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| REGISTRY.iter().map(|e| e.name).collect())
}

/// Loads a dataset by name.
pub fn load(name: &str, opts: &DataOptions) -> Result<Dataset> {
    let Some(entry) = REGISTRY.iter().find(|e| e.name == name) else {
        return Err(Error::input(format!(
            "unknown dataset '{name}' (known: {})",
            names().join(", ")
        )));
    };
    if opts.timesteps == 0 {
        return Err(Error::input(format!(
            "{name}: timesteps must be at least 1"
        )));
    }
    let max = MAX_INPUT_SIZE;
    if let Some(size) = opts.size.filter(|s| !(1..=max).contains(s)) {
        return Err(Error::input(format!(
            "{name}: input size {size} (allowed: 1..={max})"
        )));
    }
    if opts.timesteps > crate::genome::MAX_TIMESTEPS {
        return Err(Error::input(format!(
            "{name}: timesteps {} (allowed: 1..={})",
            opts.timesteps,
            crate::genome::MAX_TIMESTEPS
        )));
    }
    (entry.load)(opts)
}

// ---------------------------------------------------------------------------------------------
// Shared helpers for the readers.

/// `Error::Input` as one line: `<dataset>: <path>: <what> (expected <layout>)`.
pub(crate) fn bad_file(dataset: &str, path: &Path, what: impl Display, layout: &str) -> Error {
    Error::input(format!(
        "{dataset}: {}: {what} (expected {layout})",
        path.display()
    ))
}

/// Reads a whole file; a missing or unreadable file is an `Error::Input` naming the layout.
pub(crate) fn read_file(dataset: &str, path: &Path, layout: &str) -> Result<Vec<u8>> {
    crate::fsio::read_bounded(path, crate::fsio::MAX_DATA_BYTES, "dataset file").map_err(|e| {
        let what = match &e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                "file not found".to_string()
            }
            Error::Io { source, .. } => format!("cannot read: {source}"),
            // The bounded reader's own message already names the path.
            other => {
                let m = other.to_string();
                let prefix = format!("{}: ", path.display());
                m.strip_prefix(&prefix).map(str::to_string).unwrap_or(m)
            }
        };
        bad_file(dataset, path, what, layout)
    })
}

/// Checks that `dir` is a folder.
pub(crate) fn need_dir(dataset: &str, dir: &Path, layout: &str) -> Result<()> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(bad_file(dataset, dir, "folder not found", layout))
    }
}

/// The data folder a dataset needs, or an error saying how to give it.
pub(crate) fn need_data_dir<'a>(
    dataset: &str,
    opts: &'a DataOptions,
    layout: &str,
) -> Result<&'a Path> {
    opts.data_dir.as_deref().ok_or_else(|| {
        Error::input(format!(
            "{dataset}: no data folder given (set --data-dir to the folder holding {layout})"
        ))
    })
}

/// Sample indices grouped by class (index = class), each list in ascending order.
pub(crate) fn by_class(labels: &[u16]) -> Vec<Vec<usize>> {
    let classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut per = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        per[l as usize].push(i);
    }
    per
}

/// SplitMix64: a tiny fixed generator for the splits and synthetic data that are properties of
/// a dataset (independent of the `rand` crate's algorithms and versions).
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1) with 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Uniform in 0..n (n > 0), by rejection.
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// Splits `labels` per class into parts: `counts(class_size)` gives the sizes of the leading
/// parts (the rest goes to the last part). With `shuffle_seed` each class's indices are shuffled
/// by a fixed generator first, otherwise file order is kept. Every part is returned in ascending
/// index order.
pub(crate) fn split_per_class(
    labels: &[u16],
    shuffle_seed: Option<u64>,
    counts: impl Fn(usize) -> Vec<usize>,
) -> Vec<Vec<usize>> {
    let mut parts: Vec<Vec<usize>> = Vec::new();
    for (class, mut members) in by_class(labels).into_iter().enumerate() {
        if let Some(seed) = shuffle_seed {
            SplitMix64(seed ^ (class as u64).wrapping_mul(0xA24B_AED4_963E_E407))
                .shuffle(&mut members);
        }
        let sizes = counts(members.len());
        if parts.is_empty() {
            parts = vec![Vec::new(); sizes.len() + 1];
        }
        let mut start = 0;
        for (p, &s) in sizes.iter().enumerate() {
            let end = (start + s).min(members.len());
            parts[p].extend_from_slice(&members[start..end]);
            start = end;
        }
        parts
            .last_mut()
            .unwrap()
            .extend_from_slice(&members[start..]);
    }
    for p in parts.iter_mut() {
        p.sort_unstable();
    }
    parts
}

/// Holds out `round(frac * n_c)` samples of every class (the last ones in file order, or a fixed
/// shuffle with `shuffle_seed`): returns (kept, held out).
pub(crate) fn holdout(
    labels: &[u16],
    frac: f64,
    shuffle_seed: Option<u64>,
) -> (Vec<usize>, Vec<usize>) {
    let mut parts = split_per_class(labels, shuffle_seed, |n| {
        let held = ((n as f64) * frac).round() as usize;
        vec![n - held]
    });
    if parts.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let held = parts.pop().unwrap();
    (parts.pop().unwrap(), held)
}

/// The data spec of a dataset by name at its stored size, without loading it.
pub fn spec_by_name(name: &str, timesteps: usize) -> Result<DataSpec> {
    let (in_ch, size, classes, event) = match name {
        "digits" => (1, 16, 10, false),
        "cifar10" => (3, 32, 10, false),
        "cifar100" => (3, 32, 100, false),
        "mnist" | "fashion_mnist" => (1, 28, 10, false),
        "digits_dvs" => (2, 16, 10, true),
        "dvs128_gesture" => (2, 48, 11, true),
        "cifar10_dvs" => (2, 48, 10, true),
        other => {
            return Err(Error::input(format!(
                "--dataset: '{other}' unknown (allowed: digits, cifar10, cifar100, mnist, fashion_mnist, digits_dvs, dvs128_gesture, cifar10_dvs)"
            )))
        }
    };
    Ok(DataSpec {
        in_ch,
        height: size,
        width: size,
        classes,
        timesteps,
        event,
    })
}

/// The plan compiler's view of a split.
pub(crate) fn spec_of(split: &Split, classes: usize, timesteps: usize, event: bool) -> DataSpec {
    DataSpec {
        in_ch: split.c,
        height: split.h,
        width: split.w,
        classes,
        timesteps,
        event,
    }
}

/// Resizes every plane of a split's samples to `size x size` (no-op when already that size).
pub(crate) fn resize_split(s: Split, size: usize) -> Split {
    if s.h == size && s.w == size {
        return s;
    }
    let planes = s.n * s.frames * s.c;
    let x = resize::resize(&s.x, planes, s.h, s.w, size, size);
    Split {
        x,
        h: size,
        w: size,
        ..s
    }
}

#[cfg(test)]
mod tests;
