//! PNG writing, thumbnails, and the static HTML report (inline CSS and SVG, relative links,
//! no external resources, no server).

use std::fmt::Write as _;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use anyhow::Context;

/// Write an RGB buffer as an 8-bit PNG.
///
/// # Errors
/// I/O or encoder failures, or a buffer of the wrong size.
pub fn write_png(path: &Path, rgb: &[u8], width: u32, height: u32) -> anyhow::Result<()> {
    anyhow::ensure!(
        rgb.len() == (width * height * 3) as usize,
        "RGB buffer of {} bytes for {width}x{height}",
        rgb.len()
    );
    let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut enc = png::Encoder::new(BufWriter::new(f), width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc
        .write_header()
        .with_context(|| format!("cannot write {}", path.display()))?;
    w.write_image_data(rgb)
        .with_context(|| format!("cannot write {}", path.display()))?;
    w.finish()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Box-average an RGB image down by the integer factor `k` (≥ 1).
pub fn downsample(rgb: &[u8], width: u32, height: u32, k: u32) -> (Vec<u8>, u32, u32) {
    let k = k.max(1);
    let (w2, h2) = ((width / k).max(1), (height / k).max(1));
    let mut out = vec![0u8; (w2 * h2 * 3) as usize];
    for y in 0..h2 {
        for x in 0..w2 {
            let mut acc = [0u32; 3];
            let mut n = 0u32;
            for yy in y * k..((y + 1) * k).min(height) {
                for xx in x * k..((x + 1) * k).min(width) {
                    let o = ((yy * width + xx) * 3) as usize;
                    for c in 0..3 {
                        acc[c] += rgb[o + c] as u32;
                    }
                    n += 1;
                }
            }
            let o = ((y * w2 + x) * 3) as usize;
            for c in 0..3 {
                out[o + c] = (acc[c] / n.max(1)) as u8;
            }
        }
    }
    (out, w2, h2)
}

/// One per-system row of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRow {
    /// System (span) name.
    pub name: String,
    /// Number of calls.
    pub calls: u64,
    /// Total busy time, s.
    pub seconds: f64,
}

/// Parse a per-system profile: the table printed by `--profile` (`src/profile.rs`; it may be
/// embedded in a log, e.g. `2> run.log`), or a TSV of `name<TAB>seconds[<TAB>calls]` lines.
/// The `wall` row is returned separately.
///
/// # Errors
/// No profile row found.
pub fn parse_profile(text: &str) -> anyhow::Result<(Vec<ProfileRow>, Option<f64>)> {
    let mut rows = Vec::new();
    let mut wall = None;
    let mut in_table = false;
    for line in text.lines() {
        let l = line.trim_end();
        let toks: Vec<&str> = l.split_whitespace().collect();
        if toks.first() == Some(&"system") && l.contains("calls") && l.contains("total") {
            in_table = true;
            rows.clear();
            continue;
        }
        if in_table {
            if toks.first() == Some(&"wall") {
                wall = toks.get(1).and_then(|s| s.parse::<f64>().ok());
                in_table = false;
                continue;
            }
            // name calls total per-target %wall
            if toks.len() >= 5 {
                let n = toks.len();
                if let (Ok(calls), Ok(sec)) =
                    (toks[n - 4].parse::<u64>(), toks[n - 3].parse::<f64>())
                {
                    rows.push(ProfileRow {
                        name: toks[..n - 4].join(" "),
                        calls,
                        seconds: sec,
                    });
                    continue;
                }
            }
            in_table = false;
        }
    }
    if rows.is_empty() {
        // TSV fallback.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() >= 2 {
                if let Ok(s) = f[1].trim().parse::<f64>() {
                    let name = f[0].trim().to_string();
                    if name == "wall" {
                        wall = Some(s);
                        continue;
                    }
                    rows.push(ProfileRow {
                        name,
                        calls: f.get(2).and_then(|c| c.trim().parse().ok()).unwrap_or(0),
                        seconds: s,
                    });
                }
            }
        }
    }
    anyhow::ensure!(!rows.is_empty(), "no per-system profile rows found");
    rows.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    Ok((rows, wall))
}

