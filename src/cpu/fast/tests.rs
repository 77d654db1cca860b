//! The fast engine against the reference loops: every primitive on every shape family the plans
//! use (and ragged ones they do not), then whole networks, forward and backward.

use super::conv::*;
use super::ops;
use super::*;
use crate::cpu::grad::{
    conv2d_backward_input as ref_bwd_input, conv2d_backward_weight as ref_bwd_weight,
    softmax_cross_entropy,
};
use crate::cpu::{
    backprop, conv::conv2d as ref_conv, executor, init_params, population_stats, BnMode, BnRunning,
    ConvShape, Gate, Kernels, PopulationSpikes,
};
use crate::genome::{motifs, CellGene, Genome, MicroVariant, SearchSpace};
use crate::DataSpec;
use rand::{Rng, SeedableRng};

fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// Every convolution shape family of the plans (stem, k 3 and 5 edges, 1x1 preprocessing, the
/// factorised reduce with and without shift, k 1 and 3), plus ragged channel counts, odd and
/// one-pixel images and channel counts above a 256-row table's budget.
fn shapes() -> Vec<ConvShape> {
    let mut v = Vec::new();
    for &(n, cin, h, w, cout, k, stride, shift) in &[
        (3, 8, 8, 8, 8, 3, 1, false),
        (2, 8, 8, 8, 8, 5, 1, false),
        (2, 16, 4, 4, 16, 5, 1, false),
        (2, 32, 4, 4, 32, 5, 1, false),
        (3, 4, 5, 7, 3, 3, 1, false),
        (2, 13, 6, 6, 21, 5, 1, false),
        (3, 24, 8, 8, 8, 1, 1, false),
        (2, 40, 7, 7, 12, 1, 2, false),
        (2, 40, 7, 7, 12, 1, 2, true),
        (2, 12, 8, 6, 9, 3, 2, false),
        (2, 12, 8, 6, 9, 3, 2, true),
        (2, 5, 1, 1, 6, 3, 1, false),
        (2, 3, 2, 9, 2, 3, 1, false),
        (2, 96, 2, 2, 40, 1, 2, true),
        (17, 8, 3, 3, 8, 3, 1, false),
    ] {
        v.push(ConvShape {
            n,
            cin,
            h,
            w,
            cout,
            k,
            stride,
            shift,
        });
    }
    v
}

fn spikes(r: &mut rand::rngs::StdRng, len: usize, rate: f32) -> Vec<f32> {
    (0..len)
        .map(|_| (r.random::<f32>() < rate) as u8 as f32)
        .collect()
}

fn uniform(r: &mut rand::rngs::StdRng, len: usize) -> Vec<f32> {
    (0..len).map(|_| r.random::<f32>() * 2.0 - 1.0).collect()
}

/// `[n][c][h][w]` 0/1 values as padded spike planes.
fn planes_of(x: &[f32], n: usize, c: usize, h: usize, w: usize) -> Vec<u8> {
    let (g8, wp) = (groups8(c), w + 2 * PAD);
    let plane = (h + 2 * PAD) * wp * g8;
    let mut out = vec![0u8; n * plane];
    for img in 0..n {
        for ch in 0..c {
            for y in 0..h {
                for xx in 0..w {
                    if x[((img * c + ch) * h + y) * w + xx] != 0.0 {
                        out[img * plane + ((y + PAD) * wp + xx + PAD) * g8 + ch / 8] |=
                            1 << (ch % 8);
                    }
                }
            }
        }
    }
    out
}

/// `[n][c][h][w]` as `[n][h][w][c]`, or back with `inverse`.
fn nhwc(x: &[f32], n: usize, c: usize, hw: usize, inverse: bool) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for img in 0..n {
        for ch in 0..c {
            for p in 0..hw {
                let (a, b) = ((img * c + ch) * hw + p, (img * hw + p) * c + ch);
                if inverse {
                    out[a] = x[b];
                } else {
                    out[b] = x[a];
                }
            }
        }
    }
    out
}

