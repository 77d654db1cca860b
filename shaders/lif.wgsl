// Multi-step LIF (decay-input, hard reset; docs/design.md), the twin of cpu::lif::lif.
//
// Input currents x: [T][B][N] f32. Outputs: spikes as f32 0/1 in the same layout (skipped when
// `write_f32` is 0), the bit-packed record [T][B][words] of docs/design.md, words = ceil(N/32),
// and, when `count` is 1 (`run` only), the spike count of every (t, sample) row added into
// `count_out` [T][B] (zeroed before the dispatch; integer atomics, so the sum does not depend on
// order): the firing-rate statistics without a second pass over the record. `run_bn` binds four
// storage buffers already, the most a downlevel device allows, so its counts stay a separate
// pass (shaders/rdm.wgsl `counts`).
//
// Packing layout choice: we keep the design's per-sample row layout (neuron (c*H + y)*W + x is bit
// n % 32 of word n / 32) for the spiking convolution too. A k x k window of one input channel
// then lies within k short runs of consecutive bits (at most 2k words per channel for W <= 32),
// which stay in cache across the window, and the very same record feeds the RDM kernel without a
// second pack. A channel-interleaved layout would need a transpose for fitness.

//! import shared/bitpack.wgsl

struct Params {
    n: u32,          // neurons per sample row (C * H * W)
    batch: u32,      // B
    steps: u32,      // T
    words: u32,      // ceil(n / 32)
    x_off: u32,
    s_off: u32,
    w_off: u32,
    write_f32: u32,
    tau_inv: f32,
    v_th: f32,
    // `run_bn` only: the batch norm and gate applied to x first (shaders/batchnorm.wgsl).
    hw: u32,         // H * W: neuron n is in channel n / hw
    mean_off: u32,
    var_off: u32,
    gamma_off: u32,
    beta_off: u32,
    gate: u32,       // 0 none, 1 excitatory max(z, 0), 2 inhibitory min(z, 0)
    eps: f32,
    count: u32,      // 1: add each row's spike count into count_out (`run` only)
    count_off: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> spikes: array<f32>;
@group(0) @binding(3) var<storage, read_write> packed: array<u32>;
@group(0) @binding(4) var<storage, read> bn_stats: array<f32>;
@group(0) @binding(5) var<storage, read> bn_affine: array<f32>;
@group(0) @binding(6) var<storage, read_write> count_out: array<atomic<u32>>;

// 256 neurons of one sample per workgroup = 8 whole words, so a word never spans workgroups and
// packing needs only 8 u32 of workgroup memory (integer atomics are core WGSL; no subgroup
// ballot, whose width varies by device). Dispatch: x = ceil(N / 256), y = B.
var<workgroup> bits: array<atomic<u32>, 8>;

@compute @workgroup_size(256)
fn run(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = wg.y;
    let n = wg.x * 256u + lid;
    let live = n < p.n;
    var v = 0.0;
    for (var t = 0u; t < p.steps; t++) {
        let row = t * p.batch + b;
        var s = 0.0;
        if live {
            let xt = x[p.x_off + row * p.n + n];
            v = v + (xt - v) * p.tau_inv;
            s = select(0.0, 1.0, v > p.v_th);
            v = v * (1.0 - s);
            if p.write_f32 != 0u {
                spikes[p.s_off + row * p.n + n] = s;
            }
            if s != 0.0 {
                atomicOr(&bits[lid >> 5u], 1u << (lid & 31u));
            }
        }
        workgroupBarrier();
        if lid < 8u {
            let w = wg.x * 8u + lid;
            let word = atomicExchange(&bits[lid], 0u);
            if w < p.words {
                packed[p.w_off + row * p.words + w] = word;
                if p.count != 0u && word != 0u {
                    atomicAdd(&count_out[p.count_off + row], countOneBits(word));
                }
            }
        }
        workgroupBarrier();
    }
}

// `run` with the batch norm and sign gate that feed the population applied on the fly: the input
// current is batchnorm::apply's `gate((x - mean) / sqrt(var + eps) * gamma + beta)`, the same
// expression, so the spikes are those of `apply` then `run`, without writing and re-reading the
// normalised tensor (one dispatch and 2 x T*B*N floats of traffic fewer). Packed spikes only.
// Dispatch: x = ceil(N / 256), y = B.
@compute @workgroup_size(256)
fn run_bn(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = wg.y;
    let n = wg.x * 256u + lid;
    let live = n < p.n;
    let c = min(n, p.n - 1u) / p.hw;
    let mean = bn_stats[p.mean_off + c];
    let sd = sqrt(bn_stats[p.var_off + c] + p.eps);
    let gamma = bn_affine[p.gamma_off + c];
    let beta = bn_affine[p.beta_off + c];
    var v = 0.0;
    for (var t = 0u; t < p.steps; t++) {
        let row = t * p.batch + b;
        if live {
            let z = (x[p.x_off + row * p.n + n] - mean) / sd * gamma + beta;
            var xt = z;
            if p.gate == 1u {
                xt = max(z, 0.0);
            } else if p.gate == 2u {
                xt = min(z, 0.0);
            }
            v = v + (xt - v) * p.tau_inv;
            let s = select(0.0, 1.0, v > p.v_th);
            v = v * (1.0 - s);
            if s != 0.0 {
                atomicOr(&bits[lid >> 5u], 1u << (lid & 31u));
            }
        }
        workgroupBarrier();
        if lid < 8u {
            let w = wg.x * 8u + lid;
            let word = atomicExchange(&bits[lid], 0u);
            if w < p.words {
                packed[p.w_off + row * p.words + w] = word;
            }
        }
        workgroupBarrier();
    }
}
