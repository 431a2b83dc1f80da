//! The scan-ave similarity head on the GPU (model/scan_head.rs, forward
//! only), tiled: a block of `nb` images × a tile of captions holding at most
//! `nw` words. Per tile:
//!
//! 1. `A = W·V_blkᵀ` [nw, nb·R] (one GEMM for the whole image block);
//! 2. `scan_attend`: LeakyReLU, per-caption-per-region norm, softmax → α [nb, nw, R];
//! 3. `C_i = α_i·V_i` (strided-batched GEMM) [nb, nw, d], then
//!    `scan_context_square`: `D = (L2(C) − W)²` in place;
//! 4. `T = D·W_tᵀ` [nb·nw, S] (one GEMM), `+ b_t` and L2 per row;
//! 5. `scan_pool_score`: mean over each caption's words, L2, `tanh(w_e·h + b_e)`.
//!
//! Memory: the `[nb, nw, d]` tile (1 GiB at nb = 32, nw = 8192, d = 1024) is
//! the largest buffer; the `B²·L·d` tensor of the whole split never exists.

use cudarc::driver::{CudaSlice, CudaView};

use super::images::gemm_shape;
use super::weights::DeviceHead;
use crate::engine::cuda::blas::{Operand, Shape};
use crate::engine::cuda::error::int;
use crate::engine::cuda::{CudaError, Gpu};

/// How the head tiles the work. Scores do not depend on it (each score
/// depends only on its own image and caption); tests shrink it to cross
/// block and tile edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// Images per block (32).
    pub block_images: usize,
    /// Words per caption tile (8192; a longer caption is a tile of its own).
    pub tile_words: usize,
}

impl Default for Tiling {
    fn default() -> Self {
        Tiling {
            block_images: 32,
            tile_words: 8192,
        }
    }
}

/// Consecutive caption ranges of at most `max_words` words (by `offsets`).
fn tiles(offsets: &[usize], max_words: usize) -> Vec<(usize, usize)> {
    let n = offsets.len() - 1;
    let mut out = Vec::new();
    let mut start = 0;
    for j in 0..n {
        if j > start && offsets[j + 1] - offsets[start] > max_words {
            out.push((start, j));
            start = j;
        }
    }
    if start < n {
        out.push((start, n));
    }
    out
}

/// Scores every image of `img` ([n_img, R, d]) against every caption
/// (`words`: [N_w, d], caption j = rows `offsets[j]..offsets[j+1]`).
/// → [n_img, n_cap] on the device.
#[allow(clippy::too_many_arguments)]
pub fn score(
    gpu: &Gpu,
    tiling: Tiling,
    head: &DeviceHead,
    img: &CudaView<'_, f32>,
    n_img: usize,
    regions: usize,
    words: &CudaView<'_, f32>,
    offsets: &[usize],
) -> Result<CudaSlice<f32>, CudaError> {
    let (d, s, r) = (head.tran.input, head.tran.output, regions);
    let n_cap = offsets.len() - 1;
    let mut out = gpu.zeros(n_img * n_cap)?;
    if n_img == 0 || n_cap == 0 {
        return Ok(out);
    }
    let tl = tiles(offsets, tiling.tile_words.max(1));
    let nw_max = tl
        .iter()
        .map(|&(a, b)| offsets[b] - offsets[a])
        .max()
        .unwrap_or(0);
    let block = tiling.block_images.max(1);
    let nb_max = block.min(n_img);
    let off32 = offsets
        .iter()
        .map(|&o| int("word offset", o))
        .collect::<Result<Vec<i32>, _>>()?;
    let off_dev = gpu.upload(&off32)?;
    let mut att = gpu.zeros(nw_max * nb_max * r)?;
    let mut alpha = gpu.zeros(nb_max * nw_max * r)?;
    let mut ctx = gpu.zeros(nb_max * nw_max * d)?;
    let mut proj = gpu.zeros(nb_max * nw_max * s)?;
    gpu.note_memory()?;
    let wt = head.tran.weight.slice(..);
    for i0 in (0..n_img).step_by(block) {
        let nb = block.min(n_img - i0);
        let v = img.slice(i0 * r * d..(i0 + nb) * r * d);
        for &(c0, c1) in &tl {
            let (w0, nw) = (offsets[c0], offsets[c1] - offsets[c0]);
            let wv = words.slice(w0 * d..(w0 + nw) * d);
            let off = off_dev.slice(c0..=c1);
            // 1. A = W·Vᵀ: [nw, nb·R].
            let mut a = att.slice_mut(..nw * nb * r);
            gpu.gemm(
                &gemm_shape(nw, nb * r, d),
                Operand {
                    data: &wv,
                    ld: d,
                    t: false,
                },
                Operand {
                    data: &v,
                    ld: d,
                    t: true,
                },
                &mut a,
            )?;
            // 2. α: [nb, nw, R].
            let mut al = alpha.slice_mut(..nb * nw * r);
            gpu.scan_attend(
                &a.slice(..),
                &off,
                w0,
                &mut al,
                c1 - c0,
                nw,
                nb,
                r,
                head.smooth,
            )?;
            // 3. C_i = α_i·V_i, then D = (L2(C) − W)².
            let mut c = ctx.slice_mut(..nb * nw * d);
            let alv = al.slice(..);
            gpu.gemm_strided_batched(
                &Shape {
                    m: nw,
                    n: d,
                    k: r,
                    ldc: d,
                    alpha: 1.0,
                    beta: 0.0,
                },
                Operand {
                    data: &alv,
                    ld: r,
                    t: false,
                },
                nw * r,
                Operand {
                    data: &v,
                    ld: d,
                    t: false,
                },
                r * d,
                &mut c,
                nw * d,
                nb,
            )?;
            gpu.scan_context_square(&mut c, &wv, nw, nb, d)?;
            // 4. T = D·W_tᵀ + b_t, L2 per row.
            let mut t = proj.slice_mut(..nb * nw * s);
            let cv = c.slice(..);
            gpu.gemm(
                &gemm_shape(nb * nw, s, d),
                Operand {
                    data: &cv,
                    ld: d,
                    t: false,
                },
                Operand {
                    data: &wt,
                    ld: d,
                    t: true,
                },
                &mut t,
            )?;
            gpu.bias_l2norm_rows(&mut t, &head.tran.bias.slice(..), nb * nw, s)?;
            // 5. Pool, score.
            gpu.scan_pool_score(
                &t.slice(..),
                &off,
                w0,
                nw,
                s,
                &head.eval_w.slice(..),
                head.eval_b,
                &mut out.slice_mut(..),
                n_cap,
                (i0, c0, c1 - c0, nb),
            )?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::tiles;

    #[test]
    fn tiles_cover_every_caption_once_within_the_limit() {
        let offsets = [0, 3, 5, 12, 13, 20];
        assert_eq!(tiles(&offsets, 5), vec![(0, 2), (2, 3), (3, 4), (4, 5)]);
        assert_eq!(tiles(&offsets, 100), vec![(0, 5)]);
        assert_eq!(tiles(&[0], 5), Vec::<(usize, usize)>::new());
    }
}
