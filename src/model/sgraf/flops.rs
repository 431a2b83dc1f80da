//! sgr's and saf's forward FLOP (`dbl bench`, [`crate::model::flops`]): the
//! encoders, the SCAN attention, the global pair vector's projection, the
//! global self-attention of every item, and sgr's graph reasoning.

use crate::model::config::{Backbone, ModelConfig};
use crate::model::flops::{FlopShape, FlopTerms, encoder_terms, scan_attention_terms};
use crate::model::sgraf::Sgraf;

impl Sgraf {
    /// Forward FLOP of `n_img` images against captions of `lengths` tokens.
    pub fn forward_flops(cfg: &ModelConfig, n_img: usize, lengths: &[usize]) -> FlopTerms {
        let s = FlopShape::new(cfg, n_img, lengths);
        let (n, n_cap, e, sd) = (s.n(), s.n_cap(), s.embed(), s.sim_dim());
        let mut t = encoder_terms(&s);
        t.extend(scan_attention_terms(&s));
        t.push(("head_glo", 2 * n * n_cap * e * sd));
        t.push((
            "global_sa",
            2 * (n * s.regions() + s.tokens() + n + n_cap) * e * e,
        ));
        if cfg.backbone == Backbone::Sgr {
            // 3 steps of query, key and graph maps over every node.
            t.push(("sgr", 9 * 2 * n * (s.tokens() + n_cap) * sd * sd));
        }
        t
    }
}
