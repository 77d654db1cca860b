// Losses on the time-averaged logits [B, K] with their gradients, the twins of
// cpu::grad::{softmax_cross_entropy, mse_rate_loss}. One thread per row (K is a few classes),
// f32 throughout where the CPU uses f64: equal within a small relative tolerance.
//
// `loss` [B] receives one value per row: for cross-entropy the row's loss (the CPU's loss is
// their mean), for MSE the row's squared errors / (B * K) (the CPU's loss is their sum). `grad`
// [B, K] is dL/dlogits of the CPU's batch loss. A label >= K makes its row's loss and gradient
// NaN (the CPU asserts).

//! import shared/grid.wgsl

struct Params {
    b: u32,
    k: u32,
    logit_off: u32,
    label_off: u32,
    loss_off: u32,
    grad_off: u32,
    smooth_k: f32, // smoothing / K: the target mass of every class
    keep: f32,     // 1 - smoothing: the label's extra mass
    batch: f32,    // B
    count: f32,    // B * K
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;

// A quiet NaN (no NaN literal in WGSL).
fn nan() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

// Dispatch: 2-D grid over ceil(B / 64).
@compute @workgroup_size(64)
fn cross_entropy(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = flat_index(wg, nwg, lid, 64u);
    if r >= p.b {
        return;
    }
    let row = p.logit_off + r * p.k;
    let out = p.grad_off + r * p.k;
    let label = labels[p.label_off + r];
    if label >= p.k {
        loss[p.loss_off + r] = nan();
        for (var j = 0u; j < p.k; j++) {
            grad[out + j] = nan();
        }
        return;
    }
    var m = logits[row];
    for (var j = 1u; j < p.k; j++) {
        m = max(m, logits[row + j]);
    }
    var z = 0.0;
    for (var j = 0u; j < p.k; j++) {
        z += exp(logits[row + j] - m);
    }
    let log_z = log(z);
    var l = 0.0;
    for (var j = 0u; j < p.k; j++) {
        let shifted = logits[row + j] - m;
        let q = p.smooth_k + select(0.0, p.keep, j == label);
        l -= q * (shifted - log_z);
        grad[out + j] = (exp(shifted) / z - q) / p.batch;
    }
    loss[p.loss_off + r] = l;
}

// Dispatch: 2-D grid over ceil(B / 64).
@compute @workgroup_size(64)
fn mse(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = flat_index(wg, nwg, lid, 64u);
    if r >= p.b {
        return;
    }
    let row = p.logit_off + r * p.k;
    let out = p.grad_off + r * p.k;
    let label = labels[p.label_off + r];
    if label >= p.k {
        loss[p.loss_off + r] = nan();
        for (var j = 0u; j < p.k; j++) {
            grad[out + j] = nan();
        }
        return;
    }
    var l = 0.0;
    for (var j = 0u; j < p.k; j++) {
        let d = logits[row + j] - select(0.0, 1.0, j == label);
        l += d * d;
        grad[out + j] = 2.0 * d / p.count;
    }
    loss[p.loss_off + r] = l / p.count;
}
