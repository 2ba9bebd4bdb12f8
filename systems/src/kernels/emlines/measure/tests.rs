//! Tests against FastSpecFit 3.6.1 on the two real targets (fixtures by
//! `tests/fixtures/scripts/gen_measure.py`): the captured `populate_emtable` inputs are fed to
//! [`measure_lines`] and every line / doublet / moment column is compared with the row
//! FastSpecFit wrote; the final model against the same run's MODELS / SPECPHOT values and the
//! stored reference file's.

use serde_json::Value;

use super::*;
use crate::kernels::emlines::profile::EmlineCamera;
use crate::kernels::emlines::table::{
    Constraints, DoubletRatio, EmLine, FixedRatio, KinBounds, LineTable,
};
use crate::kernels::filters::load_filter;
use crate::kernels::resolution::Resolution;
use crate::kernels::test_fixtures::{f64s, load};

const TARGETS: [&str; 2] = ["39633345008634465", "39089837499744649"];

fn b64(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut nbits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue, // '=' padding
        };
        acc = (acc << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((acc >> nbits) as u8);
            acc &= (1 << nbits) - 1;
        }
    }
    out
}

fn f8(v: &Value) -> Vec<f64> {
    b64(v.as_str().expect("base64"))
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

fn f4(v: &Value) -> Vec<f32> {
    b64(v.as_str().expect("base64"))
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect()
}

/// Index list of `[[start, end), ...]` ranges.
fn ranges(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("ranges")
        .iter()
        .flat_map(|r| {
            let a = r[0].as_u64().expect("start") as usize;
            let b = r[1].as_u64().expect("end") as usize;
            a..b
        })
        .collect()
}

/// Scatter `vals` (rows × idx.len(), row-major) into rows × n filled with `fill`.
fn scatter(vals: &[f64], idx: &[usize], rows: usize, n: usize, fill: f64) -> Vec<f64> {
    let mut out = vec![fill; rows * n];
    let m = idx.len();
    assert_eq!(vals.len(), rows * m);
    for r in 0..rows {
        for (k, &i) in idx.iter().enumerate() {
            out[r * n + i] = vals[r * m + k];
        }
    }
    out
}

fn bools(v: &Value) -> Vec<bool> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_bool().expect("bool"))
        .collect()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_str().expect("str").to_string())
        .collect()
}

/// Line table, constraints (the parts ParamTable needs + moments) of the default files.
fn table() -> (LineTable, Constraints) {
    let t = load("emlines/table.json");
    let d = &t["default"];
    let names = strs(&d["name"]);
    let restwave = f64s(&d["restwave"]);
    let (isbalmer, ishelium, isbroad, isstrong) = (
        bools(&d["isbalmer"]),
        bools(&d["ishelium"]),
        bools(&d["isbroad"]),
        bools(&d["isstrong"]),
    );
    let patch = strs(&d["patch"]);
    let lines = (0..names.len())
        .map(|i| EmLine {
            name: names[i].clone(),
            restwave: restwave[i],
            patch: patch[i].clone(),
            isbalmer: isbalmer[i],
            ishelium: ishelium[i],
            isbroad: isbroad[i],
            isstrong: isstrong[i],
            nicename: String::new(),
            plotgroup: String::new(),
        })
        .collect();
    let amplitude_fixed = d["fixed"]
        .as_array()
        .expect("fixed")
        .iter()
        .map(|f| FixedRatio {
            line: f[0].as_str().expect("line").into(),
            ref_line: f[1].as_str().expect("ref").into(),
            factor: f[2].as_f64().expect("factor"),
            param_name: f[3].as_str().expect("name").into(),
        })
        .collect();
    let doublet_ratios = d["doublet_ratios"]
        .as_array()
        .expect("doublets")
        .iter()
        .map(|f| DoubletRatio {
            line: f[0].as_str().expect("line").into(),
            ref_line: f[1].as_str().expect("ref").into(),
            param_name: f[2].as_str().expect("name").into(),
            min: f[3].as_f64().expect("min"),
            max: f[4].as_f64().expect("max"),
            initial: f[5].as_f64().expect("init"),
        })
        .collect();
    let moments = d["moments"]
        .as_object()
        .expect("moments")
        .iter()
        .map(|(k, v)| (k.clone(), strs(v)))
        .collect();
    let kb = KinBounds {
        sigma_min: 1.0,
        sigma_max: 10000.0,
        vshift_max: 2500.0,
        sigma_init: 3000.0,
        vshift_init: 0.0,
    };
    let c = Constraints {
        amplitude_fixed,
        doublet_ratios,
        global_default: kb,
        global_free_lines: Vec::new(),
        global_kinematic_groups: Vec::new(),
        profiles: Vec::new(),
        moments,
    };
    (LineTable::new(lines), c)
}

