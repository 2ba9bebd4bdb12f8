//! Tests of the line-table and constraint readers against FastSpecFit 3.6.1
//! (`tests/fixtures/scripts/gen_emlines.py`; SPEC §9 test_emline_constraints,
//! test_emlines, test_linetable).

use std::path::Path;

use fsf_systems::kernels::emlines::{
    build_linemodels, initial_guesses_and_bounds, InitialKinematics, ParamTable, IN_RANGE_PAD,
};
use serde_json::Value;

use super::*;

fn fixture(name: &str) -> Value {
    let p = format!(
        "{}/tests/fixtures/emlines/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&p).expect("fixture")).expect("json")
}

fn fv(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("f64"))
        .collect()
}

fn bv(v: &Value) -> Vec<bool> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_bool().expect("bool"))
        .collect()
}

fn sv(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_str().expect("str").to_owned())
        .collect()
}

fn load(kind: &str) -> (LineTable, Constraints) {
    let (e, c) = if kind == "default" {
        (DEFAULT_EMLINES_ECSV, DEFAULT_CONSTRAINTS_YAML)
    } else {
        (HII_EMLINES_ECSV, HII_CONSTRAINTS_YAML)
    };
    let t = parse_line_table(e, Path::new(kind)).expect("table");
    let c = parse_constraints(c, Path::new(kind), Some(&t)).expect("constraints");
    (t, c)
}

#[test]
fn tables_and_constraints_match_fastspecfit() {
    let fx = fixture("table.json");
    for (kind, n) in [("default", 46), ("hii", 63)] {
        let d = &fx[kind];
        let (t, c) = load(kind);
        assert_eq!(t.len(), n);
        let names: Vec<String> = t.lines.iter().map(|l| l.name.clone()).collect();
        assert_eq!(names, sv(&d["name"]), "{kind} order");
        let rw: Vec<f64> = t.lines.iter().map(|l| l.restwave).collect();
        assert_eq!(rw, fv(&d["restwave"]));
        for (key, f) in [
            ("isbalmer", (|l: &EmLine| l.isbalmer) as fn(&EmLine) -> bool),
            ("ishelium", |l| l.ishelium),
            ("isbroad", |l| l.isbroad),
            ("isstrong", |l| l.isstrong),
        ] {
            assert_eq!(
                t.lines.iter().map(f).collect::<Vec<_>>(),
                bv(&d[key]),
                "{kind} {key}"
            );
        }
        assert_eq!(
            t.lines.iter().map(|l| l.patch.clone()).collect::<Vec<_>>(),
            sv(&d["patch"])
        );
        for l in &t.lines {
            let b = c.line_bounds(&l.name).expect("bounds");
            let want = fv(&d["line_bounds"][&l.name]);
            assert_eq!(
                vec![
                    b.sigma_min,
                    b.sigma_max,
                    b.vshift_max,
                    b.sigma_init,
                    b.vshift_init
                ],
                want,
                "{}",
                l.name
            );
        }
        assert!(c.line_bounds("nosuchline").is_none());
        let profiles: Vec<String> = c.profiles.iter().map(|p| p.name.clone()).collect();
        assert_eq!(profiles, sv(&d["profiles"]));
        for p in &c.profiles {
            let w = &d["final_pass"][&p.name];
            assert_eq!(Some(p.final_pass.enabled), w["enabled"].as_bool());
            assert_eq!(Some(p.final_pass.warm_start), w["warm_start"].as_bool());
            assert_eq!(Some(p.final_pass.adopt_if.as_str()), w["adopt_if"].as_str());
            assert_eq!(
                Some(p.final_pass.inherit_in_mc),
                w["inherit_in_mc"].as_bool()
            );
        }
        let gfp = c.group_final_pass();
        assert_eq!(
            gfp.len(),
            d["group_final_pass"].as_object().expect("obj").len()
        );
        for (key, g) in gfp {
            let w = &d["group_final_pass"][&key];
            assert_eq!(Some(g.free_vshift), w["free_vshift"].as_bool(), "{key}");
            assert_eq!(Some(g.free_sigma), w["free_sigma"].as_bool(), "{key}");
            assert_eq!(g.delta_vshift_max, w["delta_vshift_max"].as_f64(), "{key}");
            assert_eq!(g.delta_sigma_max, w["delta_sigma_max"].as_f64(), "{key}");
            assert_eq!(
                g.locked_members.iter().cloned().collect::<Vec<_>>(),
                sv(&w["locked_members"]),
                "{key}"
            );
        }
        let moments = d["moments"].as_object().expect("moments");
        assert_eq!(c.moments.len(), moments.len());
        for (label, lines) in &c.moments {
            assert_eq!(lines, &sv(&moments[label]));
        }
        for (f, w) in c
            .amplitude_fixed
            .iter()
            .zip(d["fixed"].as_array().expect("fixed"))
        {
            assert_eq!(f.line, w[0].as_str().expect("s"));
            assert_eq!(f.ref_line, w[1].as_str().expect("s"));
            assert_eq!(Some(f.factor), w[2].as_f64());
            assert_eq!(f.param_name, w[3].as_str().expect("s"));
        }
        for (r, w) in c
            .doublet_ratios
            .iter()
            .zip(d["doublet_ratios"].as_array().expect("dr"))
        {
            assert_eq!(r.param_name, w[2].as_str().expect("s"));
            assert_eq!(
                (Some(r.min), Some(r.max), Some(r.initial)),
                (w[3].as_f64(), w[4].as_f64(), w[5].as_f64())
            );
        }
        // parameter table, classes, guesses and bounds without data
        let pt = ParamTable::new(&t, &c, false);
        assert_eq!(pt.param_names, sv(&d["param_names"]));
        assert_eq!(
            pt.doublet_idx.iter().map(|&i| i as u64).collect::<Vec<_>>(),
            d["doublet_idx"]
                .as_array()
                .expect("a")
                .iter()
                .map(|x| x.as_u64().expect("u"))
                .collect::<Vec<_>>()
        );
        assert_eq!(pt.is_broad, bv(&d["isBroad"]));
        assert_eq!(
            pt.is_balmer_broad_no_helium_strong,
            bv(&d["isBalmerBroad_noHelium_Strong"])
        );
        assert!(pt.is_broad.iter().zip(&pt.is_narrow).all(|(a, b)| !(a & b)));
        let (init, bounds) =
            initial_guesses_and_bounds(&pt, &c, &[], &[], &InitialKinematics::default())
                .expect("guesses");
        assert_eq!(init, fv(&d["initials"]));
        let fb: Vec<f64> = bounds.iter().flat_map(|&(a, b)| [a, b]).collect();
        assert_eq!(fb, fv(&d["bounds"]));
        let strong = ParamTable::new(&t, &c, true);
        let sn: Vec<String> = strong.lines.lines.iter().map(|l| l.name.clone()).collect();
        assert_eq!(sn, sv(&d["strong_names"]));
        assert!(strong.nlines() < pt.nlines());
    }
}

