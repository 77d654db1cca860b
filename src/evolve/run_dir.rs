//! A search run on disk.
//!
//! ```text
//! RUN/
//!   config.json          the resolved configuration (seed included); resume reads it back
//!   evaluations.jsonl    one line per evaluation, appended, flushed and fsynced as it finishes
//!   population_<g>.json  the population after generation g (members with rank and crowding)
//!   pareto.json          the first front of the final population
//!   best.json            the best genome by the fitness, a plain genome file
//!   fitness.png, pareto.png, motifs.png
//! ```
//!
//!
//! Besides these, `run.json` records the settings the run started with and their SHA-256
//! digest, and `.lock` keeps the folder to one process (an OS file lock, released when the
//! process ends in any way).
//!
//! Every file but the log is written to a temporary file and renamed into place. The log is
//! append-only; each line ends with `"crc":"<CRC-32 of the line without it>"`; a process killed
//! while writing a line leaves a torn last line, which [`RunDir::resume`] drops (and truncates
//! away) so at most the evaluation in flight is lost. A complete line whose checksum does not
//! match, or a `config.json` that no longer holds the settings of `run.json`, is refused with
//! one line naming the file and what differs.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::evolve::config::Config;
use crate::fitness::evaluate::{Evaluation, Status};
use crate::genome::Genome;
use crate::{Error, Result};

pub const CONFIG: &str = "config.json";
pub const EVALUATIONS: &str = "evaluations.jsonl";
pub const PARETO: &str = "pareto.json";
pub const BEST: &str = "best.json";
pub const MANIFEST: &str = "run.json";

/// One line of `evaluations.jsonl`.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub generation: usize,
    pub evaluation: Evaluation,
}

impl Record {
    pub fn to_json(&self) -> Value {
        let e = &self.evaluation;
        json!({
            "generation": self.generation,
            "key": e.key,
            "status": e.status,
            "reason": e.reason,
            "scores": e.scores,
            "timings": e.timings,
            "genome": genome_value(&e.genome),
        })
    }

    /// A record from its JSON form (one log line); errors name the field.
    pub fn from_json(v: &Value) -> Result<Record> {
        let field = |k: &str| {
            v.get(k)
                .ok_or_else(|| Error::input(format!("missing field `{k}`")))
        };
        let generation = field("generation")?
            .as_u64()
            .ok_or_else(|| Error::input("`generation` is not an integer"))?
            as usize;
        let key = field("key")?
            .as_str()
            .ok_or_else(|| Error::input("`key` is not a string"))?
            .to_string();
        let status: Status = serde_json::from_value(field("status")?.clone())
            .map_err(|e| Error::input(format!("status: {e}")))?;
        let reason = match v.get("reason") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(Error::input("`reason` is not a string")),
        };
        let scores: BTreeMap<String, f64> = serde_json::from_value(field("scores")?.clone())
            .map_err(|e| Error::input(format!("scores: {e}")))?;
        let timings: BTreeMap<String, f64> = match v.get("timings") {
            Some(t) => serde_json::from_value(t.clone())
                .map_err(|e| Error::input(format!("timings: {e}")))?,
            None => BTreeMap::new(),
        };
        let genome = Genome::from_json(&field("genome")?.to_string())
            .map_err(|e| Error::input(format!("genome: {e}")))?;
        if genome.canonical_key() != key {
            return Err(Error::input(format!(
                "key `{key}` does not match its genome"
            )));
        }
        Ok(Record {
            generation,
            evaluation: Evaluation {
                key,
                genome,
                scores,
                status,
                reason,
                timings,
            },
        })
    }
}

/// A genome as a JSON value (the same form as a genome file).
pub fn genome_value(g: &Genome) -> Value {
    serde_json::from_str(&g.to_json()).expect("genome JSON parses")
}

pub use crate::fsio::write_atomic;
use crate::fsio::{
    check_replaceable, crc32_hex, read_bounded, read_text, sha256_hex, DirLock, MAX_DATA_BYTES,
};

/// An open run folder with its evaluation log ready for appending.
#[derive(Debug)]
pub struct RunDir {
    pub path: PathBuf,
    log: File,
    _lock: DirLock,
}

/// The suffix of a checked log line: `,"crc":"xxxxxxxx"}`.
const CRC_SUFFIX_LEN: usize = 18;

