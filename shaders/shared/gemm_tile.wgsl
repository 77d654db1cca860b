// The tiling the implicit-GEMM convolutions share (shaders/conv_gemm.wgsl,
// shaders/grad_conv_gemm.wgsl): a workgroup of 128 threads computes a BM x BN = 32 x 64 tile of
// C = A B, each thread a 4 x 4 register tile (rows tm + 8r, columns tn + 16c with tm = lid / 16,
// tn = lid % 16: conflict-free reads of the B tile, coalesced stores), K advancing in chunks of
// BK = 16 staged in workgroup memory. The A tile's rows are A_STRIDE = 33 apart so that its
// staging writes do not all hit one bank.

const BM: u32 = 32u;
const BN: u32 = 64u;
const BK: u32 = 16u;
const A_STRIDE: u32 = 33u; // BM + 1
var<workgroup> a_tile: array<f32, 528>;  // [BK][A_STRIDE]
var<workgroup> b_tile: array<f32, 1024>; // [BK][BN]

// A values this thread staged: rows lid / 16 + 8 j (j < 4) of K-column lid % 16.
fn store_a(v: vec4<f32>, lid: u32) {
    for (var j = 0u; j < 4u; j++) {
        a_tile[(lid % BK) * A_STRIDE + lid / BK + 8u * j] = v[j];
    }
}

// B values this thread staged: K-rows lid / 64 + 2 j (j < 8), its column lid % 64.
fn store_b(lo: vec4<f32>, hi: vec4<f32>, lid: u32) {
    let c = lid % BN;
    let r = lid / BN;
    for (var j = 0u; j < 4u; j++) {
        b_tile[(r + 2u * j) * BN + c] = lo[j];
        b_tile[(r + 2u * (j + 4u)) * BN + c] = hi[j];
    }
}

// acc[r][c] += A[tm + 8r, kk] * B[kk, tn + 16c] over the staged chunk, kk ascending (products
// may fuse with the sum).
fn multiply(acc: ptr<function, array<vec4<f32>, 4>>, lid: u32) {
    let tm = lid / 16u;
    let tn = lid % 16u;
    for (var kk = 0u; kk < BK; kk++) {
        let ar = kk * A_STRIDE + tm;
        let br = kk * BN + tn;
        let b = vec4<f32>(b_tile[br], b_tile[br + 16u], b_tile[br + 32u], b_tile[br + 48u]);
        for (var r = 0u; r < 4u; r++) {
            (*acc)[r] += a_tile[ar + 8u * r] * b;
        }
    }
}
