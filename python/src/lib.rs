//! The `msenas._msenas` extension module: the library's genomes, engine, scores, ask/tell
//! search, training and evaluation, with numpy arrays in and out and the GIL released while
//! the engine computes. The `msenas` Python package (`python/msenas/`) wraps it with keyword
//! arguments, dicts and the search loop.

use std::path::PathBuf;
use std::sync::Mutex;

use msenas::config::Config;
use msenas::data;
use msenas::engine::{Device, Engine as RsEngine, Outputs};
use msenas::evolve::run_dir::RunDir;
use msenas::evolve::search::{self, Quiet, Search as RsSearch};
use msenas::fitness::evaluate::{Evaluation as RsEvaluation, Evaluator};
use msenas::genome::Genome as RsGenome;
use msenas::plan::Plan;
use msenas::train::{NewRun, Silent, TrainJob};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rand::SeedableRng;

/// A library error as the matching `msenas.errors` exception, with the CLI's one-line message.
fn py_err(e: msenas::Error) -> PyErr {
    let class = match &e {
        msenas::Error::Input(_) => "InputError",
        msenas::Error::Gpu(_) => "GpuError",
        msenas::Error::Diverged(_) => "DivergedError",
        msenas::Error::Plot(_) => "PlotError",
        msenas::Error::Io { .. } => "FileError",
    };
    let msg = e.to_string();
    Python::attach(
        |py| match py.import("msenas.errors").and_then(|m| m.getattr(class)) {
            Ok(cls) => PyErr::from_type(cls.cast_into().expect("an exception class"), msg),
            Err(_) => PyRuntimeError::new_err(msg),
        },
    )
}

fn input_err(msg: impl Into<String>) -> PyErr {
    py_err(msenas::Error::input(msg))
}

trait OrPy<T> {
    fn py(self) -> PyResult<T>;
}

impl<T> OrPy<T> for msenas::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(py_err)
    }
}

/// The configuration from a preset, a JSON file and `key=value` settings, as the CLI's
/// `--preset`, `--config` and `--set`.
#[pyfunction]
#[pyo3(signature = (preset=None, file=None, sets=Vec::new()))]
fn config_json(
    preset: Option<String>,
    file: Option<PathBuf>,
    sets: Vec<String>,
) -> PyResult<String> {
    Ok(load_config(preset, file, sets)?.to_json())
}

fn load_config(
    preset: Option<String>,
    file: Option<PathBuf>,
    sets: Vec<String>,
) -> PyResult<Config> {
    Config::load(preset.as_deref(), file.as_deref(), &sets).py()
}

fn config_from_json(text: &str) -> PyResult<Config> {
    let cfg: Config = serde_json::from_str(text).map_err(|e| input_err(format!("config: {e}")))?;
    cfg.validate().py()?;
    Ok(cfg)
}

/// An architecture: cells, motifs and wiring at the three scales.
#[pyclass(module = "msenas._msenas", frozen, from_py_object)]
#[derive(Clone)]
struct Genome {
    inner: RsGenome,
}

#[pymethods]
impl Genome {
    /// A valid random genome of the configuration's search space (`config`: JSON text).
    #[staticmethod]
    fn sample(seed: u64, config: &str) -> PyResult<Genome> {
        let cfg = config_from_json(config)?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        Ok(Genome {
            inner: cfg.space.sample(&mut rng),
        })
    }

    #[staticmethod]
    fn from_json(text: &str) -> PyResult<Genome> {
        let inner = RsGenome::from_json(text).map_err(|e| input_err(format!("genome: {e}")))?;
        inner
            .validate()
            .map_err(|e| input_err(format!("genome: {}", e.join("; "))))?;
        Ok(Genome { inner })
    }

    fn to_json(&self) -> String {
        self.inner.to_json()
    }

    /// The canonical key: equal for genomes that build the same network.
    #[getter]
    fn key(&self) -> String {
        self.inner.canonical_key()
    }

    /// Trainable parameters for `dataset`'s input at base width `width`.
    #[pyo3(signature = (dataset="digits", width=8, reduce_kernel=1))]
    fn num_params(&self, dataset: &str, width: usize, reduce_kernel: usize) -> PyResult<usize> {
        Ok(compile(&self.inner, dataset, width, reduce_kernel, 4)?.num_params)
    }

