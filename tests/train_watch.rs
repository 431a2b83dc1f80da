//! `backbone_select::train_watched` (the entry the Python binding calls):
//! every step and dev evaluation is reported, and a stop request between two
//! steps ends the run with `TrainError::Interrupted`, writing nothing past the
//! last committed epoch, so `--resume` finishes it bit for bit like an
//! uninterrupted run (the state a killed process leaves).

use std::path::Path;
use std::sync::Mutex;

use dbl::cli::train::{Args, config};
use dbl::dist::Solo;
use dbl::store::{Store, Tag};
use dbl::train::TrainError;
use dbl::train::backbone_select::train_watched;
use dbl::watch::{Event, Unwatched, Watch};

mod support;

/// Records every report; asks to stop once `stop_at` (epoch, step) was reported.
struct Recorder {
    events: Mutex<Vec<Event>>,
    stop_at: Option<(usize, usize)>,
}

impl Watch for Recorder {
    fn report(&self, e: &Event) {
        self.events.lock().unwrap().push(e.clone());
    }
    fn stop_requested(&self) -> bool {
        let Some(at) = self.stop_at else {
            return false;
        };
        self.events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Step { epoch, step, .. } if (*epoch, *step) == at))
    }
}

fn args(data: &Path, out: &Path, resume: bool) -> Args {
    let set = [
        "model.backbone=\"tiny\"",
        "model.embed=16",
        "model.word_dim=8",
        "regime=\"oss\"",
        "branches=2",
        "batch_size=16",
        "epochs=2",
        "max_steps_per_epoch=3",
        "threads=1",
        "seed=3",
    ];
    let mut set: Vec<String> = set.iter().map(|s| s.to_string()).collect();
    let (config, resume) = if resume {
        (None, Some(out.to_path_buf()))
    } else {
        set.push(format!("data={:?}", data.display().to_string()));
        set.push(format!("out={:?}", out.display().to_string()));
        (None, None)
    };
    Args {
        config,
        resume,
        set,
        data: None,
        out: None,
        regime: None,
        epochs: None,
        seed: None,
        init: None,
    }
}

fn weights(run: &Path) -> Vec<Vec<u8>> {
    let store = Store::open(run).unwrap();
    (0..2)
        .flat_map(|k| ["model.safetensors", "optim.safetensors"].map(|f| (k, f)))
        .map(|(k, f)| store.read(k, Tag::Last, f).unwrap().1)
        .collect()
}

#[test]
fn a_stopped_run_resumes_like_a_killed_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = support::synth_with(tmp.path(), 40);
    let (full, cut) = (tmp.path().join("full"), tmp.path().join("cut"));

    let all = Recorder {
        events: Mutex::new(Vec::new()),
        stop_at: None,
    };
    let cfg = config(&args(&data, &full, false)).unwrap();
    let summary = train_watched(&cfg, false, &Solo, &all).unwrap();
    assert!(!summary.stopped);
    let events = all.events.into_inner().unwrap();
    let steps: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Step {
                stage: 1,
                epoch,
                epochs: 2,
                step,
                steps: 3,
                loss,
            } if loss.is_finite() => Some((*epoch, *step)),
            _ => None,
        })
        .collect();
    assert_eq!(steps, [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3)]);
    let evals = events
        .iter()
        .filter(|e| matches!(e, Event::Eval { rsum, .. } if rsum.len() == 2))
        .count();
    assert_eq!(evals, 2);

    let stop = Recorder {
        events: Mutex::new(Vec::new()),
        stop_at: Some((1, 1)),
    };
    let cfg = config(&args(&data, &cut, false)).unwrap();
    match train_watched(&cfg, false, &Solo, &stop) {
        Err(TrainError::Interrupted(p)) => assert_eq!(p, cut),
        other => panic!("expected Interrupted, got {other:?}"),
    }
    // Stopped right after the first step of epoch 2: epoch 1 is committed.
    assert!(matches!(
        stop.events.lock().unwrap().last(),
        Some(Event::Step {
            epoch: 1,
            step: 1,
            ..
        })
    ));
    assert_ne!(weights(&full), weights(&cut));
    let cfg = config(&args(&data, &cut, true)).unwrap();
    train_watched(&cfg, true, &Solo, &Unwatched).unwrap();
    assert_eq!(weights(&full), weights(&cut), "resumed run differs");
}
