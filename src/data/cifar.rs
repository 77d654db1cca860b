//! CIFAR-10 and CIFAR-100, binary version.
//!
//! Pixels are scaled to [0, 1] and normalised per channel with the usual statistics of the
//! training sets: CIFAR-10 mean (0.4914, 0.4822, 0.4465), std (0.2470, 0.2435, 0.2616);
//! CIFAR-100 mean (0.5071, 0.4865, 0.4409), std (0.2673, 0.2564, 0.2762).

use std::path::{Path, PathBuf};

use super::{
    bad_file, holdout, need_data_dir, need_dir, read_file, resize_split, spec_of, DataOptions,
    Dataset, Split,
};
use crate::Result;

const LAYOUT10: &str =
    "the CIFAR-10 binary version: cifar-10-batches-bin/data_batch_1..5.bin, test_batch.bin";
const LAYOUT100: &str = "the CIFAR-100 binary version: cifar-100-binary/train.bin, test.bin";

pub const CIFAR10_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
pub const CIFAR10_STD: [f32; 3] = [0.2470, 0.2435, 0.2616];
pub const CIFAR100_MEAN: [f32; 3] = [0.5071, 0.4865, 0.4409];
pub const CIFAR100_STD: [f32; 3] = [0.2673, 0.2564, 0.2762];

const CIFAR10_NAMES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// `<dir>/<sub>`, or `<dir>` itself when it already holds `probe`.
fn folder(dir: &Path, sub: &str, probe: &str) -> PathBuf {
    let inner = dir.join(sub);
    if !inner.is_dir() && dir.join(probe).is_file() {
        dir.to_path_buf()
    } else {
        inner
    }
}

/// Reads CIFAR records: `label_bytes` label bytes (the one at `label_at` is used, must be below
/// `classes`), then 3,072 pixel bytes (R, G, B planes of 32x32).
#[allow(clippy::too_many_arguments)]
fn read_records(
    ds: &str,
    path: &Path,
    layout: &str,
    label_bytes: usize,
    label_at: usize,
    classes: usize,
    mean: &[f32; 3],
    std: &[f32; 3],
    out: &mut Split,
) -> Result<()> {
    let b = read_file(ds, path, layout)?;
    let rec = label_bytes + 3072;
    if b.is_empty() || b.len() % rec != 0 {
        return Err(bad_file(
            ds,
            path,
            format!(
                "length {} is not a multiple of the {rec}-byte record",
                b.len()
            ),
            layout,
        ));
    }
    for (i, r) in b.chunks_exact(rec).enumerate() {
        let label = r[label_at] as usize;
        if label >= classes {
            return Err(bad_file(
                ds,
                path,
                format!("record {i} has label {label}, outside 0..{}", classes - 1),
                layout,
            ));
        }
        out.labels.push(label as u16);
        for (j, &v) in r[label_bytes..].iter().enumerate() {
            let ch = j / 1024;
            out.x.push((v as f32 / 255.0 - mean[ch]) / std[ch]);
        }
        out.n += 1;
    }
    Ok(())
}

/// Class names from a text file (one per non-blank line), or `fallback` when the file is absent
/// or does not hold `classes` names.
fn names_from(path: &Path, classes: usize, fallback: impl Fn(usize) -> String) -> Vec<String> {
    if let Ok(text) = crate::fsio::read_text(path, "class-name file") {
        let names: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        if names.len() == classes {
            return names;
        }
    }
    (0..classes).map(fallback).collect()
}

fn finish(
    ds: &str,
    full: Split,
    test: Split,
    names: Vec<String>,
    opts: &DataOptions,
    note: String,
) -> Dataset {
    let (tr, va) = holdout(&full.labels, 0.1, None);
    let size = opts.size.unwrap_or(32);
    let train = resize_split(full.subset(&tr), size);
    let val = resize_split(full.subset(&va), size);
    let test = resize_split(test, size);
    Dataset {
        name: ds.into(),
        spec: spec_of(&train, names.len(), opts.timesteps, false),
        train,
        val,
        test,
        class_names: names,
        notes: format!(
            "{note}; normalised per channel; {size}x{size}; val = the last 10% of train per class in file order (5,000 on the full set), test = the test file"
        ),
    }
}

pub(crate) fn load_cifar10(opts: &DataOptions) -> Result<Dataset> {
    let ds = "cifar10";
    let dir = folder(
        need_data_dir(ds, opts, LAYOUT10)?,
        "cifar-10-batches-bin",
        "data_batch_1.bin",
    );
    need_dir(ds, &dir, LAYOUT10)?;
    let mut full = Split::empty(1, 3, 32, 32);
    for k in 1..=5 {
        let p = dir.join(format!("data_batch_{k}.bin"));
        read_records(
            ds,
            &p,
            LAYOUT10,
            1,
            0,
            10,
            &CIFAR10_MEAN,
            &CIFAR10_STD,
            &mut full,
        )?;
    }
    let mut test = Split::empty(1, 3, 32, 32);
    read_records(
        ds,
        &dir.join("test_batch.bin"),
        LAYOUT10,
        1,
        0,
        10,
        &CIFAR10_MEAN,
        &CIFAR10_STD,
        &mut test,
    )?;
    let names = names_from(&dir.join("batches.meta.txt"), 10, |i| {
        CIFAR10_NAMES[i].to_string()
    });
    Ok(finish(
        ds,
        full,
        test,
        names,
        opts,
        format!("{}", dir.display()),
    ))
}

pub(crate) fn load_cifar100(opts: &DataOptions) -> Result<Dataset> {
    let ds = "cifar100";
    let dir = folder(
        need_data_dir(ds, opts, LAYOUT100)?,
        "cifar-100-binary",
        "train.bin",
    );
    need_dir(ds, &dir, LAYOUT100)?;
    let (label_at, classes, names_file, kind) = if opts.cifar100_coarse {
        (0, 20, "coarse_label_names.txt", "coarse (20) labels")
    } else {
        (1, 100, "fine_label_names.txt", "fine (100) labels")
    };
    let mut full = Split::empty(1, 3, 32, 32);
    read_records(
        ds,
        &dir.join("train.bin"),
        LAYOUT100,
        2,
        label_at,
        classes,
        &CIFAR100_MEAN,
        &CIFAR100_STD,
        &mut full,
    )?;
    let mut test = Split::empty(1, 3, 32, 32);
    read_records(
        ds,
        &dir.join("test.bin"),
        LAYOUT100,
        2,
        label_at,
        classes,
        &CIFAR100_MEAN,
        &CIFAR100_STD,
        &mut test,
    )?;
    let names = names_from(&dir.join(names_file), classes, |i| format!("class_{i}"));
    Ok(finish(
        ds,
        full,
        test,
        names,
        opts,
        format!("{}, {kind}", dir.display()),
    ))
}
