//! `GET /images/{id}`: the thumbnail of gallery image `id` from `--image-dir`
//! (`{id}.jpg`, `{id}.jpeg` or `{id}.png`), for the search page. Ids are
//! letters, digits, `.`, `_` and `-` (no path can be formed from one).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{AppState, error};

/// Largest thumbnail served, bytes.
const MAX_BYTES: u64 = 16 << 20;

/// Whether `id` can name a file in the image folder and nothing else.
fn safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// `GET /images/{id}`.
pub(super) async fn thumbnail(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let Some(dir) = &st.cfg.image_dir else {
        return error(
            StatusCode::NOT_FOUND,
            "no thumbnails: the server was started without --image-dir",
        );
    };
    if !safe_id(&id) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("image id {id:?}: only letters, digits, '.', '_' and '-' are allowed"),
        );
    }
    let dir = dir.clone();
    let found = tokio::task::spawn_blocking(move || find(&dir, &id)).await;
    match found {
        Ok(Ok((bytes, mime))) => ([(header::CONTENT_TYPE, mime)], bytes).into_response(),
        Ok(Err((status, message))) => error(status, message),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reading the image failed",
        ),
    }
}

/// The bytes and type of `dir/{id}.{jpg,jpeg,png}`, or the error to answer.
fn find(dir: &std::path::Path, id: &str) -> Result<(Vec<u8>, &'static str), (StatusCode, String)> {
    for (ext, mime) in [
        ("jpg", "image/jpeg"),
        ("jpeg", "image/jpeg"),
        ("png", "image/png"),
    ] {
        let path = dir.join(format!("{id}.{ext}"));
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() && m.len() <= MAX_BYTES => {
                return std::fs::read(&path).map(|b| (b, mime)).map_err(|e| {
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("image {id}: cannot read it: {e}"),
                    )
                });
            }
            Ok(m) if m.is_file() => {
                return Err((
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("image {id}: {} bytes, over the {MAX_BYTES} served", m.len()),
                ));
            }
            _ => {}
        }
    }
    Err((
        StatusCode::NOT_FOUND,
        format!("no {id}.jpg, {id}.jpeg or {id}.png in the image folder"),
    ))
}

#[cfg(test)]
mod tests {
    use super::safe_id;

    #[test]
    fn ids_cannot_form_paths() {
        assert!(safe_id("1000092795") && safe_id("img_3.v2-a"));
        for bad in [
            "",
            "..",
            "../etc/passwd",
            "a/b",
            ".hidden",
            "a\\b",
            "a b",
            "%2e%2e",
        ] {
            assert!(!safe_id(bad), "{bad:?}");
        }
    }
}
