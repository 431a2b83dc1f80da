//! Word vocabulary in the authors' JSON format (docs/method.md §6.2):
//! `{"word2idx": {word: id}, "idx2word": {"id": word}, "idx": V}` with the
//! special ids `<pad>`=0, `<start>`=1, `<end>`=2, `<unk>`=3.
//!
//! [`Vocab::build`] counts NLTK tokens of lower-cased captions and keeps words
//! seen at least `threshold` times (4 in the authors' `vocab.py`). Word order
//! after the specials is by descending count, ties alphabetical, so the same
//! captions always give the same ids. The released F30K/COCO vocabularies keep
//! punctuation tokens, so punctuation is kept unless asked otherwise.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::tokenizer;

/// Id of the padding token.
pub const PAD: u32 = 0;
/// Id of the start-of-caption token.
pub const START: u32 = 1;
/// Id of the end-of-caption token.
pub const END: u32 = 2;
/// Id of the unknown-word token.
pub const UNK: u32 = 3;
/// The special tokens, in id order.
pub const SPECIALS: [&str; 4] = ["<pad>", "<start>", "<end>", "<unk>"];

/// Punctuation tokens the authors' `vocab.py` drops without `--save_punctuations`.
pub const PUNCTUATION: [&str; 22] = [
    ",", ".", ":", ";", "?", "(", ")", "[", "]", "&", "!", "*", "@", "#", "$", "%", "`", "'", "``",
    "-", "...", "''",
];

/// Errors loading, validating or saving a vocabulary.
#[derive(Debug, thiserror::Error)]
pub enum VocabError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a vocabulary JSON file: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: invalid vocabulary: {what}")]
    Invalid { path: PathBuf, what: String },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VocabJson {
    word2idx: HashMap<String, i64>,
    idx2word: HashMap<String, String>,
    idx: i64,
}

