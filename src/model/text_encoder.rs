//! Text encoder (docs/method.md §5.2): `Embedding(V, word_dim)` (`txt_enc.embed`) →
//! Dropout (training only) → packed 1-layer bidirectional GRU
//! (`txt_enc.cap_rnn`), the two directions averaged → either L2 per word
//! (scan-ave) or the mean (or GPO, `txt_enc.gpool`) over the caption's valid
//! words then L2 (vse).
//! PyTorch: `TextEncoder` in `tools/reference/dbl_ref/models.py`.

use rand::Rng;

use crate::engine::dropout::{Dropout, DropoutMask, RowWindow};
use crate::engine::embedding::Embedding;
use crate::engine::gemm::Par;
use crate::engine::gru::{BiGru, GruCache};
use crate::engine::l2norm;
use crate::engine::param::{Module, Param};
use crate::engine::rng::EngineRng;
use crate::model::gpo::{Gpo, GpoCache};
use crate::model::scan_ave::{stack_words, unstack_words};

/// `txt_enc`.
#[derive(Debug, Clone, PartialEq)]
pub struct TextEncoder {
    /// `txt_enc.embed.weight`: [V, word_dim].
    pub embed: Embedding,
    /// `txt_enc.cap_rnn.*`: BiGRU(word_dim → d).
    pub rnn: BiGru,
    /// Word dropout.
    pub dropout: Dropout,
    /// `false`: per-word output [n, L, d]; `true`: pooled [n, d] (mean, or
    /// GPO when `gpool` is set).
    pub pool_mean: bool,
    /// `txt_enc.gpool`: GPO pooling over the words (vse with GPO).
    pub gpool: Option<Gpo>,
}

/// What [`TextEncoder::backward`] needs.
#[derive(Debug)]
pub struct TextCache {
    ids: Vec<u32>,
    lengths: Vec<usize>,
    max_len: usize,
    mask: DropoutMask,
    gru: GruCache,
    /// Normalised output (per word or pooled).
    y: Vec<f32>,
    norms: Vec<f32>,
    /// GPO: its cache and its input (the stacked words [N_w, d]).
    gpo: Option<(GpoCache, Vec<f32>)>,
}

impl TextEncoder {
    /// Embedding U(−0.1, 0.1), GRU U(±1/√d) (docs/method.md §5.2), drawn in that order.
    pub fn new<R: Rng + ?Sized>(
        vocab: usize,
        word_dim: usize,
        embed: usize,
        dropout: Dropout,
        pool_mean: bool,
        rng: &mut R,
    ) -> Self {
        TextEncoder {
            embed: Embedding::uniform("txt_enc.embed", vocab, word_dim, 0.1, rng),
            rnn: BiGru::uniform("txt_enc.cap_rnn", word_dim, embed, rng),
            dropout,
            pool_mean,
            gpool: None,
        }
    }

    /// [`Self::new`] pooling with GPO (`txt_enc.gpool`, drawn after the GRU).
    pub fn with_gpo<R: Rng + ?Sized>(
        vocab: usize,
        word_dim: usize,
        embed: usize,
        dropout: Dropout,
        rng: &mut R,
    ) -> Self {
        let mut t = Self::new(vocab, word_dim, embed, dropout, true, rng);
        t.gpool = Some(Gpo::new("txt_enc.gpool", rng));
        t
    }

    /// Output width d.
    pub fn embed_dim(&self) -> usize {
        self.rnn.hidden_dim()
    }

    /// ids: [n, L] padded, lengths: [n] non-increasing, each in 1..=L →
    /// [n, L, d] (zero rows past each length) or [n, d].
    pub fn forward(
        &self,
        ids: &[u32],
        lengths: &[usize],
        max_len: usize,
        train: bool,
        rng: &mut EngineRng,
        par: Par,
    ) -> (Vec<f32>, TextCache) {
        self.forward_rows(
            ids,
            lengths,
            max_len,
            (train, rng),
            RowWindow::all(lengths.len()),
            par,
        )
    }

    /// [`Self::forward`] of the captions at `rows` of a larger batch (all
    /// padded to that batch's `max_len`): their dropout masks are the ones
    /// they get in the whole batch ([`Dropout::forward_rows`]).
    pub fn forward_rows(
        &self,
        ids: &[u32],
        lengths: &[usize],
        max_len: usize,
        (train, rng): (bool, &mut EngineRng),
        rows: RowWindow,
        par: Par,
    ) -> (Vec<f32>, TextCache) {
        let d = self.embed_dim();
        let mut x = self.embed.forward(ids);
        let row_len = max_len * self.embed.dim();
        let mask = self.dropout.forward_rows(&mut x, train, rng, row_len, rows);
        let (words, gru) = self.rnn.forward(&x, lengths, max_len, par);
        let (mut y, gpo) = self.pool(words, lengths, max_len);
        let norms = l2norm::forward(&mut y, d);
        let cache = TextCache {
            ids: ids.to_vec(),
            lengths: lengths.to_vec(),
            max_len,
            mask,
            gru,
            y: y.clone(),
            norms,
            gpo,
        };
        (y, cache)
    }

