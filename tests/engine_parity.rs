//! PyTorch parity of the engine's layers, optimiser and clipping.
//!
//! Fixtures: `tests/fixtures/engine/*.safetensors`, written by
//! `tools/reference/make_engine_fixtures.py` (torch 2.15, CPU, float32,
//! `torch.manual_seed`, one thread); its docstring lists every tensor.
//!
//! Error measure, per tensor: `rel = max_i |ours_i − torch_i| / max_i |torch_i|`
//! (the worst error relative to the tensor's largest magnitude), asserted
//! `≤ 1e-5` unless a test states otherwise. Every comparison prints its `rel`
//! (`cargo test --release --test engine_parity -- --nocapture`).

use std::path::PathBuf;

use dbl::engine::activation::{
    leaky_relu_backward, leaky_relu_forward, sigmoid_backward, sigmoid_forward, softmax_backward,
    softmax_forward, tanh_backward, tanh_forward,
};
use dbl::engine::adam::{Adam, AdamConfig};
use dbl::engine::clip::clip_grad_norm;
use dbl::engine::embedding::Embedding;
use dbl::engine::gemm::Par;
use dbl::engine::gru::BiGru;
use dbl::engine::l2norm;
use dbl::engine::linear::Linear;
use dbl::engine::param::{Module, Param};
use safetensors::{Dtype, SafeTensors};

/// Default parity tolerance on `rel`.
const TOL: f64 = 1e-5;

struct Fixture {
    name: &'static str,
    bytes: Vec<u8>,
}

impl Fixture {
    fn open(name: &'static str) -> Self {
        let path: PathBuf = [
            env!("CARGO_MANIFEST_DIR"),
            "tests",
            "fixtures",
            "engine",
            name,
        ]
        .iter()
        .collect();
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (regenerate with python3 tools/reference/make_engine_fixtures.py)",
                path.display()
            )
        });
        Fixture { name, bytes }
    }

    fn view(&self, tensor: &str, dtype: Dtype) -> (Vec<usize>, &[u8]) {
        let st =
            SafeTensors::deserialize(&self.bytes).unwrap_or_else(|e| panic!("{}: {e}", self.name));
        let v = st
            .tensor(tensor)
            .unwrap_or_else(|e| panic!("{}: {tensor}: {e}", self.name));
        assert_eq!(v.dtype(), dtype, "{}: {tensor}: dtype", self.name);
        (v.shape().to_vec(), v.data())
    }

    fn f32(&self, tensor: &str) -> Vec<f32> {
        let (_, b) = self.view(tensor, Dtype::F32);
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn shape(&self, tensor: &str) -> Vec<usize> {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        st.tensor(tensor).unwrap().shape().to_vec()
    }

    fn i64(&self, tensor: &str) -> Vec<i64> {
        let (_, b) = self.view(tensor, Dtype::I64);
        b.chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn f64(&self, tensor: &str) -> f64 {
        let (_, b) = self.view(tensor, Dtype::F64);
        f64::from_le_bytes(b.try_into().unwrap())
    }

    /// Sets every parameter of `m` from the tensor of the same name.
    fn load_params(&self, m: &mut dyn Module) {
        for p in m.params_mut() {
            assert_eq!(
                self.shape(&p.name),
                p.shape,
                "{}: {} shape",
                self.name,
                p.name
            );
            p.value = self.f32(&p.name);
        }
    }
}

/// max|a − b| / max|b|; prints it and asserts it is within `tol`.
#[track_caller]
fn compare(file: &str, what: &str, ours: &[f32], theirs: &[f32], tol: f64) -> f64 {
    assert_eq!(ours.len(), theirs.len(), "{file}: {what}: length");
    let max_ref = theirs.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()));
    let max_err = ours
        .iter()
        .zip(theirs)
        .fold(0.0f64, |m, (&a, &b)| m.max((a as f64 - b as f64).abs()));
    assert!(
        ours.iter().all(|v| v.is_finite()),
        "{file}: {what}: non-finite values"
    );
    let rel = if max_ref > 0.0 {
        max_err / max_ref
    } else {
        max_err
    };
    println!("{file:<24} {what:<40} rel {rel:.2e}  (max|torch| {max_ref:.3e})");
    assert!(
        rel <= tol,
        "{file}: {what}: rel error {rel:.3e} > {tol:.0e}"
    );
    rel
}

