//! Interval charts: named categories along x (e.g. regimes or sweeps), for each
//! one several series (e.g. branches) drawn side by side as the per-seed values
//! (small dots), their centre (a large dot) and an interval (a vertical bar:
//! mean ± sd, or a confidence interval), with title, axis labels, category
//! tick labels and a legend; optionally a dashed zero line (paired differences).

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::font::FAMILY;
use super::grid::Panel;
use super::{COLORS, PlotError, draw_err, write_both};

/// One series' values in one category.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    /// Per-seed values (drawn as small dots).
    pub values: Vec<f64>,
    /// The centre (mean).
    pub centre: f64,
    /// Lower end of the bar.
    pub lo: f64,
    /// Upper end of the bar.
    pub hi: f64,
}

/// One legend entry: its interval in each category (`None` = absent there).
#[derive(Debug, Clone)]
pub struct IntervalSeries {
    /// Legend entry.
    pub name: String,
    /// One entry per category.
    pub per_category: Vec<Option<Interval>>,
}

/// An interval chart.
#[derive(Debug, Clone)]
pub struct IntervalChart {
    /// Title above the plot.
    pub title: String,
    /// x axis label (what the categories are).
    pub x_label: String,
    /// y axis label with its unit.
    pub y_label: String,
    /// Category names, left to right.
    pub categories: Vec<String>,
    /// Series, drawn side by side within each category.
    pub series: Vec<IntervalSeries>,
    /// Draw a dashed horizontal line at y = 0.
    pub zero_line: bool,
}

/// Pixels of the plot area under a panel of height `h` that the caption, the
/// margins and the x label area leave (see [`IntervalChart::draw_panel`]).
fn plot_height(h: u32) -> f64 {
    f64::from(h.saturating_sub(110).max(100))
}

/// Pixels the legend box takes at the top of the plot: one 22-pixel row per
/// series and its padding (label font 15).
fn legend_height(n_series: usize) -> f64 {
    22.0 * n_series as f64 + 20.0
}

impl IntervalChart {
    /// The y axis range for a plot area `plot_px` pixels high: every value,
    /// interval end and centre (and 0 with the zero line) padded 8 %, plus a
    /// band at the top as tall as the legend box, so the legend (upper right)
    /// never covers a whisker or a dot.
    fn y_range(&self, plot_px: f64) -> (f64, f64) {
        let mut ys: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.per_category.iter().flatten())
            .flat_map(|iv| iv.values.iter().copied().chain([iv.lo, iv.hi, iv.centre]))
            .filter(|y| y.is_finite())
            .collect();
        if self.zero_line {
            ys.push(0.0);
        }
        let lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if lo > hi {
            return (0.0, 1.0);
        }
        let pad = ((hi - lo) * 0.08).max(1.0);
        let (y0, top) = (lo - pad, hi + pad);
        let band = (legend_height(self.series.len()) / plot_px).min(0.45);
        (y0, y0 + (top - y0) / (1.0 - band))
    }

    /// x position of series `s` in category `c`.
    fn x(&self, c: usize, s: usize) -> f64 {
        let n = self.series.len().max(1) as f64;
        c as f64 + (s as f64 + 0.5) / n * 0.6 - 0.3
    }
}

impl Panel for IntervalChart {
    fn draw_panel<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(draw_err)?;
        let (y0, y1) = self.y_range(plot_height(root.dim_in_pixel().1));
        let nc = self.categories.len().max(1);
        let cats = &self.categories;
        let name_of = |x: &f64| {
            let r = x.round();
            if (x - r).abs() < 1e-6 && r >= 0.0 && (r as usize) < cats.len() {
                cats[r as usize].clone()
            } else {
                String::new()
            }
        };
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FAMILY, 22))
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..(nc as f64 - 0.5), y0..y1)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .x_labels(4 * nc + 1)
            .x_label_formatter(&name_of)
            .disable_x_mesh()
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 16))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(draw_err)?;
        if self.zero_line {
            chart
                .draw_series(DashedLineSeries::new(
                    [(-0.5, 0.0), (nc as f64 - 0.5, 0.0)],
                    6,
                    4,
                    BLACK.stroke_width(1),
                ))
                .map_err(draw_err)?;
        }
        for (s, series) in self.series.iter().enumerate() {
            let color = COLORS[s % COLORS.len()].1;
            let mut dots = Vec::new();
            let mut bars = Vec::new();
            let mut centres = Vec::new();
            for (c, iv) in series.per_category.iter().enumerate() {
                let Some(iv) = iv else { continue };
                let x = self.x(c, s);
                dots.extend(iv.values.iter().map(|&v| (x + 0.04, v)));
                bars.push(vec![(x, iv.lo), (x, iv.hi)]);
                bars.push(vec![(x - 0.02, iv.lo), (x + 0.02, iv.lo)]);
                bars.push(vec![(x - 0.02, iv.hi), (x + 0.02, iv.hi)]);
                centres.push((x, iv.centre));
            }
            chart
                .draw_series(
                    dots.into_iter()
                        .map(|p| Circle::new(p, 3, color.mix(0.6).filled())),
                )
                .map_err(draw_err)?;
            chart
                .draw_series(
                    bars.into_iter()
                        .map(|b| PathElement::new(b, color.stroke_width(2))),
                )
                .map_err(draw_err)?;
            chart
                .draw_series(
                    centres
                        .into_iter()
                        .map(|p| Circle::new(p, 6, color.filled())),
                )
                .map_err(draw_err)?
                .label(series.name.as_str())
                .legend(move |(x, y)| Circle::new((x + 10, y), 6, color.filled()));
        }
        chart
            .configure_series_labels()
            .label_font((FAMILY, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(draw_err)?;
        Ok(())
    }
}

