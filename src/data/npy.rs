//! `.npy` (NumPy format v1–v3) for little-endian C-order `float32` arrays:
//! a validating, zero-copy memory-mapped reader and a streaming writer.
//!
//! The header is checked before anything is trusted: magic, version, a capped
//! header length (so a hostile length is refused before any allocation), the
//! dtype (`<f4` only), `fortran_order: False`, and that the shape's byte size
//! equals the payload exactly (a truncated file or a header that lies about its
//! shape is an error naming the file). Format reference:
//! <https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

#[cfg(not(target_endian = "little"))]
compile_error!("dbl reads .npy payloads in place and needs a little-endian target");

/// The six magic bytes every `.npy` starts with.
const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Headers larger than this are refused before allocating (NumPy itself caps
/// at 10,000 bytes unless asked otherwise; we allow some slack).
pub const MAX_HEADER_LEN: usize = 64 * 1024;
/// [`NpyF32::release_rows`] widens its range to multiples of this many file
/// bytes: the largest page-cache folio a fault can map on x86-64/arm64 (a
/// PMD, 2 MiB), which also covers the 64 KiB fault-around window.
pub const RELEASE_ALIGN: usize = 2 << 20;
/// Shapes with more dimensions than this are refused.
const MAX_NDIM: usize = 8;

/// Everything that can go wrong reading or writing a `.npy` file.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot be written: {words}")]
    Create { path: PathBuf, words: String },
    #[error("{path}: not a .npy file ({what})")]
    NotNpy { path: PathBuf, what: String },
    #[error("{path}: malformed .npy header: {what}")]
    BadHeader { path: PathBuf, what: String },
    #[error(
        "{path}: unsupported dtype {descr:?}; dbl reads little-endian float32 ('<f4') only \
         (convert with `np.save(path, a.astype('<f4'))`)"
    )]
    Dtype { path: PathBuf, descr: String },
    #[error(
        "{path}: array is stored in Fortran (column-major) order; save it C-contiguous \
         (`np.ascontiguousarray`)"
    )]
    FortranOrder { path: PathBuf },
    #[error(
        "{path}: header says shape {shape:?} ({expected} bytes of data) but the file holds \
         {actual} bytes after the header ({})",
        if actual < expected { "truncated file" } else { "header lies about its shape" }
    )]
    SizeMismatch {
        path: PathBuf,
        shape: Vec<usize>,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: expected a {expected}-dimensional array, found shape {shape:?}")]
    Rank {
        path: PathBuf,
        expected: usize,
        shape: Vec<usize>,
    },
    #[error("{path}: writer expected {expected} values, received {actual}")]
    WriteCount {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> NpyError + '_ {
    move |source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Parsed and validated `.npy` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// Array shape, C order.
    pub shape: Vec<usize>,
    /// Byte offset of the first element.
    pub data_offset: usize,
}

impl NpyHeader {
    /// Number of elements (product of the shape; 1 for a 0-d array).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Parses the header at the start of `bytes` (the whole file or at least its
/// head). Validates magic, version, header length cap, dtype and order.
pub fn parse_header(path: &Path, bytes: &[u8]) -> Result<NpyHeader, NpyError> {
    let bad = |what: &str| NpyError::BadHeader {
        path: path.to_path_buf(),
        what: what.to_string(),
    };
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(NpyError::NotNpy {
            path: path.to_path_buf(),
            what: if bytes.len() < 10 {
                format!("only {} bytes long", bytes.len())
            } else {
                "missing the \\x93NUMPY magic".to_string()
            },
        });
    }
    let major = bytes[6];
    let (header_len, prefix) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad("file ends inside the header length field"));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12usize,
            )
        }
        v => return Err(bad(&format!("unsupported format version {v}"))),
    };
    if header_len > MAX_HEADER_LEN {
        return Err(bad(&format!(
            "header length {header_len} exceeds the {MAX_HEADER_LEN}-byte cap"
        )));
    }
    let end = prefix + header_len;
    if bytes.len() < end {
        return Err(bad(&format!(
            "file ends inside the header ({} of {end} header bytes present)",
            bytes.len()
        )));
    }
    let text = std::str::from_utf8(&bytes[prefix..end])
        .map_err(|_| bad("header dictionary is not ASCII/UTF-8"))?;
    let dict = parse_dict(text).map_err(|w| bad(&w))?;
    if dict.descr != "<f4" {
        return Err(NpyError::Dtype {
            path: path.to_path_buf(),
            descr: dict.descr,
        });
    }
    if dict.fortran_order {
        return Err(NpyError::FortranOrder {
            path: path.to_path_buf(),
        });
    }
    if !end.is_multiple_of(4) {
        return Err(bad(&format!(
            "data offset {end} is not 4-byte aligned (write the file with NumPy)"
        )));
    }
    // Every size derived from the shape must be representable: the product
    // of the non-zero dimensions (so a zero elsewhere cannot hide a huge
    // one) and the byte count of the whole payload, with the header.
    let too_large = || bad(&format!("shape {:?} is too large to address", dict.shape));
    let mut nonzero = 1usize;
    for &d in dict.shape.iter().filter(|&&d| d != 0) {
        nonzero = nonzero.checked_mul(d).ok_or_else(too_large)?;
    }
    nonzero
        .checked_mul(4)
        .and_then(|b| b.checked_add(end))
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or_else(too_large)?;
    Ok(NpyHeader {
        shape: dict.shape,
        data_offset: end,
    })
}

