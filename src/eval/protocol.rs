//! Test protocols (docs/method.md §8 step 6): Flickr30K 1K and MSCOCO 5K score the
//! whole matrix; MSCOCO 1K cuts the 5,000 x 25,000 `testall` matrix into five
//! folds of 1,000 images / 5,000 captions (fold `f`: images
//! `1000f..1000f+999`, captions `5000f..5000f+4999`, i.e. the diagonal
//! blocks), computes metrics per fold and averages them. rSum of the average
//! is the sum of the six averaged recalls, not the authors' printout
//! (docs/method.md §9 bug 5).

use serde::{Deserialize, Serialize};

use super::error::EvalError;
use super::matrix::SimMatrix;
use super::metrics::Metrics;
use super::ranks::ranks;

/// Number of folds of the MSCOCO 1K protocol.
pub const COCO1K_FOLDS: usize = 5;
/// Images per MSCOCO 1K fold.
pub const COCO1K_FOLD_IMAGES: usize = 1000;
/// Images of the MSCOCO `testall` split (COCO 1K and 5K).
pub const COCO_TESTALL_IMAGES: usize = COCO1K_FOLDS * COCO1K_FOLD_IMAGES;
/// Captions of the MSCOCO `testall` split (5 per image).
pub const COCO_TESTALL_CAPTIONS: usize = 5 * COCO_TESTALL_IMAGES;

/// Which evaluation protocol to apply to a similarity matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Flickr30K test: the whole matrix (normally 1,000 x 5,000).
    #[value(name = "f30k")]
    F30k,
    /// MSCOCO 1K: five 1,000-image folds of the 5,000 x 25,000 testall
    /// matrix, metrics averaged.
    #[value(name = "coco1k")]
    Coco1k,
    /// MSCOCO 5K: the whole 5,000 x 25,000 testall matrix.
    #[value(name = "coco5k")]
    Coco5k,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The result of a protocol: the reported metrics and, for fold protocols,
/// each fold's metrics in fold order.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// What the protocol reports (the fold average for COCO 1K).
    pub metrics: Metrics,
    /// Per-fold metrics; empty for whole-matrix protocols.
    pub folds: Vec<Metrics>,
}

/// Metrics of the whole matrix.
pub fn whole_metrics(m: &SimMatrix<'_>) -> Metrics {
    Metrics::from_ranks(&ranks(m))
}

/// Metrics of each of `n_folds` diagonal blocks: fold `f` holds images
/// `f*n..(f+1)*n` and their captions `f*n*cpi..(f+1)*n*cpi`, with
/// `n = n_img / n_folds`. Off-diagonal blocks are never read.
pub fn fold_metrics(m: &SimMatrix<'_>, n_folds: usize) -> Result<Vec<Metrics>, EvalError> {
    if n_folds == 0 || !m.n_img().is_multiple_of(n_folds) {
        return Err(EvalError::Folds {
            n_img: m.n_img(),
            n_folds,
        });
    }
    let fi = m.n_img() / n_folds;
    let fc = fi * m.captions_per_image();
    (0..n_folds)
        .map(|f| Ok(whole_metrics(&m.block(f * fi, fi, f * fc, fc)?)))
        .collect()
}

/// Fold metrics and their average (see [`Metrics::average`]).
pub fn evaluate_folds(m: &SimMatrix<'_>, n_folds: usize) -> Result<Evaluation, EvalError> {
    let folds = fold_metrics(m, n_folds)?;
    Ok(Evaluation {
        metrics: Metrics::average(&folds)?,
        folds,
    })
}

impl Protocol {
    /// The `[images, captions]` shape the protocol is defined on, if fixed:
    /// COCO 1K and 5K score MSCOCO `testall` (5,000 x 25,000); f30k scores a
    /// whole matrix of any shape (Flickr30K's test split is 1,000 x 5,000,
    /// and dbl also uses it for dev and synthetic splits).
    pub fn shape(self) -> Option<(usize, usize)> {
        match self {
            Protocol::F30k => None,
            Protocol::Coco1k | Protocol::Coco5k => {
                Some((COCO_TESTALL_IMAGES, COCO_TESTALL_CAPTIONS))
            }
        }
    }

    /// Applies the protocol; a matrix of another shape than the protocol's
    /// fixed one ([`Protocol::shape`]) is refused.
    pub fn evaluate(self, m: &SimMatrix<'_>) -> Result<Evaluation, EvalError> {
        if let Some((images, captions)) = self.shape()
            && (m.n_img(), m.n_cap()) != (images, captions)
        {
            return Err(EvalError::ProtocolShape {
                protocol: self.name(),
                images,
                captions,
                n_img: m.n_img(),
                n_cap: m.n_cap(),
            });
        }
        match self {
            Protocol::F30k | Protocol::Coco5k => Ok(Evaluation {
                metrics: whole_metrics(m),
                folds: Vec::new(),
            }),
            Protocol::Coco1k => evaluate_folds(m, COCO1K_FOLDS),
        }
    }

