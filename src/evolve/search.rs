//! The NSGA-II search loop over the integer genome encoding (SPEC §3).
//!
//! - Generation 0 samples `population` genomes with distinct canonical keys; every later
//!   generation breeds `offspring` children with [`nsga2::make_offspring`] against the set of
//!   every key seen so far (no key is evaluated twice) and keeps the best `population` of
//!   parents and children ([`nsga2::select_survivors`]). `generations` counts generation 0, so a
//!   run evaluates at most `population + (generations - 1) x offspring` genomes (the paper's
//!   50 + 99 x 50 = 5,000).
//! - Objectives are score names; each one's direction comes from the score registry.
//! - All randomness of generation g comes from a generator seeded by (run seed, g), and every
//!   evaluation is cached by canonical key, so replaying a run's log as the cache recomputes
//!   the same generations: a resumed run ends exactly as an uninterrupted one.
//! - Frozen scales are the search space's equal bounds; nothing here knows about them.

use std::borrow::BorrowMut;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

use super::nsga2::{self, Nsga2Config};
use super::run_dir::{self, genome_value, population_file, Record, RunDir};
use crate::data::{self, DataOptions, Dataset};
use crate::evolve::config::Config;
use crate::fitness::evaluate::{derive_seed, EvalSettings, Evaluation, Evaluator, Probe, Status};
use crate::fitness::{self, Direction as ScoreDirection, ScoreId};
use crate::genome::{motifs, Genome, ResolvedCell};
use crate::report::plot;
use crate::stats::median;
use crate::{Error, Result};

/// Objective names with their NSGA-II directions (from the score registry).
pub fn objectives(cfg: &Config) -> Result<Vec<(ScoreId, nsga2::Direction)>> {
    let mut out: Vec<(ScoreId, nsga2::Direction)> = Vec::new();
    for name in &cfg.search.objectives {
        let id: ScoreId = name
            .parse()
            .map_err(|e| Error::input(format!("search.objectives: {e}")))?;
        if out.iter().any(|(n, _)| *n == id) {
            return Err(Error::input(format!(
                "search.objectives: `{name}` listed twice"
            )));
        }
        let dir = match id.direction() {
            ScoreDirection::Maximize => nsga2::Direction::Maximize,
            ScoreDirection::Minimize => nsga2::Direction::Minimize,
        };
        out.push((id, dir));
    }
    if out.is_empty() {
        return Err(Error::input(
            "search.objectives: empty (allowed: one or more score names)",
        ));
    }
    Ok(out)
}

