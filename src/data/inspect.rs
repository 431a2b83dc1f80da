//! Dataset validation and summary behind `dbl inspect` (docs/method.md §6): finds the
//! splits of a SCAN precomp folder, opens each ([`Precomp::open`] validates
//! shapes, caption counts and text), summarises shapes, captions per image,
//! caption lengths and vocabulary coverage, and times one training epoch of
//! batches (the peak-RSS measurement of the README's "Memory" section).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::data::batch::Loader;
use crate::data::precomp::{Coverage, Precomp, PrecompError, Split};
use crate::data::vocab::{SPECIALS, Vocab, VocabError};

/// How many unknown words a summary lists per split.
const TOP_UNKNOWN: usize = 8;

/// Everything that can go wrong inspecting a dataset folder.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("{dir}: {words} (a dataset is a folder)")]
    NotADirectory { dir: PathBuf, words: String },
    #[error(
        "{dir}: no dataset split found (expected a pair such as train_ims.npy + train_caps.txt \
         for train, dev, test or testall)"
    )]
    NoSplits { dir: PathBuf },
    #[error("{present} exists but {missing} is missing (a split needs both files)")]
    HalfSplit { present: PathBuf, missing: PathBuf },
    /// A split file that is there but cannot be reached: a symbolic link
    /// loop, a dangling link, a permission problem.
    #[error("{path}: {words}")]
    Unreachable { path: PathBuf, words: String },
    #[error("vocabulary: {0}")]
    Vocab(#[from] VocabError),
    #[error(transparent)]
    Precomp(#[from] PrecompError),
}

/// The splits whose two files are present in `dir`, in [`Split::ALL`] order.
/// A split with only one of its files is an error; so is a folder without any.
pub fn present_splits(dir: &Path) -> Result<Vec<Split>, InspectError> {
    if let Err(words) = crate::os_error::check_dir(dir) {
        return Err(InspectError::NotADirectory {
            dir: dir.to_path_buf(),
            words,
        });
    }
    let mut out = Vec::new();
    for s in Split::ALL {
        let ims = dir.join(s.ims_file());
        let caps = dir.join(s.caps_file());
        match (present(&ims)?, present(&caps)?) {
            (true, true) => out.push(s),
            (false, false) => {}
            (true, false) => {
                return Err(InspectError::HalfSplit {
                    present: ims,
                    missing: caps,
                });
            }
            (false, true) => {
                return Err(InspectError::HalfSplit {
                    present: caps,
                    missing: ims,
                });
            }
        }
    }
    if out.is_empty() {
        return Err(InspectError::NoSplits {
            dir: dir.to_path_buf(),
        });
    }
    Ok(out)
}

/// Whether a split file is there: `false` only when nothing is at `path`.
/// A name that is there but leads nowhere (a symbolic link loop, a link to
/// nothing, a folder that cannot be searched) is an error naming it, never
/// "missing" (`Path::exists` says `false` for all of those).
fn present(path: &Path) -> Result<bool, InspectError> {
    let unreachable = |words: String| InspectError::Unreachable {
        path: path.to_path_buf(),
        words,
    };
    match std::fs::metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::symlink_metadata(path)
        {
            Ok(_) => Err(unreachable(format!(
                "is a symbolic link to {}, which does not exist",
                std::fs::read_link(path)
                    .map(|t| t.display().to_string())
                    .unwrap_or_else(|_| "a path".into())
            ))),
            Err(_) => Ok(false),
        },
        Err(e) => Err(unreachable(crate::os_error::in_words(&e))),
    }
}

/// Opens every present split of `dir` with `vocab`. Every split's features
/// must have the first split's shape `[_, R, D]` (the training split's when
/// it is there): a model is built for one width.
pub fn open_all(dir: &Path, vocab: &Vocab) -> Result<Vec<Precomp>, InspectError> {
    let splits = present_splits(dir)?
        .into_iter()
        .map(|s| Precomp::open(dir, s, vocab).map_err(InspectError::from))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some((first, rest)) = splits.split_first() {
        for s in rest {
            s.check_features_like(first.images(), first.split())?;
        }
    }
    Ok(splits)
}

/// Caption length statistics in tokens, `<start>`/`<end>` included.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LengthStats {
    pub min: usize,
    pub mean: f64,
    /// Lower median.
    pub median: usize,
    /// Nearest-rank 95th percentile.
    pub p95: usize,
    pub max: usize,
}