/// HTML-escape text.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An inline SVG histogram of `values` (finite ones) with `nbins` bins.
pub fn svg_histogram(title: &str, values: &[f64], nbins: usize, log10: bool) -> String {
    let v: Vec<f64> = values
        .iter()
        .filter(|x| x.is_finite() && (!log10 || **x > 0.0))
        .map(|x| if log10 { x.log10() } else { *x })
        .collect();
    let (w, h, ml, mb, mt) = (340.0, 220.0, 40.0, 40.0, 28.0);
    let mut s = format!(
        r#"<svg class="hist" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}"><text x="{}" y="18" text-anchor="middle" class="t">{} (N={})</text>"#,
        w / 2.0,
        esc(title),
        v.len()
    );
    if v.is_empty() {
        s.push_str(r#"<text x="170" y="120" text-anchor="middle">no data</text></svg>"#);
        return s;
    }
    let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let mut hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if hi <= lo {
        hi = lo + 1.0;
    }
    let nb = nbins.max(1);
    let mut counts = vec![0usize; nb];
    for x in &v {
        let i = (((x - lo) / (hi - lo)) * nb as f64).floor() as usize;
        counts[i.min(nb - 1)] += 1;
    }
    let cmax = *counts.iter().max().unwrap_or(&1) as f64;
    let (pw, ph) = (w - ml - 10.0, h - mb - mt);
    let bw = pw / nb as f64;
    for (i, c) in counts.iter().enumerate() {
        let bh = ph * (*c as f64) / cmax;
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#468fcc" stroke="#003f91"/>"##,
            ml + bw * i as f64,
            mt + ph - bh,
            (bw - 1.0).max(0.5),
            bh
        );
    }
    let fmt = |x: f64| {
        if log10 {
            format!("{:.3}", 10f64.powf(x))
        } else if x.abs() >= 100.0 {
            format!("{x:.0}")
        } else {
            format!("{x:.2}")
        }
    };
    let _ = write!(
        s,
        r##"<line x1="{ml}" y1="{y}" x2="{x2}" y2="{y}" stroke="#000"/><text x="{ml}" y="{ty}" class="a">{}</text><text x="{x2}" y="{ty}" text-anchor="end" class="a">{}</text><text x="{tx}" y="{ty2}" text-anchor="middle" class="a">{}</text><text x="{}" y="{}" text-anchor="end" class="a">{}</text></svg>"##,
        fmt(lo),
        fmt(hi),
        if log10 { "(log scale)" } else { "" },
        ml - 4.0,
        mt + 10.0,
        cmax as usize,
        y = mt + ph,
        x2 = ml + pw,
        ty = mt + ph + 16.0,
        tx = ml + pw / 2.0,
        ty2 = mt + ph + 32.0,
    );
    s
}

/// An inline SVG horizontal bar chart of the per-system profile.
pub fn svg_profile(rows: &[ProfileRow], wall: Option<f64>) -> String {
    let n = rows.len();
    let (w, bh, ml) = (900.0, 22.0, 260.0);
    let h = 40.0 + bh * n as f64 + 20.0;
    let total = wall.unwrap_or_else(|| rows.iter().map(|r| r.seconds).sum::<f64>());
    let smax = rows
        .iter()
        .map(|r| r.seconds)
        .fold(0.0, f64::max)
        .max(1e-12);
    let mut s = format!(
        r#"<svg class="prof" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}"><text x="{}" y="20" text-anchor="middle" class="t">busy time per system (s){}</text>"#,
        w / 2.0,
        wall.map(|x| format!("; wall {x:.2} s")).unwrap_or_default()
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 34.0 + bh * i as f64;
        let bw = (w - ml - 150.0) * r.seconds / smax;
        let _ = write!(
            s,
            r##"<text x="{}" y="{:.1}" text-anchor="end" class="a">{}</text><rect x="{ml}" y="{y:.1}" width="{bw:.1}" height="{:.1}" fill="#4caf81" stroke="#007f5f"/><text x="{:.1}" y="{:.1}" class="a">{:.4} s ({:.1}%, {} calls)</text>"##,
            ml - 6.0,
            y + bh * 0.7,
            esc(&r.name),
            bh - 4.0,
            ml + bw + 6.0,
            y + bh * 0.7,
            r.seconds,
            100.0 * r.seconds / total.max(1e-12),
            r.calls
        );
    }
    s.push_str("</svg>");
    s
}

