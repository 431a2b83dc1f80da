//! [`Comm`] over MPI (cargo feature `mpi`; rsmpi over the system MPI, e.g.
//! Debian's OpenMPI): `mpirun -n N dbl train …` / `srun dbl …`.
//!
//! A rank that dies ends the job: the launcher (mpirun, srun) sees a rank
//! exit without finalising MPI and kills the others, naming the rank. A rank
//! that *hangs* is caught by a watchdog thread: when this rank has waited
//! inside one collective for longer than `DBL_MPI_TIMEOUT` seconds (default
//! 600), it prints which rank waited where and calls `MPI_Abort`, which ends
//! every rank. The last committed checkpoint stays loadable either way (the
//! store's commits are atomic, `crate::train::store`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mpi::collective::SystemOperation;
use mpi::datatype::{Equivalence, PartitionMut};
use mpi::environment::Universe;
use mpi::raw::AsRaw;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::CommunicatorCollectives;

use crate::dist::{Collective, Comm, DistError, Traffic};

/// Environment variable: seconds a rank may wait inside one collective.
pub const TIMEOUT_ENV: &str = "DBL_MPI_TIMEOUT";
const DEFAULT_TIMEOUT_S: u64 = 600;

/// Names of the collectives, for the watchdog's message (indexed by the
/// constants below).
const OPS: [&str; 5] = [
    "all_gather",
    "all_reduce",
    "reduce_scatter",
    "barrier",
    "(none)",
];
const ALL_GATHER: usize = 0;
const ALL_REDUCE: usize = 1;
const REDUCE_SCATTER: usize = 2;
const BARRIER: usize = 3;
const NONE: usize = 4;

/// What the watchdog watches: since when (ms after `t0`, 0 = not waiting)
/// this rank is inside which collective.
struct Watch {
    t0: Instant,
    since_ms: AtomicU64,
    op: AtomicUsize,
}

/// MPI's world communicator.
pub struct MpiComm {
    world: SimpleCommunicator,
    traffic: Traffic,
    watch: Arc<Watch>,
    // Finalises MPI when dropped: declared last, dropped last.
    _universe: Universe,
}

// SAFETY: MPI is initialised with (at least) MPI_THREAD_SERIALIZED and dbl
// issues collectives from one thread at a time (the trainer's / scorer's
// control thread); the watchdog only calls MPI_Abort.
unsafe impl Send for MpiComm {}
unsafe impl Sync for MpiComm {}

fn count_i32(n: usize) -> i32 {
    i32::try_from(n).expect("MPI buffers are limited to 2^31 − 1 elements")
}

fn displs(counts: &[i32]) -> Vec<i32> {
    counts
        .iter()
        .scan(0i32, |acc, &c| {
            let d = *acc;
            *acc += c;
            Some(d)
        })
        .collect()
}

impl MpiComm {
    /// Initialises MPI and starts the watchdog.
    pub fn init() -> Result<Self, DistError> {
        let timeout = match std::env::var(TIMEOUT_ENV) {
            Ok(v) => v.parse::<u64>().ok().filter(|&s| s > 0).ok_or_else(|| {
                DistError::Init(format!(
                    "{TIMEOUT_ENV}={v}: expected a positive number of seconds"
                ))
            })?,
            Err(_) => DEFAULT_TIMEOUT_S,
        };
        let (universe, provided) = mpi::initialize_with_threading(mpi::Threading::Multiple)
            .ok_or_else(|| DistError::Init("MPI was already initialised in this process".into()))?;
        if provided < mpi::Threading::Serialized {
            return Err(DistError::Init(format!(
                "the MPI library provides thread level {provided:?}; dbl needs Serialized or better"
            )));
        }
        let world = universe.world();
        let watch = Arc::new(Watch {
            t0: Instant::now(),
            since_ms: AtomicU64::new(0),
            op: AtomicUsize::new(NONE),
        });
        let (rank, size) = (world.rank(), world.size());
        let w = Arc::clone(&watch);
        let multiple = provided == mpi::Threading::Multiple;
        std::thread::Builder::new()
            .name("dbl-mpi-watchdog".into())
            .spawn(move || watchdog(&w, timeout, rank, size, multiple))
            .map_err(|e| DistError::Init(format!("starting the watchdog thread: {e}")))?;
        Ok(MpiComm {
            world,
            traffic: Traffic::default(),
            watch,
            _universe: universe,
        })
    }

    /// Runs collective `op` (an index into [`OPS`]) under the watchdog.
    fn guarded<T>(&self, op: usize, f: impl FnOnce() -> T) -> T {
        let now = self.watch.t0.elapsed().as_millis() as u64 + 1;
        self.watch.op.store(op, Ordering::Relaxed);
        self.watch.since_ms.store(now, Ordering::Release);
        let out = f();
        self.watch.since_ms.store(0, Ordering::Release);
        out
    }

