//! Leaky integrate-and-fire neurons (decay-input form, hard reset) and spike packing.
//!
//! For each neuron, `v = 0` at t = 0; for t in 0..T:
//! `v = v + (x_t - v) * tau_inv`; `s = (v > v_th) as f32`; `v = v * (1 - s)`.

/// LIF parameters. `tau_inv` is `1/tau` as an f32 (tau = 2 gives exactly 0.5).
#[derive(Clone, Copy, Debug)]
pub struct LifParams {
    pub tau_inv: f32,
    pub v_th: f32,
}

impl Default for LifParams {
    fn default() -> Self {
        LifParams {
            tau_inv: 0.5,
            v_th: 0.5,
        }
    }
}

use rayon::prelude::*;

/// Neurons per parallel task: every neuron runs the same f32 operations in the same order
/// whatever the split, so results do not depend on it (or on the thread count).
pub(crate) const CHUNK: usize = 4096;

/// Runs `n` independent LIF neurons over `t` steps. `x` and `spikes` are `[T, n]`; spikes are
/// f32 0/1.
pub fn lif(x: &[f32], t: usize, n: usize, p: LifParams, spikes: &mut [f32]) {
    assert_eq!(x.len(), t * n, "lif: x must be [T, n]");
    assert_eq!(spikes.len(), t * n, "lif: spikes must be [T, n]");
    let mut v = vec![0.0f32; n];
    for step in 0..t {
        let xs = &x[step * n..(step + 1) * n];
        let ss = &mut spikes[step * n..(step + 1) * n];
        v.par_chunks_mut(CHUNK)
            .zip(xs.par_chunks(CHUNK))
            .zip(ss.par_chunks_mut(CHUNK))
            .for_each(|((v, x), s)| {
                for ((v, &x), s) in v.iter_mut().zip(x).zip(s) {
                    *v = *v + (x - *v) * p.tau_inv;
                    let f = if *v > p.v_th { 1.0f32 } else { 0.0 };
                    *s = f;
                    *v *= 1.0 - f;
                }
            });
    }
}

/// As [`lif`], and also records the membrane after integration and before the reset
/// (`v_pre`, `[T, n]`), which the surrogate gradient needs during training.
pub fn lif_membrane(
    x: &[f32],
    t: usize,
    n: usize,
    p: LifParams,
    spikes: &mut [f32],
    v_pre: &mut [f32],
) {
    assert_eq!(x.len(), t * n, "lif_membrane: x must be [T, n]");
    assert_eq!(spikes.len(), t * n, "lif_membrane: spikes must be [T, n]");
    assert_eq!(v_pre.len(), t * n, "lif_membrane: v_pre must be [T, n]");
    let mut v = vec![0.0f32; n];
    for step in 0..t {
        let r = step * n..(step + 1) * n;
        let (xs, ss, ps) = (&x[r.clone()], &mut spikes[r.clone()], &mut v_pre[r]);
        v.par_chunks_mut(CHUNK)
            .zip(xs.par_chunks(CHUNK))
            .zip(ss.par_chunks_mut(CHUNK).zip(ps.par_chunks_mut(CHUNK)))
            .for_each(|((v, x), (s, pre))| {
                for (((v, &x), s), pre) in v.iter_mut().zip(x).zip(s).zip(pre) {
                    *v = *v + (x - *v) * p.tau_inv;
                    *pre = *v;
                    let f = if *v > p.v_th { 1.0f32 } else { 0.0 };
                    *s = f;
                    *v *= 1.0 - f;
                }
            });
    }
}

/// Number of u32 words in one packed sample row of `neurons` spikes: `ceil(neurons / 32)`.
pub fn words_per_row(neurons: usize) -> usize {
    neurons.div_ceil(32)
}

