// Reductions whose result is a handful of numbers, read back instead of the vector they reduce:
// the twins of cpu::elementwise::sum_squares_partials.

//! import shared/unfused.wgsl

struct Params {
    len: u32,     // elements of src
    groups: u32,  // workgroups = partial sums written
    src_off: u32,
    dst_off: u32,
    zero: u32,    // 0: see shared/unfused.wgsl
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

var<workgroup> part: array<f32, 256>;

// dst[g] = the sum of src[i]^2 over the elements of workgroup g, in a fixed order: thread l
// sums i = g * 256 + l, then every groups * 256 further, in increasing i; then the 256 thread
// sums are added pairwise (l + h into l for h = 128, 64, ..., 1). The products are unfused, so
// the result is the CPU twin's bit for bit.
@compute @workgroup_size(256)
fn sum_squares(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let stride = p.groups * 256u;
    var s = 0.0;
    for (var i = wg.x * 256u + lid; i < p.len; i += stride) {
        let v = src[p.src_off + i];
        s += unfused(v * v, p.zero);
    }
    part[lid] = s;
    workgroupBarrier();
    for (var h = 128u; h > 0u; h = h >> 1u) {
        if lid < h {
            part[lid] += part[lid + h];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        dst[p.dst_off + wg.x] = part[0];
    }
}
