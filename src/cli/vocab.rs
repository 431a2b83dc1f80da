//! `dbl vocab build` / `dbl vocab show`: build a vocabulary from caption files
//! the way the authors' `vocab.py` does (docs/method.md §6.2), or validate and print one.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::data::vocab::Vocab;

/// Arguments of `dbl vocab`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

/// `dbl vocab` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Count NLTK tokens of lower-cased captions and write a vocabulary JSON.
    Build(BuildArgs),
    /// Validate a vocabulary JSON and print its size and first words.
    Show(ShowArgs),
}

/// Arguments of `dbl vocab build`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Counts the NLTK tokens of every lower-cased caption (one caption per line; \
                  surrounding ASCII whitespace is ignored, as vocab.py's line.strip() does) and \
                  writes a vocabulary in the authors' JSON layout: <pad>=0, <start>=1, <end>=2, \
                  <unk>=3, then the words seen at least --threshold times, most frequent first \
                  (ties in byte order). The authors build theirs from train_caps.txt and \
                  dev_caps.txt. Empty lines and invalid UTF-8 are errors naming file:line."
)]
pub struct BuildArgs {
    /// Caption files (UTF-8, one caption per line), e.g. train_caps.txt dev_caps.txt.
    #[arg(long, required = true, num_args = 1.., value_name = "FILE")]
    pub captions: Vec<PathBuf>,
    /// Where to write the vocabulary JSON (written atomically).
    #[arg(long, value_name = "VOCAB.json")]
    pub out: PathBuf,
    /// Keep words that occur at least this many times (vocab.py uses 4).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub threshold: u32,
    /// Drop vocab.py's punctuation tokens (, . : ; ? ( ) [ ] & ! * @ # $ % ` ' `` - ... '')
    /// instead of counting them (the released F30K/COCO vocabularies keep them).
    #[arg(long)]
    pub drop_punctuation: bool,
}

/// Arguments of `dbl vocab show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The vocabulary JSON file to validate and print.
    #[arg(value_name = "VOCAB.json")]
    pub vocab: PathBuf,
    /// How many words to list, in id order (0 lists none).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub top: usize,
}

/// Runs `dbl vocab`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Build(a) => build(a),
        Command::Show(a) => show(a),
    }
}

/// Errors reading a caption file.
#[derive(Debug, thiserror::Error)]
pub enum CaptionFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: not valid UTF-8 (bad byte at column {column})")]
    Utf8 {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    #[error("{path}:{line}: empty caption line (expected one caption per line)")]
    Empty { path: PathBuf, line: usize },
    #[error("{path}: no captions in the file")]
    NoCaptions { path: PathBuf },
}

/// Python's `bytes.isspace()` set, which `bytes.strip()` removes.
fn is_py_ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Reads one caption per line, stripped of surrounding ASCII whitespace.
pub fn read_captions(path: &Path) -> Result<Vec<String>, CaptionFileError> {
    let bytes = std::fs::read(path).map_err(|source| CaptionFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    if body.is_empty() {
        return Err(CaptionFileError::NoCaptions {
            path: path.to_path_buf(),
        });
    }
    let mut caps = Vec::new();
    for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let start = raw.iter().position(|&b| !is_py_ascii_space(b));
        let Some(start) = start else {
            return Err(CaptionFileError::Empty {
                path: path.to_path_buf(),
                line,
            });
        };
        let end = raw
            .iter()
            .rposition(|&b| !is_py_ascii_space(b))
            .map_or(raw.len(), |e| e + 1);
        let text = std::str::from_utf8(&raw[start..end]).map_err(|e| CaptionFileError::Utf8 {
            path: path.to_path_buf(),
            line,
            column: start + e.valid_up_to() + 1,
        })?;
        caps.push(text.to_string());
    }
    Ok(caps)
}

fn progress(len: u64) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if !std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template("tokenizing {bar:40} {pos}/{len} captions ({eta})")
            .expect("static template is valid"),
    );
    pb
}

fn build(a: BuildArgs) -> anyhow::Result<()> {
    super::out_path::file("--out", &a.out)?;
    let mut captions = Vec::new();
    for path in &a.captions {
        captions.extend(read_captions(path)?);
    }
    let pb = progress(captions.len() as u64);
    let vocab = Vocab::build(
        captions.iter().map(String::as_str).inspect(|_| pb.inc(1)),
        a.threshold as usize,
        !a.drop_punctuation,
    );
    pb.finish_and_clear();
    vocab
        .save(&a.out)
        .with_context(|| format!("writing the vocabulary to {}", a.out.display()))?;
    println!(
        "vocabulary size {} (4 special tokens + {} words seen >= {} times) from {} captions in {} file(s); wrote {}",
        vocab.len(),
        vocab.len() - 4,
        a.threshold,
        captions.len(),
        a.captions.len(),
        a.out.display()
    );
    Ok(())
}

fn show(a: ShowArgs) -> anyhow::Result<()> {
    let vocab = Vocab::load(&a.vocab)?;
    println!(
        "{}: valid vocabulary, size {}",
        a.vocab.display(),
        vocab.len()
    );
    for id in 0..vocab.len().min(a.top) {
        let word = vocab.word(id as u32).expect("id < len");
        println!("{id}\t{word}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_captions_strips_and_reports_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("caps.txt");
        std::fs::write(&p, b"  A dog.\r\nA cat\t\n").unwrap();
        assert_eq!(read_captions(&p).unwrap(), vec!["A dog.", "A cat"]);

        std::fs::write(&p, b"one\n \t\nthree\n").unwrap();
        let e = read_captions(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("caps.txt:2: empty caption line (expected one caption per line)"),
            "{e}"
        );

        std::fs::write(&p, b"one\ntwo\n\xc3(\n").unwrap();
        let e = read_captions(&p).unwrap_err().to_string();
        assert!(
            e.contains("caps.txt:3: not valid UTF-8") && e.contains("column 1"),
            "{e}"
        );

        std::fs::write(&p, b"").unwrap();
        let e = read_captions(&p).unwrap_err().to_string();
        assert!(e.contains("no captions"), "{e}");
    }
}
