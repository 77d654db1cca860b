//! Finite-difference checks of every backward twin (central differences; losses are random
//! projections `L = Σ r_j y_j` summed in f64 so that only the primitive's own f32 rounding
//! enters the numerical derivative).

use super::*;
use crate::cpu::{
    bn_apply, bn_stats, concat_channels, conv2d, global_avg_pool, lif, lif_membrane, linear,
    mean_time,
};

/// Deterministic values in [-1, 1).
fn fill(len: usize, salt: u32) -> Vec<f32> {
    (0..len as u32)
        .map(|i| (crate::cpu::rng::bits(i, salt) >> 8) as f32 / 16_777_216.0 * 2.0 - 1.0)
        .collect()
}

fn dot(r: &[f32], y: &[f32]) -> f64 {
    r.iter()
        .zip(y)
        .map(|(&a, &b)| f64::from(a) * f64::from(b))
        .sum()
}

/// Central differences of `f` at every coordinate of `x`, compared with `analytic`.
fn check(
    what: &str,
    x: &[f32],
    analytic: &[f32],
    eps: f32,
    atol: f64,
    rtol: f64,
    f: impl Fn(&[f32]) -> f64,
) {
    assert_eq!(x.len(), analytic.len(), "{what}: gradient length");
    let mut xp = x.to_vec();
    for j in 0..x.len() {
        xp[j] = x[j] + eps;
        let up = f(&xp);
        xp[j] = x[j] - eps;
        let down = f(&xp);
        xp[j] = x[j];
        let h = f64::from((x[j] + eps) - (x[j] - eps));
        let num = (up - down) / h;
        let ana = f64::from(analytic[j]);
        assert!(
            (num - ana).abs() <= atol + rtol * num.abs().max(ana.abs()),
            "{what}[{j}]: numerical {num} vs analytic {ana}"
        );
    }
}

#[test]
fn surrogates_by_hand_and_parse() {
    let t = Surrogate::Triangle { alpha: 2.0 };
    assert_eq!(t.grad(0.0), 2.0);
    assert_eq!(t.grad(0.25), 1.0);
    assert_eq!(t.grad(-0.25), 1.0);
    assert_eq!(t.grad(0.5), 0.0);
    assert_eq!(t.grad(-0.7), 0.0);
    assert_eq!(t.primitive(0.0), 0.5);
    assert_eq!(t.primitive(0.5), 1.0);
    assert_eq!(t.primitive(-0.5), 0.0);
    // sigmoid alpha 4 at 0: 4 * 0.5 * 0.5 = 1; atan alpha 2 at 0: 1.
    assert_eq!(Surrogate::Sigmoid { alpha: 4.0 }.grad(0.0), 1.0);
    assert_eq!(Surrogate::Atan { alpha: 2.0 }.grad(0.0), 1.0);
    assert_eq!(Surrogate::parse("triangle"), Some(t));
    assert_eq!(
        Surrogate::parse("sigmoid"),
        Some(Surrogate::Sigmoid { alpha: 4.0 })
    );
    assert_eq!(
        Surrogate::parse("atan:3"),
        Some(Surrogate::Atan { alpha: 3.0 })
    );
    assert_eq!(Surrogate::parse("relu"), None);
    assert_eq!(Surrogate::parse("atan:-1"), None);
}

#[test]
fn surrogate_grad_is_the_derivative_of_its_primitive() {
    for sg in [
        Surrogate::Triangle { alpha: 2.0 },
        Surrogate::Triangle { alpha: 1.0 },
        Surrogate::Sigmoid { alpha: 4.0 },
        Surrogate::Atan { alpha: 2.0 },
    ] {
        for i in -300..=300 {
            // 0.00333 steps over [-1, 1], offset to miss the triangle's kinks at 0 and ±1/α.
            let u = i as f64 / 300.0 + 1.3e-3;
            let e = 1e-6;
            let num = (sg.primitive(u + e) - sg.primitive(u - e)) / (2.0 * e);
            let ana = f64::from(sg.grad(u as f32));
            assert!((num - ana).abs() < 2e-4, "{sg:?} at {u}: {num} vs {ana}");
        }
        // A soft step from 0 to 1.
        assert!(sg.primitive(-50.0) < 1e-2 && sg.primitive(50.0) > 0.99);
    }
}

