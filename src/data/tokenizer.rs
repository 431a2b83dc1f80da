//! Caption tokenizer. PLACEHOLDER until the NLTK `NLTKWordTokenizer` port lands
//! (issue #2 item 4): splits on whitespace only.

/// Tokenizes one sentence exactly as NLTK's `NLTKWordTokenizer().tokenize(text)`.
pub fn tokenize(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// Lower-cases `caption` and tokenizes it (what the authors' data loader does).
pub fn tokenize_caption(caption: &str) -> Vec<String> {
    tokenize(&caption.to_lowercase())
}
