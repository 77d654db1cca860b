//! Every WGSL kernel against its CPU twin, on every backend that offers compute here (the one
//! `WGPU_BACKEND` picks, e.g. Vulkan on lavapipe, and GL), plus shader translation checks.
//!
//! Comparisons: bit-exact for the weight generator, spike words, spiking-conv sums, popcounts and
//! counts; explicit tolerances for float sums (FMA contraction, f32 vs the CPU's f64 statistics,
//! WGSL's 2.5-ulp division and sqrt). LIF spikes may differ only where the CPU membrane lies
//! within float rounding of the threshold; those are counted, printed and bounded.
//!
//! No adapter: with `CI` set the tests fail; otherwise they print a skip message and pass.

#[macro_use]
mod common;

use common::{run, uniform, Backend};
use msenas::cpu;
use msenas::fitness::spikes::{population_stats, PopulationSpikes};
use msenas::gpu::kernels::{batchnorm, conv, elementwise, lif, rdm, reduce, rng, table};
use msenas::gpu::{DeviceChoice, GpuContext, Recorder, View};

// ---------------------------------------------------------------- harness

fn submit(rec: Recorder<'_>) {
    rec.submit().expect("submit");
}

fn read_f32(ctx: &GpuContext, buf: &wgpu::Buffer, len: usize) -> Vec<f32> {
    ctx.read::<f32>(View::new(buf, 0, len)).expect("read")
}

fn read_u32(ctx: &GpuContext, buf: &wgpu::Buffer, len: usize) -> Vec<u32> {
    ctx.read::<u32>(View::new(buf, 0, len)).expect("read")
}

/// |g - c| <= atol + rtol * scale, element by element; `scale` is per element (e.g. the sum of
/// absolute terms) or the value itself.
fn assert_close(what: &str, gpu: &[f32], cpu: &[f32], scale: &[f32], rtol: f32, atol: f32) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
    let mut worst = (0.0f32, 0usize);
    for i in 0..gpu.len() {
        let err = (gpu[i] - cpu[i]).abs();
        let tol = atol + rtol * scale[i].abs();
        assert!(
            err <= tol,
            "{what}[{i}]: gpu {} cpu {} (|diff| {err} > tol {tol})",
            gpu[i],
            cpu[i]
        );
        if err > worst.0 {
            worst = (err, i);
        }
    }
    eprintln!(
        "{what}: {} values, max |diff| {:e} at {}",
        gpu.len(),
        worst.0,
        worst.1
    );
}

// ---------------------------------------------------------------- shaders

