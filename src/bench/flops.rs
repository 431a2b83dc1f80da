//! Analytic FLOP count of one benchmark repetition: a port of
//! `tools/bench/flops.py` (its header documents the formula; the driver
//! `run_bench.py` checks the number we print against it). Dominant GEMM terms
//! only, multiply-add = 2 FLOP; a training step counts 2× image FC and 3× every
//! other forward term (backward = 1× / 2× extra), times the branch count.

use super::config::{BenchConfig, Kind};
use crate::model::Backbone;

/// Forward FLOP of `n_img` images and captions of `lengths`.
pub fn forward_terms(
    cfg: &BenchConfig,
    n_img: usize,
    lengths: &[usize],
) -> Vec<(&'static str, u128)> {
    let tokens: u128 = lengths.iter().map(|&l| l as u128).sum();
    let n_cap = lengths.len() as u128;
    let n = n_img as u128;
    let (e, r, s) = (cfg.embed as u128, cfg.regions as u128, cfg.sim_dim as u128);
    let mut t = vec![
        ("image_fc", 2 * n * r * cfg.img_dim as u128 * e),
        ("gru", 12 * tokens * e * (cfg.word_dim as u128 + e)),
    ];
    match cfg.backbone {
        Backbone::ScanAve => {
            t.push(("head_attn", 2 * n * tokens * r * e));
            t.push(("head_ctx", 2 * n * tokens * r * e));
            t.push(("head_tran", 2 * n * tokens * e * s));
            t.push(("head_eval", 2 * n * n_cap * s));
        }
        Backbone::Vse => t.push(("vse_score", 2 * n * n_cap * e)),
        Backbone::Sgr | Backbone::Saf => {
            t.push(("head_attn", 2 * n * tokens * r * e));
            t.push(("head_ctx", 2 * n * tokens * r * e));
            t.push(("head_tran", 2 * n * tokens * e * s));
            t.push(("head_glo", 2 * n * n_cap * e * s));
            t.push(("global_sa", 2 * (n * r + tokens + n + n_cap) * e * e));
            if cfg.backbone == Backbone::Sgr {
                // 3 steps of query, key and graph maps over every node.
                t.push(("sgr", 9 * 2 * n * (tokens + n_cap) * s * s));
            }
        }
    }
    t
}

/// Total FLOP of one repetition (`flops.count`): training configs use their
/// batch; scoring uses `n_img` images and captions `0..n_cap`.
pub fn count(cfg: &BenchConfig, n_img: usize, n_cap: usize) -> u128 {
    match cfg.kind {
        Kind::Train => {
            let lengths: Vec<usize> = (0..cfg.batch).map(super::inputs::caption_length).collect();
            forward_terms(cfg, cfg.batch, &lengths)
                .into_iter()
                .map(|(k, v)| {
                    let extra = if k == "image_fc" { 1 } else { 2 };
                    cfg.branches as u128 * v * (1 + extra)
                })
                .sum()
        }
        Kind::Score => {
            let lengths: Vec<usize> = (0..n_cap).map(super::inputs::caption_length).collect();
            forward_terms(cfg, n_img, &lengths)
                .into_iter()
                .map(|(_, v)| v)
                .sum()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::CONFIGS;
    use super::*;

    // Totals printed by `python3 tools/bench/flops.py` (and --images 100 --captions 500).
    #[test]
    fn totals_match_python() {
        let want: [(&str, u128); 10] = [
            ("scan-train-baseline", 504_951_472_128),
            ("scan-train-baseline-e256", 115_498_352_640),
            ("scan-train-oss", 1_009_902_944_256),
            ("vse-train", 112_943_431_680),
            ("scan-score", 41_637_317_591_040),
            ("vse-score", 1_142_193_111_040),
            ("sgr-train", 1_317_379_768_320),
            ("saf-train", 570_860_765_184),
            ("sgr-score", 121_495_841_914_880),
            ("saf-score", 44_470_725_754_880),
        ];
        for (name, flop) in want {
            let cfg = CONFIGS.iter().find(|c| c.name == name).unwrap();
            assert_eq!(count(cfg, 1000, 5000), flop, "{name}");
        }
        let s = CONFIGS.iter().find(|c| c.name == "scan-score").unwrap();
        assert_eq!(count(s, 100, 500), 516_204_584_960);
        let v = CONFIGS.iter().find(|c| c.name == "vse-score").unwrap();
        assert_eq!(count(v, 100, 500), 112_899_112_960);
        let g = CONFIGS.iter().find(|c| c.name == "sgr-score").unwrap();
        assert_eq!(count(g, 100, 500), 1_331_155_845_120);
    }
}