#[test]
fn lif_backward_by_hand() {
    // One neuron, T = 2, tau_inv 0.5, v_th 0.5, triangle alpha 2. x = (0.8, 0.8):
    // h0 = 0.4 (no spike), h1 = 0.4 + (0.8 - 0.4)/2 = 0.6 (spike).
    // σ'(h0 - 0.5) = 2 - 4*0.1 = 1.6; σ'(h1 - 0.5) = 1.6.
    // g_h1 = gs1 * 1.6; gx1 = g_h1 / 2; g_v0 = g_h1 / 2.
    // g_h0 = gs0 * 1.6 + g_v0 (h0 did not spike, so the membrane carried on); gx0 = g_h0 / 2.
    let x = [0.8f32, 0.8];
    let (mut s, mut v) = ([0.0f32; 2], [0.0f32; 2]);
    lif_membrane(&x, 2, 1, LifParams::default(), &mut s, &mut v);
    assert_eq!(s, [0.0, 1.0]);
    let mut gx = [0.0f32; 2];
    lif_backward(
        &[1.0, 1.0],
        &v,
        2,
        1,
        LifParams::default(),
        Surrogate::default(),
        &mut gx,
    );
    let gh1 = 1.6f32;
    let gh0 = 1.6 + gh1 * 0.5;
    assert!((gx[1] - gh1 * 0.5).abs() < 1e-6, "{gx:?}");
    assert!((gx[0] - gh0 * 0.5).abs() < 1e-6, "{gx:?}");
    // A spike at step 0 stops the membrane path: x = (1.2, 0.0): h0 = 0.6 spikes, h1 = 0.
    lif_membrane(&[1.2, 0.0], 2, 1, LifParams::default(), &mut s, &mut v);
    lif_backward(
        &[0.0, 1.0],
        &v,
        2,
        1,
        LifParams::default(),
        Surrogate::default(),
        &mut gx,
    );
    // h1 = 0 -> u = -0.5 -> σ' = 0, and g_v0 would be stopped by the reset anyway.
    assert_eq!(gx, [0.0, 0.0]);
}

/// The LIF surrogate gradient is the exact gradient of the smooth function in which each spike
/// is the surrogate's primitive `σ(h - v_th)` and each reset multiplies by the constant
/// `1 - S` of the unperturbed run (the reset is not differentiated). Checked in f64.
#[test]
fn lif_backward_matches_smooth_frozen_reset_lif() {
    let p = LifParams::default();
    let (t, n) = (6usize, 16usize);
    for sg in [
        Surrogate::Triangle { alpha: 2.0 },
        Surrogate::Sigmoid { alpha: 4.0 },
        Surrogate::Atan { alpha: 2.0 },
    ] {
        // Inputs in [-0.2, 1.8): plenty of spikes, resets and sub-threshold steps. Membranes
        // stay clear of the threshold so the frozen resets stay valid under perturbation.
        let mut salt = 11;
        let (x, s, v) = loop {
            let x: Vec<f32> = fill(t * n, salt).iter().map(|v| 0.8 + v).collect();
            let (mut s, mut v) = (vec![0.0f32; t * n], vec![0.0f32; t * n]);
            lif_membrane(&x, t, n, p, &mut s, &mut v);
            if v.iter().all(|&h| (h - p.v_th).abs() > 2e-3) {
                break (x, s, v);
            }
            salt += 100;
        };
        assert!(s.iter().filter(|&&v| v == 1.0).count() > t * n / 5);
        let r = fill(t * n, 12);
        let mut gx = vec![0.0f32; t * n];
        lif_backward(&r, &v, t, n, p, sg, &mut gx);
        let smooth = |xs: &[f32]| -> f64 {
            let mut total = 0.0;
            for j in 0..n {
                let mut vm = 0.0f64;
                for step in 0..t {
                    let k = step * n + j;
                    let h = vm + (f64::from(xs[k]) - vm) * f64::from(p.tau_inv);
                    total += f64::from(r[k]) * sg.primitive(h - f64::from(p.v_th));
                    vm = h * (1.0 - f64::from(s[k]));
                }
            }
            total
        };
        // f64 function of f32 inputs: eps 1e-3 keeps the truncation error small.
        check("lif", &x, &gx, 1e-3, 1e-4, 1e-3, smooth);
        // The spikes themselves are the forward primitive's.
        let mut s2 = vec![0.0f32; t * n];
        lif(&x, t, n, p, &mut s2);
        assert_eq!(s, s2);
    }
}

