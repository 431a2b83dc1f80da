//! Word embedding table, PyTorch `nn.Embedding(V, D)` without `padding_idx`
//! (docs/method.md §5: Embedding(V, 300), init U(−0.1, 0.1)). The gradient is dense:
//! `backward` scatter-adds each row of the upstream gradient into the row of
//! its id, so repeated ids accumulate.

use rand::Rng;

use crate::engine::param::{Module, Param};

/// `nn.Embedding(vocab, dim)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// `{prefix}.weight`: [vocab, dim].
    pub weight: Param,
}

impl Embedding {
    /// Zero-initialised table named `{prefix}.weight`.
    pub fn new(prefix: &str, vocab: usize, dim: usize) -> Self {
        Embedding {
            weight: Param::zeros(format!("{prefix}.weight"), &[vocab, dim]),
        }
    }

    /// Table initialised U(−a, a) (the authors use a = 0.1).
    pub fn uniform<R: Rng + ?Sized>(
        prefix: &str,
        vocab: usize,
        dim: usize,
        a: f32,
        rng: &mut R,
    ) -> Self {
        let mut e = Embedding::new(prefix, vocab, dim);
        e.weight.init_uniform(rng, a);
        e
    }

    /// Rows in the table.
    pub fn vocab(&self) -> usize {
        self.weight.shape[0]
    }

    /// Width of each row.
    pub fn dim(&self) -> usize {
        self.weight.shape[1]
    }

    #[track_caller]
    fn check_id(&self, id: u32) -> usize {
        let v = self.vocab();
        assert!(
            (id as usize) < v,
            "{}: id {id} out of range for a table of {v} rows",
            self.weight.name
        );
        id as usize
    }

    /// Gathers rows. ids: [n] → y: [n, dim] (overwritten).
    pub fn forward_into(&self, ids: &[u32], y: &mut [f32]) {
        let d = self.dim();
        assert_eq!(
            y.len(),
            ids.len() * d,
            "{}: output buffer",
            self.weight.name
        );
        for (&id, row) in ids.iter().zip(y.chunks_exact_mut(d)) {
            let r = self.check_id(id);
            row.copy_from_slice(&self.weight.value[r * d..(r + 1) * d]);
        }
    }

    /// ids: [n] → [n, dim].
    pub fn forward(&self, ids: &[u32]) -> Vec<f32> {
        let mut y = vec![0.0; ids.len() * self.dim()];
        self.forward_into(ids, &mut y);
        y
    }

    /// Accumulates `dW[id] += dy[row]` for each row. ids: [n], dy: [n, dim].
    pub fn backward(&mut self, ids: &[u32], dy: &[f32]) {
        let d = self.dim();
        assert_eq!(
            dy.len(),
            ids.len() * d,
            "{}: upstream grad",
            self.weight.name
        );
        for (&id, row) in ids.iter().zip(dy.chunks_exact(d)) {
            let r = self.check_id(id);
            self.weight.grad[r * d..(r + 1) * d]
                .iter_mut()
                .zip(row)
                .for_each(|(g, &v)| *g += v);
        }
    }
}

impl Module for Embedding {
    fn params(&self) -> Vec<&Param> {
        vec![&self.weight]
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.weight]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::seeded;
    use crate::engine::testutil::*;

    #[test]
    fn finite_differences_with_repeated_ids() {
        let mut e = Embedding::uniform("embed", 6, 4, 0.1, &mut seeded(1));
        assert!(e.weight.value.iter().all(|v| v.abs() <= 0.1));
        let ids = [3u32, 0, 3, 5, 3, 1];
        let c = rand_vec(ids.len() * 4, 2, 1.0);
        e.backward(&ids, &c);
        let mut w = e.weight.value.clone();
        let fw = fd_grad(&mut w, FD_EPS, |w| {
            let mut e2 = e.clone();
            e2.weight.value = w.to_vec();
            dot_loss(&e2.forward(&ids), &c)
        });
        assert_grad_close("dW", &e.weight.grad, &fw);
        // Row 2 and 4 are never looked up: exactly zero gradient.
        assert!(e.weight.grad[8..12].iter().all(|&g| g == 0.0));
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn out_of_range_id_panics() {
        Embedding::new("embed", 3, 2).forward(&[3]);
    }
}
