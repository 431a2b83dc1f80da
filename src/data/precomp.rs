//! One split of a SCAN "precomp" dataset folder (docs/method.md §6.1; mirrors
//! `PrecompDataset.__init__`/`__getitem__` in the authors' `OSS/data.py`).
//!
//! A split `S` ∈ {`train`, `dev`, `test`, `testall`} is two files:
//! - `S_ims.npy`: `[n_img, n_region, d]` little-endian f32 region features,
//!   memory-mapped (never read into RAM; F30K train is 8.5 GB, COCO 33 GB);
//! - `S_caps.txt`: UTF-8, one caption per line, surrounding whitespace stripped.
//!
//! Caption `k` describes image `k / im_div`, where `im_div` is 5 when the
//! caption count is five times the image count and 1 when the counts are equal
//! (some releases store each image once per caption); any other ratio is an
//! error. `dev` is cut to its first 5,000 captions, as the authors do for
//! validation speed. Captions are tokenized (NLTK rules, lower-cased) and
//! encoded as `[<start>] + ids + [<end>]` once, in parallel, at open.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rayon::prelude::*;

use crate::data::npy::{NpyError, NpyF32};
use crate::data::tokenizer;
use crate::data::vocab::{END, START, Vocab};

/// `dev` keeps only its first this-many captions (authors' `data.py`).
pub const DEV_CAPTION_LIMIT: usize = 5000;
/// Captions per image in the standard releases; `img_id = k / 5` (the
/// authors' `id_div`, used only by the CMPM loss).
pub const CAPTIONS_PER_IMAGE: usize = 5;
/// Captions tokenized per parallel work item at open.
const ENCODE_CHUNK: usize = 2048;
/// Captions are cut to their first this many tokens (the longest caption of
/// Flickr30K or MSCOCO has under 100): one 100,000-character line must not
/// multiply a batch's memory. Cut captions are counted ([`Precomp::truncated`])
/// and reported by `dbl train` and `dbl inspect` as a warning.
pub const MAX_CAPTION_TOKENS: usize = 256;
/// Only a caption's first this many bytes are tokenized (cut at a character
/// boundary, then back to the last whitespace so no word is split).
pub const MAX_CAPTION_BYTES: usize = 8192;
/// Images scanned per parallel work item by [`Precomp::check_finite`].
const FINITE_CHUNK_IMAGES: usize = 16;

/// The four split names of the SCAN precomp layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Split {
    /// Training split.
    Train,
    /// Validation split (truncated to [`DEV_CAPTION_LIMIT`] captions).
    Dev,
    /// Test split (F30K 1K test; COCO 1K folds are cut from `testall`).
    Test,
    /// COCO 5K test split.
    Testall,
}

impl Split {
    /// All splits, in the order `inspect` reports them.
    pub const ALL: [Split; 4] = [Split::Train, Split::Dev, Split::Test, Split::Testall];

    /// The name used in file names (`train`, `dev`, `test`, `testall`).
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Dev => "dev",
            Split::Test => "test",
            Split::Testall => "testall",
        }
    }

    /// The split in words: "training" for train, else its name.
    pub fn describe(self) -> &'static str {
        match self {
            Split::Train => "training",
            s => s.name(),
        }
    }

    /// `{name}_ims.npy`.
    pub fn ims_file(self) -> String {
        format!("{}_ims.npy", self.name())
    }

    /// `{name}_caps.txt`.
    pub fn caps_file(self) -> String {
        format!("{}_caps.txt", self.name())
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Split::ALL
            .into_iter()
            .find(|sp| sp.name() == s)
            .ok_or_else(|| format!("unknown split {s:?} (expected train, dev, test or testall)"))
    }
}

