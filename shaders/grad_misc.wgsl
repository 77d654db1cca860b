// Gradients of the data-movement ops and the linear head, the twins of
// cpu::grad::{concat_backward, global_avg_pool_backward, mean_time_backward, linear_backward}.
// One output element per thread on a 2-D grid (shared/grid.wgsl); sums run in the CPU's order
// with unfused products, so every result is bit-identical with the CPU (up to WGSL's division
// in the broadcasts).

//! import shared/grid.wgsl
//! import shared/unfused.wgsl

struct Params {
    len: u32,      // output elements
    n: u32,        // images or rows
    c: u32,        // channels of gx (concat, pool); in_f (linear)
    hw: u32,       // positions per channel (concat, pool)
    c_total: u32,  // channels of gy (concat); out_f (linear)
    c_start: u32,  // first channel of gy (concat)
    steps: u32,    // T (mean over time)
    src_off: u32,  // gy
    aux_off: u32,  // x (linear_weight) or w (linear_input)
    dst_off: u32,  // gx or gw
    dst2_off: u32, // gb
    zero: u32,     // 0: see shared/unfused.wgsl
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> aux: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst2: array<f32>;

// Rows per pass of the outer loop in the linear sums: keeps every loop under 65,536 iterations.
const ROWS: u32 = 32768u;

// gx [n, c, hw] = gy [n, c_start .. c_start + c, hw] of gy [n, c_total, hw].
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
    dst[p.dst_off + i] = src[p.src_off + (img * p.c_total + p.c_start) * p.hw + rest];
}

// gx [n, c, hw] = gy [n, c] / hw
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
    dst[p.dst_off + i] = src[p.src_off + i / p.hw] / f32(p.hw);
}

// gx [T, m] = gy [m] / T; here c = m.
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
    dst[p.dst_off + i] = src[p.src_off + i % p.c] / f32(p.steps);
}

// gw [out_f, in_f] = sum_r gy[r, o] x[r, i] and gb [out_f] = sum_r gy[r, o], rows in order;
// threads 0 .. out_f * in_f write gw, the next out_f write gb. len = out_f * (in_f + 1).
@compute @workgroup_size(256)
fn linear_weight(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = flat_index(wg, nwg, lid, 256u);
    if idx >= p.len {
        return;
    }
    let in_f = p.c;
    let out_f = p.c_total;
    let weights = out_f * in_f;
    if idx < weights {
        let o = idx / in_f;
        let i = idx - o * in_f;
        var acc = 0.0;
        for (var r0 = 0u; r0 < p.n; r0 += ROWS) {
            let end = min(p.n, r0 + ROWS);
            for (var r = r0; r < end; r++) {
                acc += unfused(src[p.src_off + r * out_f + o] * aux[p.aux_off + r * in_f + i], p.zero);
            }
        }
        dst[p.dst_off + idx] = acc;
    } else {
        let o = idx - weights;
        var acc = 0.0;
        for (var r0 = 0u; r0 < p.n; r0 += ROWS) {
            let end = min(p.n, r0 + ROWS);
            for (var r = r0; r < end; r++) {
                acc += src[p.src_off + r * out_f + o];
            }
        }
        dst2[p.dst2_off + o] = acc;
    }
}

// gx [n, in_f] = sum_o gy[r, o] w[o, i], o in order. len = n * in_f.
@compute @workgroup_size(256)
fn linear_input(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = flat_index(wg, nwg, lid, 256u);
    if idx >= p.len {
        return;
    }
    let in_f = p.c;
    let out_f = p.c_total;
    let r = idx / in_f;
    let i = idx - r * in_f;
    var acc = 0.0;
    for (var o0 = 0u; o0 < out_f; o0 += ROWS) {
        let end = min(out_f, o0 + ROWS);
        for (var o = o0; o < end; o++) {
            acc += unfused(src[p.src_off + r * out_f + o] * aux[p.aux_off + o * in_f + i], p.zero);
        }
    }
    dst[p.dst_off + idx] = acc;
}