/// Scores a search computes: the fitness, the objectives, then `params`, `sops` and
/// `firing_rate` (cheap, and the plots and summary use them), without repeats.
pub fn search_scores(cfg: &Config) -> Result<Vec<ScoreId>> {
    let fit: ScoreId = cfg
        .search
        .fitness
        .parse()
        .map_err(|e| Error::input(format!("search.fitness: {e}")))?;
    let objectives = objectives(cfg)?;
    let mut out: Vec<ScoreId> = Vec::new();
    let all = std::iter::once(fit)
        .chain(objectives.iter().map(|&(id, _)| id))
        .chain(ScoreId::of_kind(fitness::ScoreKind::Cost));
    for s in all {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

/// Loads the configured dataset.
pub fn load_data(cfg: &Config) -> Result<Dataset> {
    data::load(
        &cfg.data.dataset,
        &DataOptions {
            data_dir: cfg.data.data_dir.as_ref().map(PathBuf::from),
            timesteps: cfg.space.timesteps,
            size: cfg.data.size,
            seed: cfg.seed,
            ..Default::default()
        },
    )
}

/// Evaluation settings and the probe of a configuration (loads the dataset).
pub fn prepare(cfg: &Config, scores: Vec<ScoreId>) -> Result<(EvalSettings, Probe, Dataset)> {
    let ds = load_data(cfg)?;
    // Every candidate halves the input once per reduction cell: an input smaller than that
    // would fail every evaluation, so it is refused before any work.
    let reductions = cfg.space.layout.chars().filter(|&c| c == 'R').count() as u32;
    let side = ds.spec.height.min(ds.spec.width);
    if reductions > 0 && side.checked_shr(reductions).unwrap_or(0) == 0 {
        return Err(Error::input(format!(
            "data.size: {side}x{side} inputs are too small for layout '{}' ({reductions} \
             reduction cells halve them to nothing; allowed: a side of at least {})",
            cfg.space.layout,
            1u64 << reductions.min(63)
        )));
    }
    let probe = Probe::draw(
        &ds.train,
        cfg.search.probe_size,
        cfg.search.probe_batches,
        cfg.space.timesteps,
        cfg.seed,
    )?;
    let settings = EvalSettings {
        spec: ds.spec,
        width: cfg.space.width,
        reduce_kernel: cfg.space.reduce_kernel,
        seed: cfg.seed,
        weight_seeds: cfg.search.weight_seeds,
        scores,
    };
    // Training scores (`short_train`) are computed by a wrapper around the training-free
    // evaluator (`short_train::make_search_evaluator`); everything else is checked here.
    super::short_train::training_free_part(&settings).validate()?;
    Ok((settings, probe, ds))
}

/// Open the run folder at `path` to continue its search: its settings, its log, and, when
/// `generations` changes the configured count, the settings to record once the caller has
/// accepted them ([`RunDir::write_config`]). A count below what the log holds, or below the
/// configured count of a finished search, is refused (it would rewrite results).
pub fn resume_run(
    path: &std::path::Path,
    generations: Option<usize>,
) -> Result<(RunDir, Config, Vec<Record>, Option<Config>)> {
    let (dir, mut cfg, records) = RunDir::resume(path)?;
    let mut regenerate = None;
    if let Some(g) = generations {
        if g == 0 {
            return Err(Error::input("--generations: 0 (allowed: >= 1)"));
        }
        // Never rewrite results with a shorter search: not below what the log holds, and not
        // below the configured count once the search has finished.
        let logged = records.iter().map(|r| r.generation + 1).max().unwrap_or(0);
        let finished = dir.file(run_dir::PARETO).exists();
        let floor = if finished {
            logged.max(cfg.search.generations)
        } else {
            logged
        };
        if g < floor {
            return Err(Error::input(format!(
                "--generations: {g} is fewer than the {floor} generations {} already holds{} \
                 (allowed: >= {floor}; a shorter search would rewrite its results)",
                path.display(),
                if finished {
                    " as a finished search"
                } else {
                    ""
                }
            )));
        }
        if g != cfg.search.generations {
            cfg.search.generations = g;
            regenerate = Some(cfg.clone());
        }
    }
    Ok((dir, cfg, records, regenerate))
}

/// A member of the population: its integer vector and its evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub vector: Vec<i64>,
    pub evaluation: Evaluation,
}

/// What the plots and the progress display need from one generation.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationSummary {
    pub generation: usize,
    /// Best and median fitness of the population's live members (NaN when none).
    pub best: f64,
    pub median: f64,
    /// Reachable normal cells per motif (registry order) over the population.
    pub motif_counts: Vec<f64>,
    /// Evaluations computed in this generation (not replayed from the log).
    pub fresh: usize,
    /// Evaluations taken from the log of a resumed run.
    pub replayed: usize,
}

/// Progress callbacks (the CLI draws a progress bar; tests ignore them).
pub trait Observer {
    fn evaluated(&mut self, _generation: usize, _evaluation: &Evaluation, _replayed: bool) {}
    fn generation_done(&mut self, _summary: &GenerationSummary, _best_so_far: Option<&Evaluation>) {
    }
}

/// An observer that does nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// How a search ended.
#[derive(Clone, Debug)]
pub struct SearchOutcome {
    /// Generations completed (generation 0 included).
    pub generations: usize,
    /// Stopped by the stop flag before the end.
    pub interrupted: bool,
    pub population: Vec<Member>,
    /// The best live evaluation by the fitness (ties: fewer parameters, then earlier).
    pub best: Option<Evaluation>,
    /// The first front of the final population, ordered by the first objective.
    pub front: Vec<Member>,
    pub history: Vec<GenerationSummary>,
    /// Evaluations computed by this process / replayed from the log.
    pub fresh: usize,
    pub replayed: usize,
    /// Plots that could not be drawn (the run itself is complete).
    pub warnings: Vec<String>,
}

