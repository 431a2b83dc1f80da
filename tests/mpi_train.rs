//! Data-parallel training under MPI (docs/method.md §14; cargo feature `mpi`):
//! `mpirun -n N dbl train` against the one-process run of the same config,
//! resume with another rank count, and a dead or hung rank ending the job.
//! Needs OpenMPI's `mpirun` (CI installs `openmpi-bin`); runs as root with
//! OpenMPI's opt-in variables.

#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use dbl::store::{Store, Tag};

mod support;

use support::{BIN, ok};

/// The settings every run here shares: OSS with 2 branches, dropout 0.4 on,
/// 1 thread per process, B = 16 (shards 8/8, or 6/5/5 for 3 ranks).
fn settings(backbone: &str) -> Vec<String> {
    [
        &format!("model.backbone={backbone}"),
        "model.embed=16",
        "model.word_dim=8",
        "model.sim_dim=8",
        "regime=\"oss\"",
        "branches=2",
        "batch_size=16",
        "threads=1",
        "log_every=1",
        "seed=5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `dbl` on `ranks` processes: 1 = a plain process (no mpirun).
fn launch(ranks: usize) -> Command {
    if ranks == 1 {
        Command::new(BIN)
    } else {
        mpirun(ranks)
    }
}

fn mpirun(n: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["-n", &n.to_string(), "--oversubscribe", "--bind-to", "none"])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .arg(BIN);
    c
}

/// `dbl train` on `ranks` processes (1 = plain, no mpirun).
fn train_cmd(ranks: usize, data: &Path, out: &Path, sets: &[String]) -> Command {
    let mut c = launch(ranks);
    c.args(["train", "--data"]).arg(data).arg("--out").arg(out);
    for s in sets {
        c.args(["--set", s]);
    }
    c
}

/// Branch k's `last` weights: (name, values) in file order.
fn weights(run: &Path, k: usize) -> Vec<(String, Vec<f32>)> {
    let store = Store::open(run).unwrap();
    let bytes = store.read(k, Tag::Last, "model.safetensors").unwrap().1;
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let t = st.tensor(&n).unwrap();
            let v = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (n, v)
        })
        .collect()
}

/// Over both branches' `last` weights of two runs: (the larger of the
/// branches' whole-model relative difference ‖a − b‖ / ‖a‖ over all
/// parameters, the worst single tensor's, and its name). Tensors that start
/// at zero (biases) have tiny norms after 5 steps, so their own relative
/// difference shows f32 rounding magnified; the whole-model figure is the
/// acceptance number.
fn rel_diff(a: &Path, b: &Path) -> (f64, f64, String) {
    let (mut model, mut worst, mut name) = (0.0f64, 0.0f64, String::new());
    for k in 0..2 {
        let (wa, wb) = (weights(a, k), weights(b, k));
        assert_eq!(wa.len(), wb.len());
        let (mut num_all, mut den_all) = (0.0f64, 0.0f64);
        for ((na, va), (nb, vb)) in wa.iter().zip(&wb) {
            assert_eq!(na, nb);
            let num: f64 = va
                .iter()
                .zip(vb)
                .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
                .sum();
            let den: f64 = va.iter().map(|&x| (x as f64).powi(2)).sum();
            let rel = (num / den.max(1e-30)).sqrt();
            if rel > worst {
                (worst, name) = (rel, format!("branch{k} {na}"));
            }
            num_all += num;
            den_all += den;
        }
        model = model.max((num_all / den_all).sqrt());
    }
    (model, worst, name)
}