/// One row of the report's target table.
#[derive(Debug, Clone)]
pub struct ReportRow {
    /// PNG file name (relative to the report).
    pub png: String,
    /// Thumbnail file name (relative to the report).
    pub thumb: String,
    /// The output file the target came from.
    pub source: String,
    /// (column header, value) cells after the thumbnail.
    pub cells: Vec<(String, String)>,
}

/// Everything the report shows.
#[derive(Debug, Clone, Default)]
pub struct ReportData {
    /// Title line.
    pub title: String,
    /// Input files and settings, one line each.
    pub inputs: Vec<String>,
    /// Target rows.
    pub rows: Vec<ReportRow>,
    /// (title, inline SVG) of the summary distributions.
    pub histograms: Vec<(String, String)>,
    /// The profile chart (inline SVG), if a profile was given.
    pub profile_svg: Option<String>,
}

const CSS: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}h1{font-size:1.5em}\
h2{font-size:1.2em;margin-top:1.5em}table{border-collapse:collapse}\
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;font-size:0.9em}\
th{background:#eee;cursor:pointer}td.l{text-align:left}img.thumb{display:block;width:300px}\
.hists{display:flex;flex-wrap:wrap;gap:12px}svg .t{font-size:13px;font-weight:bold}\
svg .a{font-size:11px}svg text{font-family:sans-serif}ul.in{font-size:0.85em}";

/// A tiny table sorter (click a header) and a check, on load, that every figure and thumbnail
/// loaded (a missing one is reported on the browser console); no external script.
const JS: &str = "window.addEventListener('load',function(){document.querySelectorAll('img')\
.forEach(function(i){if(!i.complete||i.naturalWidth===0){\
console.error('image failed to load: '+i.getAttribute('src'));}});});\
document.querySelectorAll('table.targets th').forEach(function(th,i){\
th.addEventListener('click',function(){var tb=th.closest('table').tBodies[0];\
var rows=Array.prototype.slice.call(tb.rows);var asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';\
rows.sort(function(a,b){var x=a.cells[i].textContent,y=b.cells[i].textContent;\
var fx=parseFloat(x),fy=parseFloat(y);var c=(isNaN(fx)||isNaN(fy))?x.localeCompare(y):fx-fy;\
return asc?c:-c;});rows.forEach(function(r){tb.appendChild(r);});});});";

/// The report as one self-contained HTML document.
pub fn render_html(d: &ReportData) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{CSS}</style></head><body>\n<h1>{}</h1>\n<ul class=\"in\">",
        esc(&d.title),
        esc(&d.title)
    );
    for l in &d.inputs {
        let _ = write!(s, "<li>{}</li>", esc(l));
    }
    s.push_str("</ul>\n<h2>Summary distributions</h2>\n<div class=\"hists\">");
    for (_, svg) in &d.histograms {
        s.push_str(svg);
    }
    s.push_str("</div>\n");
    if let Some(p) = &d.profile_svg {
        s.push_str("<h2>Per-system profile</h2>\n");
        s.push_str(p);
        s.push('\n');
    }
    let _ = write!(
        s,
        "<h2>Targets ({})</h2>\n<table class=\"targets\"><thead><tr><th>figure</th>",
        d.rows.len()
    );
    if let Some(r0) = d.rows.first() {
        for (h, _) in &r0.cells {
            let _ = write!(s, "<th>{}</th>", esc(h));
        }
    }
    s.push_str("<th>file</th></tr></thead><tbody>\n");
    for r in &d.rows {
        let _ = write!(
            s,
            "<tr><td class=\"l\"><a href=\"{}\"><img class=\"thumb\" src=\"{}\" alt=\"{}\"></a></td>",
            esc(&r.png),
            esc(&r.thumb),
            esc(&r.png)
        );
        for (_, v) in &r.cells {
            let _ = write!(s, "<td>{}</td>", esc(v));
        }
        let _ = writeln!(s, "<td class=\"l\">{}</td></tr>", esc(&r.source));
    }
    let _ = write!(
        s,
        "</tbody></table>\n<script>{JS}</script>\n</body></html>\n"
    );
    s
}