/// Objective values of members in minimisation form.
fn objective_matrix(members: &[Member], objs: &[(ScoreId, nsga2::Direction)]) -> Vec<Vec<f64>> {
    members
        .iter()
        .map(|m| {
            objs.iter()
                .map(|(n, d)| d.to_min(m.evaluation.score(n)))
                .collect()
        })
        .collect()
}

/// The genomes of the generation in progress and what is known of them.
struct Pending {
    vectors: Vec<Vec<i64>>,
    genomes: Vec<Genome>,
    keys: Vec<String>,
    results: Vec<Option<Evaluation>>,
    fresh0: usize,
    replayed0: usize,
}

/// The search as ask/tell: [`Search::ask`] hands out the genomes of the current generation that
/// the run's log does not already hold, [`Search::tell`] records their evaluations (in any
/// order, in any number of calls, each appended to the log as it arrives), and a generation
/// whose genomes are all known is selected and written before the next one is bred. Whoever
/// evaluates (this process, a pool of workers, another machine) changes nothing: the genomes
/// asked for, the log and the final files depend only on the settings and the scores, so a
/// search resumed from its log, or evaluated elsewhere, ends exactly as an uninterrupted one.
///
/// `R` is the run folder, owned ([`RunDir`]) or borrowed (`&mut RunDir`).
pub struct Search<R: BorrowMut<RunDir> = RunDir> {
    cfg: Config,
    run: R,
    objs: Vec<(ScoreId, nsga2::Direction)>,
    nsga: Nsga2Config,
    cache: HashMap<String, Evaluation>,
    seen: HashSet<String>,
    history: Vec<GenerationSummary>,
    population: Vec<Member>,
    /// The generation being evaluated (== `generations` when the search is complete).
    generation: usize,
    pending: Option<Pending>,
    /// Every evaluation in the order this search used it (fresh or replayed), by generation.
    used: Vec<Evaluation>,
    fresh: usize,
    replayed: usize,
}

impl<R: BorrowMut<RunDir>> Search<R> {
    /// A search over `cfg`'s space writing to `run`; `records` is the run's log so far (empty
    /// for a new run), replayed as a cache.
    pub fn new(cfg: &Config, run: R, records: Vec<Record>) -> Result<Self> {
        cfg.validate()?;
        if cfg.search.generations == 0 {
            return Err(Error::input(
                "search.generations: 0 (allowed: >= 1, generation 0 included)",
            ));
        }
        let objs = objectives(cfg)?;
        search_scores(cfg)?;
        let mut cache = HashMap::new();
        for r in records {
            cache
                .entry(r.evaluation.key.clone())
                .or_insert(r.evaluation);
        }
        Ok(Search {
            cfg: cfg.clone(),
            run,
            objs,
            nsga: Nsga2Config {
                population: cfg.search.population,
                offspring: cfg.search.offspring,
                ..Default::default()
            },
            cache,
            seen: HashSet::new(),
            history: Vec::new(),
            population: Vec::new(),
            generation: 0,
            pending: None,
            used: Vec::new(),
            fresh: 0,
            replayed: 0,
        })
    }

    /// The scores every evaluation must hold ([`search_scores`]).
    pub fn scores(&self) -> Vec<ScoreId> {
        search_scores(&self.cfg).expect("checked in Search::new")
    }

    /// The generation being evaluated (the number of generations when complete).
    pub fn generation(&self) -> usize {
        self.generation
    }

    /// Every generation selected.
    pub fn is_done(&self) -> bool {
        self.generation >= self.cfg.search.generations
    }

    /// The genomes to evaluate next: those of the current generation not yet told (the same
    /// ones again until they are). Generations whose genomes the log already holds are replayed
    /// and selected on the way. Empty when the search is complete.
    pub fn ask(&mut self, observer: &mut dyn Observer) -> Result<Vec<Genome>> {
        loop {
            if self.is_done() {
                return Ok(Vec::new());
            }
            if self.pending.is_none() {
                self.breed(observer)?;
            }
            let p = self.pending.as_ref().expect("bred");
            let todo: Vec<Genome> = p
                .results
                .iter()
                .zip(&p.genomes)
                .filter(|(r, _)| r.is_none())
                .map(|(_, g)| g.clone())
                .collect();
            if !todo.is_empty() {
                return Ok(todo);
            }
            self.select(observer)?;
        }
    }

