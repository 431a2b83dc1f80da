//! Analytic FLOP count of one benchmark repetition: a port of
//! `tools/bench/flops.py` (its header documents the formula; the driver
//! `run_bench.py` checks the number we print against it). Each backbone's
//! forward terms come from its own folder through the backbone table
//! ([`crate::model::registry::forward_flops`]); a training step counts 2×
//! every `image_*` term (its input is data: weight gradient only) and 3×
//! every other forward term (backward = 1× / 2× extra), times the branch count.

use super::config::{BenchConfig, Kind};
use crate::model::flops::FlopTerms;
use crate::model::registry;

/// Forward FLOP of `n_img` images and captions of `lengths`.
pub fn forward_terms(cfg: &BenchConfig, n_img: usize, lengths: &[usize]) -> FlopTerms {
    registry::forward_flops(&cfg.model(), n_img, lengths)
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
                    let extra = if k.starts_with("image_") { 1 } else { 2 };
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