struct Case {
    fx: Value,
    pt: ParamTable,
    moments: Vec<(String, Vec<String>)>,
    model: LineModel,
    wave: Vec<f64>,
    specflux: Vec<f64>,
    oivar: Vec<f64>,
    cont: Vec<f64>,
    smooth: Vec<f64>,
    emlineflux: Vec<f64>,
    emlineivar: Vec<f64>,
    model_pref: Vec<f64>,
    nolines: Vec<f64>,
    values: Vec<f64>,
    obsamps: Vec<f64>,
    nmonte: usize,
    mc_values: Vec<f64>,
    mc_obsamps: Vec<f64>,
    mc_flux: Vec<f64>,
    mc_nolines: Vec<f64>,
}

fn case(tid: &str) -> Case {
    let fx = load(&format!("measure/{tid}.json"));
    let (lt, c) = table();
    let pt = ParamTable::new(&lt, &c, false);
    let np = pt.nparams();
    let tied: Vec<i32> = fx["tiedtoparam"]
        .as_array()
        .expect("tied")
        .iter()
        .map(|x| x.as_i64().expect("int") as i32)
        .collect();
    let model = LineModel {
        free: bools(&fx["free"]),
        fixed: bools(&fx["fixed"]),
        tiedtoparam: tied,
        tiedfactor: f64s(&fx["tiedfactor"]),
        group_name: vec![String::new(); np],
    };
    let wave = f8(&fx["emlinewave"]);
    let specflux = f8(&fx["specflux"]);
    let oivar = f8(&fx["oemlineivar"]);
    let cont = f8(&fx["continuum"]);
    let smooth = f8(&fx["smooth"]);
    let model_pref = f8(&fx["emlineflux_model"]);
    let n = wave.len();
    let mut emlineflux: Vec<f64> = (0..n).map(|i| specflux[i] - cont[i] - smooth[i]).collect();
    let mut emlineivar = oivar.clone();
    for (key, arr) in [
        ("emlineflux_bad", &mut emlineflux),
        ("emlineivar_bad", &mut emlineivar),
    ] {
        let idx = fx[key][0].as_array().expect("idx");
        let val = f64s(&fx[key][1]);
        for (i, v) in idx.iter().zip(val) {
            arr[i.as_u64().expect("idx") as usize] = v;
        }
    }
    let nolines: Vec<f64> = (0..n).map(|i| specflux[i] - model_pref[i]).collect();
    let mc = &fx["mc"];
    let nmonte = mc["nmonte"].as_u64().expect("nmonte") as usize;
    let mc_flux = scatter(
        &f8(&mc["emlineflux_monte"]),
        &ranges(&mc["flux_ranges"]),
        nmonte,
        n,
        f64::NAN,
    );
    let mc_nolines = scatter(
        &f8(&mc["specflux_nolines_monte"]),
        &ranges(&mc["cont_ranges"]),
        nmonte,
        n,
        f64::NAN,
    );
    let moments = c.moments.clone();
    Case {
        values: f8(&fx["value"]),
        obsamps: f8(&fx["obsamps"]),
        mc_values: f8(&mc["values_monte"]),
        mc_obsamps: f8(&mc["obsamps_monte"]),
        fx,
        pt,
        moments,
        model,
        wave,
        specflux,
        oivar,
        cont,
        smooth,
        emlineflux,
        emlineivar,
        model_pref,
        nolines,
        nmonte,
        mc_flux,
        mc_nolines,
    }
}

fn measure(c: &Case, with_mc: bool) -> LineMeasurements {
    let inp = MeasureInputs {
        params: &c.pt,
        model: &c.model,
        in_range: &bools(&c.fx["in_range"]),
        moments: &c.moments,
        z: c.fx["z"].as_f64().expect("z"),
        values: &c.values,
        obsamps: &c.obsamps,
        emlinewave: &c.wave,
        emlineflux: &c.emlineflux,
        emlineivar: &c.emlineivar,
        oemlineivar: &c.oivar,
        model_pref: &c.model_pref,
        specflux_nolines: &c.nolines,
        monte: with_mc.then_some(MonteInputs {
            nmonte: c.nmonte,
            values: &c.mc_values,
            obsamps: &c.mc_obsamps,
            emlineflux: &c.mc_flux,
            specflux_nolines: &c.mc_nolines,
        }),
    };
    measure_lines(&inp, &mut MeasureWorkspace::new()).expect("measure_lines")
}