    /// Record evaluations of genomes handed out by [`Search::ask`] (matched by canonical key),
    /// each appended to the log; the generation is selected once all of its genomes are known.
    /// An evaluation of a genome that was not asked for, or was already told, is an error and
    /// nothing of that call is recorded.
    pub fn tell(
        &mut self,
        evaluations: Vec<Evaluation>,
        observer: &mut dyn Observer,
    ) -> Result<()> {
        let Some(p) = self.pending.as_ref() else {
            return Err(Error::input(
                "tell: no genomes were asked for (call ask first)",
            ));
        };
        let mut slots = Vec::with_capacity(evaluations.len());
        for e in &evaluations {
            let slot = (0..p.keys.len())
                .position(|i| p.results[i].is_none() && !slots.contains(&i) && p.keys[i] == e.key)
                .ok_or_else(|| {
                    Error::input(format!(
                        "tell: genome {} was not asked for in generation {} or was already told",
                        e.key, self.generation
                    ))
                })?;
            slots.push(slot);
        }
        for (i, e) in slots.into_iter().zip(evaluations) {
            self.run.borrow_mut().append(&Record {
                generation: self.generation,
                evaluation: e.clone(),
            })?;
            self.fresh += 1;
            observer.evaluated(self.generation, &e, false);
            self.cache.insert(e.key.clone(), e.clone());
            self.pending.as_mut().expect("pending").results[i] = Some(e);
        }
        if self
            .pending
            .as_ref()
            .expect("pending")
            .results
            .iter()
            .all(Option::is_some)
        {
            self.select(observer)?;
        }
        Ok(())
    }

    /// Breed the current generation and replay what the log holds of it.
    fn breed(&mut self, observer: &mut dyn Observer) -> Result<()> {
        let g = self.generation;
        let space = &self.cfg.space;
        let (lo, hi) = space.bounds();
        let key_of = |v: &[i64]| match space.decode(v) {
            Ok(g) => g.canonical_key(),
            Err(e) => format!("invalid: {e}"),
        };
        let mut rng = StdRng::seed_from_u64(derive_seed(self.cfg.seed, "generation", g as u64));
        let vectors: Vec<Vec<i64>> = if g == 0 {
            let n = self.cfg.search.population;
            let mut v = Vec::new();
            let mut tries = 0;
            while v.len() < n && tries < 1000 * n {
                tries += 1;
                let x = space.sample_vector(&mut rng);
                if self.seen.insert(key_of(&x)) {
                    v.push(x);
                }
            }
            v
        } else {
            let pv: Vec<Vec<i64>> = self.population.iter().map(|m| m.vector.clone()).collect();
            let om = objective_matrix(&self.population, &self.objs);
            nsga2::make_offspring(
                &pv,
                &om,
                &lo,
                &hi,
                &self.nsga,
                &mut self.seen,
                &key_of,
                &mut rng,
            )
        };
        let genomes: Vec<Genome> = vectors
            .iter()
            .map(|v| space.decode(v))
            .collect::<Result<_>>()?;
        let (fresh0, replayed0) = (self.fresh, self.replayed);
        let keys: Vec<String> = genomes.iter().map(Genome::canonical_key).collect();
        let mut results = Vec::with_capacity(genomes.len());
        for key in &keys {
            let known = self.cache.get(key).cloned();
            if let Some(e) = &known {
                self.replayed += 1;
                observer.evaluated(g, e, true);
            }
            results.push(known);
        }
        self.pending = Some(Pending {
            vectors,
            genomes,
            keys,
            results,
            fresh0,
            replayed0,
        });
        Ok(())
    }

