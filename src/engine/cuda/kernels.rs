//! The CUDA C kernels of `kernels.cu`, compiled once per process by NVRTC for
//! the device's compute capability (`compute_90` PTX on Hopper, which the
//! driver turns into sm_90 code at load), and a typed launcher for each.
//! What each kernel computes is documented beside it in `kernels.cu`;
//! shapes are repeated on the launchers.

use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaView, CudaViewMut, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::{CompileOptions, compile_ptx_with_opts};

use super::error::{CudaError, driver, int};
use super::gpu::Gpu;

/// The kernel source (also compiled to PTX by `tests/cuda_nvrtc.rs`).
pub const SOURCE: &str = include_str!("kernels.cu");

/// Threads per block of the row kernels (a power of two ≤ MAX_THREADS in
/// `kernels.cu`).
const ROW_THREADS: u32 = 256;
/// Threads per block of the element-wise kernels.
const ELEM_THREADS: u32 = 256;

/// Compiles [`SOURCE`] for `arch` (e.g. "compute_90"): → PTX text. Needs
/// only NVRTC (no device).
pub fn compile_ptx(arch: &str) -> Result<cudarc::nvrtc::Ptx, CudaError> {
    let opts = CompileOptions {
        options: vec![format!("--gpu-architecture={arch}"), "--std=c++17".into()],
        name: Some("kernels.cu".into()),
        ..Default::default()
    };
    compile_ptx_with_opts(SOURCE, opts).map_err(|source| CudaError::Compile {
        arch: arch.to_string(),
        source,
    })
}

/// Every kernel of `kernels.cu`, loaded.
pub struct Kernels {
    bias_l2norm_rows: CudaFunction,
    max_pool_regions: CudaFunction,
    mean_pool_regions: CudaFunction,
    embed_gather: CudaFunction,
    gru_gates: CudaFunction,
    gru_avg_scatter: CudaFunction,
    mean_pool_captions: CudaFunction,
    scan_attend: CudaFunction,
    scan_context_square: CudaFunction,
    scan_pool_score: CudaFunction,
}

impl Kernels {
    /// Compiles the source for `arch` and loads every kernel into `ctx`.
    pub(crate) fn compile(ctx: &Arc<CudaContext>, arch: &str) -> Result<Self, CudaError> {
        let ptx = compile_ptx(arch)?;
        let m = ctx
            .load_module(ptx)
            .map_err(driver("loading the kernels"))?;
        let f = |name: &'static str| m.load_function(name).map_err(driver(name));
        Ok(Kernels {
            bias_l2norm_rows: f("bias_l2norm_rows")?,
            max_pool_regions: f("max_pool_regions")?,
            mean_pool_regions: f("mean_pool_regions")?,
            embed_gather: f("embed_gather")?,
            gru_gates: f("gru_gates")?,
            gru_avg_scatter: f("gru_avg_scatter")?,
            mean_pool_captions: f("mean_pool_captions")?,
            scan_attend: f("scan_attend")?,
            scan_context_square: f("scan_context_square")?,
            scan_pool_score: f("scan_pool_score")?,
        })
    }
}

/// One block per row.
fn rows(n: usize, shared: u32) -> Result<LaunchConfig, CudaError> {
    Ok(LaunchConfig {
        grid_dim: (int("rows", n)? as u32, 1, 1),
        block_dim: (ROW_THREADS, 1, 1),
        shared_mem_bytes: shared,
    })
}

