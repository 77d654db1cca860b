//! A small, generic NSGA-II toolkit (Deb et al. 2002) over integer genome vectors.
//!
//! Conventions shared by every function here:
//!
//! * Objectives are in **minimisation form**: smaller is better for every objective. Use
//!   [`Direction::to_min`] / [`to_min_form`] to convert raw scores (e.g. negate an accuracy to
//!   maximise it).
//! * NaN is the worst possible value of an objective: worse than every number, `+inf` included.
//!   Two NaNs compare equal.
//! * All randomness comes from the `rng` argument, so a seeded generator gives the same result
//!   on every run. Ties that are not meant to be random are broken by index (lower first).
//! * Genes are `i64` within inclusive per-gene bounds `[lower[i], upper[i]]`; a gene with
//!   `lower[i] == upper[i]` is frozen. Bounds are converted to `f64` inside the mutation, so
//!   they should stay within `±2^53`.

use std::cmp::Ordering;
use std::collections::HashSet;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Whether an objective is to be minimised or maximised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Minimize,
    Maximize,
}

impl Direction {
    /// `v` in minimisation form: unchanged for [`Direction::Minimize`], negated for
    /// [`Direction::Maximize`]. NaN stays NaN (the worst value either way).
    pub fn to_min(self, v: f64) -> f64 {
        match self {
            Direction::Minimize => v,
            Direction::Maximize => -v,
        }
    }
}

/// Converts raw score rows (one row per individual, one column per objective) into
/// minimisation form, objective `k` following `dirs[k]`.
///
/// Panics if a row's length differs from `dirs.len()`.
pub fn to_min_form(values: &[Vec<f64>], dirs: &[Direction]) -> Vec<Vec<f64>> {
    values
        .iter()
        .map(|row| {
            assert_eq!(
                row.len(),
                dirs.len(),
                "objective row length differs from directions"
            );
            row.iter().zip(dirs).map(|(&v, d)| d.to_min(v)).collect()
        })
        .collect()
}

/// Total order on minimisation-form values: NaN after everything (worst), `-0.0 == 0.0`.
fn cmp_min(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).expect("non-NaN values are ordered"),
    }
}

/// `a` Pareto-dominates `b`: no worse in every objective and strictly better in at least one.
fn dominates(a: &[f64], b: &[f64]) -> bool {
    let mut strictly = false;
    for (&x, &y) in a.iter().zip(b) {
        match cmp_min(x, y) {
            Ordering::Greater => return false,
            Ordering::Less => strictly = true,
            Ordering::Equal => {}
        }
    }
    strictly
}

fn check_rows(objs: &[Vec<f64>]) {
    if let Some(first) = objs.first() {
        assert!(
            objs.iter().all(|r| r.len() == first.len()),
            "every objective row must have the same length"
        );
    }
}

