// The convolution's gradients as implicit GEMMs tiled in workgroup memory, over the geometry of
// shaders/conv.wgsl; `weight` (and `sum_splits`) are described further down.
//
// `input`: the twin of cpu::grad::conv2d_backward_input (and of shaders/grad_conv.wgsl's direct
// `input`):
//   gx[img,i,iy,ix] = sum_{o,dy,dx} w[o,i,dy,dx] * gy[img,o,oy,ox]
// over the taps whose output position (oy, ox) reads (iy, ix): iy = oy*s + dy + base,
// base = shift - k/2. As a GEMM: C[i, col] = sum_kk A[i, kk] * B[kk, col] with kk = (o*k + dy)*k
// + dx, A = w read transposed, col = (img, iy, ix) over all T*B images, and B gathered from gy
// while it is staged (zero where no output position reads the pixel through that tap).
//
// The tiling is shaders/conv_gemm.wgsl's: 32 x 64 tiles of C, 128 threads with 4 x 4 register
// tiles, K chunks of 16 loaded into registers while the current chunk is multiplied. Each gx
// element sums its terms in ascending kk, the CPU's (o, dy, dx) order, with unfused products
// (shared/unfused.wgsl); padding terms add w * 0 or 0 * g, which leaves the sum unchanged; so
// the result is bit-identical with the CPU.
// Dispatch: x * z = ceil(N / 64) column tiles (x at most 65,535), y = ceil(Cin / 32).

//! import shared/grid.wgsl


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
    a_off: u32,   // gy
    b_off: u32,   // w
    out_off: u32, // gx
    zero: u32,    // 0: see shared/unfused.wgsl
    cols: u32,    // N: images * h * w (input); cin * k * k (weight, sum_splits)
    kdim: u32,    // K: cout * k * k (input); images * ho * wo (weight)
    splits: u32,  // weight: K is cut into this many slices (1: no split)
    split_len: u32, // weight: positions per slice
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

//! import shared/gemm_tile.wgsl

// The input pixel this thread stages: its image and coordinates.
struct Col {
    img: u32,
    iy: u32,
    ix: u32,
    live: bool,
}

fn column(n0: u32, lid: u32) -> Col {
    let col = n0 + lid % BN;
    let plane = p.h * p.w;
    var c: Col;
    c.live = col < p.cols;
    let cc = min(col, p.cols - 1u);
    c.img = cc / plane;
    let pix = cc % plane;
    c.iy = pix / p.w;
    c.ix = pix % p.w;
    return c;
}

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

// The gy element of tap `kk` for column `c`, or 0.
fn gy_at(c: Col, kk: u32) -> f32 {
    if !c.live || kk >= p.kdim {
        return 0.0;
    }
    let kk2 = p.k * p.k;
    let o = kk / kk2;
    let r = kk % kk2;
    let oy = source(c.iy, r / p.k, p.ho);
    let ox = source(c.ix, r % p.k, p.wo);
    if oy < 0 || ox < 0 {
        return 0.0;
    }
    return a[p.a_off + ((c.img * p.cout + o) * p.ho + u32(oy)) * p.wo + u32(ox)];
}

// The weights of chunk `k0` this thread stages: rows (input channels) m0 + lid / 16 + 8 j,
// column k0 + lid % 16.
fn load_a(m0: u32, k0: u32, lid: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    let kk = k0 + lid % BK;
    let kk2 = p.k * p.k;
    let o = kk / kk2;
    let r = kk % kk2;
    for (var j = 0u; j < 4u; j++) {
        let i = m0 + lid / BK + 8u * j;
        if i < p.cin && kk < p.kdim {
            v[j] = b[p.b_off + (o * p.cin + i) * kk2 + r];
        }
    }
    return v;
}

// B rows this thread stages: lid / 64 + 2 j (j < 8), its column lid % 64.
fn load_b(c: Col, k0: u32, lid: u32, half: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        v[j] = gy_at(c, k0 + lid / BN + 2u * (j + 4u * half));
    }
    return v;
}

