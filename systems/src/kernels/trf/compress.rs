//! A dense analytic-Jacobian model that stores the R factor of J = QR instead of J.
//!
//! Every quantity the bounded TRF iteration with the exact solver takes from the Jacobian
//! is a function of JᵀJ and Jᵀf: the gradient g = Jᵀf = Rᵀ(Qᵀf), the column norms of J
//! (those of R), the quadratic model ‖J_h s‖² = ‖R D s‖² and the SVD of [J D; diag(√dh)],
//! whose singular values, right vectors and Uᵀ[f; 0] equal those of [R D; diag(√dh)] with
//! the right-hand side [Qᵀf; 0] (J D = Q (R D) and R D is again triangular). One
//! Householder QR of the m×n Jacobian per accepted point (with f carried along as an extra
//! column) therefore replaces every later m-sized product of the iteration by an n-sized
//! one. The results equal [`super::least_squares_dense`] in exact arithmetic; rounding
//! differs. The rank test s_min > ε·m·s_max keeps the true m.

use faer::MatMut;

use faer::traits::pulp::{Arch, Simd, WithSimd};

use super::super::nnls::householder::reflector;
use super::model::{dense_matvec, dense_rmatvec, Model};
use super::DenseJacobian;

/// [`DenseJacobian`] problem whose stored Jacobian is R (n×n, column-major).
pub(super) struct Compressed<'a, P: DenseJacobian> {
    problem: &'a mut P,
    m: usize,
    n: usize,
    /// Qᵀf (first n components) at the last Jacobian.
    qf: Vec<f64>,
    /// [R | Qᵀf] (n×(n+1), column-major).
    raug: Vec<f64>,
    /// Row-block scratch of [`tsqr`].
    blk: Vec<f64>,
}

impl<'a, P: DenseJacobian> Compressed<'a, P> {
    pub(super) fn new(problem: &'a mut P, n: usize) -> Self {
        let m = problem.n_residuals();
        Self {
            problem,
            m,
            n,
            qf: vec![0.0; n],
            raug: vec![0.0; n * (n + 1)],
            blk: Vec::new(),
        }
    }
}

/// Rows per block of [`tsqr`] (a block of n + 1 columns stays in L1).
const BLOCK_ROWS: usize = 256;

/// R and Qᵀf of the m×n column-major `a` with right-hand side `f`, by Householder
/// reflections applied block of rows by block of rows ("TSQR" with a flat tree): the
/// triangle [R | Qᵀf] of the rows seen so far is stacked on the next block and reduced
/// again; its zeros below the diagonal keep every reflector to one R row plus the block.
/// Same flops as one Householder QR of the whole matrix, but on cache-resident data.
/// On return `raug` (n×(n+1), column-major) holds [R | (Qᵀf)[..n]].
///
/// The reflector applications run inside pulp's runtime dispatch (AVX2 where available)
/// in the summation order of the source, so every instruction set gives the same bits.
pub(super) fn tsqr(a: &[f64], f: &[f64], m: usize, n: usize, raug: &mut [f64], blk: &mut Vec<f64>) {
    Arch::new().dispatch(Tsqr {
        a,
        f,
        m,
        n,
        raug,
        blk,
    });
}

struct Tsqr<'a> {
    a: &'a [f64],
    f: &'a [f64],
    m: usize,
    n: usize,
    raug: &'a mut [f64],
    blk: &'a mut Vec<f64>,
}

impl WithSimd for Tsqr<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let Tsqr {
            a,
            f,
            m,
            n,
            raug,
            blk,
        } = self;
        let nc = n + 1;
        raug[..n * nc].fill(0.0);
        blk.resize(BLOCK_ROWS * nc, 0.0);
        for r0 in (0..m).step_by(BLOCK_ROWS) {
            let bl = BLOCK_ROWS.min(m - r0);
            for j in 0..nc {
                let src = if j < n {
                    &a[j * m + r0..j * m + r0 + bl]
                } else {
                    &f[r0..r0 + bl]
                };
                blk[j * bl..(j + 1) * bl].copy_from_slice(src);
            }
            let b = &mut blk[..nc * bl];
            for k in 0..n {
                let (left, right) = b.split_at_mut((k + 1) * bl);
                let v = &mut left[k * bl..];
                let mut beta = raug[k + k * n];
                let tau = fast_reflector(&mut beta, v);
                raug[k + k * n] = beta;
                if tau == 0.0 {
                    continue;
                }
                // two columns per pass over v (each with the operations, in the order, of
                // the one-column code: the same bits, with v loaded once for both)
                let mut pairs = right.chunks_exact_mut(2 * bl);
                let mut j = k + 1;
                for cc in &mut pairs {
                    let (c1, c2) = cc.split_at_mut(bl);
                    let (d1, d2) = dot2(v, c1, c2);
                    let t1 = -tau * (raug[k + j * n] + d1);
                    let t2 = -tau * (raug[k + (j + 1) * n] + d2);
                    raug[k + j * n] += t1;
                    raug[k + (j + 1) * n] += t2;
                    for ((y1, y2), x) in c1.iter_mut().zip(c2.iter_mut()).zip(v.iter()) {
                        *y1 += x * t1;
                        *y2 += x * t2;
                    }
                    j += 2;
                }
                let c = pairs.into_remainder();
                if !c.is_empty() {
                    let w = raug[k + j * n] + dot(v, c);
                    let temp = -tau * w;
                    raug[k + j * n] += temp;
                    for (y, x) in c.iter_mut().zip(v.iter()) {
                        *y += x * temp;
                    }
                }
            }
        }
    }
}