/// `[n][c][h][w]` into padded `[n][h + 2 PAD][w + 2 PAD][c]` planes, channels at `offset` of
/// `stride`.
fn padded_of(
    x: &[f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    stride: usize,
    offset: usize,
) -> Vec<f32> {
    let wp = w + 2 * PAD;
    let plane = (h + 2 * PAD) * wp * stride;
    let mut out = vec![0.0; n * plane];
    for img in 0..n {
        for ch in 0..c {
            for y in 0..h {
                for xx in 0..w {
                    out[img * plane + ((y + PAD) * wp + xx + PAD) * stride + offset + ch] =
                        x[((img * c + ch) * h + y) * w + xx];
                }
            }
        }
    }
    out
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

/// `|fast - reference| <= 1e-5 * (1 + magnitude)` element by element.
fn assert_close(what: &str, fast: &[f32], reference: &[f32], magnitude: &[f32]) {
    assert_eq!(fast.len(), reference.len(), "{what}: lengths");
    for i in 0..fast.len() {
        let tol = 1e-5 * (1.0 + magnitude[i]);
        assert!(
            (fast[i] - reference[i]).abs() <= tol,
            "{what}[{i}]: fast {} reference {} (tol {tol:e})",
            fast[i],
            reference[i]
        );
    }
}

/// Runs the lookup-table convolution of NCHW spikes `x` into NCHW output.
fn lut_forward(x: &[f32], w: &[f32], s: &ConvShape) -> Vec<f32> {
    let planes = planes_of(x, s.n, s.cin, s.h, s.w);
    let lut = Lut::build(w, s, Vec::new());
    let taps = Taps::forward(s);
    let (hwo, g8) = (s.out_h() * s.out_w(), groups8(s.cin));
    let plane = planes.len() / s.n;
    // Written into a wider tensor at an offset, as into a concatenation.
    let (stride, offset) = (s.cout + 3, 2);
    let mut out = vec![f32::NAN; s.n * hwo * stride];
    let o = OutImage {
        stride,
        offset,
        channels: s.cout,
    };
    for img in 0..s.n {
        lut_conv_image(
            &planes[img * plane..(img + 1) * plane],
            g8,
            &lut,
            &taps,
            &mut out[img * hwo * stride..(img + 1) * hwo * stride],
            o,
        );
    }
    let mut y = vec![0.0; s.out_len()];
    for img in 0..s.n {
        for q in 0..hwo {
            for ch in 0..s.cout {
                y[(img * s.cout + ch) * hwo + q] = out[(img * hwo + q) * stride + offset + ch];
            }
        }
    }
    y
}

#[test]
fn lookup_table_convolutions_match_the_direct_loops() {
    let mut r = rng(1);
    for s in shapes() {
        for rate in [0.05, 0.3, 0.9] {
            let x = spikes(&mut r, s.in_len(), rate);
            let w = uniform(&mut r, s.weight_len());
            let got = lut_forward(&x, &w, &s);
            let (mut want, mut mag) = (vec![0.0; s.out_len()], vec![0.0; s.out_len()]);
            ref_conv(&x, &w, &s, &mut want);
            ref_conv(&x, &abs(&w), &s, &mut mag);
            assert_close(&format!("{s:?} rate {rate}"), &got, &want, &mag);
        }
    }
}

#[test]
fn direct_convolution_matches_the_direct_loops() {
    let mut r = rng(2);
    for cin in [1usize, 2, 3] {
        for &(h, w, cout, k) in &[
            (8usize, 8usize, 24usize, 3usize),
            (5, 7, 6, 3),
            (6, 6, 40, 5),
        ] {
            let s = ConvShape {
                n: 3,
                cin,
                h,
                w,
                cout,
                k,
                stride: 1,
                shift: false,
            };
            let x = uniform(&mut r, s.in_len());
            let wv = uniform(&mut r, s.weight_len());
            let planes = padded_of(&x, s.n, cin, h, w, cin, 0);
            let plane = planes.len() / s.n;
            let (wt, coutp) = direct_weights(&wv, &s, false);
            let taps = Taps::forward(&s);
            let hw = h * w;
            let mut out = vec![0.0; s.n * hw * cout];
            let o = OutImage {
                stride: cout,
                offset: 0,
                channels: cout,
            };
            for img in 0..s.n {
                let x = InPlane {
                    data: &planes[img * plane..(img + 1) * plane],
                    stride: cin,
                    offset: 0,
                    channels: cin,
                };
                direct_conv_image(
                    x,
                    &wt,
                    coutp,
                    &taps,
                    &mut out[img * hw * cout..][..hw * cout],
                    o,
                );
            }
            let got = nhwc(&out, s.n, cout, hw, true);
            let (mut want, mut mag) = (vec![0.0; s.out_len()], vec![0.0; s.out_len()]);
            ref_conv(&x, &wv, &s, &mut want);
            ref_conv(&abs(&x), &abs(&wv), &s, &mut mag);
            assert_close(&format!("{s:?}"), &got, &want, &mag);
        }
    }
}

/// The output gradient of `s` as padded planes inside a wider tensor (channels at offset 1 of
/// cout + 2), and its description.
fn padded_grad(gy: &[f32], s: &ConvShape) -> (Vec<f32>, usize, usize, usize) {
    let (stride, offset) = (s.cout + 2, 1);
    let g = padded_of(gy, s.n, s.cout, s.out_h(), s.out_w(), stride, offset);
    let image_len = g.len() / s.n;
    (g, image_len, stride, offset)
}

#[test]
fn weight_gradients_match_the_direct_loops() {
    let mut r = rng(3);
    for s in shapes() {
        let x = spikes(&mut r, s.in_len(), 0.3);
        let gy = uniform(&mut r, s.out_len());
        let (g, image_len, stride, offset) = padded_grad(&gy, &s);
        let pixels = padded_pixels(s.out_h(), s.out_w());
        let grad = GradOut {
            data: &g,
            image_len,
            pixels: &pixels,
            stride,
            offset,
        };
        let (mut want, mut mag) = (vec![0.0; s.weight_len()], vec![0.0; s.weight_len()]);
        ref_bwd_weight(&x, &gy, &s, &mut want);
        ref_bwd_weight(&x, &abs(&gy), &s, &mut mag);
        let taps = Taps::forward(&s);
        let planes = planes_of(&x, s.n, s.cin, s.h, s.w);
        let mut got = vec![7.0; s.weight_len()];
        bucket_weight_gradient(&planes, &s, &taps, grad, &mut got);
        assert_close(&format!("buckets {s:?}"), &got, &want, &mag);
        // The stem's dense kernel on the same (0/1, so exactly representable) input.
        let dense = padded_of(&x, s.n, s.cin, s.h, s.w, s.cin, 0);
        let mut got = vec![7.0; s.weight_len()];
        dense_weight_gradient(&dense, dense.len() / s.n, s.cin, &s, &taps, grad, &mut got);
        assert_close(&format!("dense {s:?}"), &got, &want, &mag);
    }
}

#[test]
fn input_gradients_match_the_direct_loops() {
    let mut r = rng(4);
    for s in shapes() {
        let w = uniform(&mut r, s.weight_len());
        let gy = uniform(&mut r, s.out_len());
        let (g, image_len, stride, offset) = padded_grad(&gy, &s);
        let pixels = padded_pixels(s.out_h(), s.out_w());
        let grad = GradOut {
            data: &g,
            image_len,
            pixels: &pixels,
            stride,
            offset,
        };
        let (mut want, mut mag) = (vec![0.0; s.in_len()], vec![0.0; s.in_len()]);
        ref_bwd_input(&gy, &w, &s, &mut want);
        ref_bwd_input(&abs(&gy), &abs(&w), &s, &mut mag);
        let in_img = s.h * s.w * s.cin;
        let o = OutImage {
            stride: s.cin,
            offset: 0,
            channels: s.cin,
        };
        let mut got = vec![7.0; s.n * in_img];
        // The strided kernel on every shape; the gather through the flipped kernel where the
        // executor uses it (stride 1, no shift).
        let (wt, cinp) = scatter_weights(&w, &s);
        let taps = Taps::forward(&s);
        let mut gxp = vec![0.0; (s.h + 2 * PAD) * (s.w + 2 * PAD) * cinp];
        for img in 0..s.n {
            scatter_input_gradient_image(
                &g[img * image_len..(img + 1) * image_len],
                grad,
                &s,
                &taps,
                &wt,
                cinp,
                &mut gxp,
                &mut got[img * in_img..(img + 1) * in_img],
            );
        }
        let scattered = nhwc(&got, s.n, s.cin, s.h * s.w, true);
        assert_close(&format!("scatter {s:?}"), &scattered, &want, &mag);
        if s.stride == 1 && !s.shift {
            let bt = Taps::input_gradient(&s);
            let (wt, cinp) = direct_weights(&w, &s, true);
            for img in 0..s.n {
                let plane = InPlane {
                    data: &g[img * image_len..(img + 1) * image_len],
                    stride,
                    offset,
                    channels: s.cout,
                };
                direct_conv_image(plane, &wt, cinp, &bt, &mut got[img * in_img..][..in_img], o);
            }
            let gathered = nhwc(&got, s.n, s.cin, s.h * s.w, true);
            assert_close(&format!("gather {s:?}"), &gathered, &want, &mag);
        }
    }
}

#[test]
fn lif_spikes_and_membranes_equal_the_reference() {
    let mut r = rng(5);
    for &(t, b, h, w, c) in &[
        (4usize, 3usize, 4usize, 5usize, 8usize),
        (3, 2, 3, 3, 13),
        (2, 1, 1, 1, 4),
    ] {
        let (hw, n) = (h * w, t * b);
        let x_nchw: Vec<f32> = (0..n * c * hw)
            .map(|_| r.random::<f32>() * 1.5 - 0.25)
            .collect();
        // Through a batch-norm view with gates, as the executor reads it.
        let scale: Vec<f32> = (0..c).map(|i| 0.5 + i as f32 * 0.1).collect();
        let shift: Vec<f32> = (0..c).map(|i| i as f32 * 0.03 - 0.1).collect();
        for gate in [Gate::None, Gate::Excitatory, Gate::Inhibitory] {
            let x = nhwc(&x_nchw, n, c, hw, false);
            let view = ops::View {
                data: &x,
                hw,
                c,
                stride: c,
                offset: 0,
                affine: Some(ops::Affine {
                    scale: &scale,
                    shift: &shift,
                    gate,
                }),
            };
            let plane = (h + 2 * PAD) * (w + 2 * PAD) * groups8(c);
            let mut planes = vec![0u8; n * plane];
            let mut counts = vec![0u32; n];
            let mut v_pre = vec![0.0f32; n * hw * c];
            let p = crate::cpu::LifParams::default();
            ops::lif(
                &view,
                t,
                b,
                h,
                w,
                p,
                ops::LifOut {
                    planes: &mut planes,
                    counts: &mut counts,
                    v_pre: Some(&mut v_pre),
                },
            );
            // The reference on the same applied values, NCHW.
            let applied: Vec<f32> = x_nchw
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let ch = (i / hw) % c;
                    gate.apply(v * scale[ch] + shift[ch])
                })
                .collect();
            let (mut s_ref, mut v_ref) = (vec![0.0; applied.len()], vec![0.0; applied.len()]);
            crate::cpu::lif_membrane(&applied, t, b * c * hw, p, &mut s_ref, &mut v_ref);
            assert_eq!(
                planes,
                planes_of(&s_ref, n, c, h, w),
                "spike planes {gate:?}"
            );
            assert_eq!(
                nhwc(&v_pre, n, c, hw, true),
                v_ref,
                "membranes {gate:?} (bit for bit)"
            );
            for img in 0..n {
                let want = s_ref[img * c * hw..(img + 1) * c * hw]
                    .iter()
                    .filter(|&&s| s != 0.0)
                    .count();
                assert_eq!(counts[img] as usize, want, "count of image {img}");
            }
            // Packed rows: the plan's order equals the reference packing; the engine's own
            // order gives the same population statistics.
            let plan_rows = ops::pack_rows_plan(&planes, n, h, w, c);
            assert_eq!(plan_rows, crate::cpu::pack_spikes(&s_ref, t, b, c * hw));
            let stats = |data: Vec<u32>| {
                population_stats(&PopulationSpikes {
                    name: "p".into(),
                    neurons: c * hw,
                    t,
                    b,
                    data,
                })
            };
            assert_eq!(
                stats(plan_rows),
                stats(ops::pack_rows_nhwc(&planes, n, h, w, c))
            );
        }
    }
}

