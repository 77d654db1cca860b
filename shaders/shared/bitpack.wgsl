// Bit-packed spike rows (docs/design.md): neuron n of a row is bit n % 32 of word n / 32; the
// unused high bits of a row's last word are zero. A population's record is [T][B][words].

fn words_per_row(n: u32) -> u32 {
    return (n + 31u) / 32u;
}

fn word_of(n: u32) -> u32 {
    return n >> 5u;
}

fn bit_set(word: u32, n: u32) -> bool {
    return ((word >> (n & 31u)) & 1u) != 0u;
}
