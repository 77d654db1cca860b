//! The training kernels (`gpu::kernels::grad`) against their CPU twins (`cpu::grad`,
//! `cpu::lif_membrane`, `train::optim::AdamW`, `cpu::bn_update_running`), on every backend that
//! offers compute here (the one `WGPU_BACKEND` picks, e.g. Vulkan on lavapipe, and GL).
//!
//! Bit-exact: copies and broadcasts, the LIF forward and its triangle-surrogate backward, the
//! convolution input gradient, the linear gradients, accumulation, the running statistics.
//! Within a stated tolerance (measured maxima are printed): sums the GPU reduces by a tree in f32
//! where the CPU runs f64 or another order (convolution weight gradient, batch norm, losses), and
//! values through WGSL's `exp`, `log`, division and `sqrt`.
//!
//! No adapter: with `CI` set the tests fail; otherwise they print a skip message and pass.

#[macro_use]
mod common;

use common::{run, uniform, Backend};
use msenas::cpu;
use msenas::cpu::grad::{self as cgrad, Surrogate};
use msenas::gpu::kernels::grad;
use msenas::gpu::{GpuContext, Recorder, View};

// ---------------------------------------------------------------- harness

fn up(ctx: &GpuContext, data: &[f32]) -> wgpu::Buffer {
    ctx.upload("in", data).unwrap()
}

/// An output buffer of `len` elements after `pad` elements of NaN, so a kernel that ignores the
/// view's offset or writes past its end shows up.
fn out_buf(ctx: &GpuContext, pad: usize, len: usize) -> wgpu::Buffer {
    ctx.upload("out", &vec![f32::NAN; pad + len + pad]).unwrap()
}

fn read(ctx: &GpuContext, buf: &wgpu::Buffer, pad: usize, len: usize) -> Vec<f32> {
    let all: Vec<f32> = ctx
        .read(View::new(buf, 0, 2 * pad + len))
        .expect("read back");
    for (i, v) in all[..pad].iter().chain(&all[pad + len..]).enumerate() {
        assert!(v.is_nan(), "padding element {i} was overwritten with {v}");
    }
    all[pad..pad + len].to_vec()
}

fn submit(rec: Recorder<'_>) {
    rec.submit().expect("submit");
}

/// Bit-for-bit equality (so -0 differs from +0 and NaNs must match).
fn assert_bits(what: &str, gpu: &[f32], cpu: &[f32]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
    for i in 0..gpu.len() {
        assert!(
            gpu[i].to_bits() == cpu[i].to_bits(),
            "{what}[{i}]: gpu {:e} ({:#010x}) cpu {:e} ({:#010x})",
            gpu[i],
            gpu[i].to_bits(),
            cpu[i],
            cpu[i].to_bits()
        );
    }
}