fn lengths(fx: &Fixture) -> Vec<usize> {
    fx.i64("lengths").into_iter().map(|l| l as usize).collect()
}

#[test]
fn gru_small_matches_pytorch() {
    let fx = Fixture::open("gru_small.safetensors");
    let xs = fx.shape("x");
    let (l, i, h) = (xs[1], xs[2], fx.shape("c")[2]);
    let lens = lengths(&fx);
    for par in [Par::Seq, Par::Rayon(2)] {
        let mut g = BiGru::new("rnn", i, h);
        fx.load_params(&mut g);
        let (y, cache) = g.forward(&fx.f32("x"), &lens, l, par);
        compare(fx.name, &format!("y {par:?}"), &y, &fx.f32("y"), TOL);
        let dx = g.backward(&cache, &fx.f32("c"), par);
        compare(
            fx.name,
            &format!("grad_x {par:?}"),
            &dx,
            &fx.f32("grad_x"),
            TOL,
        );
        for p in g.params() {
            compare(
                fx.name,
                &format!("grad.{} {par:?}", p.name),
                &p.grad,
                &fx.f32(&format!("grad.{}", p.name)),
                TOL,
            );
        }
    }
}

/// The fixture script's `hash_uniform`: splitmix64 of (tag << 32 | i), top 24
/// bits k, value (k − 2^23)·2^-28 — exact in f32, so both sides hold identical weights.
fn hash_uniform(tag: u64, n: usize) -> Vec<f32> {
    (0..n as u64)
        .map(|i| {
            let mut z = (tag << 32 | i).wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let k = (z >> 40) as i64 - (1 << 23);
            (k as f64 * 2f64.powi(-28)) as f32
        })
        .collect()
}

/// Real dimensions (I = 300, H = 1024). Weight gradients are checked through
/// selected rows (rel as above), the squared Frobenius norm (relative error)
/// and a random probe Σ G⊙P, whose error is measured against ‖G‖·‖P‖ (the
/// Cauchy–Schwarz scale of the sum), all ≤ 1e-5.
#[test]
fn gru_real_dims_matches_pytorch() {
    let fx = Fixture::open("gru_real.safetensors");
    let xs = fx.shape("x");
    let (l, i, h) = (xs[1], xs[2], fx.shape("c")[2]);
    assert_eq!((i, h), (300, 1024));
    let lens = lengths(&fx);
    let rows: Vec<usize> = fx.i64("rows").into_iter().map(|r| r as usize).collect();
    let mut g = BiGru::new("rnn", i, h);
    for (k, p) in g.params_mut().into_iter().enumerate() {
        p.value = hash_uniform(k as u64 + 1, p.numel());
    }
    let par = Par::Rayon(2);
    let (y, cache) = g.forward(&fx.f32("x"), &lens, l, par);
    compare(fx.name, "y", &y, &fx.f32("y"), TOL);
    let dx = g.backward(&cache, &fx.f32("c"), par);
    compare(fx.name, "grad_x", &dx, &fx.f32("grad_x"), TOL);
    for (k, p) in g.params().into_iter().enumerate() {
        if p.shape.len() == 1 {
            compare(
                fx.name,
                &format!("grad.{}", p.name),
                &p.grad,
                &fx.f32(&format!("grad.{}", p.name)),
                TOL,
            );
            continue;
        }
        let cols = p.shape[1];
        let ours: Vec<f32> = rows
            .iter()
            .flat_map(|&r| p.grad[r * cols..(r + 1) * cols].to_vec())
            .collect();
        compare(
            fx.name,
            &format!("grad_rows.{}", p.name),
            &ours,
            &fx.f32(&format!("grad_rows.{}", p.name)),
            TOL,
        );
        let sq: f64 = p.grad.iter().map(|&v| v as f64 * v as f64).sum();
        let sq_ref = fx.f64(&format!("grad_sq.{}", p.name));
        let rel_sq = (sq - sq_ref).abs() / sq_ref;
        let probe = hash_uniform(k as u64 + 101, p.numel());
        let pr: f64 = p
            .grad
            .iter()
            .zip(&probe)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum();
        let pr_ref = fx.f64(&format!("grad_probe.{}", p.name));
        let scale = sq_ref.sqrt()
            * probe
                .iter()
                .map(|&v| v as f64 * v as f64)
                .sum::<f64>()
                .sqrt();
        let rel_pr = (pr - pr_ref).abs() / scale;
        println!(
            "{:<24} {:<40} rel {rel_sq:.2e}  |  probe rel {rel_pr:.2e}",
            fx.name,
            format!("grad_sq.{}", p.name)
        );
        assert!(
            rel_sq <= TOL && rel_pr <= TOL,
            "{}: {}: sq {rel_sq:.3e}, probe {rel_pr:.3e}",
            fx.name,
            p.name
        );
    }
}

