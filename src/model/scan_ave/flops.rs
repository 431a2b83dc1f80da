//! scan-ave's forward FLOP (`dbl bench`, [`crate::model::flops`]): the
//! encoders, the SCAN attention and `W_t` per (image, word), and the head's
//! `w_e` per pair.

use crate::model::config::ModelConfig;
use crate::model::flops::{FlopShape, FlopTerms, encoder_terms, scan_attention_terms};
use crate::model::scan_ave::ScanAve;

impl ScanAve {
    /// Forward FLOP of `n_img` images against captions of `lengths` tokens.
    pub fn forward_flops(cfg: &ModelConfig, n_img: usize, lengths: &[usize]) -> FlopTerms {
        let s = FlopShape::new(cfg, n_img, lengths);
        let mut t = encoder_terms(&s);
        t.extend(scan_attention_terms(&s));
        t.push(("head_eval", 2 * s.n() * s.n_cap() * s.sim_dim()));
        t
    }
}
