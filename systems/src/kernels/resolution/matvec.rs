//! Banded DIA matrix–vector products (SPEC.md §2.4): a scalar reference and a
//! `wide::f64x4` twin.
//!
//! Row i of M·x sums D[d, j]·x[j] over the diagonals d with j = i + w2 − d inside
//! [0, npix). For the interior rows w2 ≤ i < npix − w2 every diagonal
//! contributes, so with r = i − w2 the d-th term is D[d, r + 2w2 − d]·x[r + 2w2 − d]:
//! each diagonal becomes one contiguous slice over r, and the SIMD kernel streams
//! the ndiag slice pairs once, 8 rows at a time.

use wide::f64x4;

use super::check_shape;
use crate::kernels::KernelError;

/// Largest band the SIMD kernel handles with its stack-held slice table; wider
/// matrices fall back to the scalar product.
const MAX_SIMD_DIAG: usize = 31;

fn check(data: &[f64], ndiag: usize, x: &[f64], out: &[f64]) -> Result<(), KernelError> {
    check_shape(ndiag, x.len(), data.len())?;
    if out.len() != x.len() {
        return Err(KernelError::Shape(format!(
            "dia_matvec: x of {} but out of {}",
            x.len(),
            out.len()
        )));
    }
    Ok(())
}

/// One output row, diagonals summed in storage order (d = 0 first).
#[inline]
fn row(data: &[f64], n: usize, ndiag: usize, x: &[f64], i: usize) -> f64 {
    let w2 = ndiag / 2;
    // valid d: 0 <= i + w2 - d < n
    let d_lo = (i + w2 + 1).saturating_sub(n);
    let d_hi = (i + w2).min(ndiag - 1);
    let mut acc = 0.0;
    for d in d_lo..=d_hi {
        let j = i + w2 - d;
        acc += data[d * n + j] * x[j];
    }
    acc
}

/// out = M·x for DIA data `[ndiag][npix]` (npix = `x.len()`), summing the
/// diagonals of each row in storage order: bit-identical to FastSpecFit's
/// `Resolution._matvec`.
///
/// # Errors
/// [`KernelError::Shape`] for an even ndiag or inconsistent lengths.
pub fn dia_matvec_scalar(
    data: &[f64],
    ndiag: usize,
    x: &[f64],
    out: &mut [f64],
) -> Result<(), KernelError> {
    check(data, ndiag, x, out)?;
    let n = x.len();
    for (i, o) in out.iter_mut().enumerate() {
        *o = row(data, n, ndiag, x, i);
    }
    Ok(())
}

#[inline(always)]
fn load4(s: &[f64]) -> f64x4 {
    f64x4::new([s[0], s[1], s[2], s[3]])
}

/// out = M·x, SIMD: interior rows 8 at a time (`f64x4`, two row blocks × two
/// partial sums over even/odd diagonals = four independent accumulators),
/// scalar edge rows and remainder. Matches [`dia_matvec_scalar`] to summation
/// roundoff (≈1e-16 relative for DESI matrices, whose entries are positive).
///
/// # Errors
/// [`KernelError::Shape`] for an even ndiag or inconsistent lengths.
pub fn dia_matvec(
    data: &[f64],
    ndiag: usize,
    x: &[f64],
    out: &mut [f64],
) -> Result<(), KernelError> {
    check(data, ndiag, x, out)?;
    let n = x.len();
    let w2 = ndiag / 2;
    let m = n.saturating_sub(2 * w2); // interior rows
    if ndiag > MAX_SIMD_DIAG || m < 8 {
        for (i, o) in out.iter_mut().enumerate() {
            *o = row(data, n, ndiag, x, i);
        }
        return Ok(());
    }
    let interior = &mut out[w2..w2 + m];
    // the DESI band gets a fully unrolled kernel; other widths the generic one
    let r = if ndiag == 11 {
        interior_blocks_11(data, n, x, interior)
    } else {
        interior_blocks(data, n, ndiag, x, interior)
    };
    for (rr, o) in interior.iter_mut().enumerate().skip(r) {
        *o = row(data, n, ndiag, x, w2 + rr);
    }
    for i in (0..w2).chain(w2 + m..n) {
        out[i] = row(data, n, ndiag, x, i);
    }
    Ok(())
}

/// 8-row blocks of the interior for any band width up to [`MAX_SIMD_DIAG`]
/// (per-diagonal slices aligned on the interior row index): returns the rows
/// done.
fn interior_blocks(data: &[f64], n: usize, ndiag: usize, x: &[f64], interior: &mut [f64]) -> usize {
    let (w2, m) = (ndiag / 2, interior.len());
    let mut dd: [&[f64]; MAX_SIMD_DIAG] = [&[]; MAX_SIMD_DIAG];
    let mut xd: [&[f64]; MAX_SIMD_DIAG] = [&[]; MAX_SIMD_DIAG];
    for d in 0..ndiag.min(MAX_SIMD_DIAG) {
        let s = 2 * w2 - d;
        let (Some(dv), Some(xv)) = (data.get(d * n + s..d * n + s + m), x.get(s..s + m)) else {
            return 0;
        };
        dd[d] = dv;
        xd[d] = xv;
    }
    let mut r = 0;
    while r + 8 <= m {
        let (mut a0, mut a1, mut b0, mut b1) = (f64x4::ZERO, f64x4::ZERO, f64x4::ZERO, f64x4::ZERO);
        let mut d = 0;
        while d + 1 < ndiag {
            let (p, q) = (&dd[d][r..r + 8], &xd[d][r..r + 8]);
            let (p1, q1) = (&dd[d + 1][r..r + 8], &xd[d + 1][r..r + 8]);
            a0 += load4(&p[..4]) * load4(&q[..4]);
            b0 += load4(&p[4..]) * load4(&q[4..]);
            a1 += load4(&p1[..4]) * load4(&q1[..4]);
            b1 += load4(&p1[4..]) * load4(&q1[4..]);
            d += 2;
        }
        if d < ndiag {
            let (p, q) = (&dd[d][r..r + 8], &xd[d][r..r + 8]);
            a0 += load4(&p[..4]) * load4(&q[..4]);
            b0 += load4(&p[4..]) * load4(&q[4..]);
        }
        let dst = &mut interior[r..r + 8];
        dst[..4].copy_from_slice(&(a0 + a1).to_array());
        dst[4..].copy_from_slice(&(b0 + b1).to_array());
        r += 8;
    }
    r
}