    /// Eval-mode [`Self::forward`] for inference: the same output, bitwise,
    /// without the training cache (the GRU keeps no gates,
    /// [`BiGru::infer`]). ids: [n, L] padded, lengths: [n] non-increasing →
    /// [n, L, d] or [n, d].
    pub fn encode(&self, ids: &[u32], lengths: &[usize], max_len: usize, par: Par) -> Vec<f32> {
        let x = self.embed.forward(ids);
        let words = self.rnn.infer(&x, lengths, max_len, par);
        let (mut y, _) = self.pool(words, lengths, max_len);
        l2norm::forward(&mut y, self.embed_dim());
        y
    }

    /// The pooling after the GRU: GPO (with its cache and the stacked
    /// words), the mean, or the words as they are. words: [n, L, d].
    fn pool(
        &self,
        words: Vec<f32>,
        lengths: &[usize],
        max_len: usize,
    ) -> (Vec<f32>, Option<(GpoCache, Vec<f32>)>) {
        let d = self.embed_dim();
        if let Some(g) = &self.gpool {
            let (stacked, offsets) = stack_words(&words, lengths, max_len, d);
            let (y, c) = g.forward(&stacked, &offsets, d);
            (y, Some((c, stacked)))
        } else if self.pool_mean {
            let mut out = vec![0.0f32; lengths.len() * d];
            for (j, &len) in lengths.iter().enumerate() {
                let mut acc = vec![0.0f64; d];
                for t in 0..len {
                    let w = &words[(j * max_len + t) * d..(j * max_len + t + 1) * d];
                    acc.iter_mut().zip(w).for_each(|(a, &v)| *a += v as f64);
                }
                out[j * d..(j + 1) * d]
                    .iter_mut()
                    .zip(&acc)
                    .for_each(|(o, &a)| *o = (a / len as f64) as f32);
            }
            (out, None)
        } else {
            (words, None)
        }
    }

    /// dy: same shape as the forward output (values past a caption's length
    /// are ignored). Accumulates the embedding and GRU gradients.
    pub fn backward(&mut self, cache: TextCache, mut dy: Vec<f32>, par: Par) {
        let d = self.embed_dim();
        let (l, lengths) = (cache.max_len, &cache.lengths);
        if !self.pool_mean {
            for (j, &len) in lengths.iter().enumerate() {
                dy[(j * l + len) * d..(j + 1) * l * d].fill(0.0);
            }
        }
        l2norm::backward(&cache.y, &cache.norms, &mut dy, d);
        let d_words = if let (Some(g), Some((c, stacked))) = (&mut self.gpool, &cache.gpo) {
            let offsets: Vec<usize> = std::iter::once(0)
                .chain(lengths.iter().scan(0, |a, &n| {
                    *a += n;
                    Some(*a)
                }))
                .collect();
            unstack_words(&g.backward(stacked, c, &dy, d), &offsets, l, d)
        } else if self.pool_mean {
            let mut g = vec![0.0f32; lengths.len() * l * d];
            for (j, &len) in lengths.iter().enumerate() {
                let src = &dy[j * d..(j + 1) * d];
                let inv = 1.0 / len as f32;
                for t in 0..len {
                    g[(j * l + t) * d..(j * l + t + 1) * d]
                        .iter_mut()
                        .zip(src)
                        .for_each(|(a, &v)| *a = v * inv);
                }
            }
            g
        } else {
            dy
        };
        let mut dx = self.rnn.backward(&cache.gru, &d_words, par);
        cache.mask.backward(&mut dx);
        self.embed.backward(&cache.ids, &dx);
    }
}

impl Module for TextEncoder {
    fn params(&self) -> Vec<&Param> {
        let mut v = self.embed.params();
        v.extend(self.rnn.params());
        v.extend(self.gpool.iter().flat_map(|g| g.params()));
        v
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut v = self.embed.params_mut();
        v.extend(self.rnn.params_mut());
        v.extend(self.gpool.iter_mut().flat_map(|g| g.params_mut()));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::seeded;
    use crate::engine::simd::{self, Level};

    /// [`TextEncoder::encode`] gives the eval-mode forward's output bit for
    /// bit, with the words kept, mean pooling and GPO.
    #[test]
    fn encode_equals_the_eval_forward() {
        let (vocab, word_dim, embed, max_len) = (30, 6, 8, 5);
        let lengths = [5usize, 4, 4, 2];
        let ids: Vec<u32> = (0..lengths.len() * max_len)
            .map(|k| {
                if k % max_len < lengths[k / max_len] {
                    (k * 7 % vocab) as u32
                } else {
                    0
                }
            })
            .collect();
        let drop = || Dropout::new(0.4).unwrap();
        let encoders = [
            TextEncoder::new(vocab, word_dim, embed, drop(), false, &mut seeded(1)),
            TextEncoder::new(vocab, word_dim, embed, drop(), true, &mut seeded(2)),
            TextEncoder::with_gpo(vocab, word_dim, embed, drop(), &mut seeded(3)),
        ];
        for (k, enc) in encoders.iter().enumerate() {
            let (want, _) = enc.forward(&ids, &lengths, max_len, false, &mut seeded(4), Par::Seq);
            let got = enc.encode(&ids, &lengths, max_len, Par::Seq);
            assert_eq!(got, want, "encoder {k}");
            // The GRU gates at every vector level (engine::simd): the same bits.
            for level in [Level::Baseline, Level::Avx2] {
                let low = simd::capped(level, || enc.encode(&ids, &lengths, max_len, Par::Seq));
                assert_eq!(low, got, "encoder {k}, {level:?}");
            }
            assert!(got.iter().any(|&v| v != 0.0));
        }
    }
}