/// Packs f32 0/1 spikes `[T, B, neurons]` into `[T][B][words_per_row(neurons)]` u32: neuron `j`
/// of a row is bit `j % 32` of word `j / 32`; unused high bits of the last word are zero.
/// Any non-zero value counts as a spike.
pub fn pack_spikes(spikes: &[f32], t: usize, b: usize, neurons: usize) -> Vec<u32> {
    assert_eq!(
        spikes.len(),
        t * b * neurons,
        "pack_spikes: spikes must be [T, B, neurons]"
    );
    let words = words_per_row(neurons);
    let mut out = vec![0u32; t * b * words];
    for row in 0..t * b {
        let src = &spikes[row * neurons..(row + 1) * neurons];
        let dst = &mut out[row * words..(row + 1) * words];
        // A word per 32 neurons, without a branch per neuron.
        for (w, chunk) in dst.iter_mut().zip(src.chunks(32)) {
            let mut word = 0u32;
            for (j, &s) in chunk.iter().enumerate() {
                word |= u32::from(s != 0.0) << j;
            }
            *w = word;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membrane_trace_by_hand() {
        // One neuron, tau = 2 (tau_inv 0.5), v_th = 0.5, input 0.8 then 0.8, 0.8, 0.2, 1.2.
        // t0: v = 0 + (0.8 - 0) * 0.5 = 0.4           -> no spike, v = 0.4
        // t1: v = 0.4 + (0.8 - 0.4) * 0.5 = 0.6        -> spike, reset to 0
        // t2: v = 0 + (0.8 - 0) * 0.5 = 0.4            -> no spike
        // t3: v = 0.4 + (0.2 - 0.4) * 0.5 = 0.3        -> no spike
        // t4: v = 0.3 + (1.2 - 0.3) * 0.5 = 0.75       -> spike, reset
        // A second neuron sits exactly at threshold: input 1.0 gives v = 0.5, not > 0.5.
        let x = [0.8, 1.0, 0.8, 0.0, 0.8, 0.0, 0.2, 0.0, 1.2, 0.0];
        let p = LifParams::default();
        let mut s = [0.0f32; 10];
        let mut v = [0.0f32; 10];
        lif_membrane(&x, 5, 2, p, &mut s, &mut v);
        let s0: Vec<f32> = (0..5).map(|t| s[t * 2]).collect();
        let v0: Vec<f32> = (0..5).map(|t| v[t * 2]).collect();
        assert_eq!(s0, [0.0, 1.0, 0.0, 0.0, 1.0]);
        let want = [0.4f32, 0.6, 0.4, 0.3, 0.75];
        for (a, b) in v0.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{v0:?}");
        }
        // Neuron 1: 0.5, 0.25, 0.125, ... never above threshold.
        let s1: Vec<f32> = (0..5).map(|t| s[t * 2 + 1]).collect();
        assert_eq!(s1, [0.0; 5]);
        assert_eq!(v[1], 0.5);
        assert_eq!(v[3], 0.25);

        let mut s_only = [0.0f32; 10];
        lif(&x, 5, 2, p, &mut s_only);
        assert_eq!(s_only, s);
    }

    #[test]
    fn pack_bit_positions() {
        // T = 2, B = 1, 40 neurons -> 2 words per row.
        let neurons = 40;
        assert_eq!(words_per_row(neurons), 2);
        assert_eq!(words_per_row(32), 1);
        assert_eq!(words_per_row(33), 2);
        let mut s = vec![0.0f32; 2 * neurons];
        s[0] = 1.0; // t0 bit 0 of word 0
        s[31] = 1.0; // t0 bit 31 of word 0
        s[32] = 1.0; // t0 bit 0 of word 1
        s[39] = 1.0; // t0 bit 7 of word 1 (last neuron)
        s[neurons + 5] = 1.0; // t1 bit 5 of word 0
        s[neurons + 33] = 1.0; // t1 bit 1 of word 1
        let p = pack_spikes(&s, 2, 1, neurons);
        assert_eq!(p, vec![0x8000_0001, 0x81, 1 << 5, 1 << 1]);
    }

    #[test]
    fn pack_rows_are_time_then_batch() {
        // T = 2, B = 2, 3 neurons: rows in order (t0,b0), (t0,b1), (t1,b0), (t1,b1).
        let s = [
            1.0, 0.0, 0.0, // t0 b0
            0.0, 1.0, 0.0, // t0 b1
            0.0, 0.0, 1.0, // t1 b0
            1.0, 1.0, 1.0, // t1 b1
        ];
        assert_eq!(pack_spikes(&s, 2, 2, 3), vec![1, 2, 4, 7]);
    }
}
