// The AdamW step, the twin of train::optim::AdamW::update. Elementwise on a 2-D grid (shared/grid.wgsl), in the CPU's f32
// operation order with unfused products; the host computes the scalar factors (bias
// corrections 1 - beta^t, 1 - beta, lr * weight_decay) exactly as the CPU does.
//
// AdamW runs as two passes so that neither binds more than four storage buffers:
// - `adam_moments`: m <- b1 m + (1 - b1) g ; v <- b2 v + (1 - b2) g g      (g -> m, v)
// - `adam_step`:    p <- p - lr wd p (decay elements) ;
//                   p <- p - lr (m / bc1) / (sqrt(v / bc2) + eps)           (m, v, decay -> p)

//! import shared/grid.wgsl
//! import shared/unfused.wgsl

struct Params {
    len: u32,
    p_off: u32,     // params
    g_off: u32,     // grad
    m_off: u32,
    v_off: u32,
    decay_off: u32, // u32 0/1 per element
    zero: u32,      // 0: see shared/unfused.wgsl
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    lr: f32,
    lr_wd: f32,     // lr * weight_decay
    bc1: f32,       // 1 - beta1^t
    bc2: f32,       // 1 - beta2^t
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> src2: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<u32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;
@group(0) @binding(5) var<storage, read_write> dst2: array<f32>;


// src = grad; dst = m; dst2 = v.
@compute @workgroup_size(256)
fn adam_moments(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_index(wg, nwg, lid, 256u);
    if i >= p.len {
        return;
    }
    let g = src[p.g_off + i];
    let m = dst[p.m_off + i];
    let v = dst2[p.v_off + i];
    dst[p.m_off + i] = unfused(p.beta1 * m, p.zero) + unfused(p.one_minus_beta1 * g, p.zero);
    dst2[p.v_off + i] = unfused(p.beta2 * v, p.zero) + unfused(p.one_minus_beta2 * g * g, p.zero);
}

// src = m; src2 = v; mask = decay; dst = params.
@compute @workgroup_size(256)
fn adam_step(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_index(wg, nwg, lid, 256u);
    if i >= p.len {
        return;
    }
    var w = dst[p.p_off + i];
    if mask[p.decay_off + i] != 0u {
        w = w - unfused(p.lr_wd * w, p.zero);
    }
    let mhat = src[p.m_off + i] / p.bc1;
    let vhat = src2[p.v_off + i] / p.bc2;
    dst[p.p_off + i] = w - p.lr * mhat / (sqrt(vhat) + p.eps);
}
