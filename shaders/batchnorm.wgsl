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
    slices: u32,      // `stats`: workgroups per channel (1: the statistics in one pass)
    slice_len: u32,   // `stats`: values per slice
    scratch_off: u32, // `stats`: per-slice (mean, M2) pairs in stats_out, [c][slices][2]
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats_out: array<f32>;
@group(0) @binding(3) var<storage, read> stats_in: array<f32>;
@group(0) @binding(4) var<storage, read> affine: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

// `slices` workgroups of 256 per channel, each over a contiguous slice of the channel's n * hw
// values: each thread sums a strided share of its slice, then a tree over 256 partials (1 KiB of
// workgroup memory) finishes the sum.
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

// The slice's mean and its sum of squared deviations from it (two passes). With one slice these
// are the channel's statistics, written as mean and var; with more, the pair goes to the scratch
// part of stats_out and `stats_combine` merges the slices.
// Dispatch: x = C, y = slices.
@compute @workgroup_size(256)
fn stats(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c = wg.x;
    let count = p.n * p.hw;
    let begin = wg.y * p.slice_len;
    let end = min(count, begin + p.slice_len);
    let len = f32(end - begin);
    var s = 0.0;
    for (var q = begin + lid; q < end; q += 256u) {
        s += value_at(c, q);
    }
    let mean = tree_sum(lid, s) / len;
    var ss = 0.0;
    for (var q = begin + lid; q < end; q += 256u) {
        let d = value_at(c, q) - mean;
        ss += d * d;
    }
    let m2 = tree_sum(lid, ss);
    if lid == 0u {
        if p.slices == 1u {
            stats_out[p.mean_off + c] = mean;
            stats_out[p.var_off + c] = m2 / len;
        } else {
            let at = p.scratch_off + 2u * (c * p.slices + wg.y);
            stats_out[at] = mean;
            stats_out[at + 1u] = m2;
        }
    }
}

// Merges a channel's slices in slice order (Chan et al.'s pairwise update: the mean moves by the
// slice's difference weighted by its share, M2 adds the slice's M2 and the between-slice term),
// so the statistics do not depend on scheduling. One thread per channel.
// Dispatch: x = ceil(C / 64).
@compute @workgroup_size(64)
fn stats_combine(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c = wg.x * 64u + lid;
    if c >= p.c {
        return;
    }
    let count = p.n * p.hw;
    var n_a = 0.0;
    var mean = 0.0;
    var m2 = 0.0;
    for (var s = 0u; s < p.slices; s++) {
        let begin = s * p.slice_len;
        let n_b = f32(min(count, begin + p.slice_len) - begin);
        let at = p.scratch_off + 2u * (c * p.slices + s);
        let n_ab = n_a + n_b;
        let delta = stats_out[at] - mean;
        mean += delta * (n_b / n_ab);
        m2 += stats_out[at + 1u] + delta * delta * (n_a * n_b / n_ab);
        n_a = n_ab;
    }
    stats_out[p.mean_off + c] = mean;
    stats_out[p.var_off + c] = m2 / f32(count);
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
