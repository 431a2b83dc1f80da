//! `dbl model`: builds a backbone from its sizes and prints its layer list
//! (state_dict name, shape, count) and total parameter count (docs/method.md §5.5:
//! 13,052,077 for scan-ave at V = 8,481).

use anyhow::Context;

use crate::engine::param::Module;
use crate::model::{Backbone, Model, ModelConfig, VsePool};

/// Arguments of `dbl model`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Network: `scan-ave` (the released DBL backbone), `vse` (cosine embedding
    /// model), or the SGRAF heads `sgr` / `saf`.
    #[arg(long, value_enum)]
    pub backbone: Backbone,
    /// Vocabulary size V (rows of the word embedding; 8481 for F30K, 11353 for COCO).
    #[arg(long)]
    pub vocab_size: usize,
    /// Joint embedding width d (also the GRU hidden size).
    #[arg(long, default_value_t = 1024)]
    pub embed: usize,
    /// Word embedding width.
    #[arg(long, default_value_t = 300)]
    pub word_dim: usize,
    /// Similarity vector width of the scan-ave and SGRAF heads.
    #[arg(long, default_value_t = 256)]
    pub sim_dim: usize,
    /// Region feature width.
    #[arg(long, default_value_t = 2048)]
    pub img_dim: usize,
    /// Region pooling of `vse`.
    #[arg(long, value_enum, default_value_t = VsePool::Mean)]
    pub vse_pool: VsePool,
    /// Regions per image (the channels of sgr/saf's visual batch norm).
    #[arg(long, default_value_t = 36)]
    pub regions: usize,
}

impl Args {
    /// The configuration these flags describe (not yet validated).
    pub fn config(&self) -> ModelConfig {
        ModelConfig {
            embed: self.embed,
            word_dim: self.word_dim,
            sim_dim: self.sim_dim,
            img_dim: self.img_dim,
            vse_pool: self.vse_pool,
            regions: self.regions,
            ..ModelConfig::new(self.backbone, self.vocab_size)
        }
    }
}

/// Formats `n` with thousands separators (13052077 → "13,052,077").
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The layer table of `model`, one line per parameter, then the total.
pub fn layer_table(model: &Model) -> String {
    let params = model.params();
    let w = params
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut s = format!("{:<w$}  {:<14}  {:>12}\n", "name", "shape", "count");
    for p in &params {
        s += &format!(
            "{:<w$}  {:<14}  {:>12}\n",
            p.name,
            format!("{:?}", p.shape),
            thousands(p.numel())
        );
    }
    s += &format!(
        "total: {} parameters ({}, V = {})\n",
        thousands(model.num_params()),
        model.config().backbone.name(),
        model.config().vocab_size
    );
    s
}

/// Runs `dbl model`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let model = Model::new(&args.config(), 0).context("invalid model sizes")?;
    print!("{}", layer_table(&model));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(13_052_077), "13,052,077");
    }
}
