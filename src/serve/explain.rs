//! `POST /v1/explain` over an index: why a gallery image and a caption (query
//! text, or a gallery caption) match ([`crate::model::explain`]). The image's
//! stored representation and the caption encoded as a search encodes it go
//! through the scorer's own pass, so the explanation's score is the hit's.

use serde::Deserialize;

use super::ServeError;
use super::index::Index;
use crate::model::explain::{Explanation, explain_encoded, words_of};

/// Most regions listed per word.
pub const MAX_TOP: usize = 100;

/// Body of `POST /v1/explain`: `{"image_row": N, "text": "..." | "caption_row": J,
/// "index": NAME, "top": 3}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    /// Gallery image row.
    pub image_row: usize,
    /// Caption as text (tokenised with the run's vocabulary).
    pub text: Option<String>,
    /// Caption as a gallery caption row.
    pub caption_row: Option<usize>,
    /// Index name (required when several are served).
    pub index: Option<String>,
    /// Regions listed per word.
    #[serde(default = "default_top")]
    pub top: usize,
}

fn default_top() -> usize {
    3
}

/// Explains `q` over `ix`.
pub fn explain(ix: &Index, q: &ExplainRequest) -> Result<Explanation, ServeError> {
    if q.top == 0 || q.top > MAX_TOP {
        return Err(ServeError::BadRequest(format!(
            "top = {}: must be between 1 and {MAX_TOP}",
            q.top
        )));
    }
    let img = ix.image_rep(q.image_row)?;
    let m = ix.model();
    let regions = ix.manifest().regions;
    let (ids, encoded) = match (&q.text, q.caption_row) {
        (Some(text), None) => {
            let ids = m.tokens(text)?.ids;
            let enc = m.matcher().encode_captions(1, &|_| &ids);
            (ids, enc.rows)
        }
        (None, Some(j)) => {
            let (text, rows) = ix.caption_rep(j)?;
            (m.vocab().encode_caption(text), rows)
        }
        _ => {
            return Err(ServeError::BadRequest(
                "give exactly one of \"text\" and \"caption_row\"".into(),
            ));
        }
    };
    let pair = explain_encoded(m.matcher(), &img, regions, &encoded, ids.len())
        .map_err(crate::infer::InferError::from)?;
    let backbone = &ix.manifest().model.backbone;
    Ok(Explanation::new(
        backbone,
        words_of(m.vocab(), &ids),
        regions,
        pair,
        q.top,
    ))
}