/// Everything that can go wrong opening or checking a precomp split.
#[derive(Debug, thiserror::Error)]
pub enum PrecompError {
    #[error(transparent)]
    Npy(#[from] NpyError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: caption is not valid UTF-8 (invalid byte at column {column})")]
    Utf8 {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    #[error("{path}:{line}: empty caption line (expected one caption per line)")]
    EmptyLine { path: PathBuf, line: usize },
    #[error("{path}: no captions")]
    NoCaptions { path: PathBuf },
    #[error(
        "caption count does not match image count: {caps_path} holds {n_captions} captions, \
         {ims_path} holds {n_images} images; expected exactly 1× or 5× as many captions as images"
    )]
    CountMismatch {
        caps_path: PathBuf,
        n_captions: usize,
        ims_path: PathBuf,
        n_images: usize,
    },
    #[error(
        "{path}: feature array has shape {shape:?}; every image needs at least one region of at \
         least one dimension, and at least one image"
    )]
    EmptyShape { path: PathBuf, shape: Vec<usize> },
    #[error(
        "{path}: features are {n_regions} regions x {dim} dims but {reference} (the {} \
         split) has {ref_regions} x {ref_dim}; every split must have the {0} split's shape",
        .ref_split.describe()
    )]
    FeatureMismatch {
        path: PathBuf,
        n_regions: usize,
        dim: usize,
        reference: PathBuf,
        ref_split: Split,
        ref_regions: usize,
        ref_dim: usize,
    },
    #[error(
        "{path}: non-finite feature value {value} at image {image}, region {region}, \
         dimension {dim}"
    )]
    NonFinite {
        path: PathBuf,
        image: usize,
        region: usize,
        dim: usize,
        value: f32,
    },
}

/// How well a vocabulary covers a split's captions (word tokens only:
/// `<start>`/`<end>` are not counted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Word tokens in the (used) captions.
    pub tokens: usize,
    /// Tokens with no id of their own (encoded as `<unk>`).
    pub unknown: usize,
    /// Distinct unknown words with their counts, most frequent first, ties
    /// alphabetical.
    pub unknown_words: Vec<(String, usize)>,
}

impl Coverage {
    /// `unknown / tokens` (0 for no tokens).
    pub fn unknown_rate(&self) -> f64 {
        if self.tokens == 0 {
            0.0
        } else {
            self.unknown as f64 / self.tokens as f64
        }
    }

    /// Adds `other`'s counts to `self` (unknown words merged and re-sorted).
    pub fn merge(&mut self, other: &Coverage) {
        self.tokens += other.tokens;
        self.unknown += other.unknown;
        let mut m: HashMap<String, usize> = self.unknown_words.drain(..).collect();
        for (w, c) in &other.unknown_words {
            *m.entry(w.clone()).or_default() += c;
        }
        self.unknown_words = sorted_counts(m);
    }
}

fn sorted_counts(m: HashMap<String, usize>) -> Vec<(String, usize)> {
    let mut v: Vec<(String, usize)> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// An opened split: mapped features plus encoded captions.
pub struct Precomp {
    split: Split,
    images: NpyF32,
    caps_path: PathBuf,
    n_captions_file: usize,
    im_div: usize,
    /// All used captions' ids back to back.
    ids: Vec<u32>,
    /// Caption `k` is `ids[offsets[k]..offsets[k + 1]]`; `len() + 1` entries.
    offsets: Vec<usize>,
    coverage: Coverage,
    truncated: Truncated,
}

impl fmt::Debug for Precomp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Precomp")
            .field("split", &self.split)
            .field("images", &self.images)
            .field("captions", &self.len())
            .field("im_div", &self.im_div)
            .finish()
    }
}

