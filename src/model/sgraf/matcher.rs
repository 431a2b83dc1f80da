//! Inference for sgr and saf (docs/method.md §13): an encoded image is its
//! global vector followed by its region embeddings (`[n, 1 + R, d]`), an
//! encoded caption its global vector followed by its word embeddings
//! (`1 + n_tokens` rows); the SGRAF head scores blocks of them (f32 only).

use std::ops::Range;

use crate::eval::sharded::BlockScorer;
use crate::model::encode::{EncodedCaptions, encode_caption_list};
use crate::model::explain::PairExplanation;
use crate::model::image_encoder::ImageEncoder;
use crate::model::matcher::{CaptionView, ImageView, Matcher, PAR, ScoreError};
use crate::model::precision::{HeadPrecision, PrecisionError};
use crate::model::scan_head::Words;
use crate::model::sgraf::Sgraf;
use crate::model::text_encoder::TextEncoder;

/// Captions whose global vectors are computed per pass (bounds the
/// `[words, d]` intermediates of the text self-attention).
const GLOBAL_CHUNK: usize = 1024;

/// `[n, rows, d]` from `first: [n, d]` and `rest: [n, rows − 1, d]`, or
/// stacked with per-item row counts given by `offsets` of `rest`.
fn prepend(first: &[f32], rest: &[f32], offsets: &[usize], d: usize) -> Vec<f32> {
    let n = offsets.len() - 1;
    let mut out = Vec::with_capacity(first.len() + rest.len());
    for i in 0..n {
        out.extend_from_slice(&first[i * d..(i + 1) * d]);
        out.extend_from_slice(&rest[offsets[i] * d..offsets[i + 1] * d]);
    }
    out
}

impl Matcher for Sgraf {
    fn encoders(&self) -> (&ImageEncoder, &TextEncoder) {
        (&self.img_enc, &self.txt_enc)
    }
    fn image_rows(&self, n_regions: usize) -> usize {
        n_regions + 1
    }
    fn caption_rows(&self, n_tokens: usize) -> usize {
        n_tokens + 1
    }
    fn encode_images(&self, x: &[f32], n_regions: usize) -> Vec<f32> {
        let d = self.embed_dim();
        let img = self.img_enc.encode(x, n_regions, PAR);
        let glo = self.image_globals(&img, n_regions);
        let n = glo.len() / d;
        let offs: Vec<usize> = (0..=n).map(|i| i * n_regions).collect();
        prepend(&glo, &img, &offs, d)
    }
    fn encode_captions<'a>(
        &self,
        n: usize,
        caption: &dyn Fn(usize) -> &'a [u32],
    ) -> EncodedCaptions {
        let d = self.embed_dim();
        let words = encode_caption_list(&self.txt_enc, n, caption, PAR);
        let mut glo = Vec::with_capacity(n * d);
        for start in (0..n).step_by(GLOBAL_CHUNK) {
            let end = (start + GLOBAL_CHUNK).min(n);
            let base = words.offsets[start];
            let offs: Vec<usize> = words.offsets[start..=end]
                .iter()
                .map(|o| o - base)
                .collect();
            let rows = &words.rows[base * d..words.offsets[end] * d];
            glo.extend(self.caption_globals(rows, &offs));
        }
        EncodedCaptions {
            rows: prepend(&glo, &words.rows, &words.offsets, d),
            offsets: words
                .offsets
                .iter()
                .enumerate()
                .map(|(k, o)| o + k)
                .collect(),
        }
    }
    fn explain_pair(&self, img: &[f32], cap: &[f32]) -> Result<PairExplanation, ScoreError> {
        Ok(super::explain::sgraf(&self.head, img, cap))
    }
    fn scorer<'a>(
        &'a self,
        img: ImageView<'a>,
        cap: CaptionView<'a>,
        precision: HeadPrecision,
    ) -> Result<Box<dyn BlockScorer + 'a>, ScoreError> {
        if precision == HeadPrecision::Bf16 {
            return Err(PrecisionError::NoHead.into());
        }
        Ok(Box::new(SgrafScorer {
            model: self,
            img,
            cap,
        }))
    }
}

/// Block scorer over encoded sgr/saf representations: each block's rows are
/// split into global vectors and regions / words, then scored by the head.
struct SgrafScorer<'a> {
    model: &'a Sgraf,
    img: ImageView<'a>,
    cap: CaptionView<'a>,
}

impl BlockScorer for SgrafScorer<'_> {
    fn n_images(&self) -> usize {
        self.img.data.len() / (self.img.rows * self.model.embed_dim())
    }
    fn n_captions(&self) -> usize {
        self.cap.len()
    }
    fn score_block(&self, images: Range<usize>, captions: Range<usize>, out: &mut [f32]) {
        let d = self.model.embed_dim();
        let r = self.img.rows - 1;
        let o = self.cap.offsets;
        let mut words = Vec::new();
        let mut cap_glo = Vec::with_capacity(captions.len() * d);
        let mut offsets = vec![0usize];
        for k in captions {
            let c = &self.cap.rows[o[k] * d..o[k + 1] * d];
            cap_glo.extend_from_slice(&c[..d]);
            words.extend_from_slice(&c[d..]);
            offsets.push(offsets[offsets.len() - 1] + o[k + 1] - o[k] - 1);
        }
        let w = Words {
            data: &words,
            offsets: &offsets,
        };
        self.model
            .head
            .score_block(self.img.data, r, images, w, &cap_glo, out);
    }
}
