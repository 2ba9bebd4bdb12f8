//! Deconvolved resolution matrix W with R = W·G (SPEC.md §2.4, FastSpecFit's
//! `deconvolve_resolution_matrix`).
//!
//! With w = ndiag, w2 = w/2, n = npix and DIA data D:
//! 1. Row form Q[idx, i] = D[w − 1 − idx, (i + idx − w2) mod n] (column i of Q is
//!    row i of R over its band; the wrap on the DIA column index fills
//!    out-of-matrix slots with real entries from the other end of the array).
//! 2. Zero out-of-range slots at the edges, for i < w2:
//!    Q[0 .. w2−i−1, i] = 0 and Q[w2+1+i .., n−1−i] = 0.
//!    [QUIRK] the low-side range stops one short (Q[w2−i−1, i] keeps its wrapped
//!    value); reproduced to match FastSpecFit.
//! 3. Solve G·Wq = Q (one w×w LU with partial pivoting, n right-hand sides), with
//!    G[a, b] = exp(−½((b−a)/s)²)/(√(2π) s), s = σ₀/pixel = 0.5/0.8 px.
//! 4. mult = median_i Σ_idx Wq[idx, i] (1 if 0); for i < w2 scale column i by
//!    mult/Σ_{idx ≥ w2−i} Wq[idx, i] and column n−1−i by
//!    mult/Σ_{idx ≤ w2+i} Wq[idx, n−1−i] (skipped when the sum is 0).
//! 5. Back to DIA: W[r, j] = Wq[w − 1 − r, (j + r − w2) mod n].
//!
//! For w = 1 (stacks without RES) this is W = R/G₁₁ = R/0.6383
//! [QUIRK: inflates the line model by 1.567 for stacks], as in FastSpecFit.

use super::check_shape;
use crate::kernels::KernelError;

/// The width × width Gaussian matrix G (row-major) of step 3.
///
/// # Errors
/// [`KernelError::Shape`] if `out.len() != width²`; [`KernelError::Domain`]
/// unless σ₀ and the pixel size are positive.
pub fn gaussian_matrix(
    width: usize,
    sigma0_angstrom: f64,
    pix_size_angstrom: f64,
    out: &mut [f64],
) -> Result<(), KernelError> {
    if out.len() != width * width {
        return Err(KernelError::Shape(format!(
            "gaussian_matrix: {} for {width}^2",
            out.len()
        )));
    }
    if !(sigma0_angstrom > 0.0 && pix_size_angstrom > 0.0) {
        return Err(KernelError::Domain(format!(
            "gaussian_matrix: sigma0 = {sigma0_angstrom}, pixel = {pix_size_angstrom}"
        )));
    }
    let s = sigma0_angstrom / pix_size_angstrom;
    let norm = 1.0 / (2.0 * std::f64::consts::PI).sqrt() / s;
    for a in 0..width {
        for b in 0..width {
            let u = (b as f64 - a as f64) / s;
            out[a * width + b] = norm * (-0.5 * (u * u)).exp();
        }
    }
    Ok(())
}

/// In-place LU factorisation with partial pivoting (LAPACK `getrf` pivot rule:
/// first row of largest |a|), returning the row permutation applied in order.
fn lu_factor(a: &mut [f64], w: usize, piv: &mut [usize]) -> Result<(), KernelError> {
    for k in 0..w {
        let mut p = k;
        for r in k + 1..w {
            if a[r * w + k].abs() > a[p * w + k].abs() {
                p = r;
            }
        }
        piv[k] = p;
        if a[p * w + k] == 0.0 {
            return Err(KernelError::Domain(
                "deconvolution: singular Gaussian matrix".into(),
            ));
        }
        if p != k {
            for c in 0..w {
                a.swap(k * w + c, p * w + c);
            }
        }
        let inv = 1.0 / a[k * w + k];
        for r in k + 1..w {
            a[r * w + k] *= inv;
            let l = a[r * w + k];
            for c in k + 1..w {
                a[r * w + c] -= l * a[k * w + c];
            }
        }
    }
    Ok(())
}

/// Solve (LU)·X = P·B in place for B = `q` (w rows of n right-hand sides),
/// in column tiles so the w × tile block being updated stays in L1.
fn lu_solve_rows(lu: &[f64], piv: &[usize], w: usize, n: usize, q: &mut [f64]) {
    const TILE: usize = 128;
    for (k, &p) in piv.iter().enumerate() {
        if p != k {
            for c in 0..n {
                q.swap(k * n + c, p * n + c);
            }
        }
    }
    let mut c0 = 0;
    while c0 < n {
        let c1 = (c0 + TILE).min(n);
        // forward: unit lower triangle
        for k in 0..w {
            let (head, tail) = q.split_at_mut((k + 1) * n);
            let qk = &head[k * n + c0..k * n + c1];
            for r in k + 1..w {
                let l = lu[r * w + k];
                let off = (r - k - 1) * n;
                for (y, &v) in tail[off + c0..off + c1].iter_mut().zip(qk) {
                    *y -= l * v;
                }
            }
        }
        // backward: upper triangle
        for k in (0..w).rev() {
            let (head, tail) = q.split_at_mut(k * n);
            let qk = &mut tail[c0..c1];
            let ukk = lu[k * w + k];
            for v in qk.iter_mut() {
                *v /= ukk;
            }
            for r in 0..k {
                let u = lu[r * w + k];
                for (y, &v) in head[r * n + c0..r * n + c1].iter_mut().zip(qk.iter()) {
                    *y -= u * v;
                }
            }
        }
        c0 = c1;
    }
}

