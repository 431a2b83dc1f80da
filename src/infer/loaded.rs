//! [`LoadedMatcher`]: a backbone with its weights and vocabulary, loaded from
//! a run folder (or from a backbone config + weights file), ready to encode
//! raw caption text and region features and to score them. No training
//! types: the backbone config is `config.json`'s `model` section (the model
//! layer's `ModelConfig`, which the training config embeds) completed with
//! the vocabulary size, feature width and (when unrecorded) regions per image
//! read from the weights' shapes.

use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use serde_json::Value;

use super::InferError;
use super::run::RunDir;
use crate::data::vocab::{UNK, Vocab};
use crate::engine::param::Param;
use crate::model::config::ModelConfig;
use crate::model::encode::EncodedCaptions;
use crate::model::matcher::{Matcher, Net, encode_image_array};
use crate::model::registry;
use crate::model::weights;
use crate::watch::Watch;

/// Longest text query accepted, in bytes (captions are a sentence).
pub const MAX_TEXT_BYTES: usize = 4096;

/// Most tokens of a text query (`<start>`/`<end>` included).
pub const MAX_TOKENS: usize = 256;

/// A loaded, evaluation-mode matcher.
#[derive(Debug)]
pub struct LoadedMatcher {
    config: ModelConfig,
    net: Box<dyn Net>,
    vocab: Vocab,
    weights: PathBuf,
    weight_hash: String,
}

/// A text query as token ids, with the words the vocabulary lacks.
#[derive(Debug, Clone, PartialEq)]
pub struct TextQuery {
    /// `[<start>, ids…, <end>]`.
    pub ids: Vec<u32>,
    /// Tokens mapped to `<unk>`.
    pub unknown: Vec<String>,
}

/// SHA-256 of `bytes` (lower-case hex, the checkpoint store's hash):
/// identifies a weights file.
pub fn weight_hash(bytes: &[u8]) -> String {
    crate::store::sha256_hex(bytes)
}

