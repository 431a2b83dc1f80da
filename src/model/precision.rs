//! Arithmetic of the scan-ave similarity head's projection at evaluation
//! time (issue #5 stretch): f32 everywhere, or `D·W_tᵀ` in bf16 on AMX.

/// Precision of the similarity-head projection when scoring.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum HeadPrecision {
    /// f32 throughout (the reference numerics).
    #[default]
    F32,
    /// `D·W_tᵀ` from bf16-rounded inputs with f32 accumulation on Intel AMX;
    /// everything else f32. Needs an AMX CPU (Sapphire Rapids or later).
    Bf16,
}

impl HeadPrecision {
    /// The CLI / JSON name (`f32`, `bf16`).
    pub fn name(self) -> &'static str {
        match self {
            HeadPrecision::F32 => "f32",
            HeadPrecision::Bf16 => "bf16",
        }
    }
}

/// Why a split cannot be scored in the precision asked for.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PrecisionError {
    #[error(transparent)]
    Amx(#[from] crate::engine::amx::Unavailable),
    #[error(
        "--head-precision bf16 applies to the scan-ave backbone only (vse and tiny have no similarity head)"
    )]
    NoHead,
}
