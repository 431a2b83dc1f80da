//! Line charts: one curve per named series (e.g. training loss per step, dev
//! rSum per epoch, one series per branch), with title, axis labels, tick
//! labels and a legend. A series of one point is drawn as a dot.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::font::FAMILY;
use super::grid::Panel;
use super::{COLORS, PlotError, draw_err, write_both};

/// One curve.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// Points in x order; non-finite y values are skipped.
    pub points: Vec<(f64, f64)>,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct LineChart {
    /// Title above the plot.
    pub title: String,
    /// x axis label with its unit, e.g. "epoch".
    pub x_label: String,
    /// y axis label with its unit, e.g. "dev rSum (of 600)".
    pub y_label: String,
    /// Curves; series i is drawn in `COLORS[i % len]`.
    pub series: Vec<Series>,
    /// x is a count (epochs, steps): tick labels only at whole numbers.
    pub x_integer: bool,
}

/// ((x0, x1), (y0, y1)) covering every finite point, padded 5 % in y.
fn bounds(series: &[Series]) -> ((f64, f64), (f64, f64)) {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in series.iter().flat_map(|s| s.points.iter()) {
        if x.is_finite() && y.is_finite() {
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
        (x0, x1) = (x0 - 0.5, x1 + 0.5);
    }
    let pad = ((y1 - y0) * 0.05).max(1e-3 * y1.abs().max(1.0));
    ((x0, x1), (y0 - pad, y1 + pad))
}

impl Panel for LineChart {
    fn draw_panel<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(draw_err)?;
        let ((x0, x1), (y0, y1)) = bounds(&self.series);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FAMILY, 22))
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(draw_err)?;
        let whole = |x: &f64| {
            if !self.x_integer {
                format!("{x}")
            } else if (x - x.round()).abs() < 1e-9 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .x_label_formatter(&whole)
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 16))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(draw_err)?;
        for (i, s) in self.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()].1;
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .collect();
            let legend = move |(x, y): (i32, i32)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            };
            if pts.len() == 1 {
                chart
                    .draw_series(std::iter::once(Circle::new(pts[0], 4, color.filled())))
                    .map_err(draw_err)?
                    .label(s.name.as_str())
                    .legend(legend);
            } else {
                chart
                    .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                    .map_err(draw_err)?
                    .label(s.name.as_str())
                    .legend(legend);
            }
        }
        chart
            .configure_series_labels()
            .label_font((FAMILY, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(self.legend_corner(y0, y1))
            .draw()
            .map_err(draw_err)?;
        Ok(())
    }
}

impl LineChart {
    /// The right-hand corner away from where the curves end: upper when their
    /// last points lie mostly in the lower half of the y range, else lower.
    fn legend_corner(&self, y0: f64, y1: f64) -> SeriesLabelPosition {
        let ends: Vec<f64> = self
            .series
            .iter()
            .filter_map(|s| s.points.iter().rev().find(|p| p.1.is_finite()))
            .map(|p| (p.1 - y0) / (y1 - y0))
            .collect();
        if !ends.is_empty() && ends.iter().sum::<f64>() / (ends.len() as f64) < 0.5 {
            SeriesLabelPosition::UpperRight
        } else {
            SeriesLabelPosition::LowerRight
        }
    }

    /// Writes `stem.png` and `stem.svg`; returns their paths.
    pub fn write(&self, stem: &Path) -> Result<Vec<PathBuf>, PlotError> {
        write_both(self, stem, super::SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::testutil::{assert_png_drawn, assert_svg_texts, svg_text};

    #[test]
    fn svg_has_title_axis_labels_and_legend_png_is_drawn() {
        let tmp = tempfile::tempdir().unwrap();
        let c = LineChart {
            title: "dev rSum per epoch".into(),
            x_label: "epoch".into(),
            y_label: "dev rSum (of 600)".into(),
            series: vec![
                Series {
                    name: "anchor (branch 0)".into(),
                    points: vec![(1.0, 20.0), (2.0, 150.0), (3.0, 300.0)],
                },
                Series {
                    name: "target (branch 1)".into(),
                    points: vec![(1.0, 25.0), (2.0, 180.0), (3.0, f64::NAN)],
                },
                Series {
                    name: "one point".into(),
                    points: vec![(2.0, 90.0)],
                },
            ],
            x_integer: true,
        };
        let files = c.write(&tmp.path().join("sub").join("rsum")).unwrap();
        assert_eq!(files.len(), 2);
        assert_svg_texts(
            &files[1],
            &[
                "dev rSum per epoch",
                "epoch",
                "dev rSum (of 600)",
                "anchor (branch 0)",
                "target (branch 1)",
                "one point",
            ],
        );
        let text = svg_text(&files[1]);
        // Tick labels: some purely numeric texts on both axes.
        assert!(
            text.iter().filter(|t| t.parse::<f64>().is_ok()).count() >= 6,
            "{text:?}"
        );
        assert_png_drawn(&files[0]);
    }
}
