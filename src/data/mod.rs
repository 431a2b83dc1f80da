//! Data: SCAN "precomp" datasets on memory maps (docs/method.md §6), the vocabulary, the
//! NLTK-identical tokenizer, batching and the synthetic generator.

pub mod augment;
pub mod batch;
pub mod inspect;
pub mod npy;
pub mod precomp;
pub mod synth;
pub mod tokenizer;
pub mod vocab;
