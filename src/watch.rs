//! [`Watch`]: what a long call (training, scoring) reports while it runs and
//! asks whether it should stop. The CLI runs unwatched ([`Unwatched`]: its
//! progress bars are its own); the Python binding forwards the reports to a
//! callback or a tqdm bar and sets the stop request on Ctrl-C.
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
    /// Blocks of a similarity matrix scored so far.
    Blocks {
        /// Blocks done.
        done: usize,
        /// Blocks in all.
        total: usize,
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
