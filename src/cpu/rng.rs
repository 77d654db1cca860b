//! The counter-based weight generator, identical on CPU and GPU.
//!
//! Bit-exact specification (all u32 arithmetic wraps):
//!
//! ```text
//! pcg(x)    = { s = x * 747796405 + 2891336453;
//!               w = ((s >> ((s >> 28) + 4)) ^ s) * 277803737;
//!               (w >> 22) ^ w }
//! key64     = FNV-1a 64 of the canonical key's UTF-8 bytes
//!             (offset basis 0xcbf29ce484222325, prime 0x100000001b3; per byte: h ^= b; h *= prime)
//! stream    = pcg(pcg(pcg(pcg(seed_lo) ^ seed_hi) ^ key_lo) ^ key_hi)
//!             (seed_lo / key_lo = low 32 bits, seed_hi / key_hi = high 32 bits)
//! bits(i)   = pcg(pcg(i ^ stream) + stream)        i = the parameter's flat index in the plan
//! unit(i)   = f32(bits(i) >> 8) * 2^-24             in [0, 1), exact
//! value(i)  = (2 * unit(i) - 1) * bound             2*unit-1 is exact; one correctly rounded multiply
//! bound     = f32(1 / sqrt(fan_in))                 computed in f64, rounded once to f32
//! ```

/// PCG-RXS-M-XS style 32-bit hash (the output permutation of PCG applied to one LCG step).
pub fn pcg(x: u32) -> u32 {
    let s = x.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let w = ((s >> ((s >> 28) + 4)) ^ s).wrapping_mul(277_803_737);
    (w >> 22) ^ w
}

/// The stream id of one parameter tensor: `pcg(pcg(pcg(pcg(seed_lo) ^ seed_hi) ^ key_lo) ^ key_hi)`.
pub fn stream(seed: u64, key64: u64) -> u32 {
    let (seed_lo, seed_hi) = (seed as u32, (seed >> 32) as u32);
    let (key_lo, key_hi) = (key64 as u32, (key64 >> 32) as u32);
    pcg(pcg(pcg(pcg(seed_lo) ^ seed_hi) ^ key_lo) ^ key_hi)
}

/// Random bits of element `i` of a stream: `pcg(pcg(i ^ stream) + stream)`.
pub fn bits(i: u32, stream: u32) -> u32 {
    pcg(pcg(i ^ stream).wrapping_add(stream))
}

/// Uniform in [0, 1) from the top 24 bits of [`bits`]; exact in f32.
pub fn unit(i: u32, stream: u32) -> f32 {
    (bits(i, stream) >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// `out[j] = (2 * unit(offset + j) - 1) * bound` (index arithmetic wraps in u32).
pub fn uniform_fill(stream: u32, offset: u32, bound: f32, out: &mut [f32]) {
    for (j, o) in out.iter_mut().enumerate() {
        let i = offset.wrapping_add(j as u32);
        *o = (2.0 * unit(i, stream) - 1.0) * bound;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genome::fnv1a64;

    /// PyTorch's default init bound for conv and linear: `1/sqrt(fan_in)` in f64, rounded to f32.
    fn kaiming_bound(fan_in: usize) -> f32 {
        (1.0 / (fan_in as f64).sqrt()) as f32
    }

    #[test]
    fn pcg_by_hand() {
        // pcg(0): s = 2891336453 = 0xac564b05; s >> 28 = 10, shift 14; s >> 14 = 176473;
        //   t = 176473 ^ s = 2891250268; w = t * 277803737 mod 2^32 = 129708028;
        //   w >> 22 = 30; 30 ^ 129708028 = 129708002.
        assert_eq!(pcg(0), 129_708_002);
        // pcg(1): s = 747796405 + 2891336453 = 3639132858 = 0xd8e8c2ba; s >> 28 = 13, shift 17;
        //   s >> 17 = 27764; t = 27764 ^ s = 3639127758; w = t * 277803737 mod 2^32 = 2831083678;
        //   w >> 22 = 674; 674 ^ 2831083678 = 2831084092.
        assert_eq!(pcg(1), 2_831_084_092);
    }

    #[test]
    fn fnv_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"conv.w"), 0x0364_1476_15cf_ced4);
    }

    #[test]
    fn generator_first_values_pinned() {
        assert_eq!(stream(0, 0), 2_368_882_721);
        assert_eq!(
            stream(0x1234_5678_9abc_def0, 0x0fed_cba9_8765_4321),
            3_290_747_271
        );
        let st = stream(42, fnv1a64(b"conv.w"));
        assert_eq!(st, 3_853_819_893);
        let b: Vec<u32> = (0..4).map(|i| bits(i, st)).collect();
        assert_eq!(b, [415_543_485, 473_675_251, 1_233_325_817, 682_638_272]);
        // f32 values pinned by bit pattern: 0.09675121, 0.11028606, 0.28715599, 0.15893906
        // (each exactly (bits >> 8) * 2^-24).
        let u: Vec<u32> = (0..4).map(|i| unit(i, st).to_bits()).collect();
        assert_eq!(u, [0x3dc6_2580, 0x3de1_dda8, 0x3e93_061c, 0x3e22_c0ec]);
        // 1/sqrt(3) = 0.57735026...
        let bound = kaiming_bound(3);
        assert_eq!(bound.to_bits(), 0x3f13_cd3a);
        let mut w = [0.0f32; 4];
        uniform_fill(st, 0, bound, &mut w);
        // -0.46563157, -0.45000288, -0.24577110, -0.39382324
        let wb: Vec<u32> = w.iter().map(|v| v.to_bits()).collect();
        assert_eq!(wb, [0xbeee_6743, 0xbee6_66c7, 0xbe7b_ab6b, 0xbec9_a333]);
        // An offset continues the same sequence.
        let mut tail = [0.0f32; 2];
        uniform_fill(st, 2, bound, &mut tail);
        assert_eq!(tail, w[2..]);
    }

    #[test]
    fn unit_range_and_bound() {
        assert_eq!(kaiming_bound(1), 1.0);
        assert_eq!(kaiming_bound(4), 0.5);
        for i in 0..1000 {
            let u = unit(i, 7);
            assert!((0.0..1.0).contains(&u));
        }
    }
}
