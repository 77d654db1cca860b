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
//! Every file but the log is written to a temporary file and renamed into place. The log is
//! append-only; a process killed while writing a line leaves a torn last line, which
//! [`RunDir::resume`] drops (and truncates away) so at most the evaluation in flight is lost.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::evaluate::{Evaluation, Status};
use crate::config::Config;
use crate::genome::Genome;
use crate::{Error, Result};

pub const CONFIG: &str = "config.json";
pub const EVALUATIONS: &str = "evaluations.jsonl";
pub const PARETO: &str = "pareto.json";
pub const BEST: &str = "best.json";

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

    pub fn from_json(v: &Value) -> std::result::Result<Record, String> {
        let field = |k: &str| v.get(k).ok_or_else(|| format!("missing field `{k}`"));
        let generation = field("generation")?
            .as_u64()
            .ok_or("`generation` is not an integer")? as usize;
        let key = field("key")?
            .as_str()
            .ok_or("`key` is not a string")?
            .to_string();
        let status: Status =
            serde_json::from_value(field("status")?.clone()).map_err(|e| format!("status: {e}"))?;
        let reason = match v.get("reason") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err("`reason` is not a string".into()),
        };
        let scores: BTreeMap<String, f64> =
            serde_json::from_value(field("scores")?.clone()).map_err(|e| format!("scores: {e}"))?;
        let timings: BTreeMap<String, f64> = match v.get("timings") {
            Some(t) => serde_json::from_value(t.clone()).map_err(|e| format!("timings: {e}"))?,
            None => BTreeMap::new(),
        };
        let genome =
            Genome::from_json(&field("genome")?.to_string()).map_err(|e| format!("genome: {e}"))?;
        if genome.canonical_key() != key {
            return Err(format!("key `{key}` does not match its genome"));
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

/// Write `bytes` to `path` atomically: a temporary file in the same folder, fsynced, then
/// renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|s| s.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// An open run folder with its evaluation log ready for appending.
#[derive(Debug)]
pub struct RunDir {
    pub path: PathBuf,
    log: File,
}

impl RunDir {
    /// Start a new run in `path` (created if needed); refuses a folder that already holds a run.
    pub fn create(path: &Path, cfg: &Config) -> Result<RunDir> {
        if path.join(CONFIG).exists() || path.join(EVALUATIONS).exists() {
            return Err(Error::input(format!(
                "{}: already holds a run (resume it with --resume {}, or choose another --out)",
                path.display(),
                path.display()
            )));
        }
        std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        write_atomic(&path.join(CONFIG), (cfg.to_json() + "\n").as_bytes())?;
        let log_path = path.join(EVALUATIONS);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::io(&log_path, e))?;
        Ok(RunDir {
            path: path.to_path_buf(),
            log,
        })
    }

    /// Reopen a run: its configuration and every complete line of its log. A torn last line
    /// (no newline: the process died while writing it) is dropped and cut from the file; any
    /// other unreadable line is an error naming the line.
    pub fn resume(path: &Path) -> Result<(RunDir, Config, Vec<Record>)> {
        let cfg_path = path.join(CONFIG);
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        let cfg: Config = serde_json::from_str(&text)
            .map_err(|e| Error::input(format!("{}: {e}", cfg_path.display())))?;
        cfg.validate()
            .map_err(|e| Error::input(format!("{}: {e}", cfg_path.display())))?;
        let log_path = path.join(EVALUATIONS);
        let bytes = match std::fs::read(&log_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(&log_path, e)),
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
            let v: Value = serde_json::from_slice(line).map_err(|e| bad(e.to_string()))?;
            records.push(Record::from_json(&v).map_err(bad)?);
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
        Ok((
            RunDir {
                path: path.to_path_buf(),
                log,
            },
            cfg,
            records,
        ))
    }

    /// Append one evaluation: one line, flushed and fsynced before returning.
    pub fn append(&mut self, record: &Record) -> Result<()> {
        let mut line = serde_json::to_string(&record.to_json()).expect("record serialises");
        line.push('\n');
        let p = self.path.join(EVALUATIONS);
        self.log
            .write_all(line.as_bytes())
            .map_err(|e| Error::io(&p, e))?;
        self.log.flush().map_err(|e| Error::io(&p, e))?;
        self.log.sync_data().map_err(|e| Error::io(&p, e))
    }

    /// Rewrite `config.json` (a resumed run given more generations).
    pub fn write_config(&self, cfg: &Config) -> Result<()> {
        write_atomic(&self.path.join(CONFIG), (cfg.to_json() + "\n").as_bytes())
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
}