/// |g - c| <= atol + rtol * |scale| element by element; returns the largest |g - c| / (atol +
/// |scale|) seen (the error in units of the scale) after printing it.
fn assert_close(what: &str, gpu: &[f32], cpu: &[f32], scale: &[f32], rtol: f32, atol: f32) -> f32 {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
    assert_eq!(scale.len(), cpu.len(), "{what}: scale length");
    let mut worst = (0.0f32, 0.0f32, 0usize);
    for i in 0..gpu.len() {
        let err = (gpu[i] - cpu[i]).abs();
        let tol = atol + rtol * scale[i].abs();
        assert!(
            err <= tol,
            "{what}[{i}]: gpu {} cpu {} (|diff| {err:e} > tol {tol:e})",
            gpu[i],
            cpu[i]
        );
        let rel = err / (scale[i].abs() + atol);
        if rel > worst.1 || (rel == worst.1 && err > worst.0) {
            worst = (err, rel, i);
        }
    }
    eprintln!(
        "{what}: {} values, max |diff| {:e}, max |diff| / scale {:e} (at {})",
        gpu.len(),
        worst.0,
        worst.1,
        worst.2
    );
    worst.1
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

// ---------------------------------------------------------------- LIF

const SURROGATES: [Surrogate; 3] = [
    Surrogate::Triangle { alpha: 2.0 },
    Surrogate::Sigmoid { alpha: 4.0 },
    Surrogate::Atan { alpha: 2.0 },
];

fn lif_train(ctx: &GpuContext) {
    // (T, n): one neuron, below a workgroup, across workgroups.
    for (si, &(t, n)) in [(1, 1), (4, 37), (6, 300), (3, 64)].iter().enumerate() {
        for (pi, &(tau_inv, v_th)) in [(0.5f32, 0.5f32), (1.0 / 3.0, 0.7)].iter().enumerate() {
            let p = cpu::LifParams { tau_inv, v_th };
            let x = uniform(10 + si as u32 * 3 + pi as u32, t * n, -0.5, 2.0);
            let (mut s, mut v) = (vec![0.0; t * n], vec![0.0; t * n]);
            cpu::lif_membrane(&x, t, n, p, &mut s, &mut v);
            let xb = up(ctx, &x);
            let (sb, vb) = (out_buf(ctx, 3, t * n), out_buf(ctx, 5, t * n));
            let mut rec = Recorder::new(ctx);
            grad::lif_train(
                &mut rec,
                View::whole(&xb),
                t,
                n,
                p,
                View::new(&sb, 3, t * n),
                View::new(&vb, 5, t * n),
            )
            .unwrap();
            submit(rec);
            assert_bits("lif_train spikes", &read(ctx, &sb, 3, t * n), &s);
            assert_bits("lif_train v_pre", &read(ctx, &vb, 5, t * n), &v);
        }
    }
    eprintln!("lif_train: bit-exact");
}
on_backends!(lif_train);

fn lif_backward(ctx: &GpuContext) {
    let mut worst = [0.0f32; 3];
    for (si, &(t, n)) in [(1, 1), (4, 37), (6, 300)].iter().enumerate() {
        let p = cpu::LifParams {
            tau_inv: 0.5,
            v_th: 0.5,
        };
        let x = uniform(20 + si as u32, t * n, -0.5, 2.0);
        let (mut s, mut v) = (vec![0.0; t * n], vec![0.0; t * n]);
        cpu::lif_membrane(&x, t, n, p, &mut s, &mut v);
        let gs = uniform(30 + si as u32, t * n, -1.0, 1.0);
        let (gsb, vb) = (up(ctx, &gs), up(ctx, &v));
        for sg in SURROGATES {
            let mut want = vec![0.0; t * n];
            cgrad::lif_backward(&gs, &v, t, n, p, sg, &mut want);
            let gb = out_buf(ctx, 2, t * n);
            let mut rec = Recorder::new(ctx);
            grad::lif_backward(
                &mut rec,
                View::whole(&gsb),
                View::whole(&vb),
                t,
                n,
                p,
                sg,
                View::new(&gb, 2, t * n),
            )
            .unwrap();
            submit(rec);
            let got = read(ctx, &gb, 2, t * n);
            let what = format!("lif_backward {sg:?} T={t} n={n}");
            match sg {
                Surrogate::Triangle { .. } => assert_bits(&what, &got, &want),
                // exp and division: a few ulp per step, carried through T steps.
                _ => {
                    // Scale: the gradient with every term made positive, so cancellation
                    // does not hide the error budget.
                    let mut scale = vec![0.0; t * n];
                    cgrad::lif_backward(&abs(&gs), &v, t, n, p, sg, &mut scale);
                    let e = assert_close(&what, &got, &want, &scale, 1e-5, 1e-30);
                    let i = usize::from(matches!(sg, Surrogate::Atan { .. })) + 1;
                    worst[i] = worst[i].max(e);
                }
            }
        }
    }
    eprintln!(
        "lif_backward: triangle bit-exact; max |diff| / scale: sigmoid {:e}, atan {:e}",
        worst[1], worst[2]
    );
}
on_backends!(lif_backward);

// ---------------------------------------------------------------- convolution

fn conv_shapes() -> Vec<cpu::ConvShape> {
    let mut v = Vec::new();
    for k in [1, 3, 5] {
        for stride in [1, 2] {
            for shift in [false, true] {
                v.push(cpu::ConvShape {
                    n: 2,
                    cin: 3,
                    h: 7,
                    w: 6,
                    cout: 4,
                    k,
                    stride,
                    shift,
                });
            }
        }
    }
    // More output channels than one weight tile (128) for the input gradient; a plane larger
    // than one workgroup (64 pixels); more positions than threads for the weight gradient.
    v.push(cpu::ConvShape {
        n: 1,
        cin: 2,
        h: 3,
        w: 3,
        cout: 130,
        k: 3,
        stride: 1,
        shift: false,
    });
    v.push(cpu::ConvShape {
        n: 3,
        cin: 2,
        h: 9,
        w: 11,
        cout: 3,
        k: 5,
        stride: 1,
        shift: false,
    });
    v.push(cpu::ConvShape {
        n: 4,
        cin: 1,
        h: 10,
        w: 10,
        cout: 2,
        k: 3,
        stride: 2,
        shift: true,
    });
    // The tiled input gradient's edges: two 32-channel tiles with a ragged last one, pixel
    // tiles that cross images, K = cout * k * k in a ragged number of 16-deep chunks.
    v.push(cpu::ConvShape {
        n: 3,
        cin: 37,
        h: 5,
        w: 6,
        cout: 5,
        k: 3,
        stride: 1,
        shift: false,
    });
    v.push(cpu::ConvShape {
        n: 2,
        cin: 33,
        h: 7,
        w: 9,
        cout: 3,
        k: 5,
        stride: 2,
        shift: true,
    });
    v
}

/// The input-gradient launchers under test: the tiled implicit GEMM (what the trainer runs)
/// and the direct kernel (the benchmark's baseline).
type InputGrad =
    fn(&mut Recorder<'_>, View<'_>, View<'_>, &cpu::ConvShape, View<'_>) -> msenas::Result<()>;
const INPUT_GRADS: [(&str, InputGrad); 2] = [
    ("tiled", grad::conv2d_backward_input),
    ("direct", grad::conv2d_backward_input_direct),
];

fn conv_backward_input(ctx: &GpuContext) {
    for ((si, s), (name, launch)) in conv_shapes()
        .iter()
        .enumerate()
        .flat_map(|c| INPUT_GRADS.map(|l| (c, l)))
    {
        let gy = uniform(40 + si as u32, s.out_len(), -1.0, 1.0);
        let w = uniform(60 + si as u32, s.weight_len(), -0.5, 0.5);
        let mut want = vec![0.0; s.in_len()];
        cgrad::conv2d_backward_input(&gy, &w, s, &mut want);
        let (gyb, wb) = (up(ctx, &gy), up(ctx, &w));
        let gxb = out_buf(ctx, 7, s.in_len());
        let mut rec = Recorder::new(ctx);
        launch(
            &mut rec,
            View::whole(&gyb),
            View::whole(&wb),
            s,
            View::new(&gxb, 7, s.in_len()),
        )
        .unwrap();
        submit(rec);
        assert_bits(
            &format!("conv2d_backward_input {name} {s:?}"),
            &read(ctx, &gxb, 7, s.in_len()),
            &want,
        );
    }
    eprintln!("conv2d_backward_input: bit-exact");
}
on_backends!(conv_backward_input);

fn conv_backward_weight(ctx: &GpuContext) {
    let mut worst = 0.0f32;
    let mut shapes = conv_shapes();
    // 2,048 output positions: the tiled kernel cuts them into 8 slices when the scratch holds
    // them, and the 40 output channels take two channel tiles.
    shapes.push(cpu::ConvShape {
        n: 8,
        cin: 3,
        h: 16,
        w: 16,
        cout: 40,
        k: 3,
        stride: 1,
        shift: false,
    });
    let mut splits_seen = 0;
    for (si, s) in shapes.iter().enumerate() {
        let x = uniform(80 + si as u32, s.in_len(), -1.0, 1.0);
        let gy = uniform(90 + si as u32, s.out_len(), -1.0, 1.0);
        let mut want = vec![0.0; s.weight_len()];
        cgrad::conv2d_backward_weight(&x, &gy, s, &mut want);
        // Error scale per weight: the same sum over |terms|.
        let mut scale = vec![0.0; s.weight_len()];
        cgrad::conv2d_backward_weight(&abs(&x), &abs(&gy), s, &mut scale);
        let (xb, gyb) = (up(ctx, &x), up(ctx, &gy));
        let scratch = out_buf(ctx, 0, 64 * s.weight_len());
        // Tiled with room for slices (twice: the same bits), tiled in one slice, direct.
        let mut runs: Vec<Vec<f32>> = Vec::new();
        for variant in 0..4 {
            let gwb = out_buf(ctx, 4, s.weight_len());
            let gw = View::new(&gwb, 4, s.weight_len());
            let mut rec = Recorder::new(ctx);
            let (xv, gyv) = (View::whole(&xb), View::whole(&gyb));
            match variant {
                0 | 1 => {
                    grad::conv2d_backward_weight(&mut rec, xv, gyv, s, gw, View::whole(&scratch))
                }
                2 => grad::conv2d_backward_weight(
                    &mut rec,
                    xv,
                    gyv,
                    s,
                    gw,
                    View::new(&scratch, 0, 0),
                ),
                _ => grad::conv2d_backward_weight_direct(&mut rec, xv, gyv, s, gw),
            }
            .unwrap();
            let c0 = ctx.counters();
            submit(rec);
            let dispatches = ctx.counters().since(c0).dispatches;
            // More than 256 positions and room in the scratch: slices, then their sum.
            let sliced = variant < 2 && s.n * s.out_h() * s.out_w() > 256;
            assert_eq!(dispatches, if sliced { 2 } else { 1 }, "{variant} {s:?}");
            splits_seen += usize::from(sliced);
            let got = read(ctx, &gwb, 4, s.weight_len());
            // f32 sums of at most a few thousand terms in different orders: each within
            // ~(terms per thread + slices + tree depth) * eps of the |terms| sum, below 1e-5.
            worst = worst.max(assert_close(
                &format!("conv2d_backward_weight variant {variant} {s:?}"),
                &got,
                &want,
                &scale,
                1e-5,
                1e-30,
            ));
            runs.push(got);
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        assert_eq!(bits(&runs[0]), bits(&runs[1]), "split-K is deterministic");
    }
    assert!(splits_seen >= 4, "shapes cut into slices: {splits_seen}");
    eprintln!("conv2d_backward_weight: max |diff| / sum|terms| over all shapes {worst:e}");
}
on_backends!(conv_backward_weight);

// ---------------------------------------------------------------- batch norm

fn bn_backward(ctx: &GpuContext) {
    let gates = [
        cpu::Gate::None,
        cpu::Gate::Excitatory,
        cpu::Gate::Inhibitory,
    ];
    let eps = 1e-5f32;
    let mut worst = [0.0f32; 3];
    // (n images, c, hw): odd sizes, one value per channel, more values per channel than threads.
    for (si, &(n, c, hw)) in [(3, 5, 7), (6, 2, 49), (1, 1, 1), (2, 3, 300)]
        .iter()
        .enumerate()
    {
        let len = n * c * hw;
        let x = uniform(100 + si as u32, len, -2.0, 3.0);
        let gy = uniform(110 + si as u32, len, -1.0, 1.0);
        let gamma = uniform(120 + si as u32, c, 0.5, 1.5);
        let beta = uniform(130 + si as u32, c, -0.5, 0.5);
        let (mean, var) = cpu::bn_stats(&x, n, c, hw);
        for &gate in &gates {
            let mut y = vec![0.0; len];
            cpu::bn_apply(&x, n, c, hw, &mean, &var, &gamma, &beta, eps, gate, &mut y);
            let (mut gx, mut gg, mut gb) = (vec![0.0; len], vec![0.0; c], vec![0.0; c]);
            cgrad::bn_backward(
                &x, &y, &gy, n, c, hw, &mean, &var, &gamma, eps, gate, &mut gx, &mut gg, &mut gb,
            );
            // Error scales: the same sums over absolute values.
            let pass = |v: f32| match gate {
                cpu::Gate::None => true,
                cpu::Gate::Excitatory => v > 0.0,
                cpu::Gate::Inhibitory => v < 0.0,
            };
            let (mut sg, mut sgx) = (vec![0.0f64; c], vec![0.0f64; c]);
            let xh = |j: usize, ch: usize| (x[j] - mean[ch]) / (var[ch] + eps).sqrt();
            for j in 0..len {
                let ch = (j / hw) % c;
                if pass(y[j]) {
                    sg[ch] += f64::from(gy[j].abs());
                    sgx[ch] += f64::from((gy[j] * xh(j, ch)).abs());
                }
            }
            let count = (n * hw) as f64;
            let gx_scale: Vec<f32> = (0..len)
                .map(|j| {
                    let ch = (j / hw) % c;
                    let g = if pass(y[j]) { gy[j].abs() } else { 0.0 };
                    let sd = (var[ch] + eps).sqrt();
                    (f64::from(gamma[ch] / sd)
                        * (f64::from(g)
                            + sg[ch] / count
                            + f64::from(xh(j, ch).abs()) * sgx[ch] / count))
                        as f32
                })
                .collect();
            let (sg, sgx): (Vec<f32>, Vec<f32>) = (
                sg.iter().map(|&v| v as f32).collect(),
                sgx.iter().map(|&v| v as f32).collect(),
            );

            let (xb, yb, gyb, gmb) = (up(ctx, &x), up(ctx, &y), up(ctx, &gy), up(ctx, &gamma));
            // Statistics in one buffer (as bn_stats writes them) or in two.
            let stats = up(ctx, &[&[9.0][..], &mean, &var].concat());
            let (mb, vb) = (up(ctx, &mean), up(ctx, &var));
            for shared in [true, false] {
                let (mv, vv) = if shared {
                    (View::new(&stats, 1, c), View::new(&stats, 1 + c, c))
                } else {
                    (View::whole(&mb), View::whole(&vb))
                };
                let gxb = out_buf(ctx, 3, len);
                let grads = out_buf(ctx, 2, 2 * c);
                let (ggb, gbb) = (out_buf(ctx, 1, c), out_buf(ctx, 1, c));
                let (ggv, gbv) = if shared {
                    (View::new(&grads, 2 + c, c), View::new(&grads, 2, c))
                } else {
                    (View::new(&ggb, 1, c), View::new(&gbb, 1, c))
                };
                let mut rec = Recorder::new(ctx);
                grad::bn_backward(
                    &mut rec,
                    View::whole(&xb),
                    View::whole(&yb),
                    View::whole(&gyb),
                    n,
                    c,
                    hw,
                    mv,
                    vv,
                    View::whole(&gmb),
                    eps,
                    gate,
                    View::new(&gxb, 3, len),
                    ggv,
                    gbv,
                )
                .unwrap();
                submit(rec);
                let (got_gg, got_gb) = if shared {
                    let g = read(ctx, &grads, 2, 2 * c);
                    (g[c..].to_vec(), g[..c].to_vec())
                } else {
                    (read(ctx, &ggb, 1, c), read(ctx, &gbb, 1, c))
                };
                let what = format!("bn_backward {gate:?} n={n} c={c} hw={hw} shared={shared}");
                // f32 trees of at most 600 terms against the CPU's f64 sums, and WGSL's
                // division and sqrt: a few ulp of the absolute-value sums.
                worst[0] = worst[0].max(assert_close(
                    &format!("{what} gx"),
                    &read(ctx, &gxb, 3, len),
                    &gx,
                    &gx_scale,
                    2e-5,
                    1e-30,
                ));
                worst[1] = worst[1].max(assert_close(
                    &format!("{what} ggamma"),
                    &got_gg,
                    &gg,
                    &sgx,
                    2e-5,
                    1e-30,
                ));
                worst[2] = worst[2].max(assert_close(
                    &format!("{what} gbeta"),
                    &got_gb,
                    &gb,
                    &sg,
                    2e-5,
                    1e-30,
                ));
            }
        }
    }
    eprintln!(
        "bn_backward: max |diff| / scale: gx {:e}, ggamma {:e}, gbeta {:e}",
        worst[0], worst[1], worst[2]
    );
}
on_backends!(bn_backward);

// ---------------------------------------------------------------- data movement, linear

fn concat_backward(ctx: &GpuContext) {
    for (si, &(n, hw, ref cs)) in [
        (2usize, 5usize, vec![3usize, 1, 4]),
        (3, 1, vec![1, 2]),
        (1, 300, vec![2]),
    ]
    .iter()
    .enumerate()
    {
        let c_total: usize = cs.iter().sum();
        let gy = uniform(140 + si as u32, n * c_total * hw, -1.0, 1.0);
        let want = cgrad::concat_backward(&gy, n, hw, cs);
        let gyb = up(ctx, &gy);
        let mut c_start = 0;
        for (part, &c) in cs.iter().enumerate() {
            let gxb = out_buf(ctx, 2, n * c * hw);
            let mut rec = Recorder::new(ctx);
            grad::concat_backward(
                &mut rec,
                View::whole(&gyb),
                n,
                hw,
                c_total,
                c_start,
                c,
                View::new(&gxb, 2, n * c * hw),
            )
            .unwrap();
            submit(rec);
            assert_bits(
                &format!("concat_backward n={n} hw={hw} {cs:?} part {part}"),
                &read(ctx, &gxb, 2, n * c * hw),
                &want[part],
            );
            c_start += c;
        }
    }
    eprintln!("concat_backward: bit-exact");
}
on_backends!(concat_backward);

fn broadcasts(ctx: &GpuContext) {
    // Pool: hw of 1, a power of two, and awkward divisors.
    for (si, &(n, c, hw)) in [(2, 3, 1), (2, 3, 16), (3, 2, 7), (1, 4, 49), (2, 1, 300)]
        .iter()
        .enumerate()
    {
        let gy = uniform(150 + si as u32, n * c, -3.0, 3.0);
        let mut want = vec![0.0; n * c * hw];
        cgrad::global_avg_pool_backward(&gy, n, c, hw, &mut want);
        let gyb = up(ctx, &gy);
        let gxb = out_buf(ctx, 1, n * c * hw);
        let mut rec = Recorder::new(ctx);
        grad::global_avg_pool_backward(
            &mut rec,
            View::whole(&gyb),
            n,
            c,
            hw,
            View::new(&gxb, 1, n * c * hw),
        )
        .unwrap();
        submit(rec);
        assert_bits(
            &format!("global_avg_pool_backward n={n} c={c} hw={hw}"),
            &read(ctx, &gxb, 1, n * c * hw),
            &want,
        );
    }
    for (si, &(t, m)) in [(1, 5), (3, 10), (4, 7), (5, 300), (6, 1)]
        .iter()
        .enumerate()
    {
        let gy = uniform(160 + si as u32, m, -3.0, 3.0);
        let mut want = vec![0.0; t * m];
        cgrad::mean_time_backward(&gy, t, m, &mut want);
        let gyb = up(ctx, &gy);
        let gxb = out_buf(ctx, 1, t * m);
        let mut rec = Recorder::new(ctx);
        grad::mean_time_backward(&mut rec, View::whole(&gyb), t, m, View::new(&gxb, 1, t * m))
            .unwrap();
        submit(rec);
        assert_bits(
            &format!("mean_time_backward T={t} m={m}"),
            &read(ctx, &gxb, 1, t * m),
            &want,
        );
    }
    eprintln!("global_avg_pool_backward, mean_time_backward: bit-exact");
}
on_backends!(broadcasts);

fn linear_backward(ctx: &GpuContext) {
    for (si, &(n, in_f, out_f)) in [(1, 1, 1), (4, 7, 3), (12, 33, 10), (300, 5, 2)]
        .iter()
        .enumerate()
    {
        let x = uniform(170 + si as u32, n * in_f, -1.0, 1.0);
        let gy = uniform(180 + si as u32, n * out_f, -1.0, 1.0);
        let w = uniform(190 + si as u32, out_f * in_f, -0.5, 0.5);
        let (mut gx, mut gw, mut gb) = (
            vec![0.0; n * in_f],
            vec![0.0; out_f * in_f],
            vec![0.0; out_f],
        );
        cgrad::linear_backward(&x, &gy, n, in_f, &w, out_f, Some(&mut gx), &mut gw, &mut gb);
        let (xb, gyb, wb) = (up(ctx, &x), up(ctx, &gy), up(ctx, &w));
        for with_gx in [true, false] {
            // gw and gb in one buffer, as in a gradient buffer laid out like the parameters.
            let grads = out_buf(ctx, 2, out_f * in_f + out_f);
            let gxb = out_buf(ctx, 3, n * in_f);
            let mut rec = Recorder::new(ctx);
            grad::linear_backward(
                &mut rec,
                View::whole(&xb),
                View::whole(&gyb),
                n,
                in_f,
                View::whole(&wb),
                out_f,
                with_gx.then(|| View::new(&gxb, 3, n * in_f)),
                View::new(&grads, 2, out_f * in_f),
                View::new(&grads, 2 + out_f * in_f, out_f),
            )
            .unwrap();
            submit(rec);
            let what = format!("linear_backward n={n} in={in_f} out={out_f}");
            let g = read(ctx, &grads, 2, out_f * in_f + out_f);
            assert_bits(&format!("{what} gw"), &g[..out_f * in_f], &gw);
            assert_bits(&format!("{what} gb"), &g[out_f * in_f..], &gb);
            if with_gx {
                assert_bits(&format!("{what} gx"), &read(ctx, &gxb, 3, n * in_f), &gx);
            } else {
                // Without gx nothing is written there.
                let untouched: Vec<f32> = ctx.read(View::whole(&gxb)).unwrap();
                assert!(untouched.iter().all(|v| v.is_nan()), "{what}: gx written");
            }
        }
    }
    eprintln!("linear_backward: bit-exact");
}
on_backends!(linear_backward);

fn accumulate(ctx: &GpuContext) {
    for (si, &len) in [1usize, 37, 1000].iter().enumerate() {
        let acc = uniform(200 + si as u32, len, -1.0, 1.0);
        let x = uniform(210 + si as u32, len, -1.0, 1.0);
        let mut want = acc.clone();
        cpu::add_into(&mut want, &x);
        let accb = up(ctx, &[&[f32::NAN][..], &acc, &[f32::NAN]].concat());
        let xb = up(ctx, &x);
        let mut rec = Recorder::new(ctx);
        grad::accumulate(&mut rec, View::new(&accb, 1, len), View::whole(&xb)).unwrap();
        submit(rec);
        assert_bits(
            &format!("accumulate {len}"),
            &read(ctx, &accb, 1, len),
            &want,
        );
    }
    eprintln!("accumulate: bit-exact");
}
on_backends!(accumulate);

// ---------------------------------------------------------------- losses

fn upload_labels(ctx: &GpuContext, labels: &[u16]) -> wgpu::Buffer {
    let l: Vec<u32> = [7u32]
        .into_iter()
        .chain(labels.iter().map(|&l| u32::from(l)))
        .collect();
    ctx.upload("labels", &l).unwrap()
}

fn losses(ctx: &GpuContext) {
    let mut worst = [0.0f32; 4];
    // (B, K): one row, one class, K = 10, many rows.
    for (si, &(b, k)) in [(1, 1), (1, 10), (5, 10), (33, 3), (70, 100)]
        .iter()
        .enumerate()
    {
        // Logits around the scale of time-averaged outputs, plus some large ones.
        let mut logits = uniform(220 + si as u32, b * k, -3.0, 3.0);
        for (i, l) in logits.iter_mut().enumerate() {
            if i % 7 == 3 {
                *l *= 10.0;
            }
        }
        let labels: Vec<u16> = (0..b).map(|r| ((r * 7 + si) % k) as u16).collect();
        let (lb, labb) = (up(ctx, &logits), upload_labels(ctx, &labels));
        for smoothing in [0.0f32, 0.1] {
            let (want_loss, want_grad) =
                cgrad::softmax_cross_entropy(&logits, &labels, k, smoothing);
            // Per row: the CPU's loss of that row alone.
            let rows: Vec<f32> = (0..b)
                .map(|r| {
                    cgrad::softmax_cross_entropy(
                        &logits[r * k..(r + 1) * k],
                        &labels[r..r + 1],
                        k,
                        smoothing,
                    )
                    .0
                })
                .collect();
            let out = out_buf(ctx, 1, b + b * k);
            let mut rec = Recorder::new(ctx);
            grad::softmax_cross_entropy(
                &mut rec,
                View::whole(&lb),
                View::new(&labb, 1, b),
                b,
                k,
                smoothing,
                View::new(&out, 1, b),
                View::new(&out, 1 + b, b * k),
            )
            .unwrap();
            submit(rec);
            let got = read(ctx, &out, 1, b + b * k);
            let what = format!("softmax_cross_entropy B={b} K={k} smoothing={smoothing}");
            // f32 log-sum-exp against the CPU's f64: a few ulp of the logits' scale.
            let row_scale: Vec<f32> = (0..b)
                .map(|r| {
                    1.0 + logits[r * k..(r + 1) * k]
                        .iter()
                        .fold(0.0f32, |a, v| a.max(v.abs()))
                })
                .collect();
            worst[0] = worst[0].max(assert_close(
                &format!("{what} row loss"),
                &got[..b],
                &rows,
                &row_scale,
                2e-6,
                0.0,
            ));
            let mean = got[..b].iter().map(|&v| f64::from(v)).sum::<f64>() / b as f64;
            let mean_scale = row_scale.iter().map(|&v| f64::from(v)).sum::<f64>() / b as f64;
            worst[0] = worst[0].max(assert_close(
                &format!("{what} mean loss"),
                &[mean as f32],
                &[want_loss],
                &[mean_scale as f32],
                2e-6,
                0.0,
            ));
            // Gradient entries (p - q) / B: ulps of 1 / B.
            let gscale = vec![1.0 / b as f32; b * k];
            worst[1] = worst[1].max(assert_close(
                &format!("{what} grad"),
                &got[b..],
                &want_grad,
                &gscale,
                2e-6,
                0.0,
            ));
        }
        let (want_loss, want_grad) = cgrad::mse_rate_loss(&logits, &labels, k);
        let out = out_buf(ctx, 2, b + b * k);
        let mut rec = Recorder::new(ctx);
        grad::mse_rate_loss(
            &mut rec,
            View::whole(&lb),
            View::new(&labb, 1, b),
            b,
            k,
            View::new(&out, 2, b),
            View::new(&out, 2 + b, b * k),
        )
        .unwrap();
        submit(rec);
        let got = read(ctx, &out, 2, b + b * k);
        let what = format!("mse_rate_loss B={b} K={k}");
        let count = (b * k) as f64;
        let rows: Vec<f32> = (0..b)
            .map(|r| {
                (0..k)
                    .map(|j| {
                        let d = f64::from(logits[r * k + j])
                            - if labels[r] as usize == j { 1.0 } else { 0.0 };
                        d * d
                    })
                    .sum::<f64>()
                    / count
            })
            .map(|v| v as f32)
            .collect();
        worst[2] = worst[2].max(assert_close(
            &format!("{what} row loss"),
            &got[..b],
            &rows,
            &rows,
            1e-5,
            0.0,
        ));
        let total = got[..b].iter().map(|&v| f64::from(v)).sum::<f64>() as f32;
        worst[2] = worst[2].max(assert_close(
            &format!("{what} loss"),
            &[total],
            &[want_loss],
            &[want_loss],
            1e-5,
            0.0,
        ));
        worst[3] = worst[3].max(assert_close(
            &format!("{what} grad"),
            &got[b..],
            &want_grad,
            &want_grad,
            1e-6,
            1e-30,
        ));
    }
    eprintln!(
        "losses: max |diff| / scale: cross-entropy loss {:e}, grad {:e}; mse loss {:e}, grad {:e}",
        worst[0], worst[1], worst[2], worst[3]
    );
}
on_backends!(losses);

fn bad_label_gives_nan(ctx: &GpuContext) {
    let logits = uniform(230, 6, -1.0, 1.0);
    let (lb, labb) = (up(ctx, &logits), upload_labels(ctx, &[1, 3]));
    let out = out_buf(ctx, 0, 2 + 6);
    let mut rec = Recorder::new(ctx);
    grad::softmax_cross_entropy(
        &mut rec,
        View::whole(&lb),
        View::new(&labb, 1, 2),
        2,
        3,
        0.1,
        View::new(&out, 0, 2),
        View::new(&out, 2, 6),
    )
    .unwrap();
    submit(rec);
    let got: Vec<f32> = ctx.read(View::whole(&out)).unwrap();
    assert!(
        got[0].is_finite() && got[2..5].iter().all(|v| v.is_finite()),
        "{got:?}"
    );
    assert!(
        got[1].is_nan() && got[5..8].iter().all(|v| v.is_nan()),
        "{got:?}"
    );
}
on_backends!(bad_label_gives_nan);

// ---------------------------------------------------------------- optimiser

fn adamw(ctx: &GpuContext) {
    let mut worst = 0.0f32;
    for (si, &n) in [1usize, 37, 1000].iter().enumerate() {
        let params = uniform(240 + si as u32, n, -1.0, 1.0);
        let decay: Vec<bool> = (0..n).map(|i| i % 3 != 1).collect();
        let decay_u32: Vec<u32> = decay.iter().map(|&d| u32::from(d)).collect();
        for step in [1u64, 2, 10] {
            let lr = 0.01 / step as f32;
            let mut opt = msenas::train::optim::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.05,
                step: step - 1,
                // Moments as after earlier steps (zero before the first).
                m: if step == 1 {
                    vec![0.0; n]
                } else {
                    uniform(250 + si as u32, n, -0.1, 0.1)
                },
                v: if step == 1 {
                    vec![0.0; n]
                } else {
                    uniform(260 + si as u32, n, 0.0, 0.01)
                },
                decay: decay.clone(),
            };
            let g = uniform(270 + si as u32 + step as u32, n, -1.0, 1.0);
            let (m0, v0) = (opt.m.clone(), opt.v.clone());
            let mut want = params.clone();
            opt.update(&mut want, &g, lr);
            let h = grad::AdamHyper {
                lr,
                beta1: opt.beta1,
                beta2: opt.beta2,
                eps: opt.eps,
                weight_decay: opt.weight_decay,
                step,
            };
            // m and v in one buffer (an optimiser state slab) and apart.
            for shared in [true, false] {
                let pb = up(ctx, &[&[f32::NAN][..], &params, &[f32::NAN]].concat());
                let gb = up(ctx, &g);
                let db = ctx.upload("decay", &decay_u32).unwrap();
                let state = up(ctx, &[&[f32::NAN][..], &m0, &v0, &[f32::NAN]].concat());
                let (mb, vb) = (
                    up(ctx, &[&[f32::NAN][..], &m0, &[f32::NAN]].concat()),
                    up(ctx, &[&[f32::NAN][..], &v0, &[f32::NAN]].concat()),
                );
                let (mv, vv) = if shared {
                    (View::new(&state, 1, n), View::new(&state, 1 + n, n))
                } else {
                    (View::new(&mb, 1, n), View::new(&vb, 1, n))
                };
                let mut rec = Recorder::new(ctx);
                grad::adamw(
                    &mut rec,
                    View::new(&pb, 1, n),
                    View::whole(&gb),
                    mv,
                    vv,
                    View::whole(&db),
                    n,
                    h,
                )
                .unwrap();
                submit(rec);
                let what = format!("adamw n={n} step={step} shared={shared}");
                let (got_m, got_v) = if shared {
                    let s = read(ctx, &state, 1, 2 * n);
                    (s[..n].to_vec(), s[n..].to_vec())
                } else {
                    (read(ctx, &mb, 1, n), read(ctx, &vb, 1, n))
                };
                assert_bits(&format!("{what} m"), &got_m, &opt.m);
                assert_bits(&format!("{what} v"), &got_v, &opt.v);
                // The update goes through WGSL's division and sqrt: compare against the size of
                // the step taken (lr * |mhat / sqrt(vhat)| <= ~lr * 3 here) and of the weight.
                let got = read(ctx, &pb, 1, n);
                let scale: Vec<f32> = params
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| a.abs() + (a - b).abs())
                    .collect();
                worst = worst.max(assert_close(
                    &format!("{what} params"),
                    &got,
                    &want,
                    &scale,
                    1e-6,
                    0.0,
                ));
            }
        }
    }
    eprintln!("adamw: m, v bit-exact; params max |diff| / (|p| + |step|) {worst:e}");
}
on_backends!(adamw);