    /// Select the survivors of a fully evaluated generation and write its population file.
    fn select(&mut self, observer: &mut dyn Observer) -> Result<()> {
        let g = self.generation;
        let p = self.pending.take().expect("a generation in progress");
        let evals: Vec<Evaluation> = p.results.into_iter().map(|e| e.expect("told")).collect();
        self.used.extend(evals.iter().cloned());
        if !self.used.iter().any(|e| e.status == Status::Ok) {
            // Nothing to select from: stop instead of searching on (and naming a failed genome
            // the best).
            let first = self.used.first();
            return Err(Error::input(format!(
                "all {} candidates up to generation {g} failed or were dead (the first: {}); the settings \
                 cannot score these networks (no best.json was written)",
                self.used.len(),
                first
                    .and_then(|e| e.reason.clone())
                    .unwrap_or_else(|| "no reason recorded".into())
            )));
        }
        let mut merged = std::mem::take(&mut self.population);
        merged.extend(
            p.vectors
                .into_iter()
                .zip(evals)
                .map(|(vector, evaluation)| Member { vector, evaluation }),
        );
        let objs = &self.objs;
        let keep =
            nsga2::select_survivors(&objective_matrix(&merged, objs), self.cfg.search.population);
        self.population = keep.iter().map(|&i| merged[i].clone()).collect();
        let population = &self.population;

        let (rank, crowd) = nsga2::rank_and_crowding(&objective_matrix(population, objs));
        self.run.borrow_mut().write_json(
            &population_file(g),
            &json!({
                "generation": g,
                "objectives": objs.iter().map(|(n, _)| n).collect::<Vec<_>>(),
                "members": population.iter().enumerate().map(|(i, m)| json!({
                    "key": m.evaluation.key,
                    "status": m.evaluation.status,
                    "rank": rank[i],
                    "crowding": finite_or_null(crowd[i]),
                    "scores": m.evaluation.scores,
                    "vector": m.vector,
                    "genome": genome_value(&m.evaluation.genome),
                })).collect::<Vec<_>>(),
            }),
        )?;
        let summary = summarise(
            &self.cfg,
            g,
            population,
            self.fresh - p.fresh0,
            self.replayed - p.replayed0,
        );
        let best = best_of(&self.cfg, &self.used);
        observer.generation_done(&summary, best.as_ref());
        self.history.push(summary);
        self.generation += 1;
        Ok(())
    }

    /// End the search: when complete, the Pareto front and `best.json` are written; the plots
    /// in every case. A search finished before its last generation is reported interrupted
    /// and stays resumable from its log.
    pub fn finish(mut self) -> Result<SearchOutcome> {
        let interrupted = !self.is_done();
        let front = first_front(&self.population, &self.objs);
        let best = best_of(&self.cfg, &self.used);
        let run = self.run.borrow_mut();
        if !interrupted {
            run.write_json(
                run_dir::PARETO,
                &json!({
                    "objectives": self.objs.iter().map(|(n, d)| json!({"name": n, "direction": d})).collect::<Vec<_>>(),
                    "front": front.iter().map(|m| json!({
                        "key": m.evaluation.key,
                        "scores": m.evaluation.scores,
                        "genome": genome_value(&m.evaluation.genome),
                    })).collect::<Vec<_>>(),
                }),
            )?;
            if let Some(b) = best
                .as_ref()
                .or(self.population.first().map(|m| &m.evaluation))
            {
                run_dir::write_atomic(
                    &run.file(run_dir::BEST),
                    (b.genome.to_json() + "\n").as_bytes(),
                )?;
            }
        }
        let warnings = if self.history.is_empty() {
            Vec::new()
        } else {
            write_plots(&self.cfg, run, &self.history, &self.used, &front)
        };
        Ok(SearchOutcome {
            generations: self.history.len(),
            interrupted,
            population: self.population,
            best,
            front,
            history: self.history,
            fresh: self.fresh,
            replayed: self.replayed,
            warnings,
        })
    }
}

/// Run (or resume) a search with one evaluator: `records` is the log of the run so far (empty
/// for a new run). [`Search`]'s ask/tell, with the asked genomes handed to the evaluator in
/// chunks of its batch hint. Stops early, resumably, when `stop` is raised (checked before
/// every chunk).
pub fn run(
    cfg: &Config,
    run: &mut RunDir,
    evaluator: &mut dyn Evaluator,
    records: Vec<Record>,
    stop: &AtomicBool,
    observer: &mut dyn Observer,
) -> Result<SearchOutcome> {
    let mut search = Search::new(cfg, run, records)?;
    for s in search.scores() {
        if !evaluator.settings().scores.contains(&s) {
            return Err(Error::input(format!(
                "the evaluator does not compute `{s}`, which the search needs"
            )));
        }
    }
    let chunk = evaluator.batch_hint().max(1);
    'generations: loop {
        let todo = search.ask(observer)?;
        if todo.is_empty() {
            break;
        }
        for part in todo.chunks(chunk) {
            if stop.load(Ordering::SeqCst) {
                break 'generations;
            }
            let evals = evaluator.evaluate(part);
            assert_eq!(evals.len(), part.len(), "one evaluation per genome");
            search.tell(evals, observer)?;
        }
    }
    search.finish()
}

