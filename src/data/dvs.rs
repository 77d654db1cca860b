//! Event datasets read from recordings: DVS128 Gesture (AEDAT 3.1) and CIFAR10-DVS (AEDAT 2.0).
//! Recordings are framed at the 128x128 sensor ([`super::frames::frame_events`]), resized to
//! `size` (default 48, area averaging) and cached.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::aedat::{read_aedat20, read_aedat31};
use super::frames::{cached, frame_and_resize, Event};
use super::{
    bad_file, holdout, need_data_dir, need_dir, read_file, spec_of, DataOptions, Dataset, Split,
};
use crate::{Error, Result};

const SENSOR: usize = 128;
pub const DEFAULT_EVENT_SIZE: usize = 48;
const VAL_SEED: u64 = 0x0E7E_0000_7A15_0001;

const GESTURE_LAYOUT: &str = "DvsGesture/ with userNN_<lighting>.aedat (AEDAT 3.1), userNN_<lighting>_labels.csv, trials_to_train.txt, trials_to_test.txt";
const GESTURE_NAMES: [&str; 11] = [
    "hand clapping",
    "right hand wave",
    "left hand wave",
    "right arm clockwise",
    "right arm counter-clockwise",
    "left arm clockwise",
    "left arm counter-clockwise",
    "arm roll",
    "air drums",
    "air guitar",
    "other gestures",
];

