//! Global (one-row) embeddings for the ANN shortlist: the mean of an item's
//! rows (regions of an image, words of a caption), L2-normalised. For pooled
//! backbones (vse) the rows already are one normalised embedding, and this
//! only renormalises.

/// data: `[offsets[n], d]`, item i = rows `offsets[i]..offsets[i+1]` →
/// `[n, d]`, each row the L2-normalised mean (zero rows stay zero).
pub fn global_rows(data: &[f32], offsets: &[usize], d: usize) -> Vec<f32> {
    let n = offsets.len().saturating_sub(1);
    let mut out = vec![0.0f32; n * d];
    for (i, o) in out.chunks_exact_mut(d).enumerate() {
        let (a, b) = (offsets[i], offsets[i + 1]);
        for r in data[a * d..b * d].chunks_exact(d) {
            o.iter_mut().zip(r).for_each(|(x, &y)| *x += y);
        }
        let norm = o.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            o.iter_mut().for_each(|x| *x /= norm);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::encode::uniform_offsets;

    #[test]
    fn mean_then_unit_norm() {
        let data = [3.0, 0.0, 1.0, 0.0, 0.0, 2.0];
        let g = global_rows(&data, &[0, 2, 3], 2);
        assert_eq!(g, vec![1.0, 0.0, 0.0, 1.0]);
        assert_eq!(uniform_offsets(2, 3), vec![0, 3, 6]);
    }
}