    /// The genome in words, as `msenas show` prints it.
    #[pyo3(signature = (dataset="digits", width=8, reduce_kernel=1))]
    fn describe(&self, dataset: &str, width: usize, reduce_kernel: usize) -> PyResult<String> {
        let plan = compile(&self.inner, dataset, width, reduce_kernel, 4)?;
        Ok(msenas::plan::describe::describe(
            &self.inner,
            &plan,
            dataset,
        ))
    }

    fn __eq__(&self, other: &Genome) -> bool {
        self.inner == other.inner
    }

    fn __hash__(&self) -> u64 {
        self.inner.key_hash()
    }

    fn __repr__(&self) -> String {
        format!("Genome({})", self.inner.canonical_key())
    }
}

fn compile(
    g: &RsGenome,
    dataset: &str,
    width: usize,
    reduce_kernel: usize,
    timesteps: usize,
) -> PyResult<Plan> {
    let spec = data::spec_by_name(dataset, timesteps).py()?;
    Plan::compile(g, &spec, width, reduce_kernel).map_err(|e| input_err(e.to_string()))
}

/// The engine on one device: `auto`, `cpu`, `gpu` or part of an adapter's name.
#[pyclass(module = "msenas._msenas")]
struct Engine {
    inner: Mutex<RsEngine>,
    device: String,
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (device="auto"))]
    fn new(py: Python<'_>, device: &str) -> PyResult<Engine> {
        let d = py.detach(|| Device::resolve(device)).py()?;
        Ok(Engine {
            device: d.describe(),
            inner: Mutex::new(RsEngine::new(d)),
        })
    }

    /// What the device resolved to, in one line.
    #[getter]
    fn device(&self) -> String {
        self.device.clone()
    }

    /// One forward pass of `genome` at the counter-based initial weights of `weight_seed` over
    /// `x` (`[T, B, C, H, W]`, or `[B, C, H, W]` repeated over `timesteps`), batch statistics.
    /// Returns `(logits [B, classes], firing rates per population, population names)`.
    #[pyo3(signature = (genome, x, classes, timesteps=None, width=8, reduce_kernel=1, weight_seed=0))]
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn forward<'py>(
        &self,
        py: Python<'py>,
        genome: &Genome,
        x: PyReadonlyArrayDyn<'py, f32>,
        classes: usize,
        timesteps: Option<usize>,
        width: usize,
        reduce_kernel: usize,
        weight_seed: u64,
    ) -> PyResult<(
        Bound<'py, PyArray2<f32>>,
        Bound<'py, PyArray1<f64>>,
        Vec<String>,
    )> {
        let shape = x.shape().to_vec();
        let (t, b, c, h, w) = match (shape.as_slice(), timesteps) {
            (&[t, b, c, h, w], None) => (t, b, c, h, w),
            (&[t, b, c, h, w], Some(tt)) if tt == t => (t, b, c, h, w),
            (&[t, ..], Some(tt)) if shape.len() == 5 => {
                return Err(input_err(format!(
                    "x: {t} time steps, timesteps={tt} (allowed: equal, or omit timesteps)"
                )))
            }
            (&[b, c, h, w], tt) => (tt.unwrap_or(4), b, c, h, w),
            _ => {
                return Err(input_err(format!(
                    "x: shape {shape:?} (allowed: [T, B, C, H, W] or [B, C, H, W])"
                )))
            }
        };
        if t == 0 || t > 64 || classes == 0 {
            return Err(input_err(format!(
                "timesteps {t}, classes {classes} (allowed: timesteps 1..=64, classes >= 1)"
            )));
        }
        let spec = msenas::DataSpec {
            in_ch: c,
            height: h,
            width: w,
            classes,
            timesteps: t,
            event: false,
        };
        let plan = Plan::compile(&genome.inner, &spec, width, reduce_kernel)
            .map_err(|e| input_err(e.to_string()))?;
        let input: Vec<f32> = x.as_array().iter().copied().collect();
        let engine = &self.inner;
        let out = py
            .detach(|| {
                let mut e = engine.lock().expect("engine lock");
                e.forward(
                    &plan,
                    weight_seed,
                    &input,
                    b,
                    Outputs {
                        firing_rates: true,
                        ..Outputs::default()
                    },
                )
            })
            .py()?;
        let logits = numpy::ndarray::Array2::from_shape_vec((b, classes), out.logits)
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        let names = plan.populations.iter().map(|p| p.name.clone()).collect();
        Ok((
            logits.into_pyarray(py),
            out.firing_rates.into_pyarray(py),
            names,
        ))
    }
}