#[test]
fn conv_backward_matches_finite_differences() {
    for k in [1usize, 3, 5] {
        for stride in [1usize, 2] {
            for shift in [false, true] {
                for (h, w) in [(5usize, 6usize), (4, 4)] {
                    let s = ConvShape {
                        n: 2,
                        cin: 2,
                        h,
                        w,
                        cout: 3,
                        k,
                        stride,
                        shift,
                    };
                    let salt = (k * 100 + stride * 10 + shift as usize + h * 1000) as u32;
                    let x = fill(s.in_len(), salt);
                    let wt = fill(s.weight_len(), salt + 1);
                    let r = fill(s.out_len(), salt + 2);
                    let mut gx = vec![f32::NAN; s.in_len()];
                    let mut gw = vec![f32::NAN; s.weight_len()];
                    conv2d_backward_input(&r, &wt, &s, &mut gx);
                    conv2d_backward_weight(&x, &r, &s, &mut gw);
                    let run = |xv: &[f32], wv: &[f32]| {
                        let mut y = vec![0.0f32; s.out_len()];
                        conv2d(xv, wv, &s, &mut y);
                        dot(&r, &y)
                    };
                    let what = format!("conv {s:?}");
                    check(&format!("{what} gx"), &x, &gx, 1e-2, 1e-4, 1e-3, |xv| {
                        run(xv, &wt)
                    });
                    check(&format!("{what} gw"), &wt, &gw, 1e-2, 1e-4, 1e-3, |wv| {
                        run(&x, wv)
                    });
                }
            }
        }
    }
}

#[test]
fn bn_backward_matches_finite_differences_with_every_gate() {
    let (n, c, hw) = (3usize, 2usize, 4usize);
    let eps = 1e-5f32;
    for gate in [Gate::None, Gate::Excitatory, Gate::Inhibitory] {
        // Pick data whose normalised values stay clear of the gate's kink at 0.
        let mut salt = 40;
        let (x, gamma, beta) = loop {
            let x: Vec<f32> = fill(n * c * hw, salt)
                .iter()
                .map(|v| 2.0 * v + 0.3)
                .collect();
            let gamma: Vec<f32> = fill(c, salt + 1).iter().map(|v| 1.0 + 0.5 * v).collect();
            let beta = fill(c, salt + 2);
            let (m, v) = bn_stats(&x, n, c, hw);
            let clear = (0..n * c * hw).all(|j| {
                let ch = (j / hw) % c;
                let z = (x[j] - m[ch]) / (v[ch] + eps).sqrt() * gamma[ch] + beta[ch];
                z.abs() > 0.1
            });
            if clear {
                break (x, gamma, beta);
            }
            salt += 10;
        };
        let r = fill(n * c * hw, 99);
        let forward = |xv: &[f32], g: &[f32], b: &[f32]| {
            let (m, v) = bn_stats(xv, n, c, hw);
            let mut y = vec![0.0f32; xv.len()];
            bn_apply(xv, n, c, hw, &m, &v, g, b, eps, gate, &mut y);
            y
        };
        let y = forward(&x, &gamma, &beta);
        let (m, v) = bn_stats(&x, n, c, hw);
        let mut gx = vec![0.0f32; x.len()];
        let (mut gg, mut gb) = (vec![0.0f32; c], vec![0.0f32; c]);
        bn_backward(
            &x, &y, &r, n, c, hw, &m, &v, &gamma, eps, gate, &mut gx, &mut gg, &mut gb,
        );
        let what = format!("bn {gate:?}");
        check(&format!("{what} gx"), &x, &gx, 5e-3, 5e-4, 1e-2, |xv| {
            dot(&r, &forward(xv, &gamma, &beta))
        });
        check(
            &format!("{what} ggamma"),
            &gamma,
            &gg,
            5e-3,
            5e-4,
            1e-2,
            |g| dot(&r, &forward(&x, g, &beta)),
        );
        check(
            &format!("{what} gbeta"),
            &beta,
            &gb,
            5e-3,
            5e-4,
            1e-2,
            |b| dot(&r, &forward(&x, &gamma, b)),
        );
        if gate != Gate::None {
            // The gate blocks some gradient: a gated channel's gbeta differs from Σ r.
            let total: f32 = r.iter().sum();
            assert!((gb.iter().sum::<f32>() - total).abs() > 1e-3);
        }
    }
}

