// 2-D convolution over all T*B images at once (docs/design.md), the twin of cpu::conv::conv2d:
// out[img,o,oy,ox] = sum_{i,dy,dx} w[o,i,dy,dx] * in[img,i, oy*s + dy - p + sh, ox*s + dx - p + sh]
// with p = k/2, sh the one-pixel shift of a factorised reduce, zero outside the image, no bias.
//
// Two entry points share the geometry and the weight staging:
// - `dense` reads f32 input (the stem's analog pixels, or any real-valued tensor);
// - `spiking` reads the bit-packed spike record of a LIF population and adds a weight only where
//   the input bit is set: no multiply, and silent inputs cost a bit test.
// Both accumulate in the CPU's order (i, then dy, then dx). With 0/1 inputs the spiking sum equals
// the CPU's term by term (w * 1 = w exactly, w * 0 adds +0), so it is bit-exact; the dense one may
// differ by FMA contraction and is compared with a tolerance.

//! import shared/bitpack.wgsl

struct Params {
    images: u32,   // T * B
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    k: u32,
    stride: u32,
    shift: u32,
    ho: u32,
    wo: u32,
    x_off: u32,    // element offset of the input (f32) or of the packed record (u32 words)
    w_off: u32,
    out_off: u32,
    in_words: u32, // words per packed input row, ceil(cin * h * w / 32)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> packed: array<u32>;

// One workgroup = 64 output pixels of one (image, output channel); the weights of that channel
// are staged through workgroup memory CI_TILE input channels at a time. CI_TILE * 25 floats
// (k = 5) = 12,800 B, under the 16 KiB default with room for the compiler's own use; 64 threads
// keep the tile load short and are a multiple of every subgroup size.
// Dispatch: x = ceil(Ho * Wo / 64), y = Cout, z = T * B.
const CI_TILE: u32 = 128u;
var<workgroup> wtile: array<f32, 3200>;

struct Tap {
    img: u32,
    o: u32,
    oy: i32,
    ox: i32,
    live: bool,
}

fn tap(wg: vec3<u32>, lid: u32) -> Tap {
    let pix = wg.x * 64u + lid;
    var t: Tap;
    t.img = wg.z;
    t.o = wg.y;
    t.live = pix < p.ho * p.wo;
    t.oy = i32(pix / p.wo) * i32(p.stride) - i32(p.k / 2u) + i32(p.shift);
    t.ox = i32(pix % p.wo) * i32(p.stride) - i32(p.k / 2u) + i32(p.shift);
    return t;
}

fn out_index(t: Tap, wg: vec3<u32>, lid: u32) -> u32 {
    return p.out_off + (t.img * p.cout + t.o) * p.ho * p.wo + wg.x * 64u + lid;
}

// Stage w[o, i0 .. i0 + CI_TILE, :, :] (or less at the end) into `wtile`.
fn stage_weights(o: u32, i0: u32, lid: u32) {
    let kk = p.k * p.k;
    let count = min(CI_TILE, p.cin - i0) * kk;
    let base = p.w_off + (o * p.cin + i0) * kk;
    for (var j = lid; j < count; j += 64u) {
        wtile[j] = weights[base + j];
    }
}

@compute @workgroup_size(64)
fn dense(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = tap(wg, lid);
    let kk = p.k * p.k;
    let h = i32(p.h);
    let w = i32(p.w);
    var acc = 0.0;
    for (var i0 = 0u; i0 < p.cin; i0 += CI_TILE) {
        workgroupBarrier();
        stage_weights(t.o, i0, lid);
        workgroupBarrier();
        if t.live {
            let ci = min(CI_TILE, p.cin - i0);
            for (var i = 0u; i < ci; i++) {
                let plane = p.x_off + (t.img * p.cin + i0 + i) * p.h * p.w;
                for (var dy = 0u; dy < p.k; dy++) {
                    let iy = t.oy + i32(dy);
                    if iy < 0 || iy >= h {
                        continue;
                    }
                    for (var dx = 0u; dx < p.k; dx++) {
                        let ix = t.ox + i32(dx);
                        if ix < 0 || ix >= w {
                            continue;
                        }
                        acc += wtile[i * kk + dy * p.k + dx] * x[plane + u32(iy * w + ix)];
                    }
                }
            }
        }
    }
    if t.live {
        out[out_index(t, wg, lid)] = acc;
    }
}

@compute @workgroup_size(64)
fn spiking(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = tap(wg, lid);
    let kk = p.k * p.k;
    let h = i32(p.h);
    let w = i32(p.w);
    let row = p.x_off + t.img * p.in_words;
    var acc = 0.0;
    for (var i0 = 0u; i0 < p.cin; i0 += CI_TILE) {
        workgroupBarrier();
        stage_weights(t.o, i0, lid);
        workgroupBarrier();
        if t.live {
            let ci = min(CI_TILE, p.cin - i0);
            for (var i = 0u; i < ci; i++) {
                let plane = (i0 + i) * p.h * p.w;
                for (var dy = 0u; dy < p.k; dy++) {
                    let iy = t.oy + i32(dy);
                    if iy < 0 || iy >= h {
                        continue;
                    }
                    for (var dx = 0u; dx < p.k; dx++) {
                        let ix = t.ox + i32(dx);
                        if ix < 0 || ix >= w {
                            continue;
                        }
                        let n = plane + u32(iy * w + ix);
                        if bit_set(packed[row + word_of(n)], n) {
                            acc += wtile[i * kk + dy * p.k + dx];
                        }
                    }
                }
            }
        }
    }
    if t.live {
        out[out_index(t, wg, lid)] = acc;
    }
}
