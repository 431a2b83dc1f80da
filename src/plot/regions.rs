//! Region boxes drawn over a photo (`dbl explain --image`): for a few words,
//! the boxes of the regions each attended to most, in the word's colour,
//! with a title and a legend beside the photo. PNG only (the photo is a bitmap).
//! Boxes are `[x1, y1, x2, y2]` in the photo's pixels (BUTD's
//! `{split}_boxes.npy`), or fractions of its width and height when every
//! coordinate is in [0, 1].

use std::path::Path;

use plotters::prelude::*;

use super::font::FAMILY;
use super::{COLORS, PlotError, draw_err};

/// One word's regions: legend text and the boxes `[x1, y1, x2, y2]`.
#[derive(Debug, Clone)]
pub struct WordBoxes {
    /// Legend entry, e.g. `dog (+0.42): regions 3, 17`.
    pub label: String,
    /// The word's boxes.
    pub boxes: Vec<[f32; 4]>,
}

/// Width of the legend strip right of the photo, pixels.
const LEGEND_W: u32 = 380;
/// Height of the title band above the photo, pixels.
const TITLE_H: u32 = 44;

/// Draws `words` over the photo `image` (PNG or JPEG) into the PNG `out`.
pub fn draw_regions(
    image: &Path,
    title: &str,
    words: &[WordBoxes],
    out: &Path,
) -> Result<(), PlotError> {
    super::font::ensure()?;
    let draw = |message: String| PlotError::Draw {
        path: out.to_path_buf(),
        message,
    };
    let photo = image::open(image)
        .map_err(|e| PlotError::Draw {
            path: image.to_path_buf(),
            message: format!("cannot read the image (PNG or JPEG expected): {e}"),
        })?
        .to_rgb8();
    let (pw, ph) = photo.dimensions();
    let (w, h) = (
        pw + LEGEND_W,
        (ph + TITLE_H).max(TITLE_H + 40 + 26 * words.len() as u32),
    );
    let mut canvas = image::RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    image::imageops::overlay(&mut canvas, &photo, 0, TITLE_H as i64);
    let fractions = words
        .iter()
        .flat_map(|wb| wb.boxes.iter().flatten())
        .all(|&c| (0.0..=1.0).contains(&c));
    let (sx, sy) = if fractions {
        (pw as f32, ph as f32)
    } else {
        (1.0, 1.0)
    };
    {
        let root = BitMapBackend::with_buffer(canvas.as_mut(), (w, h)).into_drawing_area();
        root.draw(&Text::new(title, (10, 10), (FAMILY, 20).into_font()))
            .map_err(|e| draw(draw_err(e)))?;
        for (i, wb) in words.iter().enumerate() {
            let c = COLORS[i % COLORS.len()].1;
            for b in &wb.boxes {
                let px = |x: f32, s: f32, hi: u32| ((x * s).round() as i32).clamp(0, hi as i32 - 1);
                let (x1, x2) = (px(b[0], sx, pw), px(b[2], sx, pw));
                let (y1, y2) = (px(b[1], sy, ph), px(b[3], sy, ph));
                let y0 = TITLE_H as i32;
                root.draw(&Rectangle::new(
                    [(x1, y0 + y1), (x2, y0 + y2)],
                    c.stroke_width(3),
                ))
                .map_err(|e| draw(draw_err(e)))?;
            }
            let y = TITLE_H as i32 + 10 + 26 * i as i32;
            let x = pw as i32 + 12;
            root.draw(&Rectangle::new([(x, y), (x + 18, y + 14)], c.filled()))
                .map_err(|e| draw(draw_err(e)))?;
            root.draw(&Text::new(
                wb.label.as_str(),
                (x + 26, y),
                (FAMILY, 15).into_font(),
            ))
            .map_err(|e| draw(draw_err(e)))?;
        }
        root.present().map_err(|e| draw(draw_err(e)))?;
    }
    canvas.save(out).map_err(|e| draw(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::testutil::png_ink;

    /// Boxes in the word's colour land where the coordinates say, and the
    /// title and legend add dark text.
    #[test]
    fn boxes_are_drawn_over_the_photo() {
        let tmp = tempfile::tempdir().unwrap();
        let photo = tmp.path().join("p.png");
        image::RgbImage::from_pixel(200, 120, image::Rgb([200, 200, 200]))
            .save(&photo)
            .unwrap();
        let out = tmp.path().join("o.png");
        let words = [WordBoxes {
            label: "dog (+0.40): regions 1".into(),
            boxes: vec![[10.0, 20.0, 100.0, 80.0]],
        }];
        draw_regions(&photo, "why it matched", &words, &out).unwrap();
        let img = image::open(&out).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (200 + LEGEND_W, 120 + TITLE_H));
        let blue = COLORS[0].1;
        let p = img.get_pixel(10, TITLE_H + 50).0;
        assert_eq!(p, [blue.0, blue.1, blue.2], "left edge of the box");
        assert_eq!(img.get_pixel(50, TITLE_H + 50).0, [200, 200, 200], "inside");
        let (dark, _) = png_ink(&out);
        assert!(dark > 500, "title and legend: {dark} dark pixels");
    }
}
