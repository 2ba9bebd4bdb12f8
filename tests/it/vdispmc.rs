//! The converged Monte Carlo σ★ refits (`vdispmc::converge_sigma`, the default
//! `--vdisp-mc converged`) on the synthetic σ-fit fixture: each refit must reach the same
//! minimum as the TRF converged to tight tolerances from the same start, with at most the
//! TRF's χ², in a handful of evaluations.
use fastspecfit::simulate::vdisp_fixture::{lcg_noise, VdispFixture};
use fsf_systems::kernels::continuum::vdispmc::{converge_sigma, McSigmaWorkspace};
use fsf_systems::kernels::trf::{least_squares_dense_qr, Problem, TrfOptions, TrfWorkspace};

fn chi2(prob: &mut impl Problem, x: &[f64]) -> f64 {
    let mut f = vec![0.0; prob.n_residuals()];
    prob.residuals(x, &mut f);
    f.iter().map(|v| v * v).sum()
}

#[test]
fn converged_refits_match_tight_trf() {
    let fx = VdispFixture::new().expect("fixture");
    let mut prob = fx.problem(&fx.istd).expect("problem");
    prob.set_data(&fx.flux).expect("data");
    let mut tws = TrfWorkspace::new(prob.n_residuals(), fx.x0.len());
    // the best fit, as fastspec makes it (FastSpecFit's TRF from its cold start)
    let mut xh = fx.x0.clone();
    least_squares_dense_qr(&mut prob, &mut xh, &fx.lb, &fx.ub, &fx.opts, &mut tws).expect("fit");
    assert!((xh[1] - 180.0).abs() < 20.0, "best-fit σ {}", xh[1]);
    let tight = TrfOptions {
        ftol: 1e-14,
        xtol: 1e-14,
        gtol: 1e-14,
        ..fx.opts.clone()
    };
    let mut mws = McSigmaWorkspace::default();
    let mut state = 11u64;
    let (mut sig_c, mut sig_t) = (Vec::new(), Vec::new());
    for k in 0..6 {
        let u = lcg_noise(&mut state, fx.flux.len());
        let sf: Vec<f64> = fx
            .flux
            .iter()
            .zip(&u)
            .map(|(f, u)| f + fx.noise * u)
            .collect();
        prob.set_data(&sf).expect("data");
        let r = converge_sigma(&mut prob, &xh, &fx.lb, &fx.ub, &mut mws).expect("refit");
        assert!(
            mws.nfev <= 20,
            "refit {k}: {} evaluations of the projected χ²",
            mws.nfev
        );
        let mut xt = xh.clone();
        least_squares_dense_qr(&mut prob, &mut xt, &fx.lb, &fx.ub, &tight, &mut tws)
            .expect("tight TRF");
        let ct = chi2(&mut prob, &xt);
        eprintln!(
            "refit {k}: converged σ {:.6} τ {:.6} χ² {:.9} ({} evals); tight TRF σ {:.6} τ {:.6} χ² {:.9}",
            r.sigma, r.tauv, r.chi2, mws.nfev, xt[1], xt[0], ct
        );
        // the same minimum: χ² no worse than the tight TRF's, σ and τ within its tolerance
        assert!(
            r.chi2 <= ct * (1.0 + 1e-11),
            "refit {k}: χ² {} vs {ct}",
            r.chi2
        );
        assert!(
            (r.sigma - xt[1]).abs() < 1e-4 * xt[1],
            "refit {k}: σ {} vs {}",
            r.sigma,
            xt[1]
        );
        assert!(
            (r.tauv - xt[0]).abs() < 1e-4,
            "refit {k}: τ {} vs {}",
            r.tauv,
            xt[0]
        );
        sig_c.push(r.sigma);
        sig_t.push(xt[1]);
    }
    // the refits scatter (the noise moves σ), so the test is not trivially met at x̂
    let spread = sig_c.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
        - sig_c.iter().cloned().fold(f64::INFINITY, f64::min);
    assert!(spread > 0.1, "refit σ spread {spread}");
}

/// χ²/2 at x.
fn half_chi2(prob: &mut impl Problem, x: &[f64]) -> f64 {
    0.5 * chi2(prob, x)
}

