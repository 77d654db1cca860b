//! `digits` (the embedded 1,797 8x8 handwritten digits) and `digits_dvs` (events made offline
//! from them).

use std::io::Read;

use super::frames::{cached, frame_events, Event};
use super::{spec_of, split_per_class, DataOptions, Dataset, Split, SplitMix64};
use crate::{Error, Result};

/// `assets/digits.csv.gz`: one row per image, 64 integers 0..16 (row-major 8x8), then the label.
static DIGITS_CSV_GZ: &[u8] = include_bytes!("../../assets/digits.csv.gz");

/// Fixed seed of the 60/20/20 split (a property of the dataset, not of a run).
const SPLIT_SEED: u64 = 0x0D16_175E_ED00_0001;
/// Default side of the upsampled digits.
pub const DEFAULT_SIZE: usize = 16;

/// The raw digits: `(pixels 0..16 row-major 8x8, label)`.
pub(crate) fn raw_digits() -> Result<(Vec<[u8; 64]>, Vec<u16>)> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(DIGITS_CSV_GZ)
        .read_to_string(&mut text)
        .map_err(|e| Error::input(format!("digits: embedded assets/digits.csv.gz: {e}")))?;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (line_no, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || {
            Error::input(format!("digits: embedded assets/digits.csv.gz: row {} is not 64 pixels 0..16 and a label 0..9", line_no + 1))
        };
        let vals: Vec<u8> = line
            .split(',')
            .map(|v| v.trim().parse::<u8>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| bad())?;
        if vals.len() != 65 || vals[..64].iter().any(|&v| v > 16) || vals[64] > 9 {
            return Err(bad());
        }
        images.push(vals[..64].try_into().unwrap());
        labels.push(vals[64] as u16);
    }
    Ok((images, labels))
}

/// The fixed split of the digits: per class, a fixed shuffle, then 60% train, 20% val, the rest
/// (about 20%) test (counts rounded to nearest). Returns (train, val, test) indices into the
/// 1,797 rows, each ascending.
pub fn digits_split(labels: &[u16]) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let mut parts = split_per_class(labels, Some(SPLIT_SEED), |n| {
        let train = (n as f64 * 0.6).round() as usize;
        let val = (n as f64 * 0.2).round() as usize;
        vec![train, val]
    });
    let test = parts.pop().unwrap();
    let val = parts.pop().unwrap();
    let train = parts.pop().unwrap();
    (train, val, test)
}

fn class_names() -> Vec<String> {
    (0..10).map(|d| d.to_string()).collect()
}

/// The digits upsampled to `size x size` (pixel / 16 in [0, 1]), all 1,797 as one split.
fn all_static(size: usize) -> Result<Split> {
    let (images, labels) = raw_digits()?;
    let mut x = Vec::with_capacity(images.len() * 64);
    for im in &images {
        x.extend(im.iter().map(|&v| v as f32 / 16.0));
    }
    let all = Split {
        x,
        labels,
        n: images.len(),
        frames: 1,
        c: 1,
        h: 8,
        w: 8,
    };
    Ok(super::resize_split(all, size))
}

pub(crate) fn load_digits(opts: &DataOptions) -> Result<Dataset> {
    let size = opts.size.unwrap_or(DEFAULT_SIZE);
    let all = all_static(size)?;
    let (tr, va, te) = digits_split(&all.labels);
    let train = all.subset(&tr);
    Ok(Dataset {
        name: "digits".into(),
        spec: spec_of(&train, 10, opts.timesteps, false),
        val: all.subset(&va),
        test: all.subset(&te),
        train,
        class_names: class_names(),
        notes: format!(
            "embedded UCI/scikit-learn digits (1,797 8x8), pixel/16, bilinear (align_corners=false) to {size}x{size}; fixed stratified split 60/20/20 per class"
        ),
    })
}

// ---------------------------------------------------------------------------------------------
// digits_dvs

/// Positions of the simulated gaze per sample (steps = positions - 1).
const SACCADE_POSITIONS: usize = 16;
/// Time per step, µs.
const STEP_US: u64 = 1000;
/// Contrast threshold: one event per `THRESHOLD` of intensity change (intensities in [0, 1]).
const THRESHOLD: f32 = 0.15;
/// Largest gaze offset from the start, in digit pixels (one digit pixel = size/8 sensor pixels).
const MAX_OFFSET: f64 = 1.5;
const DVS_SEED: u64 = 0xD161_75D7_5000_0001;

