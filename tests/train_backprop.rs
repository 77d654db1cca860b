//! Reverse mode over whole plans: the tape forward pass equals the executor's, and the
//! gradient of a small network passes a finite-difference check.
//!
//! Method. A spiking network's surrogate gradient is not the derivative of the network's
//! (piecewise-constant) loss, so it cannot be checked against finite differences of that loss.
//! It is, however, the exact derivative of a smooth function that agrees with the network at the
//! point of evaluation: replace every spike tensor by
//! `S(x) = S0 + σ(h(x) - v_th) - σ(h0 - v_th)` and every reset factor by the constant `1 - S0`,
//! where `S0` and `h0` are the spikes and pre-reset membranes of the unperturbed run and `σ` the
//! surrogate's primitive ([`Surrogate::primitive`]). At the unperturbed parameters `S = S0`
//! exactly (so every downstream value is the real network's), `dS/dh = σ'(h - v_th)` (the
//! surrogate) and the frozen reset is "reset not differentiated". Finite differences of this
//! function therefore test everything the reverse pass does: every op's twin, the accumulation of
//! gradients of tensors read by several ops (shared LIF populations, identity edges, feedback
//! updates), concatenation order and the parameter offsets.

use msenas::cpu::grad::Surrogate;
use msenas::cpu::{forward, init_params, ForwardOptions, LifParams};
use msenas::genome::{CellGene, Genome, MicroVariant};
use msenas::plan::{Gate, Op, Plan};
use msenas::train::backprop::{backward, forward_tape, Hooks};
use msenas::DataSpec;

fn spec() -> DataSpec {
    DataSpec {
        in_ch: 2,
        height: 8,
        width: 8,
        classes: 3,
        timesteps: 3,
        event: false,
    }
}

/// A genome with feedback (recurrent excitation), inhibition and a reduction cell, in the
/// `full` micro variant so both gate signs and both kernels appear.
fn genome() -> Genome {
    Genome {
        layout: "NRN".into(),
        micro: MicroVariant::Full,
        k: 2,
        cells: vec![
            CellGene {
                motif: 3,
                sources: vec![1, 1, 1],
                ops: vec![0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3],
            },
            CellGene {
                motif: 2,
                sources: vec![1, 2, 1],
                ops: vec![1, 0, 3, 2, 1, 0, 3, 2, 1, 0, 3, 2],
            },
        ],
    }
}

fn input(len: usize, salt: u32) -> Vec<f32> {
    (0..len as u32)
        .map(|i| (msenas::cpu::bits(i, salt) >> 8) as f32 / 16_777_216.0 * 1.5)
        .collect()
}

/// Cross-entropy with label smoothing in f64 from f32 logits.
fn ce64(logits: &[f32], labels: &[u16], k: usize, eps: f64) -> f64 {
    let b = labels.len();
    let mut loss = 0.0;
    for r in 0..b {
        let row: Vec<f64> = logits[r * k..(r + 1) * k]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        for (j, v) in row.iter().enumerate() {
            let q = eps / k as f64
                + if j == labels[r] as usize {
                    1.0 - eps
                } else {
                    0.0
                };
            loss -= q * (v - lse);
        }
    }
    loss / b as f64
}

#[test]
fn tape_forward_equals_the_executor() {
    let plan = Plan::compile(&genome(), &spec(), 4, 1).unwrap();
    let params = init_params(&plan, 3);
    let (t, b) = (3, 4);
    let x = input(t * b * spec().frame_len(), 5);
    let tape = forward_tape(
        &plan,
        &params,
        &x,
        t,
        b,
        LifParams::default(),
        1e-5,
        Hooks::default(),
    );
    let mut o = ForwardOptions::new(t, b);
    o.keep_tensors = true;
    let out = forward(&plan, &params, &x, &o);
    assert_eq!(tape.logits(&plan), &out.logits[..]);
    for (i, (a, e)) in tape.tensors.iter().zip(&out.tensors).enumerate() {
        assert_eq!(a, e, "tensor {i} ({})", plan.tensors[i].name);
    }
    for (i, st) in tape.bn_stats.iter().enumerate() {
        assert_eq!(st, &out.bn_batch_stats[i]);
    }
    assert_eq!(tape.spike_counts, out.spike_counts);
}

fn gradient_check(sg: Surrogate) {
    gradient_check_on(sg, &genome());
}

