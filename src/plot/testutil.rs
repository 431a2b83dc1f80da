//! Test helpers: the texts of an SVG and a check that a PNG has a drawing on it.

use std::path::Path;

/// Every `<text …>…</text>` body of the SVG at `path`, XML entities decoded.
pub fn svg_text(path: &Path) -> Vec<String> {
    let s = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    let mut rest = s.as_str();
    while let Some(i) = rest.find("<text") {
        rest = &rest[i..];
        let Some(open) = rest.find('>') else { break };
        let Some(close) = rest.find("</text>") else {
            break;
        };
        out.push(
            rest[open + 1..close]
                .trim()
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &rest[close..];
    }
    out
}

/// Number of dark (text/axis, every channel < 100) and of non-white pixels of a PNG.
pub fn png_ink(path: &Path) -> (usize, usize) {
    let img = image::open(path).unwrap().to_rgb8();
    let dark = img
        .pixels()
        .filter(|p| p.0.iter().all(|&c| c < 100))
        .count();
    let ink = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    (dark, ink)
}

/// The PNG at `path` is not blank: text and axes (dark) and coloured marks.
/// Panics unless the SVG at `path` has a `<text>` element equal to each of `wants`.
pub fn assert_svg_texts(path: &Path, wants: &[&str]) {
    let text = svg_text(path);
    for want in wants {
        assert!(
            text.iter().any(|t| t == want),
            "no <text>{want}</text> in {}: {text:?}",
            path.display()
        );
    }
}

pub fn assert_png_drawn(path: &Path) {
    let (dark, ink) = png_ink(path);
    assert!(dark > 2_000, "{}: only {dark} dark pixels", path.display());
    assert!(
        ink > dark + 500,
        "{}: no coloured marks ({ink} non-white, {dark} dark)",
        path.display()
    );
}