fn bn_update_running(ctx: &GpuContext) {
    for (si, &(c, count)) in [(1usize, 1usize), (5, 2), (70, 49)].iter().enumerate() {
        let rm = uniform(280 + si as u32, c, -1.0, 1.0);
        let rv = uniform(290 + si as u32, c, 0.5, 2.0);
        let mean = uniform(300 + si as u32, c, -1.0, 1.0);
        let var = uniform(310 + si as u32, c, 0.0, 3.0);
        for momentum in [0.1f32, 0.3] {
            let (mut wm, mut wv) = (rm.clone(), rv.clone());
            cpu::bn_update_running(&mut wm, &mut wv, &mean, &var, count, momentum);
            // Running stats in one buffer, batch stats in one buffer (as bn_stats writes them).
            let running = up(ctx, &[&[f32::NAN][..], &rm, &rv, &[f32::NAN]].concat());
            let batch = up(ctx, &[&mean[..], &var].concat());
            let mut rec = Recorder::new(ctx);
            grad::bn_update_running(
                &mut rec,
                View::new(&running, 1, c),
                View::new(&running, 1 + c, c),
                View::new(&batch, 0, c),
                View::new(&batch, c, c),
                c,
                count,
                momentum,
            )
            .unwrap();
            submit(rec);
            let got = read(ctx, &running, 1, 2 * c);
            let what = format!("bn_update_running c={c} count={count} momentum={momentum}");
            assert_bits(&format!("{what} mean"), &got[..c], &wm);
            assert_bits(&format!("{what} var"), &got[c..], &wv);
        }
    }
    eprintln!("bn_update_running: bit-exact");
}
on_backends!(bn_update_running);

