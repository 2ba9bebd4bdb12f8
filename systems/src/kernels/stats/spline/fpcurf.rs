//! FITPACK `fpcurf` (knot placement and smoothing-parameter iteration) and
//! scipy's two-pass driver (`fpcurf0`, then `fpcurf1` when nest was too small).

use super::{fpback, fpbspl, fpdisc, fpgivs, fpknot, fprati, fprota, SmoothingSpline, Work, W};

/// Where control goes next (the Fortran labels that are jumped to).
enum Label {
    /// 10: interpolating-spline knots, then 60.
    Interp,
    /// 60: the knot-adding iteration.
    Knots,
    /// 250: the smoothing-parameter iteration.
    Smooth,
}

/// Inputs of one `fpcurf` call.
struct Data<'a> {
    x: &'a [f64],
    y: &'a [f64],
    w: &'a [f64],
    k: usize,
    s: f64,
    nest: usize,
}

/// Fit as `UnivariateSpline(x, y, w, k, s)` does.
pub(super) fn fit(sp: &mut SmoothingSpline, x: &[f64], y: &[f64], w: &[f64], k: usize, s: f64) {
    let m = x.len();
    let k1 = k + 1;
    let nest_max = m + k + 1;
    let nest0 = if s == 0.0 {
        m + k + 1
    } else {
        (m / 2).max(2 * k1)
    };
    sp.k = k;
    sp.t.clear();
    sp.t.resize(nest_max + 1, 0.0);
    sp.c.clear();
    sp.c.resize(nest_max + 1, 0.0);
    let wk = &mut sp.work;
    for v in [&mut wk.fpint, &mut wk.z] {
        v.clear();
        v.resize(nest_max + 1, 0.0);
    }
    wk.nrdata.clear();
    wk.nrdata.resize(nest_max + 1, 0);
    for v in [&mut wk.a, &mut wk.b, &mut wk.g] {
        v.clear();
        v.resize((nest_max + 1) * W, 0.0);
    }
    wk.q.clear();
    wk.q.resize((m + 1) * W, 0.0);
    sp.ier = 0;
    sp.n = 0;
    let mut d = Data {
        x,
        y,
        w,
        k,
        s,
        nest: nest0,
    };
    fpcurf(0, &d, sp);
    if sp.ier == 1 {
        d.nest = nest_max;
        fpcurf(1, &d, sp);
    }
}