/// Seconds per call of the same work as [`Engine::forward`] (plan compile and forward pass),
/// timed inside Rust with no Python in the loop: the baseline of the Python overhead benchmark.
#[pyfunction]
#[pyo3(signature = (engine, genome, x, classes, timesteps, width=8, reduce_kernel=1, weight_seed=0, repeats=10))]
#[allow(clippy::too_many_arguments)]
fn _bench_forward(
    py: Python<'_>,
    engine: &Engine,
    genome: &Genome,
    x: PyReadonlyArrayDyn<'_, f32>,
    classes: usize,
    timesteps: usize,
    width: usize,
    reduce_kernel: usize,
    weight_seed: u64,
    repeats: usize,
) -> PyResult<Vec<f64>> {
    let shape = x.shape().to_vec();
    let &[t, b, c, h, w] = shape.as_slice() else {
        return Err(input_err("x: [T, B, C, H, W] expected"));
    };
    if t != timesteps {
        return Err(input_err("x: T differs from timesteps"));
    }
    let spec = msenas::DataSpec {
        in_ch: c,
        height: h,
        width: w,
        classes,
        timesteps: t,
        event: false,
    };
    let input: Vec<f32> = x.as_array().iter().copied().collect();
    let g = &genome.inner;
    let inner = &engine.inner;
    py.detach(|| -> msenas::Result<Vec<f64>> {
        let mut e = inner.lock().expect("engine lock");
        let mut secs = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let t0 = std::time::Instant::now();
            let plan = Plan::compile(g, &spec, width, reduce_kernel)?;
            let out = e.forward(
                &plan,
                weight_seed,
                &input,
                b,
                Outputs {
                    firing_rates: true,
                    ..Outputs::default()
                },
            )?;
            std::hint::black_box(out);
            secs.push(t0.elapsed().as_secs_f64());
        }
        Ok(secs)
    })
    .py()
}

/// The result of scoring one genome.
#[pyclass(module = "msenas._msenas", frozen, from_py_object)]
#[derive(Clone)]
struct Evaluation {
    inner: RsEvaluation,
}

#[pymethods]
impl Evaluation {
    #[getter]
    fn key(&self) -> String {
        self.inner.key.clone()
    }
    #[getter]
    fn genome(&self) -> Genome {
        Genome {
            inner: self.inner.genome.clone(),
        }
    }
    /// `ok`, `dead` or `failed`.
    #[getter]
    fn status(&self) -> String {
        serde_json::to_value(self.inner.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
    #[getter]
    fn reason(&self) -> Option<String> {
        self.inner.reason.clone()
    }
    #[getter]
    fn scores<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.inner.scores {
            d.set_item(k, v)?;
        }
        Ok(d)
    }
    #[getter]
    fn timings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.inner.timings {
            d.set_item(k, v)?;
        }
        Ok(d)
    }
    /// The evaluation as one line of a run's `evaluations.jsonl` (generation 0).
    fn to_json(&self) -> String {
        msenas::evolve::run_dir::Record {
            generation: 0,
            evaluation: self.inner.clone(),
        }
        .to_json()
        .to_string()
    }
    /// An evaluation from [`Evaluation::to_json`]'s text (for sending between processes).
    #[staticmethod]
    fn from_json(text: &str) -> PyResult<Evaluation> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| input_err(format!("evaluation: {e}")))?;
        let r = msenas::evolve::run_dir::Record::from_json(&v)
            .map_err(|e| input_err(format!("evaluation: {e}")))?;
        Ok(Evaluation {
            inner: r.evaluation,
        })
    }
    fn __repr__(&self) -> String {
        format!(
            "Evaluation({}, {}, {:?})",
            self.inner.key,
            self.status(),
            self.inner.scores
        )
    }
}

/// Scores genomes as the search does: the configuration's probe batches from its dataset, its
/// weight seeds and the scores its fitness and objectives need.
#[pyclass(module = "msenas._msenas")]
struct Scorer {
    inner: Mutex<Box<dyn Evaluator + Send>>,
    device: String,
    batch_hint: usize,
}