/// Fast non-dominated sort.
///
/// Returns the Pareto fronts in order: front 0 holds the individuals no one dominates, front
/// `k` those dominated only by members of fronts `< k`. Each front lists indices into `objs` in
/// ascending order; together the fronts partition `0..objs.len()`. Identical points do not
/// dominate each other, so duplicates share a front. `objs` is in minimisation form; NaN counts
/// as the worst value. Panics if rows differ in length.
pub fn non_dominated_sort(objs: &[Vec<f64>]) -> Vec<Vec<usize>> {
    check_rows(objs);
    let n = objs.len();
    let mut dominated_count = vec![0usize; n];
    let mut dominated_set: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in i + 1..n {
            if dominates(&objs[i], &objs[j]) {
                dominated_set[i].push(j);
                dominated_count[j] += 1;
            } else if dominates(&objs[j], &objs[i]) {
                dominated_set[j].push(i);
                dominated_count[i] += 1;
            }
        }
    }
    let mut fronts = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_count[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dominated_set[i] {
                dominated_count[j] -= 1;
                if dominated_count[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        fronts.push(current);
        current = next;
    }
    fronts
}

/// Crowding distance of each member of `front` (indices into `objs`), aligned with `front`.
///
/// The crowding distance of a point is the sum, over objectives, of the gap between its two
/// neighbours along that objective (the next smaller and next larger value within the front),
/// divided by the objective's range (max - min) within the front: half the perimeter of the
/// cuboid spanned by its neighbours, in normalised units. Larger means a less crowded region.
///
/// Boundaries: for every objective, the point with the smallest and the one with the largest
/// value get `+inf` (ties in value are ordered by index, so among equal extremes the lowest
/// index comes first and the highest last). A front of one or two points is all `+inf`.
/// An objective whose range within the front is zero or not finite (an infinity or NaN in the
/// front; NaN sorts as the largest) adds nothing to interior points but still marks its
/// extremes. The result never contains NaN.
pub fn crowding_distance(objs: &[Vec<f64>], front: &[usize]) -> Vec<f64> {
    let m = front.len();
    if m <= 2 {
        return vec![f64::INFINITY; m];
    }
    let n_obj = objs[front[0]].len();
    let columns: Vec<Vec<f64>> = (0..n_obj)
        .map(|k| front.iter().map(|&i| objs[i][k]).collect())
        .collect();
    let mut dist = vec![0.0f64; m];
    let mut order: Vec<usize> = (0..m).collect();
    for col in &columns {
        order.sort_by(|&a, &b| cmp_min(col[a], col[b]).then(front[a].cmp(&front[b])));
        dist[order[0]] = f64::INFINITY;
        dist[order[m - 1]] = f64::INFINITY;
        let range = col[order[m - 1]] - col[order[0]];
        if !(range.is_finite() && range > 0.0) {
            continue;
        }
        for w in 1..m - 1 {
            dist[order[w]] += (col[order[w + 1]] - col[order[w - 1]]) / range;
        }
    }
    dist
}

/// Front rank (0 = non-dominated) and crowding distance (computed within the individual's
/// front, see [`crowding_distance`]) of every individual, aligned with `objs`.
pub fn rank_and_crowding(objs: &[Vec<f64>]) -> (Vec<usize>, Vec<f64>) {
    let n = objs.len();
    let mut rank = vec![0usize; n];
    let mut crowd = vec![0.0f64; n];
    for (r, front) in non_dominated_sort(objs).iter().enumerate() {
        for (&i, c) in front.iter().zip(crowding_distance(objs, front)) {
            rank[i] = r;
            crowd[i] = c;
        }
    }
    (rank, crowd)
}

/// Elitist NSGA-II environmental selection: the `n` best of `objs` (typically parents and
/// offspring merged).
///
/// Individuals are ordered by front rank, then by larger crowding distance, then by lower
/// index, and the first `min(n, objs.len())` are returned in that order. So whole fronts are
/// kept while they fit, and the front that overflows is cut by crowding distance (computed
/// once over the whole front, not recomputed as points are removed).
pub fn select_survivors(objs: &[Vec<f64>], n: usize) -> Vec<usize> {
    let (rank, crowd) = rank_and_crowding(objs);
    let mut idx: Vec<usize> = (0..objs.len()).collect();
    idx.sort_by(|&a, &b| {
        rank[a]
            .cmp(&rank[b])
            .then(crowd[b].total_cmp(&crowd[a]))
            .then(a.cmp(&b))
    });
    idx.truncate(n);
    idx
}

/// Crowded-comparison binary tournament: draws two distinct individuals uniformly at random
/// and returns the winner's index. Lower rank wins; on equal rank the larger crowding distance
/// wins; on a full tie a fair coin decides. With a single individual it returns 0 without
/// drawing. Panics if `rank` is empty or the slices differ in length.
pub fn binary_tournament(rank: &[usize], crowd: &[f64], rng: &mut (impl Rng + ?Sized)) -> usize {
    assert!(!rank.is_empty(), "tournament over an empty population");
    assert_eq!(
        rank.len(),
        crowd.len(),
        "rank and crowding differ in length"
    );
    let n = rank.len();
    if n == 1 {
        return 0;
    }
    let a = rng.random_range(0..n);
    let mut b = rng.random_range(0..n - 1);
    if b >= a {
        b += 1;
    }
    let c = |i: usize| {
        if crowd[i].is_nan() {
            f64::NEG_INFINITY
        } else {
            crowd[i]
        }
    };
    match rank[a].cmp(&rank[b]) {
        Ordering::Less => a,
        Ordering::Greater => b,
        Ordering::Equal => match c(a).partial_cmp(&c(b)) {
            Some(Ordering::Greater) => a,
            Some(Ordering::Less) => b,
            _ => {
                if rng.random_bool(0.5) {
                    a
                } else {
                    b
                }
            }
        },
    }
}

/// Two-point crossover: picks two distinct cut points `p < q` uniformly among the `n - 1` gaps
/// between genes (positions `1..n`) and swaps the segment `p..q` between the parents. Every
/// child gene comes from one parent at the same position; the first and last genes are never
/// swapped. With two genes the only cut is at 1 (one-point crossover); with fewer the children
/// are copies. Panics if the parents differ in length.
pub fn two_point_crossover(
    a: &[i64],
    b: &[i64],
    rng: &mut (impl Rng + ?Sized),
) -> (Vec<i64>, Vec<i64>) {
    assert_eq!(a.len(), b.len(), "parents differ in length");
    let n = a.len();
    let mut c = a.to_vec();
    let mut d = b.to_vec();
    if n < 2 {
        return (c, d);
    }
    let (lo, hi) = if n == 2 {
        (1, 2)
    } else {
        let p = rng.random_range(1..n);
        let mut q = rng.random_range(1..n - 1);
        if q >= p {
            q += 1;
        }
        (p.min(q), p.max(q))
    };
    c[lo..hi].swap_with_slice(&mut d[lo..hi]);
    (c, d)
}

/// Per-gene mutation probability used by [`make_offspring`]: `1 / n_var` (0 for no genes).
pub fn default_mutation_prob(n_var: usize) -> f64 {
    if n_var == 0 {
        0.0
    } else {
        1.0 / n_var as f64
    }
}

/// Integer polynomial mutation (Deb's bounded polynomial mutation, as in pymoo's `PM` followed
/// by rounding).
///
/// Each gene independently mutates with probability `prob` (one uniform draw per gene, frozen
/// genes included, so the random stream does not depend on the bounds; [`make_offspring`]
/// uses [`default_mutation_prob`], i.e. `1 / n_var`). A mutated gene `x` in `[l, u]`
/// (`l < u`) moves on the real line to `x + dq * (u - l)`, where with `r` uniform in `[0, 1)`,
/// `d1 = (x - l) / (u - l)`, `d2 = (u - x) / (u - l)` and `m = 1 / (eta + 1)`:
///
/// * `r <= 0.5`: `dq = (2r + (1 - 2r) (1 - d1)^(eta + 1))^m - 1` (a move down, never below `l`),
/// * `r > 0.5`: `dq = 1 - (2(1 - r) + 2(r - 0.5) (1 - d2)^(eta + 1))^m` (a move up, never
///   above `u`),
///
/// then is rounded to the nearest integer (halves away from zero) and clipped to `[l, u]`.
/// Larger `eta` keeps children closer to the parent; the move may round back to `x`. Genes with
/// `l == u` and genes not drawn for mutation are returned unchanged, so `prob == 0` is the
/// identity. Panics if the slices differ in length or some `l > u`.
pub fn polynomial_mutation_int(
    x: &[i64],
    lower: &[i64],
    upper: &[i64],
    eta: f64,
    prob: f64,
    rng: &mut (impl Rng + ?Sized),
) -> Vec<i64> {
    assert_eq!(
        x.len(),
        lower.len(),
        "genome and lower bounds differ in length"
    );
    assert_eq!(
        x.len(),
        upper.len(),
        "genome and upper bounds differ in length"
    );
    let mut y = x.to_vec();
    let mut_pow = 1.0 / (eta + 1.0);
    for i in 0..x.len() {
        let (l, u) = (lower[i], upper[i]);
        assert!(l <= u, "gene {i}: lower bound {l} above upper bound {u}");
        let draw: f64 = rng.random();
        let mutate = draw < prob && l < u;
        if !mutate {
            continue;
        }
        let r: f64 = rng.random();
        let (xl, xu) = (l as f64, u as f64);
        let span = xu - xl;
        let xv = (x[i] as f64).clamp(xl, xu);
        let delta1 = (xv - xl) / span;
        let delta2 = (xu - xv) / span;
        let dq = if r <= 0.5 {
            let val = 2.0 * r + (1.0 - 2.0 * r) * (1.0 - delta1).powf(eta + 1.0);
            val.powf(mut_pow) - 1.0
        } else {
            let val = 2.0 * (1.0 - r) + 2.0 * (r - 0.5) * (1.0 - delta2).powf(eta + 1.0);
            1.0 - val.powf(mut_pow)
        };
        let moved = (xv + dq * span).round().clamp(xl, xu);
        y[i] = (moved as i64).clamp(l, u);
    }
    y
}

/// A genome drawn uniformly per gene from the inclusive bounds `[lower[i], upper[i]]`.
/// Panics if the slices differ in length or some `lower[i] > upper[i]`.
pub fn random_genome(lower: &[i64], upper: &[i64], rng: &mut (impl Rng + ?Sized)) -> Vec<i64> {
    assert_eq!(lower.len(), upper.len(), "bounds differ in length");
    lower
        .iter()
        .zip(upper)
        .enumerate()
        .map(|(i, (&l, &u))| {
            assert!(l <= u, "gene {i}: lower bound {l} above upper bound {u}");
            rng.random_range(l..=u)
        })
        .collect()
}

/// Settings of the NSGA-II generation loop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Nsga2Config {
    /// Survivors kept each generation.
    pub population: usize,
    /// Offspring wanted each generation.
    pub offspring: usize,
    /// Distribution index of the polynomial mutation (3 by default).
    pub eta_mutation: f64,
    /// Probability that a pair of parents is crossed over rather than copied (0.9 by default).
    pub crossover_prob: f64,
    /// Extra rounds of breeding when duplicates left fewer than `offspring` new children.
    pub max_regen: usize,
}

