//! Long calls off the GIL. The work runs on a scoped thread (inside the
//! caller's rayon pool) while the calling thread, holding no GIL, wakes
//! every [`POLL`] to take it briefly: it checks for Ctrl-C
//! (`PyErr_CheckSignals`, which only the main thread may do) and hands the
//! progress reports queued since to the Python callback, on the calling
//! thread. Ctrl-C, or an exception in the callback, requests a stop through
//! the library's [`Watch`]; the work ends at its next check (between
//! training steps, scoring blocks, encoding chunks) and that exception is raised.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::Duration;

use dbl::watch::{Event, Watch};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::Failure;

/// How often the calling thread checks for Ctrl-C and delivers progress.
const POLL: Duration = Duration::from_millis(50);

/// The library's observer: a stop flag and a queue of reports.
struct PyWatch {
    stop: AtomicBool,
    /// None when nobody listens (nothing is queued).
    events: Option<Mutex<Vec<Event>>>,
}

impl Watch for PyWatch {
    fn report(&self, event: &Event) {
        // A matrix's start feeds the CLI's display only; Python sees its blocks.
        if matches!(event, Event::Matrix { .. }) {
            return;
        }
        if let Some(q) = &self.events {
            let mut q = q.lock().unwrap_or_else(|p| p.into_inner());
            // Only the latest block count matters.
            if let (Event::Blocks { .. }, Some(Event::Blocks { .. })) = (event, q.last()) {
                q.pop();
            }
            q.push(event.clone());
        }
    }
    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
    fn shows_progress(&self) -> bool {
        self.events.is_some()
    }
}

/// One report as a dict: `{"kind": "step", "stage", "epoch", "epochs",
/// "step", "steps", "loss"}`, `{"kind": "eval", "stage", "epoch", "rsum":
/// [per branch]}` or `{"kind": "blocks", "done", "total"}` (a matrix's
/// start is never queued: [`PyWatch::report`]).
fn event_dict<'py>(py: Python<'py>, e: &Event) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    match e {
        Event::Step {
            stage,
            epoch,
            epochs,
            step,
            steps,
            loss,
        } => {
            d.set_item("kind", "step")?;
            d.set_item("stage", stage)?;
            d.set_item("epoch", epoch)?;
            d.set_item("epochs", epochs)?;
            d.set_item("step", step)?;
            d.set_item("steps", steps)?;
            d.set_item("loss", loss)?;
        }
        Event::Eval { stage, epoch, rsum } => {
            d.set_item("kind", "eval")?;
            d.set_item("stage", stage)?;
            d.set_item("epoch", epoch)?;
            d.set_item("rsum", rsum.clone())?;
        }
        Event::Blocks { done, total, .. } => {
            d.set_item("kind", "blocks")?;
            d.set_item("done", done)?;
            d.set_item("total", total)?;
        }
        Event::Matrix { pairs } => {
            d.set_item("kind", "matrix")?;
            d.set_item("pairs", pairs)?;
        }
    }
    Ok(d)
}

/// Hands the queued reports to `progress`.
fn deliver(py: Python<'_>, watch: &PyWatch, progress: Option<&Py<PyAny>>) -> PyResult<()> {
    let (Some(q), Some(cb)) = (&watch.events, progress) else {
        return Ok(());
    };
    let events = std::mem::take(&mut *q.lock().unwrap_or_else(|p| p.into_inner()));
    for e in &events {
        cb.call1(py, (event_dict(py, e)?,))?;
    }
    Ok(())
}

/// Runs `work` in `pool` with the GIL released, watched as the module docs
/// say; `progress` (a callable taking one dict, or None) receives the reports.
pub fn run_watched<T: Send>(
    py: Python<'_>,
    pool: &rayon::ThreadPool,
    progress: Option<&Bound<'_, PyAny>>,
    work: impl FnOnce(&dyn Watch) -> Result<T, Failure> + Send,
) -> PyResult<T> {
    let watch = PyWatch {
        stop: AtomicBool::new(false),
        events: progress.map(|_| Mutex::new(Vec::new())),
    };
    let progress: Option<Py<PyAny>> = progress.map(|p| p.clone().unbind());
    let (result, raised) = py.detach(|| {
        std::thread::scope(|s| {
            let (tx, rx) = channel();
            let w = &watch;
            s.spawn(move || {
                // A closed receiver only means the caller is gone.
                let _ = tx.send(pool.install(|| work(w)));
            });
            let mut raised: Option<PyErr> = None;
            loop {
                match rx.recv_timeout(POLL) {
                    Ok(r) => break (Some(r), raised),
                    // The work panicked: the scope re-raises it on return.
                    Err(RecvTimeoutError::Disconnected) => break (None, raised),
                    Err(RecvTimeoutError::Timeout) if raised.is_none() => {
                        let checked = Python::attach(|py| {
                            py.check_signals()?;
                            deliver(py, &watch, progress.as_ref())
                        });
                        if let Err(e) = checked {
                            watch.stop.store(true, Ordering::Relaxed);
                            raised = Some(e);
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                }
            }
        })
    });
    if let Some(e) = raised {
        return Err(e);
    }
    deliver(py, &watch, progress.as_ref())?;
    match result {
        Some(Ok(v)) => Ok(v),
        Some(Err(f)) => Err(f.into_pyerr(py)),
        None => unreachable!("a panic of the work is re-raised by the thread scope"),
    }
}