fn finite_or_null(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        Value::Null
    }
}

/// Motif names in registry order, the categories of the motif-usage plot.
pub fn motif_names() -> Vec<String> {
    motifs::REGISTRY
        .iter()
        .map(|m| m.name.to_string())
        .collect()
}

/// Motifs of the reachable normal cells of a genome, in layout order (`silent` included).
pub fn live_motifs(g: &Genome) -> Vec<&'static str> {
    let live = g.reachable();
    g.resolve()
        .iter()
        .enumerate()
        .filter(|(pos, _)| live[pos + 1])
        .filter_map(|(_, c)| match c {
            ResolvedCell::Normal { motif, .. } => motifs::by_id(*motif).map(|m| m.name),
            ResolvedCell::Silent { .. } => motifs::by_id(0).map(|m| m.name),
            ResolvedCell::Reduction => None,
        })
        .collect()
}

fn summarise(
    cfg: &Config,
    generation: usize,
    population: &[Member],
    fresh: usize,
    replayed: usize,
) -> GenerationSummary {
    let dir = fitness::score_def(&cfg.search.fitness)
        .map(|d| d.direction)
        .unwrap_or(ScoreDirection::Maximize);
    let live: Vec<f64> = population
        .iter()
        .filter(|m| m.evaluation.status == Status::Ok)
        .map(|m| m.evaluation.score(&cfg.search.fitness))
        .collect();
    let best = match dir {
        ScoreDirection::Maximize => live.iter().copied().fold(f64::NAN, f64::max),
        ScoreDirection::Minimize => live.iter().copied().fold(f64::NAN, f64::min),
    };
    let names = motif_names();
    let mut counts = vec![0.0; names.len()];
    for m in population {
        for name in live_motifs(&m.evaluation.genome) {
            if let Some(i) = names.iter().position(|n| n == name) {
                counts[i] += 1.0;
            }
        }
    }
    GenerationSummary {
        generation,
        best,
        median: median(&live),
        motif_counts: counts,
        fresh,
        replayed,
    }
}

/// The best live evaluation by the fitness; ties go to fewer parameters, then to the earlier.
pub fn best_of(cfg: &Config, evals: &[Evaluation]) -> Option<Evaluation> {
    let f = &cfg.search.fitness;
    let dir = fitness::score_def(f)
        .map(|d| d.direction)
        .unwrap_or(ScoreDirection::Maximize);
    let mut best: Option<&Evaluation> = None;
    for e in evals.iter().filter(|e| e.status == Status::Ok) {
        let better = match best {
            None => true,
            Some(b) => {
                let (x, y) = (e.score(f), b.score(f));
                let strictly = match dir {
                    ScoreDirection::Maximize => x > y,
                    ScoreDirection::Minimize => x < y,
                };
                strictly || (x == y && e.score("params") < b.score("params"))
            }
        };
        if better {
            best = Some(e);
        }
    }
    best.cloned()
}

fn first_front(population: &[Member], objs: &[(ScoreId, nsga2::Direction)]) -> Vec<Member> {
    let om = objective_matrix(population, objs);
    let (rank, _) = nsga2::rank_and_crowding(&om);
    let mut front: Vec<usize> = (0..population.len()).filter(|&i| rank[i] == 0).collect();
    front.sort_by(|&a, &b| om[a][0].total_cmp(&om[b][0]).then(a.cmp(&b)));
    front.into_iter().map(|i| population[i].clone()).collect()
}

