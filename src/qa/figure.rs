//! The per-target QA figure, drawn with `plotters` into an RGB buffer (no system fonts: the
//! DejaVu Sans font is bundled).
//!
//! Layout (after FastSpecFit's `qa_fastspec`, drawn independently):
//! * fastspec, 2400×1800 px: photometric SED (top left), target identification and the fit
//!   summary (top right), the spectrum per camera with the continuum, smooth correction and
//!   line models (middle left), its residuals under it, zoom panels on the emission-line groups
//!   in range (right), four text boxes of fitted values (bottom);
//! * fastphot, 1800×900 px: the SED panel (left) and the text blocks (right).

use std::sync::Once;

use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;

use fsf_systems::kernels::emlines::LineTable;

use super::input::{flam_to_ab, nmgy_to_ab, FitFile, ObservedCamera, PhotBand, Sed, C_KMS};

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
/// (x, y) points of one curve.
type Curve = Vec<(f64, f64)>;
/// AB magnitude with (bright, faint) errors, or an upper limit.
type AbMag = (f64, Option<(f64, f64)>);

/// Width and height of a fastspec figure, pixels.
pub const FASTSPEC_SIZE: (u32, u32) = (2400, 1800);
/// Width and height of a fastphot figure, pixels.
pub const FASTPHOT_SIZE: (u32, u32) = (1800, 900);

/// Per-camera data colours (light) and model colours (dark): B, R, Z.
const DATA_COL: [RGBColor; 3] = [
    RGBColor(0x46, 0x8f, 0xcc),
    RGBColor(0x4c, 0xaf, 0x81),
    RGBColor(0xe0, 0x7a, 0x75),
];
const MODEL_COL: [RGBColor; 3] = [
    RGBColor(0x00, 0x3f, 0x91),
    RGBColor(0x00, 0x7f, 0x5f),
    RGBColor(0x9b, 0x22, 0x26),
];
const PHOT_COL: RGBColor = RGBColor(0xff, 0x8c, 0x00);
const GREY: RGBColor = RGBColor(0x80, 0x80, 0x80);
const BOX_COL: RGBColor = RGBColor(0xf2, 0xf2, 0xf2);
const FONT: &str = "sans-serif";

fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let ok = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .is_ok()
            && plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok();
        if !ok {
            tracing::warn!("the bundled DejaVu font could not be registered");
        }
    });
}

fn perr<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting: {e:?}")
}

/// Everything one figure shows.
pub struct TargetQa<'a> {
    /// The output file.
    pub ff: &'a FitFile,
    /// Row of the target in it.
    pub row: usize,
    /// The observed spectrum per camera (fastspec; `None` when the coadd was not found).
    pub spectrum: Option<Vec<ObservedCamera>>,
    /// Observed and model photometry.
    pub phot: Vec<PhotBand>,
    /// Rebuilt full-resolution SED (`None` when the templates do not match COEFF).
    pub sed: Option<Sed>,
    /// The emission-line table.
    pub lines: &'a LineTable,
}

/// Camera data with the models interpolated onto its pixels.
struct CamModel<'a> {
    cam: &'a ObservedCamera,
    cont: Vec<f64>,
    smooth: Vec<f64>,
    emline: Vec<f64>,
}

impl CamModel<'_> {
    fn total(&self, i: usize) -> f64 {
        self.cont[i] + self.smooth[i] + self.emline[i]
    }
    fn good(&self, i: usize) -> bool {
        self.cam.ivar[i] > 0.0
    }
}

fn cam_models<'a>(t: &'a TargetQa<'_>) -> Vec<CamModel<'a>> {
    let (Some(cams), Some(m)) = (&t.spectrum, &t.ff.models) else {
        return Vec::new();
    };
    cams.iter()
        .map(|c| CamModel {
            cam: c,
            cont: c.wave.iter().map(|&w| m.interp(t.row, 0, w)).collect(),
            smooth: c.wave.iter().map(|&w| m.interp(t.row, 1, w)).collect(),
            emline: c.wave.iter().map(|&w| m.interp(t.row, 2, w)).collect(),
        })
        .collect()
}

/// Contiguous runs of good points (a masked pixel breaks the line).
fn segments(
    n: usize,
    good: impl Fn(usize) -> bool,
    xy: impl Fn(usize) -> (f64, f64),
) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for i in 0..n {
        let p = xy(i);
        if good(i) && p.0.is_finite() && p.1.is_finite() {
            cur.push(p);
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let x = q / 100.0 * (v.len() - 1) as f64;
    let i = x.floor() as usize;
    let j = (i + 1).min(v.len() - 1);
    v[i] + (v[j] - v[i]) * (x - i as f64)
}

/// Running median of half-width `h` (edges use the available window).
fn running_median(v: &[f64], h: usize) -> Vec<f64> {
    let mut buf = Vec::with_capacity(2 * h + 1);
    (0..v.len())
        .map(|i| {
            buf.clear();
            buf.extend_from_slice(&v[i.saturating_sub(h)..(i + h + 1).min(v.len())]);
            percentile(&mut buf, 50.0)
        })
        .collect()
}

/// Text with a font size, colour and anchor.
fn style(size: f64, color: &RGBColor, pos: Pos) -> TextStyle<'static> {
    TextStyle {
        font: (FONT, size).into_font(),
        color: color.to_backend_color(),
        pos,
    }
}

