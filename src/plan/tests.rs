use super::*;
use crate::genome::{motifs, CellGene, MicroVariant, SearchSpace};
use rand::SeedableRng;

fn digits_spec() -> DataSpec {
    DataSpec {
        in_ch: 1,
        height: 16,
        width: 16,
        classes: 10,
        timesteps: 4,
        event: false,
    }
}

/// NRN, k = 2: cell1 feedforward_excitation reading the stem twice; cell3 feedback_inhibition
/// reading the reduction cell (same size) and cell1 (one factorised reduce).
fn fixed_genome() -> Genome {
    Genome {
        layout: "NRN".into(),
        micro: MicroVariant::Kernel,
        k: 2,
        cells: vec![
            CellGene {
                motif: 1,
                sources: vec![1, 1],
                ops: vec![0; 12],
            },
            CellGene {
                motif: 5,
                sources: vec![1, 2],
                ops: vec![0; 12],
            },
        ],
    }
}

#[test]
fn parameter_count_of_a_fixed_genome() {
    // Counted by hand (C = 8, 1 x 16 x 16 input, 10 classes, 1x1 reduce):
    // stem 24*1*9 + 2*24 = 264
    // cell1: two 1x1 preprocess 24->8 (192 + 16 each) = 416; three E3 edges 8->8 (576 + 16) = 1776
    // cell2 (R, C = 16): two 1x1 16->24 (384 each) + BN 48 (96) = 864
    // cell3 (C = 16): slot0 1x1 48->16 + BN = 800; slot1 reduce two 1x1 16->8 + BN 16 = 288;
    //        four E3/I3 edges 16->16 (2304 + 32) = 9344
    // head 32*10 + 10 = 330
    let plan = Plan::compile(&fixed_genome(), &digits_spec(), 8, 1).unwrap();
    assert_eq!(plan.num_params, 264 + 2192 + 864 + 10432 + 330);
}

#[test]
fn lif_populations_are_shared_per_state() {
    let plan = Plan::compile(&fixed_genome(), &digits_spec(), 8, 1).unwrap();
    let names: Vec<&str> = plan.populations.iter().map(|p| p.name.as_str()).collect();
    // cell1.out feeds both the reduction cell and cell3's reduce: one population.
    assert_eq!(names.iter().filter(|n| **n == "cell1.out").count(), 1);
    assert_eq!(plan.populations.len(), 11, "{names:?}");
    assert_eq!(plan.populations[plan.head_population].name, "cell3.out");
    // the feedback edge reads the interneuron; the updated node feeds the concat
    assert!(plan.tensors.iter().any(|t| t.name == "cell3.n2.fb1"));
}

#[test]
fn recurrent_excitation_reads_the_updated_state() {
    let g = Genome {
        layout: "N".into(),
        micro: MicroVariant::Kernel,
        k: 2,
        cells: vec![CellGene {
            motif: 3,
            sources: vec![1, 1],
            ops: vec![0; 12],
        }],
    };
    let plan = Plan::compile(&g, &digits_spec(), 8, 1).unwrap();
    // n2 (original) feeds n3; n2 after feedback feeds n4: two distinct populations of node 2.
    let n2 = plan
        .populations
        .iter()
        .filter(|p| p.name.starts_with("cell1.n2"))
        .count();
    assert_eq!(n2, 2);
}

#[test]
fn every_motif_k_and_micro_op_compiles() {
    for m in motifs::REGISTRY {
        for k in [2usize, 3] {
            for micro in [MicroVariant::Kernel, MicroVariant::Full] {
                for op in 0..micro.arity() {
                    let g = Genome {
                        layout: "NRN".into(),
                        micro,
                        k,
                        cells: vec![
                            CellGene {
                                motif: m.id,
                                sources: vec![1, 2, 3],
                                ops: vec![op; 12],
                            },
                            CellGene {
                                motif: m.id,
                                sources: vec![1, 2, 3],
                                ops: vec![op; 12],
                            },
                        ],
                    };
                    let plan = Plan::compile(&g, &digits_spec(), 8, 3).unwrap();
                    assert!(plan.num_params > 0);
                    // every op reads tensors produced earlier
                    let mut made = vec![false; plan.tensors.len()];
                    made[plan.input] = true;
                    for o in &plan.ops {
                        for x in o.inputs() {
                            assert!(made[x], "{} reads an unproduced tensor", m.name);
                        }
                        made[o.output()] = true;
                    }
                }
            }
        }
    }
}

