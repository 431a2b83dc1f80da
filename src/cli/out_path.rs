//! Where a command writes, checked before any work (issue 25 §4): an output
//! file's folder must exist and an output folder must not be a file. The
//! error names the flag and the path as the user gave it (never a temporary
//! name) and says what is wrong ([`crate::os_error::check_out_file`],
//! [`crate::os_error::check_out_dir`]).

use std::path::Path;

use crate::os_error::{check_out_dir, check_out_file};

/// Err unless a file can be written at `path` (given as `flag`).
pub fn file(flag: &str, path: &Path) -> anyhow::Result<()> {
    check_out_file(path).map_err(|w| anyhow::anyhow!("{flag} {}: {w}", path.display()))
}

/// Err unless `path` (given as `flag`) is a folder or can be created as one.
pub fn dir(flag: &str, path: &Path) -> anyhow::Result<()> {
    check_out_dir(path).map_err(|w| anyhow::anyhow!("{flag} {}: {w}", path.display()))
}
