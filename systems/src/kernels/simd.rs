//! Runtime SIMD dispatch shared by the numeric kernels.

/// Run `f` compiled for the best instruction set of this CPU (pulp's runtime dispatch:
/// AVX2 where available); mark the closure `#[inline(always)]` and the functions it calls
/// too, so their loops are compiled inside. The loops keep their source-level summation
/// order and Rust never fuses a multiply–add, so every path gives bit-identical results.
#[inline(always)]
pub(crate) fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    faer::traits::pulp::Arch::new().dispatch(f)
}

/// Whether every value is finite: a branch-free test per block of 256 values (the
/// short-circuiting `iter().all(is_finite)` runs one compare-and-branch per value and was a
/// tenth of the σ fit's time on its Jacobians).
#[inline]
pub(crate) fn all_finite(v: &[f64]) -> bool {
    dispatch(
        #[inline(always)]
        || {
            for block in v.chunks(256) {
                let mut ok = true;
                for x in block {
                    ok &= x.is_finite();
                }
                if !ok {
                    return false;
                }
            }
            true
        },
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn all_finite_finds_every_non_finite_value() {
        let mut v: Vec<f64> = (0..1000).map(|i| i as f64 * 1e300).collect();
        v[0] = -1e308;
        assert!(super::all_finite(&v));
        assert!(super::all_finite(&[]));
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for pos in [0, 255, 256, 511, 999] {
                let mut w = v.clone();
                w[pos] = bad;
                assert!(!super::all_finite(&w), "{bad} at {pos}");
            }
        }
    }
}
