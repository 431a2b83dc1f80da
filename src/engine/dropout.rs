//! Inverted dropout, PyTorch `nn.Dropout(p)` (docs/method.md §5: p = 0.4 on the word
//! embeddings): in training each element is kept with probability 1 − p and
//! scaled by 1/(1 − p); in eval mode it is the identity. The mask comes from
//! an explicit generator (one `u32` per element, dropped iff
//! [`unit_f32`](crate::engine::rng::unit_f32) < p), so a seed fixes it; the
//! numbers differ from PyTorch's generator by design.

use rand::Rng;

use crate::engine::error::EngineError;
use crate::engine::rng::{EngineRng, unit_f32};

/// `nn.Dropout(p)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    p: f32,
}

/// What [`Dropout::forward`] applied, needed by the backward pass.
#[derive(Debug, Clone, PartialEq)]
pub enum DropoutMask {
    /// Eval mode (or p = 0): nothing was changed.
    Identity,
    /// Per-element factor: 0 (dropped) or 1/(1 − p) (kept).
    Scale(Vec<f32>),
}

impl Dropout {
    /// A dropout layer; `p` must lie in [0, 1).
    pub fn new(p: f32) -> Result<Self, EngineError> {
        if !(0.0..1.0).contains(&p) {
            return Err(EngineError::Config {
                field: "dropout p",
                value: p.to_string(),
                expected: "a probability in [0, 1)",
            });
        }
        Ok(Dropout { p })
    }

    /// The drop probability.
    pub fn p(&self) -> f32 {
        self.p
    }

    /// Applies dropout to `x` in place and returns the mask. In eval mode
    /// (`train = false`) nothing is drawn from `rng` and `x` is unchanged.
    pub fn forward<R: Rng + ?Sized>(&self, x: &mut [f32], train: bool, rng: &mut R) -> DropoutMask {
        if !train || self.p == 0.0 {
            return DropoutMask::Identity;
        }
        let keep = 1.0 / (1.0 - self.p);
        let scale: Vec<f32> = (0..x.len())
            .map(|_| if unit_f32(rng) < self.p { 0.0 } else { keep })
            .collect();
        x.iter_mut().zip(&scale).for_each(|(v, &s)| *v *= s);
        DropoutMask::Scale(scale)
    }
}

/// Where one shard's rows sit in a batch-wide mask: rows
/// `first..first + n` of `total` rows (data-parallel training, `crate::dist`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowWindow {
    /// First row of the shard in the batch.
    pub first: usize,
    /// Rows of the whole batch.
    pub total: usize,
}

impl RowWindow {
    /// The whole batch of `n` rows.
    pub fn all(n: usize) -> Self {
        RowWindow { first: 0, total: n }
    }
}

impl Dropout {
    /// [`Self::forward`] on rows `rows.first..` of a batch-wide input of
    /// `rows.total` rows of `row_len` elements: `x` holds this shard's rows and
    /// gets exactly the mask those rows get when the whole batch is dropped out
    /// at once, and `rng` ends where the whole batch leaves it (the stream is
    /// skipped, not drawn, past other ranks' rows). So masks are keyed by the
    /// sample's place in the global batch and never depend on the shard count.
    pub fn forward_rows(
        &self,
        x: &mut [f32],
        train: bool,
        rng: &mut EngineRng,
        row_len: usize,
        rows: RowWindow,
    ) -> DropoutMask {
        if !train || self.p == 0.0 {
            return DropoutMask::Identity;
        }
        let start = rng.get_word_pos();
        rng.set_word_pos(start + (rows.first * row_len) as u128);
        let mask = self.forward(x, train, rng);
        rng.set_word_pos(start + (rows.total * row_len) as u128);
        mask
    }
}

impl DropoutMask {
    /// `dx = dy ⊙ mask`, in place on the upstream gradient. dy: same shape as the forward input.
    pub fn backward(&self, dy: &mut [f32]) {
        if let DropoutMask::Scale(s) = self {
            assert_eq!(
                s.len(),
                dy.len(),
                "dropout: gradient length differs from the mask"
            );
            dy.iter_mut().zip(s).for_each(|(g, &m)| *g *= m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::seeded;
    use crate::engine::testutil::*;

    #[test]
    fn rate_scale_and_seed() {
        let d = Dropout::new(0.4).unwrap();
        let x0 = rand_vec(20_000, 1, 1.0);
        let mut x = x0.clone();
        let mask = d.forward(&mut x, true, &mut seeded(9));
        let DropoutMask::Scale(s) = &mask else {
            panic!("expected a mask")
        };
        let dropped = s.iter().filter(|&&v| v == 0.0).count() as f64 / s.len() as f64;
        // Binomial(20000, 0.4): sd of the rate 0.0035; 0.02 is > 5 sd.
        assert!((dropped - 0.4).abs() < 0.02, "drop rate {dropped}");
        for ((&a, &b), &m) in x.iter().zip(&x0).zip(s) {
            assert!(m == 0.0 || m == 1.0 / 0.6);
            assert_eq!(a, b * m);
        }
        let mut y = x0.clone();
        assert_eq!(d.forward(&mut y, true, &mut seeded(9)), mask);
        let mut e = x0.clone();
        assert_eq!(
            d.forward(&mut e, false, &mut seeded(9)),
            DropoutMask::Identity
        );
        assert_eq!(e, x0);
        assert!(Dropout::new(1.0).is_err());
        assert!(Dropout::new(-0.1).is_err());
    }

    /// A shard's mask is the matching slice of the whole batch's mask, and
    /// the generator ends at the same position.
    #[test]
    fn row_windows_slice_the_batch_mask() {
        let d = Dropout::new(0.4).unwrap();
        let (rows, row_len) = (5, 7);
        let mut whole_rng = seeded(3);
        let whole = d.forward_rows(
            &mut vec![1.0; rows * row_len],
            true,
            &mut whole_rng,
            row_len,
            RowWindow::all(rows),
        );
        let DropoutMask::Scale(whole) = whole else {
            panic!("expected a mask")
        };
        for (first, n) in [(0, 2), (2, 3), (4, 1), (5, 0)] {
            let mut r = seeded(3);
            let m = d.forward_rows(
                &mut vec![1.0; n * row_len],
                true,
                &mut r,
                row_len,
                RowWindow { first, total: rows },
            );
            let DropoutMask::Scale(m) = m else {
                panic!("expected a mask")
            };
            assert_eq!(m, whole[first * row_len..(first + n) * row_len]);
            assert_eq!(r.get_word_pos(), whole_rng.get_word_pos());
        }
    }

    #[test]
    fn finite_differences() {
        let d = Dropout::new(0.4).unwrap();
        let mut x = rand_vec(50, 2, 1.0);
        let c = rand_vec(50, 3, 1.0);
        let mask = d.forward(&mut x.clone(), true, &mut seeded(4));
        let mut g = c.clone();
        mask.backward(&mut g);
        let fx = fd_grad(&mut x, FD_EPS, |x| {
            let mut y = x.to_vec();
            d.forward(&mut y, true, &mut seeded(4));
            dot_loss(&y, &c)
        });
        assert_grad_close("dx", &g, &fx);
    }
}
