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
    combine(&acc)
}

/// The fixed final reduction of the 8 lanes.
#[inline(always)]
fn combine(acc: &[f32; LANES]) -> f32 {
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// Images and captions per register block of [`dot_block_avx2`]: 8
/// accumulators of 8 lanes plus 6 loaded rows fit the 16 AVX2 registers.
const BI: usize = 2;
const BC: usize = 4;

/// [`dot`] of `BI` rows of `a` with `BC` rows of `b` at once, every pair in
/// exactly `dot`'s operation order — lane-wise multiply then add (Rust never
/// fuses them into an FMA), the tail into lanes 0.., then [`combine`] — so
/// bitwise equal to it, with every load shared across the block.
/// a: `BI` rows of `[d]`, b: `BC` rows of `[d]` → out[i][c] = dot(a[i], b[c]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dot_block_avx2(a: [&[f32]; BI], b: [&[f32]; BC]) -> [[f32; BC]; BI] {
    use std::arch::x86_64::{__m256, _mm256_add_ps, _mm256_loadu_ps, _mm256_mul_ps};
    use std::arch::x86_64::{_mm256_setzero_ps, _mm256_storeu_ps};
    let d = a[0].len();
    assert!(
        a.iter().chain(&b).all(|r| r.len() == d),
        "dot block: ragged rows"
    );
    let full = d - d % LANES;
    let mut acc: [[__m256; BC]; BI] = [[_mm256_setzero_ps(); BC]; BI];
    let mut x: [__m256; BI] = [_mm256_setzero_ps(); BI];
    let mut y: [__m256; BC] = [_mm256_setzero_ps(); BC];
    for k in (0..full).step_by(LANES) {
        for i in 0..BI {
            // SAFETY: k + LANES <= full <= d = a[i].len().
            x[i] = unsafe { _mm256_loadu_ps(a[i].as_ptr().add(k)) };
        }
        for c in 0..BC {
            // SAFETY: k + LANES <= full <= d = b[c].len().
            y[c] = unsafe { _mm256_loadu_ps(b[c].as_ptr().add(k)) };
        }
        for i in 0..BI {
            for c in 0..BC {
                acc[i][c] = _mm256_add_ps(acc[i][c], _mm256_mul_ps(x[i], y[c]));
            }
        }
    }
    let mut out = [[0.0f32; BC]; BI];
    for i in 0..BI {
        for c in 0..BC {
            let mut lanes = [0.0f32; LANES];
            // SAFETY: `lanes` holds exactly 8 f32.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc[i][c]) };
            for (l, (p, q)) in a[i][full..].iter().zip(&b[c][full..]).enumerate() {
                lanes[l] += p * q;
            }
            out[i][c] = combine(&lanes);
        }
    }
    out
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
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: this CPU has AVX2.
            return unsafe { self.score_block_avx2(images, captions, out) };
        }
        let (d, w) = (self.dim, captions.len());
        for (r, i) in images.enumerate() {
            let a = &self.img[i * d..(i + 1) * d];
            for (c, k) in captions.clone().enumerate() {
                out[r * w + c] = dot(a, &self.cap[k * d..(k + 1) * d]);
            }
        }
    }
}

impl DotScorer<'_> {
    /// Register blocks of `BI` images × `BC` captions ([`dot_block_avx2`]),
    /// the edges one pair at a time ([`dot`]): the same bits either way.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn score_block_avx2(&self, images: Range<usize>, captions: Range<usize>, out: &mut [f32]) {
        let d = self.dim;
        let w = captions.len();
        fn row(m: &[f32], i: usize, d: usize) -> &[f32] {
            &m[i * d..(i + 1) * d]
        }
        let (ni, nc) = (images.len(), captions.len());
        let (bi_end, bc_end) = (ni - ni % BI, nc - nc % BC);
        for r0 in (0..bi_end).step_by(BI) {
            let a: [&[f32]; BI] = std::array::from_fn(|t| row(self.img, images.start + r0 + t, d));
            for c0 in (0..bc_end).step_by(BC) {
                let b: [&[f32]; BC] =
                    std::array::from_fn(|t| row(self.cap, captions.start + c0 + t, d));
                let s = dot_block_avx2(a, b);
                for (t, srow) in s.iter().enumerate() {
                    out[(r0 + t) * w + c0..(r0 + t) * w + c0 + BC].copy_from_slice(srow);
                }
            }
        }
        for r in 0..ni {
            let a = row(self.img, images.start + r, d);
            let cols = if r < bi_end { bc_end..nc } else { 0..nc };
            for c in cols {
                out[r * w + c] = dot(a, row(self.cap, captions.start + c, d));
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

    /// The register-blocked path is bitwise the plain dot, edges included.
    #[test]
    fn blocks_equal_the_plain_dot_bitwise() {
        let d = 37;
        let img: Vec<f32> = (0..9 * d).map(|x| (x as f32 * 0.731).sin()).collect();
        let cap: Vec<f32> = (0..11 * d).map(|x| (x as f32 * 0.177).cos()).collect();
        let s = DotScorer::new(&img, &cap, d).unwrap();
        let (images, captions) = (1..8, 2..11);
        let mut out = vec![f32::NAN; images.len() * captions.len()];
        s.score_block(images.clone(), captions.clone(), &mut out);
        for (r, i) in images.enumerate() {
            for (c, k) in captions.clone().enumerate() {
                let want = dot(&img[i * d..(i + 1) * d], &cap[k * d..(k + 1) * d]);
                assert_eq!(out[r * 9 + c].to_bits(), want.to_bits(), "({i}, {k})");
            }
        }
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