const TOP_LEFT: Pos = Pos {
    h_pos: HPos::Left,
    v_pos: VPos::Top,
};
const CENTER: Pos = Pos {
    h_pos: HPos::Center,
    v_pos: VPos::Center,
};

/// Draw `lines` from (x, y) down, with a light box behind them; returns the bottom y.
fn text_box(
    area: &Area<'_>,
    x: i32,
    y: i32,
    width: i32,
    lines: &[String],
    size: f64,
) -> anyhow::Result<i32> {
    let lh = (size * 1.45) as i32;
    let h = lh * lines.len() as i32 + 16;
    area.draw(&Rectangle::new(
        [(x, y), (x + width, y + h)],
        BOX_COL.filled(),
    ))
    .map_err(perr)?;
    area.draw(&Rectangle::new(
        [(x, y), (x + width, y + h)],
        GREY.stroke_width(1),
    ))
    .map_err(perr)?;
    for (i, l) in lines.iter().enumerate() {
        area.draw(&Text::new(
            l.clone(),
            (x + 10, y + 8 + lh * i as i32),
            style(size, &BLACK, TOP_LEFT),
        ))
        .map_err(perr)?;
    }
    Ok(y + h)
}

/// `v ± σ` with `prec` decimals when the inverse variance is positive, else `v`.
fn pm(v: f64, ivar: f64, prec: usize) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if ivar > 0.0 && ivar.is_finite() {
        format!("{v:.prec$} ± {:.prec$}", 1.0 / ivar.sqrt())
    } else {
        format!("{v:.prec$}")
    }
}

/// A display name from the table's LaTeX `nicename`.
pub fn nice_name(s: &str) -> String {
    let mut out = s.replace('$', "").replace('-', " ");
    for (a, b) in [
        ("\\lambda\\lambda", "λλ"),
        ("\\lambda", "λ"),
        ("\\alpha", "α"),
        ("\\beta", "β"),
        ("\\gamma", "γ"),
        ("\\delta", "δ"),
        ("\\epsilon", "ε"),
        ("\\AA", "Å"),
        ("{", ""),
        ("}", ""),
    ] {
        out = out.replace(a, b);
    }
    out.replace("λ ", "λ")
}

/// An emission-line plot group in the observed range.
struct LineGroup {
    label: String,
    names: Vec<String>,
    minwave: f64,
    maxwave: f64,
    meanwave: f64,
    sigma_kms: f64,
}

/// Line-group kinematics (mean σ and redshift of lines detected at S/N > 1.5), as
/// FastSpecFit's `_compute_line_stats`: (narrow, broad Balmer, UV), each `(σ, σ_rms, z, z_rms)`.
fn line_stats(t: &TargetQa<'_>, wmin: f64, wmax: f64) -> [(f64, f64, f64, f64); 3] {
    let z = t.ff.num(t.row, "Z");
    let mut groups: [Vec<(f64, f64)>; 3] = Default::default();
    for l in &t.lines.lines {
        let w = l.restwave * (1.0 + z);
        if w < wmin || w > wmax {
            continue;
        }
        let u = l.name.to_uppercase();
        let snr =
            t.ff.num(t.row, &format!("{u}_AMP")) * t.ff.num(t.row, &format!("{u}_AMP_IVAR")).sqrt();
        if snr.is_nan() || snr <= 1.5 {
            continue;
        }
        let sig = t.ff.num(t.row, &format!("{u}_SIGMA"));
        let lz = z + t.ff.num(t.row, &format!("{u}_VSHIFT")) / C_KMS;
        let k = if !l.isbroad {
            0
        } else if l.isbalmer {
            1
        } else {
            2
        };
        groups[k].push((sig, lz));
    }
    groups.map(|g| {
        if g.is_empty() {
            return (0.0, 0.0, z, 0.0);
        }
        let n = g.len() as f64;
        let ms = g.iter().map(|p| p.0).sum::<f64>() / n;
        let mz = g.iter().map(|p| p.1).sum::<f64>() / n;
        let ss = (g.iter().map(|p| (p.0 - ms).powi(2)).sum::<f64>() / n).sqrt();
        let sz = (g.iter().map(|p| (p.1 - mz).powi(2)).sum::<f64>() / n).sqrt();
        (ms, ss, mz, sz)
    })
}

fn line_groups(t: &TargetQa<'_>, wmin: f64, wmax: f64) -> Vec<LineGroup> {
    let z = t.ff.num(t.row, "Z");
    let stats = line_stats(t, wmin, wmax);
    let mut order: Vec<String> = Vec::new();
    let mut members: std::collections::HashMap<String, Vec<usize>> = Default::default();
    for (i, l) in t.lines.lines.iter().enumerate() {
        let w = l.restwave * (1.0 + z);
        if w < wmin || w > wmax {
            continue;
        }
        if !members.contains_key(&l.plotgroup) {
            order.push(l.plotgroup.clone());
        }
        members.entry(l.plotgroup.clone()).or_default().push(i);
    }
    let mut out: Vec<LineGroup> = order
        .iter()
        .map(|g| {
            let idx = &members[g];
            let ls: Vec<_> = idx.iter().map(|&i| &t.lines.lines[i]).collect();
            let minwave = ls.iter().map(|l| l.restwave).fold(f64::INFINITY, f64::min);
            let maxwave = ls
                .iter()
                .map(|l| l.restwave)
                .fold(f64::NEG_INFINITY, f64::max);
            let meanwave = ls.iter().map(|l| l.restwave).sum::<f64>() / ls.len() as f64;
            let sig: Vec<f64> = ls
                .iter()
                .map(|l| t.ff.num(t.row, &format!("{}_SIGMA", l.name.to_uppercase())))
                .filter(|s| *s > 0.0)
                .collect();
            let sigma_kms = if !sig.is_empty() {
                (1.5 * sig.iter().sum::<f64>() / sig.len() as f64).max(50.0)
            } else if ls.iter().any(|l| l.isbroad && !l.isbalmer) {
                if stats[2].0 >= 50.0 {
                    stats[2].0
                } else {
                    2000.0
                }
            } else if stats[0].0 >= 50.0 {
                stats[0].0
            } else {
                200.0
            };
            LineGroup {
                label: nice_name(&ls[0].nicename),
                names: ls.iter().map(|l| l.name.clone()).collect(),
                minwave,
                maxwave,
                meanwave,
                sigma_kms,
            }
        })
        .collect();
    out.sort_by(|a, b| a.meanwave.total_cmp(&b.meanwave));
    out
}