#[pymethods]
impl Scorer {
    #[new]
    fn new(py: Python<'_>, config: &str, device: &str) -> PyResult<Scorer> {
        let cfg = config_from_json(config)?;
        let device = device.to_string();
        let ev = py
            .detach(|| -> msenas::Result<Box<dyn Evaluator + Send>> {
                let scores = search::search_scores(&cfg)?;
                let (settings, probe, ds) = search::prepare(&cfg, scores)?;
                let device = Device::resolve(&device)?;
                msenas::evolve::short_train::make_search_evaluator(&cfg, settings, &ds, |s| {
                    msenas::fitness::evaluate::make_evaluator(&device, s, probe)
                })
            })
            .py()?;
        Ok(Scorer {
            device: ev.device(),
            batch_hint: ev.batch_hint().max(1),
            inner: Mutex::new(ev),
        })
    }

    #[getter]
    fn device(&self) -> String {
        self.device.clone()
    }

    /// How many genomes the device prefers per call.
    #[getter]
    fn batch_hint(&self) -> usize {
        self.batch_hint
    }

    /// One evaluation per genome, in order.
    fn evaluate(&self, py: Python<'_>, genomes: Vec<Genome>) -> Vec<Evaluation> {
        let gs: Vec<RsGenome> = genomes.into_iter().map(|g| g.inner).collect();
        let ev = &self.inner;
        py.detach(|| ev.lock().expect("scorer lock").evaluate(&gs))
            .into_iter()
            .map(|inner| Evaluation { inner })
            .collect()
    }
}

/// The search as ask/tell over a run folder (see the library's `evolve::search::Search`).
#[pyclass(module = "msenas._msenas")]
struct Search {
    inner: Mutex<Option<RsSearch<RunDir>>>,
    config: String,
    path: PathBuf,
    logged: usize,
}

impl Search {
    fn with<T>(&self, f: impl FnOnce(&mut RsSearch<RunDir>) -> msenas::Result<T>) -> PyResult<T> {
        let mut s = self.inner.lock().expect("search lock");
        let s = s
            .as_mut()
            .ok_or_else(|| input_err("search: already finished"))?;
        f(s).py()
    }
}

#[pymethods]
impl Search {
    /// A new run in `out` with `config` (JSON text), or, with `resume`, the run already there
    /// (its own settings; `generations` may extend it).
    #[staticmethod]
    #[pyo3(signature = (out, config=None, resume=false, generations=None))]
    fn open(
        out: PathBuf,
        config: Option<&str>,
        resume: bool,
        generations: Option<usize>,
    ) -> PyResult<Search> {
        let (dir, cfg, records) = if resume {
            if config.is_some() {
                return Err(input_err(
                    "resume: the run's settings come from its config.json; give no config",
                ));
            }
            {
                let (dir, cfg, records, regenerate) = search::resume_run(&out, generations).py()?;
                if let Some(c) = regenerate {
                    dir.write_config(&c).py()?;
                }
                (dir, cfg, records)
            }
        } else {
            let mut cfg = match config {
                Some(c) => config_from_json(c)?,
                None => load_config(None, None, Vec::new())?,
            };
            if let Some(g) = generations {
                cfg.search.generations = g;
            }
            // Everything that can refuse the settings runs before the folder is created.
            search::search_scores(&cfg).py()?;
            cfg.validate().py()?;
            (RunDir::create(&out, &cfg).py()?, cfg, Vec::new())
        };
        let logged = records.len();
        let s = RsSearch::new(&cfg, dir, records).py()?;
        Ok(Search {
            inner: Mutex::new(Some(s)),
            config: cfg.to_json(),
            path: out,
            logged,
        })
    }

