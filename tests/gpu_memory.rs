//! GPU memory stays flat over a long search: scoring 300 candidates on a device (forward pass
//! and gradient score each, as the search does) keeps the number of live buffers, live bind
//! groups and cached bind groups bounded generation after generation; nothing of a finished
//! candidate stays pinned.
//!
//! No adapter: with `CI` set the test fails; otherwise it prints a skip message and passes.

mod common;

use msenas::engine::{Device, Engine, ProbeBatch};
use msenas::fitness::evaluate::{EvalSettings, Evaluator, Probe, ScoringEvaluator, Status};
use msenas::fitness::ScoreId;
use msenas::genome::SearchSpace;
use rand::SeedableRng;

#[test]
fn live_buffers_stay_bounded_over_300_candidates() {
    let Some(ctx) = common::primary() else {
        return;
    };
    let (t, b) = (1, 4);
    let spec = common::gray_spec(8, 2, t);
    let probe = Probe {
        timesteps: t,
        batches: vec![ProbeBatch {
            indices: (0..b).collect(),
            labels: vec![0, 0, 1, 1],
            input: (0..t * b * 64)
                .map(|i| msenas::cpu::rng::unit(i as u32, 5) * 1.5)
                .collect(),
        }],
    };
    let settings = EvalSettings {
        spec,
        width: 2,
        reduce_kernel: 1,
        seed: 1,
        weight_seeds: 1,
        scores: vec![ScoreId::GradRms, ScoreId::Params, ScoreId::FiringRate],
    };
    let space = SearchSpace {
        layout: "NRN".into(),
        width: 2,
        timesteps: t,
        ..SearchSpace::default()
    };
    let mut ev =
        ScoringEvaluator::new(Engine::new(Device::from_gpu(ctx.clone())), settings, probe).unwrap();
    let (generations, per) = (10, 30);
    let mut live = Vec::new();
    for g in 0..generations {
        let genomes: Vec<_> = (0..per)
            .map(|i| space.sample(&mut rand::rngs::StdRng::seed_from_u64((g * per + i) as u64)))
            .collect();
        let before = ctx.counters();
        let evals = ev.evaluate(&genomes);
        let dispatches = ctx.counters().since(before).dispatches as usize;
        assert!(
            evals.iter().all(|e| e.status != Status::Failed),
            "{evals:?}"
        );
        let c = ctx.device.get_internal_counters();
        live.push((
            c.hal.buffers.read(),
            c.hal.bind_groups.read(),
            ctx.cached_bind_groups(),
        ));
        // The cache holds at most the last submissions' groups: a generation's worth (each of
        // its dispatches binds one group at most) or, below that, the trim threshold; a cache
        // that pinned finished candidates grows past both.
        let cached = ctx.cached_bind_groups();
        assert!(
            cached <= dispatches.max(2048),
            "generation {g}: {cached} cached groups after {dispatches} dispatches"
        );
    }
    eprintln!("live (buffers, bind groups, cached groups) per generation: {live:?}");
    // Bounded: the second half of the run holds no more live buffers or bind groups than
    // the first (a quarter of slack for the mix of candidate sizes).
    let peak = |part: &[(isize, isize, usize)]| {
        part.iter()
            .fold((0, 0), |m, &(a, b, _)| (m.0.max(a), m.1.max(b)))
    };
    let (first, second) = (peak(&live[..5]), peak(&live[5..]));
    assert!(
        4 * second.0 <= 5 * first.0 && 4 * second.1 <= 5 * first.1,
        "live buffers / bind groups grew: first half {first:?}, second half {second:?}"
    );
}
