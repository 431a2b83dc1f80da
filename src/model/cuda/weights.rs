//! The parameters of a [`Model`] on the device, uploaded once, plus the
//! shape facts the GPU passes need. Biases that a layer lacks are uploaded
//! as zeros (adding +0.0 changes no value).

use cudarc::driver::CudaSlice;

use crate::engine::cuda::{CudaError, Gpu};
use crate::engine::gru::GruDirection;
use crate::engine::linear::Linear;
use crate::model::Model;
use crate::model::config::VsePool;

/// A linear layer. weight: [out, in]; bias: [out].
pub struct DeviceLinear {
    /// [out, in]
    pub weight: CudaSlice<f32>,
    /// [out]
    pub bias: CudaSlice<f32>,
    /// Input width.
    pub input: usize,
    /// Output width.
    pub output: usize,
}

impl DeviceLinear {
    fn upload(gpu: &Gpu, l: &Linear) -> Result<Self, CudaError> {
        let zeros = vec![0.0f32; l.out_dim()];
        Ok(DeviceLinear {
            weight: gpu.upload(&l.weight.value)?,
            bias: gpu.upload(l.bias.as_ref().map_or(&zeros, |b| &b.value))?,
            input: l.in_dim(),
            output: l.out_dim(),
        })
    }
}

/// One GRU direction. w_ih: [3H, I]; w_hh: [3H, H]; biases: [3H].
pub struct DeviceGru {
    /// [3H, I]
    pub w_ih: CudaSlice<f32>,
    /// [3H, H]
    pub w_hh: CudaSlice<f32>,
    /// [3H]
    pub b_ih: CudaSlice<f32>,
    /// [3H]
    pub b_hh: CudaSlice<f32>,
}

impl DeviceGru {
    fn upload(gpu: &Gpu, g: &GruDirection) -> Result<Self, CudaError> {
        Ok(DeviceGru {
            w_ih: gpu.upload(&g.weight_ih.value)?,
            w_hh: gpu.upload(&g.weight_hh.value)?,
            b_ih: gpu.upload(&g.bias_ih.value)?,
            b_hh: gpu.upload(&g.bias_hh.value)?,
        })
    }
}

/// The scan-ave head. tran: d → S; eval: S → 1.
pub struct DeviceHead {
    /// `sim_tran_w`.
    pub tran: DeviceLinear,
    /// `sim_eval_w.weight`: [S].
    pub eval_w: CudaSlice<f32>,
    /// `sim_eval_w.bias` (0 without one).
    pub eval_b: f32,
    /// Softmax smoothing λ.
    pub smooth: f32,
}

/// Every parameter of a backbone, on the device.
pub struct DeviceWeights {
    /// `img_enc.fc`.
    pub img_fc: DeviceLinear,
    /// vse pooling of regions (None: scan-ave keeps every region).
    pub img_pool: Option<VsePool>,
    /// `txt_enc.embed.weight`: [V, word_dim].
    pub embed: CudaSlice<f32>,
    /// Vocabulary size V.
    pub vocab: usize,
    /// Word vector width.
    pub word_dim: usize,
    /// GRU hidden width = embedding width d.
    pub hidden: usize,
    /// Forward and backward directions.
    pub gru: [DeviceGru; 2],
    /// vse: captions are the mean of their words.
    pub text_mean: bool,
    /// scan-ave's head.
    pub head: Option<DeviceHead>,
}

impl DeviceWeights {
    /// Uploads `model`'s parameters to `gpu`.
    pub fn upload(gpu: &Gpu, model: &Model) -> Result<Self, CudaError> {
        let (img, txt, head) = match model {
            Model::ScanAve(_, m) => (&m.img_enc, &m.txt_enc, Some(&m.sim_enc)),
            Model::Vse(_, m) => (&m.img_enc, &m.txt_enc, None),
            other => {
                return Err(CudaError::UnsupportedBackbone(
                    other.config().backbone.name(),
                ));
            }
        };
        if model.config().vse_pool == VsePool::Gpo && matches!(model, Model::Vse(..)) {
            return Err(CudaError::UnsupportedBackbone("vse with GPO pooling"));
        }
        let head = head
            .map(|h| -> Result<DeviceHead, CudaError> {
                Ok(DeviceHead {
                    tran: DeviceLinear::upload(gpu, &h.tran)?,
                    eval_w: gpu.upload(&h.eval.weight.value)?,
                    eval_b: h.eval.bias.as_ref().map_or(0.0, |b| b.value[0]),
                    smooth: h.smooth,
                })
            })
            .transpose()?;
        Ok(DeviceWeights {
            img_fc: DeviceLinear::upload(gpu, &img.fc)?,
            img_pool: img.pool,
            embed: gpu.upload(&txt.embed.weight.value)?,
            vocab: txt.embed.vocab(),
            word_dim: txt.embed.dim(),
            hidden: txt.rnn.hidden_dim(),
            gru: [
                DeviceGru::upload(gpu, &txt.rnn.fwd)?,
                DeviceGru::upload(gpu, &txt.rnn.bwd)?,
            ],
            text_mean: txt.pool_mean,
            head,
        })
    }
}