    /// The run's settings (JSON text).
    #[getter]
    fn config(&self) -> String {
        self.config.clone()
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Evaluations the run's log held when it was opened.
    #[getter]
    fn logged(&self) -> usize {
        self.logged
    }

    #[getter]
    fn generation(&self) -> PyResult<usize> {
        self.with(|s| Ok(s.generation()))
    }

    /// The genomes to evaluate next (empty when the search is complete).
    fn ask(&self) -> PyResult<Vec<Genome>> {
        Ok(self
            .with(|s| s.ask(&mut Quiet))?
            .into_iter()
            .map(|inner| Genome { inner })
            .collect())
    }

    /// Record evaluations of asked genomes (any order, any number of calls).
    fn tell(&self, evaluations: Vec<Evaluation>) -> PyResult<()> {
        let evals = evaluations.into_iter().map(|e| e.inner).collect();
        self.with(|s| s.tell(evals, &mut Quiet))
    }

    /// Write the Pareto front, `best.json` (when complete) and the plots; returns a summary
    /// (JSON text). The search cannot be used afterwards.
    fn finish(&self, py: Python<'_>) -> PyResult<String> {
        let s = self
            .inner
            .lock()
            .expect("search lock")
            .take()
            .ok_or_else(|| input_err("search: already finished"))?;
        let out = py.detach(|| s.finish()).py()?;
        Ok(serde_json::json!({
            "generations": out.generations,
            "interrupted": out.interrupted,
            "fresh": out.fresh,
            "replayed": out.replayed,
            "best": out.best.as_ref().map(|b| serde_json::json!({
                "key": b.key,
                "scores": b.scores,
                "genome": msenas::evolve::run_dir::genome_value(&b.genome),
            })),
            "front": out.front.iter().map(|m| m.evaluation.key.clone()).collect::<Vec<_>>(),
            "warnings": out.warnings,
        })
        .to_string())
    }
}

/// Train a genome (or continue the run in `out` with `resume`); returns the result (JSON text).
#[pyfunction]
#[pyo3(signature = (out, genome=None, config=None, dataset="digits", data_dir=None, seed=0, device="auto", resume=false, size=None))]
#[allow(clippy::too_many_arguments)]
fn train(
    py: Python<'_>,
    out: PathBuf,
    genome: Option<Genome>,
    config: Option<&str>,
    dataset: &str,
    data_dir: Option<PathBuf>,
    seed: u64,
    device: &str,
    resume: bool,
    size: Option<usize>,
) -> PyResult<String> {
    let cfg = match config {
        Some(c) => Some(config_from_json(c)?),
        None => None,
    };
    let (dataset, device) = (dataset.to_string(), device.to_string());
    let r = py
        .detach(|| -> msenas::Result<_> {
            let device = Device::resolve(&device)?;
            if resume {
                if genome.is_some() || cfg.is_some() || size.is_some() {
                    return Err(msenas::Error::input(format!(
                        "resume: {} holds its settings; give no genome, config or size",
                        out.display()
                    )));
                }
                let r = msenas::train::ResumedRun::read(&out, data_dir)?;
                return TrainJob::new(&r.network, &r.dataset, &r.config, r.seed, &out)
                    .resuming(true)
                    .run(&device, &mut Silent);
            }
            let genome = genome.ok_or_else(|| {
                msenas::Error::input("train: give a genome, or resume=True with a run folder")
            })?;
            let cfg = match cfg {
                Some(c) => c,
                None => Config::load(None, None, &[])?,
            };
            let r = NewRun::prepare(
                genome.inner,
                &cfg.train,
                &cfg.space,
                &dataset,
                data_dir,
                size,
                seed,
                &out,
            )?;
            TrainJob::new(&r.network, &r.dataset, &r.config, r.seed, &out).run(&device, &mut Silent)
        })
        .py()?;
    serde_json::to_string(&r).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

/// Accuracy, firing rates, operation counts, energy and noise robustness of a trained network
/// (a checkpoint file or a training folder); returns the report (JSON text).
#[pyfunction]
#[pyo3(signature = (checkpoint, dataset=None, data_dir=None, split="test", noise=None, seed=0, batch_size=256, device="cpu"))]
#[allow(clippy::too_many_arguments)]
fn evaluate(
    py: Python<'_>,
    checkpoint: PathBuf,
    dataset: Option<String>,
    data_dir: Option<PathBuf>,
    split: &str,
    noise: Option<String>,
    seed: u64,
    batch_size: usize,
    device: &str,
) -> PyResult<String> {
    let req = msenas::train::eval::EvalRequest {
        checkpoint,
        dataset,
        data_dir,
        split: split.to_string(),
        noise,
        seed,
        batch_size,
        device: device.to_string(),
    };
    let (r, _) = py.detach(|| req.run()).py()?;
    serde_json::to_string(&r).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

/// The export of a network (`msenas export`'s folder, in memory): a trained checkpoint (file
/// or training folder), or a genome at the initial weights of `weight_seed` for `dataset`.
/// Returns `(manifest JSON, plan JSON, params, bn_mean, bn_var)`.
#[pyfunction]
#[pyo3(signature = (genome=None, checkpoint=None, dataset="digits", width=8, reduce_kernel=1, timesteps=4, weight_seed=0))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn export_data<'py>(
    py: Python<'py>,
    genome: Option<Genome>,
    checkpoint: Option<PathBuf>,
    dataset: &str,
    width: usize,
    reduce_kernel: usize,
    timesteps: usize,
    weight_seed: u64,
) -> PyResult<(
    String,
    String,
    Bound<'py, PyArray1<f32>>,
    Bound<'py, PyArray1<f32>>,
    Bound<'py, PyArray1<f32>>,
)> {
    use msenas::export::Exported;
    let ex = match (genome, checkpoint) {
        (None, Some(ck)) => Exported::from_checkpoint(&ck).py()?,
        (Some(g), None) => {
            let spec = data::spec_by_name(dataset, timesteps).py()?;
            Exported::from_genome(&g.inner, &spec, width, reduce_kernel, weight_seed).py()?
        }
        _ => return Err(input_err("give a genome or a checkpoint, not both")),
    };
    let plan =
        serde_json::to_string(&ex.plan).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    let (mean, var) = ex.bn.flatten();
    Ok((
        ex.manifest().to_string(),
        plan,
        ex.params.into_pyarray(py),
        mean.into_pyarray(py),
        var.into_pyarray(py),
    ))
}

/// Logits of a trained network (checkpoint file or training folder) on `x` (`[T, B, C, H, W]`
/// or `[B, C, H, W]`), with its running batch-norm statistics, on `device`.
#[pyfunction]
#[pyo3(signature = (checkpoint, x, device="auto"))]
fn predict<'py>(
    py: Python<'py>,
    checkpoint: PathBuf,
    x: PyReadonlyArrayDyn<'py, f32>,
    device: &str,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let path = msenas::train::model_file(&checkpoint);
    let (ck, params, bn) = py.detach(|| msenas::train::load_model(&path)).py()?;
    let plan = ck.meta.plan;
    let s = plan.spec;
    let shape = x.shape().to_vec();
    match *shape.as_slice() {
        [t, _, c, h, w] if t == s.timesteps && (c, h, w) == (s.in_ch, s.height, s.width) => {}
        [_, c, h, w] if (c, h, w) == (s.in_ch, s.height, s.width) => {}
        _ => {
            return Err(input_err(format!(
                "x: shape {shape:?} (allowed: [{t}, B, {c}, {h}, {w}] or [B, {c}, {h}, {w}])",
                t = s.timesteps,
                c = s.in_ch,
                h = s.height,
                w = s.width
            )))
        }
    }
    let b = shape[shape.len() - 4];
    let input: Vec<f32> = x.as_array().iter().copied().collect();
    let device = device.to_string();
    let logits = py
        .detach(|| {
            let device = Device::resolve(&device)?;
            msenas::engine::Model::new(&device, &plan, params, bn)?.logits(&input, b)
        })
        .py()?;
    let a = numpy::ndarray::Array2::from_shape_vec((b, s.classes), logits)
        .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    Ok(a.into_pyarray(py))
}

/// Every score the engine computes: `(name, kind, direction)`.
#[pyfunction]
fn score_names() -> Vec<(String, String, String)> {
    msenas::fitness::ScoreId::ALL
        .into_iter()
        .map(|s| {
            (
                s.name().to_string(),
                format!("{:?}", s.kind()).to_lowercase(),
                format!("{:?}", s.direction()).to_lowercase(),
            )
        })
        .collect()
}

#[pymodule]
fn _msenas(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Genome>()?;
    m.add_class::<Engine>()?;
    m.add_class::<Evaluation>()?;
    m.add_class::<Scorer>()?;
    m.add_class::<Search>()?;
    m.add_function(wrap_pyfunction!(config_json, m)?)?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(score_names, m)?)?;
    m.add_function(wrap_pyfunction!(_bench_forward, m)?)?;
    m.add_function(wrap_pyfunction!(export_data, m)?)?;
    m.add_function(wrap_pyfunction!(predict, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