/// LAPACK `dlarfg` ([`reflector`]) with the norm from the inlined [`dot`] and
/// √(α² + ‖x‖²) instead of `hypot`, where no over- or underflow can occur; the careful
/// version for huge values. A block column with ‖x‖² ≤ 1e-280 (every entry below 1e-140,
/// also the all-zero column) is left unreflected (τ = 0): its contribution to R is below
/// 1e-140 absolute, and the row blocks of a column that is tiny on some rows and zero on
/// the others would otherwise meet subnormal arithmetic.
#[inline(always)]
fn fast_reflector(alpha: &mut f64, x: &mut [f64]) -> f64 {
    let ss = dot(x, x);
    let a = *alpha;
    if !(ss > 1e-280) {
        return if ss.is_nan() {
            reflector(alpha, x)
        } else {
            0.0
        };
    }
    if !(ss < 1e280 && a.abs() < 1e140) {
        return reflector(alpha, x);
    }
    let beta = -(a * a + ss).sqrt().copysign(a);
    let tau = (beta - a) / beta;
    let s = 1.0 / (a - beta);
    for v in x.iter_mut() {
        *v *= s;
    }
    *alpha = beta;
    tau
}

/// Σ a_i b_i with sixteen interleaved partial sums: partial sum q holds the products of
/// the indices ≡ q (mod 16); then q += q + 4 + (q + 8 + q + 12) for q < 4, the four pairwise,
/// and the tail in order. The AVX path keeps the sixteen sums in four registers (the compiler
/// turned the portable loop into shuffled 128-bit halves); both paths do the same IEEE
/// operations in the same order, so they give the same bits.
#[inline(always)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: AVX is available (checked above).
        return unsafe { avx::dot(a, b) };
    }
    dot_portable(a, b)
}

/// [`dot`] of `a` with `b` and with `c` in one pass over `a` (each result bit-identical to
/// [`dot`]).
#[inline(always)]
fn dot2(a: &[f64], b: &[f64], c: &[f64]) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: AVX is available (checked above).
        return unsafe { avx::dot2(a, b, c) };
    }
    (dot_portable(a, b), dot_portable(a, c))
}

