//! The configuration of a search run: defaults <- preset <- config file <- `--set key=value`.
//! Unknown keys and wrong types are user errors naming the key and what is allowed. The
//! `search` section is defined here; the others belong to their layers
//! ([`SearchSpace`], [`DataConfig`], [`TrainConfig`]), each checking its own keys.

use crate::data::DataConfig;
use crate::genome::SearchSpace;
use crate::train::{TrainConfig, MAX_BATCH};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// The largest population or offspring count.
pub const MAX_POPULATION: usize = 100_000;
/// The most generations of a search.
pub const MAX_GENERATIONS: usize = 1_000_000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    pub population: usize,
    pub offspring: usize,
    pub generations: usize,
    /// The fitness (a score name). Default `grad_rms`, the training-free score that ranked
    /// architectures best in the ranking benchmark (docs/proxy-ranking.md).
    pub fitness: String,
    /// Objectives of NSGA-II, score names (direction from the score registry).
    pub objectives: Vec<String>,
    /// Probe batch size B.
    pub probe_size: usize,
    /// Scores averaged over this many probe batches ...
    pub probe_batches: usize,
    /// ... and this many weight seeds.
    pub weight_seeds: usize,
    /// `auto`, `gpu`, `cpu` or an adapter name.
    pub device: String,
    /// The `short_train` score's budget (used only when a fitness or objective is `short_train`).
    pub short_train: ShortTrainConfig,
}

/// The budget of the `short_train` score: one pass over a stratified subset of the training
/// split, no warm-up, then accuracy on a stratified subset of the validation split. The defaults
/// are the budget the ranking benchmark measured (docs/proxy-ranking.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShortTrainConfig {
    /// Training samples seen once.
    pub samples: usize,
    pub batch_size: usize,
    /// Base learning rate (peak `lr * batch_size / 1024`, cosine decay over the pass).
    pub lr: f32,
    /// Validation samples the accuracy is measured on (at most the split's size).
    pub val_samples: usize,
}

impl Default for ShortTrainConfig {
    fn default() -> Self {
        ShortTrainConfig {
            samples: 384,
            batch_size: 8,
            lr: 1.5,
            val_samples: 512,
        }
    }
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            population: 10,
            offspring: 10,
            generations: 5,
            fitness: "grad_rms".into(),
            objectives: vec!["grad_rms".into(), "params".into()],
            probe_size: 64,
            probe_batches: 1,
            weight_seeds: 1,
            device: "auto".into(),
            short_train: ShortTrainConfig::default(),
        }
    }
}

