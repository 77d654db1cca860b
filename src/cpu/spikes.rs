//! Bit-packed spikes of one population and the integer statistics every score is computed from.
//!
//! The statistics are plain integer sums of XOR/AND + popcount over the packed words, so a GPU
//! kernel (u32 atomics, no floats) produces exactly the same numbers and only they, never the
//! spikes, need to travel back. Every score in [`crate::fitness::scores`] is a function of them.

use crate::{Error, Result};

/// u32 words per sample row of a population of `neurons` neurons (32 spikes per word).
pub fn words_for(neurons: usize) -> usize {
    neurons.div_ceil(32)
}

/// Bit-packed spikes of one LIF population over a probe batch: `data` is `[T][B][words]` u32,
/// neuron `n` being bit `n % 32` of word `n / 32`, unused high bits of the last word zero
/// (docs/design.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PopulationSpikes {
    pub name: String,
    pub neurons: usize,
    pub t: usize,
    pub b: usize,
    pub data: Vec<u32>,
}

impl PopulationSpikes {
    /// Packs dense spikes `[T][B][N]` (the CPU executor's f32 layout; any non-zero is a spike).
    ///
    /// # Panics
    /// If `dense.len() != t * b * neurons`.
    pub fn from_dense(
        name: impl Into<String>,
        neurons: usize,
        t: usize,
        b: usize,
        dense: &[f32],
    ) -> Self {
        assert_eq!(
            dense.len(),
            t * b * neurons,
            "from_dense: {} values is not [{t}][{b}][{neurons}]",
            dense.len()
        );
        let words = words_for(neurons);
        let mut data = vec![0u32; t * b * words];
        if neurons > 0 {
            for (row, chunk) in dense.chunks_exact(neurons).enumerate() {
                for (n, &v) in chunk.iter().enumerate() {
                    if v != 0.0 {
                        data[row * words + n / 32] |= 1 << (n % 32);
                    }
                }
            }
        }
        PopulationSpikes {
            name: name.into(),
            neurons,
            t,
            b,
            data,
        }
    }

    pub fn words(&self) -> usize {
        words_for(self.neurons)
    }

    /// The packed row of sample `i` at step `t`.
    pub fn row(&self, t: usize, i: usize) -> &[u32] {
        let w = self.words();
        let start = (t * self.b + i) * w;
        &self.data[start..start + w]
    }

    /// Whether neuron `n` of sample `i` spiked at step `t`.
    pub fn spike(&self, t: usize, i: usize, n: usize) -> bool {
        self.row(t, i)[n / 32] >> (n % 32) & 1 == 1
    }
}

/// Sufficient statistics of one population over a probe batch: everything a score needs, all
/// integers, so the GPU reduction can produce them bit for bit.
///
/// With `x_ti` the packed row of sample `i` at step `t` and `C_i(n) = sum_t x_ti(n)` the
/// time-summed spike count of neuron `n`:
/// - `hamming_per_t[t][i][j] = popcount(x_ti ^ x_tj)` (symmetric, zero diagonal);
/// - `counts[t][i] = popcount(x_ti)`, so sample `i`'s rate at step `t` is `counts[t][i] / N`;
/// - `summed_dot[i][j] = sum_n C_i(n) C_j(n) = sum_{t,t'} popcount(x_ti & x_t'j)`.
///
/// The Pearson correlation of `C_i` and `C_j` across neurons (`rdm_corr`) needs nothing else:
/// `sum_n C_i = sum_t counts[t][i]` and `sum_n C_i^2 = summed_dot[i][i]`.
/// Bounds: a Hamming distance or count is at most `N`; `summed_dot` is at most `N T^2`, so a
/// GPU may accumulate it in u32 while `N T^2 < 2^32` and widen on read-back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PopulationStats {
    pub name: String,
    pub neurons: usize,
    pub t: usize,
    pub b: usize,
    /// `[T][B][B]` Hamming distance between samples `i` and `j` at step `t`.
    pub hamming_per_t: Vec<u32>,
    /// `[T][B]` spikes of sample `i` at step `t`.
    pub counts: Vec<u32>,
    /// `[B][B]` inner products of the time-summed spike-count vectors.
    pub summed_dot: Vec<u64>,
}

impl PopulationStats {
    pub fn hamming(&self, t: usize, i: usize, j: usize) -> u32 {
        self.hamming_per_t[(t * self.b + i) * self.b + j]
    }

    pub fn count(&self, t: usize, i: usize) -> u32 {
        self.counts[t * self.b + i]
    }

    pub fn dot(&self, i: usize, j: usize) -> u64 {
        self.summed_dot[i * self.b + j]
    }

