//! The NLTK-compatible tokenizer on arbitrary UTF-8: never panics, and no
//! token is empty or contains whitespace.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for t in dbl::data::tokenizer::tokenize_caption(text)
        .into_iter()
        .chain(dbl::data::tokenizer::tokenize(text))
    {
        assert!(!t.is_empty(), "empty token from {text:?}");
        assert!(!t.chars().any(char::is_whitespace), "token {t:?} from {text:?}");
    }
});
