// Per-population statistics of bit-packed spike records [T][B][words] (docs/design.md), the twin
// of fitness::spikes::population_stats: the B x B Hamming distances per step (XOR + popcount),
// the per-(t, sample) spike counts and the B x B inner products of time-summed counts, as u32.
// Integer sums are exact and order-free, so they equal the CPU's (fitness::spikes) bit for bit.
// With `accumulate` = 1 the results are added to what the output holds (sums over populations).

struct Params {
    batch: u32,
    steps: u32,
    words: u32,
    accumulate: u32,
    rec_off: u32,
    ham_off: u32,   // hamming [T][B][B]
    count_off: u32, // counts [T][B]
    dot_off: u32,   // summed_dot [B][B]
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> rec: array<u32>;
@group(0) @binding(2) var<storage, read_write> hamming: array<u32>;
@group(0) @binding(3) var<storage, read_write> count_out: array<u32>;
@group(0) @binding(4) var<storage, read_write> dot_out: array<atomic<u32>>;

// A 16 x 16 tile of sample pairs per workgroup; the 16 + 16 rows are staged CHUNK words at a time:
// 2 * 16 * 65 * 4 B = 8.1 KiB of workgroup memory (half the 16 KiB default, so two workgroups can
// share a compute unit). Each staged word is reused 16 times from workgroup memory. Staged rows
// are ROW = CHUNK + 1 words apart: the 16 threads of a row of the tile read word w of 16
// different j rows at once, which a stride of 64 words would put in one bank (a 16-way
// conflict); with 65 they fall in 16 different banks.
// Dispatch: x = ceil(B / 16) (j tiles), y = ceil(B / 16) (i tiles), z = T.
const TILE: u32 = 16u;
const CHUNK: u32 = 64u;
const ROW: u32 = 65u;
var<workgroup> rows_i: array<u32, 1040>;
var<workgroup> rows_j: array<u32, 1040>;

// Sum over the CHUNK words from w0 of op(row i at step ti, row j at step tj) for this thread's
// pair, with op = XOR (Hamming) or AND (inner product of spike rows). Called in uniform control
// flow.
fn pair_chunk(
    ti: u32, tj: u32, i0: u32, j0: u32, w0: u32, lid: vec3<u32>, li: u32, use_and: bool,
) -> u32 {
    let base_i = p.rec_off + ti * p.batch * p.words;
    let base_j = p.rec_off + tj * p.batch * p.words;
    var acc = 0u;
    {
        // 256 threads load 16 rows x 64 words of each side, 4 words per thread per side.
        for (var e = li; e < TILE * CHUNK; e += 256u) {
            let r = e / CHUNK;
            let w = w0 + e % CHUNK;
            var a = 0u;
            var b = 0u;
            if w < p.words && i0 + r < p.batch {
                a = rec[base_i + (i0 + r) * p.words + w];
            }
            if w < p.words && j0 + r < p.batch {
                b = rec[base_j + (j0 + r) * p.words + w];
            }
            rows_i[r * ROW + e % CHUNK] = a;
            rows_j[r * ROW + e % CHUNK] = b;
        }
        workgroupBarrier();
        // Zero padding past the row's end gives zero under XOR and AND: no bound check here.
        if use_and {
            for (var w = 0u; w < CHUNK; w++) {
                acc += countOneBits(rows_i[lid.y * ROW + w] & rows_j[lid.x * ROW + w]);
            }
        } else {
            for (var w = 0u; w < CHUNK; w++) {
                acc += countOneBits(rows_i[lid.y * ROW + w] ^ rows_j[lid.x * ROW + w]);
            }
        }
        workgroupBarrier();
    }
    return acc;
}

// `pair_chunk` over all words.
fn pair_tile(ti: u32, tj: u32, i0: u32, j0: u32, lid: vec3<u32>, li: u32, use_and: bool) -> u32 {
    var acc = 0u;
    for (var w0 = 0u; w0 < p.words; w0 += CHUNK) {
        acc += pair_chunk(ti, tj, i0, j0, w0, lid, li, use_and);
    }
    return acc;
}

// hamming[t][i][j] = popcount(x_ti ^ x_tj). Dispatch: x = ceil(B / 16) (j tiles),
// y = ceil(B / 16) (i tiles), z = T.
@compute @workgroup_size(16, 16)
fn pairs(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let t = wg.z;
    let i = wg.y * TILE + lid.y;
    let j = wg.x * TILE + lid.x;
    let acc = pair_tile(t, t, wg.y * TILE, wg.x * TILE, lid, li, false);
    if i < p.batch && j < p.batch {
        let o = p.ham_off + (t * p.batch + i) * p.batch + j;
        hamming[o] = select(0u, hamming[o], p.accumulate != 0u) + acc;
    }
}

// summed_dot[i][j] = sum over t, t' of popcount(x_ti & x_t'j) = sum_n C_i(n) C_j(n), with C the
// time-summed spike count (the Pearson sums of `rdm_corr`). At most N T^2, which fits u32 for
// every network here (the host widens to u64). The T^2 x words work of a pair is split over
// workgroups, one (step t, 64-word chunk) each, and summed with integer atomics (exact, order
// free): a single invocation looping over all of it runs into the loop-iteration cap of CPU
// drivers (llvmpipe stops a shader's loops after 65,535 iterations) and leaves a GPU with only
// (B/16)^2 workgroups. The launcher zeroes the output first unless accumulating.
// Dispatch: x = y = ceil(B / 16), z = T * ceil(words / 64).
@compute @workgroup_size(16, 16)
fn dots(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = wg.y * TILE + lid.y;
    let j = wg.x * TILE + lid.x;
    let t = wg.z % p.steps;
    let w0 = (wg.z / p.steps) * CHUNK;
    var acc = 0u;
    for (var t2 = 0u; t2 < p.steps; t2++) {
        acc += pair_chunk(t, t2, wg.y * TILE, wg.x * TILE, w0, lid, li, true);
    }
    if i < p.batch && j < p.batch && acc != 0u {
        atomicAdd(&dot_out[p.dot_off + i * p.batch + j], acc);
    }
}

//! import shared/grid.wgsl

// Spike count per (t, sample): popcount of the row. Dispatch: 2-D grid over ceil(T * B / 256).
@compute @workgroup_size(256)
fn counts(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = flat_index(wg, nwg, lid, 256u);
    if r >= p.steps * p.batch {
        return;
    }
    var acc = 0u;
    for (var w = 0u; w < p.words; w++) {
        acc += countOneBits(rec[p.rec_off + r * p.words + w]);
    }
    let o = p.count_off + r;
    count_out[o] = select(0u, count_out[o], p.accumulate != 0u) + acc;
}
