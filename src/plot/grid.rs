//! Several line charts in one picture, row by row (e.g. one panel per seed of
//! a sweep: `dbl sweep`'s `curves.{png,svg}`). Each panel keeps its own
//! title, axis labels, ticks and legend.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::lines::LineChart;
use super::{Drawing, PlotError, draw_err, write_both};

/// Pixel size of one panel: smaller than a lone chart, so a grid of several
/// stays a readable picture.
pub const PANEL: (u32, u32) = (640, 420);

/// Line charts in a grid of `cols` columns, filled row by row.
#[derive(Debug, Clone)]
pub struct LineGrid {
    /// The panels, in reading order.
    pub panels: Vec<LineChart>,
    /// Panels per row (at least 1).
    pub cols: usize,
}

impl LineGrid {
    /// (columns, rows) of the grid.
    fn shape(&self) -> (usize, usize) {
        let cols = self.cols.clamp(1, self.panels.len().max(1));
        (cols, self.panels.len().div_ceil(cols).max(1))
    }

    /// Writes `stem.png` and `stem.svg`; returns their paths.
    pub fn write(&self, stem: &Path) -> Result<Vec<PathBuf>, PlotError> {
        let (c, r) = self.shape();
        write_both(self, stem, (PANEL.0 * c as u32, PANEL.1 * r as u32))
    }
}

impl Drawing for LineGrid {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(draw_err)?;
        let (c, r) = self.shape();
        for (panel, area) in self.panels.iter().zip(root.split_evenly((r, c))) {
            panel.draw_panel(&area)?;
        }
        root.present().map_err(draw_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::lines::Series;
    use crate::plot::testutil::{assert_png_drawn, assert_svg_texts};

    #[test]
    fn every_panel_is_drawn_with_its_texts() {
        let tmp = tempfile::tempdir().unwrap();
        let panel = |seed: usize| LineChart {
            title: format!("seed {seed}"),
            x_label: "epoch".into(),
            y_label: "dev rSum (of 600)".into(),
            series: vec![
                Series {
                    name: "anchor".into(),
                    points: vec![(1.0, 100.0), (2.0, 150.0 + seed as f64)],
                },
                Series {
                    name: format!("target {seed}"),
                    points: vec![(1.0, 120.0), (2.0, 170.0)],
                },
            ],
            x_integer: true,
        };
        let g = LineGrid {
            panels: (0..5).map(panel).collect(),
            cols: 3,
        };
        assert_eq!(g.shape(), (3, 2));
        let files = g.write(&tmp.path().join("g")).unwrap();
        // Every panel, not only the first (an SVG backend writes its file on
        // the first `present`).
        assert_svg_texts(
            &files[1],
            &["seed 0", "seed 4", "target 4", "epoch", "dev rSum (of 600)"],
        );
        assert_png_drawn(&files[0]);
    }
}
