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

/// The largest IDX file accepted, inflated: 4 GiB (MNIST's training images are 47 MB).
const MAX_IDX_BYTES: u64 = 4 << 30;

/// An IDX file's bytes, gunzipped when it is gzip. The header (`header` bytes) is read first;
/// `payload` turns it into the payload size it promises (or an error), and the file is inflated
/// no further than header plus payload, so a crafted header or a compression bomb never makes
/// it allocate more than the header's checked promise.
fn read_idx_file(
    ds: &str,
    path: &Path,
    header: usize,
    payload: impl Fn(&[u8]) -> std::result::Result<u64, String>,
) -> Result<Vec<u8>> {
    let raw = read_file(ds, path, LAYOUT)?;
    let gz = raw.starts_with(&[0x1f, 0x8b]);
    let head: Vec<u8> = if gz {
        let mut h = Vec::with_capacity(header);
        flate2::read::MultiGzDecoder::new(&raw[..])
            .take(header as u64)
            .read_to_end(&mut h)
            .map_err(|e| bad_file(ds, path, format!("not a valid gzip file ({e})"), LAYOUT))?;
        h
    } else {
        raw[..raw.len().min(header)].to_vec()
    };
    if head.len() < header {
        return Err(bad_file(
            ds,
            path,
            format!(
                "{} bytes is shorter than the {header}-byte IDX header",
                head.len()
            ),
            LAYOUT,
        ));
    }
    let want = payload(&head)
        .and_then(|p| {
            p.checked_add(header as u64)
                .filter(|&w| w <= MAX_IDX_BYTES)
                .ok_or_else(|| {
                    format!(
                        "the header promises {p} payload bytes (allowed: at most {MAX_IDX_BYTES})"
                    )
                })
        })
        .map_err(|what| bad_file(ds, path, what, LAYOUT))?;
    let bytes = if gz {
        crate::fsio::gunzip_bounded(&raw, want).map_err(|what| {
            bad_file(
                ds,
                path,
                format!("{what}; the header promises {want}"),
                LAYOUT,
            )
        })?
    } else {
        raw
    };
    if bytes.len() as u64 != want {
        return Err(bad_file(
            ds,
            path,
            format!(
                "payload is {} bytes, the header says {}",
                bytes.len() - header,
                want - header as u64
            ),
            LAYOUT,
        ));
    }
    Ok(bytes)
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// Reads an IDX image file and its label file into a `[n, 1, rows, cols]` split in [0, 1].
pub(crate) fn read_idx_pair(ds: &str, images: &Path, labels: &Path) -> Result<Split> {
    let im = read_idx_file(ds, images, 16, |h| {
        let magic = be32(h, 0);
        if magic != 2051 {
            return Err(format!(
                "magic {magic} is not 2051 (IDX unsigned-byte images)"
            ));
        }
        let (n, rows, cols) = (be32(h, 4) as u64, be32(h, 8) as u64, be32(h, 12) as u64);
        n.checked_mul(rows)
            .and_then(|v| v.checked_mul(cols))
            .ok_or_else(|| format!("header says {n} images of {rows}x{cols}, which overflows"))
    })?;
    let (n, rows, cols) = (
        be32(&im, 4) as usize,
        be32(&im, 8) as usize,
        be32(&im, 12) as usize,
    );
    let lb = read_idx_file(ds, labels, 8, |h| {
        let magic = be32(h, 0);
        if magic != 2049 {
            return Err(format!(
                "magic {magic} is not 2049 (IDX unsigned-byte labels)"
            ));
        }
        let nl = be32(h, 4) as u64;
        if nl != n as u64 {
            return Err(format!(
                "{nl} labels but {} holds {n} images",
                images.display()
            ));
        }
        Ok(nl)
    })?;
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
