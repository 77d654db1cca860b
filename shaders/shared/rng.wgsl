// Counter-based weight generator (docs/design.md), the WGSL twin of src/cpu/rng.rs.
// All u32 arithmetic wraps in WGSL, as in the Rust twin's wrapping_* calls.

fn pcg(x: u32) -> u32 {
    let s = x * 747796405u + 2891336453u;
    let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
    return (w >> 22u) ^ w;
}

// bits(i) = pcg(pcg(i ^ stream) + stream)
fn rng_bits(stream: u32, i: u32) -> u32 {
    return pcg(pcg(i ^ stream) + stream);
}

// unit(i) = f32(bits >> 8) * 2^-24: a 24-bit integer converts to f32 exactly and the scale is a
// power of two, so the value is exact in [0, 1) on every backend.
fn rng_unit(stream: u32, i: u32) -> f32 {
    return f32(rng_bits(stream, i) >> 8u) * 5.9604644775390625e-8;
}
