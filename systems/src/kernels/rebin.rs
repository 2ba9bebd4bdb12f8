//! Flux-conserving trapezoidal rebinning (SPEC.md §3.5 step 1, §A.8).
//!
//! [`centers2edges`]: interior edges are midpoints of neighbouring centres,
//! e_k = (c_{k−1} + c_k)/2; the outer edges extrapolate half a bin,
//! e_0 = c_0 − (e_1 − c_0) and e_n = c_{n−1} + (c_{n−1} − e_{n−1}).
//!
//! [`trapz_rebin`]: for bins [e_i, e_{i+1}] the output is the average of the
//! piecewise-linear interpolant of (x, y) over the bin,
//! out_i = (1/(e_{i+1} − e_i)) ∫_{e_i}^{e_{i+1}} ŷ(t) dt, integrated exactly
//! (trapezoids between the nodes inside the bin plus the two partial segments).
//!
//! [QUIRK] (reproduced to match FastSpecFit's first pixel of every camera): the
//! start node is found by *right* bisection of e_0, so x_j is the first node
//! strictly greater than e_0. The value at e_0 is then extrapolated along the
//! segment [x_j, x_{j+1}] and the first area runs from e_0 straight to x_{j+1}
//! along that line: the node x_{j−1} ≤ e_0 that really brackets e_0 is never
//! used and x_j is not a trapezoid node (when the nodes are sparser than the bins
//! this affects every bin below x_{j+1}, not only the first).

use super::KernelError;

/// Bin edges from bin centres: `edges.len() == centers.len() + 1`.
///
/// # Errors
/// [`KernelError::Shape`] if there are fewer than 2 centres or `edges` has the
/// wrong length.
pub fn centers2edges(centers: &[f64], edges: &mut [f64]) -> Result<(), KernelError> {
    let n = centers.len();
    if n < 2 || edges.len() != n + 1 {
        return Err(KernelError::Shape(format!(
            "centers2edges: {n} centres (need >= 2) and {} edges (need {})",
            edges.len(),
            n + 1
        )));
    }
    for k in 1..n {
        edges[k] = 0.5 * (centers[k - 1] + centers[k]);
    }
    edges[0] = centers[0] - (centers[1] - edges[1]);
    edges[n] = centers[n - 1] + (centers[n - 1] - edges[n - 1]);
    Ok(())
}

/// Rebin (x, y) onto the bins `edges` (flux-conserving average), into `out`
/// (`out.len() == edges.len() - 1`). Allocation-free.
///
/// `x` must increase and `edges` must increase (not checked; other inputs give
/// meaningless numbers but never a panic). The first bin follows FastSpecFit's
/// right-bisection [QUIRK] described in the module docs.
///
/// # Errors
/// * [`KernelError::Shape`] if `x.len() != y.len()`, fewer than 2 nodes or
///   edges, or `out` has the wrong length.
/// * [`KernelError::Domain`] if the edges are not inside the node range
///   (e_0 < x_0 or x_last < e_last, FastSpecFit's error), or if e_0 lies at or
///   beyond the last-but-one node, where FastSpecFit would read past the end.
pub fn trapz_rebin(
    x: &[f64],
    y: &[f64],
    edges: &[f64],
    out: &mut [f64],
) -> Result<(), KernelError> {
    let n = x.len();
    if n < 2 || y.len() != n || edges.len() < 2 || out.len() != edges.len() - 1 {
        return Err(KernelError::Shape(format!(
            "trapz_rebin: {} x, {} y, {} edges, {} outputs",
            n,
            y.len(),
            edges.len(),
            out.len()
        )));
    }
    let nbins = out.len();
    // NaN edges fail these comparisons and are caught here too
    if !(edges[0] >= x[0] && x[n - 1] >= edges[nbins]) {
        return Err(KernelError::Domain(format!(
            "trapz_rebin: edges [{}, {}] must lie within x range [{}, {}]",
            edges[0],
            edges[nbins],
            x[0],
            x[n - 1]
        )));
    }
    // [QUIRK] right bisection: x[j] is the first node strictly greater than edges[0]
    let mut j = x.partition_point(|&v| v <= edges[0]);
    if j + 1 >= n {
        return Err(KernelError::Domain(format!(
            "trapz_rebin: first edge {} leaves no node segment above it (last nodes {}, {})",
            edges[0],
            x[n - 2],
            x[n - 1]
        )));
    }
    // value of the line through (x[j], y[j]), (x[j+1], y[j+1]) at e
    let y_at = |e: f64, j: usize| y[j] + (e - x[j]) * (y[j + 1] - y[j]) / (x[j + 1] - x[j]);

    let mut xlo = edges[0];
    let mut ylo = y_at(xlo, j);
    for (i, o) in out.iter_mut().enumerate() {
        let ehi = edges[i + 1];
        let mut a = 0.0;
        // whole trapezoids up to every node strictly inside the bin
        while j + 2 < n && x[j + 1] < ehi {
            let (xhi, yhi) = (x[j + 1], y[j + 1]);
            a += (xhi - xlo) * (yhi + ylo);
            xlo = xhi;
            ylo = yhi;
            j += 1;
        }
        // partial segment up to the upper edge
        let yhi = y_at(ehi, j);
        a += (ehi - xlo) * (yhi + ylo);
        xlo = ehi;
        ylo = yhi;
        *o = 0.5 * (1.0 / (ehi - edges[i])) * a;
    }
    Ok(())
}