const C10DVS_LAYOUT: &str = "CIFAR10-DVS: <dir>/<class>/cifar10_<class>_<i>.aedat (AEDAT 2.0) for the classes airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck";
const C10_NAMES: [&str; 10] = [
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

fn check_sensor(ds: &str, path: &Path, events: &[Event], layout: &str) -> Result<()> {
    if let Some(e) = events
        .iter()
        .find(|e| e.x as usize >= SENSOR || e.y as usize >= SENSOR)
    {
        return Err(bad_file(
            ds,
            path,
            format!(
                "event at x={} y={} (t={}) is outside the 128x128 sensor",
                e.x, e.y, e.t
            ),
            layout,
        ));
    }
    Ok(())
}

/// The summed sizes of the files (part of a cache key: a replaced recording misses the cache).
fn total_bytes(paths: &[PathBuf]) -> u64 {
    paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// How the 128x128 frames are resized to `size` (see [`super::resize`]).
fn resize_kind(size: usize) -> &'static str {
    match size.cmp(&SENSOR) {
        std::cmp::Ordering::Less => "area",
        std::cmp::Ordering::Equal => "not resized",
        std::cmp::Ordering::Greater => "bilinear",
    }
}

fn canonical(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// DVS128 Gesture

/// One labelled interval of a trial: `(label 0..10, start, end)`, µs.
pub(crate) fn read_gesture_labels(ds: &str, path: &Path) -> Result<Vec<(u16, u64, u64)>> {
    let b = read_file(ds, path, GESTURE_LAYOUT)?;
    let text =
        String::from_utf8(b).map_err(|_| bad_file(ds, path, "not a text file", GESTURE_LAYOUT))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (i == 0 && line.starts_with("class")) {
            continue;
        }
        let bad = || {
            bad_file(
                ds,
                path,
                format!(
                    "line {} '{line}' is not 'class,startTime_usec,endTime_usec' with class 1..11",
                    i + 1
                ),
                GESTURE_LAYOUT,
            )
        };
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != 3 {
            return Err(bad());
        }
        let class: u16 = f[0].parse().map_err(|_| bad())?;
        let start: u64 = f[1].parse().map_err(|_| bad())?;
        let end: u64 = f[2].parse().map_err(|_| bad())?;
        if !(1..=11).contains(&class) {
            return Err(bad());
        }
        rows.push((class - 1, start, end));
    }
    Ok(rows)
}

fn read_trial_list(ds: &str, path: &Path) -> Result<Vec<String>> {
    let b = read_file(ds, path, GESTURE_LAYOUT)?;
    let text =
        String::from_utf8(b).map_err(|_| bad_file(ds, path, "not a text file", GESTURE_LAYOUT))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// Frames every labelled interval of the listed trials (one sample per csv row, events with
/// `start <= t < end`), in list then row order.
fn gesture_split(ds: &str, root: &Path, trials: &[String], t: usize, size: usize) -> Result<Split> {
    let per_trial: Vec<Vec<(Vec<f32>, u16)>> = trials
        .par_iter()
        .map(|name| -> Result<Vec<(Vec<f32>, u16)>> {
            let path = root.join(name);
            let stem = name.strip_suffix(".aedat").unwrap_or(name);
            let labels = read_gesture_labels(ds, &root.join(format!("{stem}_labels.csv")))?;
            let bytes = read_file(ds, &path, GESTURE_LAYOUT)?;
            let events =
                read_aedat31(&bytes).map_err(|m| bad_file(ds, &path, m, GESTURE_LAYOUT))?;
            check_sensor(ds, &path, &events, GESTURE_LAYOUT)?;
            Ok(labels
                .iter()
                .map(|&(label, start, end)| {
                    let ev: Vec<Event> = events
                        .iter()
                        .copied()
                        .filter(|e| e.t >= start && e.t < end)
                        .collect();
                    (frame_and_resize(&ev, t, SENSOR, SENSOR, size), label)
                })
                .collect())
        })
        .collect::<Result<_>>()?;
    let mut out = Split::empty(t, 2, size, size);
    for (x, l) in per_trial.iter().flatten() {
        out.push(x, *l);
    }
    Ok(out)
}

pub(crate) fn load_gesture(opts: &DataOptions) -> Result<Dataset> {
    let ds = "dvs128_gesture";
    let dir = need_data_dir(ds, opts, GESTURE_LAYOUT)?;
    let root: PathBuf = if dir.join("DvsGesture").is_dir() {
        dir.join("DvsGesture")
    } else {
        dir.to_path_buf()
    };
    need_dir(ds, &root, GESTURE_LAYOUT)?;
    let (t, size) = (opts.timesteps, opts.size.unwrap_or(DEFAULT_EVENT_SIZE));
    let train_list = read_trial_list(ds, &root.join("trials_to_train.txt"))?;
    let test_list = read_trial_list(ds, &root.join("trials_to_test.txt"))?;
    let cache_dir = opts.resolved_cache_dir();
    let mut hits = 0;
    let mut load_part = |part: &str, list: &[String]| -> Result<Split> {
        let paths: Vec<PathBuf> = list
            .iter()
            .flat_map(|n| {
                let stem = n.strip_suffix(".aedat").unwrap_or(n);
                [root.join(n), root.join(format!("{stem}_labels.csv"))]
            })
            .collect();
        let key = format!(
            "{ds}|v1|{}|{part}|{}|bytes={}|T={t}|size={size}",
            canonical(&root),
            list.join(","),
            total_bytes(&paths)
        );
        let (s, hit) = cached(cache_dir.as_deref(), &key, || {
            gesture_split(ds, &root, list, t, size)
        })?;
        hits += hit as usize;
        Ok(s)
    };
    let full = load_part("train", &train_list)?;
    let test = load_part("test", &test_list)?;
    let (tr, va) = holdout(&full.labels, 0.1, Some(VAL_SEED));
    let train = full.subset(&tr);
    Ok(Dataset {
        name: ds.into(),
        spec: spec_of(&train, 11, t, true),
        val: full.subset(&va),
        test,
        train,
        class_names: GESTURE_NAMES.iter().map(|s| s.to_string()).collect(),
        notes: format!(
            "{}: one sample per labels.csv row, {t} equal time bins, 128x128 -> {size}x{size} ({}); IBM trials_to_train/test split, val = a fixed stratified 10% of train{}",
            root.display(),
            resize_kind(size),
            if hits == 2 { " (frames from cache)" } else { "" }
        ),
    })
}

// ---------------------------------------------------------------------------------------------
// CIFAR10-DVS

/// The recordings of every class folder, each list in lexicographic file-name order (the order
/// of spikingjelly's DatasetFolder).
fn c10dvs_files(ds: &str, root: &Path) -> Result<Vec<Vec<String>>> {
    C10_NAMES
        .iter()
        .map(|class| {
            let dir = root.join(class);
            let rd = std::fs::read_dir(&dir)
                .map_err(|_| bad_file(ds, &dir, "class folder not found", C10DVS_LAYOUT))?;
            let mut names: Vec<String> = rd
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.ends_with(".aedat"))
                .collect();
            if names.is_empty() {
                return Err(bad_file(ds, &dir, "no .aedat files", C10DVS_LAYOUT));
            }
            names.sort();
            Ok(names)
        })
        .collect()
}

/// The recording index `i` of `cifar10_<class>_<i>.aedat`.
fn file_index(name: &str) -> Option<usize> {
    name.strip_suffix(".aedat")?
        .rsplit('_')
        .next()?
        .parse()
        .ok()
}

pub(crate) fn load_cifar10_dvs(opts: &DataOptions) -> Result<Dataset> {
    let ds = "cifar10_dvs";
    let root = need_data_dir(ds, opts, C10DVS_LAYOUT)?.to_path_buf();
    need_dir(ds, &root, C10DVS_LAYOUT)?;
    let split = opts.cifar10_dvs_split.as_str();
    if split != "9:1" && split != "tebn" {
        return Err(Error::input(format!(
            "{ds}: unknown split '{split}' (known: 9:1, tebn)"
        )));
    }
    let files = c10dvs_files(ds, &root)?;
    let (t, size) = (opts.timesteps, opts.size.unwrap_or(DEFAULT_EVENT_SIZE));
    let counts: Vec<String> = files.iter().map(|f| f.len().to_string()).collect();
    let list: Vec<(usize, &String)> = files
        .iter()
        .enumerate()
        .flat_map(|(c, names)| names.iter().map(move |n| (c, n)))
        .collect();
    let paths: Vec<PathBuf> = list
        .iter()
        .map(|&(c, n)| root.join(C10_NAMES[c]).join(n))
        .collect();
    let key = format!(
        "{ds}|v1|{}|files={}|bytes={}|T={t}|size={size}",
        canonical(&root),
        counts.join(","),
        total_bytes(&paths)
    );
    let (all, hit) = cached(opts.resolved_cache_dir().as_deref(), &key, || {
        let mut out = Split::empty(t, 2, size, size);
        out.x.reserve(list.len() * out.sample_len());
        // In chunks, so that only one chunk's frames exist twice.
        for chunk in list.chunks(256) {
            let framed: Vec<Vec<f32>> = chunk
                .par_iter()
                .map(|&(c, name)| -> Result<Vec<f32>> {
                    let path = root.join(C10_NAMES[c]).join(name);
                    let bytes = read_file(ds, &path, C10DVS_LAYOUT)?;
                    let events =
                        read_aedat20(&bytes).map_err(|m| bad_file(ds, &path, m, C10DVS_LAYOUT))?;
                    Ok(frame_and_resize(&events, t, SENSOR, SENSOR, size))
                })
                .collect::<Result<_>>()?;
            for (x, &(c, _)) in framed.iter().zip(chunk) {
                out.push(x, c as u16);
            }
        }
        Ok(out)
    })?;
    // Train/test membership, in `list` order.
    let mut is_test = Vec::with_capacity(list.len());
    for names in &files {
        let keep = (names.len() as f64 * 0.9).ceil() as usize;
        for (k, name) in names.iter().enumerate() {
            is_test.push(if split == "9:1" {
                k >= keep
            } else {
                let i = file_index(name).ok_or_else(|| {
                    bad_file(
                        ds,
                        &root.join(name),
                        "file name does not end in _<index>.aedat (needed by the tebn split)",
                        C10DVS_LAYOUT,
                    )
                })?;
                i < 100
            });
        }
    }
    let train_idx: Vec<usize> = (0..all.n).filter(|&i| !is_test[i]).collect();
    let test_idx: Vec<usize> = (0..all.n).filter(|&i| is_test[i]).collect();
    let full = all.subset(&train_idx);
    let (tr, va) = holdout(&full.labels, 0.1, Some(VAL_SEED));
    let train = full.subset(&tr);
    let split_note = if split == "9:1" {
        "split 9:1 per class (first 90% in lexicographic file order train, as spikingjelly's split_to_train_test_set(0.9, random_split=False))"
    } else {
        "split tebn (recordings 0..99 of each class test, 100.. train, as spikingjelly's CIFAR10DVSTEBNSplit)"
    };
    Ok(Dataset {
        name: ds.into(),
        spec: spec_of(&train, 10, t, true),
        val: full.subset(&va),
        test: all.subset(&test_idx),
        train,
        class_names: C10_NAMES.iter().map(|s| s.to_string()).collect(),
        notes: format!(
            "{}: spikingjelly address mapping (x = 127 - Y, y = 127 - X, p = 1 - bit0), {t} equal time bins, 128x128 -> {size}x{size} ({}); {split_note}; val = a fixed stratified 10% of train{}",
            root.display(),
            resize_kind(size),
            if hit { " (frames from cache)" } else { "" }
        ),
    })
}