/// Render the figure of one target into an RGB buffer of `width × height`.
///
/// # Errors
/// Drawing failures (e.g. a font that cannot be loaded).
pub fn render(t: &TargetQa<'_>) -> anyhow::Result<(Vec<u8>, u32, u32)> {
    register_fonts();
    let (w, h) = if t.ff.fastphot {
        FASTPHOT_SIZE
    } else {
        FASTSPEC_SIZE
    };
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        if t.ff.fastphot {
            draw_fastphot(&root, t)?;
        } else {
            draw_fastspec(&root, t)?;
        }
        root.present().map_err(perr)?;
    }
    Ok((buf, w, h))
}

fn draw_fastphot(root: &Area<'_>, t: &TargetQa<'_>) -> anyhow::Result<()> {
    let sed_area = root.clone().shrink((10, 60), (1140, 830));
    draw_sed(&sed_area, t, &[], true)?;
    let mut y = 40;
    for (i, l) in t.ff.target_label(t.row).iter().enumerate() {
        root.draw(&Text::new(
            l.clone(),
            (1190, y + 40 * i as i32),
            style(30.0, &BLACK, TOP_LEFT),
        ))
        .map_err(perr)?;
    }
    y += 110;
    y = text_box(root, 1190, y, 580, &redshift_lines(t, false), 22.0)? + 20;
    y = text_box(root, 1190, y, 580, &stellar_lines(t), 22.0)? + 20;
    text_box(root, 1190, y, 580, &fit_quality_lines(t), 22.0)?;
    Ok(())
}

fn draw_fastspec(root: &Area<'_>, t: &TargetQa<'_>) -> anyhow::Result<()> {
    let models = cam_models(t);
    // SED (top left) and identification (top right).
    let sed_area = root.clone().shrink((10, 50), (1540, 520));
    draw_sed(&sed_area, t, &models, true)?;
    for (i, l) in t.ff.target_label(t.row).iter().enumerate() {
        root.draw(&Text::new(
            l.clone(),
            (1600, 40 + 42 * i as i32),
            style(32.0, &BLACK, TOP_LEFT),
        ))
        .map_err(perr)?;
    }
    text_box(root, 1600, 140, 760, &redshift_lines(t, true), 22.0)?;
    text_box(root, 1600, 330, 760, &fit_quality_lines(t), 22.0)?;

    // Spectrum, residuals, zoom panels.
    let spec_area = root.clone().shrink((10, 590), (1540, 620));
    let resid_area = root.clone().shrink((10, 1210), (1540, 240));
    let (wmin, wmax) = models
        .iter()
        .flat_map(|m| [m.cam.wave[0], m.cam.wave[m.cam.wave.len() - 1]])
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), w| {
            (a.min(w), b.max(w))
        });
    let groups = if models.is_empty() {
        Vec::new()
    } else {
        line_groups(t, wmin, wmax)
    };
    if models.is_empty() {
        spec_area
            .draw(&Text::new(
                "no observed spectrum (give --redrockfiles or --redux_dir) or no MODELS HDU"
                    .to_string(),
                (40, 300),
                style(28.0, &RED, TOP_LEFT),
            ))
            .map_err(perr)?;
    } else {
        draw_spectrum(&spec_area, &resid_area, t, &models, &groups)?;
        draw_zooms(
            &root.clone().shrink((1570, 590), (820, 870)),
            t,
            &models,
            &groups,
        )?;
    }

    // Bottom text boxes.
    let y = 1480;
    text_box(root, 20, y, 560, &stellar_lines(t), 21.0)?;
    let (narrow, uv) = line_flux_lines(t);
    text_box(root, 600, y, 880, &narrow, 21.0)?;
    text_box(root, 1500, y, 880, &uv, 21.0)?;
    Ok(())
}

fn redshift_lines(t: &TargetQa<'_>, spec: bool) -> Vec<String> {
    let (ff, r) = (t.ff, t.row);
    let z = ff.num(r, "Z");
    let mut v = vec![format!("z = {z:.7}")];
    let zrr = ff.num(r, "Z_RR");
    if zrr.is_finite() && zrr != z {
        v.push(format!("z (Redrock) = {zrr:.7}"));
    }
    v.push(format!(
        "σ★ (VDISP) = {} km/s",
        pm(ff.num(r, "VDISP"), ff.num(r, "VDISP_IVAR"), 0)
    ));
    if spec {
        let stats = line_stats(t, 3500.0, 9900.0);
        for (name, s) in [("narrow", stats[0]), ("broad", stats[1]), ("UV", stats[2])] {
            if s.0 > 0.0 {
                v.push(format!(
                    "σ {name} = {:.0} ± {:.0} km/s, Δv {name} = {:.0} ± {:.0} km/s",
                    s.0,
                    s.1,
                    C_KMS * (s.2 - z),
                    C_KMS * s.3
                ));
            }
        }
    }
    v
}