/// A bijection between words and dense ids `0..len()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    words: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Vocab {
    /// Builds from a word list whose first four entries are [`SPECIALS`].
    pub fn from_words(words: Vec<String>) -> Result<Self, String> {
        if words.len() < 4 || words[..4] != SPECIALS {
            return Err(format!(
                "the first four words must be {SPECIALS:?}, found {:?}",
                &words[..words.len().min(4)]
            ));
        }
        let mut ids = HashMap::with_capacity(words.len());
        for (i, w) in words.iter().enumerate() {
            if ids.insert(w.clone(), i as u32).is_some() {
                return Err(format!("word {w:?} appears twice"));
            }
        }
        Ok(Self { words, ids })
    }

    /// Counts tokens over `captions` and keeps those seen `>= threshold` times.
    /// Captions are tokenized in parallel (rayon); the counts, and so the
    /// vocabulary, do not depend on the thread count.
    pub fn build<'a>(
        captions: impl IntoIterator<Item = &'a str>,
        threshold: usize,
        keep_punctuation: bool,
    ) -> Self {
        use rayon::prelude::*;
        let captions: Vec<&str> = captions.into_iter().collect();
        let counts: HashMap<String, usize> = captions
            .par_chunks(1024)
            .map(|chunk| {
                let mut counts: HashMap<String, usize> = HashMap::new();
                for cap in chunk {
                    for tok in tokenizer::tokenize_caption(cap) {
                        if !keep_punctuation && PUNCTUATION.contains(&tok.as_str()) {
                            continue;
                        }
                        *counts.entry(tok).or_default() += 1;
                    }
                }
                counts
            })
            .reduce(HashMap::new, |mut a, b| {
                for (w, c) in b {
                    *a.entry(w).or_default() += c;
                }
                a
            });
        let mut kept: Vec<(String, usize)> = counts
            .into_iter()
            .filter(|(w, c)| *c >= threshold && !SPECIALS.contains(&w.as_str()))
            .collect();
        kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let words = SPECIALS
            .iter()
            .map(|s| s.to_string())
            .chain(kept.into_iter().map(|(w, _)| w))
            .collect();
        Self::from_words(words).expect("specials first and words unique by construction")
    }

    /// Number of words including the specials.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Never true for a valid vocabulary (it holds the specials).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Id of `word`, or [`UNK`].
    pub fn id(&self, word: &str) -> u32 {
        self.ids.get(word).copied().unwrap_or(UNK)
    }

    /// Whether `word` has its own id.
    pub fn contains(&self, word: &str) -> bool {
        self.ids.contains_key(word)
    }

    /// Word of `id`, if in range.
    pub fn word(&self, id: u32) -> Option<&str> {
        self.words.get(id as usize).map(String::as_str)
    }

    /// Caption → ids: `[<start>] + ids(tokens) + [<end>]` (docs/method.md §6.3).
    pub fn encode_caption(&self, caption: &str) -> Vec<u32> {
        let toks = tokenizer::tokenize_caption(caption);
        let mut ids = Vec::with_capacity(toks.len() + 2);
        ids.push(START);
        ids.extend(toks.iter().map(|t| self.id(t)));
        ids.push(END);
        ids
    }

    /// Loads and validates a vocabulary JSON file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, VocabError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| VocabError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(path, &text)
    }

    /// Parses the JSON text of a vocabulary (`path` names it in errors).
    pub fn from_json(path: &Path, text: &str) -> Result<Self, VocabError> {
        let invalid = |what: String| VocabError::Invalid {
            path: path.to_path_buf(),
            what,
        };
        let j: VocabJson = serde_json::from_str(text).map_err(|source| VocabError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let n = j.word2idx.len();
        if n > u32::MAX as usize {
            return Err(invalid(format!("{n} words; ids are 32-bit")));
        }
        if j.idx != n as i64 {
            return Err(invalid(format!(
                "idx is {} but word2idx has {n} words",
                j.idx
            )));
        }
        if j.idx2word.len() != n {
            return Err(invalid(format!(
                "idx2word has {} entries but word2idx has {n}",
                j.idx2word.len()
            )));
        }
        let mut words = vec![None::<String>; n];
        for (w, &i) in &j.word2idx {
            if i < 0 || i as usize >= n {
                return Err(invalid(format!("word {w:?} has id {i}, outside 0..{n}")));
            }
            if words[i as usize].replace(w.clone()).is_some() {
                return Err(invalid(format!("id {i} is used by two words")));
            }
        }
        for (k, w) in &j.idx2word {
            let i: usize = k
                .parse()
                .map_err(|_| invalid(format!("idx2word key {k:?} is not an integer")))?;
            if words.get(i).and_then(|x| x.as_ref()) != Some(w) {
                return Err(invalid(format!(
                    "idx2word[{k}] = {w:?} disagrees with word2idx"
                )));
            }
        }
        let words: Vec<String> = words.into_iter().map(Option::unwrap_or_default).collect();
        Self::from_words(words).map_err(invalid)
    }

    /// The JSON text in the authors' layout.
    pub fn to_json(&self) -> String {
        let word2idx: BTreeMap<&str, u32> = self
            .words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.as_str(), i as u32))
            .collect();
        let mut idx2word = serde_json::Map::new();
        for (i, w) in self.words.iter().enumerate() {
            idx2word.insert(i.to_string(), serde_json::Value::String(w.clone()));
        }
        serde_json::json!({ "word2idx": word2idx, "idx2word": idx2word, "idx": self.len() })
            .to_string()
    }

    /// Writes the JSON file atomically (temp file + rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), VocabError> {
        let path = path.as_ref();
        let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
        let io = |source| VocabError::Io {
            path: path.to_path_buf(),
            source,
        };
        std::fs::write(&tmp, self.to_json()).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_keeps_frequent_words_after_specials() {
        let caps = [
            "a dog runs .",
            "a dog sits .",
            "a cat",
            "a dog",
            "the dog .",
        ];
        let v = Vocab::build(caps.iter().copied(), 3, true);
        assert_eq!(v.word(0), Some("<pad>"));
        assert_eq!(v.word(4), Some("a"));
        assert_eq!(v.word(5), Some("dog"));
        assert_eq!(v.word(6), Some("."));
        assert_eq!(v.len(), 7);
        assert_eq!(v.id("cat"), UNK);
        let v2 = Vocab::build(caps.iter().copied(), 3, false);
        assert!(!v2.contains("."));
    }

    #[test]
    fn json_round_trip_and_validation() {
        let v = Vocab::build(["x y", "x y", "x"].iter().copied(), 2, true);
        let p = Path::new("v.json");
        let back = Vocab::from_json(p, &v.to_json()).unwrap();
        assert_eq!(back, v);
        let bad = r#"{"word2idx": {"<pad>": 0}, "idx2word": {"0": "<pad>"}, "idx": 2}"#;
        let e = Vocab::from_json(p, bad).unwrap_err().to_string();
        assert!(e.contains("v.json") && e.contains("idx is 2"), "{e}");
        let e = Vocab::from_json(p, "{nope").unwrap_err().to_string();
        assert!(e.contains("not a vocabulary JSON"), "{e}");
    }

    #[test]
    fn encode_wraps_with_start_end() {
        let v = Vocab::build(
            ["a dog", "a dog", "a dog", "a dog"].iter().copied(),
            4,
            true,
        );
        assert_eq!(v.encode_caption("A Dog cat"), vec![START, 4, 5, UNK, END]);
    }
}
