//! QuasarNet / MgII afterburner redshift update for QSO targets (SPEC §1.3).
//!
//! For QSO-targeted rows whose QuasarNet classification is confident (max line confidence
//! above 0.95 for fuji/guadalupe/himalayas/iron, 0.99 for later productions, which also
//! replace ZWARN), Z becomes QuasarNet's Z_NEW. WISE_VAR_QSO secondary targets are updated
//! likewise when Redrock, MgII or QuasarNet call them QSOs.

use std::path::Path;

use super::fits::FitsReader;
use super::IoError;

const QN_LINES: [&str; 6] = ["C_LYA", "C_CIV", "C_CIII", "C_MgII", "C_Hbeta", "C_Halpha"];
/// QSO bit of DESI_TARGET (main, sv1, sv2, sv3): 2².
const QSO_BIT: i64 = 1 << 2;
/// WISE_VAR_QSO bit of SCND_TARGET (main, sv1, sv3): 2³⁵.
const WISE_VAR_QSO_BIT: i64 = 1 << 35;
/// CMX SV0_QSO (2¹²) and MINI_SV_QSO (2⁵⁵).
const CMX_QSO_BITS: i64 = (1 << 12) | (1 << 55);

fn col<'a>(t: &'a [(String, Vec<i64>)], name: &str) -> Option<&'a Vec<i64>> {
    t.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// Survey as desitarget's `main_cmx_or_sv` infers it: the first CMX/SV targeting column present.
fn survey_of(targeting: &[(String, Vec<i64>)]) -> String {
    targeting
        .iter()
        .find(|(n, _)| n.contains("SV") || n.contains("CMX"))
        .map(|(n, _)| n.split('_').next().unwrap_or("main").to_lowercase())
        .unwrap_or_else(|| "main".into())
}

/// Update `z` (and `zwarn` for new productions) in place. `rows` are the original file rows
/// of the selected targets, `targetid` their TARGETIDs, `targeting` the FIBERMAP targeting
/// columns of the selected rows.
///
/// # Errors
/// Unreadable afterburner files or rows that do not line up with the Redrock file.
#[allow(clippy::too_many_arguments)]
pub fn update_qso_redshifts(
    qn_path: &Path,
    mgii_path: &Path,
    rows: &[usize],
    targetid: &[i64],
    targeting: &[(String, Vec<i64>)],
    spectype: &[String],
    specprod: &str,
    z: &mut [f64],
    zwarn: &mut [i64],
) -> Result<(), IoError> {
    let n = rows.len();
    let old = matches!(specprod, "fuji" | "guadalupe" | "himalayas" | "iron");
    let thresh = if old { 0.95 } else { 0.99 };
    let survey = survey_of(targeting);
    let zeros = vec![0i64; n];
    let (iqso, iwise): (Vec<bool>, Vec<bool>) = if survey == "cmx" {
        let c = col(targeting, "CMX_TARGET").unwrap_or(&zeros);
        (
            c.iter().map(|v| v & CMX_QSO_BITS != 0).collect(),
            vec![false; n],
        )
    } else {
        let prefix = if survey == "main" {
            String::new()
        } else {
            format!("{}_", survey.to_uppercase())
        };
        let d = col(targeting, &format!("{prefix}DESI_TARGET")).unwrap_or(&zeros);
        let s = col(targeting, &format!("{prefix}SCND_TARGET")).unwrap_or(&zeros);
        let has_wise = survey != "sv2";
        (
            d.iter().map(|v| v & QSO_BIT != 0).collect(),
            s.iter()
                .map(|v| has_wise && v & WISE_VAR_QSO_BIT != 0)
                .collect(),
        )
    };
    if !iqso.iter().any(|&b| b) && !iwise.iter().any(|&b| b) {
        return Ok(());
    }
    let mut qn = FitsReader::open(qn_path)?;
    let tid_all: Vec<i64> = qn.col("QN_RR", "TARGETID")?;
    let znew_all: Vec<f64> = qn.col("QN_RR", "Z_NEW")?;
    let isqso_all: Vec<bool> = qn.col("QN_RR", "IS_QSO_QN_NEW_RR")?;
    let mut cmax_all = vec![f64::NEG_INFINITY; tid_all.len()];
    for l in QN_LINES {
        let c: Vec<f64> = qn.col("QN_RR", l)?;
        for (m, v) in cmax_all.iter_mut().zip(c) {
            *m = m.max(v);
        }
    }
    let zwarn_new_all: Option<Vec<i64>> = if old {
        None
    } else {
        Some(qn.col("QN_RR", "ZWARN_NEW")?)
    };
    let get = |i: usize| -> Result<usize, IoError> {
        let r = rows[i];
        if r >= tid_all.len() || tid_all[r] != targetid[i] {
            return Err(IoError::input(
                qn_path,
                format!("QN_RR row {r} does not match TARGETID {}", targetid[i]),
            ));
        }
        Ok(r)
    };
    let mut mgii: Option<Vec<bool>> = None;
    for i in 0..n {
        if !iqso[i] && !iwise[i] {
            continue;
        }
        let r = get(i)?;
        let qn099 = cmax_all[r] > thresh;
        let mut update = iqso[i] && isqso_all[r] && qn099;
        if !update && iwise[i] {
            if mgii.is_none() {
                let mut m = FitsReader::open(mgii_path)?;
                mgii = Some(m.col("MGII", "IS_QSO_MGII")?);
            }
            let is_mgii = mgii
                .as_ref()
                .and_then(|v| v.get(r).copied())
                .unwrap_or(false);
            update = (spectype[i] == "QSO" || is_mgii || qn099) && isqso_all[r] && qn099;
        }
        if update {
            z[i] = znew_all[r];
            if let Some(zw) = &zwarn_new_all {
                zwarn[i] = zw[r];
            }
        }
    }
    Ok(())
}