impl Default for Nsga2Config {
    /// Paper scale: population 50, 50 offspring, eta 3, crossover 0.9, 100 regeneration rounds.
    fn default() -> Self {
        Nsga2Config {
            population: 50,
            offspring: 50,
            eta_mutation: 3.0,
            crossover_prob: 0.9,
            max_regen: 100,
        }
    }
}

/// One generation's offspring.
///
/// Rank and crowding are computed over `pop` (whose objectives, in minimisation form, are
/// `objs`). A round breeds as many children as are still missing, in pairs: two parents by
/// [`binary_tournament`], [`two_point_crossover`] with probability `cfg.crossover_prob`
/// (otherwise copies), then [`polynomial_mutation_int`] of each child with `cfg.eta_mutation`
/// and per-gene probability `1 / n_var`. Children are examined in breeding order and kept only
/// if their key (`key_of`) is not yet in `seen`; kept keys are added to `seen`, so children are
/// also unique among themselves. The caller should put the keys of every evaluated genome
/// (the current population included) into `seen`. If a round leaves the batch short, up to
/// `cfg.max_regen` further rounds run; after that, fewer than `cfg.offspring` children are
/// returned (none when the search space is exhausted). An empty `pop` gives no children.
#[allow(clippy::too_many_arguments)]
pub fn make_offspring(
    pop: &[Vec<i64>],
    objs: &[Vec<f64>],
    lower: &[i64],
    upper: &[i64],
    cfg: &Nsga2Config,
    seen: &mut HashSet<String>,
    key_of: &dyn Fn(&[i64]) -> String,
    rng: &mut (impl Rng + ?Sized),
) -> Vec<Vec<i64>> {
    assert_eq!(
        pop.len(),
        objs.len(),
        "population and objectives differ in length"
    );
    let mut out: Vec<Vec<i64>> = Vec::with_capacity(cfg.offspring);
    if pop.is_empty() {
        return out;
    }
    let (rank, crowd) = rank_and_crowding(objs);
    let prob = default_mutation_prob(lower.len());
    for _round in 0..=cfg.max_regen {
        let need = cfg.offspring - out.len();
        if need == 0 {
            break;
        }
        let mut batch = Vec::with_capacity(need + 1);
        while batch.len() < need {
            let pa = &pop[binary_tournament(&rank, &crowd, rng)];
            let pb = &pop[binary_tournament(&rank, &crowd, rng)];
            let (c1, c2) = if rng.random::<f64>() < cfg.crossover_prob {
                two_point_crossover(pa, pb, rng)
            } else {
                (pa.clone(), pb.clone())
            };
            batch.push(polynomial_mutation_int(
                &c1,
                lower,
                upper,
                cfg.eta_mutation,
                prob,
                rng,
            ));
            batch.push(polynomial_mutation_int(
                &c2,
                lower,
                upper,
                cfg.eta_mutation,
                prob,
                rng,
            ));
        }
        for child in batch {
            if out.len() == cfg.offspring {
                break;
            }
            if seen.insert(key_of(&child)) {
                out.push(child);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const INF: f64 = f64::INFINITY;
    const NAN: f64 = f64::NAN;

    fn pts(v: &[(f64, f64)]) -> Vec<Vec<f64>> {
        v.iter().map(|&(a, b)| vec![a, b]).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a == b) || (a - b).abs() < 1e-12
    }

    fn key(g: &[i64]) -> String {
        format!("{g:?}")
    }

    // ---------------------------------------------------------------- hand-made example

    /// Indices: 0 A, 1 B, 2 C, 3 D, 4 E (a front of five), 5 F, 6 G (second front), 7 H (third).
    fn example() -> Vec<Vec<f64>> {
        pts(&[
            (0.0, 10.0), // A
            (1.0, 6.0),  // B
            (3.0, 4.0),  // C
            (6.0, 1.0),  // D
            (10.0, 0.0), // E
            (2.0, 7.0),  // F: dominated by B (1,6) only
            (7.0, 2.0),  // G: dominated by D (6,1) only
            (8.0, 8.0),  // H: dominated by B, C, D, F, G
        ])
    }

    #[test]
    fn ranks_and_crowding_on_hand_made_fronts() {
        let objs = example();
        let fronts = non_dominated_sort(&objs);
        assert_eq!(fronts, vec![vec![0, 1, 2, 3, 4], vec![5, 6], vec![7]]);

        // Front 0, both objectives have range 10 - 0 = 10.
        // f1 order A0 B1 C3 D6 E10, f2 order E0 D1 C4 B6 A10.
        //   A, E: extremes -> inf
        //   B: f1 (C - A) = (3 - 0)/10 = 0.3; f2 (A - C) = (10 - 4)/10 = 0.6 -> 0.9
        //   C: f1 (D - B) = (6 - 1)/10 = 0.5; f2 (B - D) = (6 - 1)/10 = 0.5 -> 1.0
        //   D: f1 (E - C) = (10 - 3)/10 = 0.7; f2 (C - E) = (4 - 0)/10 = 0.4 -> 1.1
        // Front 1 has two points, front 2 one: all inf.
        let (rank, crowd) = rank_and_crowding(&objs);
        assert_eq!(rank, vec![0, 0, 0, 0, 0, 1, 1, 2]);
        let want = [INF, 0.9, 1.0, 1.1, INF, INF, INF, INF];
        for (i, (&got, &w)) in crowd.iter().zip(&want).enumerate() {
            assert!(close(got, w), "crowding of {i}: got {got}, want {w}");
        }
        // crowding_distance on a front given in any order is aligned with that order.
        let cd = crowding_distance(&objs, &[3, 1, 2]);
        // Sub-front {B, C, D}: ranges f1 6 - 1 = 5, f2 6 - 1 = 5; B, D extremes; C:
        // f1 (6 - 1)/5 = 1, f2 (6 - 1)/5 = 1 -> 2.
        assert_eq!(cd, vec![INF, INF, 2.0]);
    }

    #[test]
    fn survivors_fill_whole_fronts_then_cut_by_crowding() {
        let objs = example();
        // Everything, in (rank, crowding desc, index) order: A, E (inf) then D 1.1, C 1.0,
        // B 0.9; then F, G; then H.
        assert_eq!(select_survivors(&objs, 100), vec![0, 4, 3, 2, 1, 5, 6, 7]);
        // Two whole fronts fit exactly.
        let mut s = select_survivors(&objs, 7);
        s.sort_unstable();
        assert_eq!(s, vec![0, 1, 2, 3, 4, 5, 6]);
        // Front 0 overflows: the extremes, then the least crowded interior point.
        assert_eq!(select_survivors(&objs, 3), vec![0, 4, 3]);
        // Front 1 overflows with a tie in crowding (both inf): lower index first.
        assert_eq!(select_survivors(&objs, 6), vec![0, 4, 3, 2, 1, 5]);
        assert!(select_survivors(&objs, 0).is_empty());
        assert!(select_survivors(&[], 5).is_empty());
        // Order of the input does not change who survives (only the index tie-break, absent
        // here).
        let perm = [7, 6, 5, 4, 3, 2, 1, 0];
        let shuffled: Vec<Vec<f64>> = perm.iter().map(|&i| objs[i].clone()).collect();
        let mut back: Vec<usize> = select_survivors(&shuffled, 3)
            .iter()
            .map(|&i| perm[i])
            .collect();
        back.sort_unstable();
        assert_eq!(back, vec![0, 3, 4]);
    }

    #[test]
    fn directions_convert_to_minimisation_form() {
        let raw = vec![vec![0.9, 100.0], vec![0.5, 10.0]];
        let m = to_min_form(&raw, &[Direction::Maximize, Direction::Minimize]);
        assert_eq!(m, vec![vec![-0.9, 100.0], vec![-0.5, 10.0]]);
        // Neither dominates: better accuracy costs more parameters.
        assert_eq!(non_dominated_sort(&m), vec![vec![0, 1]]);
        assert!(Direction::Maximize.to_min(NAN).is_nan());
        let json = serde_json::to_string(&Direction::Maximize).unwrap();
        assert_eq!(json, "\"maximize\"");
    }

    // ---------------------------------------------------------------- non-dominated sort

    #[test]
    fn sort_small_cases() {
        assert!(non_dominated_sort(&[]).is_empty());
        assert_eq!(non_dominated_sort(&pts(&[(3.0, 3.0)])), vec![vec![0]]);
        // A chain: each point dominates the next.
        assert_eq!(
            non_dominated_sort(&pts(&[(3.0, 3.0), (1.0, 1.0), (2.0, 2.0)])),
            vec![vec![1], vec![2], vec![0]]
        );
        // Equal in one objective, better in the other: dominates.
        assert_eq!(
            non_dominated_sort(&pts(&[(1.0, 2.0), (1.0, 1.0)])),
            vec![vec![1], vec![0]]
        );
        // Three objectives.
        let objs = vec![
            vec![1.0, 2.0, 3.0],
            vec![3.0, 2.0, 1.0],
            vec![2.0, 3.0, 4.0],
        ];
        assert_eq!(non_dominated_sort(&objs), vec![vec![0, 1], vec![2]]);
        // -0.0 and 0.0 are equal.
        assert_eq!(
            non_dominated_sort(&pts(&[(-0.0, 1.0), (0.0, 1.0)])),
            vec![vec![0, 1]]
        );
    }

    #[test]
    fn sort_keeps_duplicates_together() {
        let objs = pts(&[(2.0, 2.0), (1.0, 1.0), (1.0, 1.0), (2.0, 2.0), (0.0, 5.0)]);
        assert_eq!(non_dominated_sort(&objs), vec![vec![1, 2, 4], vec![0, 3]]);
        // Duplicated extremes: the lower index is the minimum end, the higher the maximum end
        // (f1 order 4, 1, 2; f2 order 1, 2, 4), so all three are extremes in some objective.
        let (rank, crowd) = rank_and_crowding(&objs);
        assert_eq!(rank, vec![1, 0, 0, 1, 0]);
        assert_eq!(crowd, vec![INF, INF, INF, INF, INF]);
        // Three identical points plus two distinct ends.
        let objs = pts(&[(0.0, 4.0), (2.0, 2.0), (2.0, 2.0), (2.0, 2.0), (4.0, 0.0)]);
        let (rank, crowd) = rank_and_crowding(&objs);
        assert_eq!(rank, vec![0; 5]);
        // f1 order 0, 1, 2, 3, 4: 1 gets (2 - 0)/4, 2 gets 0, 3 gets (4 - 2)/4;
        // f2 order 4, 1, 2, 3, 0: 1 gets (2 - 0)/4, 2 gets 0, 3 gets (4 - 2)/4.
        assert_eq!(crowd, vec![INF, 1.0, 0.0, 1.0, INF]);
    }

    #[test]
    fn sort_treats_nan_as_worst() {
        // NaN is worse than 1 in objective 0 and ties in objective 1: dominated.
        assert_eq!(
            non_dominated_sort(&pts(&[(NAN, 1.0), (1.0, 1.0)])),
            vec![vec![1], vec![0]]
        );
        // NaN is worse even than +inf; two NaN rows are equal.
        assert_eq!(
            non_dominated_sort(&pts(&[(NAN, NAN), (NAN, NAN), (INF, INF)])),
            vec![vec![2], vec![0, 1]]
        );
        // Worst in one objective but best in the other: still non-dominated.
        assert_eq!(
            non_dominated_sort(&pts(&[(NAN, 0.0), (1.0, 1.0), (0.0, 5.0)])),
            vec![vec![0, 1, 2]]
        );
        // Crowding stays NaN-free: the NaN objective has no finite range, so it adds nothing
        // to the interior point, which still gets its f2 share: order 0 (0), 1 (1), 2 (5) ->
        // (5 - 0)/5 = 1.
        let (rank, crowd) = rank_and_crowding(&pts(&[(NAN, 0.0), (1.0, 1.0), (0.0, 5.0)]));
        assert_eq!(rank, vec![0, 0, 0]);
        assert_eq!(crowd, vec![INF, 1.0, INF]);
        // A NaN row sorts last and survives last.
        let objs = pts(&[(NAN, NAN), (5.0, 5.0), (1.0, 1.0)]);
        assert_eq!(select_survivors(&objs, 2), vec![2, 1]);
    }

    /// Brute-force check of the front definition on random sets with many ties.
    #[test]
    fn sort_matches_the_definition_on_random_sets() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let n = rng.random_range(0..25);
            let n_obj = rng.random_range(1..4);
            let objs: Vec<Vec<f64>> = (0..n)
                .map(|_| {
                    (0..n_obj)
                        .map(|_| match rng.random_range(0..8) {
                            0 => NAN,
                            v => v as f64,
                        })
                        .collect()
                })
                .collect();
            let fronts = non_dominated_sort(&objs);
            let mut all: Vec<usize> = fronts.concat();
            all.sort_unstable();
            assert_eq!(all, (0..n).collect::<Vec<_>>(), "fronts partition the set");
            for (k, front) in fronts.iter().enumerate() {
                assert!(!front.is_empty());
                assert!(front.windows(2).all(|w| w[0] < w[1]), "front sorted");
                for &i in front {
                    // Nobody in this or a later front dominates i.
                    for later in &fronts[k..] {
                        assert!(later.iter().all(|&j| !dominates(&objs[j], &objs[i])));
                    }
                    // Someone in the previous front does.
                    if k > 0 {
                        assert!(fronts[k - 1].iter().any(|&j| dominates(&objs[j], &objs[i])));
                    }
                }
                let cd = crowding_distance(&objs, front);
                assert!(cd.iter().all(|c| !c.is_nan() && *c >= 0.0));
            }
        }
    }

    #[test]
    fn crowding_edge_cases() {
        let objs = example();
        assert!(crowding_distance(&objs, &[]).is_empty());
        assert_eq!(crowding_distance(&objs, &[2]), vec![INF]);
        assert_eq!(crowding_distance(&objs, &[2, 3]), vec![INF, INF]);
        // One objective: extremes inf, interior gap / range: (4 - 0)/6, (6 - 1)/6.
        let one = vec![vec![0.0], vec![1.0], vec![4.0], vec![6.0]];
        let cd = crowding_distance(&one, &[0, 1, 2, 3]);
        assert_eq!(cd[0], INF);
        assert!(close(cd[1], 4.0 / 6.0));
        assert!(close(cd[2], 5.0 / 6.0));
        assert_eq!(cd[3], INF);
    }

    // ---------------------------------------------------------------- operators

    #[test]
    fn tournament_prefers_rank_then_crowding() {
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(binary_tournament(&[4], &[0.0], &mut rng), 0);
        for _ in 0..100 {
            // Two individuals: both always take part.
            assert_eq!(binary_tournament(&[1, 0], &[INF, 0.0], &mut rng), 1);
            assert_eq!(binary_tournament(&[0, 0], &[0.5, 2.0], &mut rng), 1);
            assert_eq!(binary_tournament(&[0, 0], &[INF, 2.0], &mut rng), 0);
            assert_eq!(binary_tournament(&[0, 0], &[NAN, 0.0], &mut rng), 1);
        }
        // A full tie is a coin flip: both win sometimes.
        let wins0 = (0..1000)
            .filter(|_| binary_tournament(&[0, 0], &[1.0, 1.0], &mut rng) == 0)
            .count();
        assert!((400..600).contains(&wins0), "wins of 0: {wins0}");
        // Among three, the unique worst (rank 2) can never win; the best wins whenever drawn
        // (2 pairs of 3).
        let mut counts = [0usize; 3];
        for _ in 0..3000 {
            counts[binary_tournament(&[0, 1, 2], &[0.0; 3], &mut rng)] += 1;
        }
        assert_eq!(counts[2], 0);
        assert!((1800..2200).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn tournament_is_deterministic_for_a_seed() {
        let rank = [0, 1, 0, 2, 1, 0];
        let crowd = [1.0, INF, 1.0, 0.0, 0.3, 1.0];
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..50)
                .map(|_| binary_tournament(&rank, &crowd, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }

    #[test]
    fn crossover_swaps_one_inner_segment() {
        let mut rng = StdRng::seed_from_u64(2);
        let n = 8;
        let a = vec![0i64; n];
        let b = vec![1i64; n];
        let mut seen_cuts = HashSet::new();
        for _ in 0..2000 {
            let (c, d) = two_point_crossover(&a, &b, &mut rng);
            // Complementary children.
            assert!(c.iter().zip(&d).all(|(x, y)| x + y == 1));
            // c is a at the ends and b on one non-empty inner run.
            let ones: Vec<usize> = (0..n).filter(|&i| c[i] == 1).collect();
            assert!(!ones.is_empty());
            let (lo, hi) = (ones[0], *ones.last().unwrap() + 1);
            assert_eq!(ones.len(), hi - lo, "contiguous segment");
            assert!(lo >= 1 && hi < n, "ends never swapped: {lo}..{hi}");
            seen_cuts.insert((lo, hi));
        }
        // Every pair of distinct cuts in 1..=7 occurs: C(7, 2) = 21.
        assert_eq!(seen_cuts.len(), 21);

        // Gene-wise origin with unequal parents.
        let a: Vec<i64> = (0..10).collect();
        let b: Vec<i64> = (100..110).collect();
        let (c, d) = two_point_crossover(&a, &b, &mut rng);
        for i in 0..10 {
            let pair = (c[i], d[i]);
            assert!(pair == (a[i], b[i]) || pair == (b[i], a[i]));
        }

        // Short genomes.
        assert_eq!(two_point_crossover(&[], &[], &mut rng), (vec![], vec![]));
        assert_eq!(
            two_point_crossover(&[1], &[2], &mut rng),
            (vec![1], vec![2])
        );
        assert_eq!(
            two_point_crossover(&[1, 2], &[3, 4], &mut rng),
            (vec![1, 4], vec![3, 2])
        );
    }

    #[test]
    fn crossover_is_deterministic_for_a_seed() {
        let a: Vec<i64> = (0..12).collect();
        let b: Vec<i64> = (0..12).map(|v| -v).collect();
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..20)
                .map(|_| two_point_crossover(&a, &b, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    #[test]
    fn mutation_keeps_bounds_and_frozen_genes() {
        let lower = [0, -5, 3, -100, 7, 0];
        let upper = [1, 5, 3, 100, 7, 1_000_000];
        let mut rng = StdRng::seed_from_u64(3);
        let mut moved = [false; 6];
        let mut hit_bounds = [(false, false); 6];
        for _ in 0..5000 {
            let x = random_genome(&lower, &upper, &mut rng);
            for eta in [0.0, 3.0, 20.0] {
                let y = polynomial_mutation_int(&x, &lower, &upper, eta, 1.0, &mut rng);
                for i in 0..6 {
                    assert!(lower[i] <= y[i] && y[i] <= upper[i], "gene {i}: {}", y[i]);
                    moved[i] |= y[i] != x[i];
                    hit_bounds[i].0 |= y[i] == lower[i];
                    hit_bounds[i].1 |= y[i] == upper[i];
                }
            }
        }
        assert_eq!(moved, [true, true, false, true, false, true]);
        for i in [0, 1, 3] {
            assert_eq!(hit_bounds[i], (true, true), "gene {i} reaches both bounds");
        }
    }

    #[test]
    fn mutation_with_prob_zero_is_identity() {
        let lower = [0, -5, 3, -100];
        let upper = [1, 5, 3, 100];
        let mut rng = StdRng::seed_from_u64(4);
        for _ in 0..500 {
            let x = random_genome(&lower, &upper, &mut rng);
            assert_eq!(
                polynomial_mutation_int(&x, &lower, &upper, 3.0, 0.0, &mut rng),
                x
            );
        }
        assert!(polynomial_mutation_int(&[], &[], &[], 3.0, 1.0, &mut rng).is_empty());
    }

    #[test]
    fn mutation_step_follows_eta_and_is_deterministic() {
        // From the middle of [0, 1000], the mean absolute step shrinks as eta grows, and both
        // directions occur equally often (r <= 0.5 moves down, r > 0.5 up).
        let lower = [0];
        let upper = [1000];
        let mut rng = StdRng::seed_from_u64(5);
        let mean_step = |eta: f64, rng: &mut StdRng| {
            let (mut sum, mut down, mut up) = (0i64, 0, 0);
            for _ in 0..4000 {
                let y = polynomial_mutation_int(&[500], &lower, &upper, eta, 1.0, rng)[0];
                sum += (y - 500).abs();
                down += (y < 500) as usize;
                up += (y > 500) as usize;
            }
            assert!(
                (down as f64 / up as f64 - 1.0).abs() < 0.15,
                "{down} down, {up} up"
            );
            sum as f64 / 4000.0
        };
        let s3 = mean_step(3.0, &mut rng);
        let s20 = mean_step(20.0, &mut rng);
        assert!(s3 > 1.5 * s20, "eta 3: {s3}, eta 20: {s20}");

        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let l = [0; 10];
            let u = [50; 10];
            let x = [25; 10];
            (0..20)
                .map(|_| polynomial_mutation_int(&x, &l, &u, 3.0, 0.3, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }

    #[test]
    fn random_genome_covers_inclusive_bounds() {
        let lower = [0, -2, 5];
        let upper = [1, 2, 5];
        let mut rng = StdRng::seed_from_u64(6);
        let mut values: Vec<HashSet<i64>> = vec![HashSet::new(); 3];
        for _ in 0..1000 {
            let g = random_genome(&lower, &upper, &mut rng);
            for i in 0..3 {
                values[i].insert(g[i]);
            }
        }
        assert_eq!(values[0], HashSet::from([0, 1]));
        assert_eq!(values[1], HashSet::from([-2, -1, 0, 1, 2]));
        assert_eq!(values[2], HashSet::from([5]));
        let a = random_genome(&[0; 8], &[9; 8], &mut StdRng::seed_from_u64(1));
        let b = random_genome(&[0; 8], &[9; 8], &mut StdRng::seed_from_u64(1));
        assert_eq!(a, b);
    }

    #[test]
    #[should_panic(expected = "lower bound")]
    fn random_genome_rejects_inverted_bounds() {
        random_genome(&[3], &[2], &mut StdRng::seed_from_u64(0));
    }

    // ---------------------------------------------------------------- offspring

    #[test]
    fn offspring_are_new_unique_and_in_bounds() {
        let lower = vec![0, 0, -3, 2];
        let upper = vec![9, 9, 3, 2];
        let cfg = Nsga2Config {
            population: 10,
            offspring: 30,
            max_regen: 5,
            ..Default::default()
        };
        let mut rng = StdRng::seed_from_u64(11);
        let mut seen = HashSet::new();
        let pop: Vec<Vec<i64>> = (0..10)
            .map(|_| random_genome(&lower, &upper, &mut rng))
            .collect();
        for g in &pop {
            seen.insert(key(g));
        }
        let objs: Vec<Vec<f64>> = pop.iter().map(|g| vec![g[0] as f64, g[1] as f64]).collect();
        let before = seen.clone();
        let off = make_offspring(&pop, &objs, &lower, &upper, &cfg, &mut seen, &key, &mut rng);
        assert_eq!(off.len(), 30);
        let keys: HashSet<String> = off.iter().map(|g| key(g)).collect();
        assert_eq!(keys.len(), 30, "unique among themselves");
        assert!(keys.is_disjoint(&before), "none seen before");
        assert_eq!(seen, before.union(&keys).cloned().collect::<HashSet<_>>());
        for g in &off {
            assert!(g
                .iter()
                .zip(&lower)
                .zip(&upper)
                .all(|((v, l), u)| l <= v && v <= u));
            assert_eq!(g[3], 2, "frozen gene");
        }
        // A key that ignores a gene dedups on the rest only.
        let mut seen2 = HashSet::new();
        let first_gene = |g: &[i64]| g[0].to_string();
        let off = make_offspring(
            &pop,
            &objs,
            &lower,
            &upper,
            &cfg,
            &mut seen2,
            &first_gene,
            &mut rng,
        );
        assert!(off.len() <= 10);
        let firsts: HashSet<i64> = off.iter().map(|g| g[0]).collect();
        assert_eq!(firsts.len(), off.len());
    }

    #[test]
    fn offspring_stop_when_the_space_is_exhausted() {
        // Four genomes in all: {0,1} x {0,1}.
        let lower = vec![0, 0];
        let upper = vec![1, 1];
        let cfg = Nsga2Config {
            population: 2,
            offspring: 10,
            max_regen: 50,
            ..Default::default()
        };
        let pop = vec![vec![0, 0], vec![1, 1]];
        let objs = pts(&[(0.0, 1.0), (1.0, 0.0)]);
        let mut rng = StdRng::seed_from_u64(12);
        let mut seen: HashSet<String> = pop.iter().map(|g| key(g)).collect();
        let off = make_offspring(&pop, &objs, &lower, &upper, &cfg, &mut seen, &key, &mut rng);
        let mut got: Vec<Vec<i64>> = off.clone();
        got.sort();
        assert_eq!(got, vec![vec![0, 1], vec![1, 0]]);
        assert_eq!(seen.len(), 4);
        let off = make_offspring(&pop, &objs, &lower, &upper, &cfg, &mut seen, &key, &mut rng);
        assert!(off.is_empty());
        // No population, no children.
        let off = make_offspring(&[], &[], &lower, &upper, &cfg, &mut seen, &key, &mut rng);
        assert!(off.is_empty());
    }

    // ---------------------------------------------------------------- convergence

    /// ZDT1 with every variable on the grid {0, 1/K, ..., 1}: f1 = x1,
    /// g = 1 + 9 * mean(x2..xn), f2 = g (1 - sqrt(f1 / g)). The Pareto front is g = 1
    /// (x2..xn = 0), f2 = 1 - sqrt(f1), and every grid value of x1 is on it.
    const ZDT_VARS: usize = 10;
    const ZDT_GRID: i64 = 100;

    fn zdt1(genes: &[i64]) -> Vec<f64> {
        let x: Vec<f64> = genes.iter().map(|&v| v as f64 / ZDT_GRID as f64).collect();
        let f1 = x[0];
        let g = 1.0 + 9.0 * x[1..].iter().sum::<f64>() / (x.len() - 1) as f64;
        vec![f1, g * (1.0 - (f1 / g).sqrt())]
    }

    /// Area dominated by `points` (minimisation) and bounded by `reference`.
    fn hypervolume_2d(points: &[Vec<f64>], reference: (f64, f64)) -> f64 {
        let mut p: Vec<(f64, f64)> = points
            .iter()
            .map(|v| (v[0], v[1]))
            .filter(|&(a, b)| a < reference.0 && b < reference.1)
            .collect();
        p.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut hv = 0.0;
        let mut last_f2 = reference.1;
        for (f1, f2) in p {
            if f2 < last_f2 {
                hv += (reference.0 - f1) * (last_f2 - f2);
                last_f2 = f2;
            }
        }
        hv
    }

    /// Mean distance from each point to the true ZDT1 front (sampled at 10,001 points).
    fn generational_distance(points: &[Vec<f64>]) -> f64 {
        let front: Vec<(f64, f64)> = (0..=10_000)
            .map(|i| {
                let f1 = i as f64 / 10_000.0;
                (f1, 1.0 - f1.sqrt())
            })
            .collect();
        let total: f64 = points
            .iter()
            .map(|p| {
                front
                    .iter()
                    .map(|&(a, b)| ((p[0] - a).powi(2) + (p[1] - b).powi(2)).sqrt())
                    .fold(f64::INFINITY, f64::min)
            })
            .sum();
        total / points.len() as f64
    }

    fn first_front(objs: &[Vec<f64>]) -> Vec<Vec<f64>> {
        non_dominated_sort(objs)[0]
            .iter()
            .map(|&i| objs[i].clone())
            .collect()
    }

    /// NSGA-II on ZDT1: returns the final population's genomes, objectives and the number of
    /// evaluations spent.
    fn run_nsga2(seed: u64, generations: usize) -> (Vec<Vec<i64>>, Vec<Vec<f64>>, usize) {
        let lower = vec![0; ZDT_VARS];
        let upper = vec![ZDT_GRID; ZDT_VARS];
        let cfg = Nsga2Config {
            population: 40,
            offspring: 40,
            ..Default::default()
        };
        let mut rng = StdRng::seed_from_u64(seed);
        let mut seen = HashSet::new();
        let mut pop = Vec::new();
        while pop.len() < cfg.population {
            let g = random_genome(&lower, &upper, &mut rng);
            if seen.insert(key(&g)) {
                pop.push(g);
            }
        }
        let mut objs: Vec<Vec<f64>> = pop.iter().map(|g| zdt1(g)).collect();
        let mut evals = pop.len();
        for _ in 0..generations {
            let off = make_offspring(&pop, &objs, &lower, &upper, &cfg, &mut seen, &key, &mut rng);
            evals += off.len();
            objs.extend(off.iter().map(|g| zdt1(g)));
            pop.extend(off);
            let keep = select_survivors(&objs, cfg.population);
            pop = keep.iter().map(|&i| pop[i].clone()).collect();
            objs = keep.iter().map(|&i| objs[i].clone()).collect();
        }
        (pop, objs, evals)
    }

    /// Random search with the same number of distinct evaluations: its whole non-dominated set.
    fn random_search(seed: u64, evals: usize) -> Vec<Vec<f64>> {
        let lower = vec![0; ZDT_VARS];
        let upper = vec![ZDT_GRID; ZDT_VARS];
        let mut rng = StdRng::seed_from_u64(seed);
        let mut seen = HashSet::new();
        let mut objs = Vec::new();
        while objs.len() < evals {
            let g = random_genome(&lower, &upper, &mut rng);
            if seen.insert(key(&g)) {
                objs.push(zdt1(&g));
            }
        }
        first_front(&objs)
    }

    /// Hypervolume (reference point (1.1, 1.1)) of the grid's true front: x1 = i / K, the rest 0.
    fn true_front_hypervolume() -> f64 {
        let front: Vec<Vec<f64>> = (0..=ZDT_GRID)
            .map(|i| {
                let mut g = vec![0; ZDT_VARS];
                g[0] = i;
                zdt1(&g)
            })
            .collect();
        hypervolume_2d(&front, (1.1, 1.1))
    }

    /// NSGA-II reaches the ZDT1 front with 40 + 100 x 40 = 4,040 evaluations; random search with
    /// the same budget does not come close.
    ///
    /// Thresholds: the hypervolume must reach 98% of the grid front's (0.8715 -> 0.854) and the
    /// generational distance must be below 0.01. When the thresholds were set, the seeds below
    /// gave hypervolume 0.862-0.864 and distance <= 0.0014 after 100 generations, while after
    /// 40 generations one seed of five stayed at 0.839 (distance 0.015): the test tracks
    /// convergence, not just the operators' validity. Random search with 4,040 samples has
    /// g around 2 at best: hypervolume below 0.02 and distance above 1.2.
    #[test]
    fn converges_on_integer_zdt1_and_beats_random_search() {
        let hv_true = true_front_hypervolume();
        assert!(
            (hv_true - 0.8715).abs() < 1e-3,
            "grid front hypervolume {hv_true}"
        );
        let hv_min = 0.98 * hv_true;
        let gd_max = 0.01;
        for seed in 0..3 {
            let (pop, objs, evals) = run_nsga2(seed, 100);
            assert_eq!(
                evals,
                40 + 100 * 40,
                "every generation found 40 new children"
            );
            let keys: HashSet<String> = pop.iter().map(|g| key(g)).collect();
            assert_eq!(keys.len(), pop.len(), "no duplicate in the population");
            let front = first_front(&objs);
            let (hv, gd) = (
                hypervolume_2d(&front, (1.1, 1.1)),
                generational_distance(&front),
            );
            assert!(
                hv >= hv_min,
                "seed {seed}: NSGA-II hypervolume {hv} < {hv_min}"
            );
            assert!(
                gd <= gd_max,
                "seed {seed}: NSGA-II distance {gd} > {gd_max}"
            );
            assert!(
                front.len() >= 30,
                "seed {seed}: front of {} points",
                front.len()
            );

            let rnd = random_search(seed + 100, evals);
            let (hv_r, gd_r) = (
                hypervolume_2d(&rnd, (1.1, 1.1)),
                generational_distance(&rnd),
            );
            assert!(
                hv_r < hv_min,
                "seed {seed}: random search reached hypervolume {hv_r}"
            );
            assert!(
                gd_r > gd_max,
                "seed {seed}: random search reached distance {gd_r}"
            );
        }
    }

    #[test]
    fn a_run_is_deterministic_for_a_seed() {
        let a = run_nsga2(21, 15);
        let b = run_nsga2(21, 15);
        assert_eq!(a.0, b.0);
        assert_eq!(a.2, b.2);
        assert!(a
            .1
            .iter()
            .flatten()
            .zip(b.1.iter().flatten())
            .all(|(x, y)| x.to_bits() == y.to_bits()));
        let c = run_nsga2(22, 15);
        assert_ne!(a.0, c.0);
    }
}
