//! Where a command runs its numerics: `--device cpu|cuda` (issue #16). The
//! enum exists in every build so the CLI parses the flag the same way; a
//! build without the `cuda` feature refuses `cuda` with [`DeviceError`].

/// The compute device of `dbl score` and `dbl bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// The CPU engine (the reference).
    #[default]
    Cpu,
    /// An NVIDIA GPU through CUDA (needs a build with `--features cuda`).
    Cuda,
}

impl Device {
    /// `cpu` or `cuda`.
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
        }
    }
}

/// Why a device cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// `--device cuda` on a build without the feature.
    #[error(
        "--device cuda: this dbl was built without CUDA support; rebuild with \
         `cargo build --release --features cuda`"
    )]
    NotBuilt,
    /// `--device cuda` where a command has no GPU path.
    #[error("--device cuda: {0} has no GPU path yet (issue #16); use --device cpu")]
    Unsupported(&'static str),
    /// The CUDA backend failed (no driver, no device, a kernel or cuBLAS error).
    #[cfg(feature = "cuda")]
    #[error(transparent)]
    Cuda(#[from] super::cuda::CudaError),
}

/// Errors unless this build can run on `device`.
pub fn require(device: Device) -> Result<(), DeviceError> {
    match device {
        Device::Cpu => Ok(()),
        Device::Cuda if cfg!(feature = "cuda") => Ok(()),
        Device::Cuda => Err(DeviceError::NotBuilt),
    }
}
