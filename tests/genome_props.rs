//! Round trips and canonical-key invariance over many sampled genomes.

use msenas::genome::{Genome, MicroVariant, ResolvedCell, SearchSpace};
use rand::{Rng, SeedableRng};

fn spaces() -> Vec<SearchSpace> {
    vec![
        SearchSpace::default(),
        SearchSpace {
            micro: MicroVariant::Full,
            ks: vec![2],
            layout: "NNRNN".into(),
            ..Default::default()
        },
    ]
}

#[test]
fn json_and_vector_round_trips_over_1000_genomes() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    for space in spaces() {
        for _ in 0..1000 {
            let g = space.sample(&mut rng);
            let back = Genome::from_json(&g.to_json()).unwrap();
            assert_eq!(g, back);
            let v = space.encode(&g).unwrap();
            assert_eq!(space.decode(&v).unwrap(), g);
            assert_eq!(back.canonical_key(), g.canonical_key());
        }
    }
}

/// Which vector genes the network actually uses: the k gene, and per live cell its motif,
/// the first k offsets and the first `conv_edges` micro genes (silent cells: only the offsets).
fn used_genes(space: &SearchSpace, g: &Genome) -> Vec<bool> {
    let per = 1 + space.k_max() + space.ops_per_cell();
    let mut used = vec![false; space.n_var()];
    used[0] = true;
    let live = g.reachable();
    let resolved = g.resolve();
    let mut normal = 0;
    for (pos, cell) in resolved.iter().enumerate() {
        let base = 1 + normal * per;
        match cell {
            ResolvedCell::Reduction => continue,
            _ if !live[pos + 1] => {}
            ResolvedCell::Silent { .. } => {
                used[base] = true;
                // offsets decide the passed-through input; mark them used (conservative)
                for s in 0..g.k {
                    used[base + 1 + s] = true;
                }
            }
            ResolvedCell::Normal { graph, .. } => {
                used[base] = true;
                for s in 0..g.k {
                    used[base + 1 + s] = true;
                }
                for e in 0..graph.conv_edges() {
                    used[base + 1 + space.k_max() + e] = true;
                }
            }
        }
        normal += 1;
    }
    used
}

#[test]
fn unused_genes_keep_the_key_used_ones_change_it() {
    let space = SearchSpace::default();
    let (lo, hi) = space.bounds();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let (mut checked_unused, mut checked_used) = (0, 0);
    for _ in 0..300 {
        let g = space.sample(&mut rng);
        let v = space.encode(&g).unwrap();
        let used = used_genes(&space, &g);
        let key = g.canonical_key();
        for (i, &u) in used.iter().enumerate() {
            if lo[i] == hi[i] {
                continue;
            }
            let mut w = v.clone();
            while w[i] == v[i] {
                w[i] = rng.random_range(lo[i]..=hi[i]);
            }
            let g2 = space.decode(&w).unwrap();
            if !u {
                assert_eq!(g2.canonical_key(), key, "unused gene {i} changed the key");
                checked_unused += 1;
            } else if i > 0 && (i - 1) % (1 + space.k_max() + space.ops_per_cell()) > space.k_max()
            {
                // a used micro gene always changes the network
                assert_ne!(g2.canonical_key(), key, "used micro gene {i} kept the key");
                checked_used += 1;
            }
        }
    }
    assert!(
        checked_unused > 1000 && checked_used > 1000,
        "{checked_unused} {checked_used}"
    );
}
