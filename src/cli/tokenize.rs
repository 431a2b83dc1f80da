//! `dbl tokenize`: captions on stdin (one per line) → one JSON array of NLTK
//! tokens per line on stdout, via [`crate::data::tokenizer`] (docs/method.md §6.3).

use std::io::{BufRead, BufWriter, ErrorKind, Write};

use anyhow::Context;

use crate::data::tokenizer::{tokenize, tokenize_caption};

/// Arguments of `dbl tokenize`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Reads captions from stdin, one per line (a final \"\\n\" or \"\\r\\n\" is the line \
                  end, not part of the caption), and writes one JSON array of tokens per line to \
                  stdout, exactly as NLTK's NLTKWordTokenizer (what word_tokenize applies to one \
                  sentence). Captions are lower-cased first, like the data loader and vocab.py. \
                  An empty line gives []. Input must be UTF-8. A line longer than 1 MiB is \
                  tokenized on its first 1 MiB (cut back to the last whitespace) with a warning \
                  on stderr naming the line; the rest of it is read and dropped, so memory stays \
                  bounded."
)]
pub struct Args {
    /// Tokenize the captions as given, without lower-casing them first.
    #[arg(long)]
    pub keep_case: bool,
}

/// Runs `dbl tokenize`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    match tokenize_stream(stdin, stdout, args.keep_case) {
        // A closed pipe (`dbl tokenize | head`) is a normal way to stop.
        Err(e) if is_broken_pipe(&e) => Ok(()),
        r => r,
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
    })
}

/// Tokenizes every line of `input` into `output` (one JSON array per line).
pub fn tokenize_stream(
    mut input: impl BufRead,
    output: impl Write,
    keep_case: bool,
) -> anyhow::Result<()> {
    let mut out = BufWriter::new(output);
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        let (n, cut) = read_line_capped(&mut input, &mut buf, MAX_LINE_BYTES)
            .with_context(|| format!("reading stdin after line {line_no}"))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if cut {
            // Back to a whitespace so no word (or UTF-8 character) is split.
            let keep = buf
                .iter()
                .rposition(|b| b.is_ascii_whitespace())
                .unwrap_or(0);
            buf.truncate(keep);
            eprintln!(
                "warning: stdin line {line_no}: longer than {} MiB; tokenized its first part only",
                MAX_LINE_BYTES >> 20
            );
        }
        let line = strip_line_end(&buf);
        let text = std::str::from_utf8(line).map_err(|e| {
            anyhow::anyhow!(
                "stdin line {line_no}: not valid UTF-8 (bad byte at column {})",
                e.valid_up_to() + 1
            )
        })?;
        let toks = if keep_case {
            tokenize(text)
        } else {
            tokenize_caption(text)
        };
        serde_json::to_writer(&mut out, &toks).context("writing stdout")?;
        out.write_all(b"\n").context("writing stdout")?;
    }
    out.flush().context("writing stdout")?;
    Ok(())
}

/// Lines longer than this are cut (see the `--help` text).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Reads one line (through `\n`) into `buf`, storing at most `cap` bytes and
/// consuming the rest of a longer line without storing it: → (bytes
/// consumed, whether the line was cut).
fn read_line_capped(
    input: &mut impl BufRead,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut cut = false;
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok((consumed, cut));
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = cap.saturating_sub(buf.len());
        if take > room {
            cut = true;
        }
        buf.extend_from_slice(&chunk[..take.min(room)]);
        input.consume(take);
        consumed += take;
        if done {
            return Ok((consumed, cut));
        }
    }
}

/// Drops a trailing `\n` or `\r\n`.
fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_on(input: &[u8], keep_case: bool) -> anyhow::Result<String> {
        let mut out = Vec::new();
        tokenize_stream(input, &mut out, keep_case)?;
        Ok(String::from_utf8(out).unwrap())
    }

    /// A line longer than the cap is tokenized on its head, the following
    /// lines are unaffected, and at most `cap` bytes are ever held.
    #[test]
    fn long_lines_are_capped() {
        let mut input: &[u8] = b"aaa bbb ccc ddd\nnext one\n";
        let mut buf = Vec::new();
        assert_eq!(
            read_line_capped(&mut input, &mut buf, 9).unwrap(),
            (16, true)
        );
        assert_eq!(buf, b"aaa bbb c");
        buf.clear();
        assert_eq!(
            read_line_capped(&mut input, &mut buf, 9).unwrap(),
            (9, false)
        );
        assert_eq!(buf, b"next one\n");
        let long = format!("{} tail\nend\n", "dog ".repeat(MAX_LINE_BYTES / 3));
        let out = run_on(long.as_bytes(), false).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(!lines[0].contains("tail") && lines[0].starts_with("[\"dog\""));
        assert_eq!(lines[1], "[\"end\"]");
    }

    #[test]
    fn one_array_per_line() {
        let out = run_on(b"A dog's toy.\r\n\nIt can't\n", false).unwrap();
        assert_eq!(
            out,
            "[\"a\",\"dog\",\"'s\",\"toy\",\".\"]\n[]\n[\"it\",\"ca\",\"n't\"]\n"
        );
        let out = run_on(b"A Dog", true).unwrap();
        assert_eq!(out, "[\"A\",\"Dog\"]\n");
    }

    #[test]
    fn invalid_utf8_names_line() {
        let e = run_on(b"ok\nfine\nbad \xff here\n", false).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("line 3") && msg.contains("UTF-8"), "{msg}");
        assert!(msg.contains("column 5"), "{msg}");
    }
}
