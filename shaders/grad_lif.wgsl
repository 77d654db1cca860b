// LIF training twins (docs/design.md "Training (backward pass)"):
// - `train`: the forward pass keeping the membrane before reset, the twin of cpu::lif_membrane;
// - `backward`: backpropagation through time, the twin of cpu::grad::lif_backward.
//
// Layout [T][n] (n = every neuron of every sample); one thread per neuron walks its T steps, so
// no loop runs longer than T. Products that feed a sum are `unfused`, which makes `train` and the
// triangle surrogate's backward bit-identical with the CPU; sigmoid (exp) and atan (division)
// follow WGSL's accuracy for those built-ins.

//! import shared/grid.wgsl
//! import shared/unfused.wgsl

struct Params {
    n: u32,
    steps: u32,
    a_off: u32,     // x (train) or grad_s (backward)
    b_off: u32,     // v_pre (backward)
    out_off: u32,   // spikes (train) or grad_x (backward)
    v_off: u32,     // v_pre (train)
    zero: u32,      // 0: see shared/unfused.wgsl
    surrogate: u32, // 0 triangle, 1 sigmoid, 2 atan
    tau_inv: f32,
    v_th: f32,
    keep: f32,      // 1 - tau_inv
    alpha: f32,
    alpha_sq: f32,  // alpha * alpha (triangle)
    atan_k: f32,    // pi/2 * alpha (atan)
    half_alpha: f32, // alpha * 0.5 (atan)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> vout: array<f32>;

// Dispatch: 2-D grid over ceil(n / 64).
@compute @workgroup_size(64)
fn train(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let j = flat_index(wg, nwg, lid, 64u);
    if j >= p.n {
        return;
    }
    var v = 0.0;
    for (var t = 0u; t < p.steps; t++) {
        let k = t * p.n + j;
        v = v + unfused((a[p.a_off + k] - v) * p.tau_inv, p.zero);
        vout[p.v_off + k] = v;
        let s = select(0.0, 1.0, v > p.v_th);
        out[p.out_off + k] = s;
        v = v * (1.0 - s);
    }
}

// sigma'(u), as cpu::grad::Surrogate::grad.
fn surrogate_grad(u: f32) -> f32 {
    if p.surrogate == 0u {
        let m = abs(u);
        if m * p.alpha < 1.0 {
            return p.alpha - unfused(p.alpha_sq * m, p.zero);
        }
        return 0.0;
    } else if p.surrogate == 1u {
        let s = 1.0 / (1.0 + exp(-p.alpha * u));
        return p.alpha * s * (1.0 - s);
    }
    let z = p.atan_k * u;
    return p.half_alpha / (1.0 + unfused(z * z, p.zero));
}

// Dispatch: 2-D grid over ceil(n / 64).
@compute @workgroup_size(64)
fn backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let j = flat_index(wg, nwg, lid, 64u);
    if j >= p.n {
        return;
    }
    var g_v = 0.0;
    for (var t = p.steps; t > 0u; t--) {
        let k = (t - 1u) * p.n + j;
        let h = b[p.b_off + k];
        let through = select(g_v, 0.0, h > p.v_th);
        let g_h = unfused(a[p.a_off + k] * surrogate_grad(h - p.v_th), p.zero) + through;
        out[p.out_off + k] = g_h * p.tau_inv;
        g_v = g_h * p.keep;
    }
}
