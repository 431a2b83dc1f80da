//! One writer per run folder: `RUN/dbl.lock`, held with an exclusive
//! `flock` for the whole of a `dbl train` (fresh or `--resume`). The file
//! holds the holder's PID so a second process can name it. The kernel drops
//! the lock when the holder exits or is killed, so a crash never leaves a
//! stale lock; the file itself stays and is harmless.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock file's name inside the run folder.
pub const LOCK_FILE: &str = "dbl.lock";

/// Why the run folder could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{path}: another dbl process ({holder}) is training this run folder; wait for it to \
         finish (or stop it), or choose another --out"
    )]
    Held { path: PathBuf, holder: String },
    #[error("{path}: {words}; --out must name a folder (created when missing)")]
    NotAFolder { path: PathBuf, words: String },
    #[error("{path}: cannot lock the run folder: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// An exclusive lock on a run folder, released on drop.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Locks `run` (creating it), or fails at once naming the holder's PID.
    /// A `run` that is a file (or a link loop) is named as such, not as a
    /// lock failure.
    pub fn acquire(run: &Path) -> Result<RunLock, LockError> {
        crate::os_error::check_out_dir(run).map_err(|words| LockError::NotAFolder {
            path: run.to_path_buf(),
            words,
        })?;
        let path = run.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(run).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("PID {pid}"),
                    Err(_) => "PID unknown".to_string(),
                };
                return Err(LockError::Held { path, holder });
            }
            return Err(io(err));
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(RunLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_naming_the_holder() {
        let tmp = tempfile::tempdir().unwrap();
        let a = RunLock::acquire(tmp.path()).unwrap();
        let e = RunLock::acquire(tmp.path()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("PID {}", std::process::id())),
            "{msg}"
        );
        drop(a);
        RunLock::acquire(tmp.path()).unwrap();
    }
}