impl LengthStats {
    /// Statistics of `lengths` (all zero for an empty slice).
    pub fn of(lengths: &[usize]) -> Self {
        if lengths.is_empty() {
            return Self {
                min: 0,
                mean: 0.0,
                median: 0,
                p95: 0,
                max: 0,
            };
        }
        let mut s = lengths.to_vec();
        s.sort_unstable();
        let n = s.len();
        let rank = |q: f64| s[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        Self {
            min: s[0],
            mean: s.iter().sum::<usize>() as f64 / n as f64,
            median: s[(n - 1) / 2],
            p95: rank(0.95),
            max: s[n - 1],
        }
    }
}

/// What `inspect` reports about one split.
#[derive(Debug, Clone)]
pub struct SplitSummary {
    pub split: Split,
    pub ims_path: PathBuf,
    pub caps_path: PathBuf,
    pub n_images_in_file: usize,
    pub n_images: usize,
    pub n_regions: usize,
    pub dim: usize,
    pub n_captions_in_file: usize,
    pub n_captions: usize,
    pub im_div: usize,
    pub lengths: LengthStats,
    pub coverage: Coverage,
}

impl SplitSummary {
    /// Summarises an opened split.
    pub fn of(ds: &Precomp) -> Self {
        let lens: Vec<usize> = (0..ds.len()).map(|k| ds.caption_len(k)).collect();
        Self {
            split: ds.split(),
            ims_path: ds.images().path().to_path_buf(),
            caps_path: ds.caps_path().to_path_buf(),
            n_images_in_file: ds.n_images_in_file(),
            n_images: ds.n_images(),
            n_regions: ds.n_regions(),
            dim: ds.dim(),
            n_captions_in_file: ds.n_captions_in_file(),
            n_captions: ds.len(),
            im_div: ds.im_div(),
            lengths: LengthStats::of(&lens),
            coverage: ds.coverage().clone(),
        }
    }
}

/// The whole report of `dbl inspect`.
#[derive(Debug, Clone)]
pub struct Summary {
    pub dir: PathBuf,
    pub vocab_path: PathBuf,
    pub vocab_size: usize,
    pub splits: Vec<SplitSummary>,
    /// Coverage over all splits together.
    pub coverage: Coverage,
    /// Distinct non-special vocabulary words that occur in some split.
    pub vocab_words_seen: usize,
    /// Whether every feature file was scanned for NaN/inf (and passed).
    pub finite_checked: bool,
}

impl Summary {
    /// Builds the report for `datasets` (opened with `vocab`).
    pub fn new(
        dir: &Path,
        vocab_path: &Path,
        vocab: &Vocab,
        datasets: &[Precomp],
        finite_checked: bool,
    ) -> Self {
        let mut seen = vec![false; vocab.len()];
        let mut coverage = Coverage::default();
        for ds in datasets {
            for &id in ds.all_ids() {
                if let Some(s) = seen.get_mut(id as usize) {
                    *s = true;
                }
            }
            coverage.merge(ds.coverage());
        }
        Self {
            dir: dir.to_path_buf(),
            vocab_path: vocab_path.to_path_buf(),
            vocab_size: vocab.len(),
            splits: datasets.iter().map(SplitSummary::of).collect(),
            coverage,
            vocab_words_seen: seen.iter().skip(SPECIALS.len()).filter(|&&s| s).count(),
            finite_checked,
        }
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

fn pct(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        100.0 * num as f64 / den as f64
    }
}

fn write_unknown(f: &mut fmt::Formatter<'_>, c: &Coverage) -> fmt::Result {
    write!(
        f,
        "unknown tokens {:.3}% ({} of {}; {} distinct words)",
        100.0 * c.unknown_rate(),
        c.unknown,
        c.tokens,
        c.unknown_words.len()
    )?;
    if !c.unknown_words.is_empty() {
        let top: Vec<String> = c
            .unknown_words
            .iter()
            .take(TOP_UNKNOWN)
            .map(|(w, n)| format!("{w:?} ×{n}"))
            .collect();
        write!(f, ": {}", top.join(", "))?;
        if c.unknown_words.len() > TOP_UNKNOWN {
            write!(f, ", …")?;
        }
    }
    Ok(())
}

impl fmt::Display for SplitSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} images × {} regions × {} dims ({}), {} captions ({}), {} caption{} per image",
            self.split,
            self.n_images_in_file,
            self.n_regions,
            self.dim,
            file_name(&self.ims_path),
            self.n_captions_in_file,
            file_name(&self.caps_path),
            self.im_div,
            if self.im_div == 1 { "" } else { "s" },
        )?;
        if self.n_captions < self.n_captions_in_file {
            writeln!(
                f,
                "  used: the first {} captions and {} images (dev is truncated for validation)",
                self.n_captions, self.n_images
            )?;
        }
        let l = &self.lengths;
        writeln!(
            f,
            "  caption length (tokens incl. <start>/<end>): min {} / mean {:.2} / median {} / p95 {} / max {}",
            l.min, l.mean, l.median, l.p95, l.max
        )?;
        write!(f, "  ")?;
        write_unknown(f, &self.coverage)?;
        writeln!(f)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "dataset: {}", self.dir.display())?;
        let names: Vec<&str> = self.splits.iter().map(|s| s.split.name()).collect();
        writeln!(f, "splits: {}", names.join(", "))?;
        for s in &self.splits {
            write!(f, "{s}")?;
        }
        let words = self.vocab_size.saturating_sub(SPECIALS.len());
        writeln!(
            f,
            "vocabulary: {} ({} ids); {} of its {} words occur in the captions ({:.1}%)",
            self.vocab_path.display(),
            self.vocab_size,
            self.vocab_words_seen,
            words,
            pct(self.vocab_words_seen, words)
        )?;
        write!(f, "all splits: ")?;
        write_unknown(f, &self.coverage)?;
        writeln!(f)?;
        if self.finite_checked {
            writeln!(f, "features: all finite (no NaN/inf)")?;
        }
        Ok(())
    }
}

