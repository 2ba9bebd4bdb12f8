//! The fastspec Prepare phase (SPEC §2.2, §2.3, §2.4, §2.6) against FastSpecFit 3.6.1 on
//! both reference targets: fixtures from `tests/fixtures/scripts/gen_prepare.py`
//! (desispec 0.70 `coadd_cameras` + `one_spectrum`), plus the reference FASTSPEC SNR_* and
//! SPECPHOT FLUX_SYNTH_* columns.

use super::common::{f64s, load_fixture, max_rel, usizes};

use bevy_ecs::prelude::*;
use fastspecfit::io::fits::FitsReader;
use fastspecfit::io::spectra::read_spectra;
use fsf_components::spectrum::SynthPhotometry;
use fsf_components::{
    FitOptions, FitStatus, MilkyWayDust, ObservedPhotometry, PreparedSpectrum, Target,
};
use fsf_systems::passes::spectrum::prepare_spectra;

use super::common::desi;

fn fixture(targetid: i64) -> serde_json::Value {
    load_fixture(&format!("prepare/{targetid}.json"))
}

fn synth_setup() -> SynthPhotometry {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    SynthPhotometry {
        bands: s(&["g", "r", "z"]),
        filters: vec![
            ("N".into(), s(&["BASS-g", "BASS-r", "MzLS-z"])),
            (
                "S".into(),
                s(&["decam2014-g", "decam2014-r", "decam2014-z"]),
            ),
            (
                "".into(),
                s(&["hsc2017-g", "hsc2017-r", "hsc2017-i", "hsc2017-z"]),
            ),
        ],
    }
}

/// Run `prepare_spectra` on one target of `coadd` and compare with the fixture.
fn check(coadd: &str, targetid: i64) {
    let fx = fixture(targetid);
    let path = desi().join(coadd);
    let mut f = FitsReader::open(&path).expect("open coadd");
    let tids: Vec<i64> = f.col("FIBERMAP", "TARGETID").expect("TARGETID");
    let row = tids
        .iter()
        .position(|&t| t == targetid)
        .expect("target in coadd");
    let spectra = read_spectra(&path, &[row], tids.len()).expect("read spectra");

    let mut world = World::new();
    world.insert_resource(FitOptions::default());
    world.insert_resource(spectra);
    world.insert_resource(synth_setup());
    let e = world
        .spawn((
            Target { row: 0, targetid },
            MilkyWayDust {
                ebv: fx["ebv"].as_f64().expect("ebv"),
                ..Default::default()
            },
            ObservedPhotometry {
                photsys: fx["photsys"].as_str().expect("photsys").to_string(),
                flux_nmgy: vec![],
                ivar_nmgy2: vec![],
                fiberflux_nmgy: vec![],
                fibertotflux_nmgy: vec![],
            },
            PreparedSpectrum::default(),
            FitStatus::default(),
        ))
        .id();
    let mut schedule = Schedule::default();
    schedule.add_systems(prepare_spectra);
    schedule.run(&mut world);
    let status = world.get::<FitStatus>(e).expect("status");
    assert!(status.ok(), "{:?}", status.reasons);
    let p = world.get::<PreparedSpectrum>(e).expect("prepared").clone();

    // camera coaddition (desispec coadd_cameras): rtol 1e-10
    let c = &fx["coadd"];
    assert_eq!(
        p.coadd_wave.len(),
        c["npix"].as_u64().expect("npix") as usize
    );
    let idx = usizes(&c["idx"]);
    let pick = |v: &[f64], idx: &[usize]| idx.iter().map(|&i| v[i]).collect::<Vec<_>>();
    let rw = max_rel(&pick(&p.coadd_wave, &idx), &f64s(&c["wave"]), 1.0);
    assert!(rw < 1e-12, "coadd wave max rel {rw:.2e}");
    let rf = max_rel(&pick(&p.coadd_flux, &idx), &f64s(&c["flux"]), 1e-300);
    let ri = max_rel(&pick(&p.coadd_ivar, &idx), &f64s(&c["ivar"]), 1e-300);
    let ridx = usizes(&c["res_idx"]);
    let n = p.coadd_wave.len();
    let mut rr: f64 = 0.0;
    for (d, want) in c["res"].as_array().expect("res").iter().enumerate() {
        let got: Vec<f64> = ridx.iter().map(|&i| p.coadd_res[d * n + i]).collect();
        rr = rr.max(max_rel(&got, &f64s(want), 1e-12));
    }
    eprintln!("{targetid}: coadd max rel flux {rf:.2e} ivar {ri:.2e} res {rr:.2e}");
    assert!(rf < 1e-10 && ri < 1e-10 && rr < 1e-10);

    // per-camera dereddened flux and ivar: rtol 1e-8
    let cams = fx["cameras"].as_array().expect("cameras");
    assert_eq!(p.cameras.len(), cams.len());
    for (got, want) in p.cameras.iter().zip(cams) {
        assert_eq!(
            got.name.to_lowercase(),
            want["name"].as_str().expect("name").to_lowercase()
        );
        let idx = usizes(&want["idx"]);
        let rf = max_rel(&pick(&got.flux, &idx), &f64s(&want["flux"]), 1e-300);
        let ri = max_rel(&pick(&got.ivar, &idx), &f64s(&want["ivar"]), 1e-300);
        eprintln!(
            "{targetid} camera {}: max rel flux {rf:.2e} ivar {ri:.2e}",
            got.name
        );
        assert!(rf < 1e-8 && ri < 1e-8);
    }
    let camerapix: Vec<(usize, usize)> = fx["camerapix"]
        .as_array()
        .expect("camerapix")
        .iter()
        .map(|v| {
            (
                v[0].as_u64().expect("s") as usize,
                v[1].as_u64().expect("e") as usize,
            )
        })
        .collect();
    assert_eq!(p.camerapix, camerapix);

    // SNR_B/R/Z vs the reference FASTSPEC columns and FLUX_SYNTH_* vs SPECPHOT: rtol 1e-5
    let snr: Vec<f64> = p.snr.iter().map(|&s| s as f64).collect();
    let rs = max_rel(&snr, &f64s(&fx["ref_snr"]), 1e-30);
    let rsp = max_rel(&p.flux_synth_nmgy, &f64s(&fx["ref_synth"]), 1e-30);
    eprintln!("{targetid}: SNR max rel {rs:.2e}, FLUX_SYNTH max rel {rsp:.2e}");
    assert!(rs < 1e-5, "snr {snr:?} vs {:?}", fx["ref_snr"]);
    assert!(
        rsp < 1e-5,
        "synth {:?} vs {:?}",
        p.flux_synth_nmgy,
        fx["ref_synth"]
    );
    // the deconvolved matrices exist and have the raw shapes
    assert_eq!(p.coadd_res_deconv.len(), p.coadd_res.len());
    assert!(p
        .cameras
        .iter()
        .all(|c| c.res_deconv.len() == c.res.len() && c.res.len() == c.ndiag * c.flux.len()));
}

#[test]
fn prepare_matches_fastspecfit_80613() {
    check("coadd-4-80613-thru20210324.fits", 39633345008634465);
}

#[test]
fn prepare_matches_fastspecfit_27247() {
    check("coadd-special-dark-27247.fits", 39089837499744649);
}