fn fit_quality_lines(t: &TargetQa<'_>) -> Vec<String> {
    let (ff, r) = (t.ff, t.row);
    let mut v = Vec::new();
    let mut push = |label: &str, col: &str, prec: usize| {
        let x = ff.num(r, col);
        if x.is_finite() {
            v.push(format!("{label} = {x:.prec$}"));
        }
    };
    push("χ²ν (spectrum+photometry, RCHI2)", "RCHI2", 2);
    push("χ²ν (continuum, RCHI2_CONT)", "RCHI2_CONT", 2);
    push("χ²ν (lines, RCHI2_LINE)", "RCHI2_LINE", 2);
    push("χ²ν (photometry, RCHI2_PHOT)", "RCHI2_PHOT", 2);
    push("aperture correction (APERCORR)", "APERCORR", 3);
    push("Δχ² no-broad (DELTA_LINECHI2)", "DELTA_LINECHI2", 0);
    push("Δν no-broad (DELTA_LINENDOF)", "DELTA_LINENDOF", 0);
    v
}

fn stellar_lines(t: &TargetQa<'_>) -> Vec<String> {
    let (ff, r) = (t.ff, t.row);
    let g = |c: &str| ff.num(r, c);
    let tauv = g("TAUV");
    let av = 2.5 * std::f64::consts::LOG10_E * tauv;
    let mut v = vec![
        format!("τ_V = {}  (A_V = {av:.2} mag)", pm(tauv, g("TAUV_IVAR"), 2)),
        format!("Age = {} Gyr", pm(g("AGE"), g("AGE_IVAR"), 2)),
        format!(
            "log10(M★/M☉) = {}",
            pm(g("LOGMSTAR"), g("LOGMSTAR_IVAR"), 2)
        ),
        format!("SFR = {} M☉/yr", pm(g("SFR"), g("SFR_IVAR"), 1)),
        format!("Z/Z☉ = {}", pm(g("ZZSUN"), g("ZZSUN_IVAR"), 2)),
        format!(
            "Dn(4000) model = {}",
            pm(g("DN4000_MODEL"), g("DN4000_MODEL_IVAR"), 3)
        ),
    ];
    if g("DN4000_IVAR") > 0.0 {
        v.push(format!(
            "Dn(4000) data = {}",
            pm(g("DN4000"), g("DN4000_IVAR"), 3)
        ));
    }
    // The r-like absolute magnitude, when written.
    if let Some((name, vals, _)) = ff.table.columns.iter().find(|c| {
        let n = &c.0;
        n.starts_with("ABSMAG")
            && !n.contains("IVAR")
            && !n.contains("SYNTH")
            && (n.ends_with("_R") || n.ends_with("SDSS_R"))
    }) {
        if let Some(x) = vals.get(r) {
            v.push(format!("{name} = {x:.2}"));
        }
    }
    v
}

/// Main line fluxes: (narrow optical lines, UV/broad lines and ratios).
fn line_flux_lines(t: &TargetQa<'_>) -> (Vec<String>, Vec<String>) {
    let (ff, r) = (t.ff, t.row);
    let fmt = |label: &str, cols: &[&str]| -> Option<String> {
        let mut flux = 0.0;
        let mut var = 0.0;
        let mut ew = 0.0;
        for c in cols {
            let fi = ff.num(r, &format!("{c}_FLUX_IVAR"));
            if fi.is_nan() || fi <= 0.0 {
                return None;
            }
            flux += ff.num(r, &format!("{c}_FLUX"));
            var += 1.0 / fi;
            ew += ff.num(r, &format!("{c}_EW"));
        }
        let sig = var.sqrt();
        Some(format!(
            "{label}: {flux:.2} ± {sig:.2} (S/N {:.1}), EW {ew:.1} Å",
            flux / sig
        ))
    };
    let mut narrow = vec!["Line fluxes [1e-17 erg/s/cm²]".to_string()];
    for (label, cols) in [
        ("[OII] λλ3726,29", &["OII_3726", "OII_3729"][..]),
        ("Hγ", &["HGAMMA"][..]),
        ("Hβ", &["HBETA"][..]),
        ("[OIII] λ5007", &["OIII_5007"][..]),
        ("Hα", &["HALPHA"][..]),
        ("[NII] λ6584", &["NII_6584"][..]),
        ("[SII] λλ6716,31", &["SII_6716", "SII_6731"][..]),
    ] {
        if let Some(s) = fmt(label, cols) {
            narrow.push(s);
        }
    }
    let mut uv = vec!["UV and broad lines [1e-17 erg/s/cm²]".to_string()];
    for (label, cols) in [
        ("Lyα", &["LYALPHA"][..]),
        ("CIV λ1549", &["CIV_1549"][..]),
        ("CIII] λ1908", &["CIII_1908"][..]),
        ("MgII λλ2796,2803", &["MGII_2796", "MGII_2803"][..]),
        ("Hβ broad", &["HBETA_BROAD"][..]),
        ("Hα broad", &["HALPHA_BROAD"][..]),
    ] {
        if let Some(s) = fmt(label, cols) {
            uv.push(s);
        }
    }
    let ratio = |a: &str, b: &str| -> Option<f64> {
        let (fa, fb) = (
            ff.num(r, &format!("{a}_FLUX")),
            ff.num(r, &format!("{b}_FLUX")),
        );
        let ok = |c: &str| {
            ff.num(r, &format!("{c}_AMP")) * ff.num(r, &format!("{c}_AMP_IVAR")).sqrt() > 1.5
        };
        (ok(a) && ok(b) && fa > 0.0 && fb > 0.0).then(|| fa / fb)
    };
    if let Some(x) = ratio("HALPHA", "HBETA") {
        uv.push(format!("Hα/Hβ = {x:.3}"));
    }
    if let Some(x) = ratio("OIII_5007", "HBETA") {
        uv.push(format!("log10([OIII]/Hβ) = {:.3}", x.log10()));
    }
    if let Some(x) = ratio("NII_6584", "HALPHA") {
        uv.push(format!("log10([NII]/Hα) = {:.3}", x.log10()));
    }
    if narrow.len() == 1 {
        narrow.push("(no line in range with a measured flux)".into());
    }
    if uv.len() == 1 {
        uv.push("(none in range)".into());
    }
    (narrow, uv)
}

