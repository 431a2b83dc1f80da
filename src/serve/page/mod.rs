//! The search page, `GET /` of `dbl serve` (issue 27 §1): one HTML file with
//! its script and styles inline ([`HTML`], embedded in the binary; no
//! external scripts, fonts or CDNs). Text → image and image → caption
//! search over `/v1/search/*` (the image box takes an id, or `#` and a row:
//! `#12`), K, the index when several are served, each hit's id, row, score
//! and caption (for image hits the image's first gallery caption, when the
//! index has c captions per image), the query's latency, thumbnails from
//! `/images/{id}` when the server has `--image-dir`, the access token when
//! one is required, the server's errors in words, and per hit a "why?"
//! button showing `/v1/explain`'s attention and word contributions.
//! The page itself holds no data, so it is served without the token.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The page.
pub static HTML: &str = include_str!("index.html");

/// Only this page's own inline script and style, same-origin requests and
/// blob thumbnails.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src 'self' blob:; base-uri 'none'; form-action 'none'";

/// `GET /`.
async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        HTML,
    )
        .into_response()
}

/// The page's route, merged outside the token check.
pub fn router() -> Router {
    Router::new().route("/", get(page))
}

#[cfg(test)]
mod tests {
    use super::HTML;

    /// Nothing is loaded from elsewhere: no external script, style, font or image.
    #[test]
    fn page_is_self_contained() {
        for needle in [
            "http://",
            "https://",
            "<script src",
            "<link",
            "@import",
            "url(",
        ] {
            assert!(!HTML.contains(needle), "page contains {needle:?}");
        }
        for api in ["/v1/search/", "/v1/explain", "/healthz", "/images/"] {
            assert!(HTML.contains(api), "page does not call {api}");
        }
    }
}