    /// The protocol's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::F30k => "f30k",
            Protocol::Coco1k => "coco1k",
            Protocol::Coco5k => "coco5k",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::metrics::Directional;

    /// Fold type C (2 images x 4 captions): i2t ranks [0, 0], t2i ranks
    /// [0, 1, 0, 0] (caption 1's column is 0.2 vs 0.5).
    const FOLD_C: [[f32; 4]; 2] = [[1.0, 0.2, 0.0, 0.0], [0.0, 0.5, 1.0, 1.0]];
    /// Fold type D: every query's ground truth is beaten. i2t ranks [2, 2]
    /// (two wrong captions score 1 above the positives' 0), t2i ranks all 1.
    const FOLD_D: [[f32; 4]; 2] = [[0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]];

    fn dir(r1: f64, r5: f64, r10: f64, medr: f64, meanr: f64) -> Directional {
        Directional {
            r1,
            r5,
            r10,
            medr,
            meanr,
        }
    }

    /// 10 x 20 matrix: folds C, D, C, C, D on the diagonal, 5.0 (above every
    /// in-fold score) everywhere else, so any leak across folds changes ranks.
    fn five_folds() -> Vec<f32> {
        let kinds = [FOLD_C, FOLD_D, FOLD_C, FOLD_C, FOLD_D];
        let mut d = vec![5.0f32; 10 * 20];
        for (f, kind) in kinds.iter().enumerate() {
            for (r, row) in kind.iter().enumerate() {
                let i = 2 * f + r;
                d[i * 20 + 4 * f..i * 20 + 4 * f + 4].copy_from_slice(row);
            }
        }
        d
    }

    #[test]
    fn fold_types_by_hand() {
        let c: Vec<f32> = FOLD_C.concat();
        let mc = whole_metrics(&SimMatrix::new(&c, 2, 4).unwrap());
        assert_eq!(mc.i2t, dir(100.0, 100.0, 100.0, 1.0, 1.0));
        assert_eq!(mc.t2i, dir(75.0, 100.0, 100.0, 1.0, 1.25));
        let d: Vec<f32> = FOLD_D.concat();
        let md = whole_metrics(&SimMatrix::new(&d, 2, 4).unwrap());
        assert_eq!(md.i2t, dir(0.0, 100.0, 100.0, 3.0, 3.0));
        assert_eq!(md.t2i, dir(0.0, 100.0, 100.0, 2.0, 2.0));
    }

    #[test]
    fn five_folds_average_and_rsum_rule() {
        let d = five_folds();
        let m = SimMatrix::new(&d, 10, 20).unwrap();
        let ev = evaluate_folds(&m, 5).unwrap();
        assert_eq!(ev.folds.len(), 5);
        let c = whole_metrics(&SimMatrix::new(&FOLD_C.concat(), 2, 4).unwrap());
        let dd = whole_metrics(&SimMatrix::new(&FOLD_D.concat(), 2, 4).unwrap());
        assert_eq!(ev.folds, vec![c, dd, c, c, dd]);

        // Averages by hand over C, D, C, C, D (tolerance 1e-12 absolute for
        // the non-dyadic fifths; recalls here are exact).
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        let m = ev.metrics;
        assert_eq!((m.i2t.r1, m.i2t.r5, m.i2t.r10), (60.0, 100.0, 100.0));
        assert!(close(m.i2t.medr, 1.8) && close(m.i2t.meanr, 1.8));
        assert_eq!((m.t2i.r1, m.t2i.r5, m.t2i.r10), (45.0, 100.0, 100.0));
        assert!(close(m.t2i.medr, 1.4) && close(m.t2i.meanr, 1.55));
        // rSum = sum of the six averaged recalls = 505. The authors' printout
        // (6 x mean i2t average recall) would say 520.
        assert_eq!(m.rsum, 505.0);
        // Averaging the folds' rSums gives the same here; the whole-matrix
        // metrics (off-diagonal 5.0s included) would not.
        let whole = whole_metrics(&SimMatrix::new(&d, 10, 20).unwrap());
        assert_ne!(whole.rsum, m.rsum);
    }

    #[test]
    fn coco_protocols_require_the_testall_shape() {
        let d = five_folds();
        let m = SimMatrix::new(&d, 10, 20).unwrap();
        for p in [Protocol::Coco1k, Protocol::Coco5k] {
            assert_eq!(
                p.evaluate(&m).unwrap_err(),
                EvalError::ProtocolShape {
                    protocol: p.name(),
                    images: 5000,
                    captions: 25000,
                    n_img: 10,
                    n_cap: 20
                }
            );
        }
        assert_eq!(
            evaluate_folds(&m, 3).unwrap_err(),
            EvalError::Folds {
                n_img: 10,
                n_folds: 3
            }
        );
        let f30k = Protocol::F30k.evaluate(&m).unwrap();
        assert!(f30k.folds.is_empty());
        assert_eq!(f30k.metrics, whole_metrics(&m));
    }
}
