// Batch norm over all T*B images (docs/design.md), the twins of cpu::batchnorm::{bn_stats,
// bn_apply}. Statistics per channel over n * hw values: mean, then the biased variance as the
// mean of squared deviations (two passes, the numerically safe form). Sums are reduced in
// workgroup memory by a fixed tree: no float atomics (not core WGSL) and the same result on
// every run.
//
// `stats` writes mean and var into one buffer (mean at mean_off + c, var at var_off + c) and
// `apply` reads them back together with gamma and beta from one parameter buffer, so the fused
// normalise-and-gate pass binds four storage buffers: the downlevel minimum.

struct Params {
    n: u32,        // images (T * B)
    c: u32,
    hw: u32,
    x_off: u32,
    out_off: u32,
    mean_off: u32, // in `stats`
    var_off: u32,  // in `stats`
    gamma_off: u32, // in `affine`
    beta_off: u32,  // in `affine`
    gate: u32,     // 0 none, 1 excitatory max(z, 0), 2 inhibitory min(z, 0)
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats_out: array<f32>;
@group(0) @binding(3) var<storage, read> stats_in: array<f32>;
@group(0) @binding(4) var<storage, read> affine: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

// One workgroup of 256 per channel: each thread sums a strided share of the channel's n * hw
// values, then a tree over 256 partials (1 KiB of workgroup memory) finishes the sum.
var<workgroup> partial: array<f32, 256>;

fn value_at(c: u32, q: u32) -> f32 {
    let img = q / p.hw;
    let j = q - img * p.hw;
    return x[p.x_off + (img * p.c + c) * p.hw + j];
}

fn tree_sum(lid: u32, v: f32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride >>= 1u) {
        if lid < stride {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

// Dispatch: x = C.
@compute @workgroup_size(256)
fn stats(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c = wg.x;
    let count = p.n * p.hw;
    var s = 0.0;
    for (var q = lid; q < count; q += 256u) {
        s += value_at(c, q);
    }
    let mean = tree_sum(lid, s) / f32(count);
    var ss = 0.0;
    for (var q = lid; q < count; q += 256u) {
        let d = value_at(c, q) - mean;
        ss += d * d;
    }
    let var_ = tree_sum(lid, ss) / f32(count);
    if lid == 0u {
        stats_out[p.mean_off + c] = mean;
        stats_out[p.var_off + c] = var_;
    }
}

//! import shared/grid.wgsl

// Normalise and gate, elementwise. Dispatch: 2-D grid over ceil(n * c * hw / 256).
@compute @workgroup_size(256)
fn apply(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_index(wg, nwg, lid, 256u);
    if i >= p.n * p.c * p.hw {
        return;
    }
    let c = (i / p.hw) % p.c;
    let z = (x[p.x_off + i] - stats_in[p.mean_off + c]) / sqrt(stats_in[p.var_off + c] + p.eps)
        * affine[p.gamma_off + c] + affine[p.beta_off + c];
    var y = z;
    if p.gate == 1u {
        y = max(z, 0.0);
    } else if p.gate == 2u {
        y = min(z, 0.0);
    }
    out[p.out_off + i] = y;
}
