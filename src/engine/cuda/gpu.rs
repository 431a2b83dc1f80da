//! [`Gpu`]: one CUDA device opened for dbl — its context, one stream that
//! every launch and copy goes to (in order, so runs are deterministic), a
//! cuBLAS handle on that stream with TF32 off, and the NVRTC-compiled
//! kernels. Opening checks that the driver, NVRTC and cuBLAS libraries can be
//! loaded first, so a machine without CUDA gets an error, not a panic.

use std::cell::Cell;
use std::sync::Arc;

use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaSlice, CudaStream, CudaView};

use super::error::{CudaError, blas, driver};
use super::kernels::Kernels;

/// An opened device. Not `Sync`: one thread drives it.
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    pub(crate) blas: CudaBlas,
    pub(crate) k: Kernels,
    name: String,
    arch: String,
    /// Highest device memory in use seen by [`Gpu::note_memory`] (bytes).
    peak: Cell<usize>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("name", &self.name)
            .field("arch", &self.arch)
            .finish()
    }
}

/// Errors unless the three CUDA libraries can be loaded.
fn check_libraries() -> Result<(), CudaError> {
    // SAFETY: each call only tries to dlopen the library by its usual names.
    unsafe {
        if !cudarc::driver::sys::is_culib_present() {
            return Err(CudaError::Library("driver", "libcuda.so"));
        }
        if !cudarc::nvrtc::sys::is_culib_present() {
            return Err(CudaError::Library("NVRTC", "libnvrtc.so(.13)"));
        }
        if !cudarc::cublas::sys::is_culib_present() {
            return Err(CudaError::Library("cuBLAS", "libcublas.so(.13)"));
        }
    }
    Ok(())
}

impl Gpu {
    /// Opens device `ordinal`: loads the libraries, creates a stream and a
    /// cuBLAS handle (default f32 math: no TF32), and compiles the kernels for
    /// the device's compute capability.
    pub fn open(ordinal: usize) -> Result<Self, CudaError> {
        check_libraries()?;
        let count = CudaContext::device_count().map_err(driver("counting devices"))?;
        if count <= 0 || ordinal >= count as usize {
            return Err(CudaError::NoDevice(count));
        }
        let ctx = CudaContext::new(ordinal).map_err(driver("creating the context"))?;
        // SAFETY: every buffer of this context is used on the one stream below,
        // in order, and freed stream-ordered, so cudarc's per-buffer events
        // (an event record + stream wait per kernel argument) are not needed.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(driver("creating a stream"))?;
        let handle = CudaBlas::new(stream.clone()).map_err(blas("creating the handle"))?;
        // SAFETY: the handle is live; CUBLAS_DEFAULT_MATH keeps f32 GEMMs in
        // f32 (TF32 tensor-core math is only used under CUBLAS_TF32_TENSOR_OP_MATH).
        unsafe {
            use cudarc::cublas::sys::{cublasMath_t, cublasSetMathMode};
            cublasSetMathMode(*handle.handle(), cublasMath_t::CUBLAS_DEFAULT_MATH)
                .result()
                .map_err(blas("setting the math mode"))?;
        }
        let (major, minor) = ctx
            .compute_capability()
            .map_err(driver("reading the compute capability"))?;
        let arch = format!("compute_{major}{minor}");
        let name = ctx.name().map_err(driver("reading the device name"))?;
        let k = Kernels::compile(&ctx, &arch)?;
        Ok(Gpu {
            ctx,
            stream,
            blas: handle,
            k,
            name,
            arch,
            peak: Cell::new(0),
        })
    }

    /// The device's name (e.g. "NVIDIA H200").
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The NVRTC target the kernels were compiled for (e.g. "compute_90").
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// The stream every operation runs on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Copies `host` to a new device buffer.
    pub fn upload<T: cudarc::driver::DeviceRepr>(
        &self,
        host: &[T],
    ) -> Result<CudaSlice<T>, CudaError> {
        self.stream
            .clone_htod(host)
            .map_err(driver("copying to the device"))
    }

    /// A zeroed device buffer of `n` floats.
    pub fn zeros(&self, n: usize) -> Result<CudaSlice<f32>, CudaError> {
        self.stream
            .alloc_zeros::<f32>(n.max(1))
            .map_err(driver("allocating device memory"))
    }

    /// Copies a device buffer back (waits for the stream).
    pub fn download(&self, dev: &CudaView<'_, f32>) -> Result<Vec<f32>, CudaError> {
        self.stream
            .clone_dtoh(dev)
            .map_err(driver("copying from the device"))
    }

    /// Waits until every queued operation has finished.
    pub fn synchronize(&self) -> Result<(), CudaError> {
        self.stream
            .synchronize()
            .map_err(driver("synchronising the stream"))
    }

    /// Records the device memory in use now (all processes' allocations and
    /// this context's overhead, from `cuMemGetInfo`) into the peak.
    pub fn note_memory(&self) -> Result<(), CudaError> {
        let (free, total) = self
            .ctx
            .mem_get_info()
            .map_err(driver("reading free memory"))?;
        self.peak.set(self.peak.get().max(total - free));
        Ok(())
    }

    /// The highest device memory in use seen by [`Self::note_memory`] (bytes).
    pub fn peak_memory(&self) -> usize {
        self.peak.get()
    }
}