    /// `sum_n C_i(n)`: sample `i`'s spikes over all neurons and steps.
    pub fn total(&self, i: usize) -> u64 {
        (0..self.t).map(|t| self.count(t, i) as u64).sum()
    }

    /// Checks sizes and the invariants a correct producer guarantees (non-empty population,
    /// buffer lengths, values within their bounds), naming the population.
    pub fn validate(&self) -> Result<()> {
        let (n, t, b) = (self.neurons, self.t, self.b);
        let bad = |what: String| {
            Err(Error::input(format!(
                "population stats `{}`: {what}",
                self.name
            )))
        };
        if n == 0 || t == 0 || b == 0 {
            return bad(format!("neurons {n}, t {t}, b {b}: all must be positive"));
        }
        if self.hamming_per_t.len() != t * b * b {
            return bad(format!(
                "hamming_per_t has {} values, expected T*B*B = {}",
                self.hamming_per_t.len(),
                t * b * b
            ));
        }
        if self.counts.len() != t * b {
            return bad(format!(
                "counts has {} values, expected T*B = {}",
                self.counts.len(),
                t * b
            ));
        }
        if self.summed_dot.len() != b * b {
            return bad(format!(
                "summed_dot has {} values, expected B*B = {}",
                self.summed_dot.len(),
                b * b
            ));
        }
        if self
            .hamming_per_t
            .iter()
            .chain(&self.counts)
            .any(|&v| v as usize > n)
        {
            return bad(format!(
                "a Hamming distance or count exceeds the {n} neurons"
            ));
        }
        Ok(())
    }
}

/// The statistics of one population, by XOR/AND + popcount over the packed rows: the CPU twin
/// of the GPU reduction, with the same loop shape (pairs of samples, then words).
///
/// Unused high bits of a row's last word are masked off, so a producer that left garbage there
/// still gets the statistics of its `neurons` neurons.
///
/// # Panics
/// If `p.data.len() != t * b * words`.
pub fn population_stats(p: &PopulationSpikes) -> PopulationStats {
    let (t_len, b, words) = (p.t, p.b, p.words());
    let word = masked_words(p);
    let mut hamming_per_t = vec![0u32; t_len * b * b];
    let mut counts = vec![0u32; t_len * b];
    for t in 0..t_len {
        for i in 0..b {
            counts[t * b + i] = (0..words).map(|w| word(t, i, w).count_ones()).sum();
            for j in i + 1..b {
                let d: u32 = (0..words)
                    .map(|w| (word(t, i, w) ^ word(t, j, w)).count_ones())
                    .sum();
                hamming_per_t[(t * b + i) * b + j] = d;
                hamming_per_t[(t * b + j) * b + i] = d;
            }
        }
    }

    let mut summed_dot = vec![0u64; b * b];
    for i in 0..b {
        for j in i..b {
            let mut s = 0u64;
            for t in 0..t_len {
                for t2 in 0..t_len {
                    s += (0..words)
                        .map(|w| (word(t, i, w) & word(t2, j, w)).count_ones() as u64)
                        .sum::<u64>();
                }
            }
            summed_dot[i * b + j] = s;
            summed_dot[j * b + i] = s;
        }
    }

    PopulationStats {
        name: p.name.clone(),
        neurons: p.neurons,
        t: t_len,
        b,
        hamming_per_t,
        counts,
        summed_dot,
    }
}

/// The `[T][B]` spike counts of one population alone, with empty Hamming and dot tables: what
/// a population needs when no requested score reads its representation (the counts match
/// [`population_stats`]'s).
///
/// # Panics
/// If `p.data.len() != t * b * words`.
pub fn population_counts(p: &PopulationSpikes) -> PopulationStats {
    let (t_len, b, words) = (p.t, p.b, p.words());
    let word = masked_words(p);
    let counts = (0..t_len * b)
        .map(|ti| {
            (0..words)
                .map(|w| word(ti / b, ti % b, w).count_ones())
                .sum()
        })
        .collect();
    PopulationStats {
        name: p.name.clone(),
        neurons: p.neurons,
        t: t_len,
        b,
        hamming_per_t: Vec::new(),
        counts,
        summed_dot: Vec::new(),
    }
}