/// FITPACK `fpcurf` with tol = 0.001, maxit = 20.
fn fpcurf(iopt: i32, d: &Data<'_>, sp: &mut SmoothingSpline) {
    let Data {
        x,
        y,
        w,
        k,
        s,
        nest,
    } = *d;
    let SmoothingSpline {
        n,
        t,
        c,
        fp,
        ier,
        work,
        ..
    } = sp;
    let Work {
        fpint,
        nrdata,
        z,
        a,
        b,
        g,
        q,
    } = work;
    let m = x.len();
    let (xb, xe) = (x[0], x[m - 1]);
    let (tol, maxit) = (0.001, 20);
    let k1 = k + 1;
    let k2 = k + 2;
    let (con1, con9, con4, half) = (0.1, 0.9, 0.04, 0.5);
    let nmin = 2 * k1;
    let acc = tol * s;
    let nmax = m + k1;
    let mut h = [0.0f64; 21];
    let (mut fp0, mut fpold, mut nplus, mut fpms) = (0.0f64, 0.0f64, 0i64, 0.0f64);
    let mut label;
    if s > 0.0 {
        let mut restart = true;
        if iopt != 0 && *n != nmin {
            fp0 = fpint[*n];
            fpold = fpint[*n - 1];
            nplus = nrdata[*n];
            restart = fp0 <= s;
        }
        if restart {
            *n = nmin;
            fpold = 0.0;
            nplus = 0;
            nrdata[1] = m as i64 - 2;
        }
        label = Label::Knots;
    } else {
        *n = nmax;
        if nmax > nest {
            *ier = 1;
            return;
        }
        label = Label::Interp;
    }
    loop {
        match label {
            Label::Interp => {
                let mk1 = m - k1;
                if mk1 != 0 {
                    let k3 = k / 2;
                    let mut i = k2;
                    let mut j = k3 + 2;
                    for _ in 1..=mk1 {
                        t[i] = if k3 * 2 == k {
                            (x[j - 1] + x[j - 2]) * half
                        } else {
                            x[j - 1]
                        };
                        i += 1;
                        j += 1;
                    }
                }
                label = Label::Knots;
            }
            Label::Knots => {
                label = Label::Smooth;
                'iter: for _iter in 1..=m {
                    if *n == nmin {
                        *ier = -2;
                    }
                    let mut nrint = *n - nmin + 1;
                    let nk1 = *n - k1;
                    let mut i = *n;
                    for j in 1..=k1 {
                        t[j] = xb;
                        t[i] = xe;
                        i -= 1;
                    }
                    *fp = 0.0;
                    for i in 1..=nk1 {
                        z[i] = 0.0;
                        for j in 1..=k1 {
                            a[i * W + j] = 0.0;
                        }
                    }
                    let mut l = k1;
                    for it in 1..=m {
                        let xi = x[it - 1];
                        let wi = w[it - 1];
                        let mut yi = y[it - 1] * wi;
                        while !(xi < t[l + 1] || l == nk1) {
                            l += 1;
                        }
                        fpbspl(t, k, xi, l, &mut h);
                        for i in 1..=k1 {
                            q[it * W + i] = h[i];
                            h[i] *= wi;
                        }
                        let mut j = l - k1;
                        for i in 1..=k1 {
                            j += 1;
                            let piv = h[i];
                            if piv == 0.0 {
                                continue;
                            }
                            let (cos, sin) = fpgivs(piv, &mut a[j * W + 1]);
                            fprota(cos, sin, &mut yi, &mut z[j]);
                            if i == k1 {
                                break;
                            }
                            let mut i2 = 1;
                            for i1 in i + 1..=k1 {
                                i2 += 1;
                                let mut hv = h[i1];
                                fprota(cos, sin, &mut hv, &mut a[j * W + i2]);
                                h[i1] = hv;
                            }
                        }
                        *fp += yi * yi;
                    }
                    if *ier == -2 {
                        fp0 = *fp;
                    }
                    fpint[*n] = fp0;
                    fpint[*n - 1] = fpold;
                    nrdata[*n] = nplus;
                    c[1..=nk1].copy_from_slice(&z[1..=nk1]);
                    fpback(a, c, nk1, k1);
                    fpms = *fp - s;
                    if fpms.abs() < acc {
                        return;
                    }
                    if fpms < 0.0 {
                        break 'iter;
                    }
                    if *n == nmax {
                        *ier = -1;
                        return;
                    }
                    if *n == nest {
                        *ier = 1;
                        return;
                    }
                    if *ier == 0 {
                        let mut npl1 = nplus * 2;
                        let rn = nplus as f64;
                        if fpold - *fp > acc {
                            npl1 = (rn * fpms / (fpold - *fp)) as i64;
                        }
                        nplus = (nplus * 2).min(npl1.max(nplus / 2).max(1));
                    } else {
                        nplus = 1;
                        *ier = 0;
                    }
                    fpold = *fp;
                    // Residual sums per knot interval.
                    let mut fpart = 0.0;
                    let mut i = 1;
                    let mut l = k2;
                    let mut new = false;
                    for it in 1..=m {
                        if !(x[it - 1] < t[l] || l > nk1) {
                            new = true;
                            l += 1;
                        }
                        let mut term = 0.0;
                        let mut l0 = l - k2;
                        for j in 1..=k1 {
                            l0 += 1;
                            term += c[l0] * q[it * W + j];
                        }
                        let r = w[it - 1] * (term - y[it - 1]);
                        term = r * r;
                        fpart += term;
                        if new {
                            let store = term * half;
                            fpint[i] = fpart - store;
                            i += 1;
                            fpart = store;
                            new = false;
                        }
                    }
                    fpint[nrint] = fpart;
                    for _ in 1..=nplus {
                        fpknot(x, t, n, fpint, nrdata, &mut nrint, 1);
                        if *n == nmax {
                            label = Label::Interp;
                            break 'iter;
                        }
                        if *n == nest {
                            continue 'iter;
                        }
                    }
                }
            }
            Label::Smooth => {
                if *ier == -2 {
                    return;
                }
                let nk1 = *n - k1;
                fpdisc(t, *n, k2, b);
                let mut p1 = 0.0;
                let mut f1 = fp0 - s;
                let mut p3 = -1.0;
                let mut f3 = fpms;
                let mut p = 0.0;
                for i in 1..=nk1 {
                    p += a[i * W + 1];
                }
                let rn = nk1 as f64;
                p = rn / p;
                let mut ich1 = false;
                let mut ich3 = false;
                let n8 = *n - nmin;
                for iter in 1..=maxit {
                    let pinv = 1.0 / p;
                    for i in 1..=nk1 {
                        c[i] = z[i];
                        g[i * W + k2] = 0.0;
                        for j in 1..=k1 {
                            g[i * W + j] = a[i * W + j];
                        }
                    }
                    for it in 1..=n8 {
                        for i in 1..=k2 {
                            h[i] = b[it * W + i] * pinv;
                        }
                        let mut yi = 0.0;
                        for j in it..=nk1 {
                            let piv = h[1];
                            let (cos, sin) = fpgivs(piv, &mut g[j * W + 1]);
                            fprota(cos, sin, &mut yi, &mut c[j]);
                            if j == nk1 {
                                break;
                            }
                            let i2 = if j > n8 { nk1 - j } else { k1 };
                            for i in 1..=i2 {
                                let i1 = i + 1;
                                let mut hv = h[i1];
                                fprota(cos, sin, &mut hv, &mut g[j * W + i1]);
                                h[i1] = hv;
                                h[i] = h[i1];
                            }
                            h[i2 + 1] = 0.0;
                        }
                    }
                    fpback(g, c, nk1, k2);
                    *fp = 0.0;
                    let mut l = k2;
                    for it in 1..=m {
                        if !(x[it - 1] < t[l] || l > nk1) {
                            l += 1;
                        }
                        let mut l0 = l - k2;
                        let mut term = 0.0;
                        for j in 1..=k1 {
                            l0 += 1;
                            term += c[l0] * q[it * W + j];
                        }
                        let r = w[it - 1] * (term - y[it - 1]);
                        *fp += r * r;
                    }
                    fpms = *fp - s;
                    if fpms.abs() < acc {
                        return;
                    }
                    if iter == maxit {
                        break;
                    }
                    let p2 = p;
                    let f2 = fpms;
                    if !ich3 {
                        if (f2 - f3) > acc {
                            if f2 < 0.0 {
                                ich3 = true;
                            }
                        } else {
                            p3 = p2;
                            f3 = f2;
                            p *= con4;
                            if p <= p1 {
                                p = p1 * con9 + p2 * con1;
                            }
                            continue;
                        }
                    }
                    if !ich1 {
                        if (f1 - f2) > acc {
                            if f2 > 0.0 {
                                ich1 = true;
                            }
                        } else {
                            p1 = p2;
                            f1 = f2;
                            p /= con4;
                            if p3 >= 0.0 && p >= p3 {
                                p = p2 * con1 + p3 * con9;
                            }
                            continue;
                        }
                    }
                    if f2 >= f1 || f2 <= f3 {
                        *ier = 2;
                        return;
                    }
                    p = fprati(&mut p1, &mut f1, p2, f2, &mut p3, &mut f3);
                }
                *ier = 3;
                return;
            }
        }
    }
}
