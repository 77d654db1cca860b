// 2-D convolution as an implicit GEMM tiled in workgroup memory: the same result as
// shaders/conv.wgsl (the twin of cpu::conv::conv2d),
//   out[img,o,oy,ox] = sum_{i,dy,dx} w[o,i,dy,dx] * in[img,i, oy*s + dy - p + sh, ox*s + dx - p + sh],
// read as C[o, col] = sum_kk A[o, kk] * B[kk, col] with A = w viewed as [Cout, K] (K = Cin*k*k,
// kk = (i*k + dy)*k + dx), col = (img, oy, ox) over all T*B images and B the im2col matrix, never
// stored: each K chunk of B is gathered from the input while it is staged (for `spiking`, the
// input's bit-packed spike record is unpacked to 0/1 right there).
//
// One workgroup computes a BM x BN = 32 x 64 tile of C with 128 threads, each owning a 4 x 4
// register tile (rows tm + 8r, columns tn + 16c: conflict-free reads of the B tile, coalesced
// stores). K advances in chunks of BK = 16: the next chunk is loaded into registers while the
// current one is multiplied out of workgroup memory, then stored behind a barrier (double
// buffering through registers). The A tile has a row stride of 33 so that its staging writes do
// not all hit one bank. Each output sums its K terms in ascending kk, which is the CPU's (i, dy,
// dx) order; padding terms (past K, outside the image, past Cout or the last column) add w * 0
// or 0 * x, which leaves the sum unchanged. So `spiking` (0/1 inputs: w * 1 = w exactly) is
// bit-exact with the CPU, and `dense` differs only by FMA contraction.
// Dispatch: x * z = ceil(N / 64) column tiles (x at most 65,535), y = ceil(Cout / 32).

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
    cols: u32,     // N = images * ho * wo
    kdim: u32,     // K = cin * k * k
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> packed: array<u32>;

//! import shared/gemm_tile.wgsl

// The column this thread stages: its image and the input coordinate of tap (0, 0).
struct Col {
    img: u32,
    iy0: i32,
    ix0: i32,
    live: bool,
}

fn column(n0: u32, lid: u32) -> Col {
    let col = n0 + lid % BN;
    let plane = p.ho * p.wo;
    var c: Col;
    c.live = col < p.cols;
    let cc = min(col, p.cols - 1u);
    c.img = cc / plane;
    let pix = cc % plane;
    c.iy0 = i32(pix / p.wo) * i32(p.stride) - i32(p.k / 2u) + i32(p.shift);
    c.ix0 = i32(pix % p.wo) * i32(p.stride) - i32(p.k / 2u) + i32(p.shift);
    return c;
}

// Input element index (within one image's [cin, h, w]) of tap `kk` for column `c`, or -1 where
// the tap falls outside the image, past K, or the column is past N.
fn tap(c: Col, kk: u32) -> i32 {
    if !c.live || kk >= p.kdim {
        return -1;
    }
    let kk2 = p.k * p.k;
    let i = kk / kk2;
    let r = kk % kk2;
    let iy = c.iy0 + i32(r / p.k);
    let ix = c.ix0 + i32(r % p.k);
    if iy < 0 || iy >= i32(p.h) || ix < 0 || ix >= i32(p.w) {
        return -1;
    }
    return i32((i * p.h + u32(iy)) * p.w + u32(ix));
}

// The weights of chunk `k0` this thread stages: rows m0 + lid / 16 + 8 j, column k0 + lid % 16.
fn load_a(m0: u32, k0: u32, lid: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    let kk = k0 + lid % BK;
    for (var j = 0u; j < 4u; j++) {
        let o = m0 + lid / BK + 8u * j;
        if o < p.cout && kk < p.kdim {
            v[j] = weights[p.w_off + o * p.kdim + kk];
        }
    }
    return v;
}

