//! Inference for vse: pooled, L2-normalised image and caption embeddings
//! (`[n, 1, d]` and one row per caption); score = cosine = dot product
//! ([`DotScorer`]). f32 only (no similarity head). vse-infty encodes its
//! images through the region encoder (eval mode: the MLP's batch norm on its
//! running statistics).

use crate::eval::dot::DotScorer;
use crate::eval::sharded::BlockScorer;
use crate::model::explain::PairExplanation;
use crate::model::image_encoder::ImageEncoder;
use crate::model::matcher::{CaptionView, ImageView, Matcher, ScoreError};
use crate::model::precision::{HeadPrecision, PrecisionError};
use crate::model::text_encoder::TextEncoder;
use crate::model::vse::Vse;

impl Matcher for Vse {
    fn encoders(&self) -> (&ImageEncoder, &TextEncoder) {
        (&self.img_enc, &self.txt_enc)
    }
    fn image_rows(&self, _n_regions: usize) -> usize {
        1
    }
    fn encode_images(&self, x: &[f32], n_regions: usize) -> Vec<f32> {
        Vse::encode_images(self, x.to_vec(), n_regions, false).0
    }
    fn caption_rows(&self, _n_tokens: usize) -> usize {
        1
    }
    fn explain_pair(&self, img: &[f32], cap: &[f32]) -> Result<PairExplanation, ScoreError> {
        // The score from the scorer itself (its rounding), the split from the embeddings.
        let view = ImageView { data: img, rows: 1 };
        let cv = CaptionView {
            rows: cap,
            offsets: &[0, 1],
        };
        let mut out = [0.0f32];
        self.scorer(view, cv, HeadPrecision::F32)?
            .score_block(0..1, 0..1, &mut out);
        Ok(super::explain::pooled(img, cap, out[0]))
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
        // Pooled captions have one row each, so `rows` is [n_cap, d].
        Ok(Box::new(DotScorer::new(
            img.data,
            cap.rows,
            self.embed_dim(),
        )?))
    }
}
