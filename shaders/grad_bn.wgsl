// Batch-norm backward with the batch's own statistics and the fused sign gate, the twin of
// cpu::grad::bn_backward. With sd = sqrt(var + eps), xh = (x - mean) / sd, N = n * hw and
// g = gy where the gate passes (y > 0 excitatory, y < 0 inhibitory, everywhere for none):
//
//   gbeta = sum g      ggamma = sum g * xh      (per channel)
//   gx    = gamma / sd * (g - gbeta / N - xh * ggamma / N)
//
// Three passes, each binding at most four storage buffers:
// - `gate`:  gx = gated gy                                   (y, gy -> gx)
// - `sums`:  one workgroup per channel sums g and g * xh by a fixed tree in f32 (the CPU sums in
//            f64), writes gbeta and ggamma, then rewrites its channel of gx as
//            g - gbeta / N - xh * ggamma / N                 (x, stats -> gx, grads)
// - `scale`: gx *= gamma / sd                                (gamma, stats -> gx)
// `stats` holds mean and var (one buffer, as bn_apply reads them), `grads` ggamma and gbeta.

//! import shared/grid.wgsl

struct Params {
    n: u32,        // images (T * B)
    c: u32,
    hw: u32,
    x_off: u32,
    y_off: u32,
    gy_off: u32,
    gx_off: u32,
    mean_off: u32,
    var_off: u32,
    gamma_off: u32,
    ggamma_off: u32,
    gbeta_off: u32,
    gate: u32,     // 0 none, 1 excitatory, 2 inhibitory
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read> gy: array<f32>;
@group(0) @binding(4) var<storage, read> stats: array<f32>;
@group(0) @binding(5) var<storage, read> gamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> gx: array<f32>;
@group(0) @binding(7) var<storage, read_write> grads: array<f32>;

// Dispatch: 2-D grid over ceil(n * c * hw / 256).
@compute @workgroup_size(256)
fn gate(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_index(wg, nwg, lid, 256u);
    if i >= p.n * p.c * p.hw {
        return;
    }
    let yv = y[p.y_off + i];
    var open = true;
    if p.gate == 1u {
        open = yv > 0.0;
    } else if p.gate == 2u {
        open = yv < 0.0;
    }
    gx[p.gx_off + i] = select(0.0, gy[p.gy_off + i], open);
}

var<workgroup> part_g: array<f32, 256>;
var<workgroup> part_gx: array<f32, 256>;

// Values per pass of the outer loops: keeps every loop under 65,536 iterations.
const CHUNK: u32 = 8388608u; // 256 * 32,768

// Element q of channel c (q over images, then positions), as an offset from the tensor start.
fn at(c: u32, q: u32) -> u32 {
    let img = q / p.hw;
    return (img * p.c + c) * p.hw + (q - img * p.hw);
}

// Dispatch: x = C.
@compute @workgroup_size(256)
fn sums(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c = wg.x;
    let count = p.n * p.hw;
    let mean = stats[p.mean_off + c];
    let sd = sqrt(stats[p.var_off + c] + p.eps);
    var sg = 0.0;
    var sgx = 0.0;
    for (var q0 = 0u; q0 < count; q0 += CHUNK) {
        let end = min(count, q0 + CHUNK);
        for (var q = q0 + lid; q < end; q += 256u) {
            let j = at(c, q);
            let g = gx[p.gx_off + j];
            let xh = (x[p.x_off + j] - mean) / sd;
            sg += g;
            sgx += g * xh;
        }
    }
    part_g[lid] = sg;
    part_gx[lid] = sgx;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride >>= 1u) {
        if lid < stride {
            part_g[lid] += part_g[lid + stride];
            part_gx[lid] += part_gx[lid + stride];
        }
        workgroupBarrier();
    }
    let total_g = part_g[0];
    let total_gx = part_gx[0];
    if lid == 0u {
        grads[p.gbeta_off + c] = total_g;
        grads[p.ggamma_off + c] = total_gx;
    }
    let values = f32(max(count, 1u));
    let mg = total_g / values;
    let mgx = total_gx / values;
    for (var q0 = 0u; q0 < count; q0 += CHUNK) {
        let end = min(count, q0 + CHUNK);
        for (var q = q0 + lid; q < end; q += 256u) {
            let j = at(c, q);
            let xh = (x[p.x_off + j] - mean) / sd;
            gx[p.gx_off + j] = gx[p.gx_off + j] - mg - xh * mgx;
        }
    }
}

// Dispatch: 2-D grid over ceil(n * c * hw / 256).
@compute @workgroup_size(256)
fn scale(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_index(wg, nwg, lid, 256u);
    if i >= p.n * p.c * p.hw {
        return;
    }
    let c = (i / p.hw) % p.c;
    let s = gamma[p.gamma_off + c] / sqrt(stats[p.var_off + c] + p.eps);
    gx[p.gx_off + i] = s * gx[p.gx_off + i];
}