impl Precomp {
    /// Opens `dir/{split}_ims.npy` and `dir/{split}_caps.txt`, validates both
    /// and encodes the captions with `vocab`.
    pub fn open(dir: impl AsRef<Path>, split: Split, vocab: &Vocab) -> Result<Self, PrecompError> {
        let dir = dir.as_ref();
        let ims_path = dir.join(split.ims_file());
        let caps_path = dir.join(split.caps_file());
        let images = NpyF32::open_ndim(&ims_path, 3)?;
        if images.shape().contains(&0) {
            return Err(PrecompError::EmptyShape {
                path: ims_path,
                shape: images.shape().to_vec(),
            });
        }
        let captions = read_captions(&caps_path)?;
        let n_images = images.shape()[0];
        let n_captions_file = captions.len();
        if n_captions_file == 0 {
            return Err(PrecompError::NoCaptions { path: caps_path });
        }
        let im_div = if n_captions_file == n_images {
            1
        } else if n_captions_file == CAPTIONS_PER_IMAGE * n_images {
            CAPTIONS_PER_IMAGE
        } else {
            return Err(PrecompError::CountMismatch {
                caps_path,
                n_captions: n_captions_file,
                ims_path,
                n_images,
            });
        };
        let used = match split {
            Split::Dev => n_captions_file.min(DEV_CAPTION_LIMIT),
            _ => n_captions_file,
        };
        let (ids, offsets, coverage, truncated) = encode_all(&captions[..used], vocab);
        Ok(Self {
            split,
            images,
            caps_path,
            n_captions_file,
            im_div,
            ids,
            offsets,
            coverage,
            truncated,
        })
    }

    /// Captions that were cut to [`MAX_CAPTION_TOKENS`] tokens.
    pub fn truncated(&self) -> Truncated {
        self.truncated
    }

    /// A warning line for cut captions (`None` when none was cut).
    pub fn truncation_warning(&self) -> Option<String> {
        let t = self.truncated;
        (t.captions > 0).then(|| {
            format!(
                "warning: {}: {} caption(s) longer than {MAX_CAPTION_TOKENS} tokens were cut to \
                 their first {MAX_CAPTION_TOKENS} (first at line {})",
                self.caps_path.display(),
                t.captions,
                t.first_line.unwrap_or(0)
            )
        })
    }

    /// Which split this is.
    pub fn split(&self) -> Split {
        self.split
    }

    /// The mapped feature array `[n_images_in_file, n_regions, dim]`.
    pub fn images(&self) -> &NpyF32 {
        &self.images
    }

    /// Path of the captions file.
    pub fn caps_path(&self) -> &Path {
        &self.caps_path
    }

    /// Number of captions used (the dataset length; `dev` is truncated).
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Never true for an opened split (empty caption files are refused).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Captions in the file (before the `dev` truncation).
    pub fn n_captions_in_file(&self) -> usize {
        self.n_captions_file
    }

    /// Images referenced by the used captions.
    pub fn n_images(&self) -> usize {
        self.len().div_ceil(self.im_div)
    }

    /// Images in the `.npy` file.
    pub fn n_images_in_file(&self) -> usize {
        self.images.shape()[0]
    }

    /// Regions per image (36 in the standard releases).
    pub fn n_regions(&self) -> usize {
        self.images.shape()[1]
    }

    /// Feature dimension (2048 in the standard releases).
    pub fn dim(&self) -> usize {
        self.images.shape()[2]
    }

    /// Captions per stored image: 5 or 1.
    pub fn im_div(&self) -> usize {
        self.im_div
    }

    /// Row of `_ims.npy` holding the image of caption `k`.
    pub fn image_of(&self, k: usize) -> usize {
        k / self.im_div
    }

    /// The authors' `img_id` of caption `k` (`k / 5`, whatever `im_div` is).
    pub fn img_id(&self, k: usize) -> usize {
        k / CAPTIONS_PER_IMAGE
    }

    /// Token ids of caption `k`, `<start>` … `<end>`. Panics if out of range.
    /// ids: [len(k)]
    pub fn caption(&self, k: usize) -> &[u32] {
        &self.ids[self.offsets[k]..self.offsets[k + 1]]
    }

    /// Length of caption `k` in tokens, `<start>`/`<end>` included.
    pub fn caption_len(&self, k: usize) -> usize {
        self.offsets[k + 1] - self.offsets[k]
    }

    /// All used captions' ids, back to back (caption order).
    pub fn all_ids(&self) -> &[u32] {
        &self.ids
    }

    /// Region features of caption `k`'s image. img: [n_regions, dim]
    pub fn image_of_caption(&self, k: usize) -> &[f32] {
        self.images.row(self.image_of(k))
    }

