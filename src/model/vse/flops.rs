//! vse's forward FLOP (`dbl bench`, [`crate::model::flops`]): the encoders,
//! vse-infty's region MLP on every region, and one cosine per pair.

use crate::model::config::{Backbone, ModelConfig};
use crate::model::flops::{FlopShape, FlopTerms, encoder_terms};
use crate::model::vse::Vse;

impl Vse {
    /// Forward FLOP of `n_img` images against captions of `lengths` tokens.
    pub fn forward_flops(cfg: &ModelConfig, n_img: usize, lengths: &[usize]) -> FlopTerms {
        let s = FlopShape::new(cfg, n_img, lengths);
        let mut t = encoder_terms(&s);
        if cfg.backbone == Backbone::VseInfty {
            // img_dim → d/2 on the region features (data), then d/2 → d.
            let (nr, e) = (s.n() * s.regions(), s.embed());
            t.push(("image_mlp0", 2 * nr * cfg.img_dim as u128 * (e / 2)));
            t.push(("mlp1", 2 * nr * (e / 2) * e));
        }
        t.push(("vse_score", 2 * s.n() * s.n_cap() * s.embed()));
        t
    }
}

#[cfg(test)]
mod tests {
    use crate::model::registry::forward_flops;
    use crate::model::{Backbone, ModelConfig};

    /// vse-infty = vse's terms + the region MLP on every region: at img_dim
    /// 2048, d 1024, R 36, one image: 2·36·2048·512 and 2·36·512·1024.
    #[test]
    fn vse_infty_counts_the_region_mlp() {
        let lengths = [5, 3];
        let vse = forward_flops(&ModelConfig::new(Backbone::Vse, 100), 1, &lengths);
        let infty = forward_flops(&ModelConfig::new(Backbone::VseInfty, 100), 1, &lengths);
        let extra: Vec<_> = infty.iter().filter(|t| !vse.contains(t)).collect();
        assert_eq!(
            extra,
            [&("image_mlp0", 75_497_472u128), &("mlp1", 37_748_736)]
        );
        assert_eq!(infty.len(), vse.len() + 2);
    }
}