#[test]
fn layer_chain_matches_pytorch() {
    let fx = Fixture::open("chain.safetensors");
    let ids: Vec<u32> = fx.i64("ids").into_iter().map(|v| v as u32).collect();
    let es = fx.shape("embed.weight");
    let mut emb = Embedding::new("embed", es[0], es[1]);
    let s1 = fx.shape("fc1.weight");
    let mut fc1 = Linear::new("fc1", s1[1], s1[0], true);
    let s2 = fx.shape("fc2.weight");
    let mut fc2 = Linear::new("fc2", s2[1], s2[0], true);
    fx.load_params(&mut emb);
    fx.load_params(&mut fc1);
    fx.load_params(&mut fc2);
    let par = Par::Seq;
    let (d1, d2) = (fc1.out_dim(), fc2.out_dim());

    let a1 = emb.forward(&ids);
    let a2 = fc1.forward(&a1, par);
    let mut a3 = a2.clone();
    leaky_relu_forward(&mut a3, 0.1);
    let mut a4 = a3.clone();
    let norms = l2norm::forward(&mut a4, d1);
    let mut a5: Vec<f32> = a4.iter().map(|v| v * 9.0).collect();
    softmax_forward(&mut a5, d1);
    let a6 = fc2.forward(&a5, par);
    let mut a7 = a6.clone();
    tanh_forward(&mut a7);
    let mut a8 = a7.clone();
    sigmoid_forward(&mut a8);
    for (k, a) in [&a1, &a2, &a3, &a4, &a5, &a6, &a7, &a8].iter().enumerate() {
        compare(
            fx.name,
            &format!("a{}", k + 1),
            a,
            &fx.f32(&format!("a{}", k + 1)),
            TOL,
        );
    }

    let mut g = fx.f32("c");
    sigmoid_backward(&a8, &mut g);
    tanh_backward(&a7, &mut g);
    let mut g5 = vec![0.0; a5.len()];
    fc2.backward(&a5, &g, Some(&mut g5), par);
    softmax_backward(&a5, &mut g5, d1);
    g5.iter_mut().for_each(|v| *v *= 9.0);
    l2norm::backward(&a4, &norms, &mut g5, d1);
    leaky_relu_backward(&a3, &mut g5, 0.1);
    let mut g1 = vec![0.0; a1.len()];
    fc1.backward(&a1, &g5, Some(&mut g1), par);
    emb.backward(&ids, &g1);
    assert_eq!(d2, 4);
    for m in [&emb as &dyn Module, &fc1, &fc2] {
        for p in m.params() {
            compare(
                fx.name,
                &format!("grad.{}", p.name),
                &p.grad,
                &fx.f32(&format!("grad.{}", p.name)),
                TOL,
            );
        }
    }
}

/// Two Adam steps (bias correction at steps 1 and 2, learning rate changed in
/// between). Parameters are compared with a tighter rel ≤ 1e-6 (their updates
/// are ~1e-2 of their size, so a wrong update would show at ~1e-3).
#[test]
fn adam_two_steps_match_pytorch() {
    let fx = Fixture::open("adam.safetensors");
    let mut ps = vec![
        Param::from_values("p0", &fx.shape("p0"), fx.f32("p0")),
        Param::from_values("p1", &fx.shape("p1"), fx.f32("p1")),
    ];
    let mut opt = Adam::new(
        AdamConfig {
            lr: 1e-2,
            ..Default::default()
        },
        &ps.iter().collect::<Vec<_>>(),
    )
    .unwrap();
    for (step, lr) in [(1, 1e-2), (2, 3e-3)] {
        opt.set_lr(lr).unwrap();
        for p in ps.iter_mut() {
            p.grad = fx.f32(&format!("s{step}.grad.{}", p.name));
        }
        opt.step(&mut ps.iter_mut().collect::<Vec<_>>(), Par::Seq)
            .unwrap();
        let state = opt.export_state().unwrap();
        assert_eq!(state[0].data, vec![step as f32]);
        for p in &ps {
            compare(
                fx.name,
                &format!("s{step}.{}", p.name),
                &p.value,
                &fx.f32(&format!("s{step}.{}", p.name)),
                1e-6,
            );
            for moment in ["exp_avg", "exp_avg_sq"] {
                let key = format!("{}.{moment}", p.name);
                let ours = &state.iter().find(|t| t.name == key).unwrap().data;
                compare(
                    fx.name,
                    &format!("s{step}.{key}"),
                    ours,
                    &fx.f32(&format!("s{step}.{key}")),
                    1e-6,
                );
            }
        }
    }
}