/// The photometric SED: model SED (grey), model photometry (open squares), observed
/// photometry (orange, with errors; 2σ upper limits as triangles), the DESI spectrum model.
fn draw_sed(
    area: &Area<'_>,
    t: &TargetQa<'_>,
    models: &[CamModel<'_>],
    xlabel: bool,
) -> anyhow::Result<()> {
    let (ff, r) = (t.ff, t.row);
    let z = ff.num(r, "Z");
    let (xlo, xhi) = (0.1_f64, 35.0_f64);
    let sed_pts = t
        .sed
        .as_ref()
        .map(|s| binned_sed(s, xlo, xhi, 1500))
        .unwrap_or_default();
    let model_pts: Vec<(f64, f64)> = t
        .phot
        .iter()
        .filter(|b| b.model > 0.0)
        .map(|b| (b.lambda_eff / 1e4, nmgy_to_ab(b.model)))
        .collect();
    let obs: Vec<(&PhotBand, AbMag)> = t
        .phot
        .iter()
        .filter_map(|b| b.abmag().map(|m| (b, m)))
        .collect();
    let mut mags: Vec<f64> = sed_pts.iter().map(|p| p.1).filter(|m| *m < 90.0).collect();
    mags.extend(model_pts.iter().map(|p| p.1));
    mags.extend(obs.iter().map(|(_, m)| m.0));
    let (mut bright, mut faint) = mags
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &m| {
            (a.min(m), b.max(m))
        });
    if !bright.is_finite() {
        (bright, faint) = (18.0, 26.0);
    }
    bright -= 1.5;
    faint = (faint + 1.5).min(30.0).max(bright + 1.0);
    let apercorr = ff.num(r, "APERCORR");
    let desi_y = -(faint - 0.6);

    let mut chart = ChartBuilder::on(area)
        .margin_right(70)
        .margin_top(10)
        .x_label_area_size(if xlabel { 60 } else { 30 })
        .top_x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d((xlo..xhi).log_scale(), -faint..-bright)
        .map_err(perr)?
        .set_secondary_coord(
            (xlo / (1.0 + z)..xhi / (1.0 + z)).log_scale(),
            -faint..-bright,
        );
    let tick = |v: &f64| {
        if *v >= 1.0 {
            format!("{v:.0}")
        } else if *v >= 0.1 {
            format!("{v:.1}")
        } else {
            format!("{v:.2}")
        }
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(if xlabel {
            "Observed-frame wavelength (μm)"
        } else {
            ""
        })
        .y_desc("AB mag")
        .x_label_formatter(&tick)
        .y_label_formatter(&|v| format!("{:.0}", -v))
        .label_style((FONT, 20))
        .axis_desc_style((FONT, 24))
        .draw()
        .map_err(perr)?;
    chart
        .configure_secondary_axes()
        .x_desc("Rest-frame wavelength (μm)")
        .x_label_formatter(&tick)
        .y_label_formatter(&|_| String::new())
        .label_style((FONT, 20))
        .axis_desc_style((FONT, 24))
        .draw()
        .map_err(perr)?;

    for seg in segments(
        sed_pts.len(),
        |i| sed_pts[i].1 < faint,
        |i| (sed_pts[i].0, -sed_pts[i].1),
    ) {
        chart
            .draw_series(LineSeries::new(seg, GREY.mix(0.9).stroke_width(2)))
            .map_err(perr)?;
    }
    // The DESI spectrum model (× aperture correction) per camera, and the DESI range bar.
    if !models.is_empty() && apercorr.is_finite() {
        for (ic, m) in models.iter().enumerate() {
            let pts: Vec<(f64, f64)> = (0..m.cam.wave.len())
                .filter_map(|i| {
                    let f = apercorr * (m.cont[i] + m.emline[i]);
                    let w = m.cam.wave[i];
                    (f > 0.0).then(|| (w / 1e4, -flam_to_ab(f, w)))
                })
                .collect();
            chart
                .draw_series(LineSeries::new(
                    pts,
                    MODEL_COL[ic % 3].mix(0.8).stroke_width(1),
                ))
                .map_err(perr)?;
        }
        let w0 = models[0].cam.wave[0] / 1e4;
        let w1 = models
            .last()
            .map(|m| m.cam.wave[m.cam.wave.len() - 1] / 1e4)
            .unwrap_or(w0);
        chart
            .draw_series(LineSeries::new(
                [(w0, desi_y), (w1, desi_y)],
                GREY.stroke_width(3),
            ))
            .map_err(perr)?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("DESI × {apercorr:.2}"),
                ((w0 * w1).sqrt(), desi_y + 0.35),
                style(20.0, &BLACK, Pos::new(HPos::Center, VPos::Bottom)),
            )))
            .map_err(perr)?;
    }
    for (b, (m, err)) in &obs {
        let x = b.lambda_eff / 1e4;
        let fill = if b.fitted {
            PHOT_COL.filled()
        } else {
            WHITE.filled()
        };
        match err {
            Some((br, fa)) => {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x, -(m + fa)), (x, -(m - br))],
                        PHOT_COL.stroke_width(3),
                    )))
                    .map_err(perr)?;
                chart
                    .draw_series(std::iter::once(Circle::new((x, -m), 9, fill)))
                    .map_err(perr)?;
                chart
                    .draw_series(std::iter::once(Circle::new(
                        (x, -m),
                        9,
                        BLACK.stroke_width(1),
                    )))
                    .map_err(perr)?;
            }
            None => {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x, -m), (x, -(m + 0.75))],
                        PHOT_COL.stroke_width(3),
                    )))
                    .map_err(perr)?;
                chart
                    .draw_series(std::iter::once(
                        EmptyElement::at((x, -(m + 0.75)))
                            + Polygon::new(vec![(-9, -6), (9, -6), (0, 10)], PHOT_COL.filled()),
                    ))
                    .map_err(perr)?;
                chart
                    .draw_series(std::iter::once(Circle::new(
                        (x, -m),
                        7,
                        BLACK.stroke_width(2),
                    )))
                    .map_err(perr)?;
            }
        }
    }
    // Model photometry: open squares of fixed size, drawn over the data.
    chart
        .draw_series(model_pts.iter().map(|p| {
            EmptyElement::at((p.0, -p.1))
                + Rectangle::new([(-11, -11), (11, 11)], BLACK.stroke_width(2))
        }))
        .map_err(perr)?;
    // Legend and fitted values inside the panel.
    let pa = chart.plotting_area().strip_coord_spec();
    let (pw, ph) = pa.dim_in_pixel();
    let mut leg = vec![format!("χ²ν,phot = {:.2}", ff.num(r, "RCHI2_PHOT"))];
    let rc = ff.num(r, "RCHI2");
    if rc.is_finite() {
        leg.push(format!("χ²ν,cont = {:.2}", ff.num(r, "RCHI2_CONT")));
        leg.push(format!("χ²ν,spec+phot = {rc:.2}"));
    }
    for (i, s) in leg.iter().enumerate() {
        pa.draw(&Text::new(
            s.clone(),
            (12, 10 + 28 * i as i32),
            style(22.0, &BLACK, TOP_LEFT),
        ))
        .map_err(perr)?;
    }
    let keys = [
        (
            "orange: observed photometry (open: not fitted; ▼ 2σ limit)",
            PHOT_COL,
        ),
        ("squares: model photometry", BLACK),
        ("grey: best-fit SED", GREY),
    ];
    for (i, (s, c)) in keys.iter().enumerate() {
        pa.draw(&Text::new(
            s.to_string(),
            (pw as i32 / 2 - 120, 10 + 26 * i as i32),
            style(19.0, c, TOP_LEFT),
        ))
        .map_err(perr)?;
    }
    if t.sed.is_none() {
        pa.draw(&Text::new(
            "(full-resolution SED not rebuilt: COEFF does not match the templates)".to_string(),
            (12, ph as i32 - 40),
            style(18.0, &RED, TOP_LEFT),
        ))
        .map_err(perr)?;
    }
    Ok(())
}

