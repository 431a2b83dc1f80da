//! Exact dot-product scorer: `s(i, k) = <img_i, cap_k>`, the similarity of
//! cosine-head models on L2-normalised embeddings (the `x @ y.T` of VSE-style
//! evaluation). Reference [`BlockScorer`] for sharded scoring; each score is
//! computed in one fixed summation order, so it does not depend on the block
//! it is computed in.

use std::ops::Range;

use super::error::EvalError;
use super::sharded::BlockScorer;

/// Lanes of the fixed-order dot product (wide enough to vectorise).
const LANES: usize = 8;

/// Dot product with a fixed summation order: 8 interleaved partial sums,
/// the tail added to lane 0.., then the lanes combined pairwise.
/// a, b: `[d]`.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    for (l, (x, y)) in ra.iter().zip(rb).enumerate() {
        acc[l] += x * y;
    }
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// Scores row-major image and caption embeddings by dot product.
#[derive(Debug, Clone, Copy)]
pub struct DotScorer<'a> {
    /// img: `[n_img, dim]`.
    img: &'a [f32],
    /// cap: `[n_cap, dim]`.
    cap: &'a [f32],
    dim: usize,
}

impl<'a> DotScorer<'a> {
    /// img: `[n_img, dim]`, cap: `[n_cap, dim]`, both row-major.
    pub fn new(img: &'a [f32], cap: &'a [f32], dim: usize) -> Result<Self, EvalError> {
        for (what, data) in [("image", img), ("caption", cap)] {
            if dim == 0 || data.len() % dim != 0 {
                return Err(EvalError::Embeddings {
                    what,
                    len: data.len(),
                    dim,
                });
            }
        }
        Ok(Self { img, cap, dim })
    }
}

impl BlockScorer for DotScorer<'_> {
    fn n_images(&self) -> usize {
        self.img.len() / self.dim
    }

    fn n_captions(&self) -> usize {
        self.cap.len() / self.dim
    }

    fn score_block(&self, images: Range<usize>, captions: Range<usize>, out: &mut [f32]) {
        let d = self.dim;
        let w = captions.len();
        for (r, i) in images.enumerate() {
            let a = &self.img[i * d..(i + 1) * d];
            for (c, k) in captions.clone().enumerate() {
                out[r * w + c] = dot(a, &self.cap[k * d..(k + 1) * d]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_f64_reference() {
        let a: Vec<f32> = (0..21).map(|x| (x as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..21).map(|x| (x as f32 * 0.11).cos()).collect();
        let want: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
        // 21 products of magnitude <= 1: f32 error well below 1e-5.
        assert!((dot(&a, &b) as f64 - want).abs() < 1e-5);
        assert_eq!(dot(&[], &[]), 0.0);
    }

    #[test]
    fn rejects_ragged_embeddings() {
        assert!(matches!(
            DotScorer::new(&[0.0; 6], &[0.0; 7], 3),
            Err(EvalError::Embeddings {
                what: "caption",
                ..
            })
        ));
        assert!(DotScorer::new(&[0.0; 6], &[0.0; 6], 0).is_err());
        let s = DotScorer::new(&[0.0; 6], &[0.0; 9], 3).unwrap();
        assert_eq!((s.n_images(), s.n_captions()), (2, 3));
    }
}
