//! A synthetic σ★-fit problem for benchmarks and tests: the bundled BC03 templates and a
//! z = 0.1 spectrum on three DESI-like cameras (0.8 Å pixels, an 11-diagonal Gaussian
//! resolution matrix), made from the σ-fit model itself at (τ_V, σ) = (0.3, 180 km/s) with
//! a fixed pseudo-random noise pattern at S/N ≈ 20 per pixel, weighted on the σ-fit window
//! exactly as fastspec does (`can_compute_vdisp`).

use anyhow::{ensure, Context, Result};
use fsf_systems::kernels::continuum::vdispfit::{
    can_compute_vdisp, vdisp_trf_setup, VdispModel, VdispProblem,
};
use fsf_systems::kernels::continuum::{CameraData, SpecOperator};
use fsf_systems::kernels::trf::TrfOptions;
use fsf_systems::kernels::vdisp::{PreCache, VdispGrid};
use fsf_systems::kernels::KernelError;

use fsf_components::templates::Templates;

use crate::io::templates::{bundled_template_path, read_templates};

/// Redshift of the synthetic spectrum.
pub const Z: f64 = 0.1;
const NDIAG: usize = 11;
/// (τ_V, σ km/s) of the synthetic truth.
pub const TRUTH: (f64, f64) = (0.3, 180.0);

/// Everything a [`VdispProblem`] borrows, plus the synthetic data and FastSpecFit's TRF
/// set-up for it.
pub struct VdispFixture {
    /// The bundled templates.
    pub templates: Templates,
    /// The spectral operator of the three cameras.
    pub op: SpecOperator,
    zf: Vec<f64>,
    /// √ivar on the σ-fit window, zero elsewhere.
    pub istd: Vec<f64>,
    /// Noisy synthetic spectrum (hstacked).
    pub flux: Vec<f64>,
    /// Per-pixel noise σ on the window.
    pub noise: f64,
    /// The true x = (τ, σ, c = 1…).
    pub x_true: Vec<f64>,
    /// FastSpecFit's bounds, start and options of the σ fit.
    pub lb: Vec<f64>,
    /// Upper bounds.
    pub ub: Vec<f64>,
    /// FastSpecFit's cold start.
    pub x0: Vec<f64>,
    /// FastSpecFit's TRF options.
    pub opts: TrfOptions,
}

/// DIA rows of a Gaussian resolution matrix (σ = 1 pixel), columns normalised.
fn resolution(npix: usize) -> Vec<f64> {
    let h = (NDIAG / 2) as f64;
    let g: Vec<f64> = (0..NDIAG)
        .map(|d| (-0.5 * (d as f64 - h).powi(2)).exp())
        .collect();
    let s: f64 = g.iter().sum();
    (0..NDIAG)
        .flat_map(|d| std::iter::repeat_n(g[d] / s, npix))
        .collect()
}

/// Uniform deviates of variance 1 from a 64-bit LCG (deterministic test noise).
pub fn lcg_noise(state: &mut u64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| {
            *state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((*state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 12f64.sqrt()
        })
        .collect()
}

impl VdispFixture {
    /// Build the fixture from the bundled templates.
    ///
    /// # Errors
    /// Template or operator errors.
    pub fn new() -> Result<Self> {
        let templates = read_templates(&bundled_template_path()).context("templates")?;
        let nw = templates.nwave;
        let zwave: Vec<f64> = templates.wave_ang.iter().map(|w| w * (1.0 + Z)).collect();
        let cams: Vec<Vec<f64>> = [(3600.0, 5800.0), (5760.0, 7620.0), (7520.0, 9824.0)]
            .iter()
            .map(|&(a, b): &(f64, f64)| {
                let n = ((b - a) / 0.8) as usize;
                (0..n).map(|i| a + 0.8 * i as f64).collect()
            })
            .collect();
        let res: Vec<Vec<f64>> = cams.iter().map(|w| resolution(w.len())).collect();
        let npix: usize = cams.iter().map(Vec::len).sum();
        let zeros = vec![0.0; npix];
        let nomask = vec![false; npix];
        let cameras: Vec<CameraData<'_>> = cams
            .iter()
            .zip(&res)
            .map(|(w, r)| CameraData {
                wave: w,
                flux: &zeros[..w.len()],
                ivar: &zeros[..w.len()],
                linemask: &nomask[..w.len()],
                res_ndiag: NDIAG,
                res: r,
            })
            .collect();
        let op = SpecOperator::new(&zwave, &cameras)?;
        let specwave: Vec<f64> = cams.concat();
        let (ok, (vs, ve)) = can_compute_vdisp(Z, &specwave);
        ensure!(ok && ve > vs, "σ window");
        let nt = templates.ntemplate;
        let (lb, ub, x0, opts) = vdisp_trf_setup(
            nt,
            templates.vdisp_bounds_kms,
            templates.vdisp_nominal_kernel_kms,
        );
        let mut fx = VdispFixture {
            templates,
            op,
            zf: vec![1.0; nw],
            istd: vec![0.0; npix],
            flux: Vec::new(),
            noise: 0.0,
            x_true: Vec::new(),
            lb,
            ub,
            x0,
            opts,
        };
        // the noiseless model at the truth, on all pixels
        let ones = vec![1.0; npix];
        let mut x_true = vec![1.0; 2 + nt];
        x_true[0] = TRUTH.0;
        x_true[1] = TRUTH.1;
        let mut sed = vec![0.0; nw];
        fx.problem(&ones)?.full_model(&x_true, &mut sed)?;
        let mut model = vec![0.0; npix];
        fx.op.apply(&sed, &mut model)?;
        // S/N ≈ 20 with a fixed noise pattern
        let level = model[vs..ve].iter().sum::<f64>() / (ve - vs) as f64;
        let sigma = level / 20.0;
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let u = lcg_noise(&mut state, npix);
        fx.flux = model.iter().zip(&u).map(|(m, u)| m + sigma * u).collect();
        fx.istd[vs..ve].fill(1.0 / sigma);
        fx.noise = sigma;
        fx.x_true = x_true;
        Ok(fx)
    }

    /// The σ-fit problem with weights `istd` (no data set).
    ///
    /// # Errors
    /// Inconsistent lengths.
    pub fn problem<'a>(&'a self, istd: &'a [f64]) -> Result<VdispProblem<'a>, KernelError> {
        let t = &self.templates;
        VdispProblem::new(VdispModel {
            op: &self.op,
            pre: PreCache::from(&t.conv_pre_nolines),
            flux_nolines: &t.flux_nolines,
            grid: VdispGrid {
                lo: t.pixkms_bounds.0,
                hi: t.pixkms_bounds.1,
                pixkms: t.pixkms,
            },
            klambda: &t.dust_klambda,
            zfactors: &self.zf,
            istd,
        })
    }
}
