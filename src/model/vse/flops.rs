//! vse's forward FLOP (`dbl bench`, [`crate::model::flops`]): the encoders
//! and one cosine per pair.

use crate::model::config::ModelConfig;
use crate::model::flops::{FlopShape, FlopTerms, encoder_terms};
use crate::model::vse::Vse;

impl Vse {
    /// Forward FLOP of `n_img` images against captions of `lengths` tokens.
    pub fn forward_flops(cfg: &ModelConfig, n_img: usize, lengths: &[usize]) -> FlopTerms {
        let s = FlopShape::new(cfg, n_img, lengths);
        let mut t = encoder_terms(&s);
        t.push(("vse_score", 2 * s.n() * s.n_cap() * s.embed()));
        t
    }
}
