// Convolution gradients (docs/design.md "Training (backward pass)"), the twins of
// cpu::grad::{conv2d_backward_input, conv2d_backward_weight}, over the same geometry as
// shaders/conv.wgsl: out[img,o,oy,ox] = sum_{i,dy,dx} w[o,i,dy,dx] * x[img,i,iy,ix] with
// iy = oy*s + dy + base, ix = ox*s + dx + base, base = shift - k/2, zero outside the image.

//! import shared/unfused.wgsl

struct Params {
    images: u32,  // T * B
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    k: u32,
    stride: u32,
    shift: u32,
    ho: u32,
    wo: u32,
    a_off: u32,   // gy (input) or x (weight)
    b_off: u32,   // w (input) or gy (weight)
    out_off: u32, // gx (input) or gw (weight)
    zero: u32,    // 0: see shared/unfused.wgsl
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// ---------------------------------------------------------------- input gradient
//
// A gather: one thread per gx element sums w[o,i,dy,dx] * gy[img,o,oy,ox] over the (o, dy, dx)
// whose output position (oy, ox) reads it, in the order o, dy, dx from +0: the CPU scatter's
// order, with unfused products, so the result is bit-identical. One workgroup = 64 input pixels
// of one (image, input channel); the weights w[o, i, :, :] are staged CO_TILE output channels at
// a time (CO_TILE * 25 floats = 12,800 B for k = 5), so no loop exceeds CO_TILE * k * k.
// Dispatch: x = ceil(H * W / 64), y = Cin, z = T * B.
const CO_TILE: u32 = 128u;
var<workgroup> wtile: array<f32, 3200>;

// The output coordinate that reads input coordinate `i` through tap `d`, or -1.
fn source(i: u32, d: u32, size_out: u32) -> i32 {
    let t = i32(i) - i32(d) - (i32(p.shift) - i32(p.k / 2u));
    if t < 0 || t % i32(p.stride) != 0 {
        return -1;
    }
    let o = t / i32(p.stride);
    if o >= i32(size_out) {
        return -1;
    }
    return o;
}

@compute @workgroup_size(64)
fn input(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let pix = wg.x * 64u + lid;
    let i = wg.y;
    let img = wg.z;
    let live = pix < p.h * p.w;
    let iy = pix / p.w;
    let ix = pix % p.w;
    let kk = p.k * p.k;
    var acc = 0.0;
    for (var o0 = 0u; o0 < p.cout; o0 += CO_TILE) {
        let co = min(CO_TILE, p.cout - o0);
        workgroupBarrier();
        for (var j = lid; j < co * kk; j += 64u) {
            let o = j / kk;
            wtile[j] = b[p.b_off + ((o0 + o) * p.cin + i) * kk + (j - o * kk)];
        }
        workgroupBarrier();
        if live {
            for (var o = 0u; o < co; o++) {
                let plane = p.a_off + (img * p.cout + o0 + o) * p.ho * p.wo;
                for (var dy = 0u; dy < p.k; dy++) {
                    let oy = source(iy, dy, p.ho);
                    if oy < 0 {
                        continue;
                    }
                    for (var dx = 0u; dx < p.k; dx++) {
                        let ox = source(ix, dx, p.wo);
                        if ox < 0 {
                            continue;
                        }
                        let g = a[plane + u32(oy) * p.wo + u32(ox)];
                        acc += unfused(wtile[o * kk + dy * p.k + dx] * g, p.zero);
                    }
                }
            }
        }
    }
    if live {
        out[p.out_off + (img * p.cin + i) * p.h * p.w + pix] = acc;
    }
}

// ---------------------------------------------------------------- weight gradient
//
// One workgroup of WG_W threads per (o, i) computes all k*k taps: thread `lid` takes the output
// positions q = lid, lid + WG_W, ... over every image and output pixel, reads gy once per
// position and adds gy * x for each tap into its own slot of `part` (tap-major, one column per
// thread); a fixed tree over the threads then sums each tap. Deterministic, but not the CPU's
// lane order: equal to it within f32 rounding of the sum of |terms|.
// Dispatch: x = Cin, y = Cout.
const WG_W: u32 = 128u;
// Positions per pass of the outer loop: keeps every loop under 65,536 iterations.
const CHUNK: u32 = 4194304u; // WG_W * 32,768
var<workgroup> part: array<f32, 3200>; // 25 taps x WG_W threads

@compute @workgroup_size(128)
fn weight(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = wg.x;
    let o = wg.y;
    let kk = p.k * p.k;
    for (var tap = 0u; tap < kk; tap++) {
        part[tap * WG_W + lid] = 0.0;
    }
    let plane = p.ho * p.wo;
    let count = p.images * plane;
    let base = i32(p.shift) - i32(p.k / 2u);
    let h = i32(p.h);
    let w = i32(p.w);
    for (var q0 = 0u; q0 < count; q0 += CHUNK) {
        let end = min(count, q0 + CHUNK);
        for (var q = q0 + lid; q < end; q += WG_W) {
            let img = q / plane;
            let pix = q - img * plane;
            let oy = pix / p.wo;
            let ox = pix - oy * p.wo;
            let g = b[p.b_off + (img * p.cout + o) * plane + pix];
            let xplane = p.a_off + (img * p.cin + i) * p.h * p.w;
            let y0 = i32(oy * p.stride) + base;
            let x0 = i32(ox * p.stride) + base;
            for (var dy = 0u; dy < p.k; dy++) {
                let iy = y0 + i32(dy);
                if iy < 0 || iy >= h {
                    continue;
                }
                for (var dx = 0u; dx < p.k; dx++) {
                    let ix = x0 + i32(dx);
                    if ix < 0 || ix >= w {
                        continue;
                    }
                    part[(dy * p.k + dx) * WG_W + lid] += g * a[xplane + u32(iy * w + ix)];
                }
            }
        }
    }
    workgroupBarrier();
    for (var stride = WG_W / 2u; stride > 0u; stride >>= 1u) {
        if lid < stride {
            for (var tap = 0u; tap < kk; tap++) {
                part[tap * WG_W + lid] += part[tap * WG_W + lid + stride];
            }
        }
        workgroupBarrier();
    }
    if lid < kk {
        out[p.out_off + (o * p.cin + i) * kk + lid] = part[lid * WG_W];
    }
}