    fn gather_v<T: Equivalence + Copy + Default>(&self, local: &[T]) -> (Vec<T>, Vec<usize>) {
        let n = self.size();
        let mine = local.len() as u64;
        let mut lens = vec![0u64; n];
        self.guarded(ALL_GATHER, || {
            self.world.all_gather_into(&mine, &mut lens[..])
        });
        let counts: Vec<i32> = lens.iter().map(|&c| count_i32(c as usize)).collect();
        let d = displs(&counts);
        let total: usize = lens.iter().map(|&c| c as usize).sum();
        let mut all = vec![T::default(); total];
        {
            let mut part = PartitionMut::new(&mut all[..], &counts[..], &d[..]);
            self.guarded(ALL_GATHER, || {
                self.world.all_gather_varcount_into(local, &mut part)
            });
        }
        let size = std::mem::size_of::<T>();
        self.traffic
            .add(Collective::GatherScatter, n * 8 + total * size, n);
        (all, lens.iter().map(|&c| c as usize).collect())
    }
}

fn watchdog(w: &Watch, timeout_s: u64, rank: i32, size: i32, multiple: bool) {
    let tick = Duration::from_millis((timeout_s * 100).clamp(100, 5_000));
    loop {
        std::thread::sleep(tick);
        let since = w.since_ms.load(Ordering::Acquire);
        if since == 0 {
            continue;
        }
        let now = w.t0.elapsed().as_millis() as u64 + 1;
        if now.saturating_sub(since) > timeout_s * 1000 {
            let op = OPS[w.op.load(Ordering::Relaxed).min(NONE)];
            eprintln!(
                "dbl: rank {rank} of {size} waited over {timeout_s} s in MPI {op}, which every \
                 rank must enter: another rank has died or hangs. Aborting the whole job \
                 (raise {TIMEOUT_ENV}=SECONDS if a step legitimately takes longer); the last \
                 committed checkpoint is intact and `dbl train --resume` continues from it."
            );
            if multiple {
                // SAFETY: MPI_THREAD_MULTIPLE allows any thread to call MPI_Abort.
                unsafe {
                    mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, 3);
                }
            }
            // Without MPI_Abort the launcher still ends the job: this rank
            // exits without finalising MPI.
            std::process::exit(3);
        }
    }
}

impl Comm for MpiComm {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }
    fn size(&self) -> usize {
        self.world.size() as usize
    }
    fn all_gather_f32(&self, local: &[f32]) -> (Vec<f32>, Vec<usize>) {
        self.gather_v(local)
    }
    fn all_gather_u64(&self, local: &[u64]) -> (Vec<u64>, Vec<usize>) {
        self.gather_v(local)
    }
    fn all_reduce_sum(&self, buf: &mut [f32]) {
        let send = buf.to_vec();
        self.guarded(ALL_REDUCE, || {
            self.world
                .all_reduce_into(&send[..], buf, SystemOperation::sum())
        });
        self.traffic
            .add(Collective::Reduce, buf.len() * 4, self.size());
    }
    fn reduce_scatter_sum(&self, buf: &[f32], counts: &[usize]) -> Vec<f32> {
        assert_eq!(
            counts.len(),
            self.size(),
            "reduce_scatter: one count per rank"
        );
        assert_eq!(
            counts.iter().sum::<usize>(),
            buf.len(),
            "reduce_scatter: Σ counts ≠ buffer"
        );
        let c: Vec<i32> = counts.iter().map(|&x| count_i32(x)).collect();
        let mut out = vec![0.0f32; counts[self.rank()]];
        self.guarded(REDUCE_SCATTER, || {
            // SAFETY: `buf` holds Σ counts floats, `out` this rank's count;
            // both outlive the blocking call.
            unsafe {
                mpi::ffi::MPI_Reduce_scatter(
                    buf.as_ptr().cast(),
                    out.as_mut_ptr().cast(),
                    c.as_ptr(),
                    f32::equivalent_datatype().as_raw(),
                    mpi::ffi::RSMPI_SUM,
                    self.world.as_raw(),
                );
            }
        });
        self.traffic
            .add(Collective::GatherScatter, buf.len() * 4, self.size());
        out
    }
    fn barrier(&self) {
        self.guarded(BARRIER, || self.world.barrier());
    }
    fn abort(&self, code: i32, message: &str) -> ! {
        eprintln!("{message}");
        self.world.abort(code)
    }
    fn bytes_sent(&self) -> u64 {
        self.traffic.get()
    }
}
