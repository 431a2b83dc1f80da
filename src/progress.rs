//! Progress of long phases on stderr (issue 27 §4, "no silent phases"):
//! scoring a split (`dbl score`) and the end-of-epoch dev evaluation. On a
//! terminal an indicatif bar; otherwise (nohup, a batch scheduler, a pipe)
//! one line every [`LINE_EVERY`] (or `$DBL_PROGRESS_SECS`) with the work
//! done, its rate and the ETA.
//!
//! The code doing the work does not know who shows it: it reports to a
//! [`Watch`] ([`crate::watch`], the one progress path), and [`Display`], the
//! observer that scoring always adds, counts the reports into the *current*
//! phase (nothing outside a phase); the command that starts the work opens
//! the phase with [`begin`] and closes it by dropping the returned [`Phase`].

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::watch::{Event, Watch};

/// Interval between two progress lines when stderr is not a terminal.
pub const LINE_EVERY: Duration = Duration::from_secs(10);

/// Environment variable overriding [`LINE_EVERY`] (seconds, e.g. `60` for
/// a quieter log, `0` for a line per block of work).
pub const LINE_EVERY_ENV: &str = "DBL_PROGRESS_SECS";

/// [`LINE_EVERY`], or [`LINE_EVERY_ENV`] when it holds a number of seconds.
fn line_every() -> Duration {
    std::env::var(LINE_EVERY_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(LINE_EVERY, Duration::from_secs_f64)
}

/// Where a phase's progress goes.
enum Shown {
    /// An indicatif bar (stderr is a terminal).
    Bar(ProgressBar),
    /// Periodic lines into a writer (stderr, or a buffer in tests).
    Lines {
        every: Duration,
        out: Mutex<(Instant, Box<dyn Write + Send>)>,
    },
    /// Nothing (MPI ranks other than 0).
    Hidden,
}

/// One phase's counters and display.
struct State {
    label: String,
    unit: &'static str,
    total: AtomicU64,
    done: AtomicU64,
    start: Instant,
    shown: Shown,
}

/// The phase work is reported into (the innermost open one).
static CURRENT: Mutex<Option<Arc<State>>> = Mutex::new(None);

fn current() -> Option<Arc<State>> {
    CURRENT.lock().ok().and_then(|c| c.clone())
}

/// The display as an observer: a matrix's pairs go to the current phase's
/// total, each scored block's pairs to its work done (nothing outside a
/// phase). It never asks to stop and is not a progress display in the
/// sense of [`Watch::shows_progress`] (training still draws its own bars).
#[derive(Debug, Clone, Copy, Default)]
pub struct Display;

impl Watch for Display {
    fn report(&self, event: &Event) {
        match *event {
            Event::Matrix { pairs } => {
                if let Some(s) = current() {
                    s.add_total(pairs);
                }
            }
            Event::Blocks { pairs, .. } => {
                if let Some(s) = current() {
                    s.advance(pairs);
                }
            }
            Event::Step { .. } | Event::Eval { .. } => {}
        }
    }
}

/// An open phase; dropping it closes it (clears the bar, or prints a last
/// line when periodic lines were due) and makes the enclosing phase current again.
pub struct Phase {
    state: Arc<State>,
    outer: Option<Arc<State>>,
}

/// Opens a phase named `label` counting `unit`s (`"pairs"`), shown on stderr
/// when `show` (a bar on a terminal, lines otherwise), hidden when not.
pub fn begin(label: &str, unit: &'static str, show: bool) -> Phase {
    let shown = if !show {
        Shown::Hidden
    } else if std::io::stderr().is_terminal() {
        let pb = ProgressBar::new(0);
        pb.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {human_pos}/{human_len} {msg} {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb.set_prefix(label.to_string());
        pb.set_message(unit);
        Shown::Bar(pb)
    } else {
        Shown::Lines {
            every: line_every(),
            out: Mutex::new((Instant::now(), Box::new(std::io::stderr()))),
        }
    };
    open(State::new(label, unit, shown))
}

fn open(state: State) -> Phase {
    let state = Arc::new(state);
    let outer = CURRENT
        .lock()
        .map(|mut c| c.replace(state.clone()))
        .unwrap_or_default();
    Phase { state, outer }
}

impl Drop for Phase {
    fn drop(&mut self) {
        if let Ok(mut c) = CURRENT.lock()
            && c.as_ref().is_some_and(|s| Arc::ptr_eq(s, &self.state))
        {
            *c = self.outer.take();
        }
        self.state.finish();
    }
}

/// `secs` as `1h02m`, `3m05s` or `12s`.
fn duration_text(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The periodic line: `label: 41% (410000/1000000 pairs), 82000 pairs/s, elapsed 5s, ETA 7s`.
fn line(label: &str, unit: &str, done: u64, total: u64, elapsed: f64) -> String {
    let rate = if elapsed > 0.0 {
        done as f64 / elapsed
    } else {
        0.0
    };
    let eta = if rate > 0.0 && total >= done {
        duration_text((total - done) as f64 / rate)
    } else {
        "unknown".into()
    };
    let pct = if total > 0 {
        100.0 * done as f64 / total as f64
    } else {
        0.0
    };
    format!(
        "{label}: {pct:.0}% ({done}/{total} {unit}), {rate:.0} {unit}/s, elapsed {}, ETA {eta}",
        duration_text(elapsed)
    )
}

impl State {
    fn new(label: &str, unit: &'static str, shown: Shown) -> Self {
        State {
            label: label.to_string(),
            unit,
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
            start: Instant::now(),
            shown,
        }
    }

    fn add_total(&self, n: u64) {
        let t = self.total.fetch_add(n, Ordering::Relaxed) + n;
        if let Shown::Bar(pb) = &self.shown {
            pb.set_length(t);
        }
    }

    fn advance(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        match &self.shown {
            Shown::Bar(pb) => pb.inc(n),
            Shown::Lines { every, out } => {
                // Another thread printing now means this tick can pass silently.
                let Ok(mut o) = out.try_lock() else { return };
                if o.0.elapsed() >= *every {
                    o.0 = Instant::now();
                    let total = self.total.load(Ordering::Relaxed);
                    let text = line(
                        &self.label,
                        self.unit,
                        done,
                        total,
                        self.start.elapsed().as_secs_f64(),
                    );
                    let _ = writeln!(o.1, "{text}");
                }
            }
            Shown::Hidden => {}
        }
    }

    fn finish(&self) {
        match &self.shown {
            Shown::Bar(pb) => pb.finish_and_clear(),
            Shown::Lines { every, out } => {
                let elapsed = self.start.elapsed();
                if elapsed >= *every
                    && let Ok(mut o) = out.lock()
                {
                    let done = self.done.load(Ordering::Relaxed);
                    let _ = writeln!(
                        o.1,
                        "{}: done, {done} {} in {} ({:.0} {}/s)",
                        self.label,
                        self.unit,
                        duration_text(elapsed.as_secs_f64()),
                        done as f64 / elapsed.as_secs_f64().max(1e-9),
                        self.unit
                    );
                }
            }
            Shown::Hidden => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test reads back.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn line_has_progress_rate_and_eta() {
        let l = line("dev evaluation", "pairs", 250, 1000, 5.0);
        assert_eq!(
            l,
            "dev evaluation: 25% (250/1000 pairs), 50 pairs/s, elapsed 5s, ETA 15s"
        );
        assert!(line("x", "pairs", 0, 10, 0.0).ends_with("ETA unknown"));
        assert_eq!(duration_text(3725.0), "1h02m");
        assert_eq!(duration_text(185.0), "3m05s");
    }

    /// Without a terminal a phase prints lines (here every tick, interval 0)
    /// and a last line.
    #[test]
    fn lines_when_not_a_terminal() {
        // A phase of its own, not the process-wide current one (tests run
        // in parallel and may score splits meanwhile).
        let buf = Buf::default();
        let shown = Shown::Lines {
            every: Duration::ZERO,
            out: Mutex::new((Instant::now(), Box::new(buf.clone()))),
        };
        let p = State::new("scoring test", "pairs", shown);
        p.add_total(4);
        p.advance(1);
        p.advance(3);
        p.finish();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].starts_with("scoring test: 25% (1/4 pairs)"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("scoring test: 100% (4/4 pairs)"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("scoring test: done, 4 pairs in"),
            "{text}"
        );
    }
}