#[test]
fn concat_pool_linear_mean_time_match_finite_differences() {
    // concat: n = 2, hw = 3, channels 1 and 2.
    let (n, hw) = (2usize, 3usize);
    let a = fill(n * hw, 1);
    let b = fill(n * 2 * hw, 2);
    let r = fill(n * 3 * hw, 3);
    let g = concat_backward(&r, n, hw, &[1, 2]);
    let cat = |av: &[f32], bv: &[f32]| {
        let mut y = vec![0.0f32; n * 3 * hw];
        concat_channels(&[(av, 1), (bv, 2)], n, hw, &mut y);
        dot(&r, &y)
    };
    check("concat a", &a, &g[0], 1e-2, 1e-5, 1e-4, |v| cat(v, &b));
    check("concat b", &b, &g[1], 1e-2, 1e-5, 1e-4, |v| cat(&a, v));

    // avg pool: n = 2, c = 3, hw = 5.
    let (n, c, hw) = (2usize, 3usize, 5usize);
    let x = fill(n * c * hw, 4);
    let r = fill(n * c, 5);
    let mut gx = vec![0.0f32; x.len()];
    global_avg_pool_backward(&r, n, c, hw, &mut gx);
    check("pool", &x, &gx, 1e-2, 1e-5, 1e-4, |xv| {
        let mut y = vec![0.0f32; n * c];
        global_avg_pool(xv, n, c, hw, &mut y);
        dot(&r, &y)
    });

    // linear: n = 3, in 4, out 2.
    let (n, in_f, out_f) = (3usize, 4usize, 2usize);
    let x = fill(n * in_f, 6);
    let w = fill(out_f * in_f, 7);
    let bias = fill(out_f, 8);
    let r = fill(n * out_f, 9);
    let (mut gx, mut gw, mut gb) = (
        vec![0.0f32; n * in_f],
        vec![0.0f32; out_f * in_f],
        vec![0.0f32; out_f],
    );
    linear_backward(&x, &r, n, in_f, &w, out_f, Some(&mut gx), &mut gw, &mut gb);
    let lin = |xv: &[f32], wv: &[f32], bv: &[f32]| {
        let mut y = vec![0.0f32; n * out_f];
        linear(xv, n, in_f, wv, bv, out_f, &mut y);
        dot(&r, &y)
    };
    check("linear gx", &x, &gx, 1e-2, 1e-5, 1e-4, |v| {
        lin(v, &w, &bias)
    });
    check("linear gw", &w, &gw, 1e-2, 1e-5, 1e-4, |v| {
        lin(&x, v, &bias)
    });
    check("linear gb", &bias, &gb, 1e-2, 1e-5, 1e-4, |v| {
        lin(&x, &w, v)
    });

    // mean over time: T = 3, m = 4.
    let (t, m) = (3usize, 4usize);
    let x = fill(t * m, 10);
    let r = fill(m, 11);
    let mut gx = vec![0.0f32; t * m];
    mean_time_backward(&r, t, m, &mut gx);
    check("mean_time", &x, &gx, 1e-2, 1e-5, 1e-4, |xv| {
        let mut y = vec![0.0f32; m];
        mean_time(xv, t, m, &mut y);
        dot(&r, &y)
    });
}

#[test]
fn losses_by_hand_and_by_finite_differences() {
    // Equal logits: loss = ln K whatever the smoothing; grad = (1/K - q) / B.
    let (loss, g) = softmax_cross_entropy(&[0.0; 8], &[1, 3], 4, 0.1);
    assert!((loss - 4f32.ln()).abs() < 1e-6);
    // q(label) = 0.9 + 0.025 = 0.925 -> (0.25 - 0.925) / 2; others (0.25 - 0.025) / 2.
    assert!((g[1] - (0.25 - 0.925) / 2.0).abs() < 1e-7);
    assert!((g[0] - (0.25 - 0.025) / 2.0).abs() < 1e-7);
    // A confident right answer without smoothing has a tiny loss.
    let (loss, _) = softmax_cross_entropy(&[20.0, 0.0], &[0], 2, 0.0);
    assert!(loss < 1e-8);

    let (b, k) = (3usize, 5usize);
    let logits: Vec<f32> = fill(b * k, 20).iter().map(|v| 3.0 * v).collect();
    let labels = [4u16, 0, 2];
    for smoothing in [0.0f32, 0.1] {
        let (_, g) = softmax_cross_entropy(&logits, &labels, k, smoothing);
        check("cross-entropy", &logits, &g, 1e-2, 1e-5, 1e-3, |l| {
            f64::from(softmax_cross_entropy(l, &labels, k, smoothing).0)
        });
    }
    // MSE: logits (1, 0 | 0.5, 0.5), labels (0, 1): ((0 + 0) + (0.25 + 0.25)) / 4 = 0.125.
    let (loss, g) = mse_rate_loss(&[1.0, 0.0, 0.5, 0.5], &[0, 1], 2);
    assert_eq!(loss, 0.125);
    assert_eq!(g, [0.0, 0.0, 0.25, -0.25]);
    let (_, g) = mse_rate_loss(&logits, &labels, k);
    check("mse", &logits, &g, 1e-2, 1e-5, 1e-3, |l| {
        f64::from(mse_rate_loss(l, &labels, k).0)
    });
}
