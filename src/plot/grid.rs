//! Panels and grids of them. A [`Panel`] is a chart that can draw itself on
//! part of a picture without finishing the picture; every panel is also a
//! picture on its own (it draws, then presents). A [`Grid`] lays panels out
//! row by row and presents once, after the last one (an SVG backend writes
//! its file on the first `present` and ignores what is drawn after it).
//! Used for `dbl sweep`'s summary and compare pictures (interval charts side
//! by side) and its per-seed dev curves (line charts, `curves.{png,svg}`).

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Drawing, PlotError, draw_err, write_both};

/// A chart that draws on `root` without presenting it.
pub trait Panel {
    /// Draws the chart, title, axes and legend included, on `root`.
    fn draw_panel<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

impl<T: Panel> Drawing for T {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String> {
        self.draw_panel(&root)?;
        root.present().map_err(draw_err)
    }
}

/// Panels in a grid of `cols` columns, filled row by row, each `panel`
/// pixels (PNG) or user units (SVG).
#[derive(Debug, Clone)]
pub struct Grid<T> {
    /// The panels, in reading order.
    pub panels: Vec<T>,
    /// Panels per row (at least 1).
    pub cols: usize,
    /// Size of one panel.
    pub panel: (u32, u32),
}

impl<T> Grid<T> {
    /// The panels side by side in one row, each [`super::SIZE`].
    pub fn row(panels: Vec<T>) -> Self {
        Grid {
            cols: panels.len(),
            panels,
            panel: super::SIZE,
        }
    }

    /// (columns, rows) of the grid.
    fn shape(&self) -> (usize, usize) {
        let cols = self.cols.clamp(1, self.panels.len().max(1));
        (cols, self.panels.len().div_ceil(cols).max(1))
    }
}

impl<T: Panel> Grid<T> {
    /// Writes `stem.png` and `stem.svg`; returns their paths.
    pub fn write(&self, stem: &Path) -> Result<Vec<PathBuf>, PlotError> {
        let (c, r) = self.shape();
        let (w, h) = self.panel;
        write_both(self, stem, (w * c as u32, h * r as u32))
    }
}

impl<T: Panel> Drawing for Grid<T> {
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
    use crate::plot::lines::{LineChart, Series};
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
        let g = Grid {
            panels: (0..5).map(panel).collect(),
            cols: 3,
            panel: (640, 420),
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