#[test]
fn fixed_factors_and_doublets() {
    let (_, c) = load("default");
    let f: Vec<f64> = c.amplitude_fixed.iter().map(|f| f.factor).collect();
    for (got, inv) in f.iter().zip([3.0326, 2.9643, 1.225]) {
        assert!((got - 1.0 / inv).abs() < 1e-3);
    }
    let targets: Vec<&str> = c.doublet_ratios.iter().map(|d| d.line.as_str()).collect();
    assert_eq!(targets, ["oii_3726", "sii_6731", "mgii_2796"]);
    let hb = c.line_bounds("hbeta_broad").expect("b");
    assert!(hb.sigma_max > 1000.0 && hb.vshift_max >= 2000.0);
    assert!(c.line_bounds("hbeta").expect("b").sigma_max <= 1000.0);
}

#[test]
fn linemodels_match_fastspecfit() {
    for rec in fixture("linemodels.json").as_array().expect("recs") {
        let kind = rec["kind"].as_str().expect("kind");
        let z = rec["z"].as_f64().expect("z");
        let wl = fv(&rec["wavelims"]);
        let (t, c) = load(kind);
        let pt = ParamTable::new(&t, &c, false);
        let in_range = pt.lines_in_range(z, (wl[0], wl[1]), IN_RANGE_PAD);
        assert_eq!(in_range, bv(&rec["in_range"]), "{kind} z={z}");
        let (broad, nobroad) = build_linemodels(&pt, &c, &in_range).expect("models");
        for (key, m) in [("broad", &broad), ("nobroad", &nobroad)] {
            let w = &rec[key];
            let ctx = format!("{kind} z={z} {key}");
            assert_eq!(m.free, bv(&w["free"]), "{ctx} free");
            assert_eq!(m.fixed, bv(&w["fixed"]), "{ctx} fixed");
            let tied: Vec<i64> = m.tiedtoparam.iter().map(|&x| x as i64).collect();
            let wt: Vec<i64> = w["tiedtoparam"]
                .as_array()
                .expect("a")
                .iter()
                .map(|x| x.as_i64().expect("i"))
                .collect();
            assert_eq!(tied, wt, "{ctx} tiedtoparam");
            assert_eq!(m.tiedfactor, fv(&w["tiedfactor"]), "{ctx} tiedfactor");
            assert_eq!(m.group_name, sv(&w["group_name"]), "{ctx} group_name");
            assert!(m.free.iter().zip(&m.fixed).all(|(a, b)| !(a & b)));
        }
        assert!(broad.nfree() >= nobroad.nfree());
    }
}