// acc[r][c] += A[tm + 8r, kk] * B[kk, tn + 16c] over the staged chunk, kk ascending, each
// product rounded on its own.
fn multiply_unfused(acc: ptr<function, array<vec4<f32>, 4>>, lid: u32) {
    let tm = lid / 16u;
    let tn = lid % 16u;
    for (var kk = 0u; kk < BK; kk++) {
        let ar = kk * A_STRIDE + tm;
        let br = kk * BN + tn;
        let g = vec4<f32>(b_tile[br], b_tile[br + 16u], b_tile[br + 32u], b_tile[br + 48u]);
        for (var r = 0u; r < 4u; r++) {
            let prod = a_tile[ar + 8u * r] * g;
            (*acc)[r] += bitcast<vec4<f32>>(bitcast<vec4<u32>>(prod) ^ vec4<u32>(p.zero));
        }
    }
}

fn store_out(acc: ptr<function, array<vec4<f32>, 4>>, m0: u32, n0: u32, lid: u32) {
    let tm = lid / 16u;
    let tn = lid % 16u;
    let plane = p.h * p.w;
    for (var c = 0u; c < 4u; c++) {
        let col = n0 + tn + 16u * c;
        if col >= p.cols {
            continue;
        }
        let img = col / plane;
        let pix = col % plane;
        for (var r = 0u; r < 4u; r++) {
            let i = m0 + tm + 8u * r;
            if i < p.cin {
                out[p.out_off + (img * p.cin + i) * plane + pix] = (*acc)[r][c];
            }
        }
    }
}

@compute @workgroup_size(128)
fn input(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let m0 = wg.y * BM;
    let n0 = (wg.z * groups.x + wg.x) * BN;
    let c = column(n0, lid);
    var acc: array<vec4<f32>, 4>;
    let chunks = (p.kdim + BK - 1u) / BK;
    var av = load_a(m0, 0u, lid);
    var lo = load_b(c, 0u, lid, 0u);
    var hi = load_b(c, 0u, lid, 1u);
    store_a(av, lid);
    store_b(lo, hi, lid);
    workgroupBarrier();
    for (var ch = 0u; ch < chunks; ch++) {
        let next = (ch + 1u) * BK;
        let more = ch + 1u < chunks;
        if more {
            av = load_a(m0, next, lid);
            lo = load_b(c, next, lid, 0u);
            hi = load_b(c, next, lid, 1u);
        }
        multiply_unfused(&acc, lid);
        workgroupBarrier();
        if more {
            store_a(av, lid);
            store_b(lo, hi, lid);
        }
        workgroupBarrier();
    }
    store_out(&acc, m0, n0, lid);
}

// ---------------------------------------------------------------- weight gradient
//
// `weight`: the twin of cpu::grad::conv2d_backward_weight. gw[o, kk] = sum_q gy[o, q] * X[q, kk]
// with kk = (i*k + dy)*k + dx (the weight layout), q = (img, oy, ox) over every image's output
// positions and X the im2col of x, gathered while staged. The same 32 x 64 tiles (output
// channels x weight columns) and 4 x 4 register tiles; the long sum over q is cut into `splits`
// slices of `split_len` positions (split-K, the workgroup's z), each slice summed in ascending q
// into its own partial tile (`out` is then a scratch buffer [splits][cout][cin*k*k]), and
// `sum_splits` adds the slices in order into gw. Deterministic; not the CPU's order, so equal to
// it within f32 rounding of the sum of |terms|. With one slice `weight` writes gw directly.
// Dispatch: x = ceil(cin*k*k / 64), y = ceil(Cout / 32), z = splits.

// The weight column this thread stages: input channel and tap.
struct WCol {
    i: u32,
    dy: i32,
    dx: i32,
    live: bool,
}

