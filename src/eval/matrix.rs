//! A validated, borrowed view of an image x caption similarity matrix
//! (docs/method.md §8 steps 2–3): rows are images, caption `k` belongs to image
//! `k / cpi` where `cpi = n_cap / n_img` (5 for Flickr30K and MSCOCO).
//! The same layout as the authors' `sims` array of shape `(N, 5N)`.

use rayon::prelude::*;

use super::error::EvalError;

/// Row-major similarity matrix view, possibly a sub-block of a larger buffer
/// (rows `row_stride` values apart), e.g. one COCO 1K fold of the 5K matrix.
///
/// Invariants (checked once by [`SimMatrix::new`]): at least one image and one
/// caption, `n_cap` a whole multiple of `n_img`, every score finite.
#[derive(Debug, Clone, Copy)]
pub struct SimMatrix<'a> {
    /// data: `[n_img, row_stride]`, of which the first `n_cap` columns are used.
    data: &'a [f32],
    n_img: usize,
    n_cap: usize,
    row_stride: usize,
}

impl<'a> SimMatrix<'a> {
    /// Wraps a dense row-major matrix. data: `[n_img, n_cap]`.
    ///
    /// Validates the shape and that every score is finite (a NaN or ±inf is
    /// reported with its position); the scan runs in parallel.
    pub fn new(data: &'a [f32], n_img: usize, n_cap: usize) -> Result<Self, EvalError> {
        Self::with_stride(data, n_img, n_cap, n_cap)
    }

    /// Wraps a row-major matrix whose rows start `row_stride` values apart.
    /// data: at least `[(n_img - 1) * row_stride + n_cap]`.
    pub fn with_stride(
        data: &'a [f32],
        n_img: usize,
        n_cap: usize,
        row_stride: usize,
    ) -> Result<Self, EvalError> {
        let m = Self::check_shape(data, n_img, n_cap, row_stride)?;
        m.check_finite()?;
        Ok(m)
    }

    /// Shape checks only (no finiteness scan).
    fn check_shape(
        data: &'a [f32],
        n_img: usize,
        n_cap: usize,
        row_stride: usize,
    ) -> Result<Self, EvalError> {
        if n_img == 0 || n_cap == 0 {
            return Err(EvalError::Empty { n_img, n_cap });
        }
        if !n_cap.is_multiple_of(n_img) {
            return Err(EvalError::CaptionsPerImage { n_img, n_cap });
        }
        if row_stride < n_cap {
            return Err(EvalError::Stride {
                stride: row_stride,
                n_cap,
            });
        }
        let needed = (n_img - 1)
            .checked_mul(row_stride)
            .and_then(|x| x.checked_add(n_cap))
            .ok_or(EvalError::TooLarge { n_img, n_cap })?;
        if data.len() < needed {
            return Err(EvalError::Buffer {
                len: data.len(),
                n_img,
                n_cap,
                stride: row_stride,
                needed,
            });
        }
        Ok(Self {
            data,
            n_img,
            n_cap,
            row_stride,
        })
    }

    fn check_finite(&self) -> Result<(), EvalError> {
        let bad = (0..self.n_img).into_par_iter().find_map_first(|i| {
            self.row(i)
                .iter()
                .position(|x| !x.is_finite())
                .map(|col| (i, col))
        });
        match bad {
            None => Ok(()),
            Some((row, col)) => Err(EvalError::NonFinite {
                row,
                col,
                value: self.row(row)[col],
            }),
        }
    }

    /// Number of images (rows).
    pub fn n_img(&self) -> usize {
        self.n_img
    }

    /// Number of captions (columns).
    pub fn n_cap(&self) -> usize {
        self.n_cap
    }

    /// Captions per image, `n_cap / n_img`.
    pub fn captions_per_image(&self) -> usize {
        self.n_cap / self.n_img
    }

    /// Scores of image `i` against every caption. row: `[n_cap]`.
    /// Panics if `i >= n_img`.
    pub fn row(&self, i: usize) -> &'a [f32] {
        assert!(i < self.n_img, "image {i} out of range 0..{}", self.n_img);
        let start = i * self.row_stride;
        &self.data[start..start + self.n_cap]
    }

    /// Score of image `i` against caption `k`. Panics if out of range.
    pub fn get(&self, i: usize, k: usize) -> f32 {
        self.row(i)[k]
    }

    /// The sub-matrix of images `first_img..first_img + n_img` against
    /// captions `first_cap..first_cap + n_cap`, without copying (already
    /// validated scores are not scanned again).
    pub fn block(
        &self,
        first_img: usize,
        n_img: usize,
        first_cap: usize,
        n_cap: usize,
    ) -> Result<SimMatrix<'a>, EvalError> {
        let in_range = first_img
            .checked_add(n_img)
            .is_some_and(|e| e <= self.n_img)
            && first_cap
                .checked_add(n_cap)
                .is_some_and(|e| e <= self.n_cap);
        if !in_range {
            return Err(EvalError::Buffer {
                len: self.n_img * self.n_cap,
                n_img: first_img.saturating_add(n_img),
                n_cap: first_cap.saturating_add(n_cap),
                stride: self.row_stride,
                needed: first_img.saturating_add(n_img).saturating_mul(self.n_cap),
            });
        }
        let offset = first_img * self.row_stride + first_cap;
        Self::check_shape(&self.data[offset..], n_img, n_cap, self.row_stride)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_shapes() {
        let d = vec![0.0f32; 12];
        assert_eq!(
            SimMatrix::new(&d, 0, 5).unwrap_err(),
            EvalError::Empty { n_img: 0, n_cap: 5 }
        );
        assert_eq!(
            SimMatrix::new(&d, 2, 5).unwrap_err(),
            EvalError::CaptionsPerImage { n_img: 2, n_cap: 5 }
        );
        assert!(matches!(
            SimMatrix::new(&d, 2, 8).unwrap_err(),
            EvalError::Buffer { needed: 16, .. }
        ));
        assert!(SimMatrix::new(&d, 2, 6).is_ok());
        assert_eq!(SimMatrix::new(&d, 2, 6).unwrap().captions_per_image(), 3);
    }

    #[test]
    fn reports_first_non_finite_position() {
        let mut d = vec![0.5f32; 2 * 6];
        d[6 + 4] = f32::NAN;
        d[6 + 5] = f32::INFINITY;
        match SimMatrix::new(&d, 2, 6).unwrap_err() {
            EvalError::NonFinite { row, col, value } => {
                assert_eq!((row, col), (1, 4));
                assert!(value.is_nan());
            }
            e => panic!("unexpected {e:?}"),
        }
    }

    #[test]
    fn block_views_the_right_values() {
        // 4 x 8 matrix with value 10*i + k.
        let d: Vec<f32> = (0..4)
            .flat_map(|i| (0..8).map(move |k| (10 * i + k) as f32))
            .collect();
        let m = SimMatrix::new(&d, 4, 8).unwrap();
        let b = m.block(2, 2, 4, 4).unwrap();
        assert_eq!(b.row(0), &[24.0, 25.0, 26.0, 27.0]);
        assert_eq!(b.row(1), &[34.0, 35.0, 36.0, 37.0]);
        assert!(m.block(3, 2, 0, 4).is_err());
        assert!(m.block(0, 2, 6, 4).is_err());
    }
}
