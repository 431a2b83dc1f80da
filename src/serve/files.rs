//! The integrity of index files (issue 25 §3). At build every file gets its
//! size and SHA-256 in the manifest ([`sum_file`]). At open each file is read
//! whole into memory owned by the process while being checked against that
//! sum ([`read_verified`], [`read_verified_f32`]): what is served is what was
//! built, and nothing is memory-mapped, so a file truncated or rewritten
//! under the server can never fault it (SIGBUS). Each file's identity
//! (size, modification time, inode) is kept ([`Watched`]); a request to an
//! index whose files changed on disk since it was opened is answered 503
//! naming the index and the file, while other indexes keep serving.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::ServeError;
use crate::data::npy::parse_header;
use crate::store::{sha256_hex, sha256_reader};

/// Size and SHA-256 of one index file, as the manifest records them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSum {
    /// Length, bytes.
    pub bytes: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ServeError + '_ {
    move |source| ServeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, message: impl Into<String>) -> ServeError {
    ServeError::Corrupt {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The sum of the file at `path` (read in blocks; for building).
pub fn sum_file(path: &Path) -> Result<FileSum, ServeError> {
    let f = File::open(path).map_err(io(path))?;
    let (bytes, sha256) = sha256_reader(f).map_err(io(path))?;
    Ok(FileSum { bytes, sha256 })
}

/// What identifies a file's contents cheaply: size, modification time and
/// (on Unix) device and inode — a replaced file has a new inode, a truncated
/// or rewritten one a new size or time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    ino: (u64, u64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let ino = {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        };
        #[cfg(not(unix))]
        let ino = (0, 0);
        Stamp {
            len: m.len(),
            modified: m.modified().ok(),
            ino,
        }
    }
}

/// Opens `path` and checks its length against `sum` → (file, stamp).
fn open_checked(path: &Path, sum: &FileSum) -> Result<(File, Stamp), ServeError> {
    let f = File::open(path).map_err(io(path))?;
    let stamp = Stamp::of(&f.metadata().map_err(io(path))?);
    if stamp.len != sum.bytes {
        return Err(corrupt(
            path,
            format!(
                "{} bytes, the manifest says {} (truncated or replaced); rebuild the index",
                stamp.len, sum.bytes
            ),
        ));
    }
    Ok((f, stamp))
}

fn check_sum(path: &Path, bytes: &[u8], sum: &FileSum) -> Result<(), ServeError> {
    let found = sha256_hex(bytes);
    if found != sum.sha256 {
        return Err(corrupt(
            path,
            format!(
                "SHA-256 {found}, the manifest says {} (the file was altered after the build); \
                 rebuild the index",
                sum.sha256
            ),
        ));
    }
    Ok(())
}

/// The files of one opened index and their stamps at open.
#[derive(Debug, Default)]
pub struct Watched {
    files: Vec<(PathBuf, Stamp)>,
}

impl Watched {
    /// Reads `path` whole, checked against `sum`, and watches it.
    pub fn read_verified(&mut self, path: &Path, sum: &FileSum) -> Result<Vec<u8>, ServeError> {
        let (mut f, stamp) = open_checked(path, sum)?;
        // Cannot truncate: the file's length is a u64 held in memory next.
        let mut buf = vec![0u8; sum.bytes as usize];
        f.read_exact(&mut buf).map_err(io(path))?;
        check_sum(path, &buf, sum)?;
        self.files.push((path.to_path_buf(), stamp));
        Ok(buf)
    }

    /// Reads the `.npy` float32 array at `path` whole, checked against `sum`
    /// and its header, and refuses NaN/Inf; watches the file.
    pub fn read_verified_f32(
        &mut self,
        path: &Path,
        sum: &FileSum,
        ndim: usize,
    ) -> Result<OwnedF32, ServeError> {
        let (mut f, stamp) = open_checked(path, sum)?;
        if !sum.bytes.is_multiple_of(4) {
            return Err(corrupt(path, "not a whole number of float32 values"));
        }
        // Read straight into f32 storage (aligned); the header is dropped after.
        let mut data = vec![0f32; (sum.bytes / 4) as usize];
        f.read_exact(bytemuck::cast_slice_mut(&mut data))
            .map_err(io(path))?;
        let bytes: &[u8] = bytemuck::cast_slice(&data);
        check_sum(path, bytes, sum)?;
        let header = parse_header(path, bytes)?;
        if header.shape.len() != ndim {
            return Err(corrupt(
                path,
                format!("shape {:?}, expected {ndim} dimensions", header.shape),
            ));
        }
        if !header.data_offset.is_multiple_of(4) || bytes.len() - header.data_offset != header.len() * 4 {
            return Err(corrupt(
                path,
                format!("shape {:?} does not match the file's size", header.shape),
            ));
        }
        data.drain(..header.data_offset / 4);
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(corrupt(
                path,
                format!("value {i} is {} (NaN or infinite)", data[i]),
            ));
        }
        self.files.push((path.to_path_buf(), stamp));
        Ok(OwnedF32 {
            path: path.to_path_buf(),
            shape: header.shape,
            data,
        })
    }

    /// Err naming the first file that changed on disk since it was read
    /// (`index`: the index folder, for the message).
    pub fn check(&self, index: &Path) -> Result<(), ServeError> {
        for (path, at_open) in &self.files {
            let what = match std::fs::metadata(path) {
                Err(e) => format!("it can no longer be read ({e})"),
                Ok(m) => {
                    let now = Stamp::of(&m);
                    if now == *at_open {
                        continue;
                    }
                    if now.ino != at_open.ino {
                        "it was replaced by another file".to_string()
                    } else if now.len != at_open.len {
                        format!("its size went from {} to {} bytes", at_open.len, now.len)
                    } else {
                        "it was rewritten".to_string()
                    }
                }
            };
            return Err(ServeError::Changed {
                index: index.to_path_buf(),
                file: path.clone(),
                what,
            });
        }
        Ok(())
    }
}

/// A float32 array held in memory: `shape` in C order.
#[derive(Debug)]
pub struct OwnedF32 {
    path: PathBuf,
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl OwnedF32 {
    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Shape in C order.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// All elements, C order.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Elements per index of the first axis.
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// The `i`-th sub-array along the first axis. Panics if out of range.
    pub fn row(&self, i: usize) -> &[f32] {
        let n = self.row_len();
        &self.data[i * n..(i + 1) * n]
    }
}
