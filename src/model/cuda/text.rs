//! The text encoder on the GPU (model/text_encoder.rs, engine/gru.rs):
//! embedding lookup, the bidirectional GRU over packed sequences (time-major,
//! the captions of a chunk sorted by length, descending, as
//! `pack_padded_sequence` needs), the two directions averaged and scattered
//! to each word's row, then L2 per word (scan-ave) or the mean of each
//! caption's words then L2 (vse). One GEMM per direction for the input
//! projections of a chunk, one GEMM + one gate kernel per step.

use std::cmp::Reverse;

use cudarc::driver::{CudaSlice, CudaView};

use super::images::gemm_shape;
use super::weights::{DeviceGru, DeviceWeights};
use crate::engine::cuda::blas::Operand;
use crate::engine::cuda::error::int;
use crate::engine::cuda::{CudaError, Gpu};

/// Captions per GRU chunk.
const CHUNK: usize = 2048;

/// Encoded captions on the device: caption `j` owns rows
/// `offsets[j]..offsets[j+1]` of `rows` ([N_w, d]; one row per caption for vse).
pub struct DeviceWords {
    /// [N_w, d]
    pub rows: CudaSlice<f32>,
    /// [n_cap + 1], offsets[0] = 0.
    pub offsets: Vec<usize>,
}

/// How a chunk (sorted by length, descending) packs time-major.
struct Packing {
    /// Sequences active at step t.
    batch_sizes: Vec<usize>,
    /// First packed row of step t; the last entry is the token count.
    offsets: Vec<usize>,
}

impl Packing {
    fn new(lengths: &[usize]) -> Self {
        let steps = lengths.first().copied().unwrap_or(0);
        let batch_sizes: Vec<usize> = (0..steps)
            .map(|t| lengths.iter().take_while(|&&l| l > t).count())
            .collect();
        let mut offsets = vec![0];
        for &b in &batch_sizes {
            offsets.push(offsets.last().copied().unwrap_or(0) + b);
        }
        Packing {
            batch_sizes,
            offsets,
        }
    }
    fn tokens(&self) -> usize {
        self.offsets.last().copied().unwrap_or(0)
    }
}

/// Encodes captions `0..n` (`caption(k)`: its token ids, at least one).
pub fn encode<'a>(
    gpu: &Gpu,
    w: &DeviceWeights,
    n: usize,
    caption: &dyn Fn(usize) -> &'a [u32],
) -> Result<DeviceWords, CudaError> {
    let d = w.hidden;
    let mut word_off = Vec::with_capacity(n + 1);
    word_off.push(0usize);
    for k in 0..n {
        let cap = caption(k);
        if cap.is_empty() {
            return Err(CudaError::EmptyCaption(k));
        }
        if let Some(&id) = cap.iter().find(|&&id| id as usize >= w.vocab) {
            return Err(CudaError::TokenOutOfRange {
                caption: k,
                id,
                vocab: w.vocab,
            });
        }
        word_off.push(word_off[k] + cap.len());
    }
    let mut words = gpu.zeros(word_off[n] * d)?;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&k| Reverse(caption(k).len()));
    for chunk in order.chunks(CHUNK) {
        let lengths: Vec<usize> = chunk.iter().map(|&k| caption(k).len()).collect();
        let pk = Packing::new(&lengths);
        let mut ids = Vec::with_capacity(pk.tokens());
        let mut dest = Vec::with_capacity(pk.tokens());
        for (t, &bs) in pk.batch_sizes.iter().enumerate() {
            for &k in &chunk[..bs] {
                ids.push(caption(k)[t] as i32);
                dest.push(int("word row", word_off[k] + t)?);
            }
        }
        let ids = gpu.upload(&ids)?;
        let dest = gpu.upload(&dest)?;
        let n_tok = pk.tokens();
        let mut x = gpu.zeros(n_tok * w.word_dim)?;
        gpu.embed_gather(
            &w.embed.slice(..),
            &ids.slice(..),
            &mut x.slice_mut(..),
            n_tok,
            w.word_dim,
        )?;
        let hf = direction(gpu, w, &w.gru[0], &pk, &x.slice(..), false)?;
        let hb = direction(gpu, w, &w.gru[1], &pk, &x.slice(..), true)?;
        gpu.gru_avg_scatter(
            &hf.slice(..),
            &hb.slice(..),
            &dest.slice(..),
            &mut words.slice_mut(..),
            n_tok,
            d,
        )?;
        gpu.note_memory()?;
    }
    let zero_bias = gpu.zeros(d)?;
    if !w.text_mean {
        gpu.bias_l2norm_rows(
            &mut words.slice_mut(..),
            &zero_bias.slice(..),
            word_off[n],
            d,
        )?;
        return Ok(DeviceWords {
            rows: words,
            offsets: word_off,
        });
    }
    let off32 = word_off
        .iter()
        .map(|&o| int("word offset", o))
        .collect::<Result<Vec<i32>, _>>()?;
    let off_dev = gpu.upload(&off32)?;
    let mut caps = gpu.zeros(n * d)?;
    gpu.mean_pool_captions(
        &words.slice(..),
        &off_dev.slice(..),
        &mut caps.slice_mut(..),
        n,
        d,
    )?;
    gpu.bias_l2norm_rows(&mut caps.slice_mut(..), &zero_bias.slice(..), n, d)?;
    Ok(DeviceWords {
        rows: caps,
        offsets: (0..=n).collect(),
    })
}

