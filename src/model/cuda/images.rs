//! The image encoder on the GPU (model/image_encoder.rs): `fc` on every
//! region then L2 (scan-ave); vse max-pools the FC outputs over regions
//! (`max(x + b) = max(x) + b` exactly, so the bias is added after pooling)
//! or FCs the mean of the raw regions, then L2.

use std::ops::Range;

use cudarc::driver::CudaSlice;

use super::weights::DeviceWeights;
use crate::engine::cuda::blas::{Operand, Shape};
use crate::engine::cuda::{CudaError, Gpu};
use crate::model::config::VsePool;

/// Images uploaded per chunk.
const CHUNK: usize = 512;

/// Encodes `n` images of `regions` regions each; `rows(range)` returns their
/// raw features `[range.len(), R, img_dim]`. → [n, R, d] (scan-ave) or [n, d] (vse).
pub fn encode(
    gpu: &Gpu,
    w: &DeviceWeights,
    n: usize,
    regions: usize,
    rows: &mut dyn FnMut(Range<usize>) -> Vec<f32>,
) -> Result<CudaSlice<f32>, CudaError> {
    let fc = &w.img_fc;
    let (din, d) = (fc.input, fc.output);
    let per_image = match w.img_pool {
        None => regions,
        Some(_) => 1,
    };
    let mut out = gpu.zeros(n * per_image * d)?;
    // FC outputs of every region of a chunk (vse max pooling only).
    let mut regions_buf = match w.img_pool {
        Some(VsePool::Max) => Some(gpu.zeros(CHUNK.min(n) * regions * d)?),
        _ => None,
    };
    let mut pooled = match w.img_pool {
        Some(VsePool::Mean) => Some(gpu.zeros(CHUNK.min(n) * din)?),
        _ => None,
    };
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        let m = end - start;
        let x = gpu.upload(&rows(start..end))?;
        let xv = x.slice(..);
        let wv = fc.weight.slice(..);
        let wop = Operand {
            data: &wv,
            ld: din,
            t: true,
        };
        let mut dst = out.slice_mut(start * per_image * d..end * per_image * d);
        match w.img_pool {
            None => {
                let shape = gemm_shape(m * regions, d, din);
                let xop = Operand {
                    data: &xv,
                    ld: din,
                    t: false,
                };
                gpu.gemm(&shape, xop, wop, &mut dst)?;
            }
            Some(VsePool::Max) => {
                let buf = regions_buf.as_mut().expect("allocated for max pooling");
                let mut bv = buf.slice_mut(..m * regions * d);
                let xop = Operand {
                    data: &xv,
                    ld: din,
                    t: false,
                };
                gpu.gemm(&gemm_shape(m * regions, d, din), xop, wop, &mut bv)?;
                gpu.max_pool_regions(&bv.slice(..), &mut dst, m, regions, d)?;
            }
            Some(VsePool::Mean) => {
                let buf = pooled.as_mut().expect("allocated for mean pooling");
                let mut pv = buf.slice_mut(..m * din);
                gpu.mean_pool_regions(&xv, &mut pv, m, regions, din)?;
                let pr = pv.slice(..);
                let xop = Operand {
                    data: &pr,
                    ld: din,
                    t: false,
                };
                gpu.gemm(&gemm_shape(m, d, din), xop, wop, &mut dst)?;
            }
            // Refused when the weights are uploaded (DeviceWeights::upload).
            Some(VsePool::Gpo) => {
                return Err(CudaError::UnsupportedBackbone("vse with GPO pooling"));
            }
        }
        gpu.bias_l2norm_rows(&mut dst, &fc.bias.slice(..), m * per_image, d)?;
    }
    gpu.note_memory()?;
    Ok(out)
}

/// `C[m, n] = A[m, k]·B[k, n]` into a fresh C.
pub(super) fn gemm_shape(m: usize, n: usize, k: usize) -> Shape {
    Shape {
        m,
        n,
        k,
        ldc: n,
        alpha: 1.0,
        beta: 0.0,
    }
}