#[test]
fn lif_backward_equals_the_reference_for_every_surrogate() {
    use crate::cpu::grad::{lif_backward as reference, Surrogate};
    let mut r = rng(6);
    let (t, n) = (4usize, 5000usize); // more neurons than one task takes
    let gs: Vec<f32> = (0..t * n).map(|_| r.random::<f32>() * 2.0 - 1.0).collect();
    let v_pre: Vec<f32> = (0..t * n).map(|_| r.random::<f32>() * 1.6 - 0.3).collect();
    let p = crate::cpu::LifParams::default();
    for sg in [
        Surrogate::Triangle { alpha: 2.0 },
        Surrogate::Sigmoid { alpha: 4.0 },
        Surrogate::Atan { alpha: 2.0 },
        Surrogate::Triangle { alpha: 3.5 },
    ] {
        let mut want = vec![0.0; t * n];
        reference(&gs, &v_pre, t, n, p, sg, &mut want);
        let mut got = vec![7.0; t * n];
        ops::lif_backward(&gs, &v_pre, t, p, sg, &mut got);
        assert_eq!(got, want, "{sg:?}: the same f32 operations, bit for bit");
    }
}

fn spec(h: usize) -> DataSpec {
    DataSpec {
        in_ch: 1,
        height: h,
        width: h,
        classes: 5,
        timesteps: 3,
        event: false,
    }
}

