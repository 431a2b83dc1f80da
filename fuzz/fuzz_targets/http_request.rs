//! HTTP requests to `dbl serve`'s router (in process, no socket): the input's
//! first byte picks the route, the second the method, content type and access
//! token, the rest is the body. Every request must get an answer with a 2xx or
//! a client-error status (4xx, or 503 when the queue is full) and a JSON error
//! naming the problem; a panic or a 500 is a finding.
//!
//! Needs a built index: `DBL_FUZZ_INDEX=DIR` (tools/fuzz.sh builds a tiny one).
#![no_main]
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use dbl::serve::http::{AppState, ServeConfig, router};
use dbl::serve::{Index, Models};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const TOKEN: &str = "fuzz-token";

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = std::env::var_os("DBL_FUZZ_INDEX")
            .expect("set DBL_FUZZ_INDEX to an index folder (tools/fuzz.sh builds one)");
        let index = Index::open(std::path::Path::new(&dir), &Models::new())
            .unwrap_or_else(|e| panic!("opening the fuzz index {dir:?}: {e}"));
        let cfg = ServeConfig {
            workers: 1,
            queue: 4,
            body_limit: 64 << 10,
            token: Some(TOKEN.into()),
            shortlist: 8,
            ..ServeConfig::default()
        };
        let st = AppState::new(BTreeMap::from([("g".to_string(), index)]), cfg)
            .expect("serve state");
        Fixture {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            app: router(Arc::new(st)),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let (route, flags, body) = match data {
        [r, fl, rest @ ..] => (*r, *fl, rest),
        _ => return,
    };
    let path = match route % 7 {
        0 | 1 => "/v1/search/images",
        2 | 3 => "/v1/search/captions",
        4 => "/v1/explain",
        5 => "/healthz",
        _ => "/metrics",
    };
    let method = if flags & 1 == 0 { "POST" } else { "GET" };
    let content_type = match (flags >> 1) & 3 {
        0 | 1 => "application/json",
        2 => "text/plain",
        _ => "application/json; charset=utf-8",
    };
    let auth = match (flags >> 3) & 3 {
        0 | 1 => format!("Bearer {TOKEN}"),
        2 => "Bearer wrong".to_string(),
        _ => String::new(),
    };
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, content_type);
    if !auth.is_empty() {
        req = req.header(header::AUTHORIZATION, auth);
    }
    let req = req
        .body(Body::from(body.to_vec()))
        .expect("request from fixed parts");
    let (status, bytes) = f.rt.block_on(async {
        let resp = f.app.clone().oneshot(req).await.expect("infallible router");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
            .await
            .expect("response body");
        (status, bytes)
    });
    assert!(
        status.is_success() || status.is_client_error() || status == StatusCode::SERVICE_UNAVAILABLE,
        "status {status} for {method} {path}: {}",
        String::from_utf8_lossy(&bytes)
    );
    if status.is_client_error() && path.starts_with("/v1/") {
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{status} body is not JSON ({e}): {bytes:?}"));
        assert!(v.get("error").and_then(|e| e.as_str()).is_some(), "{v}");
    }
});