/// 8-row blocks of the interior for the DESI band (11 diagonals), written out
/// term by term: x is read through one 18-wide window per block (its 11 shifts
/// become constant offsets) and each diagonal through one 8-wide window.
/// Returns the rows done.
fn interior_blocks_11(data: &[f64], n: usize, x: &[f64], interior: &mut [f64]) -> usize {
    const W2: usize = 5;
    let mut done = 0;
    for (blk, dst) in interior.chunks_exact_mut(8).enumerate() {
        let r = blk * 8;
        let Some(xw) = x.get(r..r + 2 * W2 + 8) else {
            return done;
        };
        let (mut a0, mut a1, mut b0, mut b1) = (f64x4::ZERO, f64x4::ZERO, f64x4::ZERO, f64x4::ZERO);
        // diagonal d: rows r..r+8 read D[d, r + s ..] and x[r + s ..], s = 2·W2 − d
        macro_rules! term {
            ($d:expr, $a:ident, $b:ident) => {{
                let s = 2 * W2 - $d;
                let start = $d * n + s + r;
                let Some(p) = data.get(start..start + 8) else {
                    return done;
                };
                let q = &xw[s..s + 8];
                $a += load4(&p[..4]) * load4(&q[..4]);
                $b += load4(&p[4..]) * load4(&q[4..]);
            }};
        }
        term!(0, a0, b0);
        term!(1, a1, b1);
        term!(2, a0, b0);
        term!(3, a1, b1);
        term!(4, a0, b0);
        term!(5, a1, b1);
        term!(6, a0, b0);
        term!(7, a1, b1);
        term!(8, a0, b0);
        term!(9, a1, b1);
        term!(10, a0, b0);
        dst[..4].copy_from_slice(&(a0 + a1).to_array());
        dst[4..].copy_from_slice(&(b0 + b1).to_array());
        done = r + 8;
    }
    done
}

/// Rows [a, b) of [`dia_matvec`]`(data, ndiag, x)` into `out[..b − a]`,
/// bit-identical to the full product: rows that the full product sums in
/// its 8-row SIMD blocks (interior rows w2 .. w2 + 8⌊m/8⌋, m = npix − 2w2)
/// get the same two partial sums (even diagonals, odd diagonals, each from
/// +0 in ascending d, then added), computed here four rows per vector in any
/// alignment (each lane is one row's own chain); every other row is summed
/// sequentially in storage order as [`dia_matvec`]'s scalar rows. For the
/// emission-line residuals, which need W·x only where x reaches.
///
/// The caller guarantees a valid shape (odd `ndiag`, `data` of
/// `ndiag · x.len()`, a ≤ b ≤ `x.len()`, `out` of at least b − a).
pub(crate) fn dia_matvec_rows(
    data: &[f64],
    ndiag: usize,
    x: &[f64],
    a: usize,
    b: usize,
    out: &mut [f64],
) {
    let n = x.len();
    let w2 = ndiag / 2;
    let m = n.saturating_sub(2 * w2);
    let out = &mut out[..b - a];
    // the rows dia_matvec sums in SIMD blocks
    let (blo, bhi) = if ndiag > MAX_SIMD_DIAG || m < 8 {
        (0, 0)
    } else {
        (w2, w2 + m - m % 8)
    };
    let (vlo, vhi) = (a.max(blo), b.min(bhi));
    if vlo >= vhi {
        for (i, o) in (a..b).zip(out.iter_mut()) {
            *o = row(data, n, ndiag, x, i);
        }
        return;
    }
    for i in (a..vlo).chain(vhi..b) {
        out[i - a] = row(data, n, ndiag, x, i);
    }
    // rows i of the block region: term d reads D[d, i + w2 − d]·x[i + w2 − d]
    let mut i = vlo;
    while i + 4 <= vhi {
        let (mut a0, mut a1) = (f64x4::ZERO, f64x4::ZERO);
        let mut d = 0;
        while d < ndiag {
            let j = i + w2 - d;
            let t = load4(&data[d * n + j..d * n + j + 4]) * load4(&x[j..j + 4]);
            if d % 2 == 0 {
                a0 += t;
            } else {
                a1 += t;
            }
            d += 1;
        }
        out[i - a..i - a + 4].copy_from_slice(&(a0 + a1).to_array());
        i += 4;
    }
    while i < vhi {
        let (mut a0, mut a1) = (0.0f64, 0.0f64);
        for d in 0..ndiag {
            let j = i + w2 - d;
            let t = data[d * n + j] * x[j];
            if d % 2 == 0 {
                a0 += t;
            } else {
                a1 += t;
            }
        }
        out[i - a] = a0 + a1;
        i += 1;
    }
}