/// Outcome of [`run_epoch`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochStats {
    pub batches: usize,
    pub captions: usize,
    pub seconds: f64,
    /// Sum over batches of the first feature of each batch (keeps the copy
    /// observable; also a cheap determinism fingerprint).
    pub checksum: f64,
}

impl EpochStats {
    /// Batches per second (0 for a zero-length run).
    pub fn batches_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.batches as f64 / self.seconds
        } else {
            0.0
        }
    }
}

impl fmt::Display for EpochStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "epoch: {} batches ({} captions) in {:.2} s: {:.1} batches/s, {:.0} captions/s",
            self.batches,
            self.captions,
            self.seconds,
            self.batches_per_second(),
            self.captions as f64 / self.seconds.max(f64::MIN_POSITIVE)
        )
    }
}

/// Collates one full training epoch of `ds` (shuffled by `seed`, `epoch`),
/// calling `on_batch()` after each batch.
pub fn run_epoch(
    ds: &Precomp,
    batch_size: usize,
    seed: u64,
    epoch: u64,
    mut on_batch: impl FnMut(),
) -> EpochStats {
    let start = Instant::now();
    let mut loader = Loader::train(ds, batch_size, seed, epoch);
    let (mut batches, mut captions, mut checksum) = (0, 0, 0.0);
    while let Some(b) = loader.next_batch() {
        batches += 1;
        captions += b.size();
        checksum += f64::from(b.images.first().copied().unwrap_or(0.0));
        on_batch();
    }
    EpochStats {
        batches,
        captions,
        seconds: start.elapsed().as_secs_f64(),
        checksum,
    }
}

/// Peak resident set size of this process in bytes (`VmHWM`; Linux only).
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::npy::write_f32;

    #[test]
    fn length_stats_by_hand() {
        let l = LengthStats::of(&[5, 3, 9, 4, 4, 7, 20, 6, 5, 5]);
        // sorted: 3 4 4 5 5 5 6 7 9 20; mean 68/10; lower median s[4] = 5;
        // p95 nearest rank ceil(9.5) = 10th = 20.
        assert_eq!((l.min, l.median, l.p95, l.max), (3, 5, 20, 20));
        assert!((l.mean - 6.8).abs() < 1e-12);
        assert_eq!(LengthStats::of(&[]).max, 0);
    }

    #[test]
    fn splits_need_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let e = present_splits(dir.path()).unwrap_err();
        assert!(matches!(e, InspectError::NoSplits { .. }), "{e}");
        write_f32(dir.path().join("test_ims.npy"), &[1, 1, 1], &[0.0]).unwrap();
        let e = present_splits(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("test_ims.npy exists") && e.contains("test_caps.txt is missing"),
            "{e}"
        );
        std::fs::write(dir.path().join("test_caps.txt"), "a b\n").unwrap();
        assert_eq!(present_splits(dir.path()).unwrap(), vec![Split::Test]);
    }

    #[test]
    fn summary_counts_coverage_over_splits() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_f32(d.join("train_ims.npy"), &[1, 2, 2], &[1.0; 4]).unwrap();
        std::fs::write(d.join("train_caps.txt"), "a b\na c\na\nb\nzz\n").unwrap();
        write_f32(d.join("test_ims.npy"), &[1, 2, 2], &[1.0; 4]).unwrap();
        std::fs::write(d.join("test_caps.txt"), "a zz yy\n").unwrap();
        // Vocabulary words: a, b, c, unused.
        let v = Vocab::from_words(
            SPECIALS
                .iter()
                .chain(&["a", "b", "c", "unused"])
                .map(|s| s.to_string())
                .collect(),
        )
        .unwrap();
        let ds = open_all(d, &v).unwrap();
        let s = Summary::new(d, Path::new("v.json"), &v, &ds, true);
        assert_eq!(s.splits.len(), 2);
        assert_eq!(s.splits[0].im_div, 5);
        assert_eq!(s.splits[1].im_div, 1);
        // tokens: train 2+2+1+1+1 = 7 (1 unknown), test 3 (2 unknown).
        assert_eq!((s.coverage.tokens, s.coverage.unknown), (10, 3));
        assert_eq!(
            s.coverage.unknown_words,
            vec![("zz".to_string(), 2), ("yy".to_string(), 1)]
        );
        assert_eq!(s.vocab_words_seen, 3);
        let text = s.to_string();
        assert!(text.contains("splits: train, test"), "{text}");
        assert!(text.contains("3 of its 4 words"), "{text}");
        assert!(text.contains("unknown tokens 30.000% (3 of 10"), "{text}");
        let e = run_epoch(&ds[0], 2, 0, 0, || {});
        assert_eq!((e.batches, e.captions), (3, 5));
    }
}