#[test]
fn every_shader_validates_and_translates_to_msl_hlsl_glsl() {
    let mut failures = Vec::new();
    for f in table::SHADER_FILES {
        let module = match naga::front::wgsl::parse_str(f.source) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{}: {}", f.name, e.emit_to_string(f.source)));
                continue;
            }
        };
        let info = match naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        {
            Ok(i) => i,
            Err(e) => {
                failures.push(format!("{}: {}", f.name, e.emit_to_string(f.source)));
                continue;
            }
        };
        let msl = naga::back::msl::Options {
            lang_version: (2, 1),
            ..Default::default()
        };
        if let Err(e) = naga::back::msl::write_string(
            &module,
            &info,
            &msl,
            &naga::back::msl::PipelineOptions::default(),
        ) {
            failures.push(format!("{} -> MSL: {e}", f.name));
        }
        let hlsl_opts = naga::back::hlsl::Options::default();
        let hlsl_pipe = naga::back::hlsl::PipelineOptions { entry_point: None };
        let mut out = String::new();
        if let Err(e) = naga::back::hlsl::Writer::new(&mut out, &hlsl_opts, &hlsl_pipe)
            .write(&module, &info, None)
        {
            failures.push(format!("{} -> HLSL: {e}", f.name));
        }
        for ep in &module.entry_points {
            let opts = naga::back::glsl::Options {
                version: naga::back::glsl::Version::Embedded {
                    version: 310,
                    is_webgl: false,
                },
                ..Default::default()
            };
            let pipe = naga::back::glsl::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: ep.name.clone(),
                multiview: None,
            };
            let mut out = String::new();
            let res = naga::back::glsl::Writer::new(
                &mut out,
                &module,
                &info,
                &opts,
                &pipe,
                Default::default(),
            )
            .and_then(|mut w| w.write());
            if let Err(e) = res {
                failures.push(format!("{}::{} -> GLSL ES 3.1: {e}", f.name, ep.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} shader failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(!table::KERNELS.is_empty());
}

#[test]
fn kernel_table_fits_downlevel_limits() {
    for k in table::KERNELS {
        // 16 KiB of workgroup memory, 256 invocations, 4 storage buffers: every WebGPU device.
        assert!(
            k.workgroup_bytes <= 16_384,
            "{}: {} B of workgroup memory",
            k.label(),
            k.workgroup_bytes
        );
        assert!(k.invocations() <= 256, "{}", k.label());
        assert!(
            k.storage().count() <= 4,
            "{}: {} storage buffers",
            k.label(),
            k.storage().count()
        );
        let u = k
            .uniform()
            .unwrap_or_else(|| panic!("{}: no parameter uniform", k.label()));
        assert_eq!(u.binding, 0, "{}: parameters must be binding 0", k.label());
        assert!(u.size <= 256);
    }
}

// ---------------------------------------------------------------- rng

fn rng_fill(ctx: &GpuContext) {
    let cases: [(u32, u32, f32, usize); 4] = [
        (
            cpu::rng::stream(7, msenas::genome::fnv1a64(b"genome-a")),
            0,
            0.125,
            1000,
        ),
        (cpu::rng::stream(8, 99), 12_345, 1.0 / 3.0f32.sqrt(), 257),
        (0xdead_beef, u32::MAX - 10, 0.7, 33), // the index wraps past u32::MAX
        (1, 5, 1.0, 1),
    ];
    let buf = ctx.storage("rng", 2000).unwrap();
    for (stream, first, bound, len) in cases {
        let mut want = vec![0.0f32; len];
        cpu::rng::uniform_fill(stream, first, bound, &mut want);
        let mut rec = Recorder::new(ctx);
        rng::uniform_fill(&mut rec, stream, first, bound, View::new(&buf, 3, len)).unwrap();
        submit(rec);
        let got: Vec<f32> = ctx.read(View::new(&buf, 3, len)).unwrap();
        let gb: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
        let wb: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
        assert_eq!(gb, wb, "stream {stream:#x} first {first}");
    }
}
on_backends!(rng_fill);

// ---------------------------------------------------------------- lif

/// Compares GPU spikes with the CPU's; a mismatch is explained when the CPU membrane before
/// reset lies within `band` of the threshold at the neuron's first differing step (later steps
/// of that neuron follow from the different reset). Returns (explained, neurons).
fn spike_mismatches(
    x: &[f32],
    t: usize,
    n_all: usize,
    p: cpu::lif::LifParams,
    gpu: &[f32],
    cpu_s: &[f32],
) -> (usize, usize) {
    let mut s = vec![0.0; t * n_all];
    let mut v = vec![0.0; t * n_all];
    cpu::lif::lif_membrane(x, t, n_all, p, &mut s, &mut v);
    assert_eq!(s, cpu_s);
    let mut explained = 0;
    for j in 0..n_all {
        if let Some(step) = (0..t).find(|&k| gpu[k * n_all + j] != cpu_s[k * n_all + j]) {
            let vm = v[step * n_all + j];
            let band = 4.0 * f32::EPSILON * vm.abs().max(p.v_th.abs()).max(1.0);
            assert!(
                (vm - p.v_th).abs() <= band,
                "neuron {j} step {step}: spike differs with membrane {vm} far from threshold {}",
                p.v_th
            );
            explained += 1;
        }
    }
    (explained, n_all)
}

fn lif_spikes_and_words(ctx: &GpuContext) {
    // (T, B, N): N below a word, odd, across workgroups (> 256) and a whole number of words.
    let shapes = [(3, 2, 5), (4, 3, 37), (2, 2, 300), (5, 1, 64)];
    let taus = [0.5f32, 1.0 / 3.0];
    let mut total_near = 0;
    let mut total = 0;
    for (si, &(t, b, n)) in shapes.iter().enumerate() {
        for (ti, &tau_inv) in taus.iter().enumerate() {
            let p = cpu::lif::LifParams { tau_inv, v_th: 0.5 };
            let x = uniform(100 + si as u32 * 7 + ti as u32, t * b * n, -0.5, 2.0);
            let mut want = vec![0.0; t * b * n];
            cpu::lif::lif(&x, t, b * n, p, &mut want);
            let want_words = cpu::lif::pack_spikes(&want, t, b, n);
            let words = cpu::lif::words_per_row(n);

            let xb = ctx.upload("x", &x).unwrap();
            let sb = ctx.storage("s", t * b * n).unwrap();
            let wb = ctx.storage("w", t * b * words).unwrap();
            let mut rec = Recorder::new(ctx);
            lif::lif(
                &mut rec,
                View::whole(&xb),
                t,
                b,
                n,
                p,
                Some(View::whole(&sb)),
                View::whole(&wb),
                None,
            )
            .unwrap();
            submit(rec);
            let got = read_f32(ctx, &sb, t * b * n);
            let got_words = read_u32(ctx, &wb, t * b * words);
            // The words are exactly the packing of the GPU's own spikes...
            assert_eq!(
                got_words,
                cpu::lif::pack_spikes(&got, t, b, n),
                "words vs own spikes {t}x{b}x{n}"
            );
            // ...and the spikes equal the CPU's except near the threshold.
            let (near, neurons) = spike_mismatches(&x, t, b * n, p, &got, &want);
            if near == 0 {
                assert_eq!(got_words, want_words);
            }
            total_near += near;
            total += neurons;

            // Packed output and row counts only: same words, and each (t, sample) row's count
            // is the popcount of its words (the counts buffer holds garbage before: zeroed by
            // the call; it starts at an offset).
            let wb2 = ctx.storage("w2", t * b * words).unwrap();
            let cb = ctx.upload("counts", &vec![7u32; t * b + 3]).unwrap();
            let mut rec = Recorder::new(ctx);
            lif::lif(
                &mut rec,
                View::whole(&xb),
                t,
                b,
                n,
                p,
                None,
                View::whole(&wb2),
                Some(View::whole(&cb).slice(3, t * b)),
            )
            .unwrap();
            submit(rec);
            assert_eq!(read_u32(ctx, &wb2, t * b * words), got_words);
            let want_counts: Vec<u32> = got_words
                .chunks(words)
                .map(|row| row.iter().map(|w| w.count_ones()).sum())
                .collect();
            let got_counts = read_u32(ctx, &cb, t * b + 3);
            assert_eq!(got_counts[..3], [7, 7, 7], "outside the view");
            assert_eq!(got_counts[3..], want_counts[..], "counts {t}x{b}x{n}");
        }
    }
    eprintln!(
        "lif: {total_near} of {total} neurons differ from the CPU at a near-threshold membrane"
    );
    assert!(
        total_near * 100 <= total,
        "too many near-threshold mismatches: {total_near} of {total}"
    );
}
on_backends!(lif_spikes_and_words);

/// The fused batch norm + gate + LIF (`lif::lif_bn`) gives the same spike words, bit for bit,
/// as `batchnorm::bn_apply` then `lif::lif` on the device, for every gate.
fn lif_bn_equals_apply_then_lif(ctx: &GpuContext) {
    // (T, B, C, HW): channels across a workgroup of 256 neurons, and a ragged last word.
    for (si, &(t, b, c, hw)) in [(3, 2, 5, 7), (2, 3, 9, 49)].iter().enumerate() {
        let n = c * hw;
        let p = cpu::lif::LifParams {
            tau_inv: 0.5,
            v_th: 0.5,
        };
        let x = uniform(900 + si as u32, t * b * n, -2.0, 3.0);
        let (mean, var) = cpu::batchnorm::bn_stats(&x, t * b, c, hw);
        let mut stats = mean.clone();
        stats.extend(&var);
        let mut affine = uniform(910 + si as u32, c, 0.5, 1.5);
        affine.extend(uniform(920 + si as u32, c, -0.5, 0.5));
        let (xb, sb, ab) = (
            ctx.upload("x", &x).unwrap(),
            ctx.upload("stats", &stats).unwrap(),
            ctx.upload("affine", &affine).unwrap(),
        );
        let sv = View::whole(&sb);
        let av = View::whole(&ab);
        let words = cpu::lif::words_per_row(n);
        for gate in [
            cpu::batchnorm::Gate::None,
            cpu::batchnorm::Gate::Excitatory,
            cpu::batchnorm::Gate::Inhibitory,
        ] {
            let yb = ctx.storage("y", t * b * n).unwrap();
            let (w1, w2) = (
                ctx.storage("w1", t * b * words).unwrap(),
                ctx.storage("w2", t * b * words).unwrap(),
            );
            let mut rec = Recorder::new(ctx);
            batchnorm::bn_apply(
                &mut rec,
                View::whole(&xb),
                t * b,
                c,
                hw,
                sv.slice(0, c),
                sv.slice(c, c),
                av.slice(0, c),
                av.slice(c, c),
                1e-5,
                gate,
                View::whole(&yb),
            )
            .unwrap();
            lif::lif(
                &mut rec,
                View::whole(&yb),
                t,
                b,
                n,
                p,
                None,
                View::whole(&w1),
                None,
            )
            .unwrap();
            let bn = lif::BnInput {
                hw,
                mean: sv.slice(0, c),
                var: sv.slice(c, c),
                gamma: av.slice(0, c),
                beta: av.slice(c, c),
                eps: 1e-5,
                gate,
            };
            lif::lif_bn(&mut rec, View::whole(&xb), t, b, n, p, bn, View::whole(&w2)).unwrap();
            submit(rec);
            let (a, z) = (
                read_u32(ctx, &w1, t * b * words),
                read_u32(ctx, &w2, t * b * words),
            );
            // An inhibitory gate keeps every current at or below 0: no spikes at all.
            let silent = gate == cpu::batchnorm::Gate::Inhibitory;
            assert_eq!(a.iter().all(|&w| w == 0), silent, "{gate:?}");
            assert_eq!(a, z, "{gate:?} {t}x{b}x{c}x{hw}");
        }
    }
}
on_backends!(lif_bn_equals_apply_then_lif);

// ---------------------------------------------------------------- conv

fn conv_shapes() -> Vec<cpu::conv::ConvShape> {
    let mut v = Vec::new();
    for (k, stride, shift) in [
        (1, 1, false),
        (3, 1, false),
        (5, 1, false),
        (1, 2, false),
        (1, 2, true),
        (3, 2, true),
        (5, 2, false),
    ] {
        v.push(cpu::conv::ConvShape {
            n: 2,
            cin: 3,
            h: 7,
            w: 5,
            cout: 4,
            k,
            stride,
            shift,
        });
    }
    // More input channels than one weight tile (128), odd everything.
    v.push(cpu::conv::ConvShape {
        n: 1,
        cin: 130,
        h: 3,
        w: 3,
        cout: 2,
        k: 3,
        stride: 1,
        shift: false,
    });
    // An output plane larger than one workgroup (64 pixels).
    v.push(cpu::conv::ConvShape {
        n: 1,
        cin: 2,
        h: 9,
        w: 11,
        cout: 3,
        k: 3,
        stride: 1,
        shift: false,
    });
    // The tiled kernel's edges: two 32-channel tiles with a ragged last one, column tiles that
    // cross images and end ragged, K = 45 in three 16-wide chunks (the last partial).
    v.push(cpu::conv::ConvShape {
        n: 3,
        cin: 5,
        h: 6,
        w: 7,
        cout: 37,
        k: 3,
        stride: 1,
        shift: false,
    });
    v.push(cpu::conv::ConvShape {
        n: 2,
        cin: 3,
        h: 9,
        w: 8,
        cout: 65,
        k: 5,
        stride: 2,
        shift: true,
    });
    v
}

/// The convolution launchers under test: the tiled implicit GEMM (what the engine runs) and
/// the direct kernel (the benchmark's baseline).
type ConvLauncher = fn(
    &mut Recorder<'_>,
    View<'_>,
    View<'_>,
    &cpu::conv::ConvShape,
    View<'_>,
) -> msenas::Result<()>;
const DENSE_CONVS: [(&str, ConvLauncher); 2] =
    [("tiled", conv::conv2d), ("direct", conv::conv2d_direct)];
const SPIKING_CONVS: [(&str, ConvLauncher); 2] = [
    ("tiled", conv::conv2d_spiking),
    ("direct", conv::conv2d_spiking_direct),
];

/// Per output, the sum of |w * x| over its taps: the scale of its rounding error.
fn abs_conv(x: &[f32], w: &[f32], s: &cpu::conv::ConvShape) -> Vec<f32> {
    let xa: Vec<f32> = x.iter().map(|v| v.abs()).collect();
    let wa: Vec<f32> = w.iter().map(|v| v.abs()).collect();
    let mut out = vec![0.0; s.out_len()];
    cpu::conv::conv2d(&xa, &wa, s, &mut out);
    out
}

fn conv_dense(ctx: &GpuContext) {
    for ((si, s), (name, launch)) in conv_shapes()
        .iter()
        .enumerate()
        .flat_map(|c| DENSE_CONVS.map(|l| (c, l)))
    {
        let x = uniform(200 + si as u32, s.in_len(), -1.0, 1.0);
        let w = uniform(300 + si as u32, s.weight_len(), -0.5, 0.5);
        let mut want = vec![0.0; s.out_len()];
        cpu::conv::conv2d(&x, &w, s, &mut want);
        let (xb, wb) = (ctx.upload("x", &x).unwrap(), ctx.upload("w", &w).unwrap());
        let ob = ctx.storage("out", s.out_len() + 5).unwrap();
        let mut rec = Recorder::new(ctx);
        launch(
            &mut rec,
            View::whole(&xb),
            View::whole(&wb),
            s,
            View::new(&ob, 5, s.out_len()),
        )
        .unwrap();
        submit(rec);
        let got: Vec<f32> = ctx.read(View::new(&ob, 5, s.out_len())).unwrap();
        // Each term rounds once (twice without FMA): error <= ~2 eps * sum |w x| * taps-depth;
        // 1e-5 relative to the absolute sum is well above that and far below a wrong tap.
        assert_close(
            &format!("conv dense {name} {s:?}"),
            &got,
            &want,
            &abs_conv(&x, &w, s),
            1e-5,
            1e-7,
        );
    }
}
on_backends!(conv_dense);

fn conv_spiking(ctx: &GpuContext) {
    for ((si, s), (name, launch)) in conv_shapes()
        .iter()
        .enumerate()
        .flat_map(|c| SPIKING_CONVS.map(|l| (c, l)))
    {
        // ~30 % of inputs fire.
        let spikes: Vec<f32> = uniform(400 + si as u32, s.in_len(), 0.0, 1.0)
            .iter()
            .map(|&u| if u < 0.3 { 1.0 } else { 0.0 })
            .collect();
        let w = uniform(500 + si as u32, s.weight_len(), -0.5, 0.5);
        let mut want = vec![0.0; s.out_len()];
        cpu::conv::conv2d(&spikes, &w, s, &mut want);
        let packed = cpu::lif::pack_spikes(&spikes, 1, s.n, s.cin * s.h * s.w);
        let (pb, wb) = (
            ctx.upload("packed", &packed).unwrap(),
            ctx.upload("w", &w).unwrap(),
        );
        let ob = ctx.storage("out", s.out_len()).unwrap();
        let mut rec = Recorder::new(ctx);
        launch(
            &mut rec,
            View::whole(&pb),
            View::whole(&wb),
            s,
            View::whole(&ob),
        )
        .unwrap();
        submit(rec);
        let got = read_f32(ctx, &ob, s.out_len());
        let gb: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
        let wbits: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
        assert_eq!(gb, wbits, "spiking conv {name} {s:?} must be bit-exact");
    }
}
on_backends!(conv_spiking);

/// More than 65,535 column tiles: the tiled kernel's grid wraps its column tiles into z, and
/// every output still lands once (a 1x1 convolution of one 2,049 x 2,049 plane). On the primary
/// backend only: the grid is the host's arithmetic, and the plane is slow on GL.
#[test]
fn conv_grid_wraps() {
    run(Backend::Primary, "conv_grid_wraps", |ctx| {
        let s = cpu::conv::ConvShape {
            n: 1,
            cin: 1,
            h: 2049,
            w: 2049,
            cout: 2,
            k: 1,
            stride: 1,
            shift: false,
        };
        assert!(s.n * s.out_h() * s.out_w() > 65_535 * 64);
        let x = uniform(600, s.in_len(), -1.0, 1.0);
        let w = vec![0.5, -2.0];
        let mut want = vec![0.0; s.out_len()];
        cpu::conv::conv2d(&x, &w, &s, &mut want);
        let (xb, wb) = (ctx.upload("x", &x).unwrap(), ctx.upload("w", &w).unwrap());
        let ob = ctx.storage("out", s.out_len()).unwrap();
        let mut rec = Recorder::new(ctx);
        conv::conv2d(
            &mut rec,
            View::whole(&xb),
            View::whole(&wb),
            &s,
            View::whole(&ob),
        )
        .unwrap();
        submit(rec);
        // One product per output, scaled by a power of two: exact on both sides.
        assert_eq!(read_f32(ctx, &ob, s.out_len()), want);
    });
}

// ---------------------------------------------------------------- batch norm

fn batchnorm_stats_and_apply(ctx: &GpuContext) {
    // (n images, c, hw): odd sizes, one channel with more values than 256 threads, and
    // channels of 20,000 and 1,100,000 values, cut into 1 and 64 slices with a scratch.
    for (si, &(n, c, hw)) in [
        (3, 5, 7),
        (6, 2, 49),
        (1, 1, 1),
        (40, 3, 500),
        (1100, 2, 1000),
    ]
    .iter()
    .enumerate()
    {
        let x = uniform(600 + si as u32, n * c * hw, -2.0, 3.0);
        let (mean, var) = cpu::batchnorm::bn_stats(&x, n, c, hw);
        let xb = ctx.upload("x", &x).unwrap();
        let scratch = batchnorm::stats_scratch_len(c);
        let stats = ctx.storage("stats", 2 * c + 1 + scratch).unwrap();
        let mut results = Vec::new();
        // With the slices' scratch (twice: the same bits) and without (one slice).
        for room in [scratch, scratch, 0] {
            let mut rec = Recorder::new(ctx);
            batchnorm::bn_stats(
                &mut rec,
                View::whole(&xb),
                n,
                c,
                hw,
                View::new(&stats, 1, c),
                View::new(&stats, 1 + c, c),
                View::new(&stats, 1 + 2 * c, room),
            )
            .unwrap();
            let c0 = ctx.counters();
            submit(rec);
            let sliced = room > 0 && n * hw >= 2 * 16_384;
            assert_eq!(ctx.counters().since(c0).dispatches, 1 + u64::from(sliced));
            let st = read_f32(ctx, &stats, 2 * c + 1);
            let ones = vec![1.0; c];
            // f32 sums of n*hw values against the CPU's f64: relative 1e-5 of the data's
            // scale (3) for up to a few hundred terms per thread and slice.
            assert_close("bn mean", &st[1..1 + c], &mean, &ones, 3e-5, 1e-6);
            assert_close("bn var", &st[1 + c..], &var, &var, 1e-4, 1e-6);
            results.push(st.iter().map(|v| v.to_bits()).collect::<Vec<u32>>());
        }
        assert_eq!(results[0], results[1], "deterministic");

        // Normalise with the CPU's statistics so only the apply pass is compared.
        let gamma = uniform(700 + si as u32, c, 0.5, 1.5);
        let beta = uniform(800 + si as u32, c, -0.5, 0.5);
        let mut params = mean.clone();
        params.extend(&var);
        let mut affine = gamma.clone();
        affine.extend(&beta);
        let sb = ctx.upload("stats", &params).unwrap();
        let ab = ctx.upload("affine", &affine).unwrap();
        for gate in [
            cpu::batchnorm::Gate::None,
            cpu::batchnorm::Gate::Excitatory,
            cpu::batchnorm::Gate::Inhibitory,
        ] {
            let mut want = vec![0.0; x.len()];
            cpu::batchnorm::bn_apply(
                &x, n, c, hw, &mean, &var, &gamma, &beta, 1e-5, gate, &mut want,
            );
            let ob = ctx.storage("out", x.len()).unwrap();
            let mut rec = Recorder::new(ctx);
            batchnorm::bn_apply(
                &mut rec,
                View::whole(&xb),
                n,
                c,
                hw,
                View::new(&sb, 0, c),
                View::new(&sb, c, c),
                View::new(&ab, 0, c),
                View::new(&ab, c, c),
                1e-5,
                gate,
                View::whole(&ob),
            )
            .unwrap();
            submit(rec);
            let got = read_f32(ctx, &ob, x.len());
            // Division and sqrt are 2.5 ulp in WGSL: a few ulp of the output's magnitude.
            let scale: Vec<f32> = want.iter().map(|v| v.abs().max(1.0)).collect();
            assert_close(
                &format!("bn apply {gate:?}"),
                &got,
                &want,
                &scale,
                4e-6,
                0.0,
            );
        }
    }
}
on_backends!(batchnorm_stats_and_apply);

// ---------------------------------------------------------------- elementwise

fn elementwise_ops(ctx: &GpuContext) {
    // add_into: one rounding, exact.
    let a = uniform(900, 301, -1.0, 1.0);
    let b = uniform(901, 301, -1.0, 1.0);
    let mut want = a.clone();
    cpu::elementwise::add_into(&mut want, &b);
    let (ab, bb) = (ctx.upload("a", &a).unwrap(), ctx.upload("b", &b).unwrap());
    let mut rec = Recorder::new(ctx);
    elementwise::add_into(&mut rec, View::whole(&ab), View::whole(&bb)).unwrap();
    submit(rec);
    assert_eq!(read_f32(ctx, &ab, 301), want, "add_into");

    // concat: a copy, exact.
    let (n, hw) = (3, 5);
    let parts: Vec<(Vec<f32>, usize)> = [2usize, 1, 3]
        .iter()
        .enumerate()
        .map(|(i, &c)| (uniform(910 + i as u32, n * c * hw, -1.0, 1.0), c))
        .collect();
    let c_total: usize = parts.iter().map(|p| p.1).sum();
    let mut want = vec![0.0; n * c_total * hw];
    let cpu_parts: Vec<(&[f32], usize)> = parts.iter().map(|(d, c)| (d.as_slice(), *c)).collect();
    cpu::elementwise::concat_channels(&cpu_parts, n, hw, &mut want);
    let bufs: Vec<wgpu::Buffer> = parts
        .iter()
        .map(|(d, _)| ctx.upload("part", d).unwrap())
        .collect();
    let views: Vec<(View<'_>, usize)> = bufs
        .iter()
        .zip(&parts)
        .map(|(b, (_, c))| (View::whole(b), *c))
        .collect();
    let ob = ctx.storage("cat", want.len()).unwrap();
    let mut rec = Recorder::new(ctx);
    elementwise::concat_channels(&mut rec, &views, n, hw, View::whole(&ob)).unwrap();
    submit(rec);
    assert_eq!(read_f32(ctx, &ob, want.len()), want, "concat");

    // global average pool: the same sequential sum; the division may be off by 2.5 ulp.
    let (n, c, hw) = (4, 3, 13);
    let x = uniform(920, n * c * hw, -1.0, 1.0);
    let mut want = vec![0.0; n * c];
    cpu::elementwise::global_avg_pool(&x, n, c, hw, &mut want);
    let xb = ctx.upload("x", &x).unwrap();
    let ob = ctx.storage("pool", n * c).unwrap();
    let mut rec = Recorder::new(ctx);
    elementwise::global_avg_pool(&mut rec, View::whole(&xb), n, c, hw, View::whole(&ob)).unwrap();
    submit(rec);
    assert_close(
        "avg pool",
        &read_f32(ctx, &ob, n * c),
        &want,
        &vec![1.0; n * c],
        1e-6,
        0.0,
    );

    // linear: FMA contraction allowed; tolerance relative to the sum of |terms|.
    let (n, cin, k) = (5, 37, 10);
    let x = uniform(930, n * cin, -1.0, 1.0);
    let w = uniform(931, k * cin, -0.3, 0.3);
    let bias = uniform(932, k, -0.1, 0.1);
    let mut want = vec![0.0; n * k];
    cpu::elementwise::linear(&x, n, cin, &w, &bias, k, &mut want);
    let mut scale = vec![0.0; n * k];
    for r in 0..n {
        for o in 0..k {
            scale[r * k + o] = (0..cin)
                .map(|i| (x[r * cin + i] * w[o * cin + i]).abs())
                .sum::<f32>()
                + bias[o].abs();
        }
    }
    let (xb, wb, bb) = (
        ctx.upload("x", &x).unwrap(),
        ctx.upload("w", &w).unwrap(),
        ctx.upload("b", &bias).unwrap(),
    );
    let ob = ctx.storage("lin", n * k).unwrap();
    let mut rec = Recorder::new(ctx);
    elementwise::linear(
        &mut rec,
        View::whole(&xb),
        n,
        cin,
        View::whole(&wb),
        View::whole(&bb),
        k,
        View::whole(&ob),
    )
    .unwrap();
    submit(rec);
    assert_close(
        "linear",
        &read_f32(ctx, &ob, n * k),
        &want,
        &scale,
        1e-5,
        0.0,
    );

    // mean over time.
    let (t, m) = (3, 23);
    let x = uniform(940, t * m, -1.0, 1.0);
    let mut want = vec![0.0; m];
    cpu::elementwise::mean_time(&x, t, m, &mut want);
    let xb = ctx.upload("x", &x).unwrap();
    let ob = ctx.storage("mt", m).unwrap();
    let mut rec = Recorder::new(ctx);
    elementwise::mean_time(&mut rec, View::whole(&xb), t, m, View::whole(&ob)).unwrap();
    submit(rec);
    assert_close(
        "mean_time",
        &read_f32(ctx, &ob, m),
        &want,
        &vec![1.0; m],
        1e-6,
        0.0,
    );
}
on_backends!(elementwise_ops);

// ---------------------------------------------------------------- reduce

fn sum_squares(ctx: &GpuContext) {
    // One element, one partial; a partial workgroup; whole workgroups; more than 256 groups'
    // worth (every lane loops); an offset view.
    for (salt, &len) in [1usize, 255, 256, 257, 70_001, 300_000].iter().enumerate() {
        let x = uniform(960 + salt as u32, len + 3, -2.0, 2.0);
        let groups = cpu::elementwise::sum_squares_groups(len);
        let want = cpu::elementwise::sum_squares_partials(&x[3..], groups);
        let xb = ctx.upload("x", &x).unwrap();
        // Partials after two sentinel elements, which stay untouched.
        let ob = ctx.upload("partials", &vec![-1.0f32; groups + 2]).unwrap();
        let mut rec = Recorder::new(ctx);
        reduce::sum_squares(&mut rec, View::new(&xb, 3, len), View::new(&ob, 2, groups)).unwrap();
        submit(rec);
        let got = read_f32(ctx, &ob, groups + 2);
        assert_eq!(&got[..2], &[-1.0, -1.0], "sentinels");
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&got[2..]),
            bits(&want),
            "sum_squares partials, len {len}"
        );
    }
    // Too few partials: refused before recording.
    let xb = ctx.upload("x", &[1.0f32; 600]).unwrap();
    let ob = ctx.storage("partials", 2).unwrap();
    let mut rec = Recorder::new(ctx);
    let e = reduce::sum_squares(&mut rec, View::whole(&xb), View::whole(&ob))
        .unwrap_err()
        .to_string();
    assert!(e.contains("partials") && e.contains("needs 3"), "{e}");
}
on_backends!(sum_squares);

