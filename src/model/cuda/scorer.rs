//! [`CudaScorer`]: a loaded model's weights on a GPU, scoring a split as
//! `Trainable::score_split` does on the CPU — encode images, encode
//! captions, score every pair (scan-ave: the tiled head; vse: one GEMM of
//! the normalised embeddings) — in three phases the benchmark times apart.

use std::ops::Range;

use cudarc::driver::CudaSlice;

use super::scan::Tiling;
use super::text::DeviceWords;
use super::weights::DeviceWeights;
use super::{images, scan, text};
use crate::data::precomp::Precomp;
use crate::engine::cuda::blas::Operand;
use crate::engine::cuda::{CudaError, Gpu};
use crate::model::Model;
use crate::model::encode::read_rows;

/// A model on a GPU.
pub struct CudaScorer {
    gpu: Gpu,
    w: DeviceWeights,
    tiling: Tiling,
}

/// Encoded images on the device: [n, R, d] (scan-ave) or [n, d] (vse).
pub struct DeviceImages {
    rows: CudaSlice<f32>,
    n: usize,
    regions: usize,
}

impl CudaScorer {
    /// Opens GPU 0 and uploads `model`'s weights.
    pub fn new(model: &Model) -> Result<Self, CudaError> {
        let gpu = Gpu::open(0)?;
        let w = DeviceWeights::upload(&gpu, model)?;
        Ok(CudaScorer {
            gpu,
            w,
            tiling: Tiling::default(),
        })
    }

    /// Tiles the scan-ave head with `tiling` (scores do not depend on it).
    pub fn with_tiling(self, tiling: Tiling) -> Self {
        CudaScorer { tiling, ..self }
    }

    /// Width of the raw region features the image encoder takes.
    pub fn image_dim(&self) -> usize {
        self.w.img_fc.input
    }

    /// The device.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Encodes `n` images of `regions` regions; `rows(range)` returns their
    /// raw features [range.len(), R, img_dim].
    pub fn encode_images(
        &self,
        n: usize,
        regions: usize,
        rows: &mut dyn FnMut(Range<usize>) -> Vec<f32>,
    ) -> Result<DeviceImages, CudaError> {
        Ok(DeviceImages {
            rows: images::encode(&self.gpu, &self.w, n, regions, rows)?,
            n,
            regions,
        })
    }

    /// Encodes captions `0..n` (`caption(k)`: token ids).
    pub fn encode_captions<'a>(
        &self,
        n: usize,
        caption: &dyn Fn(usize) -> &'a [u32],
    ) -> Result<DeviceWords, CudaError> {
        text::encode(&self.gpu, &self.w, n, caption)
    }

    /// Scores every pair: → [n_img, n_cap] row-major (rows = images).
    pub fn score(&self, img: &DeviceImages, cap: &DeviceWords) -> Result<Vec<f32>, CudaError> {
        let n_cap = cap.offsets.len() - 1;
        let d = self.w.hidden;
        let out = match &self.w.head {
            Some(head) => scan::score(
                &self.gpu,
                self.tiling,
                head,
                &img.rows.slice(..),
                img.n,
                img.regions,
                &cap.rows.slice(..),
                &cap.offsets,
            )?,
            None => {
                let mut out = self.gpu.zeros(img.n * n_cap)?;
                let (iv, cv) = (img.rows.slice(..), cap.rows.slice(..));
                self.gpu.gemm(
                    &images::gemm_shape(img.n, n_cap, d),
                    Operand {
                        data: &iv,
                        ld: d,
                        t: false,
                    },
                    Operand {
                        data: &cv,
                        ld: d,
                        t: true,
                    },
                    &mut out.slice_mut(..),
                )?;
                out
            }
        };
        self.gpu.note_memory()?;
        self.gpu.download(&out.slice(..img.n * n_cap))
    }

    /// Encodes and scores a whole split: → [n_images, n_captions].
    pub fn score_split(&self, ds: &Precomp) -> Result<Vec<f32>, CudaError> {
        let map = ds.images();
        let img = self.encode_images(ds.n_images(), ds.n_regions(), &mut |range| {
            read_rows(map, range)
        })?;
        let cap = self.encode_captions(ds.len(), &|k| ds.caption(k))?;
        self.score(&img, &cap)
    }
}
