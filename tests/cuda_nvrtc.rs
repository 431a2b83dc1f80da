//! The CUDA kernels compile with NVRTC for Hopper (compute_90) — a check
//! that needs only the NVRTC library, no GPU, so kernel syntax errors are
//! found before any device time is spent. Skips (printing why) where NVRTC
//! cannot be loaded (e.g. `pip install nvidia-cuda-nvrtc` and put its
//! `nvidia/cu13/lib` on LD_LIBRARY_PATH to run it).
#![cfg(feature = "cuda")]

use dbl::engine::cuda::kernels::compile_ptx;

#[test]
fn kernels_compile_for_hopper() {
    // SAFETY: only tries to dlopen the library.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        eprintln!("skipped: NVRTC (libnvrtc.so) not found on the loader path");
        return;
    }
    let ptx = compile_ptx("compute_90").unwrap_or_else(|e| panic!("{e}"));
    let text = ptx.to_src();
    for k in [
        "bias_l2norm_rows",
        "scan_attend",
        "scan_context_square",
        "scan_pool_score",
        "gru_gates",
    ] {
        assert!(
            text.contains(&format!(".entry {k}")),
            "no kernel {k} in the PTX"
        );
    }
}