impl SearchConfig {
    /// This section's problems, each naming its key (`search.…`) and what is allowed.
    pub fn problems(&self) -> Vec<String> {
        let mut errs = Vec::new();
        let mut range = |key: &str, v: usize, lo: usize, hi: usize| {
            if !(lo..=hi).contains(&v) {
                errs.push(format!("{key}: {v} (allowed: {lo}..={hi})"));
            }
        };
        range("search.population", self.population, 2, MAX_POPULATION);
        range("search.offspring", self.offspring, 1, MAX_POPULATION);
        range("search.generations", self.generations, 0, MAX_GENERATIONS);
        range("search.probe_size", self.probe_size, 2, MAX_BATCH);
        range("search.probe_batches", self.probe_batches, 1, 1024);
        range("search.weight_seeds", self.weight_seeds, 1, 1024);
        let st = &self.short_train;
        range("search.short_train.samples", st.samples, 1, 1 << 24);
        range("search.short_train.batch_size", st.batch_size, 1, MAX_BATCH);
        range("search.short_train.val_samples", st.val_samples, 1, 1 << 24);
        if !(st.lr.is_finite() && st.lr > 0.0) {
            errs.push(format!(
                "search.short_train.lr: {} (allowed: a positive number)",
                st.lr
            ));
        }
        if self.objectives.is_empty() {
            errs.push("search.objectives: empty (allowed: one or more score names)".into());
        }
        errs
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The run's seed: every random choice derives from it.
    pub seed: u64,
    pub space: SearchSpace,
    pub data: DataConfig,
    pub search: SearchConfig,
    pub train: TrainConfig,
}

/// Named starting points.
pub fn preset(name: &str) -> Result<Config> {
    let mut c = Config::default();
    match name {
        // A search that finishes in well under 2 minutes on 2 cores on digits (16x16, T = 4):
        // 10 + 7 x 10 = 80 candidates of width 8 scored on a probe of 48 (about 0.45 s of CPU
        // time each with the CPU reference, so about 35 s of CPU time in all).
        "cpu" => {
            c.space.width = 8;
            c.space.timesteps = 4;
            c.search.population = 10;
            c.search.offspring = 10;
            c.search.generations = 8;
            c.search.probe_size = 48;
        }
        "paper" => {
            c.space.width = 48;
            c.space.timesteps = 10;
            c.search.population = 50;
            c.search.offspring = 50;
            c.search.generations = 100;
            c.search.probe_size = 128;
            c.data.dataset = "cifar10".into();
            c.train.epochs = 300;
            c.train.batch_size = 128;
            c.train.lr = 5e-3;
            c.train.crop_pad = 4;
            c.train.flip = true;
        }
        "tiny" => {
            c.space.layout = "NRN".into();
            c.space.width = 4;
            c.space.timesteps = 2;
            c.search.population = 4;
            c.search.offspring = 4;
            c.search.generations = 2;
            c.search.probe_size = 16;
            c.train.epochs = 1;
        }
        other => {
            return Err(Error::input(format!(
                "--preset: '{other}' unknown (allowed: cpu, paper, tiny)"
            )))
        }
    }
    Ok(c)
}

impl Config {
    /// Resolve: preset (default `cpu`), then the file, then each `key=value`.
    pub fn load(preset_name: Option<&str>, file: Option<&Path>, sets: &[String]) -> Result<Config> {
        let mut cfg = preset(preset_name.unwrap_or("cpu"))?;
        if let Some(path) = file {
            cfg = cfg.with_file(path)?;
        }
        for s in sets {
            cfg = cfg.with_set(s)?;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Apply a JSON config file: the keys it holds replace this config's (unknown keys are
    /// refused, naming the key and the file).
    pub fn with_file(&self, path: &Path) -> Result<Config> {
        let text = crate::fsio::read_text(path, "config")?;
        let patch: Value = serde_json::from_str(&text)
            .map_err(|e| Error::input(format!("{}: not valid JSON: {e}", path.display())))?;
        let mut base = serde_json::to_value(self).expect("config serialises");
        merge(&mut base, &patch, "", &path.display().to_string())?;
        serde_json::from_value(base).map_err(|e| Error::input(format!("{}: {e}", path.display())))
    }

    /// Apply one `key=value` (dotted keys; the value is JSON, or a plain string).
    pub fn with_set(&self, assignment: &str) -> Result<Config> {
        let (key, raw) = assignment.split_once('=').ok_or_else(|| {
            Error::input(format!(
                "--set {assignment}: expected key=value, e.g. space.width=16"
            ))
        })?;
        let value: Value =
            serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
        let mut patch = value;
        for part in key.split('.').rev() {
            let mut m = serde_json::Map::new();
            m.insert(part.to_string(), patch);
            patch = Value::Object(m);
        }
        let mut base = serde_json::to_value(self).expect("config serialises");
        merge(&mut base, &patch, "", &format!("--set {assignment}"))?;
        serde_json::from_value(base).map_err(|e| Error::input(format!("--set {assignment}: {e}")))
    }

    /// Every problem of every section, joined into one line.
    pub fn validate(&self) -> Result<()> {
        let mut errs: Vec<String> = Vec::new();
        if let Err(e) = self.space.validate() {
            errs.extend(e.into_iter().map(|e| format!("space.{e}")));
        }
        errs.extend(self.data.problems());
        errs.extend(self.search.problems());
        errs.extend(self.train.problems());
        if errs.is_empty() {
            Ok(())
        } else {
            Err(Error::input(errs.join("; ")))
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("config serialises")
    }
}

/// Merge `patch` into `base`, refusing keys `base` does not have.
fn merge(base: &mut Value, patch: &Value, path: &str, origin: &str) -> Result<()> {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                let full = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get_mut(k) {
                    Some(slot) if slot.is_object() => merge(slot, v, &full, origin)?,
                    Some(slot) => *slot = v.clone(),
                    None => {
                        let mut allowed: Vec<&String> = b.keys().collect();
                        allowed.sort();
                        let allowed: Vec<String> = allowed
                            .iter()
                            .map(|a| {
                                if path.is_empty() {
                                    a.to_string()
                                } else {
                                    format!("{path}.{a}")
                                }
                            })
                            .collect();
                        return Err(Error::input(format!(
                            "{origin}: unknown key '{full}' (allowed: {})",
                            allowed.join(", ")
                        )));
                    }
                }
            }
            Ok(())
        }
        (Value::Object(_), p) => Err(Error::input(format!(
            "{origin}: {} must be a JSON object of keys, not {}",
            if path.is_empty() {
                "a config".to_string()
            } else {
                format!("section '{path}'")
            },
            json_kind(p)
        ))),
        (b, p) => {
            *b = p.clone();
            Ok(())
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_changes_nested_values_and_refuses_unknown_keys() {
        let c = Config::default().with_set("space.width=16").unwrap();
        assert_eq!(c.space.width, 16);
        let c = c.with_set("space.layout=NRN").unwrap();
        assert_eq!(c.space.layout, "NRN");
        let e = c.with_set("space.widht=16").unwrap_err().to_string();
        assert!(
            e.contains("unknown key 'space.widht'") && e.contains("space.width"),
            "{e}"
        );
        let e = c.with_set("space.width=abc").unwrap_err().to_string();
        assert!(e.contains("space.width=abc"), "{e}");
        assert!(c.with_set("seed=7").unwrap().seed == 7);
    }

    #[test]
    fn configs_without_newer_train_keys_load() {
        let old = r#"{"train": {"epochs": 2, "crop_pad": 0, "flip": true}}"#;
        let c: Config = serde_json::from_str(old).unwrap();
        assert_eq!(c.train.epochs, 2);
        assert_eq!(c.train.event_rotate_deg, 0.0);
        let t: TrainConfig = serde_json::from_str(r#"{"epochs": 3}"#).unwrap();
        assert_eq!(t.event_rotate_deg, 0.0);
        let e = Config::default()
            .with_set("train.event_rotate_deg=-5")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("train.event_rotate_deg"), "{e}");
    }

    #[test]
    fn configs_and_sections_must_be_objects() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        for (text, want) in [
            (
                "[1, 2, 3]",
                "a config must be a JSON object of keys, not an array",
            ),
            ("7", "not a number"),
            (
                r#"{"space": [8, 4]}"#,
                "section 'space' must be a JSON object of keys, not an array",
            ),
            (
                r#"{"search": {"short_train": 5}}"#,
                "section 'search.short_train'",
            ),
            (r#"{"train": null}"#, "not null"),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = Config::default().with_file(&p).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        let e = Config::default()
            .with_set("search=[1]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("section 'search'"), "{e}");
        std::fs::write(&p, r#"{"space": {"width": 16}}"#).unwrap();
        assert_eq!(Config::default().with_file(&p).unwrap().space.width, 16);
    }

    #[test]
    fn degenerate_and_huge_settings_are_refused() {
        for (set, key) in [
            ("data.size=0", "data.size"),
            ("data.size=4000000", "data.size"),
            ("train.batch_size=0", "train.batch_size"),
            ("train.batch_size=100000000", "train.batch_size"),
            ("search.population=1000000000000", "search.population"),
            ("search.probe_size=1", "search.probe_size"),
            (
                "search.short_train.batch_size=0",
                "search.short_train.batch_size",
            ),
            ("train.label_smoothing=1", "train.label_smoothing"),
        ] {
            let e = Config::load(None, None, &[set.to_string()])
                .unwrap_err()
                .to_string();
            assert!(e.contains(key) && e.contains("allowed"), "{set}: {e}");
        }
    }

    #[test]
    fn presets_resolve() {
        assert_eq!(preset("paper").unwrap().search.population, 50);
        assert!(preset("huge").is_err());
        Config::load(Some("paper"), None, &[]).unwrap();
    }
}
