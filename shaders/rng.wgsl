// Weight fill: value(i) = (2 * unit(first + i) - 1) * bound, the twin of cpu::rng::uniform_fill.
// 2u - 1 is exact for a 24-bit u and the single multiply is correctly rounded everywhere, so the
// result is bit-identical to the CPU (an FMA contraction of 2u - 1 is exact too).

//! import shared/rng.wgsl
//! import shared/grid.wgsl

struct Params {
    stream: u32,
    first: u32,
    len: u32,
    out_off: u32,
    bound: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

// 256 threads: a pure streaming kernel with no shared memory; 256 is the WebGPU default maximum
// and a multiple of every subgroup size (8 on lavapipe, 32 NVIDIA, 64 AMD).
@compute @workgroup_size(256)
fn fill(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_index(wg, nwg, lid, 256u);
    if i >= p.len {
        return;
    }
    let u = rng_unit(p.stream, p.first + i);
    out[p.out_off + i] = (2.0 * u - 1.0) * p.bound;
}

// Constant fill (batch-norm gamma = 1, beta = 0): `bound` holds the value. Recorded in the
// command stream like the random fill, so parameter slabs reused by several candidates of one
// submission never depend on host writes, which land before the whole submission.
@compute @workgroup_size(256)
fn constant(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_index(wg, nwg, lid, 256u);
    if i >= p.len {
        return;
    }
    out[p.out_off + i] = p.bound;
}