/// Word `w` of sample `i`'s row at step `t`, the unused high bits of the last word masked off.
fn masked_words(p: &PopulationSpikes) -> impl Fn(usize, usize, usize) -> u32 + '_ {
    let (t_len, b, words) = (p.t, p.b, p.words());
    assert_eq!(
        p.data.len(),
        t_len * b * words,
        "population `{}`: data is not [{t_len}][{b}][{words}]",
        p.name
    );
    let tail = p.neurons % 32;
    let last_mask = if tail == 0 {
        u32::MAX
    } else {
        (1u32 << tail) - 1
    };
    move |t: usize, i: usize, w: usize| {
        let v = p.data[(t * b + i) * words + w];
        if w + 1 == words {
            v & last_mask
        } else {
            v
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Unpacked spikes `[T][B][N]` as 0/1.
    fn random_dense(rng: &mut impl Rng, t: usize, b: usize, n: usize, p: f64) -> Vec<f32> {
        (0..t * b * n)
            .map(|_| if rng.random_bool(p) { 1.0 } else { 0.0 })
            .collect()
    }

    /// The statistics straight from the definitions on unpacked spikes.
    fn naive_stats(
        dense: &[f32],
        t_len: usize,
        b: usize,
        n: usize,
    ) -> (Vec<u32>, Vec<u32>, Vec<u64>) {
        let s = |t: usize, i: usize, k: usize| dense[(t * b + i) * n + k] as u32;
        let mut ham = vec![0u32; t_len * b * b];
        let mut cnt = vec![0u32; t_len * b];
        for t in 0..t_len {
            for i in 0..b {
                cnt[t * b + i] = (0..n).map(|k| s(t, i, k)).sum();
                for j in 0..b {
                    ham[(t * b + i) * b + j] =
                        (0..n).map(|k| (s(t, i, k) != s(t, j, k)) as u32).sum();
                }
            }
        }
        let summed = |i: usize, k: usize| (0..t_len).map(|t| s(t, i, k) as u64).sum::<u64>();
        let mut dot = vec![0u64; b * b];
        for i in 0..b {
            for j in 0..b {
                dot[i * b + j] = (0..n).map(|k| summed(i, k) * summed(j, k)).sum();
            }
        }
        (ham, cnt, dot)
    }

    #[test]
    fn packing_follows_the_layout() {
        // N = 35: two words per row; neuron 33 is bit 1 of word 1.
        let mut dense = vec![0.0f32; 2 * 35];
        dense[0] = 1.0;
        dense[31] = 1.0;
        dense[35 + 33] = 1.0;
        let p = PopulationSpikes::from_dense("x", 35, 1, 2, &dense);
        assert_eq!(p.data, vec![0x8000_0001, 0, 0, 0b10]);
        assert!(p.spike(0, 1, 33) && !p.spike(0, 1, 32));
    }

    #[test]
    fn population_stats_matches_naive_on_random_data() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        for &(t, b, n, p) in &[
            (1, 2, 1, 0.5),
            (3, 5, 31, 0.3),
            (4, 7, 32, 0.5),
            (2, 6, 70, 0.1),
            (5, 4, 100, 0.9),
            (2, 3, 64, 0.0),
        ] {
            let dense = random_dense(&mut rng, t, b, n, p);
            let spikes = PopulationSpikes::from_dense("pop", n, t, b, &dense);
            let st = population_stats(&spikes);
            let (ham, cnt, dot) = naive_stats(&dense, t, b, n);
            assert_eq!(st.hamming_per_t, ham, "hamming t={t} b={b} n={n}");
            assert_eq!(st.counts, cnt, "counts t={t} b={b} n={n}");
            assert_eq!(st.summed_dot, dot, "summed_dot t={t} b={b} n={n}");
            st.validate().unwrap();
            let only = population_counts(&spikes);
            assert_eq!(only.counts, cnt, "counts alone t={t} b={b} n={n}");
            assert!(only.hamming_per_t.is_empty() && only.summed_dot.is_empty());
            for i in 0..b {
                let direct: u64 = dense[..]
                    .chunks(n)
                    .skip(i)
                    .step_by(b)
                    .flatten()
                    .map(|&v| v as u64)
                    .sum();
                assert_eq!(st.total(i), direct);
            }
        }
    }

    #[test]
    fn garbage_in_unused_bits_is_ignored() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let dense = random_dense(&mut rng, 2, 4, 40, 0.4);
        let clean = PopulationSpikes::from_dense("pop", 40, 2, 4, &dense);
        let mut dirty = clean.clone();
        for (k, w) in dirty.data.iter_mut().enumerate() {
            if k % 2 == 1 {
                *w |= 0xffff_ff00;
            }
        }
        assert_eq!(population_stats(&dirty), population_stats(&clean));
        assert_eq!(population_counts(&dirty), population_counts(&clean));
    }

    #[test]
    fn validate_names_the_population() {
        let mut st = population_stats(&PopulationSpikes::from_dense(
            "cell2.lif",
            3,
            1,
            2,
            &[1.0, 0.0, 1.0, 0.0, 0.0, 1.0],
        ));
        st.validate().unwrap();
        st.counts.pop();
        let e = st.validate().unwrap_err().to_string();
        assert!(e.contains("cell2.lif") && e.contains("counts"), "{e}");
    }
}
