//! The training loop on a tiny synthetic task: it learns, its run folder is complete, a resumed
//! run ends bit-identical to an uninterrupted one, and bad checkpoints or mismatched resumes are
//! clear errors.

use msenas::config::TrainConfig;
use msenas::data::{Dataset, Split};
use msenas::engine::Device;
use msenas::genome::{CellGene, Genome, MicroVariant};
use msenas::train::checkpoint::Checkpoint;
use msenas::train::{Network, Silent, TrainJob, TrainResult};
use msenas::DataSpec;
use std::path::Path;

/// Two classes of 8x8 images: a horizontal or a vertical bar (three pixels long, two wide) at a
/// random place, plus noise. Deterministic.
fn split(n: usize, salt: u32) -> Split {
    let mut s = Split::empty(1, 1, 8, 8);
    for i in 0..n {
        let label = (i % 2) as u16;
        let r = |j: u32| (msenas::cpu::bits(j, salt + i as u32) >> 8) as f32 / 16_777_216.0;
        let (y0, x0) = ((r(1000) * 5.0) as usize + 1, (r(1001) * 5.0) as usize + 1);
        let mut img = vec![0.0f32; 64];
        for (j, v) in img.iter_mut().enumerate() {
            *v = 0.2 * r(j as u32);
        }
        for a in 0..3 {
            for b in 0..2 {
                let (y, x) = if label == 0 {
                    (y0 + b, x0 + a)
                } else {
                    (y0 + a, x0 + b)
                };
                img[y.min(7) * 8 + x.min(7)] = 1.0;
            }
        }
        s.push(&img, label);
    }
    s
}

fn dataset() -> Dataset {
    Dataset {
        name: "bars".into(),
        train: split(32, 1),
        val: split(16, 100),
        test: split(16, 200),
        spec: DataSpec {
            in_ch: 1,
            height: 8,
            width: 8,
            classes: 2,
            timesteps: 2,
            event: false,
        },
        class_names: vec!["horizontal".into(), "vertical".into()],
        notes: String::new(),
    }
}

fn network() -> Network {
    let g = Genome {
        layout: "N".into(),
        micro: MicroVariant::Kernel,
        k: 2,
        cells: vec![CellGene {
            motif: 1,
            sources: vec![1, 1],
            ops: vec![0; 4],
        }],
    };
    Network::from_genome(g, &dataset().spec, 4, 1).unwrap()
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 4,
        lr: 2.0,
        crop_pad: 1,
        flip: true,
        ..TrainConfig::default()
    }
}

fn sections(path: &Path) -> Vec<(String, Vec<u32>)> {
    Checkpoint::read(path)
        .unwrap()
        .sections
        .into_iter()
        .map(|(n, v)| (n, v.iter().map(|x| x.to_bits()).collect()))
        .collect()
}

#[test]
fn learns_and_writes_a_complete_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset();
    let cfg = config(8);
    let r = run(&network(), &ds, &cfg, 3, dir.path(), false, None).unwrap();
    assert_eq!(r.epochs, cfg.epochs);
    assert_eq!(r.history.len(), cfg.epochs);
    assert!(
        r.best_val_acc >= 0.9,
        "validation accuracy {}",
        r.best_val_acc
    );
    assert!(r.test_acc >= 0.8, "test accuracy {}", r.test_acc);
    assert!(r.history[cfg.epochs - 1].train_loss < r.history[0].train_loss);
    // The best epoch is the one with the highest validation accuracy (earliest on ties).
    let best = r
        .history
        .iter()
        .fold(
            None::<&msenas::train::checkpoint::EpochLog>,
            |b, e| match b {
                Some(b) if b.val_acc >= e.val_acc => Some(b),
                _ => Some(e),
            },
        )
        .unwrap();
    assert_eq!(r.best_epoch, best.epoch);
    for f in [
        "state.ckpt",
        "model.ckpt",
        "log.csv",
        "curves.png",
        "result.json",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    let log = std::fs::read_to_string(dir.path().join("log.csv")).unwrap();
    assert_eq!(log.lines().count(), cfg.epochs + 1);
    assert!(log.starts_with("epoch,lr,train_loss,train_acc,val_loss,val_acc"));
    // The model checkpoint holds the best epoch's weights: evaluating it gives the best
    // validation accuracy again.
    let (ck, params, bn) = msenas::train::load_model(&dir.path().join("model.ckpt")).unwrap();
    assert_eq!(ck.meta.epoch, r.best_epoch);
    let mut model = msenas::engine::Model::new(
        &msenas::engine::Device::cpu(),
        &ck.meta.plan,
        params.clone(),
        bn.clone(),
    )
    .unwrap();
    let (_, acc) = msenas::train::evaluate_split(
        &mut model,
        &ds.val,
        7,
        msenas::train::Loss::CrossEntropy,
        0.1,
    )
    .unwrap();
    assert_eq!(acc, r.best_val_acc);
    let rep = msenas::train::eval::evaluate(&mut model, &ds.test, &[], 0, 5).unwrap();
    assert_eq!(rep.accuracy, r.test_acc);
}