/// [`trapz_rebin`] of every row of `ys` (`nrows × x.len()`, row-major) into the
/// rows of `out` (`nrows × (edges.len() − 1)`), e.g. all templates at once.
///
/// # Errors
/// As [`trapz_rebin`], plus [`KernelError::Shape`] if `ys` or `out` is not a
/// whole number of rows.
pub fn trapz_rebin_batch(
    x: &[f64],
    ys: &[f64],
    edges: &[f64],
    out: &mut [f64],
) -> Result<(), KernelError> {
    let (nx, nb) = (x.len(), edges.len().saturating_sub(1));
    if nx == 0 || nb == 0 || !ys.len().is_multiple_of(nx) || out.len() != (ys.len() / nx) * nb {
        return Err(KernelError::Shape(format!(
            "trapz_rebin_batch: {} values for rows of {nx}, {} outputs for rows of {nb}",
            ys.len(),
            out.len()
        )));
    }
    for (y, o) in ys.chunks_exact(nx).zip(out.chunks_exact_mut(nb)) {
        trapz_rebin(x, y, edges, o)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> serde_json::Value {
        crate::kernels::test_fixtures::load(&format!("rebin/{name}"))
    }

    use crate::kernels::test_fixtures::f64s as vec;

    /// The DESI b, r, z camera grids (NumPy linspace arithmetic, checked
    /// bit-exact against the coadd files by the generator).
    fn camera_grids() -> Vec<Vec<f64>> {
        let fx = fixture("camera_grids.json");
        fx["grids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                let (start, stop) = (g["start"].as_f64().unwrap(), g["stop"].as_f64().unwrap());
                let n = g["n"].as_u64().unwrap() as usize;
                let step = (stop - start) / (n - 1) as f64;
                let mut w: Vec<f64> = (0..n).map(|i| i as f64 * step + start).collect();
                w[n - 1] = stop;
                w
            })
            .collect()
    }

    fn smooth(rest: f64) -> f64 {
        1.0 + 0.5 * (rest / 37.0).sin() + 2000.0 / rest
    }

    fn rough(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| ((i as u64 * 7919) % 1009) as f64 / 1009.0 + 0.1)
            .collect()
    }

    #[test]
    fn centers2edges_matches_fastspecfit() {
        let fx = fixture("camera_grids.json");
        let want = vec(&fx["edges_b"]);
        let b = &camera_grids()[0];
        let mut e = vec![0.0; b.len() + 1];
        centers2edges(b, &mut e).unwrap();
        assert_eq!(e.len(), want.len());
        for (i, (g, w)) in e.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "edge {i} must be bit-identical");
        }
    }

    /// Real BC03 template grid × (1+z) onto the three real camera grids at both
    /// bundled redshifts, for a smooth and a pixel-to-pixel rough spectrum,
    /// against fastspecfit.util.trapz_rebin.
    #[test]
    fn matches_fastspecfit_on_real_grids() {
        let rest = vec(&fixture("template_wave.json")["rest_wave"]);
        let grids = camera_grids();
        let mut worst = 0.0_f64;
        for z in ["0.368744", "3.1484"] {
            for kind in ["smooth", "rough"] {
                let fx = fixture(&format!("z{z}_{kind}.json"));
                let zz = fx["z"].as_f64().unwrap();
                let zwave: Vec<f64> = rest.iter().map(|w| w * (1.0 + zz)).collect();
                let y: Vec<f64> = match kind {
                    "smooth" => rest.iter().map(|&w| smooth(w)).collect(),
                    _ => rough(rest.len()),
                };
                for (grid, key) in grids.iter().zip(["b", "r", "z_cam"]) {
                    let mut edges = vec![0.0; grid.len() + 1];
                    centers2edges(grid, &mut edges).unwrap();
                    let mut out = vec![0.0; grid.len()];
                    trapz_rebin(&zwave, &y, &edges, &mut out).unwrap();
                    for (i, (g, w)) in out.iter().zip(vec(&fx[key])).enumerate() {
                        let err = (g - w).abs() / w.abs();
                        assert!(err <= 1e-12, "z={z} {kind} {key}[{i}]: {g} vs {w}");
                        worst = worst.max(err);
                    }
                }
            }
        }
        assert!(worst <= 1e-12, "worst relative error {worst}");
    }

    /// The [QUIRK]: the first bin ignores the node just below e_0.
    #[test]
    fn first_bin_quirk() {
        let x = [0.0, 1.0, 2.0, 3.0];
        let y = [100.0, 0.0, 0.0, 0.0];
        // e_0 = 0.5 lies in [x0, x1]; honest interpolation gives y(0.5) = 50,
        // FastSpecFit extrapolates the segment [x1, x2]: y(0.5) = 0.
        let mut out = [f64::NAN; 1];
        trapz_rebin(&x, &y, &[0.5, 1.5], &mut out).unwrap();
        assert_eq!(out[0], 0.0);
        // linear data are reproduced exactly whatever the segment used
        let y = [1.0, 3.0, 5.0, 7.0];
        let mut o = [0.0; 2];
        trapz_rebin(&x, &y, &[0.5, 1.5, 2.5], &mut o).unwrap();
        assert_eq!(o, [3.0, 5.0]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let x = [0.0, 1.0, 2.0];
        let y = [1.0, 1.0, 1.0];
        let mut o = [0.0; 1];
        assert!(matches!(
            trapz_rebin(&x, &y, &[-0.1, 1.0], &mut o),
            Err(KernelError::Domain(_))
        ));
        assert!(matches!(
            trapz_rebin(&x, &y, &[0.5, 2.1], &mut o),
            Err(KernelError::Domain(_))
        ));
        assert!(matches!(
            trapz_rebin(&x, &y, &[f64::NAN, 1.0], &mut o),
            Err(KernelError::Domain(_))
        ));
        assert!(matches!(
            trapz_rebin(&x, &y, &[1.5, 2.0], &mut o),
            Err(KernelError::Domain(_))
        ));
        assert!(matches!(
            trapz_rebin(&x, &y[..2], &[0.5, 1.0], &mut o),
            Err(KernelError::Shape(_))
        ));
        assert!(matches!(
            centers2edges(&[1.0], &mut [0.0; 2]),
            Err(KernelError::Shape(_))
        ));
        // non-monotonic edges: meaningless but no panic
        let mut o2 = [0.0; 2];
        assert!(trapz_rebin(&x, &y, &[0.5, 1.9, 0.7], &mut o2).is_ok());
        // batch: rows of y
        let ys = [1.0, 1.0, 1.0, 2.0, 2.0, 2.0];
        let mut ob = [0.0; 2];
        trapz_rebin_batch(&x, &ys, &[0.5, 1.5], &mut ob).unwrap();
        assert_eq!(ob, [1.0, 2.0]);
    }
}
