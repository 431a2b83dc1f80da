//! Inference for vse: pooled, L2-normalised image and caption embeddings
//! (`[n, 1, d]` and one row per caption); score = cosine = dot product
//! ([`DotScorer`]). f32 only (no similarity head).

use super::InferError;
use super::matcher::{CaptionView, ImageView, Matcher, PAR};
use crate::eval::dot::DotScorer;
use crate::eval::sharded::BlockScorer;
use crate::model::encode::{EncodedCaptions, encode_caption_list};
use crate::model::precision::{HeadPrecision, PrecisionError};
use crate::model::vse::Vse;

impl Matcher for Vse {
    fn embed_dim(&self) -> usize {
        self.img_enc.embed()
    }
    fn img_dim(&self) -> usize {
        self.img_enc.fc.in_dim()
    }
    fn vocab_size(&self) -> usize {
        self.txt_enc.embed.vocab()
    }
    fn image_rows(&self, _n_regions: usize) -> usize {
        1
    }
    fn caption_rows(&self, _n_tokens: usize) -> usize {
        1
    }
    fn encode_images(&self, x: &[f32], n_regions: usize) -> Vec<f32> {
        self.img_enc.encode(x, n_regions, PAR)
    }
    fn encode_captions<'a>(
        &self,
        n: usize,
        caption: &dyn Fn(usize) -> &'a [u32],
    ) -> EncodedCaptions {
        encode_caption_list(&self.txt_enc, n, caption, PAR)
    }
    fn scorer<'a>(
        &'a self,
        img: ImageView<'a>,
        cap: CaptionView<'a>,
        precision: HeadPrecision,
    ) -> Result<Box<dyn BlockScorer + 'a>, InferError> {
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
