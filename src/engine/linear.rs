//! Fully connected layer, PyTorch `nn.Linear`: `y = x·Wᵀ + b` with
//! `weight: [out, in]`, `bias: [out]` (docs/method.md §5: the image FC 2048→1024 and the
//! similarity head's W_t 1024→256 and w_e 256→1).

use rand::Rng;

use crate::engine::gemm::{MatMut, MatRef, Par, gemm, transpose};
use crate::engine::param::{Module, Param};

/// `nn.Linear(in_dim, out_dim, bias)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    /// `{prefix}.weight`: [out, in].
    pub weight: Param,
    /// `{prefix}.bias`: [out], if the layer has one.
    pub bias: Option<Param>,
}

impl Linear {
    /// Zero-initialised layer named `{prefix}.weight` / `{prefix}.bias`.
    pub fn new(prefix: &str, in_dim: usize, out_dim: usize, bias: bool) -> Self {
        Linear {
            weight: Param::zeros(format!("{prefix}.weight"), &[out_dim, in_dim]),
            bias: bias.then(|| Param::zeros(format!("{prefix}.bias"), &[out_dim])),
        }
    }

    /// The authors' init (docs/method.md §5): Xavier-uniform weight, zero bias.
    pub fn xavier<R: Rng + ?Sized>(
        prefix: &str,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        rng: &mut R,
    ) -> Self {
        let mut l = Linear::new(prefix, in_dim, out_dim, bias);
        l.weight.init_xavier_uniform(rng);
        l
    }

    /// Input features.
    pub fn in_dim(&self) -> usize {
        self.weight.shape[1]
    }

    /// Output features.
    pub fn out_dim(&self) -> usize {
        self.weight.shape[0]
    }

    fn rows(&self, len: usize, dim: usize, what: &str) -> usize {
        assert!(
            dim > 0 && len.is_multiple_of(dim),
            "{}: {what} has {len} values, not a multiple of {dim}",
            self.weight.name
        );
        len / dim
    }

    /// `y ← x·Wᵀ + b`. x: [n, in] → y: [n, out] (overwritten).
    pub fn forward_into(&self, x: &[f32], y: &mut [f32], par: Par) {
        let (i, o) = (self.in_dim(), self.out_dim());
        let n = self.rows(x.len(), i, "input");
        assert_eq!(
            y.len(),
            n * o,
            "{}: output buffer for {n} rows",
            self.weight.name
        );
        gemm(
            MatMut::new(y, n, o),
            MatRef::new(x, n, i),
            MatRef::new(&self.weight.value, o, i).t(),
            1.0,
            0.0,
            par,
        );
        self.add_bias(y);
    }

    /// `Wᵀ`: [in, out] row-major, for [`Self::forward_into_t`].
    pub fn weight_t(&self) -> Vec<f32> {
        let (i, o) = (self.in_dim(), self.out_dim());
        let mut t = vec![0.0f32; i * o];
        transpose(&self.weight.value, o, i, &mut t);
        t
    }

    /// [`Self::forward_into`] with the weight given transposed, wt: [in, out]
    /// ([`Self::weight_t`], made once for many calls). A row-major `Wᵀ` is
    /// the layout faer's kernel reads without repacking it per call, which
    /// makes a 256-row product about 6 % faster (BENCHMARKS.md).
    pub fn forward_into_t(&self, x: &[f32], y: &mut [f32], wt: &[f32], par: Par) {
        let (i, o) = (self.in_dim(), self.out_dim());
        let n = self.rows(x.len(), i, "input");
        assert!(
            y.len() == n * o && wt.len() == i * o,
            "{}: output buffer for {n} rows, or a transposed weight of {} values",
            self.weight.name,
            wt.len()
        );
        gemm(
            MatMut::new(y, n, o),
            MatRef::new(x, n, i),
            MatRef::new(wt, i, o),
            1.0,
            0.0,
            par,
        );
        self.add_bias(y);
    }

    /// y: [n, out] += b.
    fn add_bias(&self, y: &mut [f32]) {
        if let Some(b) = &self.bias {
            for row in y.chunks_exact_mut(self.out_dim()) {
                row.iter_mut().zip(&b.value).for_each(|(v, &bb)| *v += bb);
            }
        }
    }

    /// x: [n, in] → y: [n, out].
    pub fn forward(&self, x: &[f32], par: Par) -> Vec<f32> {
        let n = self.rows(x.len(), self.in_dim(), "input");
        let mut y = vec![0.0; n * self.out_dim()];
        self.forward_into(x, &mut y, par);
        y
    }

