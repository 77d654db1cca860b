//! File input and output shared by every module: reads are bounded, nothing is ever
//! half-written, nothing but a regular file is ever replaced, and a folder has one writer.

use crate::{Error, Result};
use std::io::{Read, Write as _};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The largest genome, config, result or report file read back (JSON text): 16 MiB. Real ones
/// are a few kilobytes.
pub const MAX_TEXT_BYTES: u64 = 16 << 20;

/// The largest dataset, checkpoint or log file read whole: 8 GiB (CIFAR-100 is 180 MB, an
/// evaluation log of a 100-generation search a few megabytes).
pub const MAX_DATA_BYTES: u64 = 8 << 30;

/// The size of `path`, refusing anything but a regular file (a folder, a device, a pipe).
fn regular_len(path: &Path) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::input(format!(
            "{}: not a regular file (allowed: a regular file)",
            path.display()
        )));
    }
    Ok(meta.len())
}

/// Reads a whole regular file of at most `limit` bytes; larger files are refused before
/// anything is allocated (`what` names the kind of file in the message).
pub fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    let len = regular_len(path)?;
    if len > limit {
        return Err(too_big(path, len, limit, what));
    }
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::with_capacity(len as usize);
    // The file may grow while it is read: never take more than the limit.
    f.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::io(path, e))?;
    if out.len() as u64 > limit {
        return Err(too_big(path, out.len() as u64, limit, what));
    }
    Ok(out)
}

fn too_big(path: &Path, len: u64, limit: u64, what: &str) -> Error {
    Error::input(format!(
        "{}: {len} bytes is larger than any {what} (allowed: at most {limit} bytes)",
        path.display()
    ))
}

/// Reads a UTF-8 text file (a genome, a config, a result) of at most [`MAX_TEXT_BYTES`].
pub fn read_text(path: &Path, what: &str) -> Result<String> {
    let bytes = read_bounded(path, MAX_TEXT_BYTES, what)?;
    String::from_utf8(bytes).map_err(|e| {
        Error::input(format!(
            "{}: not UTF-8 text (byte {}; expected a {what})",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Inflates a gzip stream of at most `limit` bytes of output; a stream that would inflate to
/// more is refused after `limit + 1` bytes, never inflated whole.
pub fn gunzip_bounded(raw: &[u8], limit: u64) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(raw)
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| format!("not a valid gzip file ({e})"))?;
    if out.len() as u64 > limit {
        return Err(format!("inflates to more than {limit} bytes"));
    }
    Ok(out)
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A short, unused temporary name in `dir` (`.msenas-<pid>-<n>.tmp`): short so that any legal
/// output name can be written through it.
pub fn temp_path(dir: &Path) -> std::path::PathBuf {
    dir.join(format!(
        ".msenas-{}-{}.tmp",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Refuses to replace `path` unless it is absent or a regular file (not a folder, a device, a
/// pipe, a socket or a symbolic link).
pub fn check_replaceable(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => Ok(()),
        Ok(m) => {
            let kind = if m.file_type().is_dir() {
                "a folder"
            } else if m.file_type().is_symlink() {
                "a symbolic link"
            } else {
                "a device, pipe or socket"
            };
            Err(Error::input(format!(
                "{}: is {kind}; an output is only written to a new path or over a regular file",
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Write `bytes` to `path` atomically: a temporary file in the same folder, fsynced, then
/// renamed over `path`. Parent folders are created. An existing `path` must be a regular file;
/// the temporary name is short (`.msenas-<pid>-<n>.tmp`), so any legal output name works.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    check_replaceable(path)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = temp_path(dir);
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        drop(f);
        // Checked again just before the rename: the target may have appeared meanwhile.
        check_replaceable(path)?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// SHA-256 of `bytes` as 64 lowercase hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// CRC-32 (IEEE) of `bytes` as 8 lowercase hex digits: the checksum of a log line.
pub fn crc32_hex(bytes: &[u8]) -> String {
    format!("{:08x}", crc32fast::hash(bytes))
}

/// The name of a folder's lock file.
pub const LOCK: &str = ".lock";

/// An exclusive hold on a folder: an OS file lock on `<dir>/.lock`, released when dropped or
/// when the process ends in any way (a lock file left by a killed process is stale and is
/// simply taken over). The file holds the holder's process id, for the message another process
/// gets.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
}

impl DirLock {
    /// Takes the lock of `dir` (which must exist), or says which process holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join(LOCK);
        check_replaceable(&path)?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = (&file).take(64).read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::input(format!(
                    "{}: in use by another msenas process{} (one process at a time per folder; \
                     wait for it to finish or stop it)",
                    dir.display(),
                    if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {holder})")
                    }
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        file.set_len(0).map_err(|e| Error::io(&path, e))?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())
            .map_err(|e| Error::io(&path, e))?;
        Ok(DirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_reads_refuse_large_and_non_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read_bounded(&p, 10, "genome").unwrap().len(), 10);
        let e = read_bounded(&p, 9, "genome").unwrap_err().to_string();
        assert!(
            e.contains("larger than any genome") && e.contains("at most 9"),
            "{e}"
        );
        let e = read_bounded(dir.path(), 100, "genome")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        let e = read_text(&p, "config").unwrap_err().to_string();
        assert!(e.contains("not UTF-8"), "{e}");
    }

    #[test]
    fn gunzip_stops_at_the_limit() {
        use flate2::write::GzEncoder;
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&vec![7u8; 100_000]).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(gunzip_bounded(&gz, 100_000).unwrap().len(), 100_000);
        let e = gunzip_bounded(&gz, 99_999).unwrap_err();
        assert!(e.contains("more than 99999"), "{e}");
        assert!(gunzip_bounded(b"\x1f\x8bnot gzip", 10).is_err());
    }

    #[test]
    fn atomic_writes_replace_only_regular_files_and_use_short_temporary_names() {
        let dir = tempfile::tempdir().unwrap();
        // The longest legal name (255 bytes on common file systems) works.
        let long = dir.path().join("x".repeat(250) + ".json");
        write_atomic(&long, b"1").unwrap();
        write_atomic(&long, b"2").unwrap();
        assert_eq!(std::fs::read(&long).unwrap(), b"2");
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let e = write_atomic(&sub, b"1").unwrap_err().to_string();
        assert!(e.contains("is a folder"), "{e}");
        assert!(sub.is_dir());
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&long, &link).unwrap();
            let e = write_atomic(&link, b"3").unwrap_err().to_string();
            assert!(e.contains("symbolic link"), "{e}");
            assert_eq!(std::fs::read(&long).unwrap(), b"2");
            if Path::new("/dev/null").exists() {
                let e = check_replaceable(Path::new("/dev/null"))
                    .unwrap_err()
                    .to_string();
                assert!(e.contains("device"), "{e}");
            }
        }
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn a_folder_has_one_lock_holder_and_a_dropped_lock_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let a = DirLock::acquire(dir.path()).unwrap();
        let e = DirLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("in use by another msenas process")
                && e.contains(&std::process::id().to_string()),
            "{e}"
        );
        drop(a);
        // The lock file remains (stale) and is taken over.
        assert!(dir.path().join(LOCK).exists());
        DirLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn checksums_are_the_standard_ones() {
        assert_eq!(crc32_hex(b"123456789"), "cbf43926");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