impl IntervalChart {
    /// Writes `stem.png` and `stem.svg`; returns their paths.
    pub fn write(&self, stem: &Path) -> Result<Vec<PathBuf>, PlotError> {
        write_both(self, stem, super::SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::grid::Grid;
    use crate::plot::testutil::{assert_png_drawn, assert_svg_texts};

    #[test]
    fn svg_names_categories_axes_and_series() {
        let tmp = tempfile::tempdir().unwrap();
        let iv = |v: &[f64]| {
            let m = v.iter().sum::<f64>() / v.len() as f64;
            Some(Interval {
                values: v.to_vec(),
                centre: m,
                lo: m - 10.0,
                hi: m + 10.0,
            })
        };
        let c = IntervalChart {
            title: "test rSum over seeds".into(),
            x_label: "sweep".into(),
            y_label: "test rSum (of 600)".into(),
            categories: vec!["baseline".into(), "oss-rm".into(), "mss".into()],
            series: vec![
                IntervalSeries {
                    name: "anchor".into(),
                    per_category: vec![iv(&[300.0, 320.0]), iv(&[310.0, 305.0]), None],
                },
                IntervalSeries {
                    name: "target".into(),
                    per_category: vec![None, iv(&[330.0, 340.0]), iv(&[-5.0, 12.0])],
                },
            ],
            zero_line: true,
        };
        let files = c.write(&tmp.path().join("s")).unwrap();
        assert_svg_texts(
            &files[1],
            &[
                "test rSum over seeds",
                "sweep",
                "test rSum (of 600)",
                "baseline",
                "oss-rm",
                "mss",
                "anchor",
                "target",
            ],
        );
        assert_png_drawn(&files[0]);
        // A row of panels: the SVG carries every panel, not only the first.
        let mut right = c.clone();
        right.title = "paired difference".into();
        right.series[1].name = "target − baseline".into();
        let files = Grid::row(vec![c, right])
            .write(&tmp.path().join("row"))
            .unwrap();
        assert_svg_texts(
            &files[1],
            &[
                "test rSum over seeds",
                "paired difference",
                "target − baseline",
            ],
        );
        assert_png_drawn(&files[0]);
    }

    #[test]
    fn the_legend_band_holds_no_point() {
        let iv = |lo: f64, hi: f64| {
            Some(Interval {
                values: vec![lo, hi],
                centre: (lo + hi) / 2.0,
                lo,
                hi,
            })
        };
        for n in 1..=4 {
            let c = IntervalChart {
                title: String::new(),
                x_label: String::new(),
                y_label: String::new(),
                categories: vec!["a".into()],
                series: (0..n)
                    .map(|k| IntervalSeries {
                        name: format!("s{k}"),
                        per_category: vec![iv(-3.0 * k as f64, 10.0 + k as f64)],
                    })
                    .collect(),
                zero_line: true,
            };
            let px = plot_height(super::super::SIZE.1);
            let (y0, y1) = c.y_range(px);
            // The legend's box spans the top legend_height pixels of the plot.
            let band_bottom = y1 - (y1 - y0) * legend_height(n) / px;
            assert!(band_bottom >= 10.0 + n as f64, "n = {n}: {band_bottom}");
            assert!(y0 <= -3.0 * (n - 1) as f64, "n = {n}");
        }
    }
}
