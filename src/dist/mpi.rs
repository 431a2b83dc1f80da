//! [`Comm`] over MPI (cargo feature `mpi`; rsmpi over the system MPI, e.g.
//! Debian's OpenMPI): `mpirun -n N dbl train …` / `srun dbl …`.
//!
//! A rank that dies ends the job: the launcher (mpirun, srun) sees a rank
//! exit without finalising MPI and kills the others, naming the rank. A rank
//! that *hangs* is caught by a watchdog thread: when this rank has waited
//! inside one collective for longer than `DBL_MPI_TIMEOUT` seconds (default
//! 600), its watchdog asks every other rank's watchdog, on a private
//! duplicate of the world communicator, where that rank is (collective
//! number, collective, inside MPI or not), waits a bounded time for the
//! answers, prints which ranks did not answer (stopped or hung) or had not
//! reached the collective, and calls `MPI_Abort`, which ends every rank.
//! The watchdog uses only non-blocking MPI with deadlines, so it cannot hang
//! itself. Asking needs `MPI_THREAD_MULTIPLE`; an MPI library without it
//! gets the message without the other ranks' whereabouts. The last
//! committed checkpoint stays loadable either way (the store's commits are
//! atomic, `crate::store`).

use std::io::Write;
use std::mem::MaybeUninit;
use std::os::raw::{c_int, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mpi::collective::SystemOperation;
use mpi::datatype::{Equivalence, PartitionMut};
use mpi::environment::Universe;
use mpi::raw::AsRaw;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::CommunicatorCollectives;

use crate::dist::whereabouts::{
    ALL_GATHER, ALL_REDUCE, BARRIER, NONE, OPS, REDUCE_SCATTER, Whereabouts, whereabouts_text,
};
use crate::dist::{Collective, Comm, DistError, Traffic};

/// Environment variable: seconds a rank may wait inside one collective.
pub const TIMEOUT_ENV: &str = "DBL_MPI_TIMEOUT";
const DEFAULT_TIMEOUT_S: u64 = 600;

/// What the watchdog watches: since when (ms after `t0`, 0 = not waiting)
/// this rank is inside which collective, and how many collectives it has
/// entered (the current one's number while inside).
struct Watch {
    t0: Instant,
    since_ms: AtomicU64,
    op: AtomicUsize,
    seq: AtomicU64,
    /// Set when the communicator is dropped: the watchdog returns.
    stop: AtomicBool,
}

impl Watch {
    fn ms(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64 + 1
    }

    fn whereabouts(&self) -> Whereabouts {
        let since = self.since_ms.load(Ordering::Acquire);
        let seq = self.seq.load(Ordering::Relaxed);
        let op = self.op.load(Ordering::Relaxed) as u64;
        let waited = if since == 0 {
            0
        } else {
            self.ms().saturating_sub(since) + 1
        };
        [seq, op, waited]
    }
}

/// MPI's world communicator.
pub struct MpiComm {
    world: SimpleCommunicator,
    traffic: Traffic,
    watch: Arc<Watch>,
    /// The watchdog thread, joined before MPI is finalised.
    dog: Option<JoinHandle<()>>,
    // Finalises MPI when dropped: declared last, dropped last.
    _universe: Universe,
}

// SAFETY: MPI is initialised with (at least) MPI_THREAD_SERIALIZED and dbl
// issues collectives from one thread at a time (the trainer's / scorer's
// control thread); the watchdog calls MPI only under MPI_THREAD_MULTIPLE,
// and then only on its own duplicate of the world communicator (and
// MPI_Abort).
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
            seq: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let (rank, size) = (world.rank(), world.size());
        let w = Arc::clone(&watch);
        // The duplicate is made here, collectively, by every rank's main thread.
        let probes = (provided == mpi::Threading::Multiple).then(Probes::new);
        let dog = std::thread::Builder::new()
            .name("dbl-mpi-watchdog".into())
            .spawn(move || watchdog(&w, timeout, rank, size, probes))
            .map_err(|e| DistError::Init(format!("starting the watchdog thread: {e}")))?;
        Ok(MpiComm {
            world,
            traffic: Traffic::default(),
            watch,
            dog: Some(dog),
            _universe: universe,
        })
    }

    /// Runs collective `op` (an index into [`OPS`]) under the watchdog.
    fn guarded<T>(&self, op: usize, f: impl FnOnce() -> T) -> T {
        let now = self.watch.ms();
        self.watch.op.store(op, Ordering::Relaxed);
        self.watch.seq.fetch_add(1, Ordering::Relaxed);
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

impl Drop for MpiComm {
    fn drop(&mut self) {
        // The watchdog frees its communicator and must be gone before MPI
        // is finalised (`_universe`, dropped after this).
        self.watch.stop.store(true, Ordering::Release);
        if let Some(dog) = self.dog.take() {
            dog.thread().unpark();
            let _ = dog.join();
        }
    }
}

/// Message tags on the watchdog's communicator.
const TAG_PROBE: c_int = 1;
const TAG_ANSWER: c_int = 2;

/// An MPI request with the heap buffer it reads or fills (the buffer must
/// stay put until the request completes; a `Box` keeps its address).
struct Pending {
    req: mpi::ffi::MPI_Request,
    buf: Box<Whereabouts>,
}

impl Pending {
    /// `MPI_Isend` of `buf` to `dest` on `comm`.
    fn send(comm: mpi::ffi::MPI_Comm, dest: c_int, tag: c_int, buf: Whereabouts) -> Self {
        let mut p = Pending {
            req: unsafe { mpi::ffi::RSMPI_REQUEST_NULL },
            buf: Box::new(buf),
        };
        // SAFETY: the buffer lives in `p` (on the heap) until `p` completes
        // or is leaked by `abandon`.
        unsafe {
            mpi::ffi::MPI_Isend(
                p.buf.as_ptr().cast::<c_void>(),
                3,
                mpi::ffi::RSMPI_UINT64_T,
                dest,
                tag,
                comm,
                &mut p.req,
            );
        }
        p
    }

    /// `MPI_Irecv` into a fresh buffer from `source` (may be any source).
    fn recv(comm: mpi::ffi::MPI_Comm, source: c_int, tag: c_int) -> Self {
        let mut p = Pending {
            req: unsafe { mpi::ffi::RSMPI_REQUEST_NULL },
            buf: Box::new([0; 3]),
        };
        // SAFETY: as in `send`.
        unsafe {
            mpi::ffi::MPI_Irecv(
                p.buf.as_mut_ptr().cast::<c_void>(),
                3,
                mpi::ffi::RSMPI_UINT64_T,
                source,
                tag,
                comm,
                &mut p.req,
            );
        }
        p
    }

    /// `MPI_Test`: the sender's rank once complete (never blocks).
    fn test(&mut self) -> Option<c_int> {
        let mut done: c_int = 0;
        let mut st = MaybeUninit::<mpi::ffi::MPI_Status>::zeroed();
        // SAFETY: a valid (possibly completed = null) request; `st` is written.
        unsafe { mpi::ffi::MPI_Test(&mut self.req, &mut done, st.as_mut_ptr()) };
        // SAFETY: zero-initialised, and filled in by MPI_Test when done.
        (done != 0).then(|| unsafe { st.assume_init() }.MPI_SOURCE)
    }

    /// Gives the request up without waiting: a receive is cancelled, a send
    /// left to MPI; the buffer is leaked (it may still be written or read).
    fn abandon(mut self, cancel: bool) {
        // SAFETY: a valid request; its buffer outlives it (leaked below).
        unsafe {
            if cancel {
                mpi::ffi::MPI_Cancel(&mut self.req);
            }
            mpi::ffi::MPI_Request_free(&mut self.req);
        }
        Box::leak(self.buf);
    }
}

/// The watchdog's own duplicate of the world communicator, on which it
/// answers other ranks' probes and sends its own.
struct Probes {
    comm: mpi::ffi::MPI_Comm,
    incoming: Pending,
    outgoing: Vec<Pending>,
}

// SAFETY: the communicator handle is only used by the watchdog thread, under
// MPI_THREAD_MULTIPLE.
unsafe impl Send for Probes {}

fn any_source() -> c_int {
    // SAFETY: a constant exported by the MPI library.
    unsafe { mpi::ffi::RSMPI_ANY_SOURCE }
}

impl Probes {
    /// Duplicates the world communicator (collective: every rank's main
    /// thread calls this during `MpiComm::init`).
    fn new() -> Self {
        let mut comm = unsafe { mpi::ffi::RSMPI_COMM_NULL };
        // SAFETY: MPI is initialised; `comm` receives the new handle.
        unsafe { mpi::ffi::MPI_Comm_dup(mpi::ffi::RSMPI_COMM_WORLD, &mut comm) };
        Probes {
            comm,
            incoming: Pending::recv(comm, any_source(), TAG_PROBE),
            outgoing: Vec::new(),
        }
    }

    /// Answers a probe that has arrived (if any) with this rank's
    /// whereabouts, and retires answers already delivered. Never blocks.
    fn serve(&mut self, w: &Watch) {
        if let Some(from) = self.incoming.test() {
            let answer = Pending::send(self.comm, from, TAG_ANSWER, w.whereabouts());
            self.outgoing.push(answer);
            self.incoming = Pending::recv(self.comm, any_source(), TAG_PROBE);
        }
        self.outgoing.retain_mut(|p| p.test().is_none());
    }

    /// Asks every other rank where it is and collects the answers that come
    /// within `patience` (answering probes meanwhile); `None` for a rank
    /// that did not answer.
    fn ask(
        &mut self,
        w: &Watch,
        rank: i32,
        size: i32,
        patience: Duration,
    ) -> Vec<Option<Whereabouts>> {
        let mine = w.whereabouts();
        let mut waiting = Vec::new();
        for r in (0..size).filter(|&r| r != rank) {
            self.outgoing
                .push(Pending::send(self.comm, r, TAG_PROBE, mine));
            waiting.push((r as usize, Pending::recv(self.comm, r, TAG_ANSWER)));
        }
        let mut answers = vec![None; size as usize];
        let deadline = Instant::now() + patience;
        while !waiting.is_empty() && Instant::now() < deadline {
            self.serve(w);
            waiting.retain_mut(|(r, p)| match p.test() {
                Some(_) => {
                    answers[*r] = Some(*p.buf);
                    false
                }
                None => true,
            });
            std::thread::sleep(Duration::from_millis(10));
        }
        for (_, p) in waiting {
            p.abandon(true);
        }
        answers
    }

    /// Cancels the pending probe receive, leaves undelivered answers to MPI
    /// and frees the communicator (before MPI is finalised).
    fn close(mut self) {
        self.incoming.abandon(true);
        for p in self.outgoing {
            p.abandon(false);
        }
        // SAFETY: no request of ours is waited on any more.
        unsafe { mpi::ffi::MPI_Comm_free(&mut self.comm) };
    }
}

fn watchdog(w: &Watch, timeout_s: u64, rank: i32, size: i32, mut probes: Option<Probes>) {
    // Serving probes needs a short tick; without them 10 % of the timeout.
    let tick = match probes {
        Some(_) => Duration::from_millis(50),
        None => Duration::from_millis((timeout_s * 100).clamp(100, 5_000)),
    };
    while !w.stop.load(Ordering::Acquire) {
        std::thread::park_timeout(tick);
        if let Some(p) = probes.as_mut() {
            p.serve(w);
        }
        let since = w.since_ms.load(Ordering::Acquire);
        if since == 0 || w.ms().saturating_sub(since) <= timeout_s * 1000 {
            continue;
        }
        let mine = w.whereabouts();
        let op = OPS[(mine[1] as usize).min(NONE)];
        let others = match probes.as_mut() {
            Some(p) => {
                let patience = Duration::from_secs(timeout_s.min(5));
                let answers = p.ask(w, rank, size, patience);
                format!(": {}", whereabouts_text(mine, &answers, rank, patience))
            }
            None => ", which every rank must enter: another rank has died or hangs (the MPI \
                      library lacks MPI_THREAD_MULTIPLE, so the other ranks were not asked)"
                .to_string(),
        };
        let msg = format!(
            "dbl: rank {rank} of {size} waited over {timeout_s} s in MPI {op} (collective #{}){others}. \
             Aborting the whole job (raise {TIMEOUT_ENV}=SECONDS if a step legitimately takes \
             longer); the last committed checkpoint is intact and `dbl train --resume` continues \
             from it.\n",
            mine[0]
        );
        // One write, so that ranks' reports arrive whole at the launcher.
        let _ = std::io::stderr().write_all(msg.as_bytes());
        if probes.is_some() {
            // SAFETY: MPI_THREAD_MULTIPLE allows any thread to call MPI_Abort.
            unsafe {
                mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, 3);
            }
        }
        // Without MPI_Abort the launcher still ends the job: this rank
        // exits without finalising MPI.
        std::process::exit(3);
    }
    if let Some(p) = probes {
        p.close();
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