/// Step records of branch 0's metrics log.
fn step_records(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("branch0/metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["kind"] == "step")
        .collect()
}

fn data(tmp: &Path) -> PathBuf {
    support::synth_with(tmp, 20)
}

/// 5 steps of OSS (K = 2, dropout 0.4 on) on 2 ranks — and on 3 (uneven
/// shards) for scan-ave — end with the one-process weights to ≤ 1e-5
/// relative, for vse and scan-ave; `mpirun -n 1` is bit-identical to a plain
/// process; another seed is far off (the measure can fail); only rank 0
/// wrote the metrics.
#[test]
fn ranks_train_like_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let d = data(tmp.path());
    for (backbone, ranks) in [("vse", &[1, 2][..]), ("scan-ave", &[2, 3][..])] {
        let mut sets = settings(backbone);
        sets.extend(["epochs=1".into(), "max_steps_per_epoch=5".into()]);
        let one = tmp.path().join(format!("{backbone}_1"));
        ok(&train_cmd(1, &d, &one, &sets).output().unwrap());
        for &n in ranks {
            let many = tmp.path().join(format!("{backbone}_mpi{n}"));
            let mut c = mpirun(n);
            c.args(["train", "--data"]).arg(&d).arg("--out").arg(&many);
            for s in &sets {
                c.args(["--set", s]);
            }
            ok(&c.output().unwrap());
            let (rel, worst, name) = rel_diff(&one, &many);
            eprintln!(
                "{backbone}: {n} rank(s) vs 1 process after 5 steps: relative difference \
                 {rel:.3e} (worst tensor {name}: {worst:.3e})"
            );
            if n == 1 {
                assert_eq!(rel, 0.0, "{backbone}: mpirun -n 1 must be the plain run");
            } else {
                assert!(
                    rel <= 1e-5,
                    "{backbone}, {n} ranks: relative difference {rel}"
                );
            }
            let recs = step_records(&many);
            assert_eq!(recs.len(), 5, "one writer: 5 step records");
            assert!(recs.iter().all(|r| r["ranks"] == n));
            assert!(
                recs.iter()
                    .all(|r| (r["bytes_sent"].as_u64().unwrap() > 0) == (n > 1))
            );
        }
        if backbone == "vse" {
            let other = tmp.path().join("vse_seed6");
            let mut s6 = sets.clone();
            s6.push("seed=6".into());
            ok(&train_cmd(1, &d, &other, &s6).output().unwrap());
            let (rel, _, _) = rel_diff(&one, &other);
            assert!(rel > 1e-2, "another seed differs by only {rel}");
        }
    }
}

/// The anchored regimes on 2 ranks: MSS (EMA teacher) and OAS (two stages,
/// caption augmentation, stage 2 starting from stage 1's best that rank 0
/// committed) end with the one-process weights to ≤ 1e-5 relative.
#[test]
fn anchored_regimes_on_two_ranks() {
    let tmp = tempfile::tempdir().unwrap();
    let d = data(tmp.path());
    for regime in ["mss", "oas"] {
        let mut sets = settings("vse");
        sets.extend([
            format!("regime=\"{regime}\""),
            "epochs=1".into(),
            "oas.epochs=1".into(),
            "max_steps_per_epoch=3".into(),
        ]);
        let one = tmp.path().join(format!("{regime}_1"));
        ok(&train_cmd(1, &d, &one, &sets).output().unwrap());
        let two = tmp.path().join(format!("{regime}_2"));
        ok(&train_cmd(2, &d, &two, &sets).output().unwrap());
        let (rel, worst, name) = rel_diff(&one, &two);
        eprintln!(
            "{regime}: 2 ranks vs 1 process: relative difference {rel:.3e} \
             (worst tensor {name}: {worst:.3e})"
        );
        assert!(rel <= 1e-5, "{regime}: relative difference {rel}");
    }
}