/// `fitness.png`, `pareto.png`, `motifs.png`; returns the plots that failed.
fn write_plots(
    cfg: &Config,
    run: &RunDir,
    history: &[GenerationSummary],
    used: &[Evaluation],
    front: &[Member],
) -> Vec<String> {
    let f = &cfg.search.fitness;
    let mut warnings = Vec::new();
    let gens = |sel: fn(&GenerationSummary) -> f64| -> Vec<(f64, f64)> {
        history
            .iter()
            .map(|h| (h.generation as f64, sel(h)))
            .collect()
    };
    let r = plot::line_chart(
        &run.file("fitness.png"),
        &format!("{f} of the population per generation"),
        "generation",
        f,
        &[
            plot::Series::new("best", gens(|h| h.best)),
            plot::Series::new("median", gens(|h| h.median)),
        ],
    );
    if let Err(e) = r {
        warnings.push(format!("fitness.png: {e}"));
    }
    // x: the first objective other than the fitness, else params
    let x_name = cfg
        .search
        .objectives
        .iter()
        .find(|o| *o != f)
        .cloned()
        .unwrap_or_else(|| "params".to_string());
    let pt = |e: &Evaluation| (e.score(&x_name), e.score(f));
    let live: Vec<(f64, f64)> = used
        .iter()
        .filter(|e| e.status == Status::Ok)
        .map(pt)
        .collect();
    let front_pts: Vec<(f64, f64)> = front
        .iter()
        .filter(|m| m.evaluation.status == Status::Ok)
        .map(|m| pt(&m.evaluation))
        .collect();
    let r = plot::scatter(
        &run.file("pareto.png"),
        &format!("{f} vs {x_name}: every evaluation and the final front"),
        &x_name,
        f,
        &[plot::Series::new("evaluated", live)],
        Some(&plot::Series::new("Pareto front", front_pts)),
    );
    if let Err(e) = r {
        warnings.push(format!("pareto.png: {e}"));
    }
    let rows: Vec<(f64, Vec<f64>)> = history
        .iter()
        .map(|h| (h.generation as f64, h.motif_counts.clone()))
        .collect();
    let r = plot::stacked_bars(
        &run.file("motifs.png"),
        "motif usage in the population (reachable cells)",
        "generation",
        "cells",
        &motif_names(),
        &rows,
    );
    if let Err(e) = r {
        warnings.push(format!("motifs.png: {e}"));
    }
    warnings
}

/// A short, stable id of a canonical key: 10 hex digits of its FNV-1a hash.
pub fn key_short(key: &str) -> String {
    format!("{:016x}", crate::genome::fnv1a64(key.as_bytes()))[..10].to_string()
}

/// Scores of an evaluation as `name=value` pairs (for tables).
pub fn score_line(scores: &BTreeMap<String, f64>) -> String {
    scores
        .iter()
        .map(|(k, v)| format!("{k}={v:.4}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails every genome, as a network too large for the probe would.
    struct FailAll(EvalSettings);

    impl Evaluator for FailAll {
        fn device(&self) -> String {
            "none".into()
        }
        fn settings(&self) -> &EvalSettings {
            &self.0
        }
        fn evaluate(&mut self, genomes: &[Genome]) -> Vec<Evaluation> {
            genomes
                .iter()
                .map(|g| Evaluation::worst(g, &self.0.scores, Status::Failed, "too large".into()))
                .collect()
        }
    }

    #[test]
    fn a_search_in_which_every_candidate_fails_is_an_error_without_best_json() {
        let cfg = crate::evolve::config::preset("tiny").unwrap();
        let (settings, _, _) = prepare(&cfg, search_scores(&cfg).unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut run = RunDir::create(dir.path(), &cfg).unwrap();
        let e = super::run(
            &cfg,
            &mut run,
            &mut FailAll(settings),
            Vec::new(),
            &AtomicBool::new(false),
            &mut Quiet,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("all 4 candidates up to generation 0 failed") && e.contains("too large"),
            "{e}"
        );
        assert!(!dir.path().join(run_dir::BEST).exists());
    }

    #[test]
    fn inputs_too_small_for_the_layout_are_refused_before_work() {
        let mut cfg = crate::evolve::config::preset("tiny").unwrap();
        cfg.data.size = Some(1);
        let e = prepare(&cfg, search_scores(&cfg).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("data.size: 1x1") && e.contains("at least 2"),
            "{e}"
        );
    }
}