#[test]
fn unreachable_cells_are_not_computed() {
    // cell2 is read by nobody: cell3 reads the stem and cell1 only.
    let g = Genome {
        layout: "NNN".into(),
        micro: MicroVariant::Kernel,
        k: 2,
        cells: vec![
            CellGene {
                motif: 1,
                sources: vec![1, 1],
                ops: vec![0; 12],
            },
            CellGene {
                motif: 4,
                sources: vec![1, 2],
                ops: vec![1; 12],
            },
            CellGene {
                motif: 1,
                sources: vec![2, 3],
                ops: vec![0; 12],
            },
        ],
    };
    let plan = Plan::compile(&g, &digits_spec(), 8, 1).unwrap();
    assert!(!plan.tensors.iter().any(|t| t.name.starts_with("cell2")));
    let mut g2 = g.clone();
    g2.cells[1].motif = 2;
    assert_eq!(g.canonical_key(), g2.canonical_key());
}

#[test]
fn an_unreachable_reduction_still_starts_a_new_stage() {
    // cell2 (R) is read by nobody: cell3 reads the stem and cell1. cell3 still runs at 2C and
    // half the size, its inputs brought there by factorised reduces.
    let g = Genome {
        layout: "NRN".into(),
        micro: MicroVariant::Kernel,
        k: 2,
        cells: vec![
            CellGene {
                motif: 1,
                sources: vec![1, 1],
                ops: vec![0; 12],
            },
            CellGene {
                motif: 1,
                sources: vec![2, 3],
                ops: vec![0; 12],
            },
        ],
    };
    assert!(!g.reachable()[2]);
    let plan = Plan::compile(&g, &digits_spec(), 8, 1).unwrap();
    assert!(!plan.tensors.iter().any(|t| t.name.starts_with("cell2")));
    let n = plan.tensors.iter().find(|t| t.name == "cell3.n2").unwrap();
    assert_eq!((n.c, n.h, n.w), (16, 8, 8));
}

#[test]
fn sampled_genomes_compile_at_cifar_shape() {
    let space = SearchSpace::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let spec = DataSpec {
        in_ch: 3,
        height: 32,
        width: 32,
        classes: 10,
        timesteps: 4,
        event: false,
    };
    for _ in 0..100 {
        let g = space.sample(&mut rng);
        let p = Plan::compile(&g, &spec, 8, 1).unwrap();
        let logits = &p.tensors[p.logits];
        assert_eq!((logits.c, logits.per_time), (10, false));
    }
}

#[test]
fn too_small_input_is_an_error() {
    let spec = DataSpec {
        in_ch: 1,
        height: 4,
        width: 4,
        classes: 10,
        timesteps: 4,
        event: false,
    };
    let g = Genome {
        layout: "NRNRNRNR".into(),
        ..fixed_genome()
    };
    let g = Genome {
        cells: vec![fixed_genome().cells[0].clone(); 4],
        ..g
    };
    assert!(matches!(
        Plan::compile(&g, &spec, 8, 1),
        Err(PlanError::TooSmall { .. })
    ));
}

#[test]
fn reduction_after_a_pass_through_reaches_its_stage_size() {
    // NRNRN with cell3 silent passing through cell1 (16x16): cell4 (R) must still give 4x4.
    let g = Genome {
        layout: "NRNRN".into(),
        micro: MicroVariant::Kernel,
        k: 2,
        cells: vec![
            CellGene {
                motif: 1,
                sources: vec![1, 1],
                ops: vec![0; 12],
            },
            CellGene {
                motif: 0,
                sources: vec![2, 3],
                ops: vec![0; 12],
            },
            CellGene {
                motif: 1,
                sources: vec![1, 2],
                ops: vec![0; 12],
            },
        ],
    };
    let plan = Plan::compile(&g, &digits_spec(), 8, 1).unwrap();
    let cell5 = plan.tensors.iter().find(|t| t.name == "cell5.out").unwrap();
    assert_eq!((cell5.c, cell5.h), (2 * 32, 4));
}