// ---------------------------------------------------------------- rdm

fn rdm_population_stats(ctx: &GpuContext) {
    // B above one 16-sample tile and odd; rows longer than one 64-word chunk; a 1-word row;
    // T^2 x words past the 65,535 loop iterations llvmpipe allows one invocation.
    for (ci, &(t, b, neurons)) in [(3, 19, 70 * 32 - 5), (2, 4, 7), (1, 33, 40), (10, 2, 49152)]
        .iter()
        .enumerate()
    {
        let spikes: Vec<f32> = uniform(1000 + ci as u32, t * b * neurons, 0.0, 1.0)
            .iter()
            .map(|&u| if u < 0.2 { 1.0 } else { 0.0 })
            .collect();
        let packed = cpu::lif::pack_spikes(&spikes, t, b, neurons);
        let pop = PopulationSpikes {
            name: "p".into(),
            neurons,
            t,
            b,
            data: packed.clone(),
        };
        let want = population_stats(&pop);
        let pb = ctx.upload("rec", &packed).unwrap();
        let hb = ctx.storage("ham", t * b * b).unwrap();
        let cb = ctx.storage("counts", t * b).unwrap();
        let db = ctx.storage("dots", b * b).unwrap();
        let views = rdm::StatsViews {
            hamming: View::whole(&hb),
            counts: View::whole(&cb),
            summed_dot: View::whole(&db),
        };
        for accumulate in [false, true] {
            let mut rec = Recorder::new(ctx);
            rdm::population_stats(&mut rec, View::whole(&pb), neurons, t, b, views, accumulate)
                .unwrap();
            submit(rec);
            // Accumulating the same population a second time doubles every value.
            let k = if accumulate { 2 } else { 1 };
            let got_h = read_u32(ctx, &hb, t * b * b);
            let got_c = read_u32(ctx, &cb, t * b);
            let got_d: Vec<u64> = read_u32(ctx, &db, b * b)
                .iter()
                .map(|&v| v as u64)
                .collect();
            assert_eq!(
                got_h,
                want.hamming_per_t.iter().map(|v| k * v).collect::<Vec<_>>(),
                "hamming t{t} b{b} n{neurons}"
            );
            assert_eq!(
                got_c,
                want.counts.iter().map(|v| k * v).collect::<Vec<_>>(),
                "counts t{t} b{b} n{neurons}"
            );
            assert_eq!(
                got_d,
                want.summed_dot
                    .iter()
                    .map(|v| k as u64 * v)
                    .collect::<Vec<_>>(),
                "summed_dot t{t} b{b} n{neurons}"
            );
        }
    }
}
on_backends!(rdm_population_stats);

