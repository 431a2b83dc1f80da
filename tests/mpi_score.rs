//! `mpirun -n N dbl score` and `dbl index build` (docs/method.md §14; cargo
//! feature `mpi`): the images sharded across ranks in whole encoding chunks,
//! the results gathered; the matrix, the metrics and every index file are
//! bit-identical to one process.

#![cfg(feature = "mpi")]

use std::path::Path;
use std::process::Command;

use dbl::model::Backbone;

mod support;

use support::{BIN, ok};

fn launch(ranks: usize) -> Command {
    if ranks == 1 {
        Command::new(BIN)
    } else {
        let mut c = Command::new("mpirun");
        c.args([
            "-n",
            &ranks.to_string(),
            "--oversubscribe",
            "--bind-to",
            "none",
        ])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .arg(BIN);
        c
    }
}

fn score(ranks: usize, run: &Path, out: &Path) -> String {
    let mut c = launch(ranks);
    c.args([
        "score",
        "--split",
        "test",
        "--json",
        "--threads",
        "1",
        "--run",
    ])
    .arg(run)
    .arg("--out")
    .arg(out);
    ok(&c.output().unwrap())
}

/// Every file of index folder `dir`, by name.
fn index_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect();
    v.sort();
    v
}

/// 300 test images (3 encoding chunks: ranks get 2 + 1, or 1 + 1 + 1) ×
/// 1,500 captions: the same matrix bytes and metrics on 1, 2 and 3 ranks,
/// for scan-ave and vse.
#[test]
fn ranks_score_bit_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    ok(&Command::new(BIN)
        .args(["synth", "--out"])
        .arg(&d)
        .args(["--train", "20", "--dev", "12", "--test", "300"])
        .output()
        .unwrap());
    for backbone in [Backbone::ScanAve, Backbone::Vse] {
        let run = support::run(tmp.path(), &d, backbone.name(), backbone, 7);
        let one = tmp.path().join(format!("{}_1.npy", backbone.name()));
        let metrics = score(1, &run, &one);
        for n in [2, 3] {
            let many = tmp.path().join(format!("{}_{n}.npy", backbone.name()));
            assert_eq!(score(n, &run, &many), metrics, "{n} ranks: metrics differ");
            assert!(
                std::fs::read(&one).unwrap() == std::fs::read(&many).unwrap(),
                "{n} ranks: similarity matrix differs"
            );
        }
        // The index of the same gallery (300 images: 3 chunks; 1,500 captions).
        let idx = |n: usize| {
            let out = tmp.path().join(format!("{}_idx{n}", backbone.name()));
            let mut c = launch(n);
            c.args(["index", "build", "--threads", "1", "--run"])
                .arg(&run)
                .arg("--images")
                .arg(d.join("test_ims.npy"))
                .arg("--captions")
                .arg(d.join("test_caps.txt"))
                .arg("--out")
                .arg(&out);
            ok(&c.output().unwrap());
            index_files(&out)
        };
        let one = idx(1);
        assert!(
            one.len() >= 6,
            "index files: {:?}",
            one.iter().map(|f| &f.0).collect::<Vec<_>>()
        );
        assert!(idx(2) == one, "2 ranks: index files differ");
    }
}
