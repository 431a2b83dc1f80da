//! A validated square score matrix (docs/method.md §2): `[n, n]` row-major, rows =
//! images, columns = captions, S[i][j] = s(image i, caption j), positives on
//! the diagonal. Scores are widened from f32 to f64 (exactly) once, so every
//! loss works in f64 like the float64 PyTorch fixtures.

use super::LossError;

/// Square score matrix, validated: `n >= 1`, `n * n` values, all finite.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreMatrix {
    n: usize,
    data: Vec<f64>,
}

impl ScoreMatrix {
    /// Wraps `data: [n, n]` (row-major f32, e.g. a model's output).
    /// `what` names the matrix in error messages (e.g. `"S^t (branch 1)"`).
    pub fn from_f32(what: &str, data: &[f32], n: usize) -> Result<Self, LossError> {
        Self::check_len(what, data.len(), n)?;
        if let Some(k) = data.iter().position(|v| !v.is_finite()) {
            return Err(LossError::NonFinite {
                what: what.to_string(),
                row: k / n,
                col: k % n,
                value: data[k],
            });
        }
        Ok(Self {
            n,
            data: data.iter().map(|&v| f64::from(v)).collect(),
        })
    }

    /// Wraps `data: [n, n]` (row-major f64), e.g. for finite-difference checks.
    pub fn from_f64(what: &str, data: Vec<f64>, n: usize) -> Result<Self, LossError> {
        Self::check_len(what, data.len(), n)?;
        if let Some(k) = data.iter().position(|v| !v.is_finite()) {
            return Err(LossError::NonFinite {
                what: what.to_string(),
                row: k / n,
                col: k % n,
                value: data[k] as f32,
            });
        }
        Ok(Self { n, data })
    }

    fn check_len(what: &str, len: usize, n: usize) -> Result<(), LossError> {
        if n == 0 {
            return Err(LossError::Empty {
                what: what.to_string(),
            });
        }
        if n.checked_mul(n) != Some(len) {
            return Err(LossError::NotSquare {
                what: what.to_string(),
                n,
                len,
            });
        }
        Ok(())
    }

    /// Batch size B (number of positive pairs).
    pub fn n(&self) -> usize {
        self.n
    }

    /// S[i][j].
    #[inline]
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.n + j]
    }

    /// All scores, row-major `[n, n]`.
    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }

    /// The transpose (rows = captions), for the t2i direction of softmax losses.
    pub fn transposed(&self) -> ScoreMatrix {
        ScoreMatrix {
            n: self.n,
            data: transpose(&self.data, self.n),
        }
    }

    /// Errors unless `other` has the same size as `self` (the target).
    pub(crate) fn check_same_size(&self, what: &str, other: &ScoreMatrix) -> Result<(), LossError> {
        if other.n == self.n {
            Ok(())
        } else {
            Err(LossError::SizeMismatch {
                what: what.to_string(),
                target: self.n,
                other: other.n,
            })
        }
    }
}

/// Transpose of a row-major `[n, n]` matrix.
pub(crate) fn transpose(m: &[f64], n: usize) -> Vec<f64> {
    let mut t = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            t[j * n + i] = m[i * n + j];
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_shapes_and_values() {
        assert!(matches!(
            ScoreMatrix::from_f32("S^t", &[0.0; 5], 2),
            Err(LossError::NotSquare { n: 2, len: 5, .. })
        ));
        assert!(matches!(
            ScoreMatrix::from_f32("S^t", &[], 0),
            Err(LossError::Empty { .. })
        ));
        let err = ScoreMatrix::from_f32("S^a", &[0.0, 1.0, f32::NAN, 0.5], 2).unwrap_err();
        assert!(matches!(err, LossError::NonFinite { row: 1, col: 0, .. }));
        assert!(err.to_string().contains("S^a"), "{err}");
    }

    #[test]
    fn widens_exactly_and_transposes() {
        let s = ScoreMatrix::from_f32("S", &[0.1, 0.2, 0.3, 0.4], 2).unwrap();
        assert_eq!(s.get(1, 0), f64::from(0.3f32));
        let t = s.transposed();
        assert_eq!(t.get(0, 1), s.get(1, 0));
        assert_eq!(t.get(1, 1), s.get(1, 1));
    }
}