/// |a − b| ≤ rtol·|b| + atol.
fn close(a: f64, b: f64, rtol: f64, atol: f64) -> bool {
    (a - b).abs() <= rtol * b.abs() + atol
}

/// Relative error with a float32-resolution floor (the columns are float32).
fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-30)
}

/// Compare every line, doublet-ratio and moment column with FastSpecFit's row: deterministic
/// columns to rtol 1e-6, MC ivars to rtol 1e-4, NPIX exactly; returns (worst deterministic,
/// worst MC) relative differences.
fn compare(
    tag: &str,
    c: &Case,
    m: &LineMeasurements,
    lines_out: &Value,
    extra_out: &Value,
) -> (f64, f64) {
    let mut worst_det = (0.0f64, String::new());
    let mut worst_mc = (0.0f64, String::new());
    let (mut ndet, mut nmc) = (0usize, 0usize);
    for (il, line) in c.pt.lines.lines.iter().enumerate() {
        let name = line.name.to_uppercase();
        let w = f64s(&lines_out[&name]);
        let got = m.lines[il].values();
        for (k, suffix) in LINE_SUFFIXES.iter().enumerate() {
            let is_mc = suffix.ends_with("_IVAR");
            let col = format!("{name}_{suffix}");
            if *suffix == "NPIX" {
                assert_eq!(got[k], w[k], "{tag} {col}");
                continue;
            }
            let rtol = if is_mc { 1e-4 } else { 1e-6 };
            let ok = (got[k] == 0.0 && w[k] == 0.0) || close(got[k], w[k], rtol, 0.0);
            assert!(ok, "{tag} {col}: {} vs FastSpecFit {}", got[k], w[k]);
            if w[k] != 0.0 {
                if is_mc {
                    nmc += 1;
                } else {
                    ndet += 1;
                }
                let r = rel(got[k], w[k]);
                let worst = if is_mc { &mut worst_mc } else { &mut worst_det };
                if r > worst.0 {
                    *worst = (r, col);
                }
            }
        }
    }
    eprintln!(
        "{tag}: {ndet} non-zero deterministic columns, worst {:.2e} ({}); {nmc} MC ivars, \
         worst {:.2e} ({})",
        worst_det.0, worst_det.1, worst_mc.0, worst_mc.1
    );
    assert!(
        ndet > 40 && nmc > 20,
        "{tag}: too few non-zero columns compared"
    );

    // doublet ratios and moments
    let extra = extra_out.as_object().expect("extra");
    let mut seen = 0;
    for (col, wv) in extra {
        let wv = wv.as_f64().expect("f64");
        let got = if let Some(base) = col.strip_suffix("_IVAR") {
            if let Some(r) = m.ratios.iter().find(|r| r.name == base) {
                Some((f64::from(r.ivar), true))
            } else {
                moment(m, base).map(|(v, n)| (f64::from(v.ivar[n]), true))
            }
        } else if let Some(r) = m.ratios.iter().find(|r| &r.name == col) {
            Some((f64::from(r.value), false))
        } else {
            moment(m, col).map(|(v, n)| (f64::from(v.moments[n]), false))
        };
        let (g, is_mc) = got.unwrap_or((0.0, false));
        let rtol = if is_mc { 1e-4 } else { 1e-6 };
        assert!(
            (g == 0.0 && wv == 0.0) || close(g, wv, rtol, 0.0),
            "{tag} {col}: {g} vs FastSpecFit {wv}"
        );
        if wv != 0.0 {
            seen += 1;
        }
    }
    assert!(
        seen >= 6,
        "{tag}: only {seen} non-zero doublet/moment columns"
    );
    (worst_det.0, worst_mc.0)
}

#[test]
fn line_columns_match_fastspecfit() {
    for tid in TARGETS {
        let c = case(tid);
        let m = measure(&c, true);
        compare(tid, &c, &m, &c.fx["lines_out"], &c.fx["extra_out"]);
    }
}

