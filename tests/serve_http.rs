//! The HTTP service against a server on an ephemeral loopback port: the happy
//! path of every endpoint, each bad input of issue #12 §4 (4xx JSON errors,
//! the server keeps answering), 503 when the queue is full, 401 without the
//! token, two indexes sharing one loaded model, and `dbl serve` draining on
//! SIGTERM and exiting 0.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use dbl::data::npy::NpyF32;
use dbl::serve::http::ServeConfig;
use dbl::serve::{Index, Models};
use serde_json::{Value, json};
use support::http::{post, request, served_addr, start};
use support::{BIN, build_index, ok};

struct Fix {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    idx: PathBuf,
    idx2: PathBuf,
}

fn fix() -> Fix {
    let tmp = tempfile::tempdir().unwrap();
    let (data, run, idx) = support::scan_index(tmp.path(), &[]);
    let idx2 = tmp.path().join("idx2");
    ok(&build_index(&run, &data, &idx2, &["--ann-threshold", "1"]));
    Fix {
        _tmp: tmp,
        data,
        idx,
        idx2,
    }
}

fn one(f: &Fix, models: &Models) -> BTreeMap<String, Index> {
    BTreeMap::from([("a".to_string(), Index::open(&f.idx, models).unwrap())])
}

#[test]
fn endpoints_and_bad_inputs() {
    let f = fix();
    let models = Models::new();
    let mut indexes = one(&f, &models);
    indexes.insert("b".into(), Index::open(&f.idx2, &models).unwrap());
    assert_eq!(models.len(), 1, "two indexes of one run share the model");
    let srv = start(
        indexes,
        ServeConfig {
            body_limit: 2 << 20,
            ..ServeConfig::default()
        },
    );
    let a = srv.addr;
    let img = "/v1/search/images";
    let cap = "/v1/search/captions";

    let (s, v) = post(
        a,
        img,
        &json!({"text": "a dog on the grass", "k": 3, "index": "a"}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["hits"].as_array().unwrap().len(), 3);
    let (s, v) = post(a, cap, &json!({"image_row": 2, "k": 4, "index": "b"}));
    assert_eq!(s, 200, "{v}");
    assert!(v["hits"][0]["caption"].is_string());
    let ims = NpyF32::open_ndim(f.data.join("test_ims.npy"), 3).unwrap();
    let feats: Vec<Vec<f32>> = ims.row(2).chunks(2048).map(<[f32]>::to_vec).collect();
    let (s, v2) = post(a, cap, &json!({"features": feats, "k": 4, "index": "b"}));
    assert_eq!(s, 200, "{v2}");
    assert_eq!(v2["hits"], v["hits"], "features of row 2 = image_row 2");
    let (s, v) = request(a, "GET", "/healthz", &[], b"");
    assert_eq!((s, v["status"].as_str()), (200, Some("ok")));

    // Bad inputs: (body, expected status, needle in the error).
    let huge = "dog ".repeat(262_144); // 1 MiB
    let mut bad_shape = feats.clone();
    bad_shape[0].pop();
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (img, json!({"text": "", "index": "a"}), 400, "empty"),
        (
            img,
            json!({"text": " \t\n ", "index": "a"}),
            400,
            "whitespace",
        ),
        (
            img,
            json!({"text": huge, "index": "a"}),
            400,
            "at most 4096",
        ),
        (
            img,
            json!({"text": "zzqx qqzz", "index": "a"}),
            400,
            "no word of the vocabulary",
        ),
        (
            img,
            json!({"text": "a dog", "k": 0, "index": "a"}),
            400,
            "k = 0",
        ),
        (
            img,
            json!({"text": "a dog", "k": 13, "index": "a"}),
            400,
            "k = 13",
        ),
        (img, json!({"text": "a dog"}), 400, "several indexes"),
        (
            img,
            json!({"text": "a dog", "index": "zz"}),
            404,
            "no index",
        ),
        (
            img,
            json!({"txt": "a dog", "index": "a"}),
            400,
            "malformed JSON",
        ),
        (
            cap,
            json!({"features": bad_shape, "index": "a"}),
            400,
            "rows of 2048",
        ),
        (
            cap,
            json!({"features": [[1.0]], "index": "a"}),
            400,
            "36 rows",
        ),
        (
            cap,
            json!({"image_row": 12, "index": "a"}),
            400,
            "image_row 12",
        ),
        (
            cap,
            json!({"image_row": 1, "features": feats, "index": "a"}),
            400,
            "exactly one",
        ),
        (
            cap,
            json!({"image_row": 1, "k": 61, "index": "a"}),
            400,
            "k = 61",
        ),
    ];
    for (path, body, status, needle) in cases {
        let (s, v) = post(a, path, &body);
        let msg = v["error"].as_str().unwrap_or_default().to_string();
        assert_eq!(s, status, "{needle}: {v}");
        assert!(msg.contains(needle), "{needle}: {msg}");
    }
    // NaN / infinite features: JSON has no NaN, 1e39 overflows f32 to inf.
    let mut inf = feats.clone();
    inf[3][5] = 12345.5;
    let body = json!({"features": inf, "index": "a"})
        .to_string()
        .replacen("12345.5", "1e39", 1);
    assert!(body.contains("1e39"));
    let (s, v) = request(
        a,
        "POST",
        cap,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("NaN or infinite"),
        "{v}"
    );
    let raw = |body: &[u8], ct: &str| request(a, "POST", img, &[("Content-Type", ct)], body);
    let (s, v) = raw(b"{\"text\": ", "application/json");
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("malformed JSON"));
    let (s, v) = raw(br#"{"text":"a dog","index":"a"}"#, "text/plain");
    assert_eq!(s, 415, "{v}");
    let (s, v) = raw(&vec![b' '; 3 << 20], "application/json");
    assert_eq!(s, 413, "{v}");
    let (s, v) = request(a, "GET", "/nope", &[], b"");
    assert_eq!(s, 404);
    assert!(v["error"].as_str().is_some(), "{v}");
    // Wrong method on a known path: a JSON error naming the right one
    // (fuzz/fuzz_targets/http_request.rs found axum's empty 405 body).
    let (s, v) = request(a, "GET", img, &[], b"");
    assert_eq!(s, 405, "{v}");
    assert!(v["error"].as_str().unwrap().contains("use POST"), "{v}");
    let (s, v) = request(a, "POST", "/healthz", &[], b"");
    assert_eq!(s, 405, "{v}");
    assert!(v["error"].as_str().unwrap().contains("use GET"), "{v}");
    // Still answering; metrics counted everything.
    let (s, _) = post(a, img, &json!({"text": "a dog", "index": "a"}));
    assert_eq!(s, 200);
    let (s, m) = request(a, "GET", "/metrics", &[], b"");
    let m = m.as_str().unwrap().to_string();
    assert_eq!(s, 200);
    assert!(
        m.contains("dbl_requests_total{route=\"/v1/search/images\",status=\"200\"}"),
        "{m}"
    );
    assert!(
        m.contains("dbl_requests_total{route=\"/v1/search/captions\",status=\"400\"}"),
        "{m}"
    );
    assert!(
        m.contains("dbl_request_duration_seconds_bucket{le=\"+Inf\"}"),
        "{m}"
    );
    assert!(m.contains("dbl_requests_in_flight 1"), "{m}"); // this request
}