// B rows this thread stages: lid / 64 + 2 j (j < 8), its column lid % 64.
fn load_b_dense(c: Col, k0: u32, lid: u32, half: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    let base = p.x_off + c.img * p.cin * p.h * p.w;
    for (var j = 0u; j < 4u; j++) {
        let t = tap(c, k0 + lid / BN + 2u * (j + 4u * half));
        if t >= 0 {
            v[j] = x[base + u32(t)];
        }
    }
    return v;
}

fn load_b_spiking(c: Col, k0: u32, lid: u32, half: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    let row = p.x_off + c.img * p.in_words;
    for (var j = 0u; j < 4u; j++) {
        let t = tap(c, k0 + lid / BN + 2u * (j + 4u * half));
        if t >= 0 && bit_set(packed[row + word_of(u32(t))], u32(t)) {
            v[j] = 1.0;
        }
    }
    return v;
}

fn store_out(acc: ptr<function, array<vec4<f32>, 4>>, m0: u32, n0: u32, lid: u32) {
    let tm = lid / 16u;
    let tn = lid % 16u;
    let plane = p.ho * p.wo;
    for (var c = 0u; c < 4u; c++) {
        let col = n0 + tn + 16u * c;
        if col >= p.cols {
            continue;
        }
        let img = col / plane;
        let pix = col % plane;
        for (var r = 0u; r < 4u; r++) {
            let o = m0 + tm + 8u * r;
            if o < p.cout {
                out[p.out_off + (img * p.cout + o) * plane + pix] = (*acc)[r][c];
            }
        }
    }
}

fn n0_of(wg: vec3<u32>, groups: vec3<u32>) -> u32 {
    return (wg.z * groups.x + wg.x) * BN;
}

@compute @workgroup_size(128)
fn dense(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let m0 = wg.y * BM;
    let n0 = n0_of(wg, groups);
    let c = column(n0, lid);
    var acc: array<vec4<f32>, 4>;
    let chunks = (p.kdim + BK - 1u) / BK;
    var a = load_a(m0, 0u, lid);
    var lo = load_b_dense(c, 0u, lid, 0u);
    var hi = load_b_dense(c, 0u, lid, 1u);
    store_a(a, lid);
    store_b(lo, hi, lid);
    workgroupBarrier();
    for (var ch = 0u; ch < chunks; ch++) {
        let next = (ch + 1u) * BK;
        let more = ch + 1u < chunks;
        if more {
            a = load_a(m0, next, lid);
            lo = load_b_dense(c, next, lid, 0u);
            hi = load_b_dense(c, next, lid, 1u);
        }
        multiply(&acc, lid);
        workgroupBarrier();
        if more {
            store_a(a, lid);
            store_b(lo, hi, lid);
        }
        workgroupBarrier();
    }
    store_out(&acc, m0, n0, lid);
}

@compute @workgroup_size(128)
fn spiking(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let m0 = wg.y * BM;
    let n0 = n0_of(wg, groups);
    let c = column(n0, lid);
    var acc: array<vec4<f32>, 4>;
    let chunks = (p.kdim + BK - 1u) / BK;
    var a = load_a(m0, 0u, lid);
    var lo = load_b_spiking(c, 0u, lid, 0u);
    var hi = load_b_spiking(c, 0u, lid, 1u);
    store_a(a, lid);
    store_b(lo, hi, lid);
    workgroupBarrier();
    for (var ch = 0u; ch < chunks; ch++) {
        let next = (ch + 1u) * BK;
        let more = ch + 1u < chunks;
        if more {
            a = load_a(m0, next, lid);
            lo = load_b_spiking(c, next, lid, 0u);
            hi = load_b_spiking(c, next, lid, 1u);
        }
        multiply(&acc, lid);
        workgroupBarrier();
        if more {
            store_a(a, lid);
            store_b(lo, hi, lid);
        }
        workgroupBarrier();
    }
    store_out(&acc, m0, n0, lid);
}
