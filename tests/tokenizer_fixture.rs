//! Pins `dbl::data::tokenizer::tokenize_caption` to NLTK: for every line of
//! `tests/fixtures/tokenizer/captions.txt` the tokens must equal the JSON
//! array on the same line of `expected.jsonl`, which is
//! `NLTKWordTokenizer().tokenize(caption.lower())` from nltk 3.10.4 on
//! CPython 3.11.7 (made by `tools/fixtures/make_tokenizer_fixture.py`).
//!
//! Note: `nltk.word_tokenize(caption.lower())`, which first splits sentences
//! with Punkt (English `punkt_tab` model), gives different tokens on 78 of the
//! 2,320 fixture captions: mostly a sentence-internal "word." such as
//! "ext." or "e.g." where Punkt ends a sentence, so the period becomes its own
//! token, while NLTKWordTokenizer only splits the final period. This test pins
//! the whole-caption tokenizer.

use std::path::Path;

use dbl::data::tokenizer::tokenize_caption;

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tokenizer")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn matches_nltk_on_every_fixture_caption() {
    let captions = fixture("captions.txt");
    let expected = fixture("expected.jsonl");
    let captions: Vec<&str> = captions
        .strip_suffix('\n')
        .unwrap_or(&captions)
        .split('\n')
        .collect();
    let expected: Vec<&str> = expected.lines().collect();
    assert_eq!(
        captions.len(),
        expected.len(),
        "captions.txt and expected.jsonl line counts"
    );
    assert!(
        captions.len() >= 2000,
        "fixture has only {} captions",
        captions.len()
    );

    let mut mismatches = Vec::new();
    for (i, (cap, exp)) in captions.iter().zip(&expected).enumerate() {
        assert!(!cap.is_empty(), "captions.txt line {} is empty", i + 1);
        let want: Vec<String> = serde_json::from_str(exp)
            .unwrap_or_else(|e| panic!("expected.jsonl line {}: {e}", i + 1));
        let got = tokenize_caption(cap);
        if got != want {
            mismatches.push((i + 1, cap, want, got));
        }
    }
    if !mismatches.is_empty() {
        let mut msg = format!(
            "{} of {} captions tokenize differently from NLTK; first ones:\n",
            mismatches.len(),
            captions.len()
        );
        for (line, cap, want, got) in mismatches.iter().take(10) {
            msg +=
                &format!("  line {line}: {cap:?}\n    expected {want:?}\n    got      {got:?}\n");
        }
        panic!("{msg}");
    }
}
