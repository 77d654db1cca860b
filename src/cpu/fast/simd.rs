//! Portable kernels compiled twice: once for the build's baseline target and, on x86-64, once
//! more with AVX2 and FMA enabled, picked at run time. The kernels are plain Rust over fixed-size
//! lane arrays (`[f32; LANES]`), which LLVM turns into 256-bit vector code inside an AVX2 clone
//! and into 2x128-bit NEON code on AArch64; no intrinsics, so every target builds and runs them.

/// Lanes of one vector register of the kernels (AVX2: 8 f32).
pub(crate) const LANES: usize = 8;

/// Whether the AVX2 + FMA clones may run on this CPU (checked once, cached by std).
#[inline]
pub(crate) fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A multiply-add: fused where the clone has FMA (one rounding), two roundings elsewhere. The
/// two give results that differ in the last bit, so fast-engine results may differ by machine
/// (the reference loops do not).
pub(crate) trait Madd {
    fn madd(a: f32, b: f32, c: f32) -> f32;
}

/// `a * b + c` rounded once (the AVX2/FMA clones and AArch64, where it is one instruction).
pub(crate) struct Fused;
/// `a * b + c` rounded twice (targets without a fused multiply-add instruction).
pub(crate) struct Unfused;

impl Madd for Fused {
    #[inline(always)]
    fn madd(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

impl Madd for Unfused {
    #[inline(always)]
    fn madd(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// The multiply-add of the portable clone: fused on AArch64 (NEON has it), else unfused (a
/// software `fmaf` would be far slower than two instructions).
#[cfg(target_arch = "aarch64")]
pub(crate) type Portable = Fused;
#[cfg(not(target_arch = "aarch64"))]
pub(crate) type Portable = Unfused;

/// Defines `$name`, which runs the `#[inline(always)]` kernel `$imp` compiled with AVX2 + FMA
/// (and `Madd = Fused`) where the CPU has them, else compiled for the baseline target (and
/// `Madd = Portable`). `$imp` takes the `Madd` type as its first generic parameter, followed by
/// the const parameters listed.
macro_rules! dispatch {
    ($(#[$m:meta])* $vis:vis fn $name:ident<$(const $c:ident: usize),*>($($a:ident: $t:ty),* $(,)?) => $imp:ident) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name<$(const $c: usize),*>($($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn clone<$(const $c: usize),*>($($a: $t),*) {
                    $imp::<$crate::cpu::fast::simd::Fused, $($c),*>($($a),*)
                }
                if $crate::cpu::fast::simd::avx2() {
                    // SAFETY: the CPU supports AVX2 and FMA (checked above), the only
                    // requirement of the clone beyond its safe body.
                    return unsafe { clone::<$($c),*>($($a),*) };
                }
            }
            $imp::<$crate::cpu::fast::simd::Portable, $($c),*>($($a),*)
        }
    };
}
pub(crate) use dispatch;