    /// How well the vocabulary covered the used captions.
    pub fn coverage(&self) -> &Coverage {
        &self.coverage
    }

    /// Scans every feature of the file for NaN/±inf, in parallel chunks of
    /// images, releasing each chunk's pages once scanned (so an 8.5 GB file
    /// does not stay resident). Reports the first bad value in file order.
    pub fn check_finite(&self) -> Result<(), PrecompError> {
        self.check_finite_with(|_| {})
    }

    /// [`Precomp::check_finite`], calling `progress(images)` (from worker
    /// threads) as each chunk of `images` images has been scanned.
    pub fn check_finite_with(&self, progress: impl Fn(usize) + Sync) -> Result<(), PrecompError> {
        let n = self.n_images_in_file();
        let row = self.images.row_len();
        let data = self.images.data();
        let bad = (0..n.div_ceil(FINITE_CHUNK_IMAGES))
            .into_par_iter()
            .find_map_first(|c| {
                let rows = c * FINITE_CHUNK_IMAGES..((c + 1) * FINITE_CHUNK_IMAGES).min(n);
                let slice = &data[rows.start * row..rows.end * row];
                let found = first_non_finite(slice).map(|i| rows.start * row + i);
                progress(rows.len());
                self.images.release_rows(rows);
                found
            });
        match bad {
            None => Ok(()),
            Some(flat) => {
                let (image, rest) = (flat / row, flat % row);
                Err(PrecompError::NonFinite {
                    path: self.images.path().to_path_buf(),
                    image,
                    region: rest / self.dim(),
                    dim: rest % self.dim(),
                    value: data[flat],
                })
            }
        }
    }

    /// Checks that this split's features have the shape `[_, R, D]` of
    /// `reference` (split `ref_split`'s `_ims.npy`, normally the training
    /// split's), naming both files.
    pub fn check_features_like(
        &self,
        reference: &NpyF32,
        ref_split: Split,
    ) -> Result<(), PrecompError> {
        let (r, d) = (
            reference.shape()[1..].to_vec(),
            self.images.shape()[1..].to_vec(),
        );
        if r.len() != 2 || r != d {
            return Err(PrecompError::FeatureMismatch {
                path: self.images.path().to_path_buf(),
                n_regions: self.n_regions(),
                dim: self.dim(),
                reference: reference.path().to_path_buf(),
                ref_split,
                ref_regions: r.first().copied().unwrap_or(0),
                ref_dim: r.get(1).copied().unwrap_or(0),
            });
        }
        Ok(())
    }

    /// Drops the resident pages of the image rows in `rows` (see
    /// [`NpyF32::release_rows`]).
    pub fn release_images(&self, rows: Range<usize>) {
        self.images.release_rows(rows);
    }
}

/// Index of the first NaN/±inf in `x`. Branch-free over blocks so the common
/// all-finite case vectorises; the exact position is searched only in a bad block.
fn first_non_finite(x: &[f32]) -> Option<usize> {
    const EXP: u32 = 0x7f80_0000;
    for (b, block) in x.chunks(4096).enumerate() {
        let worst = block.iter().fold(0u32, |acc, v| acc.max(v.to_bits() & EXP));
        if worst == EXP {
            let i = block.iter().position(|v| !v.is_finite())?;
            return Some(b * 4096 + i);
        }
    }
    None
}

