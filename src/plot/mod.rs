//! Pictures a person can read: every chart has a title, labelled axes with
//! units, tick labels and a legend, and draws its text with the font bundled
//! in the repository (DejaVu Sans, `assets/fonts/`), so no system font is
//! needed. PNG (bitmap) and SVG from the same drawing code.
//!
//! - [`font`]: the bundled font, registered once per process.
//! - [`lines`]: curves over epochs or steps (`dbl report`).
//! - [`grid`]: charts as panels, and grids of panels in one picture.
//! - [`intervals`]: per-seed values with mean and an interval per category
//!   (`dbl sweep` summaries).
//! - [`heatmap`]: a labelled matrix with a colour bar (`dbl explain`'s words × regions).
//! - [`regions`]: boxes drawn over a photo with a legend (`dbl explain --image`).

pub mod font;
pub mod grid;
pub mod heatmap;
pub mod intervals;
pub mod lines;
pub mod regions;
#[cfg(test)]
pub(crate) mod testutil;

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

/// Line colours; series i uses `COLORS[i % len]` (the matplotlib "tab10" start).
pub const COLORS: [(&str, RGBColor); 6] = [
    ("blue", RGBColor(31, 119, 180)),
    ("orange", RGBColor(255, 127, 14)),
    ("green", RGBColor(44, 160, 44)),
    ("red", RGBColor(214, 39, 40)),
    ("purple", RGBColor(148, 103, 189)),
    ("brown", RGBColor(140, 86, 75)),
];

/// Size of one chart in pixels (PNG) and user units (SVG).
pub const SIZE: (u32, u32) = (900, 560);

/// Everything that can stop a picture from being written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("the bundled font assets/fonts/DejaVuSans.ttf could not be parsed")]
    Font,
    #[error("{path}: drawing failed: {message}")]
    Draw { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A picture that can be drawn on any plotters backend.
pub(crate) trait Drawing {
    /// Draws the whole picture on `root` (already sized), including `present`.
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String>;
}

/// Maps a plotters drawing error to text.
pub(crate) fn draw_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> String {
    e.to_string()
}

/// Writes `stem.png` and `stem.svg` of `d` (one drawing routine for both
/// backends); returns the two paths.
pub(crate) fn write_both(
    d: &impl Drawing,
    stem: &Path,
    size: (u32, u32),
) -> Result<Vec<PathBuf>, PlotError> {
    font::ensure()?;
    if let Some(dir) = stem.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| PlotError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |message| PlotError::Draw { path, message }
    };
    d.draw(BitMapBackend::new(&png, size).into_drawing_area())
        .map_err(fail(&png))?;
    d.draw(SVGBackend::new(&svg, size).into_drawing_area())
        .map_err(fail(&svg))?;
    Ok(vec![png, svg])
}