// ---------------------------------------------------------------- context

fn context_reports_limits_and_caches_pipelines(ctx: &GpuContext) {
    assert!(ctx.limits.max_storage_buffers_per_shader_stage >= table::max_storage_bindings());
    ctx.warm_up().unwrap();
    let a = ctx.pipeline(msenas::gpu::KernelId::RngFill).unwrap();
    let b = ctx.pipeline(msenas::gpu::KernelId::RngFill).unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b), "pipelines are built once");
    // A view past its buffer is a typed error, not a device error.
    let buf = ctx.storage("small", 4).unwrap();
    let mut rec = Recorder::new(ctx);
    let e = lif::lif(
        &mut rec,
        View::whole(&buf),
        2,
        1,
        4,
        Default::default(),
        None,
        View::whole(&buf),
        None,
    );
    assert!(e.is_err());
}
on_backends!(context_reports_limits_and_caches_pipelines);

#[test]
fn list_adapters_and_device_choice() {
    let list = msenas::gpu::list_adapters();
    for a in &list {
        eprintln!(
            "adapter: {} {} {} compute={} features={:?}",
            a.name, a.backend, a.device_type, a.compute, a.features
        );
    }
    assert_eq!("auto".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
    assert_eq!(
        "llvm".parse::<DeviceChoice>().unwrap(),
        DeviceChoice::Named("llvm".into())
    );
    let e = GpuContext::new(&DeviceChoice::Named("no-such-adapter-xyz".into()));
    assert!(matches!(e, Err(msenas::Error::Gpu(_))));
}

/// A device error outside any error scope (here a write past a buffer's end) does not panic the
/// process: the next wait returns it as `Error::Gpu`, once, and the context stays usable.
fn uncaptured_errors_are_returned_not_panicked(ctx: &GpuContext) {
    let buf = ctx.storage("small", 4).unwrap();
    ctx.queue.write_buffer(&buf, 1 << 20, &[0u8; 16]);
    let e = ctx.wait().unwrap_err();
    assert!(matches!(e, msenas::Error::Gpu(_)), "{e}");
    eprintln!("reported: {e}");
    ctx.wait().unwrap();
    ctx.write(View::whole(&buf), &[7.0f32; 4]);
    assert_eq!(read_f32(ctx, &buf, 4), vec![7.0; 4]);
}
on_backends!(uncaptured_errors_are_returned_not_panicked);