/// One thread per element.
fn elems(n: usize) -> Result<LaunchConfig, CudaError> {
    let blocks = int("elements", n.div_ceil(ELEM_THREADS as usize))? as u32;
    Ok(LaunchConfig {
        grid_dim: (blocks.max(1), 1, 1),
        block_dim: (ELEM_THREADS, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// One block per (caption, image) of a tile.
fn pairs(n_cap: usize, nb: usize, threads: u32, shared: u32) -> Result<LaunchConfig, CudaError> {
    Ok(LaunchConfig {
        grid_dim: (int("captions", n_cap)? as u32, int("images", nb)? as u32, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: shared,
    })
}

macro_rules! launch {
    ($gpu:expr, $f:ident, $cfg:expr, $what:literal; $($arg:expr),* $(,)?) => {{
        let mut b = $gpu.stream().launch_builder(&$gpu.k.$f);
        $( b.arg($arg); )*
        // SAFETY: the argument list matches the kernel's signature in
        // kernels.cu; sizes are the launcher's documented contract.
        unsafe { b.launch($cfg) }.map(|_| ()).map_err(driver($what))
    }};
}

impl Gpu {
    /// `y ← L2(y + bias)` per row. y: [rows, dim]; bias: [dim].
    pub fn bias_l2norm_rows(
        &self,
        y: &mut CudaViewMut<'_, f32>,
        bias: &CudaView<'_, f32>,
        n_rows: usize,
        dim: usize,
    ) -> Result<(), CudaError> {
        if n_rows == 0 {
            return Ok(());
        }
        let (r, d) = (int("rows", n_rows)?, int("dim", dim)?);
        launch!(self, bias_l2norm_rows, rows(n_rows, 0)?, "bias_l2norm_rows"; y, bias, &r, &d)
    }

    /// Max over regions. y: [n, R, d] → out: [n, d].
    pub fn max_pool_regions(
        &self,
        y: &CudaView<'_, f32>,
        out: &mut CudaViewMut<'_, f32>,
        n: usize,
        r: usize,
        d: usize,
    ) -> Result<(), CudaError> {
        let (ni, ri, di) = (int("n", n)?, int("R", r)?, int("d", d)?);
        launch!(self, max_pool_regions, elems(n * d)?, "max_pool_regions"; y, out, &ni, &ri, &di)
    }

    /// Mean over regions (double sums). x: [n, R, dim] → out: [n, dim].
    pub fn mean_pool_regions(
        &self,
        x: &CudaView<'_, f32>,
        out: &mut CudaViewMut<'_, f32>,
        n: usize,
        r: usize,
        dim: usize,
    ) -> Result<(), CudaError> {
        let (ni, ri, di) = (int("n", n)?, int("R", r)?, int("dim", dim)?);
        launch!(self, mean_pool_regions, elems(n * dim)?, "mean_pool_regions"; x, out, &ni, &ri, &di)
    }

    /// Embedding rows. table: [V, dim]; ids: [n_tok] → out: [n_tok, dim].
    pub fn embed_gather(
        &self,
        table: &CudaView<'_, f32>,
        ids: &CudaView<'_, i32>,
        out: &mut CudaViewMut<'_, f32>,
        n_tok: usize,
        dim: usize,
    ) -> Result<(), CudaError> {
        let (n, d) = (int("tokens", n_tok)?, int("dim", dim)?);
        launch!(self, embed_gather, elems(n_tok * dim)?, "embed_gather"; table, ids, out, &n, &d)
    }

    /// One GRU step of one direction. gi: [n, 3H]; gh: [n_prev, 3H];
    /// b_ih, b_hh: [3H]; hprev: [n_prev, H] → hcur: [n, H].
    #[allow(clippy::too_many_arguments)]
    pub fn gru_gates(
        &self,
        gi: &CudaView<'_, f32>,
        gh: &CudaView<'_, f32>,
        b_ih: &CudaView<'_, f32>,
        b_hh: &CudaView<'_, f32>,
        hprev: &CudaView<'_, f32>,
        hcur: &mut CudaViewMut<'_, f32>,
        n: usize,
        n_prev: usize,
        h: usize,
    ) -> Result<(), CudaError> {
        let (ni, pi, hi) = (int("n", n)?, int("n_prev", n_prev)?, int("H", h)?);
        launch!(self, gru_gates, elems(n * h)?, "gru_gates";
            gi, gh, b_ih, b_hh, hprev, hcur, &ni, &pi, &hi)
    }

    /// `out[dest[t]] = (hf[t] + hb[t]) / 2`. hf, hb: [n_tok, H]; dest: [n_tok].
    pub fn gru_avg_scatter(
        &self,
        hf: &CudaView<'_, f32>,
        hb: &CudaView<'_, f32>,
        dest: &CudaView<'_, i32>,
        out: &mut CudaViewMut<'_, f32>,
        n_tok: usize,
        h: usize,
    ) -> Result<(), CudaError> {
        let (n, hi) = (int("tokens", n_tok)?, int("H", h)?);
        launch!(self, gru_avg_scatter, elems(n_tok * h)?, "gru_avg_scatter"; hf, hb, dest, out, &n, &hi)
    }

    /// Mean of each caption's rows. words: [N_w, d]; off: [n_cap + 1] → out: [n_cap, d].
    pub fn mean_pool_captions(
        &self,
        words: &CudaView<'_, f32>,
        off: &CudaView<'_, i32>,
        out: &mut CudaViewMut<'_, f32>,
        n_cap: usize,
        d: usize,
    ) -> Result<(), CudaError> {
        let (n, di) = (int("captions", n_cap)?, int("d", d)?);
        launch!(self, mean_pool_captions, elems(n_cap * d)?, "mean_pool_captions"; words, off, out, &n, &di)
    }

    /// scan head steps 1–3a of a tile. att: [nw, nb·R]; off: the tile's
    /// [n_cap + 1] word offsets (off[0] = w0) → alpha: [nb, nw, R].
    #[allow(clippy::too_many_arguments)]
    pub fn scan_attend(
        &self,
        att: &CudaView<'_, f32>,
        off: &CudaView<'_, i32>,
        w0: usize,
        alpha: &mut CudaViewMut<'_, f32>,
        n_cap: usize,
        nw: usize,
        nb: usize,
        r: usize,
        smooth: f32,
    ) -> Result<(), CudaError> {
        let (w0i, nwi, nbi, ri) = (int("w0", w0)?, int("nw", nw)?, int("nb", nb)?, int("R", r)?);
        let cfg = pairs(n_cap, nb, 64, (r * 8) as u32)?;
        launch!(self, scan_attend, cfg, "scan_attend"; att, off, &w0i, alpha, &nwi, &nbi, &ri, &smooth)
    }

    /// scan head steps 3b–4a: `c ← (L2(c) − words)²` per row. c: [nb, nw, d]; words: [nw, d].
    pub fn scan_context_square(
        &self,
        c: &mut CudaViewMut<'_, f32>,
        words: &CudaView<'_, f32>,
        nw: usize,
        nb: usize,
        d: usize,
    ) -> Result<(), CudaError> {
        let (nwi, nbi, di) = (int("nw", nw)?, int("nb", nb)?, int("d", d)?);
        launch!(self, scan_context_square, rows(nb * nw, 0)?, "scan_context_square"; c, words, &nwi, &nbi, &di)
    }

    /// scan head step 5: scores of the tile's (image, caption) pairs into
    /// `out[(img0 + i)·ldo + cap0 + j]`. t: [nb, nw, S] (rows normalised).
    #[allow(clippy::too_many_arguments)]
    pub fn scan_pool_score(
        &self,
        t: &CudaView<'_, f32>,
        off: &CudaView<'_, i32>,
        w0: usize,
        nw: usize,
        s: usize,
        we: &CudaView<'_, f32>,
        be: f32,
        out: &mut CudaViewMut<'_, f32>,
        ldo: usize,
        (img0, cap0, n_cap, nb): (usize, usize, usize, usize),
    ) -> Result<(), CudaError> {
        let (w0i, nwi, si) = (int("w0", w0)?, int("nw", nw)?, int("S", s)?);
        let (i0, c0) = (int("img0", img0)?, int("cap0", cap0)?);
        let ldo = ldo as i64;
        let cfg = pairs(n_cap, nb, ROW_THREADS, (s * 4) as u32)?;
        launch!(self, scan_pool_score, cfg, "scan_pool_score";
            t, off, &w0i, &nwi, &si, we, &be, out, &ldo, &i0, &c0)
    }
}