/// One direction over a packed chunk: x: [n_tok, I] → hidden states [n_tok, H]
/// (packed order). `reverse` runs from each sequence's last token back.
fn direction(
    gpu: &Gpu,
    w: &DeviceWeights,
    g: &DeviceGru,
    pk: &Packing,
    x: &CudaView<'_, f32>,
    reverse: bool,
) -> Result<CudaSlice<f32>, CudaError> {
    let (h, i_dim) = (w.hidden, w.word_dim);
    let g3 = 3 * h;
    let n_tok = pk.tokens();
    let steps = pk.batch_sizes.len();
    let mut gi = gpu.zeros(n_tok * g3)?;
    let w_ih = g.w_ih.slice(..);
    gpu.gemm(
        &gemm_shape(n_tok, g3, i_dim),
        Operand {
            data: x,
            ld: i_dim,
            t: false,
        },
        Operand {
            data: &w_ih,
            ld: i_dim,
            t: true,
        },
        &mut gi.slice_mut(..),
    )?;
    let mut hs = gpu.zeros(n_tok * h)?;
    let mut gh = gpu.zeros(pk.batch_sizes.first().copied().unwrap_or(0) * g3)?;
    let w_hh = g.w_hh.slice(..);
    let (b_ih, b_hh) = (g.b_ih.slice(..), g.b_hh.slice(..));
    for s in 0..steps {
        let t = if reverse { steps - 1 - s } else { s };
        let (n, off) = (pk.batch_sizes[t], pk.offsets[t]);
        // The predecessor block: step t − 1 (forward) or t + 1 (reverse).
        let (n_prev, prev_off) = match reverse {
            false if t > 0 => (pk.batch_sizes[t], pk.offsets[t - 1]),
            true if t + 1 < steps => (pk.batch_sizes[t + 1], pk.offsets[t + 1]),
            _ => (0, 0),
        };
        // Split the hidden states into this step's rows and its predecessor's.
        let split = if reverse { pk.offsets[t + 1] } else { off };
        let (mut before, mut after) = hs.split_at_mut(split * h);
        let (prev, mut cur) = if reverse {
            (
                after.slice(..n_prev * h),
                before.slice_mut(off * h..(off + n) * h),
            )
        } else {
            (
                before.slice(prev_off * h..(prev_off + n_prev) * h),
                after.slice_mut(..n * h),
            )
        };
        if n_prev > 0 {
            gpu.gemm(
                &gemm_shape(n_prev, g3, h),
                Operand {
                    data: &prev,
                    ld: h,
                    t: false,
                },
                Operand {
                    data: &w_hh,
                    ld: h,
                    t: true,
                },
                &mut gh.slice_mut(..n_prev * g3),
            )?;
        }
        gpu.gru_gates(
            &gi.slice(off * g3..(off + n) * g3),
            &gh.slice(..),
            &b_ih,
            &b_hh,
            &prev,
            &mut cur,
            n,
            n_prev,
            h,
        )?;
    }
    Ok(hs)
}

#[cfg(test)]
mod tests {
    use super::Packing;

    /// Time-major packing of lengths [3, 2, 2, 1]: 4 sequences at step 0,
    /// 3 at step 1, 1 at step 2 (PyTorch's `batch_sizes`).
    #[test]
    fn packing_matches_pack_padded_sequence() {
        let p = Packing::new(&[3, 2, 2, 1]);
        assert_eq!(p.batch_sizes, vec![4, 3, 1]);
        assert_eq!(p.offsets, vec![0, 4, 7, 8]);
        assert_eq!(p.tokens(), 8);
    }
}