/// One log line (newline included): the record's JSON with its CRC-32 as a last key.
fn log_line(record: &Record) -> String {
    let body = serde_json::to_string(&record.to_json()).expect("record serialises");
    let crc = crc32_hex(body.as_bytes());
    let mut line = body;
    line.pop();
    line.push_str(&format!(",\"crc\":\"{crc}\"}}\n"));
    line
}

/// Checks a log line's CRC; `Ok(false)` when it has none (a log written before checksums).
fn check_line(line: &[u8]) -> std::result::Result<bool, String> {
    let n = line.len();
    if n < CRC_SUFFIX_LEN || &line[n - CRC_SUFFIX_LEN..n - 10] != b",\"crc\":\"" {
        return Ok(false);
    }
    let want = &line[n - 10..n - 2];
    let mut body = line[..n - CRC_SUFFIX_LEN].to_vec();
    body.push(b'}');
    if crc32_hex(&body).as_bytes() == want && &line[n - 2..] == b"\"}" {
        Ok(true)
    } else {
        Err("checksum mismatch: the line was changed or corrupted after it was written".into())
    }
}

/// The settings record of a run folder: the configuration it started with and its digest.
fn manifest(cfg: &Config) -> Value {
    let settings = settings_value(cfg);
    let digest = sha256_hex(settings.to_string().as_bytes());
    json!({"format": 1, "settings": settings, "digest": digest})
}

/// A configuration as a JSON value, parsed from the same text `config.json` holds, so that two
/// of them (or one and a parsed `config.json`) compare equal value for value.
pub fn settings_value(cfg: &Config) -> Value {
    serde_json::from_str(&cfg.to_json()).expect("config JSON parses")
}

/// Writes `run.json` (the settings record) and then `config.json` into the folder `path`.
fn write_settings(path: &Path, cfg: &Config) -> Result<()> {
    let mut text = serde_json::to_string_pretty(&manifest(cfg)).expect("JSON serialises");
    text.push('\n');
    write_atomic(&path.join(MANIFEST), text.as_bytes())?;
    write_atomic(&path.join(CONFIG), (cfg.to_json() + "\n").as_bytes())
}

/// Where two JSON values differ, as `key (old -> new)` items with dotted keys.
pub fn differences(old: &Value, new: &Value, prefix: &str, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let full = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                differences(
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    &full,
                    out,
                );
            }
        }
        (a, b) if a != b => out.push(format!("{prefix} ({a} -> {b})")),
        _ => {}
    }
}