    /// Accumulates `dW += dyᵀ·x`, `db += Σ_rows dy`, and, if `dx` is given,
    /// writes `dx ← dy·W`. x: [n, in] (the forward input), dy: [n, out], dx: [n, in].
    pub fn backward(&mut self, x: &[f32], dy: &[f32], dx: Option<&mut [f32]>, par: Par) {
        let (i, o) = (self.in_dim(), self.out_dim());
        let n = self.rows(x.len(), i, "input");
        assert_eq!(
            dy.len(),
            n * o,
            "{}: upstream grad for {n} rows",
            self.weight.name
        );
        gemm(
            MatMut::new(&mut self.weight.grad, o, i),
            MatRef::new(dy, n, o).t(),
            MatRef::new(x, n, i),
            1.0,
            1.0,
            par,
        );
        if let Some(b) = &mut self.bias {
            for row in dy.chunks_exact(o) {
                b.grad.iter_mut().zip(row).for_each(|(g, &d)| *g += d);
            }
        }
        if let Some(dx) = dx {
            assert_eq!(dx.len(), n * i, "{}: input grad buffer", self.weight.name);
            gemm(
                MatMut::new(dx, n, i),
                MatRef::new(dy, n, o),
                MatRef::new(&self.weight.value, o, i),
                1.0,
                0.0,
                par,
            );
        }
    }
}

impl Module for Linear {
    fn params(&self) -> Vec<&Param> {
        let mut v = vec![&self.weight];
        v.extend(self.bias.as_ref());
        v
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut v = vec![&mut self.weight];
        v.extend(self.bias.as_mut());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::seeded;
    use crate::engine::testutil::*;

    #[test]
    fn finite_differences() {
        let (n, i, o) = (5, 7, 4);
        let mut l = Linear::xavier("fc", i, o, true, &mut seeded(3));
        l.bias.as_mut().unwrap().value = rand_vec(o, 4, 0.5);
        let mut x = rand_vec(n * i, 5, 1.0);
        let c = rand_vec(n * o, 6, 1.0);
        let mut dx = vec![0.0; n * i];
        l.backward(&x, &c, Some(&mut dx), Par::Seq);
        // Accumulation: a second backward doubles the parameter grads.
        let g1 = l.weight.grad.clone();
        l.backward(&x, &c, None, Par::Seq);
        assert!(l.weight.grad.iter().zip(&g1).all(|(a, b)| *a == 2.0 * b));

        let fx = fd_grad(&mut x, FD_EPS, |x| dot_loss(&l.forward(x, Par::Seq), &c));
        assert_grad_close("dx", &dx, &fx);
        let mut w = l.weight.value.clone();
        let fw = fd_grad(&mut w, FD_EPS, |w| {
            let mut l2 = l.clone();
            l2.weight.value = w.to_vec();
            dot_loss(&l2.forward(&x, Par::Seq), &c)
        });
        assert_grad_close("dW", &g1, &fw);
        let mut b = l.bias.as_ref().unwrap().value.clone();
        let fb = fd_grad(&mut b, FD_EPS, |b| {
            let mut l2 = l.clone();
            l2.bias.as_mut().unwrap().value = b.to_vec();
            dot_loss(&l2.forward(&x, Par::Seq), &c)
        });
        let db: Vec<f32> = l
            .bias
            .as_ref()
            .unwrap()
            .grad
            .iter()
            .map(|g| g / 2.0)
            .collect();
        assert_grad_close("db", &db, &fb);
    }

    /// The transposed-weight product equals the plain one (to f32
    /// rounding: the GEMM may sum in another order), bias included.
    #[test]
    fn transposed_weight_gives_the_same_product() {
        let (n, i, o) = (9, 37, 11);
        let mut l = Linear::xavier("fc", i, o, true, &mut seeded(8));
        l.bias.as_mut().unwrap().value = rand_vec(o, 9, 0.5);
        let x = rand_vec(n * i, 10, 1.0);
        let wt = l.weight_t();
        assert_eq!(
            wt[3 * o + 2],
            l.weight.value[2 * i + 3],
            "Wᵀ[3][2] = W[2][3]"
        );
        let mut y = vec![0.0; n * o];
        l.forward_into_t(&x, &mut y, &wt, Par::Seq);
        let want = l.forward(&x, Par::Seq);
        for (a, b) in y.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
        }
    }

    #[test]
    fn names_and_no_bias() {
        let l = Linear::new("sim_enc.sim_eval_w", 256, 1, false);
        let names: Vec<&str> = l.params().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["sim_enc.sim_eval_w.weight"]);
        assert_eq!(l.num_params(), 256);
    }
}