/// NumPy median (mean of the two central values for even length); reorders `v`.
fn median_in_place(v: &mut [f64]) -> f64 {
    let n = v.len();
    let (lower, upper, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    let upper = *upper;
    if n % 2 == 1 {
        return upper;
    }
    let below = lower
        .iter()
        .copied()
        .max_by(f64::total_cmp)
        .unwrap_or(upper);
    (below + upper) / 2.0
}

/// `dst[i] = src[(i + shift) mod n]` for `shift < n` (a rotation, without divisions).
fn rotate_copy(src: &[f64], shift: usize, dst: &mut [f64]) {
    let n = src.len();
    let (head, tail) = dst.split_at_mut(n - shift);
    head.copy_from_slice(&src[shift..]);
    tail.copy_from_slice(&src[..shift]);
}

/// The deconvolved W (DIA, `[ndiag][npix]`) of DIA data `data`, steps 1–5 of
/// the module docs, for a Gaussian of `sigma0_angstrom` on pixels of
/// `pix_size_angstrom`.
///
/// # Errors
/// [`KernelError::Shape`] for an even ndiag, inconsistent lengths or
/// npix < ndiag; [`KernelError::Domain`] for a singular Gaussian matrix or
/// non-positive widths.
pub fn deconvolve_dia(
    data: &[f64],
    ndiag: usize,
    npix: usize,
    sigma0_angstrom: f64,
    pix_size_angstrom: f64,
) -> Result<Vec<f64>, KernelError> {
    check_shape(ndiag, npix, data.len())?;
    if npix < ndiag {
        return Err(KernelError::Shape(format!(
            "deconvolution needs npix >= ndiag, got {npix} < {ndiag}"
        )));
    }
    let (w, n, w2) = (ndiag, npix, ndiag / 2);
    // 1. row form with wrapped DIA column index
    let mut q = vec![0.0; w * n];
    for idx in 0..w {
        let src = &data[(w - 1 - idx) * n..(w - idx) * n];
        rotate_copy(src, (idx + n - w2) % n, &mut q[idx * n..(idx + 1) * n]);
    }
    // 2. edge zeroing, with the one-short low-side range [QUIRK]
    for i in 0..w2 {
        for idx in 0..w2 - i - 1 {
            q[idx * n + i] = 0.0;
        }
        for idx in w2 + 1 + i..w {
            q[idx * n + (n - 1 - i)] = 0.0;
        }
    }
    // 3. solve G · Wq = Q
    let mut g = vec![0.0; w * w];
    gaussian_matrix(w, sigma0_angstrom, pix_size_angstrom, &mut g)?;
    let mut piv = vec![0usize; w];
    lu_factor(&mut g, w, &mut piv)?;
    lu_solve_rows(&g, &piv, w, n, &mut q);
    // 4. edge renormalisation to the median column sum
    let mut colsum = vec![0.0; n];
    for idx in 0..w {
        for (s, &v) in colsum.iter_mut().zip(&q[idx * n..(idx + 1) * n]) {
            *s += v;
        }
    }
    let mut mult = median_in_place(&mut colsum);
    if mult == 0.0 {
        mult = 1.0;
    }
    for i in 0..w2 {
        let n1: f64 = (w2 - i..w).map(|idx| q[idx * n + i]).sum();
        if n1 != 0.0 {
            let f = mult / n1;
            (0..w).for_each(|idx| q[idx * n + i] *= f);
        }
        let j = n - 1 - i;
        let n2: f64 = (0..=w2 + i).map(|idx| q[idx * n + j]).sum();
        if n2 != 0.0 {
            let f = mult / n2;
            (0..w).for_each(|idx| q[idx * n + j] *= f);
        }
    }
    // 5. back to DIA, in place (no second w × n buffer): DIA row r is row w−1−r of q
    // rotated left by (r + n − w2) mod n; rotate every row, then reverse the row order
    for r in 0..w {
        let idx = w - 1 - r;
        q[idx * n..(idx + 1) * n].rotate_left((r + n - w2) % n);
    }
    for r in 0..w / 2 {
        let (head, tail) = q.split_at_mut((w - 1 - r) * n);
        head[r * n..(r + 1) * n].swap_with_slice(&mut tail[..n]);
    }
    Ok(q)
}