/// Whitespace as Python's `str.strip()` sees it: Unicode White_Space plus the
/// ASCII separators U+001C–U+001F.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Reads a captions file: lines end at `\n`, `\r\n` or `\r` (Python's
/// universal newlines), each is stripped; invalid UTF-8 and empty lines are
/// errors naming the file and 1-based line.
pub fn read_captions(path: &Path) -> Result<Vec<String>, PrecompError> {
    let bytes = std::fs::read(path).map_err(|source| PrecompError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_captions(path, &bytes)
}

/// [`read_captions`] over the bytes of `path` already read.
pub fn parse_captions(path: &Path, bytes: &[u8]) -> Result<Vec<String>, PrecompError> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let push = |line: &[u8], out: &mut Vec<String>| -> Result<(), PrecompError> {
        let lineno = out.len() + 1;
        let text = std::str::from_utf8(line).map_err(|e| PrecompError::Utf8 {
            path: path.to_path_buf(),
            line: lineno,
            column: e.valid_up_to() + 1,
        })?;
        let t = text.trim_matches(is_py_space);
        if t.is_empty() {
            return Err(PrecompError::EmptyLine {
                path: path.to_path_buf(),
                line: lineno,
            });
        }
        out.push(t.to_string());
        Ok(())
    };
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                push(&bytes[start..i], &mut out)?;
                start = i + 1;
            }
            b'\r' => {
                push(&bytes[start..i], &mut out)?;
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < bytes.len() {
        push(&bytes[start..], &mut out)?;
    }
    Ok(out)
}

/// Tokenizes and encodes `captions` in parallel chunks; returns the flat ids,
/// the offsets (`captions.len() + 1`) and the vocabulary coverage.
fn encode_all(captions: &[String], vocab: &Vocab) -> (Vec<u32>, Vec<usize>, Coverage, Truncated) {
    struct Part {
        ids: Vec<u32>,
        lens: Vec<usize>,
        tokens: usize,
        unknown: HashMap<String, usize>,
        /// (captions cut, index in the chunk of the first).
        truncated: (usize, Option<usize>),
    }
    let parts: Vec<Part> = captions
        .par_chunks(ENCODE_CHUNK)
        .map(|chunk| {
            let mut p = Part {
                ids: Vec::new(),
                lens: Vec::with_capacity(chunk.len()),
                tokens: 0,
                unknown: HashMap::new(),
                truncated: (0, None),
            };
            for (i, cap) in chunk.iter().enumerate() {
                let (text, cut_text) = cap_text(cap);
                let mut toks = tokenizer::tokenize_caption(text);
                if cut_text || toks.len() > MAX_CAPTION_TOKENS {
                    toks.truncate(MAX_CAPTION_TOKENS);
                    p.truncated.0 += 1;
                    p.truncated.1.get_or_insert(i);
                }
                p.ids.push(START);
                for t in toks.iter() {
                    if !vocab.contains(t) {
                        *p.unknown.entry(t.clone()).or_default() += 1;
                    }
                    p.ids.push(vocab.id(t));
                }
                p.ids.push(END);
                p.tokens += toks.len();
                p.lens.push(toks.len() + 2);
            }
            p
        })
        .collect();
    let total: usize = parts.iter().map(|p| p.ids.len()).sum();
    let mut ids = Vec::with_capacity(total);
    let mut offsets = Vec::with_capacity(captions.len() + 1);
    offsets.push(0);
    let mut unknown: HashMap<String, usize> = HashMap::new();
    let mut tokens = 0;
    let mut truncated = Truncated::default();
    for (c, p) in parts.into_iter().enumerate() {
        truncated.captions += p.truncated.0;
        if truncated.first_line.is_none() {
            truncated.first_line = p.truncated.1.map(|i| c * ENCODE_CHUNK + i + 1);
        }
        ids.extend_from_slice(&p.ids);
        for l in p.lens {
            offsets.push(offsets[offsets.len() - 1] + l);
        }
        tokens += p.tokens;
        for (w, c) in p.unknown {
            *unknown.entry(w).or_default() += c;
        }
    }
    let coverage = Coverage {
        tokens,
        unknown: unknown.values().sum(),
        unknown_words: sorted_counts(unknown),
    };
    (ids, offsets, coverage, truncated)
}

/// The part of `cap` that is tokenized: its first [`MAX_CAPTION_BYTES`]
/// bytes, cut back to a character boundary and the last whitespace; → (text, was cut).
fn cap_text(cap: &str) -> (&str, bool) {
    if cap.len() <= MAX_CAPTION_BYTES {
        return (cap, false);
    }
    let mut end = MAX_CAPTION_BYTES;
    while !cap.is_char_boundary(end) {
        end -= 1;
    }
    let head = &cap[..end];
    (
        head.rfind(char::is_whitespace).map_or(head, |w| &head[..w]),
        true,
    )
}

