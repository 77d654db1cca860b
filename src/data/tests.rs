//! Tests on the embedded digits and on small synthetic files written in the exact on-disk
//! formats (DATA_FORMATS.md §5).

use std::io::Write;
use std::path::Path;

use rand::SeedableRng;

use super::aedat::{read_aedat20, read_aedat31};
use super::digits::{digit_events, digits_split, raw_digits};
use super::*;
use crate::Error;

fn opts(dir: Option<&Path>) -> DataOptions {
    DataOptions {
        data_dir: dir.map(Path::to_path_buf),
        ..DataOptions::default()
    }
}

fn input_err(r: Result<Dataset>) -> String {
    match r {
        Err(Error::Input(m)) => {
            assert!(!m.contains('\n'), "one line: {m}");
            m
        }
        Err(e) => panic!("expected Error::Input, got {e:?}"),
        Ok(_) => panic!("expected an error"),
    }
}

fn class_counts(labels: &[u16], classes: usize) -> Vec<usize> {
    let mut c = vec![0; classes];
    for &l in labels {
        c[l as usize] += 1;
    }
    c
}

fn round(n: usize, f: f64) -> usize {
    (n as f64 * f).round() as usize
}

// ---------------------------------------------------------------------------------------------
// Registry, digits, splits, batches

#[test]
fn registry_names_and_unknown() {
    assert_eq!(
        names(),
        &[
            "digits",
            "digits_dvs",
            "mnist",
            "fashion_mnist",
            "cifar10",
            "cifar100",
            "dvs128_gesture",
            "cifar10_dvs"
        ]
    );
    let m = input_err(load("imagenet", &opts(None)));
    assert!(
        m.contains("imagenet") && m.contains("cifar10_dvs") && m.contains("digits"),
        "{m}"
    );
}

#[test]
fn digits_counts_and_split() {
    let (images, labels) = raw_digits().unwrap();
    assert_eq!(images.len(), 1797);
    let want = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180];
    assert_eq!(class_counts(&labels, 10), want);

    let d = load("digits", &opts(None)).unwrap();
    assert_eq!(d.train.n + d.val.n + d.test.n, 1797);
    let (tr, va, te) = (
        class_counts(&d.train.labels, 10),
        class_counts(&d.val.labels, 10),
        class_counts(&d.test.labels, 10),
    );
    for c in 0..10 {
        assert_eq!(tr[c], round(want[c], 0.6), "class {c}");
        assert_eq!(va[c], round(want[c], 0.2), "class {c}");
        assert_eq!(te[c], want[c] - tr[c] - va[c], "class {c}");
    }
    // Disjoint and covering.
    let (a, b, c) = digits_split(&labels);
    let mut all: Vec<usize> = a.iter().chain(&b).chain(&c).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..1797).collect::<Vec<_>>());
    // Shape and spec.
    assert_eq!(
        (d.train.frames, d.train.c, d.train.h, d.train.w),
        (1, 1, 16, 16)
    );
    assert_eq!(
        d.spec,
        DataSpec {
            in_ch: 1,
            height: 16,
            width: 16,
            classes: 10,
            timesteps: 4,
            event: false
        }
    );
    assert!(d.train.x.iter().all(|&v| (0.0..=1.0).contains(&v)));
    // The split is a property of the dataset, not of the run seed.
    let d2 = load(
        "digits",
        &DataOptions {
            seed: 99,
            ..opts(None)
        },
    )
    .unwrap();
    assert_eq!(d.train.labels, d2.train.labels);
    assert_eq!(d.test.x, d2.test.x);
    // size option: 8 keeps the raw pixels / 16.
    let d8 = load(
        "digits",
        &DataOptions {
            size: Some(8),
            ..opts(None)
        },
    )
    .unwrap();
    assert_eq!(d8.train.h, 8);
    let i0 = a[0];
    assert_eq!(
        d8.train.sample(0),
        images[i0]
            .iter()
            .map(|&v| v as f32 / 16.0)
            .collect::<Vec<_>>()
    );
}

fn toy_split(frames: usize) -> Split {
    // 3 samples, c=2, h=1, w=2; values encode (sample, frame, k).
    let mut s = Split::empty(frames, 2, 1, 2);
    for i in 0..3 {
        let x: Vec<f32> = (0..frames * 4).map(|k| (i * 100 + k) as f32).collect();
        s.push(&x, i as u16);
    }
    s
}

#[test]
fn batch_layout_static_and_event() {
    let s = toy_split(1);
    let b = s.batch(&[2, 0], 3);
    assert_eq!(b.len(), 3 * 2 * 4);
    for t in 0..3 {
        assert_eq!(
            &b[(t * 2) * 4..(t * 2 + 1) * 4],
            &[200.0, 201.0, 202.0, 203.0]
        );
        assert_eq!(&b[(t * 2 + 1) * 4..(t * 2 + 2) * 4], &[0.0, 1.0, 2.0, 3.0]);
    }
    assert_eq!(s.labels_of(&[2, 0]), vec![2, 0]);

    let e = toy_split(2);
    let b = e.batch(&[1, 2], 2);
    // [T, B, C, H, W]: t=1, b=0 is sample 1's second frame.
    assert_eq!(&b[0..4], &[100.0, 101.0, 102.0, 103.0]);
    assert_eq!(&b[4..8], &[200.0, 201.0, 202.0, 203.0]);
    assert_eq!(&b[8..12], &[104.0, 105.0, 106.0, 107.0]);
    assert_eq!(&b[12..16], &[204.0, 205.0, 206.0, 207.0]);
}

