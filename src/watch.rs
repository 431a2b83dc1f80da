//! [`Watch`]: what a long call (training, scoring) reports while it runs and
//! asks whether it should stop: the one path progress takes. Scoring reports
//! every matrix and block to the watch it is given *and* to the CLI's
//! display of the open progress phase (`crate::progress::Display`, itself a
//! [`Watch`]), joined by [`Tee`]. The CLI passes [`Unwatched`] (its display
//! is the only observer; its training bars are its own); the Python binding
//! forwards the reports to a callback or a tqdm bar and sets the stop
//! request on Ctrl-C.
//!
//! A stopped call returns an `Interrupted` error of its module. Training
//! checks between steps and writes nothing when it stops, so the run folder
//! is left as a killed process leaves it: `--resume` continues from the last
//! committed epoch.

/// One progress report.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A training step finished.
    Step {
        /// Training stage (1, or 2 for OAS's second stage).
        stage: u32,
        /// Epoch (0-based) of the stage.
        epoch: usize,
        /// Epochs of the stage.
        epochs: usize,
        /// Steps done in this epoch (1-based).
        step: usize,
        /// Steps of this epoch.
        steps: usize,
        /// The last trained branch's loss on this step.
        loss: f64,
    },
    /// An epoch ended with a dev evaluation.
    Eval {
        /// Training stage.
        stage: u32,
        /// Epoch (0-based) just finished.
        epoch: usize,
        /// Dev rSum of each branch.
        rsum: Vec<f64>,
    },
    /// A similarity matrix starts scoring (once per matrix, before its
    /// blocks).
    Matrix {
        /// Image–caption pairs of the matrix.
        pairs: u64,
    },
    /// A block of a similarity matrix was scored.
    Blocks {
        /// Blocks done.
        done: usize,
        /// Blocks in all.
        total: usize,
        /// Image–caption pairs of the block just scored.
        pairs: u64,
    },
}

/// An observer of a long call. Both methods are called from worker threads
/// and must be cheap (an atomic load, a queue push).
pub trait Watch: Sync {
    /// Receives one progress report.
    fn report(&self, _event: &Event) {}
    /// True once the caller asked the call to stop.
    fn stop_requested(&self) -> bool {
        false
    }
    /// True when the observer displays progress itself: the call then draws
    /// no progress bar of its own.
    fn shows_progress(&self) -> bool {
        false
    }
}

/// No observer: nothing is reported and nothing stops the call.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unwatched;

impl Watch for Unwatched {}

/// Two observers as one: both receive every report; a stop requested by
/// either stops the call; progress is shown when either shows it.
#[derive(Clone, Copy)]
pub struct Tee<'a>(pub &'a dyn Watch, pub &'a dyn Watch);

impl Watch for Tee<'_> {
    fn report(&self, event: &Event) {
        self.0.report(event);
        self.1.report(event);
    }
    fn stop_requested(&self) -> bool {
        self.0.stop_requested() || self.1.stop_requested()
    }
    fn shows_progress(&self) -> bool {
        self.0.shows_progress() || self.1.shows_progress()
    }
}
