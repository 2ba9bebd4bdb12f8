//! Unit tests of the Prepare kernels on small synthetic cameras (the comparisons with
//! FastSpecFit on the real targets are in `tests/it/prepare.rs`).

use super::*;
use crate::kernels::mwdust::{Fitzpatrick99, RV_DEFAULT};

fn grid(a: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| a + 0.8 * i as f64).collect()
}

#[test]
fn layout_grid_offsets_and_overlaps() {
    let b = grid(3600.0, 10); // 3600 .. 3607.2
    let r = grid(3606.4, 10); // overlaps b on 3606.4, 3607.2
    let l = CoaddLayout::new(&[&b, &r]).unwrap();
    assert_eq!(l.npix(), 18);
    assert_eq!(l.start, vec![0, 8]);
    assert_eq!(l.sorted, vec![0, 1]);
    let ob: Vec<usize> = (0..10).filter(|&i| l.overlap[0][i]).collect();
    let or: Vec<usize> = (0..10).filter(|&i| l.overlap[1][i]).collect();
    assert_eq!(ob, vec![8, 9]);
    assert_eq!(or, vec![0, 1]);
    assert!(l.normalize[8] && l.normalize[9] && !l.normalize[7] && !l.normalize[10]);
    // cameras given red first are still placed by wavelength
    let l2 = CoaddLayout::new(&[&r, &b]).unwrap();
    assert_eq!(l2.sorted, vec![1, 0]);
    assert_eq!(l2.start, vec![8, 0]);
    // misaligned grid
    let bad = grid(3606.5, 10);
    assert!(CoaddLayout::new(&[&b, &bad]).is_err());
    assert!(CoaddLayout::new(&[]).is_err());
}

#[test]
fn coadd_weights_masks_and_resolution() {
    let b = grid(3600.0, 10);
    let r = grid(3606.4, 10);
    let l = CoaddLayout::new(&[&b, &r]).unwrap();
    let fb: Vec<f64> = (0..10).map(|i| 1.0 + i as f64).collect();
    let fr: Vec<f64> = (0..10).map(|i| 100.0 + i as f64).collect();
    let mut ib = vec![1.0; 10];
    let ir: Vec<f64> = (0..10).map(|i| 2.0 + i as f64).collect();
    ib[9] = 0.0;
    let mb = {
        let mut m = vec![0u32; 10];
        m[3] = 4;
        m[9] = 1;
        m
    };
    let mut mr = vec![0u32; 10];
    mr[1] = 2;
    let nd = 3;
    let resb: Vec<f64> = (0..nd * 10).map(|k| 0.1 + k as f64 * 0.01).collect();
    let resr: Vec<f64> = (0..nd * 10).map(|k| 0.5 + k as f64 * 0.02).collect();
    let mut ir2 = ir.clone();
    ir2[1] = 0.0;
    let cams = [
        CameraInput {
            flux: &fb,
            ivar: &ib,
            mask: &mb,
            ndiag: nd,
            res: &resb,
        },
        CameraInput {
            flux: &fr,
            ivar: &ir2,
            mask: &mr,
            ndiag: nd,
            res: &resr,
        },
    ];
    let c = coadd_cameras(&l, &cams).unwrap();
    // non-overlap: copies (mask cleared where ivar > 0)
    assert_eq!(c.flux[3], 4.0);
    assert_eq!(c.mask[3], 0);
    assert_eq!(c.flux[12], 104.0);
    // overlap pixel 8: b[8] (ivar 1) with r[0] (ivar 2)
    assert_eq!(c.flux[8], (1.0 * 9.0 + 2.0 * 100.0) / 3.0);
    assert_eq!(c.ivar[8], 3.0);
    // overlap pixel 9: both ivar 0 -> flux 0, mask OR kept
    assert_eq!(c.flux[9], 0.0);
    assert_eq!(c.ivar[9], 0.0);
    assert_eq!(c.mask[9], 1 | 2);
    // resolution at output 8, diagonal d: weights at (j + d - 1) mod n of each camera
    for d in 0..nd {
        let kb = (8 + d + 10 - 1) % 10;
        let kr = (d + 10 - 1) % 10;
        let (wb, wr) = (ib[kb], ir2[kr]);
        let num = wb * resb[d * 10 + 8] + wr * resr[d * 10];
        let want = if wb + wr == 0.0 { num } else { num / (wb + wr) };
        assert!((c.res[d * 18 + 8] - want).abs() < 1e-15, "d={d}");
        // non-overlap copies
        assert_eq!(c.res[d * 18 + 2], resb[d * 10 + 2]);
        assert_eq!(c.res[d * 18 + 15], resr[d * 10 + 7]);
    }
    // one camera: unchanged
    let l1 = CoaddLayout::new(&[&b]).unwrap();
    let c1 = coadd_cameras(&l1, &cams[..1]).unwrap();
    assert_eq!(c1.flux, fb);
    assert_eq!(c1.res, resb);
    // shape errors
    assert!(coadd_cameras(&l, &cams[..1]).is_err());
}

#[test]
fn camera_masking_floor_snr_and_drops() {
    let n = 20;
    let wave = grid(5000.0, n);
    let flux: Vec<f64> = (0..n).map(|i| 10.0 + i as f64).collect();
    let mut ivar = vec![4.0; n];
    ivar[7] = 1e-9; // below the clip: ivar -> 0
    let mut mask = vec![0u32; n];
    mask[10] = 8;
    let f99 = Fitzpatrick99::new(RV_DEFAULT);
    let out = prepare_camera(&wave, &flux, &ivar, &mask, 0.0, 0.01, &f99).unwrap();
    let CameraOutcome::Kept(p) = out else {
        panic!("dropped")
    };
    for i in 0..n {
        let masked = i < 3 || i >= n - 3 || i == 10;
        assert_eq!(p.mask[i], masked, "pixel {i}");
        if masked || i == 7 {
            assert_eq!(p.ivar[i], 0.0);
        } else {
            let want = 1.0 / ((0.01 * flux[i]) * (0.01 * flux[i]) + 0.25);
            assert!((p.ivar[i] - want).abs() < 1e-14);
        }
        assert!((p.flux[i] - flux[i]).abs() < 1e-12); // E(B-V) = 0
    }
    // 20 values, 8 zeros: median = mean of the 10th and 11th smallest
    let mut s: Vec<f64> = (0..n).map(|i| flux[i] * p.ivar[i].sqrt()).collect();
    s.sort_by(f64::total_cmp);
    assert_eq!(p.snr, ((s[9] + s[10]) / 2.0) as f32);
    // dereddening divides the flux and multiplies the ivar by T^2
    let CameraOutcome::Kept(q) =
        prepare_camera(&wave, &flux, &ivar, &mask, 0.1, 0.01, &f99).unwrap()
    else {
        panic!("dropped")
    };
    let t = flux[5] / q.flux[5];
    assert!(t < 1.0 && t > 0.5);
    assert!((q.ivar[5] / p.ivar[5] - t * t).abs() < 1e-12);
    assert_eq!(q.snr, p.snr);
    // drops
    let zero = vec![0.0; n];
    assert!(matches!(
        prepare_camera(&wave, &flux, &zero, &mask, 0.0, 0.01, &f99).unwrap(),
        CameraOutcome::Dropped(_)
    ));
    let allm = vec![1u32; n];
    assert!(matches!(
        prepare_camera(&wave, &flux, &ivar, &allm, 0.0, 0.01, &f99).unwrap(),
        CameraOutcome::Dropped(_)
    ));
    assert!(prepare_camera(&wave[1..], &flux, &ivar, &mask, 0.0, 0.01, &f99).is_err());
}