#[test]
#[should_panic]
fn batch_event_needs_matching_t() {
    toy_split(2).batch(&[0], 3);
}

#[test]
fn stratified_is_balanced_and_reproducible() {
    let d = load("digits", &opts(None)).unwrap();
    let mut r1 = rand::rngs::StdRng::seed_from_u64(5);
    let mut r2 = rand::rngs::StdRng::seed_from_u64(5);
    let a = d.train.stratified(25, &mut r1);
    assert_eq!(a, d.train.stratified(25, &mut r2));
    assert_eq!(a.len(), 25);
    let counts = class_counts(&d.train.labels_of(&a), 10);
    assert!(counts.iter().all(|&c| c == 2 || c == 3), "{counts:?}");
    let mut u = a.clone();
    u.sort_unstable();
    u.dedup();
    assert_eq!(u.len(), 25);
    // Round-robin order: the first ten are one per class.
    assert_eq!(d.train.labels_of(&a[..10]), (0..10).collect::<Vec<u16>>());
    let mut r3 = rand::rngs::StdRng::seed_from_u64(6);
    assert_ne!(a, d.train.stratified(25, &mut r3));
    // More than there are: all of them.
    let s = toy_split(1);
    assert_eq!(s.stratified(10, &mut r1).len(), 3);
}

// ---------------------------------------------------------------------------------------------
// IDX

fn gz(path: &Path, bytes: &[u8]) {
    let f = std::fs::File::create(path).unwrap();
    let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap();
}

fn idx_images(n: usize, rows: usize, cols: usize, magic: u32) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [magic, n as u32, rows as u32, cols as u32] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    for i in 0..n * rows * cols {
        b.push((i % 256) as u8);
    }
    b
}

fn idx_labels(labels: &[u8], magic: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&magic.to_be_bytes());
    b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    b.extend_from_slice(labels);
    b
}

fn write_idx_set(dir: &Path, n_train: usize, n_test: usize) {
    let lab = |n: usize| (0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>();
    gz(
        &dir.join("train-images-idx3-ubyte.gz"),
        &idx_images(n_train, 4, 4, 2051),
    );
    gz(
        &dir.join("train-labels-idx1-ubyte.gz"),
        &idx_labels(&lab(n_train), 2049),
    );
    gz(
        &dir.join("t10k-images-idx3-ubyte.gz"),
        &idx_images(n_test, 4, 4, 2051),
    );
    gz(
        &dir.join("t10k-labels-idx1-ubyte.gz"),
        &idx_labels(&lab(n_test), 2049),
    );
}

#[test]
fn idx_reads_and_holds_out_last_tenth_per_class() {
    let tmp = tempfile::tempdir().unwrap();
    write_idx_set(tmp.path(), 100, 20);
    let d = load("mnist", &opts(Some(tmp.path()))).unwrap();
    assert_eq!((d.train.n, d.val.n, d.test.n), (90, 10, 20));
    assert_eq!(class_counts(&d.val.labels, 10), vec![1; 10]);
    // val holds the last sample of each class: indices 90..99, pixel 0 of sample i is i*16 % 256.
    assert_eq!(d.val.sample(0)[0], ((90 * 16) % 256) as f32 / 255.0);
    assert_eq!((d.train.c, d.train.h, d.train.w), (1, 4, 4));
    assert_eq!(d.test.sample(1)[3], 19.0 / 255.0);
    let d = load(
        "fashion_mnist",
        &DataOptions {
            size: Some(2),
            ..opts(Some(tmp.path()))
        },
    )
    .unwrap();
    assert_eq!(
        (d.train.h, d.spec.height, d.class_names[9].as_str()),
        (2, 2, "ankle boot")
    );
}

#[test]
fn idx_malformed_files_name_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_idx_set(dir, 20, 10);
    let p = dir.join("train-images-idx3-ubyte.gz");
    gz(&p, &idx_images(20, 4, 4, 2052));
    let m = input_err(load("mnist", &opts(Some(dir))));
    assert!(
        m.contains(&p.display().to_string()) && m.contains("magic 2052"),
        "{m}"
    );
    // Short payload.
    let mut short = idx_images(20, 4, 4, 2051);
    short.truncate(100);
    gz(&p, &short);
    let m = input_err(load("mnist", &opts(Some(dir))));
    assert!(
        m.contains(&p.display().to_string()) && m.contains("payload"),
        "{m}"
    );
    // Counts disagree.
    gz(&p, &idx_images(19, 4, 4, 2051));
    let m = input_err(load("mnist", &opts(Some(dir))));
    assert!(
        m.contains("train-labels-idx1-ubyte.gz") && m.contains("19 images"),
        "{m}"
    );
    // Not gzip but garbage: wrong magic on the raw bytes.
    std::fs::write(&p, b"hello world, not idx").unwrap();
    let m = input_err(load("mnist", &opts(Some(dir))));
    assert!(m.contains("magic"), "{m}");
    // Truncated gzip stream.
    let mut buf = Vec::new();
    {
        let mut e = flate2::write::GzEncoder::new(&mut buf, flate2::Compression::fast());
        e.write_all(&idx_images(20, 4, 4, 2051)).unwrap();
        e.finish().unwrap();
    }
    std::fs::write(&p, &buf[..buf.len() / 2]).unwrap();
    let m = input_err(load("mnist", &opts(Some(dir))));
    assert!(m.contains("gzip"), "{m}");
    // Missing folder and missing data dir.
    let gone = dir.join("nope");
    let m = input_err(load("mnist", &opts(Some(&gone))));
    assert!(
        m.contains(&gone.display().to_string()) && m.contains("folder not found"),
        "{m}"
    );
    let m = input_err(load("mnist", &opts(None)));
    assert!(m.contains("--data-dir"), "{m}");
}