// ---------------------------------------------------------------- launcher checks

fn launcher_errors(ctx: &GpuContext) {
    let a = ctx.storage("a", 64).unwrap();
    let b = ctx.storage("b", 64).unwrap();
    let mut rec = Recorder::new(ctx);
    // Reading and writing one buffer.
    let e = grad::mean_time_backward(&mut rec, View::new(&a, 0, 4), 2, 4, View::new(&a, 8, 8))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("grad::mean_time_backward") && e.contains("same buffer"),
        "{e}"
    );
    // A view too short.
    let e = grad::lif_backward(
        &mut rec,
        View::new(&a, 0, 10),
        View::new(&b, 0, 12),
        3,
        4,
        cpu::LifParams::default(),
        Surrogate::default(),
        View::new(&b, 12, 12),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("grad::lif_backward") && e.contains("grad_s"),
        "{e}"
    );
    // An unsupported kernel size.
    let s = cpu::ConvShape {
        n: 1,
        cin: 1,
        h: 3,
        w: 3,
        cout: 1,
        k: 2,
        stride: 1,
        shift: false,
    };
    let e = grad::conv2d_backward_input(
        &mut rec,
        View::new(&a, 0, 9),
        View::new(&a, 9, 4),
        &s,
        View::whole(&b),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("grad::conv2d_backward_input") && e.contains("k = 2"),
        "{e}"
    );
    // Channels outside gy.
    let e = grad::concat_backward(&mut rec, View::whole(&a), 1, 4, 4, 3, 2, View::whole(&b))
        .unwrap_err()
        .to_string();
    assert!(e.contains("grad::concat_backward"), "{e}");
    // Step 0 has no bias correction.
    let h = grad::AdamHyper {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        step: 0,
    };
    let c = ctx.storage("c", 64).unwrap();
    let d = ctx.storage("d", 64).unwrap();
    let e = grad::adamw(
        &mut rec,
        View::whole(&a),
        View::whole(&b),
        View::whole(&c),
        View::whole(&c),
        View::whole(&d),
        8,
        h,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("grad::adamw") && e.contains("step 0"), "{e}");
    assert!(rec.is_empty(), "a failed launch recorded work");
}
on_backends!(launcher_errors);
