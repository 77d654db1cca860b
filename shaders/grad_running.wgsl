// Batch-norm running statistics after a training step, the twin of cpu::bn_update_running
// (PyTorch's: momentum, unbiased variance):
//   running_mean <- (1 - momentum) running_mean + momentum mean
//   running_var  <- (1 - momentum) running_var + momentum (var * count / (count - 1))
// The host computes 1 - momentum and the correction as the CPU does; products are unfused, so
// the result is bit-identical.

//! import shared/grid.wgsl
//! import shared/unfused.wgsl

struct Params {
    c: u32,
    rmean_off: u32,
    rvar_off: u32,
    mean_off: u32,
    var_off: u32,
    zero: u32,        // 0: see shared/unfused.wgsl
    keep: f32,        // 1 - momentum
    momentum: f32,
    correction: f32,  // count / (count - 1), or 1 below two values
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> rmean: array<f32>;
@group(0) @binding(2) var<storage, read_write> rvar: array<f32>;
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read> var_: array<f32>;

// Dispatch: 2-D grid over ceil(C / 64).
@compute @workgroup_size(64)
fn update(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = flat_index(wg, nwg, lid, 64u);
    if ch >= p.c {
        return;
    }
    let m = rmean[p.rmean_off + ch];
    let v = rvar[p.rvar_off + ch];
    rmean[p.rmean_off + ch] = unfused(p.keep * m, p.zero)
        + unfused(p.momentum * mean[p.mean_off + ch], p.zero);
    rvar[p.rvar_off + ch] = unfused(p.keep * v, p.zero)
        + unfused(p.momentum * (var_[p.var_off + ch] * p.correction), p.zero);
}
