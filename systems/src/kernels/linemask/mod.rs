//! The emission-line mask of the camera-coadded spectrum (SPEC.md §2.5; FastSpecFit's
//! `LineMasker.build_linemask`).

#[cfg(test)]
mod optimize_tests;
#[cfg(test)]
pub(crate) mod testdata;
