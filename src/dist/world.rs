//! The communicator a `dbl` process runs with: MPI's world when an MPI
//! launcher started it (and the build has the `mpi` feature), else [`Solo`].

use crate::dist::{Comm, Solo};

/// Why the process cannot join its job.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// Started as one of several ranks by a launcher, but built without MPI.
    #[error(
        "{var}={size}: dbl was started as one of {size} MPI ranks, but this build has no MPI \
         support (every rank would train alone and write the same run folder); rebuild with \
         `cargo build --release --features mpi` (needs libopenmpi-dev, openmpi-bin, libclang-dev)"
    )]
    NoMpi {
        /// The launcher's variable.
        var: &'static str,
        /// Number of ranks it names.
        size: usize,
    },
    /// MPI could not be initialised.
    #[error("MPI initialisation failed: {0}")]
    Init(String),
}

/// Environment variables by which MPI launchers (OpenMPI's mpirun, Hydra,
/// Slurm's PMI) announce the job size.
const SIZE_VARS: [&str; 2] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"];

/// The job size the launcher announced, if any (`None` = not under a launcher).
pub fn launched_size() -> Option<(&'static str, usize)> {
    SIZE_VARS.iter().find_map(|&v| {
        std::env::var(v)
            .ok()
            .and_then(|s| s.parse().ok())
            .map(|n| (v, n))
    })
}

/// This process's communicator: [`Solo`] unless an MPI launcher started it.
pub fn world() -> Result<Box<dyn Comm>, DistError> {
    match launched_size() {
        #[cfg(feature = "mpi")]
        Some(_) => Ok(Box::new(crate::dist::mpi::MpiComm::init()?)),
        #[cfg(not(feature = "mpi"))]
        Some((var, size)) if size > 1 => Err(DistError::NoMpi { var, size }),
        _ => Ok(Box::new(Solo)),
    }
}

/// Runs `f`; under several ranks, an error on any rank ends the whole job
/// (`MPI_Abort`, message prefixed with the rank) instead of leaving the
/// other ranks waiting in a collective.
pub fn abort_on_error<T>(
    comm: &dyn Comm,
    f: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    match f() {
        Err(e) if comm.size() > 1 => comm.abort(
            1,
            &format!("Error (rank {} of {}): {e:#}", comm.rank(), comm.size()),
        ),
        r => r,
    }
}
