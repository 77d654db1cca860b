//! MNIST and Fashion-MNIST: gzipped IDX files.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{
    bad_file, holdout, need_data_dir, need_dir, read_file, resize_split, spec_of, DataOptions,
    Dataset, Split,
};
use crate::Result;

const LAYOUT: &str = "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (gzipped IDX)";

/// Fashion-MNIST's default folder (Debian's `dataset-fashion-mnist`).
pub const FASHION_DEFAULT_DIR: &str = "/usr/share/datasets/fashion-mnist";

const FASHION_NAMES: [&str; 10] = [
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
];

/// `<dir>/<name>.gz`, or `<dir>/<name>` when only the uncompressed file is there.
fn find(dir: &Path, name: &str) -> PathBuf {
    let gz = dir.join(format!("{name}.gz"));
    let plain = dir.join(name);
    if !gz.exists() && plain.exists() {
        plain
    } else {
        gz
    }
}

/// The file's bytes, gunzipped when it is gzip.
fn read_maybe_gz(ds: &str, path: &Path) -> Result<Vec<u8>> {
    let raw = read_file(ds, path, LAYOUT)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| bad_file(ds, path, format!("not a valid gzip file ({e})"), LAYOUT))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// Reads an IDX image file and its label file into a `[n, 1, rows, cols]` split in [0, 1].
pub(crate) fn read_idx_pair(ds: &str, images: &Path, labels: &Path) -> Result<Split> {
    let im = read_maybe_gz(ds, images)?;
    if im.len() < 16 {
        return Err(bad_file(
            ds,
            images,
            format!(
                "{} bytes is shorter than the 16-byte IDX image header",
                im.len()
            ),
            LAYOUT,
        ));
    }
    let magic = be32(&im, 0);
    if magic != 2051 {
        return Err(bad_file(
            ds,
            images,
            format!("magic {magic} is not 2051 (IDX unsigned-byte images)"),
            LAYOUT,
        ));
    }
    let (n, rows, cols) = (
        be32(&im, 4) as usize,
        be32(&im, 8) as usize,
        be32(&im, 12) as usize,
    );
    let want = n as u64 * rows as u64 * cols as u64 + 16;
    if im.len() as u64 != want {
        return Err(bad_file(
            ds,
            images,
            format!(
                "payload is {} bytes, the header ({n} images of {rows}x{cols}) says {}",
                im.len() - 16,
                want - 16
            ),
            LAYOUT,
        ));
    }
    let lb = read_maybe_gz(ds, labels)?;
    if lb.len() < 8 {
        return Err(bad_file(
            ds,
            labels,
            format!(
                "{} bytes is shorter than the 8-byte IDX label header",
                lb.len()
            ),
            LAYOUT,
        ));
    }
    let magic = be32(&lb, 0);
    if magic != 2049 {
        return Err(bad_file(
            ds,
            labels,
            format!("magic {magic} is not 2049 (IDX unsigned-byte labels)"),
            LAYOUT,
        ));
    }
    let nl = be32(&lb, 4) as usize;
    if nl != n {
        return Err(bad_file(
            ds,
            labels,
            format!("{nl} labels but {} holds {n} images", images.display()),
            LAYOUT,
        ));
    }
    if lb.len() != 8 + n {
        return Err(bad_file(
            ds,
            labels,
            format!("payload is {} bytes, the header says {n}", lb.len() - 8),
            LAYOUT,
        ));
    }
    if let Some(&l) = lb[8..].iter().find(|&&l| l > 9) {
        return Err(bad_file(
            ds,
            labels,
            format!("label {l} is outside 0..9"),
            LAYOUT,
        ));
    }
    Ok(Split {
        x: im[16..].iter().map(|&v| v as f32 / 255.0).collect(),
        labels: lb[8..].iter().map(|&l| l as u16).collect(),
        n,
        frames: 1,
        c: 1,
        h: rows,
        w: cols,
    })
}

fn load_idx_set(ds: &str, dir: &Path, names: Vec<String>, opts: &DataOptions) -> Result<Dataset> {
    need_dir(ds, dir, LAYOUT)?;
    let full = read_idx_pair(
        ds,
        &find(dir, "train-images-idx3-ubyte"),
        &find(dir, "train-labels-idx1-ubyte"),
    )?;
    let test = read_idx_pair(
        ds,
        &find(dir, "t10k-images-idx3-ubyte"),
        &find(dir, "t10k-labels-idx1-ubyte"),
    )?;
    let (tr, va) = holdout(&full.labels, 0.1, None);
    let size = opts.size.unwrap_or(full.h);
    let train = resize_split(full.subset(&tr), size);
    let val = resize_split(full.subset(&va), size);
    let test = resize_split(test, size);
    Ok(Dataset {
        name: ds.into(),
        spec: spec_of(&train, names.len(), opts.timesteps, false),
        train,
        val,
        test,
        class_names: names,
        notes: format!(
            "{}: pixels/255, {size}x{size}; val = the last 10% of train per class (file order), test = t10k",
            dir.display()
        ),
    })
}

pub(crate) fn load_mnist(opts: &DataOptions) -> Result<Dataset> {
    let dir = need_data_dir("mnist", opts, LAYOUT)?;
    load_idx_set("mnist", dir, (0..10).map(|d| d.to_string()).collect(), opts)
}

pub(crate) fn load_fashion_mnist(opts: &DataOptions) -> Result<Dataset> {
    let dir = opts
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(FASHION_DEFAULT_DIR));
    load_idx_set(
        "fashion_mnist",
        &dir,
        FASHION_NAMES.iter().map(|s| s.to_string()).collect(),
        opts,
    )
}
