//! FASTSPEC, MORELINES and MODELS HDU assembly (SPEC §6.5, §6.6).
//!
//! Column names, order, types and units follow FastSpecFit 3.6.1. When the FASTSPEC table
//! would exceed FITS's 999-column limit (e.g. a line list with many more lines), the
//! per-line columns of the non-strong lines move to a MORELINES HDU headed by the
//! identification columns, as FastSpecFit does. Deviation: FastSpecFit orders the moved
//! lines by iterating a Python `set` (hash-randomised between runs); we keep line-table
//! order, so the layout is reproducible.

use fsf_components::fastspec::{ColumnKind, FastspecSchema, SpectralFit, MAX_FASTSPEC_COLUMNS};

use crate::io::fits::{Card, CardValue, ColData, OutColumn, OutHdu};
use crate::metadata::{build_metadata, FileMeta};
use crate::run::RunContext;

/// Identification columns at the head of FASTSPEC and MORELINES (in METADATA's order).
const ID_COLUMNS: [&str; 10] = [
    "TARGETID", "STACKID", "SURVEY", "PROGRAM", "UNIQPIX", "HEALPIX", "TILEID", "NIGHT", "FIBER",
    "EXPID",
];

fn id_columns(files: &[FileMeta], ctx: &RunContext) -> Vec<OutColumn> {
    build_metadata(files, &ctx.phot_cfg)
        .into_iter()
        .filter(|c| ID_COLUMNS.contains(&c.name.as_str()))
        .collect()
}

fn rows(files: &[FileMeta]) -> impl Iterator<Item = &SpectralFit> {
    files.iter().flat_map(|m| m.spectral.iter())
}

fn column(files: &[FileMeta], schema: &FastspecSchema, i: usize) -> OutColumn {
    let spec = &schema.columns[i];
    let data = match spec.kind {
        ColumnKind::F32 => ColData::F32(rows(files).map(|s| s.get(i) as f32).collect()),
        ColumnKind::I32 => ColData::I32(rows(files).map(|s| s.get(i) as i32).collect()),
        ColumnKind::Bool => ColData::Bool(rows(files).map(|s| s.get(i) != 0.0).collect()),
    };
    match spec.unit {
        Some(u) => OutColumn::with_unit(spec.name.clone(), u, data),
        None => OutColumn::new(spec.name.clone(), data),
    }
}

/// The FASTSPEC HDU, plus MORELINES when the columns exceed the FITS limit.
pub fn fastspec_hdus(files: &[FileMeta], ctx: &RunContext, schema: &FastspecSchema) -> Vec<OutHdu> {
    let ids = id_columns(files, ctx);
    let total = ids.len() + schema.len();
    let spill = total > MAX_FASTSPEC_COLUMNS;
    let moved = |i: usize| -> bool {
        spill
            && schema.columns[i]
                .line
                .is_some_and(|j| !schema.strong.get(j).copied().unwrap_or(true))
    };
    let mut main = ids.clone();
    let mut more = ids;
    let mut nmoved = 0;
    for i in 0..schema.len() {
        if moved(i) {
            more.push(column(files, schema, i));
            nmoved += 1;
        } else {
            main.push(column(files, schema, i));
        }
    }
    let mut hdus = vec![OutHdu::Table {
        extname: "FASTSPEC".into(),
        columns: main,
        cards: vec![],
    }];
    if nmoved > 0 {
        tracing::info!(
            columns = total,
            moved = nmoved,
            "FASTSPEC exceeds {MAX_FASTSPEC_COLUMNS} columns; weak-line columns go to MORELINES"
        );
        hdus.push(OutHdu::Table {
            extname: "MORELINES".into(),
            columns: more,
            cards: vec![],
        });
    }
    hdus
}

/// The MODELS image `[nobj, 3, nwave]` (CONTINUUM, SMOOTHCONTINUUM, EMLINEMODEL) with
/// FastSpecFit's header cards. Targets without models get zeros.
pub fn models_hdu(files: &[FileMeta]) -> Option<OutHdu> {
    let first = rows(files).find(|s| !s.models[0].is_empty())?;
    let nwave = first.models[0].len();
    let (wave0, dwave) = (first.models_wave0, first.models_dwave);
    let nobj = rows(files).count();
    let mut data = vec![0f32; nobj * 3 * nwave];
    for (k, s) in rows(files).enumerate() {
        for (r, m) in s.models.iter().enumerate() {
            if m.len() == nwave {
                let o = (k * 3 + r) * nwave;
                data[o..o + nwave].copy_from_slice(m);
            }
        }
    }
    let cards = vec![
        Card::new(
            "BUNIT",
            CardValue::Str("10**-17 erg/(s cm2 Angstrom)".into()),
            "flux unit",
        ),
        Card::new(
            "CUNIT1",
            CardValue::Str("Angstrom".into()),
            "wavelength unit",
        ),
        Card::new("CTYPE1", CardValue::Str("WAVE".into()), "type of axis"),
        Card::new(
            "CRVAL1",
            CardValue::Float(wave0),
            "wavelength of pixel CRPIX1 (Angstrom)",
        ),
        Card::new(
            "CRPIX1",
            CardValue::Int(0),
            "0-indexed pixel number corresponding to CRVAL1",
        ),
        Card::new("CDELT1", CardValue::Float(dwave), "pixel size (Angstrom)"),
        Card::new("DC-FLAG", CardValue::Int(0), "0 = linear wavelength vector"),
        Card::new(
            "AIRORVAC",
            CardValue::Str("vac".into()),
            "wavelengths in vacuum (vac)",
        ),
    ];
    Some(OutHdu::ImageF32 {
        extname: "MODELS".into(),
        shape: vec![nobj, 3, nwave],
        data,
        cards,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize) -> Vec<(String, bool)> {
        (0..n).map(|j| (format!("l{j}"), j % 2 == 0)).collect()
    }

    #[test]
    fn schema_layout_follows_fastspecfit() {
        let cams: Vec<String> = ["b", "r", "z"].iter().map(|s| s.to_string()).collect();
        let bands: Vec<String> = ["g", "r", "z"].iter().map(|s| s.to_string()).collect();
        let s = FastspecSchema::new(&cams, &bands, &lines(3));
        assert_eq!(s.columns[0].name, "SNR_B");
        assert_eq!(s.columns[3].name, "SMOOTHCORR_B");
        assert_eq!(
            s.index("INIT_BALMER_BROAD").map(|i| s.columns[i].kind),
            Some(ColumnKind::Bool)
        );
        assert_eq!(s.columns[s.line_column(1, 17)].name, "L1_NPIX");
        assert_eq!(s.columns[s.line_column(1, 17)].kind, ColumnKind::I32);
        assert_eq!(
            s.columns.last().map(|c| c.name.as_str()),
            Some("OIII_5007_MOMENT3_IVAR")
        );
        // SNR, SMOOTHCORR, APERCORR, INIT, DELTA, doublets, 3 lines, moments.
        assert_eq!(s.len(), 3 + 3 + 4 + 7 + 4 + 12 + 3 * 18 + 24);
    }
}