#[test]
fn idx_headers_are_checked_before_anything_is_allocated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_idx_set(dir, 20, 10);
    let p = dir.join("train-images-idx3-ubyte.gz");
    // Sizes whose product overflows 64 bits: one line, no panic.
    let mut h = Vec::new();
    for v in [2051u32, u32::MAX, u32::MAX, u32::MAX] {
        h.extend_from_slice(&v.to_be_bytes());
    }
    gz(&p, &h);
    let m = input_err(load("mnist", &opts(Some(dir))));
    assert!(m.contains("overflows"), "{m}");
    // A product that fits but is far beyond any real file.
    let mut h = Vec::new();
    for v in [2051u32, 1 << 20, 1 << 10, 1 << 10] {
        h.extend_from_slice(&v.to_be_bytes());
    }
    gz(&p, &h);
    let m = input_err(load("mnist", &opts(Some(dir))));
    assert!(m.contains("allowed: at most"), "{m}");
    // A compression bomb: the header promises 320 bytes, the stream inflates to 64 MiB; it is
    // refused after 337 bytes of output.
    let mut bomb = idx_images(20, 4, 4, 2051);
    bomb.resize(64 << 20, 0);
    gz(&p, &bomb);
    let m = input_err(load("mnist", &opts(Some(dir))));
    assert!(m.contains("inflates to more than 336 bytes"), "{m}");
}

#[test]
fn random_idx_files_never_panic() {
    use rand::{Rng, SeedableRng};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_idx_set(dir, 20, 10);
    let images = dir.join("t10k-images-idx3-ubyte");
    let labels = dir.join("t10k-labels-idx1-ubyte.gz");
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for case in 0..400 {
        // A valid header with random fields replaced, then a random payload length.
        let mut b = idx_images(3, 4, 4, 2051);
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..16);
            b[at] = if rng.random_bool(0.5) {
                rng.random()
            } else {
                0xff
            };
        }
        b.truncate(rng.random_range(0..b.len() + 1));
        std::fs::write(&images, &b).unwrap();
        match idx::read_idx_pair("mnist", &images, &labels) {
            Ok(s) => assert_eq!(s.x.len(), s.n * s.h * s.w, "case {case}"),
            Err(e) => assert!(matches!(e, crate::Error::Input(_)), "case {case}: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CIFAR

fn cifar_records(n: usize, label_bytes: &dyn Fn(usize) -> Vec<u8>) -> Vec<u8> {
    let mut b = Vec::new();
    for i in 0..n {
        b.extend(label_bytes(i));
        for j in 0..3072 {
            b.push(((i + j) % 256) as u8);
        }
    }
    b
}

#[test]
fn cifar10_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&dir).unwrap();
    for k in 1..=5 {
        std::fs::write(
            dir.join(format!("data_batch_{k}.bin")),
            cifar_records(20, &|i| vec![(i % 10) as u8]),
        )
        .unwrap();
    }
    std::fs::write(
        dir.join("test_batch.bin"),
        cifar_records(10, &|i| vec![(9 - i) as u8]),
    )
    .unwrap();
    let names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
    std::fs::write(dir.join("batches.meta.txt"), names).unwrap();
    let d = load("cifar10", &opts(Some(tmp.path()))).unwrap();
    assert_eq!((d.train.n, d.val.n, d.test.n), (90, 10, 10));
    assert_eq!(class_counts(&d.val.labels, 10), vec![1; 10]);
    assert_eq!(d.class_names[9], "truck");
    assert_eq!(d.test.labels[0], 9);
    assert_eq!((d.spec.in_ch, d.spec.height, d.spec.classes), (3, 32, 10));
    // Test sample 1: pixel j of plane ch is (1 + j) % 256, normalised per channel.
    let s = d.test.sample(1);
    let want = |j: usize| {
        let ch = j / 1024;
        (((1 + j) % 256) as f32 / 255.0 - cifar::CIFAR10_MEAN[ch]) / cifar::CIFAR10_STD[ch]
    };
    for j in [0, 5, 1024, 2047, 3071] {
        assert!((s[j] - want(j)).abs() < 1e-6);
    }
    // The data folder itself is accepted too.
    assert_eq!(load("cifar10", &opts(Some(&dir))).unwrap().test.n, 10);
    // A wrong length.
    let p = dir.join("data_batch_3.bin");
    std::fs::write(&p, vec![0u8; 3072]).unwrap();
    let m = input_err(load("cifar10", &opts(Some(tmp.path()))));
    assert!(m.contains(&p.display().to_string()), "{m}");
    assert!(
        m.contains("length 3072 is not a multiple of the 3073-byte record"),
        "{m}"
    );
    assert!(
        m.contains("cifar-10-batches-bin/data_batch_1..5.bin, test_batch.bin"),
        "{m}"
    );
    // A bad label.
    std::fs::write(&p, cifar_records(2, &|_| vec![10])).unwrap();
    let m = input_err(load("cifar10", &opts(Some(tmp.path()))));
    assert!(m.contains("label 10"), "{m}");
    // A missing file.
    std::fs::remove_file(&p).unwrap();
    let m = input_err(load("cifar10", &opts(Some(tmp.path()))));
    assert!(
        m.contains(&p.display().to_string()) && m.contains("not found"),
        "{m}"
    );
}