#[test]
fn full_queue_gets_503_and_token_is_required() {
    let f = fix();
    let models = Models::new();
    let srv = start(
        one(&f, &models),
        ServeConfig {
            workers: 1,
            queue: 1,
            ..ServeConfig::default()
        },
    );
    let q = json!({"text": "a dog", "k": 2});
    // Occupy both admission slots (as two long searches would).
    let held = srv.state.slots().try_acquire_many_owned(2).unwrap();
    let (s, v) = post(srv.addr, "/v1/search/images", &q);
    assert_eq!(s, 503, "{v}");
    assert!(v["error"].as_str().unwrap().contains("queue full"));
    drop(held);
    let (s, _) = post(srv.addr, "/v1/search/images", &q);
    assert_eq!(s, 200);
    let (_, m) = request(srv.addr, "GET", "/metrics", &[], b"");
    assert!(m.as_str().unwrap().contains("dbl_queue_rejected_total 1"));

    let srv = start(
        one(&f, &models),
        ServeConfig {
            token: Some("s3cret".into()),
            ..ServeConfig::default()
        },
    );
    let (s, v) = post(srv.addr, "/v1/search/images", &q);
    assert_eq!(s, 401, "{v}");
    let (s, _) = request(
        srv.addr,
        "GET",
        "/healthz",
        &[("Authorization", "Bearer wrong")],
        b"",
    );
    assert_eq!(s, 401);
    let (s, _) = request(
        srv.addr,
        "POST",
        "/v1/search/images",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer s3cret"),
        ],
        q.to_string().as_bytes(),
    );
    assert_eq!(s, 200);
}

/// `dbl serve`: refuses a public address without a token; on SIGTERM it
/// finishes and exits 0.
#[test]
fn serve_binary_exits_zero_on_sigterm() {
    let f = fix();
    let o = Command::new(BIN)
        .args(["serve", "--addr", "0.0.0.0:0", "--index"])
        .arg(&f.idx)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--token-file"));

    let mut child = Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--index"])
        .arg(format!("a={}", f.idx.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = served_addr(&mut child);
    let (s, _) = post(addr, "/v1/search/images", &json!({"text": "a dog"}));
    assert_eq!(s, 200);
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("shut down cleanly"));
}
