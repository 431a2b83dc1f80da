//! The integrity of index files (issue 25 §3). At build every file gets its
//! size and SHA-256 in the manifest ([`sum_file`]). At open every file is
//! read once and checked against that sum, and float arrays are checked for
//! NaN/Inf: what is served is what was built. Nothing is memory-mapped, so a
//! file truncated or rewritten under the server can never fault it (SIGBUS):
//! the small files are kept in memory ([`Watched::read_verified`],
//! [`Watched::read_verified_f32`]), and the two large arrays
//! (`images.npy`, `caption_rows.npy`, most of an index's bytes) stay on disk
//! and are read row by row with `pread` into owned buffers
//! ([`Watched::open_verified_rows`], [`RowsF32`]); a short read is reported,
//! not faulted. Each file's identity (size, modification time, inode) is kept
//! ([`Watched`]); a request to an index whose files changed on disk since it
//! was opened is answered 503 naming the index and the file, while other
//! indexes keep serving.

use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::FileExt;
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

/// Err unless the SHA-256 `found` is the one `sum` records.
fn check_sha(path: &Path, found: &str, sum: &FileSum) -> Result<(), ServeError> {
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

/// The header of the `.npy` float32 file at `path` of `bytes` bytes, from
/// its first bytes `head`: `ndim` dimensions whose values fill the rest.
fn check_header(
    path: &Path,
    head: &[u8],
    bytes: u64,
    ndim: usize,
) -> Result<crate::data::npy::NpyHeader, ServeError> {
    let header = parse_header(path, head)?;
    if header.shape.len() != ndim {
        return Err(corrupt(
            path,
            format!("shape {:?}, expected {ndim} dimensions", header.shape),
        ));
    }
    let offset = header.data_offset as u64;
    if !offset.is_multiple_of(4) || bytes.checked_sub(offset) != Some(header.len() as u64 * 4) {
        return Err(corrupt(
            path,
            format!("shape {:?} does not match the file's size", header.shape),
        ));
    }
    Ok(header)
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
        check_sha(path, &sha256_hex(&buf), sum)?;
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
        check_sha(path, &sha256_hex(bytes), sum)?;
        let header = check_header(path, bytes, sum.bytes, ndim)?;
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

    /// Opens the `.npy` float32 array at `path` for reading by rows: streams
    /// the whole file once through SHA-256 (checked against `sum`) and a
    /// NaN/Inf scan, keeps only the open file; watches it.
    pub fn open_verified_rows(
        &mut self,
        path: &Path,
        sum: &FileSum,
        ndim: usize,
    ) -> Result<RowsF32, ServeError> {
        let (f, stamp) = open_checked(path, sum)?;
        let mut head = vec![0u8; sum.bytes.min(1 << 16) as usize];
        f.read_exact_at(&mut head, 0).map_err(io(path))?;
        let header = check_header(path, &head, sum.bytes, ndim)?;
        let offset = header.data_offset as u64;
        let mut scan = FiniteScan {
            inner: &f,
            pos: 0,
            offset,
            carry: Vec::with_capacity(4),
            values: 0,
            first_bad: None,
        };
        let (_, sha) = sha256_reader(&mut scan).map_err(io(path))?;
        check_sha(path, &sha, sum)?;
        if let Some(i) = scan.first_bad {
            return Err(corrupt(path, format!("value {i} is NaN or infinite")));
        }
        self.files.push((path.to_path_buf(), stamp));
        Ok(RowsF32 {
            path: path.to_path_buf(),
            file: f,
            row_len: header.shape.iter().skip(1).product(),
            shape: header.shape,
            offset,
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

/// A reader that notes the first non-finite f32 after `offset` bytes of
/// what passes through it (values counted from `offset`).
struct FiniteScan<R> {
    inner: R,
    pos: u64,
    offset: u64,
    /// Bytes of a value split across two reads.
    carry: Vec<u8>,
    /// Values seen.
    values: u64,
    first_bad: Option<u64>,
}

impl<R: Read> Read for FiniteScan<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let start = self.pos;
        self.pos += n as u64;
        // The part of this chunk at or after `offset`.
        let skip = self.offset.saturating_sub(start).min(n as u64) as usize;
        for &b in &buf[skip..n] {
            self.carry.push(b);
            if self.carry.len() == 4 {
                let v = f32::from_le_bytes([
                    self.carry[0],
                    self.carry[1],
                    self.carry[2],
                    self.carry[3],
                ]);
                self.carry.clear();
                if !v.is_finite() && self.first_bad.is_none() {
                    self.first_bad = Some(self.values);
                }
                self.values += 1;
            }
        }
        Ok(n)
    }
}

/// A float32 array left on disk and read by rows with `pread` (never
/// mapped): `shape` in C order, a row being everything after the first axis.
#[derive(Debug)]
pub struct RowsF32 {
    path: PathBuf,
    file: File,
    shape: Vec<usize>,
    row_len: usize,
    /// Byte offset of the first value.
    offset: u64,
}

impl RowsF32 {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Shape in C order.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Values per row.
    pub fn row_len(&self) -> usize {
        self.row_len
    }

    /// Appends rows `rows` to `out`. A file that shrank since it was opened
    /// is an error naming it ([`ServeError::Changed`]), never a fault.
    pub fn read_rows(&self, rows: Range<usize>, out: &mut Vec<f32>) -> Result<(), ServeError> {
        let first = out.len();
        out.resize(first + rows.len() * self.row_len, 0.0);
        let at = self.offset + (rows.start * self.row_len * 4) as u64;
        self.file
            .read_exact_at(bytemuck::cast_slice_mut(&mut out[first..]), at)
            .map_err(|e| {
                out.truncate(first);
                ServeError::Changed {
                    index: self.path.parent().unwrap_or(Path::new("")).to_path_buf(),
                    file: self.path.clone(),
                    what: format!("reading rows {rows:?} failed: {e}"),
                }
            })
    }

    /// Every row: `[shape]`, flattened.
    pub fn read_all(&self) -> Result<Vec<f32>, ServeError> {
        let mut v = Vec::new();
        self.read_rows(0..self.shape.first().copied().unwrap_or(0), &mut v)?;
        Ok(v)
    }
}