/// Sampled genomes of both micro variants and k, plus one all-motif genome per motif.
fn genomes() -> Vec<Genome> {
    let mut v = Vec::new();
    for seed in 0..6u64 {
        let mut space = SearchSpace::default();
        if seed % 2 == 1 {
            space.micro = MicroVariant::Full;
        }
        v.push(space.sample(&mut rng(seed)));
    }
    for m in motifs::REGISTRY {
        v.push(Genome {
            layout: "NRN".into(),
            micro: MicroVariant::Full,
            k: 3,
            cells: vec![
                CellGene {
                    motif: m.id,
                    sources: vec![1, 2, 3],
                    ops: (0..12).map(|i| (i % 4) as u8).collect(),
                };
                2
            ],
        });
    }
    v
}

fn input(len: usize, seed: u64) -> Vec<f32> {
    let mut r = rng(seed);
    (0..len).map(|_| r.random::<f32>()).collect()
}

/// Spikes that differ between the fast and the reference forward pass, over all populations.
fn flips(a: &[u64], b: &[u64]) -> u64 {
    a.iter().zip(b).map(|(&x, &y)| x.abs_diff(y)).sum()
}

#[test]
fn whole_networks_forward_like_the_reference() {
    let mut total_flips = 0u64;
    let mut total_spikes = 0u64;
    for (gi, g) in genomes().iter().enumerate() {
        for &(h, width, rk) in &[(8usize, 4usize, 1usize), (9, 8, 3), (12, 6, 1)] {
            let plan = crate::plan::Plan::compile(g, &spec(h), width, rk).unwrap();
            assert!(supports(&plan), "{}", plan.key);
            let params = init_params(&plan, gi as u64);
            let (t, b) = (3, 4);
            let x = input(b * h * h, gi as u64);
            let mut o = crate::cpu::ForwardOptions::new(t, b);
            o.record_spikes = true;
            o.kernels = Kernels::Reference;
            let want = executor::forward(&plan, &params, &x, &o);
            o.kernels = Kernels::Fast;
            let got = executor::forward(&plan, &params, &x, &o);
            let f = flips(&got.spike_counts, &want.spike_counts);
            total_flips += f;
            total_spikes += want.spike_counts.iter().sum::<u64>();
            if f == 0 && got.spikes == want.spikes {
                // The same spikes: the logits depend on nothing else.
                assert_eq!(got.logits, want.logits, "{} h {h}", plan.key);
                assert_eq!(got.logits_per_step, want.logits_per_step);
            }
            for (l, ((gm, gv), (wm, wv))) in got
                .bn_batch_stats
                .iter()
                .zip(&want.bn_batch_stats)
                .enumerate()
            {
                if f == 0 {
                    for c in 0..gm.len() {
                        let tol = 1e-4 * (1.0 + wm[c].abs() + wv[c]);
                        assert!(
                            (gm[c] - wm[c]).abs() <= tol && (gv[c] - wv[c]).abs() <= tol,
                            "{} bn {l} channel {c}: mean {} vs {}, var {} vs {}",
                            plan.key,
                            gm[c],
                            wm[c],
                            gv[c],
                            wv[c]
                        );
                    }
                }
            }
            // Evaluation mode: running statistics.
            let mut running = BnRunning::new(&plan);
            for (i, (m, v)) in want.bn_batch_stats.iter().enumerate() {
                running.mean[i] = m.clone();
                running.var[i] = v.iter().map(|v| v + 0.01).collect();
            }
            let mut o = crate::cpu::ForwardOptions::new(t, b);
            o.bn = BnMode::Running(&running);
            o.kernels = Kernels::Reference;
            let want = executor::forward(&plan, &params, &x, &o);
            o.kernels = Kernels::Fast;
            let got = executor::forward(&plan, &params, &x, &o);
            let f = flips(&got.spike_counts, &want.spike_counts);
            total_flips += f;
            if f == 0 {
                assert_eq!(got.logits, want.logits, "running {} h {h}", plan.key);
            }
        }
    }
    // A membrane within a rounding error of the threshold may spike on one path only.
    assert!(
        total_flips * 10_000 <= total_spikes,
        "{total_flips} spikes of {total_spikes} differ"
    );
}

