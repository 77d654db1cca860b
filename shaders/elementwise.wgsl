// Small data-movement and reduction kernels, twins of cpu::elementwise. All are memory bound:
// 256 threads, 2-D grid (shared/grid.wgsl), one output element per thread, and the CPU's loop
// order inside each element's sum.

//! import shared/grid.wgsl

struct Params {
    len: u32,     // output elements
    n: u32,       // images (T * B) or batch B
    c: u32,       // channels of the source
    hw: u32,      // pixels per channel
    c_out: u32,   // channels of the destination (concat) or classes K (linear)
    c_off: u32,   // first destination channel (concat)
    steps: u32,   // T (mean over time)
    src_off: u32,
    dst_off: u32,
    w_off: u32,
    bias_off: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<storage, read> wmat: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

// dst += src
@compute @workgroup_size(256)
fn add_into(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_index(wg, nwg, lid, 256u);
    if i < p.len {
        dst[p.dst_off + i] += src[p.src_off + i];
    }
}

// Copy src [n, c, hw] into channels c_off .. c_off + c of dst [n, c_out, hw].
@compute @workgroup_size(256)
fn concat(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_index(wg, nwg, lid, 256u);
    if i >= p.len {
        return;
    }
    let img = i / (p.c * p.hw);
    let rest = i - img * p.c * p.hw;
    dst[p.dst_off + img * p.c_out * p.hw + p.c_off * p.hw + rest] = src[p.src_off + i];
}

// dst [n, c] = mean over hw of src [n, c, hw]
@compute @workgroup_size(256)
fn avg_pool(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_index(wg, nwg, lid, 256u);
    if i >= p.len {
        return;
    }
    var s = 0.0;
    for (var j = 0u; j < p.hw; j++) {
        s += src[p.src_off + i * p.hw + j];
    }
    dst[p.dst_off + i] = s / f32(p.hw);
}

// dst [n, K] = src [n, c] * wmat [K, c]^T + bias [K]
@compute @workgroup_size(256)
fn linear(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_index(wg, nwg, lid, 256u);
    if i >= p.len {
        return;
    }
    let img = i / p.c_out;
    let k = i - img * p.c_out;
    var s = 0.0;
    for (var j = 0u; j < p.c; j++) {
        s += wmat[p.w_off + k * p.c + j] * src[p.src_off + img * p.c + j];
    }
    dst[p.dst_off + i] = s + bias[p.bias_off + k];
}

// dst [m] = mean over T of src [T, m]; here n = m and c = 1.
@compute @workgroup_size(256)
fn mean_time(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_index(wg, nwg, lid, 256u);
    if i >= p.len {
        return;
    }
    var s = 0.0;
    for (var t = 0u; t < p.steps; t++) {
        s += src[p.src_off + t * p.n * p.c + i];
    }
    dst[p.dst_off + i] = s / f32(p.steps);
}
