//! A scoring repetition on the GPU (feature `cuda`, issue #16): the same
//! split, model and phases as [`super::score::ScoreBench::run`], through
//! [`CudaScorer`]. The scorer (weights uploaded, kernels compiled) is made
//! once before the repetitions; each phase ends with the stream synchronised,
//! so its wall time covers the device work (the image phase includes reading
//! the memory-mapped features and copying them to the device).

use std::time::Instant;

use super::BenchError;
use super::score::{Phases, ScoreBench, finish};
use crate::engine::cuda::CudaError;
use crate::model::cuda::CudaScorer;
use crate::model::encode::read_rows;

impl ScoreBench {
    /// The GPU scorer of this benchmark's model (opens GPU 0).
    pub fn cuda_scorer(&self) -> Result<CudaScorer, CudaError> {
        CudaScorer::new(self.model())
    }

    /// [`ScoreBench::run`] on the GPU: → (scores [n_img, n_cap], phase seconds).
    pub fn run_cuda(&self, s: &CudaScorer) -> Result<(Vec<f32>, Phases), BenchError> {
        let (features, regions) = (self.features(), self.regions());
        let t0 = Instant::now();
        let img = s.encode_images(self.n_images(), regions, &mut |range| {
            read_rows(features, range)
        })?;
        s.gpu().synchronize()?;
        let t1 = Instant::now();
        let caps = self.captions();
        let cap = s.encode_captions(caps.len(), &|k| &caps[k])?;
        s.gpu().synchronize()?;
        let t2 = Instant::now();
        let sims = s.score(&img, &cap)?;
        finish(sims, [t0, t1, t2, Instant::now()])
    }
}
