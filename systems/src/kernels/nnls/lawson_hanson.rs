//! The Lawson–Hanson active-set iteration, step for step as scipy 1.17's C
//! translation (`__nnls.c`) performs it, on a column-major m×n matrix.
//!
//! Kept faithful on purpose, quirks included: a rejected candidate column keeps
//! the Householder vector `dlarfgp` wrote into its sub-diagonal part, the
//! iteration counter is checked at the top of every inner pass, and the
//! independence test is |pivot| > 100·ulp(‖A[0:|P|, j]‖).

use super::householder::{apply_reflector, dot, givens_nonneg, nrm2, reflector_nonneg};

/// What one run of [`lawson_hanson`] reports.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LhOutcome {
    /// ‖b̃[|P|:m]‖ (0 when |P| = m).
    pub rnorm: f64,
    /// `false` when the iteration limit was hit (scipy `info = 3`).
    pub converged: bool,
    /// Number of candidate columns rejected (dependent or non-positive).
    pub rejections: usize,
    /// Inner passes used.
    pub iterations: usize,
}

/// Scratch of [`lawson_hanson`]: dual vector `w` (n), `zz` (m), permutation (n).
pub(crate) struct LhScratch<'a> {
    pub w: &'a mut [f64],
    pub zz: &'a mut [f64],
    pub idx: &'a mut [usize],
}

/// Back-substitution of the permuted triangular system into `zz[0..np]`.
fn solve_triangular(a: &[f64], m: usize, idx: &[usize], np: usize, zz: &mut [f64]) {
    let mut jj = 0;
    for k in 0..np {
        let ip = np - 1 - k;
        if k != 0 {
            let zn = zz[ip + 1];
            let col = &a[jj * m..jj * m + ip + 1];
            for (z, &c) in zz[..=ip].iter_mut().zip(col) {
                *z -= c * zn;
            }
        }
        jj = idx[ip];
        zz[ip] /= a[ip + jj * m];
    }
}

