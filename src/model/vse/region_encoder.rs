//! The image side of "vse-infty" (VSE∞'s `EncoderImageAggr` with
//! `precomp_enc_type basic`, docs/method.md §13.7): on every region the image
//! FC plus the region MLP ([`RegionMlp`], added residually), then GPO over
//! the regions, then L2. The FC and GPO are `img_enc.fc` / `img_enc.gpool`
//! of the [`ImageEncoder`]; the MLP is `img_enc.mlp`.

use crate::engine::gemm::Par;
use crate::engine::l2norm;
use crate::model::encode::uniform_offsets;
use crate::model::gpo::GpoCache;
use crate::model::image_encoder::{ImageCache, ImageEncoder};
use crate::model::vse::region_mlp::{RegionMlp, RegionMlpCache};

/// What the image side's backward needs: the plain encoder's cache (vse),
/// or the region encoder's (vse-infty).
#[derive(Debug)]
pub enum VseImageCache {
    /// `img_enc` alone.
    Plain(ImageCache),
    /// `img_enc.fc` + `img_enc.mlp` → `img_enc.gpool` → L2.
    Mlp(RegionCache),
}

/// The region encoder's forward state.
#[derive(Debug)]
pub struct RegionCache {
    /// The region features. [n·R, img_dim]
    x: Vec<f32>,
    mlp: RegionMlpCache,
    /// FC + MLP per region, GPO's input. [n·R, d]
    regions: Vec<f32>,
    gpo: GpoCache,
    /// Normalised output and the norms before. [n, d], [n]
    y: Vec<f32>,
    norms: Vec<f32>,
}

/// x: [n, R, img_dim] → ([n, d], cache). `train`: the MLP's batch norm
/// uses the batch's statistics.
pub fn forward(
    enc: &ImageEncoder,
    mlp: &RegionMlp,
    x: Vec<f32>,
    n_regions: usize,
    train: bool,
    par: Par,
) -> (Vec<f32>, RegionCache) {
    let d = enc.embed();
    let mut regions = enc.fc.forward(&x, par);
    let (residual, mlp_cache) = mlp.forward(&x, train, par);
    regions
        .iter_mut()
        .zip(&residual)
        .for_each(|(a, &b)| *a += b);
    let n = regions.len() / (n_regions * d).max(1);
    let gpool = enc
        .gpool
        .as_ref()
        .expect("vse-infty's image encoder pools with img_enc.gpool");
    let (mut y, gpo) = gpool.forward(&regions, &uniform_offsets(n, n_regions), d);
    let norms = l2norm::forward(&mut y, d);
    let cache = RegionCache {
        x,
        mlp: mlp_cache,
        regions,
        gpo,
        y: y.clone(),
        norms,
    };
    (y, cache)
}

/// Accumulates the gradients of dy: [n, d] into `img_enc.fc`,
/// `img_enc.gpool` and `img_enc.mlp` (a training-mode pass also steps the
/// MLP's running statistics).
pub fn backward(
    enc: &mut ImageEncoder,
    mlp: &mut RegionMlp,
    cache: RegionCache,
    mut dy: Vec<f32>,
    par: Par,
) {
    let d = enc.embed();
    l2norm::backward(&cache.y, &cache.norms, &mut dy, d);
    let gpool = enc
        .gpool
        .as_mut()
        .expect("vse-infty's image encoder pools with img_enc.gpool");
    let d_regions = gpool.backward(&cache.regions, &cache.gpo, &dy, d);
    enc.fc.backward(&cache.x, &d_regions, None, par);
    mlp.backward(&cache.x, cache.mlp, &d_regions, par);
}
