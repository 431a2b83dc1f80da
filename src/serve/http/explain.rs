//! The `POST /v1/explain` handler: reads the body, picks the index, and
//! explains the pair on the search pool ([`crate::serve::explain`]), under
//! the same admission, limits and error mapping as the searches.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::{AppState, on_pool, pick, read_json};
use crate::serve::body::Reserved;
use crate::serve::explain::{ExplainRequest, explain as explain_pair};

/// `POST /v1/explain`.
pub(super) async fn explain(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (q, held): (ExplainRequest, Reserved) = match read_json(&st, &headers, body).await {
        Ok(q) => q,
        Err(r) => return r,
    };
    let name = match pick(&st, &q.index) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    on_pool(st, held, name, move |idx| explain_pair(idx, &q)).await
}