#[test]
fn whole_network_gradients_match_the_reference() {
    let mut compared = 0;
    for (gi, g) in genomes().iter().enumerate() {
        for &(h, width, rk) in &[(8usize, 4usize, 1usize), (9, 8, 3)] {
            let plan = crate::plan::Plan::compile(g, &spec(h), width, rk).unwrap();
            let params = init_params(&plan, 100 + gi as u64);
            let (t, b) = (3, 5);
            let x = input(t * b * h * h, 7 + gi as u64);
            let labels: Vec<u16> = (0..b as u16).map(|i| i % 5).collect();
            let lif = crate::cpu::LifParams::default();
            let reference = backprop::forward_tape(
                &plan,
                &params,
                &x,
                t,
                b,
                lif,
                1e-5,
                backprop::Hooks::default(),
            );
            let fast = forward_tape(&plan, &params, &x, t, b, lif, 1e-5);
            if fast.spike_counts() != reference.spike_counts.as_slice() {
                continue; // a spike flipped: the gradients are of different functions
            }
            assert_eq!(fast.logits(), reference.logits(&plan));
            let (_, gl) = softmax_cross_entropy(fast.logits(), &labels, 5, 0.1);
            let sg = crate::cpu::grad::Surrogate::default();
            let want = backprop::backward(&plan, &params, reference, &gl, lif, sg, 1e-5);
            let got = backward(&plan, &params, fast, &gl, sg);
            for p in &plan.params {
                let r = p.offset..p.offset + p.len;
                let scale = want[r.clone()]
                    .iter()
                    .map(|v| v.abs())
                    .fold(0.0f32, f32::max);
                for i in r {
                    assert!(
                        (got[i] - want[i]).abs() <= 1e-4 * scale + 1e-7,
                        "{} {} [{}]: fast {} reference {} (largest {scale})",
                        plan.key,
                        p.name,
                        i - p.offset,
                        got[i],
                        want[i]
                    );
                }
            }
            compared += 1;
        }
    }
    assert!(
        compared >= 16,
        "only {compared} networks had identical spikes on both paths"
    );
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let g = SearchSpace::default().sample(&mut rng(3));
    let plan = crate::plan::Plan::compile(&g, &spec(8), 8, 1).unwrap();
    let params = init_params(&plan, 1);
    let (t, b) = (3, 20);
    let x = input(t * b * 64, 2);
    let labels: Vec<u16> = (0..b as u16).map(|i| i % 5).collect();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let tape = forward_tape(
                &plan,
                &params,
                &x,
                t,
                b,
                crate::cpu::LifParams::default(),
                1e-5,
            );
            let logits = tape.logits().to_vec();
            let (_, gl) = softmax_cross_entropy(&logits, &labels, 5, 0.0);
            let g = backward(&plan, &params, tape, &gl, Default::default());
            (logits, g.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
        })
    };
    assert_eq!(run(1), run(3));
}