/// A run stopped after epoch 1 on 2 ranks and resumed on 1 process (and
/// the other way round) ends where the uninterrupted one-process run ends.
#[test]
fn resume_with_another_rank_count() {
    let tmp = tempfile::tempdir().unwrap();
    let d = data(tmp.path());
    let mut sets = settings("scan-ave");
    sets.extend(["epochs=2".into(), "max_steps_per_epoch=2".into()]);
    let full = tmp.path().join("full");
    ok(&train_cmd(1, &d, &full, &sets).output().unwrap());
    for (first, then) in [(2, 1), (1, 2)] {
        let run = tmp.path().join(format!("r{first}{then}"));
        let mut half = sets.clone();
        half.push("stop_after=1".into());
        ok(&train_cmd(first, &d, &run, &half).output().unwrap());
        ok(&launch(then)
            .args(["train", "--resume"])
            .arg(&run)
            .output()
            .unwrap());
        let (rel, worst, name) = rel_diff(&full, &run);
        eprintln!(
            "resume {first} → {then} rank(s) vs 1 process: relative difference {rel:.3e} \
             (worst tensor {name}: {worst:.3e})"
        );
        assert!(rel <= 1e-5, "{first} → {then}: relative difference {rel}");
        assert_eq!(step_records(&run).len(), 4);
    }
}

/// Processes whose environment holds `tag` and OpenMPI rank `rank`.
fn rank_pids(tag: &str, rank: usize) -> Vec<u32> {
    let want = format!("OMPI_COMM_WORLD_RANK={rank}");
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        let vars: Vec<&[u8]> = env.split(|&b| b == 0).collect();
        if vars.contains(&tag.as_bytes()) && vars.contains(&want.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

/// Starts a long run on `ranks` ranks, waits for its first checkpoint,
/// sends `signal` to rank 1 and returns the job's output.
fn disturb_rank_1(
    ranks: usize,
    signal: &str,
    timeout_s: &str,
) -> (Output, PathBuf, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let d = data(tmp.path());
    let run = tmp.path().join("run");
    let mut sets = settings("vse");
    sets.extend(["epochs=1000".into(), "max_steps_per_epoch=2".into()]);
    let tag = format!("DBL_TEST_JOB={}", tmp.path().display());
    let (k, v) = tag.split_once('=').unwrap();
    let child = train_cmd(ranks, &d, &run, &sets)
        .env(k, v)
        .env("DBL_MPI_TIMEOUT", timeout_s)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until a checkpoint is committed (epoch 1 done), then disturb rank 1.
    let mut pids = Vec::new();
    for _ in 0..6000 {
        if Store::open(&run).is_ok_and(|s| s.has_checkpoint()) {
            pids = rank_pids(&tag, 1);
            if !pids.is_empty() {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(pids.len(), 1, "rank 1 not found");
    let st = Command::new("kill")
        .args([signal, &pids[0].to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    (child.wait_with_output().unwrap(), run, tmp)
}

/// A killed rank ends the job (mpirun names it); a stopped (hung) rank is
/// caught by the other ranks' watchdogs (`DBL_MPI_TIMEOUT`), which probe the
/// other ranks and abort the job naming the one that did not answer (on 3
/// ranks, the live rank 0 or 2 answers the other's probe: it waits too).
/// Either way the last checkpoint loads.
#[test]
fn dead_or_hung_rank_ends_the_job() {
    let hung = "rank 1 did not answer within 5 s (hung or stopped)";
    for (ranks, signal, timeout, expect) in [
        (2, "-KILL", "600", &[&["rank 1"][..]][..]),
        (
            2,
            "-STOP",
            "5",
            &[&["rank 0 of 2 waited over 5 s in MPI"][..], &[hung][..]][..],
        ),
        (
            3,
            "-STOP",
            "5",
            // Whichever of ranks 0 and 2 reports, it names the other as
            // waiting (its watchdog answered) and rank 1 as silent.
            &[&[hung][..], &["; rank 2 waited in", "rank 0 waited in"][..]][..],
        ),
    ] {
        let (out, run, _tmp) = disturb_rank_1(ranks, signal, timeout);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{ranks} ranks, {signal}: the job must fail"
        );
        // Each group: stderr holds one of its texts.
        for any in expect {
            assert!(
                any.iter().any(|e| err.contains(e)),
                "{ranks} ranks, {signal}: stderr lacks {any:?}: {err}"
            );
        }
        let store = Store::open(&run).unwrap();
        for k in 0..2 {
            store.read(k, Tag::Last, "model.safetensors").unwrap();
        }
    }
}