#[test]
fn cifar100_binary_fine_and_coarse() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar-100-binary");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("train.bin"),
        cifar_records(200, &|i| vec![(i % 20) as u8, (i % 100) as u8]),
    )
    .unwrap();
    std::fs::write(
        dir.join("test.bin"),
        cifar_records(5, &|i| vec![3, (50 + i) as u8]),
    )
    .unwrap();
    let coarse: String = (0..20).map(|i| format!("super{i}\n")).collect();
    std::fs::write(dir.join("coarse_label_names.txt"), coarse).unwrap();
    let d = load("cifar100", &opts(Some(tmp.path()))).unwrap();
    // 2 per fine class: 10% rounds to none held out.
    assert_eq!(
        (d.train.n, d.val.n, d.test.n, d.spec.classes),
        (200, 0, 5, 100)
    );
    assert_eq!(d.test.labels, vec![50, 51, 52, 53, 54]);
    assert_eq!(d.class_names[7], "class_7");
    let c = load(
        "cifar100",
        &DataOptions {
            cifar100_coarse: true,
            ..opts(Some(tmp.path()))
        },
    )
    .unwrap();
    assert_eq!((c.train.n, c.val.n, c.spec.classes), (180, 20, 20));
    assert_eq!(c.test.labels, vec![3; 5]);
    assert_eq!(c.class_names[19], "super19");
    let p = dir.join("test.bin");
    std::fs::write(&p, vec![0u8; 3074 * 2 + 1]).unwrap();
    let m = input_err(load("cifar100", &opts(Some(tmp.path()))));
    assert!(
        m.contains(&p.display().to_string()) && m.contains("3074-byte record"),
        "{m}"
    );
    let m = input_err(load("cifar100", &opts(Some(&tmp.path().join("x")))));
    assert!(
        m.contains("folder not found") && m.contains("cifar-100-binary/train.bin"),
        "{m}"
    );
}

// ---------------------------------------------------------------------------------------------
// Framing

fn ev(t: u64, x: u16, y: u16, p: u8) -> Event {
    Event { t, x, y, p }
}