/// Captions cut to [`MAX_CAPTION_TOKENS`] tokens when a split was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Truncated {
    /// How many.
    pub captions: usize,
    /// 1-based line of the first one.
    pub first_line: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::npy::write_f32;
    use crate::data::vocab::UNK;

    fn vocab() -> Vocab {
        Vocab::build(["a dog runs", "a cat sits"].iter().copied(), 1, true)
    }

    fn write_split(dir: &Path, split: Split, n_img: usize, caps: &[&str]) -> Vec<f32> {
        let (r, d) = (3, 4);
        let data: Vec<f32> = (0..n_img * r * d).map(|i| i as f32).collect();
        write_f32(dir.join(split.ims_file()), &[n_img, r, d], &data).unwrap();
        std::fs::write(dir.join(split.caps_file()), caps.join("\n") + "\n").unwrap();
        data
    }

    /// A 100,000-character caption is cut to MAX_CAPTION_TOKENS tokens (and
    /// counted), so it cannot blow up a batch; short captions are untouched.
    #[test]
    fn long_captions_are_cut_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let long = "dog ".repeat(25_000);
        let very_long = "a".repeat(100_000);
        let caps = [
            "a dog runs",
            long.as_str(),
            "a cat sits",
            very_long.as_str(),
        ];
        write_split(dir.path(), Split::Test, 4, &caps);
        let p = Precomp::open(dir.path(), Split::Test, &vocab()).unwrap();
        assert_eq!(p.caption_len(0), 5);
        assert_eq!(p.caption_len(1), MAX_CAPTION_TOKENS + 2);
        assert_eq!(p.caption_len(2), 5);
        assert!(p.caption_len(3) <= MAX_CAPTION_TOKENS + 2);
        assert_eq!(
            p.truncated(),
            Truncated {
                captions: 2,
                first_line: Some(2)
            }
        );
        let w = p.truncation_warning().unwrap();
        assert!(w.contains("test_caps.txt") && w.contains("line 2"), "{w}");
    }

    #[test]
    fn five_captions_per_image_map_to_k_div_5() {
        let dir = tempfile::tempdir().unwrap();
        let caps: Vec<String> = (0..10).map(|i| format!("a dog runs {i}")).collect();
        let refs: Vec<&str> = caps.iter().map(String::as_str).collect();
        let data = write_split(dir.path(), Split::Test, 2, &refs);
        let v = vocab();
        let p = Precomp::open(dir.path(), Split::Test, &v).unwrap();
        assert_eq!((p.len(), p.im_div(), p.n_images()), (10, 5, 2));
        assert_eq!((p.n_regions(), p.dim()), (3, 4));
        assert_eq!(p.image_of(4), 0);
        assert_eq!(p.image_of(5), 1);
        assert_eq!(p.image_of_caption(7), &data[12..24]);
        // "a dog runs 7": <start> a dog runs <unk> <end>
        let want = [START, v.id("a"), v.id("dog"), v.id("runs"), UNK, END];
        assert_eq!(p.caption(7), &want[..]);
        assert_eq!(p.caption(7), &v.encode_caption(&caps[7])[..]);
        assert_eq!(p.caption_len(7), 6);
        assert_eq!(p.coverage().tokens, 40);
        assert_eq!(p.coverage().unknown, 10);
        assert_eq!(p.coverage().unknown_words.len(), 10);
        p.check_finite().unwrap();
    }

    #[test]
    fn one_caption_per_image_and_dev_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let n = DEV_CAPTION_LIMIT + 5;
        let caps: Vec<&str> = vec!["a cat sits"; n];
        write_split(dir.path(), Split::Dev, n, &caps);
        let p = Precomp::open(dir.path(), Split::Dev, &vocab()).unwrap();
        assert_eq!(p.im_div(), 1);
        assert_eq!(p.len(), DEV_CAPTION_LIMIT);
        assert_eq!(p.n_captions_in_file(), n);
        assert_eq!(p.n_images(), DEV_CAPTION_LIMIT);
        assert_eq!(p.image_of(4321), 4321);
        assert_eq!(p.img_id(4321), 4321 / 5);
        assert_eq!(p.all_ids().len(), DEV_CAPTION_LIMIT * 5);
    }

    #[test]
    fn count_mismatch_names_both_files_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        write_split(dir.path(), Split::Train, 2, &["a", "b", "c"]);
        let e = Precomp::open(dir.path(), Split::Train, &vocab())
            .unwrap_err()
            .to_string();
        for s in ["train_caps.txt", "train_ims.npy", "3 captions", "2 images"] {
            assert!(e.contains(s), "{e}");
        }
    }

    #[test]
    fn captions_reader_handles_line_endings_and_reports_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.txt");
        std::fs::write(&p, b"  one \r\ntwo\rthree\x1f\nfour").unwrap();
        assert_eq!(read_captions(&p).unwrap(), ["one", "two", "three", "four"]);
        std::fs::write(&p, b"one\ntwo\n \t\nfour\n").unwrap();
        let e = read_captions(&p).unwrap_err().to_string();
        assert!(e.contains("c.txt:3: empty caption"), "{e}");
        std::fs::write(&p, b"one\nt\xffwo\n").unwrap();
        let e = read_captions(&p).unwrap_err().to_string();
        assert!(e.contains("c.txt:2: caption is not valid UTF-8"), "{e}");
        assert!(e.contains("column 2"), "{e}");
    }

    #[test]
    fn check_finite_names_image_region_and_dim() {
        let dir = tempfile::tempdir().unwrap();
        let (n, r, d) = (40, 3, 5);
        let mut data = vec![0.5f32; n * r * d];
        // Two bad values; the first in file order must be reported even
        // though they sit in different parallel chunks.
        data[37 * r * d + 2 * d + 1] = f32::NEG_INFINITY;
        data[21 * r * d + d + 4] = f32::NAN;
        write_f32(dir.path().join("test_ims.npy"), &[n, r, d], &data).unwrap();
        std::fs::write(dir.path().join("test_caps.txt"), "a\n".repeat(n)).unwrap();
        let p = Precomp::open(dir.path(), Split::Test, &vocab()).unwrap();
        match p.check_finite() {
            Err(PrecompError::NonFinite {
                image,
                region,
                dim,
                value,
                ..
            }) => {
                assert_eq!((image, region, dim), (21, 1, 4));
                assert!(value.is_nan());
            }
            other => panic!("expected NonFinite, got {other:?}"),
        }
    }

    #[test]
    fn first_non_finite_finds_every_position() {
        let mut x = vec![1.0f32; 9000];
        assert_eq!(first_non_finite(&x), None);
        for pos in [0, 4095, 4096, 8999] {
            x[pos] = f32::INFINITY;
            assert_eq!(first_non_finite(&x), Some(pos));
            x[pos] = 1.0;
        }
        // Largest finite value and subnormals are finite.
        x[10] = f32::MAX;
        x[11] = f32::MIN_POSITIVE / 2.0;
        assert_eq!(first_non_finite(&x), None);
    }

    #[test]
    fn coverage_merge_adds_and_resorts() {
        let mut a = Coverage {
            tokens: 10,
            unknown: 3,
            unknown_words: vec![("x".into(), 2), ("y".into(), 1)],
        };
        let b = Coverage {
            tokens: 5,
            unknown: 2,
            unknown_words: vec![("y".into(), 2)],
        };
        a.merge(&b);
        assert_eq!((a.tokens, a.unknown), (15, 5));
        assert_eq!(a.unknown_words, vec![("y".into(), 3), ("x".into(), 2)]);
        assert!((a.unknown_rate() - 5.0 / 15.0).abs() < 1e-12);
    }
}