/// Masked copies of the 80613 inputs (FastSpecFit's populate_emtable run on the same copies by
/// the fixture script): a fully tied line with a null patch keeps its model values, a free line
/// with a null patch is zeroed (and its moments use v = 0 and the default σ), a line with
/// 0 < NPIX < 7 gets only NPIX and the stale CONT_IVAR of the previous measured line.
#[test]
fn masked_branches_match_fastspecfit() {
    let mut c = case(TARGETS[0]);
    let p = c.fx["perturbed"].clone();
    for i in p["null_pix"].as_array().expect("null") {
        let i = i.as_u64().expect("idx") as usize;
        c.oivar[i] = 0.0;
        c.emlineivar[i] = 0.0;
    }
    for i in p["few_pix"].as_array().expect("few") {
        c.emlineivar[i.as_u64().expect("idx") as usize] = 0.0;
    }
    let m = measure(&c, true);
    let names = strs(&p["lines"]);
    let col = |n: &str| &m.lines[c.pt.line_map[n]];
    assert_eq!(col(&names[0]).npix, 0);
    assert!(col(&names[0]).amp > 0.0);
    assert_eq!((col(&names[1]).npix, col(&names[1]).amp), (0, 0.0));
    assert!((1..7).contains(&col(&names[2]).npix));
    assert!(col(&names[2]).cont_ivar > 0.0 && col(&names[2]).amp == 0.0);
    compare("80613 masked", &c, &m, &p["lines_out"], &p["extra_out"]);
}

/// [Deviation] FastSpecFit raises UnboundLocalError when the first measured line has
/// 0 < NPIX < 7 with Monte Carlo on; this port writes CONT_IVAR = 0 and carries on.
#[test]
fn few_pixels_before_any_measured_line_gives_zero_cont_ivar() {
    let mut c = case(TARGETS[0]);
    let inr = bools(&c.fx["in_range"]);
    let first = inr.iter().position(|&b| b).expect("a line in range");
    let n = c.pt.nlines();
    let z = c.fx["z"].as_f64().expect("z");
    let lz = c.pt.restwave[first] * (1.0 + (z + c.values[n + first] / C_LIGHT));
    let w = (c.values[2 * n + first] * lz / C_LIGHT).max(1.6);
    let inside: Vec<usize> = (0..c.wave.len())
        .filter(|&i| c.wave[i] > lz - 3.0 * w && c.wave[i] <= lz + 3.0 * w)
        .collect();
    assert!(inside.len() > 10);
    let mid = inside.len() / 2;
    for (k, &i) in inside.iter().enumerate() {
        if !(mid..mid + 3).contains(&k) {
            c.emlineivar[i] = 0.0;
        }
    }
    let m = measure(&c, true);
    let l = &m.lines[first];
    assert!((1..7).contains(&l.npix), "npix {}", l.npix);
    assert_eq!((l.cont_ivar, l.flux_limit, l.amp), (0.0, 0.0, 0.0));
    // later lines are measured as usual
    assert!(m.lines.iter().skip(first + 1).any(|x| x.cont_ivar > 0.0));
}

/// The moment columns `{label}_MOMENT{n}` of `col`, if any.
fn moment<'a>(m: &'a LineMeasurements, col: &str) -> Option<(&'a MomentColumns, usize)> {
    let (label, n) = col.rsplit_once("_MOMENT")?;
    let n: usize = n.parse().ok()?;
    m.moments
        .iter()
        .find(|x| x.label == label)
        .map(|x| (x, n - 1))
}

#[test]
fn deterministic_columns_do_not_need_monte_carlo() {
    let c = case(TARGETS[0]);
    let with = measure(&c, true);
    let without = measure(&c, false);
    for (a, b) in with.lines.iter().zip(&without.lines) {
        assert_eq!(a.flux, b.flux);
        assert_eq!(a.boxflux, b.boxflux);
        assert_eq!(a.cont, b.cont);
        assert_eq!(a.npix, b.npix);
        assert_eq!(b.amp_ivar, 0.0);
        assert_eq!(b.cont_ivar, 0.0);
        assert_eq!(b.flux_limit, 0.0);
        assert_eq!(b.ew, 0.0);
    }
}