#[test]
fn framing_equals_hand_counts() {
    // t0 = 100, t1 = 180, T = 4: dt = 20; bins [100,120) [120,140) [140,160) [160,180].
    let events = [
        ev(100, 0, 0, 1),
        ev(119, 0, 0, 1),
        ev(120, 1, 0, 0),
        ev(125, 1, 0, 0),
        ev(130, 2, 1, 1),
        // bin 2 empty
        ev(160, 0, 1, 0),
        ev(180, 2, 1, 1), // the final event goes to the last bin
        ev(150, 9, 9, 1), // outside the 3x2 sensor: ignored
    ];
    let f = frame_events(&events, 4, 2, 3);
    assert_eq!(f.len(), 4 * 2 * 6);
    let at = |t: usize, p: usize, y: usize, x: usize| f[((t * 2 + p) * 2 + y) * 3 + x];
    assert_eq!(at(0, 1, 0, 0), 2.0);
    assert_eq!(at(1, 0, 0, 1), 2.0);
    assert_eq!(at(1, 1, 1, 2), 1.0);
    assert_eq!(at(3, 0, 1, 0), 1.0);
    assert_eq!(at(3, 1, 1, 2), 1.0);
    assert!(f[2 * 12..3 * 12].iter().all(|&v| v == 0.0), "empty bin 2");
    assert_eq!(f.iter().sum::<f32>(), 7.0);
    // Remainder: span 10, T = 3 -> dt = 3; t = 109 and 110 both land in the last bin.
    let f = frame_events(
        &[
            ev(100, 0, 0, 0),
            ev(103, 0, 0, 0),
            ev(109, 0, 0, 0),
            ev(110, 0, 0, 0),
        ],
        3,
        1,
        1,
    );
    assert_eq!(f, vec![1.0, 0.0, 1.0, 0.0, 2.0, 0.0]);
    // No events: zeros. Span shorter than T: all in the last bin.
    assert_eq!(frame_events(&[], 2, 1, 1), vec![0.0; 4]);
    assert_eq!(
        frame_events(&[ev(5, 0, 0, 1), ev(6, 0, 0, 0)], 3, 1, 1),
        vec![0.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    );
    // Framing then resizing 4x4 -> 2x2 averages counts.
    let f = frames::frame_and_resize(
        &[ev(0, 0, 0, 1), ev(0, 1, 1, 1), ev(1, 3, 3, 0)],
        1,
        4,
        4,
        2,
    );
    assert_eq!(f, vec![0.0, 0.0, 0.0, 0.25, 0.5, 0.0, 0.0, 0.0]);
}

#[test]
fn digits_dvs_deterministic_and_never_empty() {
    let (images, _) = raw_digits().unwrap();
    let up = |i: usize| {
        let x: Vec<f32> = images[i].iter().map(|&v| v as f32 / 16.0).collect();
        resize::resize(&x, 1, 8, 8, 16, 16)
    };
    for i in 0..images.len() {
        let e = digit_events(&up(i), 16, i);
        assert!(!e.is_empty(), "sample {i}");
        assert!(e.windows(2).all(|w| w[0].t <= w[1].t));
        assert!(e.iter().all(|e| e.x < 16 && e.y < 16 && e.p <= 1));
        if i % 300 == 0 {
            assert_eq!(e, digit_events(&up(i), 16, i));
            assert!(e.iter().any(|e| e.p == 1) && e.iter().any(|e| e.p == 0));
        }
    }
    assert_ne!(digit_events(&up(0), 16, 0), digit_events(&up(0), 16, 1));
    let o = DataOptions {
        timesteps: 3,
        ..opts(None)
    };
    let a = load("digits_dvs", &o).unwrap();
    let b = load(
        "digits_dvs",
        &DataOptions {
            seed: 7,
            ..o.clone()
        },
    )
    .unwrap();
    assert_eq!(a.train.x, b.train.x);
    assert_eq!((a.train.frames, a.train.c, a.train.h), (3, 2, 16));
    assert_eq!(
        a.spec,
        DataSpec {
            in_ch: 2,
            height: 16,
            width: 16,
            classes: 10,
            timesteps: 3,
            event: true
        }
    );
    assert_eq!(
        a.train.labels,
        load("digits", &opts(None)).unwrap().train.labels
    );
    for i in 0..a.test.n {
        assert!(a.test.sample(i).iter().sum::<f32>() > 0.0);
    }
    let bt = a.train.batch(&[0, 1], 3);
    assert_eq!(bt.len(), 3 * 2 * 2 * 16 * 16);
}

#[test]
fn cache_roundtrip_atomic_and_keyed() {
    let tmp = tempfile::tempdir().unwrap();
    let o = DataOptions {
        timesteps: 2,
        size: Some(8),
        cache_dir: Some(tmp.path().join("c")),
        ..opts(None)
    };
    let a = load("digits_dvs", &o).unwrap();
    assert!(!a.notes.contains("cache"));
    let files: Vec<_> = std::fs::read_dir(tmp.path().join("c"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].to_str().unwrap().ends_with(".frames"),
        "no temporary left behind"
    );
    let b = load("digits_dvs", &o).unwrap();
    assert!(b.notes.contains("from cache"), "{}", b.notes);
    assert_eq!(a.train, b.train);
    assert_eq!(a.test, b.test);
    // Another T is another key.
    let c = load(
        "digits_dvs",
        &DataOptions {
            timesteps: 3,
            ..o.clone()
        },
    )
    .unwrap();
    assert!(!c.notes.contains("cache"));
    // A damaged cache file is rebuilt.
    let p = tmp.path().join("c").join(&files[0]);
    std::fs::write(&p, b"MSENASF1garbage").unwrap();
    let d = load("digits_dvs", &o).unwrap();
    assert_eq!(a.train, d.train);
}

#[test]
fn augment_static_same_transform_over_time() {
    let (t, b, c, h, w) = (3, 4, 2, 5, 5);
    let one: Vec<f32> = (0..b * c * h * w).map(|v| v as f32 + 1.0).collect();
    let mut batch: Vec<f32> = (0..t).flat_map(|_| one.clone()).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    augment_static(&mut batch, t, b, c, h, w, 2, &mut rng);
    let fl = b * c * h * w;
    for ti in 1..t {
        assert_eq!(&batch[..fl], &batch[ti * fl..(ti + 1) * fl]);
    }
    // Every value is zero (padding) or one of the sample's own pixels.
    for bi in 0..b {
        for ci in 0..c {
            let o = (bi * c + ci) * h * w;
            for &v in &batch[o..o + h * w] {
                assert!(v == 0.0 || one[o..o + h * w].contains(&v));
            }
        }
    }
    // pad 0: unchanged or mirrored.
    let mut b2 = one.clone();
    augment_static(&mut b2, 1, b, c, h, w, 0, &mut rng);
    for bi in 0..b {
        let o = bi * c * h * w;
        let row: Vec<f32> = one[o..o + w].to_vec();
        let got = &b2[o..o + w];
        let mut rev = row.clone();
        rev.reverse();
        assert!(got == row.as_slice() || got == rev.as_slice());
    }
    // Events: rotation keeps the shape and the same transform over time.
    let mut e: Vec<f32> = (0..t).flat_map(|_| one.clone()).collect();
    augment_events(&mut e, t, b, c, h, w, &EventAugment::default(), &mut rng);
    assert_eq!(&e[..fl], &e[fl..2 * fl]);
    assert!(e.iter().all(|v| v.is_finite()));
}

// ---------------------------------------------------------------------------------------------
// AEDAT 3.1 / DVS128 Gesture

const A31_HEADER: &[u8] =
    b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#Start-Time: 2017-01-01 00:00:00 (TZ+0000)\r\n#!END-HEADER\r\n";

fn packet_header(etype: i16, size: i32, overflow: i32, n: i32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&etype.to_le_bytes());
    b.extend_from_slice(&1i16.to_le_bytes());
    for v in [size, 4, overflow, n, n, n] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b
}