struct HeaderDict {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Parses the Python-literal dict `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
fn parse_dict(text: &str) -> Result<HeaderDict, String> {
    let t = text.trim_end_matches(['\n', ' ', '\0']).trim();
    let inner = t
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or_else(|| format!("header is not a dictionary: {t:?}"))?;
    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let (key, after) = take_quoted(rest).ok_or_else(|| format!("bad key near {rest:?}"))?;
        let after = after
            .trim_start()
            .strip_prefix(':')
            .ok_or_else(|| format!("missing ':' after key {key:?}"))?
            .trim_start();
        let consumed = match key.as_str() {
            "descr" => {
                let (v, a) =
                    take_quoted(after).ok_or_else(|| "descr is not a string".to_string())?;
                descr = Some(v);
                a
            }
            "fortran_order" => {
                if let Some(a) = after.strip_prefix("False") {
                    fortran = Some(false);
                    a
                } else if let Some(a) = after.strip_prefix("True") {
                    fortran = Some(true);
                    a
                } else {
                    return Err("fortran_order is neither True nor False".into());
                }
            }
            "shape" => {
                let body = after
                    .strip_prefix('(')
                    .ok_or_else(|| "shape is not a tuple".to_string())?;
                let close = body
                    .find(')')
                    .ok_or_else(|| "shape tuple is not closed".to_string())?;
                let mut dims = Vec::new();
                for part in body[..close].split(',') {
                    let p = part.trim().trim_end_matches('L');
                    if p.is_empty() {
                        continue;
                    }
                    let d: usize = p
                        .parse()
                        .map_err(|_| format!("shape entry {p:?} is not a non-negative integer"))?;
                    dims.push(d);
                }
                if dims.len() > MAX_NDIM {
                    return Err(format!("{} dimensions (at most {MAX_NDIM})", dims.len()));
                }
                shape = Some(dims);
                &body[close + 1..]
            }
            other => return Err(format!("unexpected key {other:?}")),
        };
        rest = consumed.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Ok(HeaderDict {
        descr: descr.ok_or("missing 'descr'")?,
        fortran_order: fortran.ok_or("missing 'fortran_order'")?,
        shape: shape.ok_or("missing 'shape'")?,
    })
}

fn take_quoted(s: &str) -> Option<(String, &str)> {
    let q = s.chars().next()?;
    if q != '\'' && q != '"' {
        return None;
    }
    let body = &s[1..];
    let end = body.find(q)?;
    Some((body[..end].to_string(), &body[end + 1..]))
}

/// A read-only, memory-mapped little-endian `float32` array.
///
/// `data()` borrows the mapping directly: opening an 8.5 GB feature file
/// costs a few pages of RSS until rows are touched.
pub struct NpyF32 {
    path: PathBuf,
    mmap: Mmap,
    header: NpyHeader,
}

impl std::fmt::Debug for NpyF32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NpyF32")
            .field("path", &self.path)
            .field("shape", &self.header.shape)
            .finish()
    }
}

impl NpyF32 {
    /// Opens and validates `path`; the payload is mapped, not read.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, NpyError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(io_err(path))?;
        // SAFETY: the mapping is read-only; dbl never writes to files it has
        // mapped. Another process truncating the file underneath is outside
        // what any mmap reader can defend against.
        let mmap = unsafe { Mmap::map(&file) }.map_err(io_err(path))?;
        let header = parse_header(path, &mmap)?;
        // Cannot overflow: parse_header checked the shape's byte size.
        let expected = (header.len() * 4) as u64;
        let actual = (mmap.len() - header.data_offset) as u64;
        if expected != actual {
            return Err(NpyError::SizeMismatch {
                path: path.to_path_buf(),
                shape: header.shape,
                expected,
                actual,
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            mmap,
            header,
        })
    }

    /// Opens `path` and requires exactly `ndim` dimensions.
    pub fn open_ndim(path: impl AsRef<Path>, ndim: usize) -> Result<Self, NpyError> {
        let a = Self::open(path)?;
        if a.shape().len() != ndim {
            return Err(NpyError::Rank {
                path: a.path.clone(),
                expected: ndim,
                shape: a.shape().to_vec(),
            });
        }
        Ok(a)
    }

    /// The file this array was mapped from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Shape in C order.
    pub fn shape(&self) -> &[usize] {
        &self.header.shape
    }

    /// All elements, C order, borrowed from the mapping.
    pub fn data(&self) -> &[f32] {
        bytemuck::cast_slice(&self.mmap[self.header.data_offset..])
    }

    /// Elements per index of the first axis (product of the trailing dims).
    pub fn row_len(&self) -> usize {
        self.header.shape.iter().skip(1).product()
    }

    /// The `i`-th sub-array along the first axis. Panics if `i` is out of range.
    pub fn row(&self, i: usize) -> &[f32] {
        let n = self.row_len();
        &self.data()[i * n..(i + 1) * n]
    }

    /// Drops this process's mapping of the pages under rows `rows` (first axis)
    /// with `madvise(MADV_DONTNEED)`, so pages already read stop counting in
    /// the resident set. The data stays valid: the next read faults the same
    /// bytes back in from the page cache or the file.
    ///
    /// The range is widened to [`RELEASE_ALIGN`] boundaries of the file: one
    /// page fault maps a whole page-cache folio (up to 2 MiB) plus the
    /// fault-around window, i.e. neighbouring rows too, and those would stay
    /// resident until their own rows were released. Dropping a neighbour's
    /// pages early is harmless for the reason above. A hint: errors and
    /// non-Unix targets are ignored; an out-of-range `rows` is a no-op.
    pub fn release_rows(&self, rows: std::ops::Range<usize>) {
        let row_bytes = self.row_len() * 4;
        let first = self.shape().first().copied().unwrap_or(0);
        if rows.start >= rows.end || rows.end > first || row_bytes == 0 {
            return;
        }
        let lo = self.header.data_offset + rows.start * row_bytes;
        let hi = self.header.data_offset + rows.end * row_bytes;
        let offset = lo - lo % RELEASE_ALIGN;
        let len = hi.next_multiple_of(RELEASE_ALIGN).min(self.mmap.len()) - offset;
        #[cfg(unix)]
        {
            // SAFETY: `Mmap::map` made a read-only `MAP_SHARED` mapping of a
            // regular file, and nothing writes through it. For such a mapping
            // MADV_DONTNEED only removes page-table entries: later reads fault
            // the unchanged file bytes back in, so every `&[f32]` handed out by
            // `data()`/`row()` keeps observing the same values (the zero-fill
            // behaviour that makes this advice unsafe applies to private or
            // anonymous mappings only). `offset + len <= mmap.len()` by
            // construction.
            let _ = unsafe {
                self.mmap
                    .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len)
            };
        }
        #[cfg(not(unix))]
        let _ = (offset, len);
    }

    /// Hints the kernel that rows will be read in order (cheap; errors ignored).
    pub fn advise_sequential(&self) {
        #[cfg(unix)]
        let _ = self.mmap.advise(memmap2::Advice::Sequential);
    }
}

/// Encodes a v1 `.npy` header for a `<f4` C-order array, padded so the data
/// starts on a 64-byte boundary.
pub fn encode_header(shape: &[usize]) -> Vec<u8> {
    let dims = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    let unpadded = 10 + dict.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    dict.extend(std::iter::repeat_n(' ', pad));
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Streams a `<f4` array to disk in C order. The file appears under its final
/// name only after [`NpyWriter::finish`] (temp file + rename), and only if
/// exactly `prod(shape)` values were written.
pub struct NpyWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
    expected: u64,
    written: u64,
}

impl NpyWriter {
    /// Starts writing an array of `shape` to `path`.
    pub fn create(path: impl AsRef<Path>, shape: &[usize]) -> Result<Self, NpyError> {
        let path = path.as_ref().to_path_buf();
        let tmp = tmp_path(&path);
        // Errors name `path` as the caller gave it, never the temp file.
        let file =
            File::create(&tmp).map_err(|e| match crate::os_error::check_out_file(&path) {
                Err(words) => NpyError::Create {
                    path: path.clone(),
                    words,
                },
                Ok(()) => NpyError::Io {
                    path: path.clone(),
                    source: e,
                },
            })?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&encode_header(shape))
            .map_err(io_err(&path))?;
        Ok(Self {
            path,
            tmp,
            out,
            expected: shape.iter().product::<usize>() as u64,
            written: 0,
        })
    }

    /// Appends values (C order).
    pub fn write(&mut self, values: &[f32]) -> Result<(), NpyError> {
        self.written += values.len() as u64;
        self.out
            .write_all(bytemuck::cast_slice(values))
            .map_err(io_err(&self.path))
    }

    /// Flushes, checks the element count, syncs and renames into place.
    pub fn finish(mut self) -> Result<(), NpyError> {
        if self.written != self.expected {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(NpyError::WriteCount {
                path: self.path,
                expected: self.expected,
                actual: self.written,
            });
        }
        self.out.flush().map_err(io_err(&self.path))?;
        let file = self.out.get_ref();
        file.sync_all().map_err(io_err(&self.path))?;
        std::fs::rename(&self.tmp, &self.path).map_err(io_err(&self.path))
    }
}

/// Writes a whole array at once (atomic, like [`NpyWriter`]).
pub fn write_f32(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> Result<(), NpyError> {
    let mut w = NpyWriter::create(path, shape)?;
    w.write(data)?;
    w.finish()
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-made v1 header for `shape` followed by `payload` bytes.
    fn hostile(dir: &Path, shape: &str, payload: usize) -> PathBuf {
        let mut d = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        while !(10 + d.len() + 1).is_multiple_of(64) {
            d.push(' ');
        }
        d.push('\n');
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[1, 0]);
        b.extend_from_slice(&(d.len() as u16).to_le_bytes());
        b.extend_from_slice(d.as_bytes());
        b.extend(std::iter::repeat_n(0u8, payload));
        let p = dir.join("hostile.npy");
        std::fs::write(&p, b).unwrap();
        p
    }

    /// Shapes whose element or byte count overflows are refused by the
    /// header check, never wrapped into a size that matches the payload.
    #[test]
    fn overflowing_shapes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (shape, payload) in [
            ("(4611686018427387904, 4)", 0),
            ("(4611686018427387904, 0, 4)", 0),
            ("(18446744073709551615,)", 0),
            ("(4294967296, 4294967296)", 0),
            ("(3, 1152921504606846976)", 0),
            ("(99999999999999999999999,)", 0),
        ] {
            let p = hostile(dir.path(), shape, payload);
            let e = NpyF32::open(&p).unwrap_err().to_string();
            assert!(
                e.contains("too large") || e.contains("not a non-negative integer"),
                "{shape}: {e}"
            );
        }
        // Sane shapes with the matching payload still open.
        let p = hostile(dir.path(), "(2, 3)", 24);
        assert_eq!(NpyF32::open(&p).unwrap().shape(), &[2, 3]);
    }

    /// Errors name the path the caller gave, never the temp file, and say
    /// what is wrong with its folder.
    #[test]
    fn writer_errors_name_the_given_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing").join("x.npy");
        let e = write_f32(&p, &[1], &[0.0]).unwrap_err().to_string();
        assert!(
            e.contains(&p.display().to_string()) && e.contains("missing does not exist"),
            "{e}"
        );
        assert!(!e.contains("x.npy.tmp"), "{e}");
    }

    #[test]
    fn round_trip_3d() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let data: Vec<f32> = (0..24).map(|x| x as f32 * 0.5).collect();
        write_f32(&p, &[2, 3, 4], &data).unwrap();
        let a = NpyF32::open_ndim(&p, 3).unwrap();
        assert_eq!(a.shape(), &[2, 3, 4]);
        assert_eq!(a.data(), &data[..]);
        assert_eq!(a.row(1), &data[12..]);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 128 + 96);
    }

    #[test]
    fn header_matches_numpy_layout() {
        let h = encode_header(&[5]);
        assert_eq!(h.len() % 64, 0);
        let text = std::str::from_utf8(&h[10..]).unwrap();
        assert!(text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }"));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn parses_numpy_written_header() {
        let mut h = b"\x93NUMPY\x01\x00".to_vec();
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let mut d = dict.to_string();
        while !(10 + d.len() + 1).is_multiple_of(64) {
            d.push(' ');
        }
        d.push('\n');
        h.extend_from_slice(&(d.len() as u16).to_le_bytes());
        h.extend_from_slice(d.as_bytes());
        let hdr = parse_header(Path::new("x.npy"), &h).unwrap();
        assert_eq!(hdr.shape, vec![2, 3]);
        assert_eq!(hdr.data_offset, 128);
    }

    #[test]
    fn release_rows_keeps_data_and_shrinks_rss() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.npy");
        // 64 rows of 64 KiB: 4 MiB, enough to see in the resident set.
        let (rows, cols) = (64usize, 16384usize);
        let data: Vec<f32> = (0..rows * cols).map(|i| (i % 977) as f32).collect();
        write_f32(&p, &[rows, cols], &data).unwrap();
        let a = NpyF32::open_ndim(&p, 2).unwrap();
        let sum = |a: &NpyF32| a.data().iter().map(|&x| x as f64).sum::<f64>();
        let want = sum(&a);
        let touched = rss_file_kib();
        a.release_rows(0..rows);
        let released = rss_file_kib();
        // Out-of-range and empty ranges are no-ops, not panics.
        a.release_rows(rows..rows + 1);
        a.release_rows(3..3);
        assert_eq!(sum(&a), want, "data must read back unchanged after release");
        if let (Some(t), Some(r)) = (touched, released) {
            // 4 MiB were touched; at least 3 MiB must have left the resident set.
            assert!(
                t >= r + 3 * 1024,
                "RssFile {t} KiB -> {r} KiB after release"
            );
        }
    }

    /// File-backed resident memory of this process (Linux only).
    fn rss_file_kib() -> Option<u64> {
        let s = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = s.lines().find(|l| l.starts_with("RssFile:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    #[test]
    fn writer_refuses_wrong_count_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.npy");
        let mut w = NpyWriter::create(&p, &[3]).unwrap();
        w.write(&[1.0, 2.0]).unwrap();
        assert!(matches!(w.finish(), Err(NpyError::WriteCount { .. })));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