#[test]
fn clip_grad_norm_matches_pytorch() {
    let fx = Fixture::open("clip.safetensors");
    for case in ["hi", "lo"] {
        let mut ps: Vec<Param> = (0..3)
            .map(|i| {
                let key = format!("{case}.g{i}");
                let mut p = Param::zeros(format!("g{i}"), &fx.shape(&key));
                p.grad = fx.f32(&key);
                p
            })
            .collect();
        let total = clip_grad_norm(&mut ps.iter_mut().collect::<Vec<_>>(), 2.0);
        let want = fx.f32(&format!("{case}.total"));
        compare(fx.name, &format!("{case}.total"), &[total], &want, 1e-6);
        assert_eq!(
            case == "hi",
            want[0] > 2.0,
            "fixture case {case} on the wrong side of max_norm"
        );
        for (i, p) in ps.iter().enumerate() {
            let key = format!("{case}.clipped.g{i}");
            compare(fx.name, &key, &p.grad, &fx.f32(&key), 1e-6);
            if case == "lo" {
                assert_eq!(
                    p.grad,
                    fx.f32(&format!("{case}.g{i}")),
                    "below the threshold nothing changes"
                );
            }
        }
    }
}

/// `nn.BatchNorm1d` in training mode (batch statistics; running statistics
/// updated with momentum 0.1 and the unbiased variance) and then in eval mode
/// with the updated statistics, over [n, C, L] and [n, C] inputs.
/// Fixture: `batchnorm_train.safetensors` by `tools/reference/make_batchnorm_fixtures.py`.
#[test]
fn batchnorm_training_mode_matches_pytorch() {
    use dbl::engine::batchnorm::BatchNorm;
    use dbl::engine::batchnorm_train::RunningStats;
    let fx = Fixture::open("batchnorm_train.safetensors");
    let file = "batchnorm_train";
    for case in ["ncl", "nc"] {
        let t = |n: &str| fx.f32(&format!("{case}.{n}"));
        let shape = fx.shape(&format!("{case}.x"));
        let (c, inner) = (shape[1], shape.get(2).copied().unwrap_or(1));
        let mut bn = BatchNorm::new("bn", c);
        bn.weight.value = t("weight");
        bn.bias.value = t("bias");
        let mut running = RunningStats::new("bn", c);
        running.mean.value = t("running_mean");
        running.var.value = t("running_var");
        let x = t("x");
        let mut y = x.clone();
        let stats = bn.forward_train(&mut y, inner);
        compare(file, &format!("{case}.y"), &y, &t("y"), TOL);
        running.update(&stats);
        let what = format!("{case}.running_mean");
        compare(
            file,
            &what,
            &running.mean.value,
            &t("running_mean_after"),
            TOL,
        );
        let what = format!("{case}.running_var");
        compare(
            file,
            &what,
            &running.var.value,
            &t("running_var_after"),
            TOL,
        );
        let mut dx = t("dy");
        bn.backward_train(&x, &stats, &mut dx, inner);
        compare(file, &format!("{case}.grad_x"), &dx, &t("grad_x"), TOL);
        let what = format!("{case}.grad_weight");
        compare(file, &what, &bn.weight.grad, &t("grad_weight"), TOL);
        let what = format!("{case}.grad_bias");
        compare(file, &what, &bn.bias.grad, &t("grad_bias"), TOL);
        let mut ye = x.clone();
        running.forward_eval(&bn, &mut ye, inner);
        compare(file, &format!("{case}.y_eval"), &ye, &t("y_eval"), TOL);
    }
}