fn polarity_packet(events: &[(u32, u32, u32, u32)], overflow: i32) -> Vec<u8> {
    let mut b = packet_header(1, 8, overflow, events.len() as i32);
    for &(x, y, p, t) in events {
        b.extend_from_slice(&((x << 17) | (y << 2) | (p << 1) | 1).to_le_bytes());
        b.extend_from_slice(&t.to_le_bytes());
    }
    b
}

fn aedat31(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut b = A31_HEADER.to_vec();
    // A type-0 ("special") packet the reader must skip.
    b.extend(packet_header(0, 8, 0, 1));
    b.extend_from_slice(&[0xAB; 8]);
    for p in packets {
        b.extend_from_slice(p);
    }
    b
}

#[test]
fn aedat31_decodes_and_skips_special_packets() {
    let f = aedat31(&[
        polarity_packet(&[(5, 7, 1, 10), (127, 0, 0, 20)], 0),
        polarity_packet(&[(0, 127, 1, 5)], 1),
    ]);
    let e = read_aedat31(&f).unwrap();
    assert_eq!(
        e,
        vec![
            ev(10, 5, 7, 1),
            ev(20, 127, 0, 0),
            ev(5 | (1u64 << 31), 0, 127, 1)
        ]
    );
    // Truncated packet payload and header.
    assert!(read_aedat31(&f[..f.len() - 3])
        .unwrap_err()
        .contains("truncated packet"));
    let cut = A31_HEADER.len() + 10;
    assert!(read_aedat31(&f[..cut])
        .unwrap_err()
        .contains("truncated packet header"));
    assert!(read_aedat31(b"#!AER-DAT2.0\r\n").is_err());
    assert!(read_aedat31(b"#!AER-DAT3.1\r\n#no end\r\n")
        .unwrap_err()
        .contains("END-HEADER"));
}

fn write_gesture(root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    // user01: class 8 twice, classes 9 and 10 overlapping.
    let f = aedat31(&[polarity_packet(
        &[
            (0, 0, 1, 100), // row 1 (class 8)
            (1, 0, 0, 150),
            (2, 0, 1, 199), // end is exclusive
            (3, 0, 1, 200), // rows 2 and 3 (overlap)
            (4, 0, 0, 250),
            (5, 0, 1, 300), // row 3 only
            (6, 0, 1, 400), // row 4 (class 8 again)
            (7, 0, 1, 999), // no row
        ],
        0,
    )]);
    std::fs::write(root.join("user01_fluorescent.aedat"), f).unwrap();
    std::fs::write(
        root.join("user01_fluorescent_labels.csv"),
        "class,startTime_usec,endTime_usec\n8,100,199\n9,200,260\n10,200,301\n8,400,401\n",
    )
    .unwrap();
    let f = aedat31(&[polarity_packet(&[(10, 20, 0, 1000), (11, 21, 1, 1001)], 0)]);
    std::fs::write(root.join("user24_led.aedat"), f).unwrap();
    std::fs::write(
        root.join("user24_led_labels.csv"),
        "class,startTime_usec,endTime_usec\n1,1000,1002\n",
    )
    .unwrap();
    std::fs::write(
        root.join("trials_to_train.txt"),
        "user01_fluorescent.aedat\n\n",
    )
    .unwrap();
    std::fs::write(root.join("trials_to_test.txt"), "user24_led.aedat\n").unwrap();
}