/// The adjoint gradient and the second-order terms of `VdispProblem` against central
/// differences of χ²/2 and of that gradient (coefficients held fixed), at a point away from
/// the kernel-radius jumps.
#[test]
fn adjoint_gradient_and_second_order_terms_match_finite_differences() {
    let fx = VdispFixture::new().expect("fixture");
    let mut prob = fx.problem(&fx.istd).expect("problem");
    prob.set_data(&fx.flux).expect("data");
    let nt = prob.ntemplate();
    let m = prob.n_active();
    let mut x = fx.x_true.clone();
    x[0] = 0.35;
    x[1] = 171.0;
    for (t, c) in x[2..].iter_mut().enumerate() {
        *c = 0.6 + 0.2 * t as f64;
    }
    // gradient, second-order terms and J at x
    let grad_at = |prob: &mut _, x: &[f64]| -> [f64; 2] {
        let prob: &mut fsf_systems::kernels::continuum::vdispfit::VdispProblem<'_> = prob;
        let mut r = vec![0.0; m];
        prob.residuals(x, &mut r);
        prob.prepare_at([x[0], x[1]], &x[2..]).expect("prepare");
        let mut g = [0.0; 2];
        assert!(prob.residual_gradient(&r, &mut g));
        g
    };
    let g = grad_at(&mut prob, &x);
    let mut r = vec![0.0; m];
    prob.residuals(&x, &mut r);
    prob.prepare_at([x[0], x[1]], &x[2..]).expect("prepare");
    let (mut g2, mut bd, mut rpp) = ([0.0; 2], vec![0.0; 2 * nt], [0.0; 3]);
    assert!(prob.residual_second_order(&r, &mut g2, &mut bd, &mut rpp));
    assert_eq!(g, g2);
    let jac = prob.columns_at(&x).expect("columns").to_vec();
    let col = |k: usize| &jac[k * m..(k + 1) * m];
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    // the gradient is Jᵀr and the finite difference of χ²/2
    let h = [1e-5, 1e-3];
    for k in 0..2 {
        let jr = dot(col(k), &r);
        assert!(
            (g[k] - jr).abs() <= 1e-9 * jr.abs().max(1.0),
            "g[{k}] {} vs Jᵀr {jr}",
            g[k]
        );
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[k] += h[k];
        xm[k] -= h[k];
        let fd = (half_chi2(&mut prob, &xp) - half_chi2(&mut prob, &xm)) / (2.0 * h[k]);
        assert!(
            (g[k] - fd).abs() <= 1e-5 * fd.abs().max(1.0),
            "g[{k}] {} vs FD {fd}",
            g[k]
        );
    }
    // the (τ, σ) Hessian block at fixed c: J_pᵀJ_p + rpp, against differences of the gradient
    let hess = [
        [dot(col(0), col(0)) + rpp[0], dot(col(0), col(1)) + rpp[1]],
        [dot(col(1), col(0)) + rpp[1], dot(col(1), col(1)) + rpp[2]],
    ];
    for k in 0..2 {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[k] += h[k];
        xm[k] -= h[k];
        let (gp, gm) = (grad_at(&mut prob, &xp), grad_at(&mut prob, &xm));
        for i in 0..2 {
            let fd = (gp[i] - gm[i]) / (2.0 * h[k]);
            let scale = hess[i][i].abs().sqrt() * hess[k][k].abs().sqrt();
            assert!(
                (hess[i][k] - fd).abs() <= 1e-4 * scale,
                "H[{i}][{k}] {} vs FD {fd}",
                hess[i][k]
            );
        }
    }
    // the mixed terms: ∂g_p/∂c_t = J_pᵀP_t + b_p,t
    for t in 0..nt {
        let ht = 1e-4 * x[2 + t];
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[2 + t] += ht;
        xm[2 + t] -= ht;
        let (gp, gm) = (grad_at(&mut prob, &xp), grad_at(&mut prob, &xm));
        for q in 0..2 {
            let fd = (gp[q] - gm[q]) / (2.0 * ht);
            let want = dot(col(q), col(2 + t)) + bd[q * nt + t];
            let scale = dot(col(q), col(q)).sqrt() * dot(col(2 + t), col(2 + t)).sqrt();
            assert!(
                (want - fd).abs() <= 1e-6 * scale,
                "∂g[{q}]/∂c[{t}] {want} vs FD {fd}"
            );
        }
    }
}
