//! Back-propagating only the pairs the loss reaches (docs/method.md §15).
//!
//! A pair (image i, caption j) whose loss gradient `d_sims[i][j]` is exactly
//! zero contributes exactly zero to every gradient of a similarity head: each
//! pair's score depends on that pair's own inputs only (dbl's batch norms
//! never use batch statistics, docs/method.md §13.4). The hardest-negative
//! triplet loss (docs/method.md §3.1) leaves at most 3B non-zero entries of
//! the B² — in row i the positive, the row's hardest negative and the
//! captions whose hardest negative image is i, about three per row — so the
//! heads' backward
//! passes ([`crate::model::scan_head::ScanHead::backward`],
//! [`crate::model::sgraf::head::SgrafHead::backward`]) gather those captions
//! into a compact batch ([`CompactWords`]), recompute their forward state
//! (a few captions per image) and back-propagate it, instead of walking all
//! B captions. The result equals the full pass up to the f32 rounding of the
//! gradient sums (tested per head).

use std::ops::Range;

use crate::model::scan_head::Words;

/// How one image's backward pass walks its captions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every caption, from the forward pass's kept state.
    Dense,
    /// Only these captions (ascending; possibly none), recomputed.
    Sparse(Vec<usize>),
}

/// The selection for one image's gradient row ds: [n_cap]. Sparse when at
/// most half the entries are non-zero (a NaN counts as non-zero, so it
/// still propagates); recomputing a caption's forward state costs about half
/// its backward pass, so beyond that the kept state is cheaper.
pub fn select(ds: &[f32]) -> Selection {
    let sel: Vec<usize> = (0..ds.len()).filter(|&j| ds[j] != 0.0).collect();
    if 2 * sel.len() > ds.len() {
        Selection::Dense
    } else {
        Selection::Sparse(sel)
    }
}

/// Rows `sel` of a row-major matrix with rows of `width` values.
/// src: [n, width] → [sel.len(), width].
pub fn gather_rows(src: &[f32], sel: &[usize], width: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(sel.len() * width);
    for &j in sel {
        out.extend_from_slice(&src[j * width..(j + 1) * width]);
    }
    out
}

/// Adds the rows of src: [sel.len(), width] into rows `sel` of dst: [n, width].
pub fn scatter_add_rows(src: &[f32], sel: &[usize], dst: &mut [f32], width: usize) {
    for (row, &j) in src.chunks_exact(width).zip(sel) {
        dst[j * width..(j + 1) * width]
            .iter_mut()
            .zip(row)
            .for_each(|(a, &b)| *a += b);
    }
}

/// Some captions of a [`Words`] batch, copied into a batch of their own.
#[derive(Debug, Clone)]
pub struct CompactWords {
    data: Vec<f32>,
    offsets: Vec<usize>,
    /// Where each kept caption's words were, as rows of the source view.
    rows: Vec<Range<usize>>,
}

impl CompactWords {
    /// Captions `sel` (indices into `w`) of `w`, whose words are d wide.
    pub fn gather(w: Words<'_>, sel: &[usize], d: usize) -> Self {
        let o0 = w.offsets[0];
        let mut data = Vec::new();
        let mut offsets = Vec::with_capacity(sel.len() + 1);
        let mut rows = Vec::with_capacity(sel.len());
        offsets.push(0);
        for &j in sel {
            let r = w.offsets[j] - o0..w.offsets[j + 1] - o0;
            data.extend_from_slice(&w.data[r.start * d..r.end * d]);
            offsets.push(offsets.last().copied().unwrap_or(0) + r.len());
            rows.push(r);
        }
        CompactWords {
            data,
            offsets,
            rows,
        }
    }

    /// The compact batch. [Σ kept n_j, d]
    pub fn view(&self) -> Words<'_> {
        Words {
            data: &self.data,
            offsets: &self.offsets,
        }
    }

    /// Adds the compact batch's word gradients src: [Σ kept n_j, d] into
    /// the source view's dst: [N_w of the source, d].
    pub fn scatter_add(&self, src: &[f32], dst: &mut [f32], d: usize) {
        for (k, r) in self.rows.iter().enumerate() {
            let from = &src[self.offsets[k] * d..self.offsets[k + 1] * d];
            dst[r.start * d..r.end * d]
                .iter_mut()
                .zip(from)
                .for_each(|(a, &b)| *a += b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_is_sparse_up_to_half() {
        assert_eq!(
            select(&[0.0, 1.0, 0.0, 0.0]),
            Selection::Sparse(vec![1]),
            "one of four"
        );
        assert_eq!(
            select(&[0.0, 1.0, 0.0, -2.0]),
            Selection::Sparse(vec![1, 3])
        );
        assert_eq!(select(&[0.0, 1.0, 3.0, -2.0]), Selection::Dense);
        assert_eq!(select(&[0.0; 5]), Selection::Sparse(vec![]));
        assert_eq!(
            select(&[f32::NAN, 0.0, 0.0]),
            Selection::Sparse(vec![0]),
            "NaN is kept"
        );
    }

    #[test]
    fn gather_and_scatter_round_trip() {
        // A view whose offsets do not start at 0 (a tile of a larger batch).
        let d = 2;
        let offsets = [3usize, 5, 6, 9];
        let data: Vec<f32> = (0..12).map(|x| x as f32).collect();
        let w = Words {
            data: &data,
            offsets: &offsets,
        };
        let cw = CompactWords::gather(w, &[0, 2], d);
        let v = cw.view();
        assert_eq!(v.offsets, &[0, 2, 5]);
        assert_eq!(
            v.data,
            &[0.0, 1.0, 2.0, 3.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0]
        );
        let mut dst = vec![1.0f32; 12];
        cw.scatter_add(&[1.0; 10], &mut dst, d);
        assert_eq!(&dst[..4], &[2.0; 4]);
        assert_eq!(&dst[4..6], &[1.0; 2], "caption 1 untouched");
        assert_eq!(&dst[6..], &[2.0; 6]);
        let m = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(gather_rows(&m, &[2, 0], 2), vec![5.0, 6.0, 1.0, 2.0]);
        let mut acc = vec![0.0f32; 6];
        scatter_add_rows(&[1.0, 2.0], &[1], &mut acc, 2);
        assert_eq!(acc, vec![0.0, 0.0, 1.0, 2.0, 0.0, 0.0]);
    }
}