fn gradient_check_on(sg: Surrogate, g: &Genome) {
    let plan = Plan::compile(g, &spec(), 4, 1).unwrap();
    let lifp = LifParams::default();
    // Initial weights, with batch-norm shifts and scales moved off their initial 0 and 1: with
    // beta = 0 a silent channel's gated output sits exactly on the gate's kink (z = 0), where the
    // loss has no derivative to check.
    let mut params = init_params(&plan, 11);
    for (pi, pd) in plan.params.iter().enumerate() {
        let bn_param = pd.name.ends_with("gamma") || pd.name.ends_with("beta");
        if bn_param {
            for (j, v) in params[pd.offset..pd.offset + pd.len].iter_mut().enumerate() {
                let u = (msenas::cpu::bits(j as u32, 500 + pi as u32) >> 8) as f32 / 16_777_216.0;
                *v += 0.6 * u - 0.3;
            }
        }
    }
    let (t, b) = (3, 4);
    let k = spec().classes;
    let x = input(t * b * spec().frame_len(), 21);
    let labels = [0u16, 2, 1, 2];
    let smoothing = 0.1;
    let tape0 = forward_tape(&plan, &params, &x, t, b, lifp, 1e-5, Hooks::default());
    let (_, gl) =
        msenas::cpu::grad::softmax_cross_entropy(tape0.logits(&plan), &labels, k, smoothing);
    let grad = backward(&plan, &params, tape0.clone(), &gl, lifp, sg, 1e-5);
    assert_eq!(grad.len(), plan.num_params);

    // The smooth stand-in around the unperturbed run.
    let s0: Vec<Vec<f32>> = plan
        .populations
        .iter()
        .map(|p| tape0.tensors[p.tensor].clone().unwrap())
        .collect();
    let h0 = tape0.v_pre.clone();
    let vth = f64::from(lifp.v_th);
    let tau_inv = f64::from(lifp.tau_inv);
    let smooth = move |pop: usize, xv: &[f32], _v: &[f32]| -> Vec<f32> {
        let n = xv.len() / t;
        let mut out = vec![0.0f32; xv.len()];
        for j in 0..n {
            let mut v = 0.0f64;
            for step in 0..t {
                let kx = step * n + j;
                let h = v + (f64::from(xv[kx]) - v) * tau_inv;
                let s = f64::from(s0[pop][kx]) + sg.primitive(h - vth)
                    - sg.primitive(f64::from(h0[pop][kx]) - vth);
                out[kx] = s as f32;
                v = h * (1.0 - f64::from(s0[pop][kx]));
            }
        }
        out
    };
    // The gates, frozen the same way: each gated output is `z * M0` with `M0` = 1 where the
    // unperturbed run's gate passed (its output is non-zero), 0 elsewhere.
    let masks: Vec<Option<Vec<f32>>> = (0..plan.bn_channels.len())
        .map(|i| {
            plan.ops.iter().find_map(|o| match o {
                Op::BatchNorm { y, bn, gate, .. } if *bn == i && *gate != Gate::None => Some(
                    tape0.tensors[*y]
                        .as_ref()
                        .unwrap()
                        .iter()
                        .map(|&v| if v != 0.0 { 1.0 } else { 0.0 })
                        .collect(),
                ),
                _ => None,
            })
        })
        .collect();
    let gates = |bn: usize, z: &mut [f32]| {
        if let Some(m) = &masks[bn] {
            for (v, &mm) in z.iter_mut().zip(m) {
                *v *= mm;
            }
        }
    };
    let hooks = Hooks {
        spikes: Some(&smooth),
        gates: Some(&gates),
    };
    let loss_at = |p: &[f32]| {
        let tape = forward_tape(&plan, p, &x, t, b, lifp, 1e-5, hooks);
        ce64(tape.logits(&plan), &labels, k, f64::from(smoothing))
    };
    // At the unperturbed point the stand-in is the network.
    let l0 = loss_at(&params);
    assert!((l0 - ce64(tape0.logits(&plan), &labels, k, 0.1)).abs() < 1e-6);

    // One random direction per parameter tensor: the central difference of the loss along it
    // against the gradient's projection, at the largest step that crosses no gate kink (so the
    // stand-in is smooth on the whole segment).
    let mut nonzero = 0;
    let mut failures = Vec::new();
    for (pi, pd) in plan.params.iter().enumerate() {
        let d: Vec<f32> = (0..pd.len as u32)
            .map(|i| {
                (msenas::cpu::bits(i, 1000 + pi as u32) >> 8) as f32 / 16_777_216.0 * 2.0 - 1.0
            })
            .collect();
        let range = pd.offset..pd.offset + pd.len;
        let ana: f64 = grad[range.clone()]
            .iter()
            .zip(&d)
            .map(|(&g, &dd)| f64::from(g) * f64::from(dd))
            .sum();
        let gnorm: f64 = grad[range.clone()]
            .iter()
            .map(|&g| f64::from(g).powi(2))
            .sum::<f64>()
            .sqrt();
        if gnorm > 1e-6 {
            nonzero += 1;
        }
        let step = |eps: f32| {
            let mut p = params.clone();
            for (v, &dd) in p[range.clone()].iter_mut().zip(&d) {
                *v += eps * dd;
            }
            loss_at(&p)
        };
        // The triangle's primitive is only once differentiable (its derivative has corners at
        // 0 and ±1/alpha), so its central differences carry an O(step) error: a smaller step is
        // tried before a tensor counts as failed. f32 rounding of the logits puts about 3e-8
        // of noise on each loss value, hence the absolute tolerance.
        let mut last = String::new();
        let ok = [1e-3f32, 3e-4, 1e-4].iter().any(|&eps| {
            let num = (step(eps) - step(-eps)) / (2.0 * f64::from(eps));
            let atol = 3e-8 / f64::from(eps);
            last = format!(
                "{sg:?} {} (step {eps}): numerical {num} vs analytic {ana}",
                pd.name
            );
            (num - ana).abs() <= atol + 1e-2 * num.abs().max(ana.abs())
        });
        if !ok {
            failures.push(last);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        nonzero * 4 >= plan.params.len() * 3,
        "most parameter tensors must get a gradient ({nonzero} of {})",
        plan.params.len()
    );
}

#[test]
fn whole_network_gradient_matches_finite_differences_triangle() {
    gradient_check(Surrogate::Triangle { alpha: 2.0 });
}

#[test]
fn whole_network_gradient_matches_finite_differences_sigmoid() {
    gradient_check(Surrogate::Sigmoid { alpha: 4.0 });
}

#[test]
fn whole_network_gradient_matches_finite_differences_atan() {
    gradient_check(Surrogate::Atan { alpha: 2.0 });
}
