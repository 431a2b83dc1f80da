//! sgr / saf explanation of one pair (docs/method.md §16): the local
//! alignment's attention and each node's exact share of the pre-sigmoid logit,
//! read from [`SgrafHead::trace_pair`] (the scorer's own pass).

use crate::engine::l2norm::EPS;
use crate::model::explain::{Link, PairExplanation, dot, eval_layer, rows};
use crate::model::sgraf::head::{Reasoning, SgrafHead};

/// sgr / saf: img: `[1 + R, d]` (global vector first); cap: `[1 + n_w, d]`.
pub fn sgraf(head: &SgrafHead, img: &[f32], cap: &[f32]) -> PairExplanation {
    let d = head.embed();
    let t = head.trace_pair(img, &cap[d..], &cap[..d]);
    let s = head.local.sim_dim();
    let n = t.nodes.len() / s;
    let r = t.attention.len() / (n - 1);
    let (we, be) = eval_layer(&head.local);
    let (per_node, constant, method): (Vec<f64>, f64, &'static str) = match &head.reason {
        Reasoning::Saf(_) => {
            let inv = 1.0 / (t.vector_norm + EPS) as f64;
            let c = t
                .nodes
                .chunks_exact(s)
                .zip(&t.node_weights)
                .map(|(x, &a)| a as f64 * dot(we, x) * inv)
                .collect();
            (
                c,
                be,
                "each node's share of the pre-sigmoid logit w_e·v (v = the normalised \
                 attention-filtered sum of the nodes; node 0 = global alignment); \
                 score = σ(Σ + bias)",
            )
        }
        Reasoning::Sgr(steps) => {
            let g = &steps[steps.len() - 1].graph;
            // u = W_gᵀ (m ⊙ w_e): the relu's active features only.
            let mut u = vec![0.0f64; s];
            let mut constant = be;
            let bias = g.bias.as_ref().map(|b| &b.value);
            for (o, (&y, &w)) in t.vector.iter().zip(we).enumerate() {
                if y > 0.0 {
                    let row = &g.weight.value[o * s..(o + 1) * s];
                    u.iter_mut()
                        .zip(row)
                        .for_each(|(a, &x)| *a += w as f64 * x as f64);
                    constant += bias.map_or(0.0, |b| w as f64 * b[o] as f64);
                }
            }
            let c = t
                .nodes
                .chunks_exact(s)
                .zip(&t.node_weights)
                .map(|(x, &e)| {
                    e as f64 * x.iter().zip(&u).map(|(&a, &b)| a as f64 * b).sum::<f64>()
                })
                .collect();
            (
                c,
                constant,
                "each node's share of the pre-sigmoid logit through the last reasoning step \
                 (edge from the global node × the node's projected value, relu active set \
                 fixed; node k = word k after the first steps); score = σ(Σ + biases)",
            )
        }
    };
    PairExplanation {
        score: t.score,
        link: Link::Sigmoid,
        attention: Some(rows(&t.attention, r)),
        word_contributions: per_node[1..].to_vec(),
        global_contribution: Some(per_node[0]),
        node_weights: Some(t.node_weights),
        features: Vec::new(),
        constant,
        method,
    }
}