#[test]
fn validation_errors_name_the_file() {
    let (t, _) = load("default");
    let drop_line = DEFAULT_CONSTRAINTS_YAML.replacen("        - siliii_1892", "", 1);
    let e = parse_constraints(&drop_line, Path::new("x.yaml"), Some(&t)).expect_err("missing");
    let msg = e.to_string();
    assert!(
        msg.starts_with("x.yaml: ") && msg.contains("missing") && msg.contains("siliii_1892"),
        "{msg}"
    );
    let extra = DEFAULT_CONSTRAINTS_YAML.replacen(
        "    - heii_4686",
        "    - heii_4686\n    - bogus_1234",
        1,
    );
    let msg = parse_constraints(&extra, Path::new("x.yaml"), Some(&t))
        .expect_err("extra")
        .to_string();
    assert!(
        msg.contains("references") && msg.contains("bogus_1234"),
        "{msg}"
    );
    let no_fp =
        DEFAULT_CONSTRAINTS_YAML.replacen("      adopt_if:      chi2_improves   #", "      #", 1);
    let msg = parse_constraints(&no_fp, Path::new("x.yaml"), Some(&t))
        .expect_err("fp")
        .to_string();
    assert!(
        msg.contains("final_pass is missing keys") && msg.contains("adopt_if"),
        "{msg}"
    );
    let moments = DEFAULT_CONSTRAINTS_YAML.replacen("lines: [hbeta]", "lines: [hbetax]", 1);
    let msg = parse_constraints(&moments, Path::new("x.yaml"), Some(&t))
        .expect_err("moments")
        .to_string();
    assert!(msg.contains("Moment group 'HBETA'"), "{msg}");
    // HII files are consistent; HII constraints do not fit the default table
    let (ht, _) = load("hii");
    assert!(parse_constraints(HII_CONSTRAINTS_YAML, Path::new("h.yaml"), Some(&t)).is_err());
    assert!(parse_constraints(DEFAULT_CONSTRAINTS_YAML, Path::new("d.yaml"), Some(&ht)).is_err());
    // missing files
    let e = load_line_table(Some(Path::new("/nonexistent/emlines.ecsv"))).expect_err("missing");
    assert!(e.to_string().contains("does not exist"));
    let e = EmlineConfig::load(None, Some(Path::new("/nonexistent/c.yaml"))).expect_err("missing");
    assert!(e.to_string().starts_with("/nonexistent/c.yaml"));
    assert!(EmlineConfig::load(None, None).is_ok());
}

#[test]
fn in_range_lines_at_z0_and_z5() {
    let (t, c) = load("default");
    let pt = ParamTable::new(&t, &c, false);
    let r0 = pt.lines_in_range(0.0, (3600.0, 9900.0), IN_RANGE_PAD);
    for n in ["halpha", "hbeta", "oiii_5007", "oii_3729"] {
        assert!(r0[pt.line_map[n]], "{n}");
    }
    let n0 = r0.iter().filter(|&&b| b).count();
    let n5 = pt
        .lines_in_range(5.0, (3600.0, 9900.0), IN_RANGE_PAD)
        .iter()
        .filter(|&&b| b)
        .count();
    assert!(4 * n5 < n0);
    let nn = pt
        .lines_in_range(0.0, (4000.0, 7000.0), IN_RANGE_PAD)
        .iter()
        .filter(|&&b| b)
        .count();
    assert!(nn < n0);
}