#[test]
fn resumed_run_is_bit_identical() {
    let ds = dataset();
    let net = network();
    let cfg = config(3);
    let a = tempfile::tempdir().unwrap();
    let full = run(&net, &ds, &cfg, 9, a.path(), false, None).unwrap();

    let b = tempfile::tempdir().unwrap();
    let part = run(&net, &ds, &cfg, 9, b.path(), false, Some(1)).unwrap();
    assert_eq!(part.epochs, 1);
    assert!(part.test_acc.is_nan());
    assert!(!b.path().join("result.json").exists());
    run(&net, &ds, &cfg, 9, b.path(), true, Some(2)).unwrap();
    let resumed = run(&net, &ds, &cfg, 9, b.path(), true, None).unwrap();

    assert_eq!(resumed.test_acc.to_bits(), full.test_acc.to_bits());
    assert_eq!(resumed.test_loss.to_bits(), full.test_loss.to_bits());
    assert_eq!(resumed.best_epoch, full.best_epoch);
    for (x, y) in resumed.history.iter().zip(&full.history) {
        assert_eq!(
            (x.train_loss.to_bits(), x.val_loss.to_bits(), x.lr.to_bits()),
            (y.train_loss.to_bits(), y.val_loss.to_bits(), y.lr.to_bits())
        );
    }
    for f in ["state.ckpt", "model.ckpt"] {
        assert_eq!(
            sections(&a.path().join(f)),
            sections(&b.path().join(f)),
            "{f}"
        );
    }
    // A different seed trains differently (the comparison above can fail).
    let c = tempfile::tempdir().unwrap();
    run(&net, &ds, &cfg, 10, c.path(), false, Some(1)).unwrap();
    let a1 = tempfile::tempdir().unwrap();
    run(&net, &ds, &cfg, 9, a1.path(), false, Some(1)).unwrap();
    assert_ne!(
        sections(&a1.path().join("state.ckpt")),
        sections(&c.path().join("state.ckpt"))
    );
}

#[test]
fn bad_checkpoints_and_mismatched_resumes_are_input_errors() {
    let ds = dataset();
    let net = network();
    let dir = tempfile::tempdir().unwrap();
    // Nothing to resume.
    let e = run(&net, &ds, &config(1), 1, dir.path(), true, None).unwrap_err();
    assert!(matches!(e, msenas::Error::Input(_)), "{e}");
    assert!(e.to_string().contains("state.ckpt"), "{e}");
    run(&net, &ds, &config(2), 1, dir.path(), false, Some(1)).unwrap();
    // Another config or seed.
    let e = run(&net, &ds, &config(3), 1, dir.path(), true, None).unwrap_err();
    assert!(e.to_string().contains("training config"), "{e}");
    let e = run(&net, &ds, &config(2), 2, dir.path(), true, None).unwrap_err();
    assert!(e.to_string().contains("seed"), "{e}");
    // A truncated file.
    let p = dir.path().join("state.ckpt");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
    let e = Checkpoint::read(&p).unwrap_err();
    assert!(matches!(e, msenas::Error::Input(_)), "{e}");
    assert!(e.to_string().contains("checksum mismatch"), "{e}");
    // One flipped bit in a weight.
    let mut flipped = bytes.clone();
    let at = flipped.len() - 40;
    flipped[at] ^= 1;
    std::fs::write(&p, &flipped).unwrap();
    let e = Checkpoint::read(&p).unwrap_err();
    assert!(e.to_string().contains("checksum mismatch"), "{e}");
    // A well-formed checkpoint holding NaN weights is refused on load.
    std::fs::write(&p, &bytes).unwrap();
    let mut ck = Checkpoint::read(&p).unwrap();
    ck.sections[0].1[3] = f32::NAN;
    ck.write(&p).unwrap();
    let e = run(&net, &ds, &config(2), 1, dir.path(), true, None).unwrap_err();
    assert!(
        matches!(e, msenas::Error::Input(_)) && e.to_string().contains("non-finite"),
        "{e}"
    );
    std::fs::write(&p, b"not a checkpoint").unwrap();
    assert!(Checkpoint::read(&p).is_err());
    // A network for another data shape.
    let mut other = dataset();
    other.spec.classes = 3;
    let e = run(&net, &other, &config(1), 1, dir.path(), false, None).unwrap_err();
    assert!(e.to_string().contains("classes"), "{e}");
}

#[test]
fn a_diverging_run_stops_with_a_clear_error() {
    // A corrupt pixel (NaN) in the training data: the first batch holding it has a NaN loss.
    let mut ds = dataset();
    ds.train.x[5 * 64 + 10] = f32::NAN;
    let net = network();
    let dir = tempfile::tempdir().unwrap();
    let e = run(&net, &ds, &config(3), 1, dir.path(), false, None).unwrap_err();
    assert!(matches!(e, msenas::Error::Diverged(_)), "{e}");
    let m = e.to_string();
    assert!(
        m.contains("training diverged in epoch 1") && m.contains("state.ckpt"),
        "{m}"
    );
    assert!(!dir.path().join("result.json").exists());
}

/// A CPU training run, silent, optionally resumed and stopped early.
fn run(
    net: &Network,
    ds: &msenas::data::Dataset,
    cfg: &msenas::config::TrainConfig,
    seed: u64,
    dir: &std::path::Path,
    resume: bool,
    stop_after: Option<usize>,
) -> msenas::Result<TrainResult> {
    TrainJob::new(net, ds, cfg, seed, dir)
        .resuming(resume)
        .stopping_after(stop_after)
        .run(&Device::cpu(), &mut Silent)
}