/// The SED as (λ μm, AB mag), averaged in `nbin` logarithmic bins of observed wavelength over
/// (`xlo`, `xhi`) μm (a cleaner line than the raw template grid at this scale).
fn binned_sed(s: &Sed, xlo: f64, xhi: f64, nbin: usize) -> Vec<(f64, f64)> {
    let (l0, l1) = (xlo.ln(), xhi.ln());
    let mut acc = vec![(0.0_f64, 0.0_f64, 0usize); nbin];
    for (w, f) in s.wave.iter().zip(&s.flam) {
        let x = w / 1e4;
        if !(x > xlo && x < xhi && f.is_finite()) {
            continue;
        }
        let k = (((x.ln() - l0) / (l1 - l0)) * nbin as f64) as usize;
        let a = &mut acc[k.min(nbin - 1)];
        a.0 += w;
        a.1 += f;
        a.2 += 1;
    }
    acc.into_iter()
        .filter(|a| a.2 > 0)
        .map(|(w, f, n)| {
            let (w, f) = (w / n as f64, f / n as f64);
            (w / 1e4, flam_to_ab(f, w))
        })
        .map(|(x, m)| (x, if m.is_finite() { m } else { 99.0 }))
        .collect()
}

/// Robust σ of the residuals (IQR / 1.349) over good pixels.
fn robust_sigma(m: &CamModel<'_>) -> f64 {
    let mut r: Vec<f64> = (0..m.cam.wave.len())
        .filter(|&i| m.good(i))
        .map(|i| m.cam.flux[i] - m.total(i))
        .collect();
    if r.is_empty() {
        return f64::NAN;
    }
    let q75 = percentile(&mut r, 75.0);
    let q25 = percentile(&mut r, 25.0);
    (q75 - q25) / 1.349
}

