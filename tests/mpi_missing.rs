//! A build without the `mpi` feature started as one of several MPI ranks
//! refuses to run (rather than N copies each training alone into the same
//! run folder), saying how to build with MPI.

#![cfg(not(feature = "mpi"))]

use std::process::Command;

mod support;

#[test]
fn ranks_without_mpi_support_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    for var in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"] {
        let o = Command::new(support::BIN)
            .args(["train", "--out"])
            .arg(&out)
            .env(var, "2")
            .output()
            .unwrap();
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("{var}=2")) && err.contains("--features mpi"),
            "{err}"
        );
        assert!(!out.exists(), "nothing may be written");
    }
}