impl RunDir {
    /// Start a new run in `path` (created if needed); refuses a folder that already holds a run.
    pub fn create(path: &Path, cfg: &Config) -> Result<RunDir> {
        let held = || {
            Error::input(format!(
                "{}: already holds a run (resume it with --resume {}, or choose another --out)",
                path.display(),
                path.display()
            ))
        };
        if path.join(CONFIG).exists() || path.join(EVALUATIONS).exists() {
            return Err(held());
        }
        std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        let lock = DirLock::acquire(path)?;
        // Checked again under the lock: another process may have started a run meanwhile.
        if path.join(CONFIG).exists() || path.join(EVALUATIONS).exists() {
            return Err(held());
        }
        write_settings(path, cfg)?;
        let log_path = path.join(EVALUATIONS);
        check_replaceable(&log_path)?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::io(&log_path, e))?;
        Ok(RunDir {
            path: path.to_path_buf(),
            log,
            _lock: lock,
        })
    }

    /// Reopen a run: its configuration and every complete line of its log. A torn last line
    /// (no newline: the process died while writing it) is dropped and cut from the file; any
    /// other unreadable line, a line whose checksum does not match, or a `config.json` that no
    /// longer holds the settings recorded in `run.json` is an error naming the file and what is
    /// wrong. Another process holding the folder is an error too.
    pub fn resume(path: &Path) -> Result<(RunDir, Config, Vec<Record>)> {
        if !path.is_dir() {
            return Err(Error::input(format!(
                "{}: no such run folder (--resume takes a folder written by `msenas search`, \
                 holding its {CONFIG})",
                path.display()
            )));
        }
        let lock = DirLock::acquire(path)?;
        let (cfg, checked) = read_settings(path)?;
        let log_path = path.join(EVALUATIONS);
        let bytes = match std::fs::metadata(&log_path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            _ => read_bounded(&log_path, MAX_DATA_BYTES, "evaluation log")?,
        };
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let mut records = Vec::new();
        for (i, line) in bytes[..complete].split(|&b| b == b'\n').enumerate() {
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            let bad = |what: String| {
                Error::input(format!("{}: line {}: {what}", log_path.display(), i + 1))
            };
            let has_crc = check_line(line).map_err(bad)?;
            if checked && !has_crc {
                return Err(bad(
                    "no checksum (every line of this run carries one)".into()
                ));
            }
            let v: Value = serde_json::from_slice(line).map_err(|e| bad(e.to_string()))?;
            records.push(Record::from_json(&v).map_err(|e| bad(e.to_string()))?);
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::io(&log_path, e))?;
        if complete < bytes.len() {
            log.set_len(complete as u64)
                .map_err(|e| Error::io(&log_path, e))?;
            log.sync_all().map_err(|e| Error::io(&log_path, e))?;
        }
        let dir = RunDir {
            path: path.to_path_buf(),
            log,
            _lock: lock,
        };
        if !checked && records.is_empty() {
            // Nothing unchecked is in the log: from now on every line carries a checksum.
            dir.write_config(&cfg)?;
        }
        Ok((dir, cfg, records))
    }

    /// Append one evaluation: one line, flushed and fsynced before returning.
    pub fn append(&mut self, record: &Record) -> Result<()> {
        let line = log_line(record);
        let p = self.path.join(EVALUATIONS);
        self.log
            .write_all(line.as_bytes())
            .map_err(|e| Error::io(&p, e))?;
        self.log.flush().map_err(|e| Error::io(&p, e))?;
        self.log.sync_data().map_err(|e| Error::io(&p, e))
    }

    /// Rewrite `config.json` and its settings record (a resumed run given more generations).
    pub fn write_config(&self, cfg: &Config) -> Result<()> {
        write_settings(&self.path, cfg)
    }

    /// Write `name` (pretty JSON) atomically inside the run folder.
    pub fn write_json(&self, name: &str, value: &Value) -> Result<()> {
        let mut text = serde_json::to_string_pretty(value).expect("JSON serialises");
        text.push('\n');
        write_atomic(&self.path.join(name), text.as_bytes())
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

/// A run folder's configuration, checked: a `config.json` that no longer holds the settings
/// recorded in `run.json` (or a `run.json` whose digest does not match) is an error naming the
/// file and each differing key. The flag says whether the folder has a `run.json` (folders
/// written before it existed are read unchecked).
pub fn read_settings(path: &Path) -> Result<(Config, bool)> {
    let cfg_path = path.join(CONFIG);
    let text = read_text(&cfg_path, "run config")?;
    let cfg_value: Value = serde_json::from_str(&text)
        .map_err(|e| Error::input(format!("{}: {e}", cfg_path.display())))?;
    let cfg: Config = serde_json::from_value(cfg_value.clone())
        .map_err(|e| Error::input(format!("{}: {e}", cfg_path.display())))?;
    cfg.validate()
        .map_err(|e| Error::input(format!("{}: {e}", cfg_path.display())))?;
    let man_path = path.join(MANIFEST);
    let checked = man_path.exists();
    if checked {
        let bad = |what: String| Error::input(format!("{}: {what}", man_path.display()));
        let man: Value = serde_json::from_str(&read_text(&man_path, "run manifest")?)
            .map_err(|e| bad(e.to_string()))?;
        let settings = man
            .get("settings")
            .ok_or_else(|| bad("no `settings`".into()))?;
        let digest = man.get("digest").and_then(Value::as_str).unwrap_or("");
        if sha256_hex(settings.to_string().as_bytes()) != digest {
            return Err(bad(
                "checksum mismatch: the settings record was changed or corrupted".into(),
            ));
        }
        let mut diff = Vec::new();
        differences(settings, &cfg_value, "", &mut diff);
        if !diff.is_empty() {
            return Err(Error::input(format!(
                "{}: changed since the run started: {}; a run continues only with the \
                 settings it started with (restore them, or start a new run; --generations \
                 may be raised on resume)",
                cfg_path.display(),
                diff.join(", ")
            )));
        }
    }
    Ok((cfg, checked))
}

/// `population_<g>.json`.
pub fn population_file(g: usize) -> String {
    format!("population_{g}.json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genome::SearchSpace;
    use rand::SeedableRng;

    fn record(g: usize, seed: u64) -> Record {
        let space = SearchSpace::default();
        let genome = space.sample(&mut rand::rngs::StdRng::seed_from_u64(seed));
        Record {
            generation: g,
            evaluation: Evaluation {
                key: genome.canonical_key(),
                genome,
                scores: [("rdm".to_string(), 0.1 + 0.2), ("params".into(), 1234.0)].into(),
                status: Status::Ok,
                reason: None,
                timings: [("total".to_string(), 0.5)].into(),
            },
        }
    }

    #[test]
    fn records_round_trip_exactly() {
        let r = record(3, 1);
        let text = serde_json::to_string(&r.to_json()).unwrap();
        let back = Record::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(back, r);
        assert_eq!(
            back.evaluation.scores["rdm"].to_bits(),
            (0.1f64 + 0.2).to_bits()
        );
    }

    #[test]
    fn torn_last_line_is_dropped_and_cut() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::default();
        let mut run = RunDir::create(dir.path(), &cfg).unwrap();
        run.append(&record(0, 1)).unwrap();
        run.append(&record(0, 2)).unwrap();
        drop(run);
        let log = dir.path().join(EVALUATIONS);
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"{\"generation\":0,\"key\":\"NRN").unwrap();
        drop(f);
        let (mut run, back, recs) = RunDir::resume(dir.path()).unwrap();
        assert_eq!(back, cfg);
        assert_eq!(recs.len(), 2);
        run.append(&record(1, 3)).unwrap();
        drop(run);
        let (_, _, recs) = RunDir::resume(dir.path()).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[2], record(1, 3));
        // an existing run is not overwritten
        let e = RunDir::create(dir.path(), &cfg).unwrap_err().to_string();
        assert!(e.contains("--resume"), "{e}");
    }

    #[test]
    fn corrupt_middle_line_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = RunDir::create(dir.path(), &Config::default()).unwrap();
        run.append(&record(0, 1)).unwrap();
        drop(run);
        let log = dir.path().join(EVALUATIONS);
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"not json\n").unwrap();
        drop(f);
        let e = RunDir::resume(dir.path()).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn changed_lines_and_settings_are_refused_with_what_differs() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::default();
        let mut run = RunDir::create(dir.path(), &cfg).unwrap();
        run.append(&record(0, 1)).unwrap();
        run.append(&record(0, 2)).unwrap();
        // One process per folder.
        let e = RunDir::resume(dir.path()).unwrap_err().to_string();
        assert!(e.contains("in use by another msenas process"), "{e}");
        drop(run);

        // A changed score in a complete line: the line's checksum no longer matches.
        let log = dir.path().join(EVALUATIONS);
        let good = std::fs::read_to_string(&log).unwrap();
        std::fs::write(&log, good.replacen("1234.0", "1235.0", 1)).unwrap();
        let e = RunDir::resume(dir.path()).unwrap_err().to_string();
        assert!(e.contains("line 1: checksum mismatch"), "{e}");
        std::fs::write(&log, &good).unwrap();

        // An edited config.json: named key, old and new value.
        let cp = dir.path().join(CONFIG);
        let c2 = Config {
            search: crate::evolve::config::SearchConfig {
                population: 12,
                ..cfg.search.clone()
            },
            ..cfg.clone()
        };
        std::fs::write(&cp, c2.to_json()).unwrap();
        let e = RunDir::resume(dir.path()).unwrap_err().to_string();
        assert!(e.contains("search.population (10 -> 12)"), "{e}");
        std::fs::write(&cp, cfg.to_json()).unwrap();

        // A tampered settings record.
        let mp = dir.path().join(MANIFEST);
        let m = std::fs::read_to_string(&mp).unwrap();
        std::fs::write(
            &mp,
            m.replacen("\"population\": 10", "\"population\": 11", 1),
        )
        .unwrap();
        let e = RunDir::resume(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("run.json") && e.contains("checksum mismatch"),
            "{e}"
        );
        std::fs::write(&mp, m).unwrap();

        // Restored: resumes with both records; more generations are a recorded change.
        let (run, back, recs) = RunDir::resume(dir.path()).unwrap();
        assert_eq!((back, recs.len()), (cfg.clone(), 2));
        let mut more = cfg.clone();
        more.search.generations += 3;
        run.write_config(&more).unwrap();
        drop(run);
        let (_, back, _) = RunDir::resume(dir.path()).unwrap();
        assert_eq!(back, more);
    }

    #[test]
    fn log_lines_carry_a_crc_of_the_rest() {
        let line = log_line(&record(2, 5));
        let bytes = line.trim_end().as_bytes();
        assert_eq!(check_line(bytes), Ok(true));
        let v: Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(Record::from_json(&v).unwrap(), record(2, 5));
        assert_eq!(check_line(b"{\"generation\":0}"), Ok(false));
    }
}