/// Solve min ‖Ax − b‖ subject to x ≥ 0; `a` (m×n, column-major) and `b` are
/// overwritten by their transformed versions, `x` receives the solution.
pub(crate) fn lawson_hanson(
    a: &mut [f64],
    m: usize,
    n: usize,
    b: &mut [f64],
    x: &mut [f64],
    s: LhScratch<'_>,
    maxiter: usize,
) -> LhOutcome {
    let LhScratch { w, zz, idx } = s;
    for (i, v) in idx.iter_mut().enumerate() {
        *v = i;
    }
    x.fill(0.0);
    let mut out = LhOutcome {
        rnorm: 0.0,
        converged: true,
        rejections: 0,
        iterations: 0,
    };
    let mut indz = 0usize;
    let mut iteration = 0usize;

    'outer: while indz < m.min(n) {
        // Dual vector on the columns still in Z.
        for &j in &idx[indz..n] {
            w[j] = dot(&a[indz + j * m..(j + 1) * m], &b[indz..m]);
        }
        // Next acceptable column: largest positive dual, independent, z > 0.
        let (iz, j, tau, pivot) = loop {
            let mut wmax = 0.0;
            let mut izmax = indz;
            for (k, &jk) in idx.iter().enumerate().take(n).skip(indz) {
                if w[jk] > wmax {
                    wmax = w[jk];
                    izmax = k;
                }
            }
            if wmax <= 0.0 {
                break 'outer;
            }
            let j = idx[izmax];
            let col = &mut a[j * m..(j + 1) * m];
            let mut pivot = col[indz];
            let tau = reflector_nonneg(&mut pivot, &mut col[indz + 1..]);
            let unorm = if indz > 0 { nrm2(&col[..indz]) } else { 0.0 };
            let spacing = if unorm > 0.0 {
                f64::from_bits(unorm.to_bits() + 1) - unorm
            } else {
                0.0
            };
            if pivot.abs() > 100.0 * spacing {
                zz[..m].copy_from_slice(&b[..m]);
                let pivot2 = col[indz];
                col[indz] = 1.0;
                let (z0, ztail) = zz[indz..m].split_at_mut(1);
                apply_reflector(&col[indz + 1..], tau, &mut z0[0], ztail);
                let ztest = zz[indz] / pivot;
                if ztest > 0.0 {
                    break (izmax, j, tau, pivot);
                }
                col[indz] = pivot2;
            }
            out.rejections += 1;
            w[j] = 0.0;
        };

        // Move j from Z to P; transform b and the remaining Z columns.
        b[..m].copy_from_slice(&zz[..m]);
        idx[iz] = idx[indz];
        idx[indz] = j;
        indz += 1;
        if indz < n {
            for &jj in &idx[indz..n] {
                let (vcol, c) = col_pair(a, m, j, jj);
                let (c0, ctail) = c[indz - 1..].split_at_mut(1);
                apply_reflector(&vcol[indz..], tau, &mut c0[0], ctail);
            }
        }
        a[indz - 1 + j * m] = pivot;
        for v in &mut a[j * m + indz..(j + 1) * m] {
            *v = 0.0;
        }
        w[j] = 0.0;
        solve_triangular(a, m, idx, indz, zz);

        // Inner loop: keep the P coefficients feasible.
        loop {
            iteration += 1;
            if iteration >= maxiter {
                out.converged = false;
                break 'outer;
            }
            let mut alpha = 2.0;
            let mut jj = 0usize;
            for ip in 0..indz {
                let k = idx[ip];
                if zz[ip] <= 0.0 {
                    let t = -x[k] / (zz[ip] - x[k]);
                    if alpha > t {
                        alpha = t;
                        jj = ip;
                    }
                }
            }
            if alpha == 2.0 {
                break;
            }
            for ip in 0..indz {
                let k = idx[ip];
                x[k] += alpha * (zz[ip] - x[k]);
            }
            // Move coefficient idx[jj] (and any other non-positive one) back to Z.
            let mut i = idx[jj];
            loop {
                x[i] = 0.0;
                if jj + 1 != indz {
                    for jr in jj + 1..indz {
                        let ii = idx[jr];
                        idx[jr - 1] = ii;
                        let (cc, ss, r) = givens_nonneg(a[jr - 1 + ii * m], a[jr + ii * m]);
                        a[jr - 1 + ii * m] = r;
                        a[jr + ii * m] = 0.0;
                        for k in (0..n).filter(|&k| k != ii) {
                            let t = a[jr - 1 + k * m];
                            a[jr - 1 + k * m] = cc * t + ss * a[jr + k * m];
                            a[jr + k * m] = -ss * t + cc * a[jr + k * m];
                        }
                        let t = b[jr - 1];
                        b[jr - 1] = cc * t + ss * b[jr];
                        b[jr] = -ss * t + cc * b[jr];
                    }
                }
                indz -= 1;
                idx[indz] = i;
                match idx[..indz].iter().position(|&k| x[k] <= 0.0) {
                    Some(p) => {
                        jj = p;
                        i = idx[p];
                    }
                    None => break,
                }
            }
            zz[..m].copy_from_slice(&b[..m]);
            solve_triangular(a, m, idx, indz, zz);
        }
        for k in 0..indz {
            x[idx[k]] = zz[k];
        }
    }
    out.iterations = iteration;
    if indz < m {
        out.rnorm = nrm2(&b[indz..m]);
    } else {
        w[..n].fill(0.0);
        out.rnorm = 0.0;
    }
    out
}

/// Column `j` (read) and column `k` (write) of a column-major matrix, j ≠ k.
fn col_pair(a: &mut [f64], m: usize, j: usize, k: usize) -> (&[f64], &mut [f64]) {
    if j < k {
        let (lo, hi) = a.split_at_mut(k * m);
        (&lo[j * m..(j + 1) * m], &mut hi[..m])
    } else {
        let (lo, hi) = a.split_at_mut(j * m);
        (&hi[..m], &mut lo[k * m..(k + 1) * m])
    }
}
