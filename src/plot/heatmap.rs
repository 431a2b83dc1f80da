//! Heatmaps of a matrix with a label per row and per column and a colour
//! bar: `dbl explain`'s words × regions attention (rows = words, labelled
//! with their contribution; columns = regions).

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::font::FAMILY;
use super::grid::Panel;
use super::{PlotError, draw_err, write_both};

/// A heatmap.
#[derive(Debug, Clone)]
pub struct Heatmap {
    /// Title above the plot.
    pub title: String,
    /// x (column) axis label, e.g. "image region".
    pub x_label: String,
    /// y (row) axis label, e.g. "word (contribution to the logit)".
    pub y_label: String,
    /// Colour bar label with its unit, e.g. "attention α (softmax over regions)".
    pub value_label: String,
    /// One label per row, top to bottom.
    pub row_labels: Vec<String>,
    /// One label per column, left to right.
    pub col_labels: Vec<String>,
    /// `[rows][cols]`; non-finite values are drawn grey.
    pub values: Vec<Vec<f32>>,
}

/// White (low) to dark blue (high); `t` in [0, 1].
pub fn colour(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let mix = |lo: f64, hi: f64| (lo + (hi - lo) * t).round() as u8;
    RGBColor(mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
}

impl Heatmap {
    /// Largest finite value (at least a tiny positive number).
    fn max(&self) -> f64 {
        self.values
            .iter()
            .flatten()
            .filter(|v| v.is_finite())
            .fold(1e-12f64, |m, &v| m.max(v as f64))
    }

    /// Picture size: rows and columns get room for their labels.
    pub fn size(&self) -> (u32, u32) {
        let cols = self.col_labels.len().max(1) as u32;
        let rows = self.row_labels.len().max(1) as u32;
        (
            (260 + 22 * cols).clamp(640, 1800),
            (170 + 26 * rows).clamp(360, 1400),
        )
    }

    /// Writes `stem.png` and `stem.svg`; returns their paths.
    pub fn write(&self, stem: &Path) -> Result<Vec<PathBuf>, PlotError> {
        write_both(self, stem, self.size())
    }
}

impl Panel for Heatmap {
    fn draw_panel<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(draw_err)?;
        let root = root.titled(&self.title, (FAMILY, 20)).map_err(draw_err)?;
        let (w, _) = root.dim_in_pixel();
        let (main, bar) = root.split_horizontally(w.saturating_sub(130));
        let (nr, nc) = (self.row_labels.len(), self.col_labels.len());
        let max = self.max();
        let mut chart = ChartBuilder::on(&main)
            .margin(10)
            .x_label_area_size(60)
            .y_label_area_size(190)
            .build_cartesian_2d((0..nc).into_segmented(), (0..nr).into_segmented())
            .map_err(draw_err)?;
        // Row 0 on top: row i is drawn at y = nr − 1 − i.
        let row_label = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(y) if *y < nr => self.row_labels[nr - 1 - y].clone(),
            _ => String::new(),
        };
        let col_label = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(x) if *x < nc => self.col_labels[*x].clone(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(nc)
            .y_labels(nr)
            .x_label_formatter(&col_label)
            .y_label_formatter(&row_label)
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .label_style((FAMILY, 13))
            .axis_desc_style((FAMILY, 15))
            .draw()
            .map_err(draw_err)?;
        let cells = self.values.iter().enumerate().flat_map(|(i, row)| {
            row.iter().enumerate().map(move |(j, &v)| {
                let fill = if v.is_finite() {
                    colour(v as f64 / max)
                } else {
                    RGBColor(160, 160, 160)
                };
                let y = nr - 1 - i;
                Rectangle::new(
                    [
                        (SegmentValue::Exact(j), SegmentValue::Exact(y)),
                        (SegmentValue::Exact(j + 1), SegmentValue::Exact(y + 1)),
                    ],
                    fill.filled(),
                )
            })
        });
        chart.draw_series(cells).map_err(draw_err)?;
        // The colour bar: 0 … max, labelled.
        let mut cb = ChartBuilder::on(&bar)
            .margin_top(40)
            .margin_bottom(70)
            .margin_right(10)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0f64..1.0, 0.0f64..max)
            .map_err(draw_err)?;
        cb.configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_labels(6)
            .y_desc(self.value_label.as_str())
            .label_style((FAMILY, 12))
            .axis_desc_style((FAMILY, 13))
            .draw()
            .map_err(draw_err)?;
        let steps = 64;
        cb.draw_series((0..steps).map(|k| {
            let (a, b) = (k as f64 / steps as f64, (k + 1) as f64 / steps as f64);
            Rectangle::new([(0.0, a * max), (1.0, b * max)], colour(a).filled())
        }))
        .map_err(draw_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::testutil::{assert_png_drawn, assert_svg_texts};

    #[test]
    fn heatmap_has_title_axes_labels_and_colour_bar() {
        let tmp = tempfile::tempdir().unwrap();
        let h = Heatmap {
            title: "why it matched".into(),
            x_label: "image region".into(),
            y_label: "word (contribution)".into(),
            value_label: "attention α".into(),
            row_labels: vec!["a (+0.10)".into(), "dog (+0.50)".into()],
            col_labels: (0..5).map(|r| r.to_string()).collect(),
            values: vec![
                vec![0.1, 0.2, 0.3, 0.2, 0.2],
                vec![0.9, 0.05, 0.05, 0.0, 0.0],
            ],
        };
        assert_eq!(colour(0.0), WHITE);
        let files = h.write(&tmp.path().join("h")).unwrap();
        assert_svg_texts(
            &files[1],
            &[
                "why it matched",
                "image region",
                "word (contribution)",
                "attention α",
                "dog (+0.50)",
                "4",
            ],
        );
        assert_png_drawn(&files[0]);
    }
}