#[test]
fn gesture_one_sample_per_row_with_overlaps() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("DvsGesture");
    write_gesture(&root);
    let o = DataOptions {
        timesteps: 1,
        size: Some(128),
        ..opts(Some(tmp.path()))
    };
    let d = load("dvs128_gesture", &o).unwrap();
    assert_eq!(d.train.n + d.val.n, 4);
    assert_eq!(d.test.n, 1);
    assert_eq!(d.test.labels, vec![0]);
    assert_eq!(
        d.spec,
        DataSpec {
            in_ch: 2,
            height: 128,
            width: 128,
            classes: 11,
            timesteps: 1,
            event: true
        }
    );
    // Rebuild the four samples in row order from train + val.
    let mut rows: Vec<(u16, Vec<f32>)> = Vec::new();
    for s in [&d.train, &d.val] {
        for i in 0..s.n {
            rows.push((s.labels[i], s.sample(i).to_vec()));
        }
    }
    let plane = 128 * 128;
    let count = |x: &Vec<f32>, p: usize, px: usize| x[p * plane + px];
    let find = |label: u16, sum: f32| {
        rows.iter()
            .find(|(l, x)| *l == label && x.iter().sum::<f32>() == sum)
            .is_some()
    };
    assert!(find(7, 2.0)); // row 1: events at 100, 150
    assert!(find(8, 2.0)); // row 2: 200, 250
    assert!(find(9, 3.0)); // row 3: 200, 250, 300
    assert!(find(7, 1.0)); // row 4: 400
    let r3 = &rows.iter().find(|(l, _)| *l == 9).unwrap().1;
    assert_eq!(
        (count(r3, 1, 3), count(r3, 0, 4), count(r3, 1, 5)),
        (1.0, 1.0, 1.0)
    );
    // Cached on the second load, under <data_dir>/.msenas-cache.
    let d2 = load("dvs128_gesture", &o).unwrap();
    assert!(d2.notes.contains("from cache"), "{}", d2.notes);
    assert!(tmp.path().join(".msenas-cache").is_dir());
    assert_eq!(d.test, d2.test);
    // Default size 48.
    let d3 = load(
        "dvs128_gesture",
        &DataOptions {
            timesteps: 2,
            ..opts(Some(&root))
        },
    )
    .unwrap();
    assert_eq!((d3.test.h, d3.test.frames), (48, 2));
}

#[test]
fn gesture_malformed_files_name_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("DvsGesture");
    write_gesture(&root);
    let o = DataOptions {
        timesteps: 1,
        cache_dir: Some(tmp.path().join("c")),
        ..opts(Some(&root))
    };
    let p = root.join("user24_led.aedat");
    let full = std::fs::read(&p).unwrap();
    std::fs::write(&p, &full[..full.len() - 5]).unwrap();
    let m = input_err(load("dvs128_gesture", &o));
    assert!(
        m.contains(&p.display().to_string()) && m.contains("truncated") && m.contains("AEDAT 3.1"),
        "{m}"
    );
    std::fs::write(&p, &full).unwrap();
    let l = root.join("user24_led_labels.csv");
    std::fs::write(&l, "class,startTime_usec,endTime_usec\n12,1,2\n").unwrap();
    let m = input_err(load("dvs128_gesture", &o));
    assert!(
        m.contains(&l.display().to_string()) && m.contains("line 2"),
        "{m}"
    );
    std::fs::remove_file(&l).unwrap();
    let m = input_err(load("dvs128_gesture", &o));
    assert!(
        m.contains(&l.display().to_string()) && m.contains("not found"),
        "{m}"
    );
    std::fs::remove_file(root.join("trials_to_test.txt")).unwrap();
    let m = input_err(load("dvs128_gesture", &o));
    assert!(
        m.contains("trials_to_test.txt") && m.contains("not found"),
        "{m}"
    );
    let m = input_err(load(
        "dvs128_gesture",
        &opts(Some(&tmp.path().join("none"))),
    ));
    assert!(
        m.contains("folder not found") && m.contains("DvsGesture/"),
        "{m}"
    );
}

// ---------------------------------------------------------------------------------------------
// AEDAT 2.0 / CIFAR10-DVS

const A20_HEADER: &[u8] = b"#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n# Data format is int32 address, int32 timestamp (8 bytes total)\r\n";

fn aedat20(events: &[(u32, u32, u32, u32)]) -> Vec<u8> {
    let mut b = A20_HEADER.to_vec();
    for &(xr, yr, pol, t) in events {
        b.extend_from_slice(&((yr << 8) | (xr << 1) | pol).to_be_bytes());
        b.extend_from_slice(&t.to_be_bytes());
    }
    b
}

#[test]
fn aedat20_spikingjelly_mapping() {
    let e = read_aedat20(&aedat20(&[
        (3, 10, 1, 7),
        (127, 0, 0, 9),
        (0x23 >> 1, 0, 1, 11),
    ]))
    .unwrap();
    assert_eq!(
        e,
        vec![
            ev(7, 117, 124, 0),
            ev(9, 127, 0, 1),
            ev(11, 127, 127 - 0x11, 0)
        ]
    );
    // The first binary byte may be '#': 0x23 in the address's top byte.
    let mut b = A20_HEADER.to_vec();
    b.extend_from_slice(&[0x23, 0x80, 0x00, 0x00]);
    b.extend_from_slice(&5u32.to_be_bytes());
    let e = read_aedat20(&b).unwrap();
    assert_eq!(e.len(), 1);
    assert!(read_aedat20(&b[..b.len() - 1])
        .unwrap_err()
        .contains("multiple of the 8-byte"));
}

