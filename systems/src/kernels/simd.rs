//! Runtime SIMD dispatch shared by the numeric kernels.

/// Run `f` compiled for the best instruction set of this CPU (pulp's runtime dispatch:
/// AVX2 where available); mark the closure `#[inline(always)]` and the functions it calls
/// too, so their loops are compiled inside. The loops keep their source-level summation
/// order and Rust never fuses a multiply–add, so every path gives bit-identical results.
#[inline(always)]
pub(crate) fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    faer::traits::pulp::Arch::new().dispatch(f)
}