/// The portable [`dot`].
#[inline(always)]
fn dot_portable(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 16];
    let mut ca = a.chunks_exact(16);
    let mut cb = b.chunks_exact(16);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for q in 0..16 {
            acc[q] += x[q] * y[q];
        }
    }
    for q in 0..4 {
        acc[q] += acc[q + 4] + (acc[q + 8] + acc[q + 12]);
    }
    let mut d = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        d += x * y;
    }
    d
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::{
        __m256d, _mm256_add_pd, _mm256_loadu_pd, _mm256_mul_pd, _mm256_setzero_pd, _mm256_storeu_pd,
    };

    /// Partial sums 4r..4r+3 in register r; the end of [`super::dot_portable`].
    #[inline]
    #[target_feature(enable = "avx")]
    fn finish(acc: [__m256d; 4], ra: &[f64], rb: &[f64]) -> f64 {
        let s = _mm256_add_pd(acc[0], _mm256_add_pd(acc[1], _mm256_add_pd(acc[2], acc[3])));
        let mut l = [0.0f64; 4];
        // SAFETY: `l` holds four f64.
        unsafe { _mm256_storeu_pd(l.as_mut_ptr(), s) };
        let mut d = (l[0] + l[1]) + (l[2] + l[3]);
        for (x, y) in ra.iter().zip(rb) {
            d += x * y;
        }
        d
    }

    /// [`super::dot`] with AVX.
    #[inline]
    #[target_feature(enable = "avx")]
    pub(super) fn dot(a: &[f64], b: &[f64]) -> f64 {
        let n = a.len().min(b.len());
        let nc = n / 16;
        let mut acc = [_mm256_setzero_pd(); 4];
        for i in 0..nc {
            for (r, ar) in acc.iter_mut().enumerate() {
                let o = 16 * i + 4 * r;
                // SAFETY: o + 4 <= 16 nc <= n, within both slices.
                let (x, y) = unsafe {
                    (
                        _mm256_loadu_pd(a.as_ptr().add(o)),
                        _mm256_loadu_pd(b.as_ptr().add(o)),
                    )
                };
                *ar = _mm256_add_pd(*ar, _mm256_mul_pd(x, y));
            }
        }
        finish(acc, &a[16 * nc..n], &b[16 * nc..n])
    }

    /// [`super::dot2`] with AVX.
    #[inline]
    #[target_feature(enable = "avx")]
    pub(super) fn dot2(a: &[f64], b: &[f64], c: &[f64]) -> (f64, f64) {
        let n = a.len().min(b.len()).min(c.len());
        let nc = n / 16;
        let mut ab = [_mm256_setzero_pd(); 4];
        let mut ac = [_mm256_setzero_pd(); 4];
        for i in 0..nc {
            for r in 0..4 {
                let o = 16 * i + 4 * r;
                // SAFETY: o + 4 <= 16 nc <= n, within the three slices.
                let (x, y, z) = unsafe {
                    (
                        _mm256_loadu_pd(a.as_ptr().add(o)),
                        _mm256_loadu_pd(b.as_ptr().add(o)),
                        _mm256_loadu_pd(c.as_ptr().add(o)),
                    )
                };
                ab[r] = _mm256_add_pd(ab[r], _mm256_mul_pd(x, y));
                ac[r] = _mm256_add_pd(ac[r], _mm256_mul_pd(x, z));
            }
        }
        let t = 16 * nc..n;
        (
            finish(ab, &a[t.clone()], &b[t.clone()]),
            finish(ac, &a[t.clone()], &c[t]),
        )
    }
}

impl<P: DenseJacobian> Model for Compressed<'_, P> {
    const DENSE: bool = true;

    fn m(&self) -> usize {
        self.m
    }

    fn residuals(&mut self, x: &[f64], f: &mut [f64]) {
        self.problem.residuals(x, f);
    }

    fn jacobian(
        &mut self,
        x: &[f64],
        f: &[f64],
        _lb: &[f64],
        _ub: &[f64],
        jac: &mut [f64],
        _sx: &mut [f64],
        _sf: &mut [f64],
    ) {
        let (m, n) = (self.m, self.n);
        let Self {
            problem, raug, blk, ..
        } = self;
        let full: &[f64] = match problem.jacobian_cached(x) {
            Some(j) if j.len() == m * n => j,
            _ => {
                let full = &mut jac[..m * n];
                problem.jacobian(x, MatMut::from_column_major_slice_mut(full, m, n));
                full
            }
        };
        if !crate::kernels::simd::all_finite(full) {
            // the driver rejects a non-finite stored Jacobian
            jac[..n * n].fill(f64::NAN);
            return;
        }
        tsqr(full, f, m, n, raug, blk);
        let nn = n * n;
        jac[..nn].copy_from_slice(&self.raug[..nn]);
        self.qf.copy_from_slice(&self.raug[nn..nn + n]);
    }

    fn matvec(&self, jac: &[f64], v: &[f64], out: &mut [f64]) {
        dense_matvec(jac, self.n, v, out);
    }

    fn rmatvec(&self, jac: &[f64], u: &[f64], out: &mut [f64]) {
        dense_rmatvec(jac, self.n, u, out);
    }

    fn jac_rows(&self) -> usize {
        self.n
    }

    fn jac_f<'b>(&'b self, _f: &'b [f64]) -> &'b [f64] {
        &self.qf
    }

    fn final_jacobian(&self) -> bool {
        self.problem.final_jacobian()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_paths_give_the_same_bits() {
        // values spanning many magnitudes, so any change of summation order shows
        let v = |k: usize, s: f64| -> Vec<f64> {
            (0..k)
                .map(|i| {
                    ((i as f64 * s).sin() * 30.0)
                        .exp2()
                        .copysign((i as f64 * 0.7).cos())
                })
                .collect()
        };
        for n in [0, 1, 15, 16, 17, 31, 64, 255, 256, 257, 1000] {
            let (a, b, c) = (v(n, 0.37), v(n, 1.91), v(n, 2.53));
            let d = dot_portable(&a, &b);
            assert_eq!(dot(&a, &b).to_bits(), d.to_bits(), "n = {n}");
            let (d1, d2) = dot2(&a, &b, &c);
            assert_eq!(d1.to_bits(), d.to_bits(), "n = {n}");
            assert_eq!(d2.to_bits(), dot_portable(&a, &c).to_bits(), "n = {n}");
        }
    }
}
