//! THE backbone registry of inference: one entry per backbone, naming it and
//! building its network (freshly initialised, ready for weights) from a
//! validated [`ModelConfig`]. Adding a backbone = one file implementing
//! [`Matcher`](super::Matcher) + one entry in [`BACKBONES`].
//!
//! [`Model`] (the trainer's either-backbone type) hands out its network as a
//! matcher through [`Model::matcher`].

use super::matcher::{Matcher, Net};
use crate::model::Model;
use crate::model::config::{Backbone, ConfigError, ModelConfig};
use crate::model::scan_ave::ScanAve;
use crate::model::sgraf::Sgraf;
use crate::model::vse::Vse;

/// One registered backbone.
pub struct Entry {
    /// The backbone.
    pub backbone: Backbone,
    /// Builds the network from a config (weights initialised from seed 0;
    /// callers load a checkpoint over them).
    pub build: fn(&ModelConfig) -> Result<Box<dyn Net>, ConfigError>,
}

/// Every backbone inference knows.
pub const BACKBONES: &[Entry] = &[
    Entry {
        backbone: Backbone::ScanAve,
        build: |c| Ok(Box::new(ScanAve::new(c, 0)?)),
    },
    Entry {
        backbone: Backbone::Vse,
        build: |c| Ok(Box::new(Vse::new(c, 0)?)),
    },
    Entry {
        backbone: Backbone::Sgr,
        build: |c| Ok(Box::new(Sgraf::new(c, 0)?)),
    },
    Entry {
        backbone: Backbone::Saf,
        build: |c| Ok(Box::new(Sgraf::new(c, 0)?)),
    },
];

/// The entry of `backbone`, if registered.
pub fn entry(backbone: Backbone) -> Option<&'static Entry> {
    BACKBONES.iter().find(|e| e.backbone == backbone)
}

/// The registered names, comma separated (for error messages).
pub fn names() -> String {
    BACKBONES
        .iter()
        .map(|e| e.backbone.name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Model {
    /// The network as an inference [`Matcher`].
    pub fn matcher(&self) -> &dyn Matcher {
        match self {
            Model::ScanAve(_, m) => m,
            Model::Vse(_, m) => m,
            Model::Sgraf(_, m) => m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_backbone_is_registered_once() {
        for b in [
            Backbone::ScanAve,
            Backbone::Vse,
            Backbone::Sgr,
            Backbone::Saf,
        ] {
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
        }
    }
}