/// The events of digits sample `index` at sensor size `size x size`.
///
/// The digit (upsampled to `size x size`, values in [0, 1]) is viewed at a sequence of
/// [`SACCADE_POSITIONS`] gaze offsets: it starts at (0, 0); every step moves by 0.5..1.0 digit
/// pixels in a random direction (a component that would leave `[-1.5, 1.5]` digit pixels is
/// reversed), drawn from a generator seeded by the sample index alone. The view at an offset is
/// the image shifted by it (bilinear, zero outside). Between consecutive views, a pixel whose
/// intensity changes by `d` emits `floor(|d| / 0.15)` events, ON (p = 1) for an increase and
/// OFF (p = 0) for a decrease, at times spread evenly inside the step's 1 ms. Events are sorted
/// by time (ties in pixel order). Never empty: should no change cross the threshold, the
/// brightest pixel emits one ON event.
pub fn digit_events(image: &[f32], size: usize, index: usize) -> Vec<Event> {
    assert_eq!(image.len(), size * size);
    let mut rng = SplitMix64(DVS_SEED ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let scale = size as f64 / 8.0;
    let mut pos = vec![(0.0f64, 0.0f64)];
    for _ in 1..SACCADE_POSITIONS {
        let (py, px) = *pos.last().unwrap();
        let ang = rng.unit() * std::f64::consts::TAU;
        let mag = 0.5 + 0.5 * rng.unit();
        let (mut sy, mut sx) = (mag * ang.sin(), mag * ang.cos());
        if (py + sy).abs() > MAX_OFFSET {
            sy = -sy;
        }
        if (px + sx).abs() > MAX_OFFSET {
            sx = -sx;
        }
        pos.push((py + sy, px + sx));
    }
    let view = |(oy, ox): (f64, f64)| -> Vec<f32> {
        let (oy, ox) = ((oy * scale) as f32, (ox * scale) as f32);
        let mut v = vec![0.0f32; size * size];
        for y in 0..size {
            for x in 0..size {
                v[y * size + x] = sample_zero(image, size, y as f32 - oy, x as f32 - ox);
            }
        }
        v
    };
    let mut events = Vec::new();
    let mut prev = view(pos[0]);
    for (k, &p) in pos.iter().enumerate().skip(1) {
        let cur = view(p);
        for (i, (&a, &b)) in prev.iter().zip(&cur).enumerate() {
            let d = b - a;
            let count = (d.abs() / THRESHOLD).floor() as u64;
            for j in 0..count {
                events.push(Event {
                    t: (k as u64 - 1) * STEP_US + (j + 1) * STEP_US / (count + 1),
                    x: (i % size) as u16,
                    y: (i / size) as u16,
                    p: (d > 0.0) as u8,
                });
            }
        }
        prev = cur;
    }
    if events.is_empty() {
        let (i, _) =
            image.iter().enumerate().fold(
                (0, f32::MIN),
                |best, (i, &v)| if v > best.1 { (i, v) } else { best },
            );
        events.push(Event {
            t: 0,
            x: (i % size) as u16,
            y: (i / size) as u16,
            p: 1,
        });
    }
    events.sort_by_key(|e| e.t);
    events
}

fn sample_zero(p: &[f32], size: usize, y: f32, x: f32) -> f32 {
    let (y0, x0) = (y.floor(), x.floor());
    let (ly, lx) = (y - y0, x - x0);
    let at = |yy: f32, xx: f32| -> f32 {
        if yy < 0.0 || xx < 0.0 || yy >= size as f32 || xx >= size as f32 {
            0.0
        } else {
            p[yy as usize * size + xx as usize]
        }
    };
    at(y0, x0) * (1.0 - ly) * (1.0 - lx)
        + at(y0, x0 + 1.0) * (1.0 - ly) * lx
        + at(y0 + 1.0, x0) * ly * (1.0 - lx)
        + at(y0 + 1.0, x0 + 1.0) * ly * lx
}

pub(crate) fn load_digits_dvs(opts: &DataOptions) -> Result<Dataset> {
    let size = opts.size.unwrap_or(DEFAULT_SIZE);
    let t = opts.timesteps;
    let key =
        format!("digits_dvs|v1|positions={SACCADE_POSITIONS}|thr={THRESHOLD}|T={t}|size={size}");
    let cache_dir = opts.resolved_cache_dir();
    let (all, hit) = cached(cache_dir.as_deref(), &key, || {
        let stat = all_static(size)?;
        let mut out = Split::empty(t, 2, size, size);
        for i in 0..stat.n {
            let ev = digit_events(stat.sample(i), size, i);
            out.push(&frame_events(&ev, t, size, size), stat.labels[i]);
        }
        Ok(out)
    })?;
    let (tr, va, te) = digits_split(&all.labels);
    let train = all.subset(&tr);
    Ok(Dataset {
        name: "digits_dvs".into(),
        spec: spec_of(&train, 10, t, true),
        val: all.subset(&va),
        test: all.subset(&te),
        train,
        class_names: class_names(),
        notes: format!(
            "events from the embedded digits at {size}x{size} ({SACCADE_POSITIONS} saccade positions, threshold {THRESHOLD}), {t} time bins{}; the digits' fixed 60/20/20 split",
            if hit { " (from cache)" } else { "" }
        ),
    })
}
