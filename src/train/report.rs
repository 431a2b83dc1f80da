//! `dbl report RUN`: draws each branch's training loss (per logged step) and
//! dev rSum (per evaluation) from `RUN/branch{k}/metrics.jsonl` into
//! `RUN/report/{loss,rsum}.{png,svg}` with `plotters` (bitmap + SVG backends
//! only). No text is drawn, so no font is needed: axes are a plain frame, and
//! the branch → colour legend plus each curve's range is returned for printing.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::train::metrics_log::read_records;

/// Line colours, branch k uses `COLORS[k % len]`.
pub const COLORS: [(&str, RGBColor); 6] = [
    ("blue", RGBColor(31, 119, 180)),
    ("orange", RGBColor(255, 127, 14)),
    ("green", RGBColor(44, 160, 44)),
    ("red", RGBColor(214, 39, 40)),
    ("purple", RGBColor(148, 103, 189)),
    ("brown", RGBColor(140, 86, 75)),
];

/// One curve: branch index and (x, y) points.
#[derive(Debug, Clone)]
pub struct Curve {
    /// Branch index.
    pub branch: usize,
    /// Points in x order.
    pub points: Vec<(f64, f64)>,
}

/// What `report` wrote.
#[derive(Debug, Clone)]
pub struct Report {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Loss curves (x = step within the stage series, y = loss).
    pub loss: Vec<Curve>,
    /// Dev rSum curves (x = evaluation number, y = rSum).
    pub rsum: Vec<Curve>,
}

/// Reads the curves of every `branch{k}` of `run`.
pub fn read_curves(run: &Path) -> Result<(Vec<Curve>, Vec<Curve>), String> {
    let mut loss = Vec::new();
    let mut rsum = Vec::new();
    for k in 0.. {
        let path = run.join(format!("branch{k}")).join("metrics.jsonl");
        if !path.is_file() {
            if k == 0 {
                return Err(format!(
                    "{}: no metrics (is this a run folder?)",
                    path.display()
                ));
            }
            break;
        }
        let recs = read_records(&path)?;
        let mut l = Vec::new();
        let mut r = Vec::new();
        for rec in &recs {
            match rec["kind"].as_str() {
                Some("step") => {
                    if let Some(y) = rec["loss"].as_f64() {
                        l.push((l.len() as f64, y));
                    }
                }
                Some("eval") => {
                    if let Some(y) = rec["dev"]["rsum"].as_f64() {
                        r.push((r.len() as f64 + 1.0, y));
                    }
                }
                _ => {}
            }
        }
        loss.push(Curve {
            branch: k,
            points: l,
        });
        rsum.push(Curve {
            branch: k,
            points: r,
        });
    }
    Ok((loss, rsum))
}

fn bounds(curves: &[Curve]) -> ((f64, f64), (f64, f64)) {
    let pts = curves.iter().flat_map(|c| c.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        if y.is_finite() {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if x0 > x1 {
        return ((0.0, 1.0), (0.0, 1.0));
    }
    if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    ((x0, x1), (y0 - pad, y1 + pad))
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, curves: &[Curve]) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    let ((x0, x1), (y0, y1)) = bounds(curves);
    let mut chart = ChartBuilder::on(&root)
        .margin(20)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(e)?;
    chart
        .plotting_area()
        .draw(&Rectangle::new([(x0, y0), (x1, y1)], BLACK.stroke_width(1)))
        .map_err(e)?;
    for c in curves {
        let color = COLORS[c.branch % COLORS.len()].1;
        let pts: Vec<(f64, f64)> = c
            .points
            .iter()
            .copied()
            .filter(|p| p.1.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(e)?;
        if pts.len() == 1 {
            chart
                .draw_series(std::iter::once(Circle::new(pts[0], 4, color.filled())))
                .map_err(e)?;
        }
    }
    root.present().map_err(e)
}

/// Writes `RUN/report/{loss,rsum}.{png,svg}`.
pub fn report(run: &Path) -> Result<Report, String> {
    let (loss, rsum) = read_curves(run)?;
    let dir = run.join("report");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for (name, curves) in [("loss", &loss), ("rsum", &rsum)] {
        let png = dir.join(format!("{name}.png"));
        draw(
            BitMapBackend::new(&png, (800, 500)).into_drawing_area(),
            curves,
        )
        .map_err(|m| format!("{}: {m}", png.display()))?;
        let svg = dir.join(format!("{name}.svg"));
        draw(
            SVGBackend::new(&svg, (800, 500)).into_drawing_area(),
            curves,
        )
        .map_err(|m| format!("{}: {m}", svg.display()))?;
        files.push(png);
        files.push(svg);
    }
    Ok(Report { files, loss, rsum })
}