fn draw_spectrum(
    area: &Area<'_>,
    resid_area: &Area<'_>,
    t: &TargetQa<'_>,
    models: &[CamModel<'_>],
    groups: &[LineGroup],
) -> anyhow::Result<()> {
    let z = t.ff.num(t.row, "Z");
    let (xlo, xhi) = (0.35_f64, 0.99_f64);
    let (mut ymin, mut ymax) = (1e6_f64, -1e6_f64);
    let mut rsig = 0.0_f64;
    for m in models {
        let sig = robust_sigma(m);
        if !sig.is_finite() {
            continue;
        }
        rsig = rsig.max(sig);
        ymin = ymin.min(-2.0 * sig);
        ymax = ymax.max(6.0 * sig);
        let good: Vec<f64> = (0..m.cam.wave.len())
            .filter(|&i| m.good(i))
            .map(|i| m.cam.flux[i])
            .collect();
        let filt = running_median(&good, 25);
        let fmax = filt.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        if fmax > ymax {
            ymax = fmax * 1.25;
        }
        let mmax = (0..m.cam.wave.len())
            .filter(|&i| m.good(i))
            .map(|i| m.total(i))
            .fold(f64::NEG_INFINITY, f64::max);
        if mmax > ymax {
            ymax = mmax * 1.25;
        }
    }
    if ymax.is_nan() || ymin.is_nan() || ymax <= ymin {
        (ymin, ymax) = (-1.0, 1.0);
    }
    let mut chart = ChartBuilder::on(area)
        .margin_right(20)
        .x_label_area_size(10)
        .y_label_area_size(80)
        .build_cartesian_2d(xlo..xhi, ymin..ymax)
        .map_err(perr)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_label_formatter(&|_| String::new())
        .y_desc("F_λ (10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹)")
        .label_style((FONT, 20))
        .axis_desc_style((FONT, 22))
        .draw()
        .map_err(perr)?;
    for (ic, m) in models.iter().enumerate() {
        let n = m.cam.wave.len();
        let x = |i: usize| m.cam.wave[i] / 1e4;
        for seg in segments(n, |i| m.good(i), |i| (x(i), m.cam.flux[i])) {
            chart
                .draw_series(LineSeries::new(
                    seg,
                    DATA_COL[ic % 3].mix(0.7).stroke_width(1),
                ))
                .map_err(perr)?;
        }
        for seg in segments(n, |_| true, |i| (x(i), m.smooth[i])) {
            chart
                .draw_series(LineSeries::new(seg, GREY.mix(0.6).stroke_width(2)))
                .map_err(perr)?;
        }
        for seg in segments(n, |_| true, |i| (x(i), m.cont[i])) {
            chart
                .draw_series(LineSeries::new(seg, BLACK.mix(0.6).stroke_width(2)))
                .map_err(perr)?;
        }
        for seg in segments(n, |i| m.good(i), |i| (x(i), m.total(i))) {
            chart
                .draw_series(LineSeries::new(
                    seg,
                    MODEL_COL[ic % 3].mix(0.9).stroke_width(2),
                ))
                .map_err(perr)?;
        }
    }
    // Line-group labels along the top, rotated.
    let pa = chart.plotting_area().strip_coord_spec();
    for g in groups {
        let w = g.meanwave * (1.0 + z) / 1e4;
        if w <= xlo || w >= xhi {
            continue;
        }
        let (px, _) = chart.backend_coord(&(w, ymax));
        let (ox, _) = pa.get_base_pixel();
        pa.draw(&Text::new(
            g.label.clone(),
            (px - ox - 8, 8),
            style(17.0, &RGBColor(0x55, 0x55, 0x55), TOP_LEFT).transform(FontTransform::Rotate90),
        ))
        .map_err(perr)?;
    }
    let key = [
        ("data (per camera)", DATA_COL[0]),
        ("full model", MODEL_COL[0]),
        ("stellar continuum", BLACK),
        ("smooth correction", GREY),
    ];
    let (pw, _) = pa.dim_in_pixel();
    for (i, (s, c)) in key.iter().enumerate() {
        pa.draw(&Text::new(
            s.to_string(),
            (pw as i32 - 230, 300 + 26 * i as i32),
            style(19.0, c, TOP_LEFT),
        ))
        .map_err(perr)?;
    }

    // Residuals.
    let rs = if rsig > 0.0 { 4.0 * rsig } else { 1.0 };
    let mut rc = ChartBuilder::on(resid_area)
        .margin_right(20)
        .x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d(xlo..xhi, -rs..rs)
        .map_err(perr)?;
    rc.configure_mesh()
        .disable_mesh()
        .x_desc("Observed-frame wavelength (μm)")
        .y_desc("data − model")
        .y_labels(5)
        .label_style((FONT, 20))
        .axis_desc_style((FONT, 22))
        .draw()
        .map_err(perr)?;
    rc.draw_series(LineSeries::new(
        [(xlo, 0.0), (xhi, 0.0)],
        BLACK.stroke_width(1),
    ))
    .map_err(perr)?;
    for (ic, m) in models.iter().enumerate() {
        let n = m.cam.wave.len();
        for seg in segments(
            n,
            |i| m.good(i),
            |i| {
                (
                    m.cam.wave[i] / 1e4,
                    (m.cam.flux[i] - m.total(i)).clamp(-rs, rs),
                )
            },
        ) {
            rc.draw_series(LineSeries::new(
                seg,
                DATA_COL[ic % 3].mix(0.7).stroke_width(1),
            ))
            .map_err(perr)?;
        }
    }
    Ok(())
}

/// Zoom panels: data − continuum − smooth correction, and the line model, per camera.
fn draw_zooms(
    area: &Area<'_>,
    t: &TargetQa<'_>,
    models: &[CamModel<'_>],
    groups: &[LineGroup],
) -> anyhow::Result<()> {
    const NCOL: usize = 3;
    const NROW: usize = 6;
    let z = t.ff.num(t.row, "Z");
    // At most NCOL × NROW panels: the groups with the highest line S/N when there are more.
    let mut chosen: Vec<&LineGroup> = groups.iter().collect();
    if chosen.len() > NCOL * NROW {
        let snr = |g: &LineGroup| {
            g.names
                .iter()
                .map(|n| {
                    let u = n.to_uppercase();
                    t.ff.num(t.row, &format!("{u}_AMP"))
                        * t.ff.num(t.row, &format!("{u}_AMP_IVAR")).sqrt()
                })
                .filter(|x| x.is_finite())
                .fold(0.0, f64::max)
        };
        chosen.sort_by(|a, b| snr(b).total_cmp(&snr(a)));
        chosen.truncate(NCOL * NROW);
        chosen.sort_by(|a, b| a.meanwave.total_cmp(&b.meanwave));
    }
    let (aw, ah) = area.dim_in_pixel();
    let (cw, ch) = (aw as i32 / NCOL as i32, (ah as i32 - 40) / NROW as i32);
    for (k, g) in chosen.iter().enumerate() {
        let (col, row) = ((k % NCOL) as i32, (k / NCOL) as i32);
        let panel = area.clone().shrink((col * cw, row * ch), (cw - 6, ch - 6));
        let s = g.sigma_kms / C_KMS;
        let dw = (g.maxwave - g.minwave) / 2.0;
        let wmin = (g.minwave - dw) * (1.0 + z) - 5.0 * s * g.minwave * (1.0 + z);
        let wmax = (g.maxwave + dw) * (1.0 + z) + 5.0 * s * g.maxwave * (1.0 + z);
        let mut series: Vec<(usize, Curve, Curve)> = Vec::new();
        let (mut ymin, mut ymax) = (f64::INFINITY, f64::NEG_INFINITY);
        for (ic, m) in models.iter().enumerate() {
            let idx: Vec<usize> = (0..m.cam.wave.len())
                .filter(|&i| m.good(i) && m.cam.wave[i] > wmin && m.cam.wave[i] < wmax)
                .collect();
            if idx.len() < 2 {
                continue;
            }
            let data: Vec<(f64, f64)> = idx
                .iter()
                .map(|&i| (m.cam.wave[i], m.cam.flux[i] - m.cont[i] - m.smooth[i]))
                .collect();
            let model: Vec<(f64, f64)> =
                idx.iter().map(|&i| (m.cam.wave[i], m.emline[i])).collect();
            let n = data.len() as f64;
            let mean = data.iter().map(|p| p.1).sum::<f64>() / n;
            let sd = (data.iter().map(|p| (p.1 - mean).powi(2)).sum::<f64>() / n).sqrt();
            let mmax = model.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
            let mmin = model.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
            let filt = running_median(&data.iter().map(|p| p.1).collect::<Vec<_>>(), 1);
            let fmax = filt.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let mut lo = -1.5 * sd;
            let hi = (mmax * 1.4).max(4.0 * sd).max(fmax);
            if mmin < lo {
                lo = 0.8 * mmin;
            }
            ymin = ymin.min(lo);
            ymax = ymax.max(hi);
            series.push((ic, data, model));
        }
        panel
            .draw(&Rectangle::new(
                [(0, 0), (cw - 7, ch - 7)],
                GREY.stroke_width(1),
            ))
            .map_err(perr)?;
        if series.is_empty() || ymax.is_nan() || ymin.is_nan() || ymax <= ymin {
            panel
                .draw(&Text::new(
                    g.label.clone(),
                    (8, 6),
                    style(16.0, &BLACK, TOP_LEFT),
                ))
                .map_err(perr)?;
            panel
                .draw(&Text::new(
                    "(no data)".to_string(),
                    (cw / 2, ch / 2),
                    style(16.0, &GREY, CENTER),
                ))
                .map_err(perr)?;
            continue;
        }
        let mut chart = ChartBuilder::on(&panel)
            .caption(g.label.clone(), (FONT, 15))
            .margin(4)
            .x_label_area_size(24)
            .y_label_area_size(44)
            .build_cartesian_2d(wmin..wmax, ymin..ymax)
            .map_err(perr)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(3)
            .y_labels(4)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| {
                if v.abs() >= 10.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            })
            .label_style((FONT, 14))
            .draw()
            .map_err(perr)?;
        for (ic, data, model) in series {
            chart
                .draw_series(LineSeries::new(
                    data,
                    DATA_COL[ic % 3].mix(0.8).stroke_width(1),
                ))
                .map_err(perr)?;
            chart
                .draw_series(LineSeries::new(model, MODEL_COL[ic % 3].stroke_width(2)))
                .map_err(perr)?;
        }
    }
    area.draw(&Text::new(
        "Observed-frame wavelength (Å); flux − continuum (10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹)".to_string(),
        (aw as i32 / 2, ah as i32 - 18),
        style(19.0, &BLACK, CENTER),
    ))
    .map_err(perr)?;
    Ok(())
}
