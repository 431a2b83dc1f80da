//! The bundled font: DejaVu Sans (`assets/fonts/DejaVuSans.ttf`, from Debian's
//! fonts-dejavu-core 2.37; licence in `assets/fonts/LICENSE-DejaVu.txt`),
//! compiled into the binary and registered with plotters' `ab_glyph` text
//! renderer once per process. Charts name [`FAMILY`] in every text style.

use std::sync::OnceLock;

use plotters::style::{FontStyle, register_font};

use super::PlotError;

/// Font family name every chart uses.
pub const FAMILY: &str = "DejaVu Sans";

/// The TrueType file.
pub static TTF: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Registers [`TTF`] as [`FAMILY`] (normal and bold fall back to it); idempotent.
pub fn ensure() -> Result<(), PlotError> {
    static OK: OnceLock<bool> = OnceLock::new();
    let ok = *OK.get_or_init(|| register_font(FAMILY, FontStyle::Normal, TTF).is_ok());
    if ok { Ok(()) } else { Err(PlotError::Font) }
}

#[cfg(test)]
mod tests {
    use crate::plot::lines::{LineChart, Series};
    use crate::plot::testutil::png_ink;

    /// Text is really rasterised through the bundled font: a long title adds
    /// thousands of dark pixels to the PNG.
    #[test]
    fn text_is_drawn_into_the_png() {
        let tmp = tempfile::tempdir().unwrap();
        let chart = |title: &str| LineChart {
            title: title.into(),
            x_label: String::new(),
            y_label: String::new(),
            series: vec![Series {
                name: String::new(),
                points: vec![(0.0, 0.0), (1.0, 1.0)],
            }],
            x_integer: false,
        };
        chart("").write(&tmp.path().join("a")).unwrap();
        chart("A long title drawn with the bundled DejaVu Sans font")
            .write(&tmp.path().join("b"))
            .unwrap();
        let (a, _) = png_ink(&tmp.path().join("a.png"));
        let (b, _) = png_ink(&tmp.path().join("b.png"));
        assert!(
            b > a + 1_000,
            "title added {} dark pixels",
            b as i64 - a as i64
        );
    }
}
