//! Inference for scan-ave (docs/method.md §5): per-region image embeddings
//! `[n, R, d]`, per-word caption embeddings, and the SCAN similarity head as
//! block scorer ([`ScanScorer`], f32 or bf16 on AMX).

use std::ops::Range;

use crate::engine::amx;
use crate::eval::sharded::BlockScorer;
use crate::model::explain::PairExplanation;
use crate::model::image_encoder::ImageEncoder;
use crate::model::matcher::{CaptionView, ImageView, Matcher, ScoreError};
use crate::model::precision::{HeadPrecision, PrecisionError};
use crate::model::scan_ave::ScanAve;
use crate::model::scan_ave::scorer::{Bf16Head, ScanScorer};
use crate::model::scan_head::Words;
use crate::model::text_encoder::TextEncoder;

impl Matcher for ScanAve {
    fn encoders(&self) -> (&ImageEncoder, &TextEncoder) {
        (&self.img_enc, &self.txt_enc)
    }
    fn image_rows(&self, n_regions: usize) -> usize {
        n_regions
    }
    fn caption_rows(&self, n_tokens: usize) -> usize {
        n_tokens
    }
    fn explain_pair(&self, img: &[f32], cap: &[f32]) -> Result<PairExplanation, ScoreError> {
        Ok(super::explain::scan_ave(&self.sim_enc, img, cap))
    }
    fn scorer<'a>(
        &'a self,
        img: ImageView<'a>,
        cap: CaptionView<'a>,
        precision: HeadPrecision,
    ) -> Result<Box<dyn BlockScorer + 'a>, ScoreError> {
        let words = Words {
            data: cap.rows,
            offsets: cap.offsets,
        };
        let bf16 = match precision {
            HeadPrecision::F32 => None,
            HeadPrecision::Bf16 => {
                amx::require().map_err(PrecisionError::from)?;
                Some(Bf16Head::new(&self.sim_enc, words).map_err(PrecisionError::from)?)
            }
        };
        Ok(Box::new(HeadScorer {
            plain: ScanScorer::new(&self.sim_enc, img.data, img.rows, words),
            bf16,
        }))
    }
}

/// [`ScanScorer`] owning its bf16 preparation (so it can be boxed).
struct HeadScorer<'a> {
    plain: ScanScorer<'a>,
    bf16: Option<Bf16Head>,
}

impl BlockScorer for HeadScorer<'_> {
    fn n_images(&self) -> usize {
        self.plain.n_images()
    }
    fn n_captions(&self) -> usize {
        self.plain.n_captions()
    }
    fn score_block(&self, images: Range<usize>, captions: Range<usize>, out: &mut [f32]) {
        match &self.bf16 {
            None => self.plain.score_block(images, captions, out),
            Some(prep) => self
                .plain
                .with_bf16(prep)
                .score_block(images, captions, out),
        }
    }
}