fn spectrum(c: &Case) -> EmlineSpectrum {
    let mut cams = Vec::new();
    for (icam, r) in c.fx["res"].as_array().expect("res").iter().enumerate() {
        let s = c.fx["camerapix"][icam][0].as_u64().expect("s") as usize;
        let e = c.fx["camerapix"][icam][1].as_u64().expect("e") as usize;
        let ndiag = r["ndiag"].as_u64().expect("ndiag") as usize;
        let npix = r["npix"].as_u64().expect("npix") as usize;
        assert_eq!(npix, e - s);
        let cols = ranges(&r["ranges"]);
        // FastSpecFit's deconvolved W on the columns the line model reaches
        let data = scatter(&f8(&r["data"]), &cols, ndiag, npix, 0.0);
        let w = Resolution::new(ndiag, npix, data).expect("W");
        cams.push(EmlineCamera::new(s, &c.wave[s..e], w).expect("camera"));
    }
    EmlineSpectrum::new(c.pt.restwave.clone(), c.fx["z"].as_f64().expect("z"), cams)
        .expect("spectrum")
}

#[test]
fn final_model_matches_fastspecfit() {
    for tid in TARGETS {
        let c = case(tid);
        let measured = measure(&c, true);
        let spec = spectrum(&c);
        let ends = f64s(&c.fx["coadd_wave_ends"]);
        let ncoadd = c.fx["ncoadd"].as_u64().expect("n") as usize;
        // the grid only depends on the first two values and the extremes
        let mut coadd_wave = vec![ends[1]; ncoadd];
        coadd_wave[0] = ends[0];
        coadd_wave[ncoadd - 1] = ends[2];
        let coadd_flux = scatter(
            &f8(&c.fx["coadd_flux"]),
            &ranges(&c.fx["coadd_flux_ranges"]),
            1,
            ncoadd,
            f64::NAN,
        );
        let filters: Vec<FilterCurve> = strs(&c.fx["filters"])
            .iter()
            .map(|n| load_filter(n).expect("filter"))
            .collect();
        let mut ws = MeasureWorkspace::new();
        let sp = &c.fx["specphot"];
        let refsp = &c.fx["ref_specphot"];

        let (dn_obs, dn_ivar) = dn4000_observed(
            &c.wave,
            &c.specflux,
            &c.oivar,
            c.fx["z"].as_f64().expect("z"),
            &mut ws,
        );
        for (got, col) in [(dn_obs, "DN4000_OBS"), (dn_ivar, "DN4000_IVAR")] {
            let want = refsp[col].as_f64().expect(col);
            eprintln!(
                "{tid}: {col} {got} vs reference {want} (rel {:.2e})",
                rel(got, want)
            );
            assert!(close(got, want, 1e-5, 0.0), "{tid} {col}: {got} vs {want}");
        }

        let fm = final_model(
            &FinalInputs {
                params: &c.pt,
                spectrum: &spec,
                measured: &measured,
                emlinewave: &c.wave,
                specflux: &c.specflux,
                oemlineivar: &c.oivar,
                continuum: &c.cont,
                smooth: &c.smooth,
                coadd_wave: &coadd_wave,
                coadd_flux: &coadd_flux,
                synth_filters: &filters,
                dn4000_ivar: dn_ivar,
            },
            &mut ws,
        )
        .expect("final_model");

        // rebuilt hstacked line model vs FastSpecFit's emlinemodel_bestfit
        let best = scatter(
            &f8(&c.fx["emlineflux_model_best"]),
            &ranges(&c.fx["best_ranges"]),
            1,
            c.wave.len(),
            0.0,
        );
        let peak = best.iter().fold(0.0f64, |a, &b| a.max(b.abs()));
        let dmax = fm
            .emline_model
            .iter()
            .zip(&best)
            .fold(0.0f64, |a, (x, y)| a.max((x - y).abs()));
        eprintln!(
            "{tid}: rebuilt line model max |diff|/peak {:.2e}",
            dmax / peak
        );

        assert!(
            peak > 0.0 && dmax <= 1e-7 * peak,
            "{tid}: rebuilt model {dmax} of {peak}"
        );

        for (got, col) in [(fm.rchi2, "RCHI2"), (fm.dn4000, "DN4000")] {
            let want = sp[col].as_f64().expect(col);
            let r = refsp[col].as_f64().expect(col);
            eprintln!(
                "{tid}: {col} {got} vs run {want} (rel {:.2e}), reference {r} (rel {:.2e})",
                rel(got, want),
                rel(got, r)
            );
            assert!(close(got, want, 1e-5, 0.0), "{tid} {col}: {got} vs {want}");
        }
        for (b, got) in strs(&c.fx["synth_bands"])
            .iter()
            .zip(&fm.flux_synth_specmodel)
        {
            let col = format!("FLUX_SYNTH_SPECMODEL_{}", b.to_uppercase());
            let want = sp[&col].as_f64().expect("synth");
            let r = refsp[&col].as_f64().expect("synth");
            eprintln!(
                "{tid}: {col} {got} vs run {want} (rel {:.2e}), reference {r} (rel {:.2e})",
                rel(*got, want),
                rel(*got, r)
            );
            assert!(close(*got, want, 1e-5, 0.0), "{tid} {col}: {got} vs {want}");
        }

        // MODELS rows
        assert_eq!(fm.models.crval1, 3600.0);
        assert_eq!(fm.models.cdelt1, 0.8);
        let refm = f4(&c.fx["ref_models"]);
        let nout = fm.models.continuum.len();
        assert_eq!(refm.len(), 3 * nout);
        let row_err = |got: &[f32], want: &[f32]| -> f64 {
            let peak = want.iter().fold(0.0f64, |a, &b| a.max(f64::from(b).abs()));
            got.iter()
                .zip(want)
                .fold(0.0f64, |a, (x, y)| a.max(f64::from(x - y).abs()))
                / peak
        };
        let e_cont = row_err(&fm.models.continuum, &refm[..nout]);
        let e_smooth = row_err(&fm.models.smooth, &refm[nout..2 * nout]);
        let e_line = row_err(&fm.models.emline, &f4(&c.fx["emlinemodel_row"]));
        let e_line_ref = row_err(&fm.models.emline, &refm[2 * nout..]);
        eprintln!(
            "{tid}: MODELS vs reference: CONTINUUM {e_cont:.2e}, SMOOTHCONTINUUM {e_smooth:.2e}, \
             EMLINEMODEL {e_line_ref:.2e}; EMLINEMODEL vs this run {e_line:.2e}"
        );
        assert!(e_cont <= 1e-5 && e_smooth <= 1e-5 && e_line <= 1e-5);
    }
}