fn format(path: &Path, message: impl Into<String>) -> InferError {
    InferError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Dimension `axis` of tensor `name` in a safetensors file.
fn dim_of(st: &SafeTensors<'_>, name: &str, axis: usize, path: &Path) -> Result<usize, InferError> {
    let t = st
        .tensor(name)
        .map_err(|_| format(path, format!("tensor `{name}` is missing")))?;
    t.shape().get(axis).copied().ok_or_else(|| {
        format(
            path,
            format!("tensor `{name}`: expected ≥ {} dims", axis + 1),
        )
    })
}

impl LoadedMatcher {
    /// Branch `branch` (default: the last) of the run in `dir`, checkpoint `tag`.
    pub fn from_run(dir: &Path, branch: Option<usize>, tag: &str) -> Result<Self, InferError> {
        let run = RunDir::open(dir)?;
        let k = run.branch(branch)?;
        let (weights, bytes) = run.weights(k, tag)?;
        let vocab = Vocab::load(&run.vocab)?;
        Self::load(
            &run.model,
            &dir.join("config.json"),
            &weights,
            &bytes,
            vocab,
            run.appended_tokens,
        )
    }

    /// A weights file outside a run (e.g. one `dbl import-torch` wrote) with
    /// the vocabulary file `vocab`; `model` is a run config's `model` object
    /// (at least `backbone`; sizes other than the vocabulary and feature
    /// widths, which are read from the weights, default as in a run config).
    pub fn from_weights(
        model: &serde_json::Map<String, Value>,
        weights: &Path,
        vocab: &Path,
    ) -> Result<Self, InferError> {
        let bytes = std::fs::read(weights).map_err(|source| InferError::Io {
            path: weights.to_path_buf(),
            source,
        })?;
        let vocab = Vocab::load(vocab)?;
        Self::load(model, weights, weights, &bytes, vocab, 0)
    }

    /// Builds the backbone `model` describes (a run config's `model` object,
    /// read from `config_path`) and loads `bytes` (the safetensors file
    /// `weights`) into it. `appended`: the tokens training added after the
    /// vocabulary's words ([`RunDir::appended_tokens`]); the word embedding
    /// must have exactly `vocab.len() + appended` rows.
    ///
    /// [`RunDir::appended_tokens`]: super::run::RunDir::appended_tokens
    pub fn load(
        model: &serde_json::Map<String, Value>,
        config_path: &Path,
        weights: &Path,
        bytes: &[u8],
        vocab: Vocab,
        appended: usize,
    ) -> Result<Self, InferError> {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| format(weights, format!("not a valid safetensors file: {e}")))?;
        let mut section = model.clone();
        section.insert(
            "vocab_size".into(),
            dim_of(&st, "txt_enc.embed.weight", 0, weights)?.into(),
        );
        section.insert(
            "img_dim".into(),
            dim_of(&st, "img_enc.fc.weight", 1, weights)?.into(),
        );
        let name = section
            .get("backbone")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut config: ModelConfig =
            serde_json::from_value(Value::Object(section)).map_err(|e| {
                if e.to_string().contains("unknown variant") {
                    InferError::Unregistered {
                        path: config_path.to_path_buf(),
                        name: name.clone(),
                        registered: registry::names(),
                    }
                } else {
                    format(config_path, format!("`model`: {e}"))
                }
            })?;
        if config.regions == 0 {
            // Not recorded (runs record the model section without the data's
            // sizes): the weights say it where it matters (sgr/saf's visual
            // batch norm); otherwise the authors' 36, which nothing reads.
            config.regions = registry::detect(&weights::TensorShapes::of(&st))
                .map_or(ModelConfig::new(config.backbone, 1).regions, |c| c.regions);
        }
        config.validate().map_err(|source| InferError::Config {
            path: config_path.to_path_buf(),
            source,
        })?;
        let entry = registry::entry(config.backbone).ok_or_else(|| InferError::Unregistered {
            path: config_path.to_path_buf(),
            name,
            registered: registry::names(),
        })?;
        let mut net = (entry.build)(&config).map_err(|source| InferError::Config {
            path: config_path.to_path_buf(),
            source,
        })?;
        weights::load_bytes(net.as_mut(), bytes, weights)?;
        if vocab.len() + appended != config.vocab_size {
            let plus = match appended {
                0 => String::new(),
                n => format!(" + {n} appended by OAS caption augmentation (`<mask>`)"),
            };
            return Err(format(
                weights,
                format!(
                    "the word embedding has {} rows but the vocabulary has {} words{plus}",
                    config.vocab_size,
                    vocab.len()
                ),
            ));
        }
        Ok(LoadedMatcher {
            config,
            net,
            vocab,
            weights: weights.to_path_buf(),
            weight_hash: weight_hash(bytes),
        })
    }

    /// The backbone configuration (with vocabulary size and feature width).
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The network as a matcher.
    pub fn matcher(&self) -> &dyn Matcher {
        self.net.as_matcher()
    }

    /// The parameters in the backbone's fixed order, each named by its
    /// PyTorch `state_dict` name (the names of `tools/reference/dbl_ref`).
    pub fn params(&self) -> Vec<&Param> {
        self.net.params()
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// The weights file loaded.
    pub fn weights_path(&self) -> &Path {
        &self.weights
    }

    /// [`weight_hash`] of the weights file.
    pub fn weight_hash(&self) -> &str {
        &self.weight_hash
    }

    /// Tokenises `text` (NLTK rules, lower case) into ids. Errors on empty or
    /// whitespace-only text, text over [`MAX_TEXT_BYTES`] or [`MAX_TOKENS`],
    /// and text without a single word of the vocabulary.
    pub fn tokens(&self, text: &str) -> Result<TextQuery, InferError> {
        if text.len() > MAX_TEXT_BYTES {
            return Err(InferError::Text(format!(
                "{} bytes; at most {MAX_TEXT_BYTES} are accepted",
                text.len()
            )));
        }
        if text.trim().is_empty() {
            return Err(InferError::Text("empty or whitespace only".into()));
        }
        let ids = self.vocab.encode_caption(text);
        if ids.len() > MAX_TOKENS {
            return Err(InferError::Text(format!(
                "{} tokens; at most {MAX_TOKENS} are accepted",
                ids.len()
            )));
        }
        let words = crate::data::tokenizer::tokenize_caption(text);
        let unknown: Vec<String> = words
            .iter()
            .filter(|w| self.vocab.id(w) == UNK)
            .cloned()
            .collect();
        if unknown.len() == words.len() {
            return Err(InferError::Text(format!(
                "no word of the vocabulary in {words:?} (all map to <unk>)"
            )));
        }
        Ok(TextQuery { ids, unknown })
    }

    /// Encodes raw caption texts (see [`Self::tokens`]): → the stacked
    /// caption representations and each query's unknown words.
    pub fn encode_texts(
        &self,
        texts: &[&str],
    ) -> Result<(EncodedCaptions, Vec<Vec<String>>), InferError> {
        let queries = texts
            .iter()
            .map(|t| self.tokens(t))
            .collect::<Result<Vec<_>, _>>()?;
        let enc = self
            .matcher()
            .encode_captions(queries.len(), &|k| &queries[k].ids);
        Ok((enc, queries.into_iter().map(|q| q.unknown).collect()))
    }

    /// Checks ([`Self::check_features`]) and encodes region features
    /// x: `[n, R, D]` flattened, in `dbl score`'s chunks (same rows, same
    /// bits): → `[n, image_rows(R), d]`. `watch` may stop it between chunks.
    pub fn encode_features(
        &self,
        x: &[f32],
        regions: usize,
        watch: &dyn Watch,
    ) -> Result<Vec<f32>, InferError> {
        self.check_features(x, regions)?;
        Ok(encode_image_array(self.matcher(), x, regions, watch)?)
    }

    /// Checks region features for one or more images: `[n, R, D]` flattened,
    /// D = the model's feature width, all finite. → n.
    pub fn check_features(&self, x: &[f32], regions: usize) -> Result<usize, InferError> {
        let dim = self.matcher().img_dim();
        if regions == 0 || x.is_empty() || !x.len().is_multiple_of(regions * dim) {
            return Err(InferError::Features(format!(
                "{} values is not a whole number of images of {regions} regions x {dim} features",
                x.len()
            )));
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(InferError::Features(format!(
                "value {i} is {} (NaN or infinite)",
                x[i]
            )));
        }
        Ok(x.len() / (regions * dim))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::vocab::SPECIALS;
    use crate::model::{Backbone, Model};

    /// A `model` section without the data's sizes (as runs record it) loads
    /// weights of any region count: sgr's visual batch norm has one channel
    /// per region, read from the weights.
    #[test]
    fn unrecorded_sizes_come_from_the_weights() {
        let words: Vec<String> = SPECIALS
            .iter()
            .map(|s| s.to_string())
            .chain((0..5).map(|i| format!("w{i}")))
            .collect();
        let cfg = ModelConfig {
            embed: 8,
            word_dim: 4,
            sim_dim: 3,
            img_dim: 5,
            regions: 7,
            ..ModelConfig::new(Backbone::Sgr, words.len())
        };
        let bytes = weights::to_bytes(&Model::new(&cfg, 0).unwrap()).unwrap();
        let section =
            serde_json::json!({"backbone": "sgr", "embed": 8, "word_dim": 4, "sim_dim": 3});
        let m = LoadedMatcher::load(
            section.as_object().unwrap(),
            Path::new("config.json"),
            Path::new("model.safetensors"),
            &bytes,
            Vocab::from_words(words).unwrap(),
            0,
        )
        .unwrap();
        assert_eq!(m.config(), &cfg);
    }
}