const C10: [&str; 10] = [
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
const C10_IDX: [usize; 13] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 100, 101];

fn write_c10dvs(root: &Path) {
    for (c, class) in C10.iter().enumerate() {
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for &i in &C10_IDX {
            // Recording i has i + 1 events (so its total count identifies it), plus c at pixel 0.
            let ev: Vec<_> = (0..=i + c)
                .map(|k| ((k % 128) as u32, 5, (k % 2) as u32, k as u32 * 10))
                .collect();
            std::fs::write(dir.join(format!("cifar10_{class}_{i}.aedat")), aedat20(&ev)).unwrap();
        }
    }
}

fn recordings(s: &Split) -> Vec<(u16, usize)> {
    let mut v: Vec<(u16, usize)> = (0..s.n)
        .map(|i| {
            (
                s.labels[i],
                s.sample(i).iter().sum::<f32>() as usize - 1 - s.labels[i] as usize,
            )
        })
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn cifar10_dvs_splits() {
    let tmp = tempfile::tempdir().unwrap();
    write_c10dvs(tmp.path());
    let o = DataOptions {
        timesteps: 2,
        size: Some(128),
        ..opts(Some(tmp.path()))
    };
    let d = load("cifar10_dvs", &o).unwrap();
    // 13 per class: ceil(0.9 * 13) = 12 train; lexicographic order 0,1,10,100,101,2,..,9 puts 9 last.
    assert_eq!(d.test.n, 10);
    assert_eq!(
        recordings(&d.test),
        (0..10).map(|c| (c, 9)).collect::<Vec<_>>()
    );
    assert_eq!(d.train.n + d.val.n, 120);
    assert_eq!(class_counts(&d.val.labels, 10), vec![1; 10]);
    assert!(d.notes.contains("9:1"), "{}", d.notes);
    assert_eq!(
        (d.spec.in_ch, d.spec.classes, d.spec.timesteps, d.spec.event),
        (2, 10, 2, true)
    );
    let t = load(
        "cifar10_dvs",
        &DataOptions {
            cifar10_dvs_split: "tebn".into(),
            ..o.clone()
        },
    )
    .unwrap();
    assert!(
        t.notes.contains("tebn") && t.notes.contains("from cache"),
        "{}",
        t.notes
    );
    assert_eq!(t.test.n, 110);
    let mut trainval = recordings(&t.train);
    trainval.extend(recordings(&t.val));
    trainval.sort_unstable();
    assert_eq!(
        trainval,
        (0..10)
            .flat_map(|c| [(c, 100), (c, 101)])
            .collect::<Vec<_>>()
    );
    let m = input_err(load(
        "cifar10_dvs",
        &DataOptions {
            cifar10_dvs_split: "8:2".into(),
            ..o.clone()
        },
    ));
    assert!(m.contains("8:2") && m.contains("tebn"), "{m}");
}

#[test]
fn cifar10_dvs_malformed_and_missing() {
    let tmp = tempfile::tempdir().unwrap();
    write_c10dvs(tmp.path());
    let o = DataOptions {
        timesteps: 1,
        size: Some(16),
        cache_dir: Some(tmp.path().join("c")),
        ..opts(Some(tmp.path()))
    };
    let p = tmp.path().join("dog").join("cifar10_dog_3.aedat");
    let mut b = std::fs::read(&p).unwrap();
    b.pop();
    std::fs::write(&p, &b).unwrap();
    let m = input_err(load("cifar10_dvs", &o));
    assert!(
        m.contains(&p.display().to_string()) && m.contains("8-byte") && m.contains("AEDAT 2.0"),
        "{m}"
    );
    std::fs::write(&p, b"not aedat").unwrap();
    let m = input_err(load("cifar10_dvs", &o));
    assert!(
        m.contains(&p.display().to_string()) && m.contains("not an AEDAT 2.0 file"),
        "{m}"
    );
    std::fs::remove_dir_all(tmp.path().join("truck")).unwrap();
    let m = input_err(load("cifar10_dvs", &o));
    assert!(
        m.contains("truck") && m.contains("class folder not found"),
        "{m}"
    );
    let m = input_err(load("cifar10_dvs", &opts(None)));
    assert!(m.contains("--data-dir"), "{m}");
}

#[test]
fn fashion_mnist_installed_copy() {
    // Runs where Debian's dataset-fashion-mnist is installed (the default folder).
    if !Path::new(idx::FASHION_DEFAULT_DIR).is_dir() {
        return;
    }
    let d = load("fashion_mnist", &opts(None)).unwrap();
    assert_eq!((d.train.n, d.val.n, d.test.n), (54_000, 6_000, 10_000));
    assert_eq!(class_counts(&d.test.labels, 10), vec![1_000; 10]);
    assert_eq!(class_counts(&d.val.labels, 10), vec![600; 10]);
    assert_eq!((d.train.h, d.train.w, d.spec.classes), (28, 28, 10));
}