#[test]
fn output_grid_of_desi() {
    let w: Vec<f64> = (0..7781).map(|k| 3600.0 + 0.8 * k as f64).collect();
    let (lo, d, n) = output_grid(&w).expect("grid");
    assert_eq!((lo, d, n), (3600.0, 0.8, 7781));
    assert!(output_grid(&w[..1]).is_err());
}

#[test]
fn shape_errors_are_reported() {
    let c = case(TARGETS[0]);
    let short = &c.emlineflux[..10];
    let inp = MeasureInputs {
        params: &c.pt,
        model: &c.model,
        in_range: &bools(&c.fx["in_range"]),
        moments: &c.moments,
        z: 0.1,
        values: &c.values,
        obsamps: &c.obsamps,
        emlinewave: &c.wave,
        emlineflux: short,
        emlineivar: &c.emlineivar,
        oemlineivar: &c.oivar,
        model_pref: &c.model_pref,
        specflux_nolines: &c.nolines,
        monte: None,
    };
    assert!(matches!(
        measure_lines(&inp, &mut MeasureWorkspace::new()),
        Err(KernelError::Shape(_))
    ));
}

/// The hinted search returns `np.searchsorted(side='right')`'s index from any
/// hint (ties, values off both ends, NaN), and the interpolation at a given
/// partition point equals the searched one.
#[test]
fn hinted_search_and_interp_match_the_plain_ones() {
    let a: Vec<f64> = [1.0, 2.0, 2.0, 2.0, 3.5, 4.0, 7.0, 7.0, 9.0, 10.0, 12.5]
        .into_iter()
        .chain((0..300).map(|k| 13.0 + 0.25 * k as f64))
        .collect();
    let fp: Vec<f64> = (0..a.len()).map(|k| (k as f64 * 0.7).sin()).collect();
    let mut values: Vec<f64> = vec![-5.0, 0.5, 1.0, 2.0, 3.0, 7.0, 8.0, 12.5, 1e9, f64::NAN];
    values.extend((0..200).map(|k| 0.37 * k as f64));
    let mut checked = 0;
    for &v in &values {
        let want = ss_right(&a, v);
        for hint in (0..=a.len() + 3)
            .step_by(7)
            .chain([0, a.len(), a.len() + 50])
        {
            let mut h = hint;
            assert_eq!(ss_right_near(&a, v, &mut h), want, "v {v} hint {hint}");
            assert_eq!(h, want);
            checked += 1;
        }
        let (x, y) = (np_interp(v, &a, &fp), np_interp_at(v, want, &a, &fp));
        assert!(x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()));
    }
    assert!(checked > 1000);
}