fn wcolumn(n0: u32, lid: u32) -> WCol {
    let kk = n0 + lid % BN;
    let kk2 = p.k * p.k;
    var c: WCol;
    c.live = kk < p.cols;
    let r = kk % kk2;
    c.i = kk / kk2;
    c.dy = i32(r / p.k) + i32(p.shift) - i32(p.k / 2u);
    c.dx = i32(r % p.k) + i32(p.shift) - i32(p.k / 2u);
    return c;
}

// gy rows this thread stages: output channels m0 + lid / 16 + 8 j at position q0 + lid % 16.
fn wload_a(m0: u32, q0: u32, end: u32, lid: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    let q = q0 + lid % BK;
    let plane = p.ho * p.wo;
    let img = q / plane;
    let pix = q % plane;
    for (var j = 0u; j < 4u; j++) {
        let o = m0 + lid / BK + 8u * j;
        if o < p.cout && q < end {
            v[j] = b[p.b_off + (img * p.cout + o) * plane + pix];
        }
    }
    return v;
}

// x at positions q0 + lid / 64 + 2 j (j < 8) for this thread's weight column.
fn wload_b(c: WCol, q0: u32, end: u32, lid: u32, half: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    let plane = p.ho * p.wo;
    for (var j = 0u; j < 4u; j++) {
        let q = q0 + lid / BN + 2u * (j + 4u * half);
        if !c.live || q >= end {
            continue;
        }
        let img = q / plane;
        let pix = q % plane;
        let iy = i32((pix / p.wo) * p.stride) + c.dy;
        let ix = i32((pix % p.wo) * p.stride) + c.dx;
        if iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w) {
            v[j] = a[p.a_off + ((img * p.cin + c.i) * p.h + u32(iy)) * p.w + u32(ix)];
        }
    }
    return v;
}

@compute @workgroup_size(128)
fn weight(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    let begin = wg.z * p.split_len;
    let end = min(p.kdim, begin + p.split_len);
    let c = wcolumn(n0, lid);
    var acc: array<vec4<f32>, 4>;
    let chunks = (p.split_len + BK - 1u) / BK;
    var av = wload_a(m0, begin, end, lid);
    var lo = wload_b(c, begin, end, lid, 0u);
    var hi = wload_b(c, begin, end, lid, 1u);
    store_a(av, lid);
    store_b(lo, hi, lid);
    workgroupBarrier();
    for (var ch = 0u; ch < chunks; ch++) {
        let next = begin + (ch + 1u) * BK;
        let more = ch + 1u < chunks;
        if more {
            av = wload_a(m0, next, end, lid);
            lo = wload_b(c, next, end, lid, 0u);
            hi = wload_b(c, next, end, lid, 1u);
        }
        multiply(&acc, lid);
        workgroupBarrier();
        if more {
            store_a(av, lid);
            store_b(lo, hi, lid);
        }
        workgroupBarrier();
    }
    let tm = lid / 16u;
    let tn = lid % 16u;
    for (var cc = 0u; cc < 4u; cc++) {
        let kk = n0 + tn + 16u * cc;
        for (var r = 0u; r < 4u; r++) {
            let o = m0 + tm + 8u * r;
            if kk < p.cols && o < p.cout {
                out[p.out_off + (wg.z * p.cout + o) * p.cols + kk] = acc[r][cc];
            }
        }
    }
}

// gw[j] = sum over slices s = 0, 1, ... of partial[s][j], in that order; `a` holds the partial
// tiles at a_off, `out` gw at out_off. Dispatch: ceil(cout * cin * k * k / 256) workgroups over
// x and y (shared/grid.wgsl).
@compute @workgroup_size(256)
fn sum_splits(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let j = flat_index(wg, nwg, lid, 256u);
    let len = p.cout * p.cols;
    if j >= len {
        return;
    }
    var acc = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        acc += a[p.a_off + s * len + j];
    }
    out[p.out_off + j] = acc;
}
