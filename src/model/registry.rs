//! THE backbone table: one row per backbone, from which [`backbones!`]
//! writes the [`Backbone`] enum (the config's and the CLI's choice), [`Model`]
//! with its forwarding of the training contract, [`Model::matcher`], the
//! inference registry [`BACKBONES`], import detection ([`detect`]) and the
//! FLOP count of `dbl bench` ([`forward_flops`]).
//! Adding a backbone = its own folder under `src/model/` (network,
//! `Trainable`, `Matcher`, `from_tensors`, `forward_flops`) + one row here + its `pub mod`
//! line in `src/model/mod.rs`.

use crate::data::batch::Batch;
use crate::data::precomp::Precomp;
use crate::dist::Comm;
use crate::engine::param::{Module, Param};
use crate::engine::rng::EngineRng;
use crate::model::Trainable;
use crate::model::backbone::backbones;
use crate::model::config::{ConfigError, ModelConfig};
use crate::model::encode::EncodedCaptions;
use crate::model::matcher::{Matcher, Net};
use crate::model::precision::{HeadPrecision, PrecisionError};

backbones! {
    /// The released DBL backbone: SCAN attention + squared-difference head (docs/method.md §5.3).
    ScanAve = "scan-ave" => crate::model::scan_ave::ScanAve,
    /// Embedding model: pooled image and caption embeddings, cosine score.
    Vse = "vse" => crate::model::vse::Vse,
    /// VSE∞'s precomp model: vse with the region MLP (`precomp_enc_type
    /// basic`) and GPO pooling (docs/method.md §13.7).
    VseInfty = "vse-infty" => crate::model::vse::Vse,
    /// SGRAF's similarity graph reasoning head (docs/method.md §13.2).
    Sgr = "sgr" => crate::model::sgraf::Sgraf,
    /// SGRAF's similarity attention filtration head (docs/method.md §13.3).
    Saf = "saf" => crate::model::sgraf::Sgraf,
}

/// The entry of `backbone`, if registered.
pub fn entry(backbone: Backbone) -> Option<&'static Entry> {
    BACKBONES.iter().find(|e| e.backbone == backbone)
}

/// The registered names, comma separated (for error messages).
pub fn names() -> String {
    Backbone::ALL
        .iter()
        .map(|b| b.name())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_backbone_is_registered_once() {
        assert_eq!(BACKBONES.len(), Backbone::ALL.len());
        for &b in Backbone::ALL {
            assert_eq!(BACKBONES.iter().filter(|e| e.backbone == b).count(), 1);
            let cfg = ModelConfig {
                embed: 8,
                word_dim: 4,
                sim_dim: 3,
                img_dim: 5,
                ..ModelConfig::new(b, 7)
            };
            let net = (entry(b).unwrap().build)(&cfg).unwrap();
            let m = net.as_matcher();
            assert_eq!((m.embed_dim(), m.img_dim(), m.vocab_size()), (8, 5, 7));
            let model = Model::new(&cfg, 0).unwrap();
            assert_eq!(model.config().backbone, b);
            let spelled: Backbone = serde_json::from_str(&format!("\"{}\"", b.name())).unwrap();
            assert_eq!(spelled, b);
            // Import detection finds the backbone and its sizes from the
            // weights alone: the detected configuration builds a network
            // that holds exactly these tensors (sizes a backbone does not
            // use, e.g. vse's `sim_dim`, stay at their defaults).
            let bytes = crate::model::weights::to_bytes(&model).unwrap();
            let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            let shapes = crate::model::weights::TensorShapes::of(&st);
            let found = detect(&shapes).unwrap();
            assert_eq!(found.backbone, b);
            let mut rebuilt = Model::new(&found, 1).unwrap();
            crate::model::weights::load_bytes(&mut rebuilt, &bytes, std::path::Path::new("t"))
                .unwrap();
            let again = crate::model::weights::to_bytes(&rebuilt).unwrap();
            assert!(again == bytes, "{}: the detected network differs", b.name());
        }
        assert_eq!(names(), "scan-ave, vse, vse-infty, sgr, saf");
    }
}
