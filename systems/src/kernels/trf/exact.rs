//! The exact trust-region sub-problem solver (`tr_solver='exact'`):
//! SVD of the scaled (augmented) Jacobian and scipy's
//! `solve_lsq_trust_region` (Moré–Sorensen iteration on the secular equation).

use faer::dyn_stack::MemStack;
use faer::linalg::svd::svd;
use faer::{ColMut, MatMut, MatRef, Par};

use super::super::nnls::householder::{apply_reflector, dot, reflector};
use super::common::norm;
use super::workspace::ExactScratch;
use super::KernelError;

/// Factor \[J diag(d); diag(√diag_h)\] (or J diag(d) alone when `diag_h` is
/// `None`) as U S Vᵀ and form uf = Uᵀ\[f; 0\]. `jac` is m×n column-major.
/// Fills `e.s` (descending), `e.vmat` (n×k) and `e.uf`; returns k = number of
/// singular values.
pub(super) fn factor(
    jac: &[f64],
    m: usize,
    n: usize,
    d: &[f64],
    diag_h: Option<&[f64]>,
    f: &[f64],
    e: &mut ExactScratch,
) -> Result<usize, KernelError> {
    let rows = if diag_h.is_some() { m + n } else { m };
    let k = rows.min(n);
    // Assemble the (augmented) matrix and right-hand side.
    for j in 0..n {
        let col = &mut e.jaug[j * rows..(j + 1) * rows];
        for (c, &v) in col[..m].iter_mut().zip(&jac[j * m..(j + 1) * m]) {
            *c = v * d[j];
        }
        if let Some(dh) = diag_h {
            col[m..].fill(0.0);
            col[m + j] = dh[j].sqrt();
        }
    }
    e.faug[..m].copy_from_slice(f);
    e.faug[m..rows].fill(0.0);
    if !crate::kernels::simd::all_finite(&e.jaug[..rows * n]) {
        return Err(KernelError::NonFinite("trf: Jacobian".into()));
    }
    if rows >= n {
        // Householder QR; the SVD of the n×n triangle has the same s, V and Uᵀf.
        for kk in 0..n {
            let (left, right) = e.jaug.split_at_mut((kk + 1) * rows);
            let col = &mut left[kk * rows..];
            let mut beta = col[kk];
            let tau = reflector(&mut beta, &mut col[kk + 1..]);
            let v = &col[kk + 1..];
            for jj in 0..n - kk - 1 {
                let c = &mut right[jj * rows + kk..(jj + 1) * rows];
                let (c0, ct) = c.split_at_mut(1);
                apply_reflector(v, tau, &mut c0[0], ct);
            }
            let (f0, ft) = e.faug[kk..rows].split_at_mut(1);
            apply_reflector(v, tau, &mut f0[0], ft);
            col[kk] = beta;
        }
        for j in 0..n {
            for i in 0..n {
                e.rmat[i + j * n] = if i <= j { e.jaug[i + j * rows] } else { 0.0 };
            }
        }
    } else {
        e.rmat[..rows * n].copy_from_slice(&e.jaug[..rows * n]);
    }
    let a = MatRef::from_column_major_slice(&e.rmat[..k * n], k, n);
    let mem = e
        .svd_mem
        .as_mut()
        .ok_or_else(|| KernelError::Shape("trf: SVD scratch not sized".into()))?;
    svd(
        a,
        ColMut::from_slice_mut(&mut e.s[..k]).as_diagonal_mut(),
        Some(MatMut::from_column_major_slice_mut(&mut e.u[..k * k], k, k)),
        Some(MatMut::from_column_major_slice_mut(
            &mut e.vmat[..n * k],
            n,
            k,
        )),
        Par::Seq,
        MemStack::new(mem),
        Default::default(),
    )
    .map_err(|_| KernelError::NoConvergence("trf: SVD did not converge".into()))?;
    for i in 0..k {
        e.uf[i] = dot(&e.u[i * k..(i + 1) * k], &e.faug[..k]);
    }
    Ok(k)
}

/// φ(α) = ‖suf/(s²+α)‖ − Δ and its derivative.
fn phi_and_derivative(alpha: f64, suf: &[f64], s: &[f64], delta: f64) -> (f64, f64) {
    let mut pn2 = 0.0;
    let mut acc = 0.0;
    for (&a, &si) in suf.iter().zip(s) {
        let denom = si * si + alpha;
        let q = a / denom;
        pn2 += q * q;
        acc += a * a / (denom * denom * denom);
    }
    let p_norm = pn2.sqrt();
    (p_norm - delta, -acc / p_norm)
}

/// scipy `solve_lsq_trust_region` (rtol 0.01, max_iter 10): the step p
/// (written into `p`) minimising ‖J p + f‖ subject to ‖p‖ ≤ Δ; returns the new
/// Levenberg–Marquardt parameter α. `m` is the residual count (not rows of the
/// augmented matrix).
pub(super) fn solve_lsq_trust_region(
    n: usize,
    m: usize,
    k: usize,
    e: &mut ExactScratch,
    delta: f64,
    initial_alpha: f64,
    p: &mut [f64],
) -> f64 {
    let s = &e.s[..k];
    let uf = &e.uf[..k];
    for i in 0..k {
        e.suf[i] = s[i] * uf[i];
    }
    let suf = &e.suf[..k];
    let full_rank = if m >= n {
        let threshold = f64::EPSILON * m as f64 * s[0];
        s[k - 1] > threshold
    } else {
        false
    };
    if full_rank {
        // Gauss–Newton step −V (uf / s).
        p.fill(0.0);
        for j in 0..k {
            let w = uf[j] / s[j];
            for (pi, &v) in p.iter_mut().zip(&e.vmat[j * n..(j + 1) * n]) {
                *pi -= v * w;
            }
        }
        if norm(p) <= delta {
            return 0.0;
        }
    }
    let mut alpha_upper = norm(suf) / delta;
    let mut alpha_lower = if full_rank {
        let (phi, phi_prime) = phi_and_derivative(0.0, suf, s, delta);
        -phi / phi_prime
    } else {
        0.0
    };
    let mut alpha = if !full_rank && initial_alpha == 0.0 {
        (0.001 * alpha_upper).max((alpha_lower * alpha_upper).sqrt())
    } else {
        initial_alpha
    };
    for _ in 0..10 {
        if alpha < alpha_lower || alpha > alpha_upper {
            alpha = (0.001 * alpha_upper).max((alpha_lower * alpha_upper).sqrt());
        }
        let (phi, phi_prime) = phi_and_derivative(alpha, suf, s, delta);
        if phi < 0.0 {
            alpha_upper = alpha;
        }
        let ratio = phi / phi_prime;
        alpha_lower = alpha_lower.max(alpha - ratio);
        alpha -= (phi + delta) * ratio / delta;
        if phi.abs() < 0.01 * delta {
            break;
        }
    }
    // p = −V (suf / (s² + α)), rescaled to norm Δ.
    p.fill(0.0);
    for j in 0..k {
        let wj = suf[j] / (s[j] * s[j] + alpha);
        for (pi, &v) in p.iter_mut().zip(&e.vmat[j * n..(j + 1) * n]) {
            *pi -= v * wj;
        }
    }
    let scale = delta / norm(p);
    for pi in p.iter_mut() {
        *pi *= scale;
    }
    alpha
}
