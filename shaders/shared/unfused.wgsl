// A product that keeps its own f32 rounding. WGSL lets a compiler contract `a * b + c` into one
// fused multiply-add (and GPU compilers do), which rounds once where the CPU twin rounds twice.
// Passing the product through an integer xor with a runtime zero (a parameter the host sets to
// 0) hides it from contraction at the cost of one integer op, so sums built from `unfused`
// products follow the CPU's bits.

fn unfused(product: f32, zero: u32) -> f32 {
    return bitcast<f32>(bitcast<u32>(product) ^ zero);
}
