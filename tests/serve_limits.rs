//! Issue 25 §1–2: slow, stalled, oversized and vanishing clients against a
//! server on an ephemeral loopback port (in process, or `dbl serve` itself
//! for signals and descriptor limits). Each test failed before its fix: the
//! server waited for ever (no header/body timeouts, no 413 before the body,
//! no shutdown deadline, one signal only), took every body regardless of the
//! bytes in flight, lost count of requests whose client went away, and
//! matched content types by prefix.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dbl::serve::http::{ServeConfig, router};
use dbl::serve::{Index, Models};
use serde_json::json;
use support::BIN;
use support::http::{exchange, head, post, request, served_addr, start};

const IMG: &str = "/v1/search/images";
const JSON: (&str, &str) = ("Content-Type", "application/json");

struct Fix {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    idx: PathBuf,
}

fn fix() -> Fix {
    let tmp = tempfile::tempdir().unwrap();
    let (data, _, idx) = support::scan_index(tmp.path(), &[]);
    Fix {
        _tmp: tmp,
        data,
        idx,
    }
}

fn one(idx: &Path) -> BTreeMap<String, Index> {
    BTreeMap::from([("a".to_string(), Index::open(idx, &Models::new()).unwrap())])
}

/// True when the server closes `s` within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn stalled_heads_and_idle_connections_are_closed() {
    let f = fix();
    let srv = start(
        one(&f.idx),
        ServeConfig {
            header_timeout: secs(0.5),
            ..ServeConfig::default()
        },
    );
    // Part of a head, then nothing.
    let mut partial = TcpStream::connect(srv.addr).unwrap();
    partial
        .write_all(b"POST /v1/search/images HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // Connected, never a byte.
    let mut silent = TcpStream::connect(srv.addr).unwrap();
    let t = Instant::now();
    assert!(
        closed_within(&mut partial, secs(5.0)),
        "partial head kept open"
    );
    assert!(
        closed_within(&mut silent, secs(5.0)),
        "idle connection kept open"
    );
    assert!(t.elapsed() < secs(3.0), "{:?}", t.elapsed());
    let (s, _) = request(srv.addr, "GET", "/healthz", &[], b"");
    assert_eq!(s, 200);
}

#[test]
fn an_over_limit_declared_length_gets_413_before_the_body() {
    let f = fix();
    let srv = start(one(&f.idx), ServeConfig::default());
    let t = Instant::now();
    // Declares 100 MB, sends none of it: answered at once, not waited for.
    let raw = head("POST", IMG, &[JSON], 100 << 20);
    let (s, v) = exchange(srv.addr, raw.as_bytes(), secs(5.0));
    assert_eq!(s, 413, "{v}");
    assert!(v["error"].as_str().unwrap().contains("over"), "{v}");
    // Expect: 100-continue: 413 instead of `100 Continue`.
    let raw = head("POST", IMG, &[JSON, ("Expect", "100-continue")], 100 << 20);
    let (s, v) = exchange(srv.addr, raw.as_bytes(), secs(5.0));
    assert_eq!(s, 413, "{v}");
    assert!(t.elapsed() < secs(4.0));
    // A body within the limit with Expect still works.
    let body = json!({"text": "a dog", "k": 2}).to_string();
    let mut c = TcpStream::connect(srv.addr).unwrap();
    c.set_read_timeout(Some(secs(10.0))).unwrap();
    c.write_all(head("POST", IMG, &[JSON, ("Expect", "100-continue")], body.len()).as_bytes())
        .unwrap();
    let mut line = String::new();
    let mut r = BufReader::new(c.try_clone().unwrap());
    r.read_line(&mut line).unwrap();
    assert!(line.contains("100"), "{line}");
    c.write_all(body.as_bytes()).unwrap();
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(String::from_utf8_lossy(&rest).contains("200 OK"));
}

#[test]
fn a_stalled_body_gets_408() {
    let f = fix();
    let srv = start(
        one(&f.idx),
        ServeConfig {
            body_timeout: secs(0.5),
            ..ServeConfig::default()
        },
    );
    let mut raw = head("POST", IMG, &[JSON], 100).into_bytes();
    raw.extend_from_slice(b"{\"text\":");
    let t = Instant::now();
    let (s, v) = exchange(srv.addr, &raw, secs(10.0));
    assert_eq!(s, 408, "{v}");
    assert!(t.elapsed() < secs(5.0));
    let (s, _) = request(srv.addr, "GET", "/healthz", &[], b"");
    assert_eq!(s, 200);
}

#[test]
fn bodies_in_flight_are_bounded_in_bytes() {
    let f = fix();
    let srv = start(
        one(&f.idx),
        ServeConfig {
            body_limit: 64 << 10,
            body_budget: 100 << 10,
            ..ServeConfig::default()
        },
    );
    let budget = 100 << 10;
    assert_eq!(srv.state.budget_available(), budget);
    // A slow client holds 60 kB of the budget while it sends...
    let mut slow = TcpStream::connect(srv.addr).unwrap();
    slow.write_all(head("POST", IMG, &[JSON], 60_000).as_bytes())
        .unwrap();
    slow.write_all(b"{\"text\": \"").unwrap();
    let t = Instant::now();
    while srv.state.budget_available() == budget && t.elapsed() < secs(10.0) {
        std::thread::sleep(secs(0.01));
    }
    assert_eq!(srv.state.budget_available(), budget - 60_000);
    // ...so a second 60 kB body is refused at once, with nothing read.
    let raw = head("POST", IMG, &[JSON], 60_000);
    let (s, v) = exchange(srv.addr, raw.as_bytes(), secs(5.0));
    assert_eq!(s, 503, "{v}");
    assert!(v["error"].as_str().unwrap().contains("busy"), "{v}");
    // Small requests still pass.
    let (s, _) = post(srv.addr, IMG, &json!({"text": "a dog", "k": 2}));
    assert_eq!(s, 200);
    // The slow client leaves: its bytes come back.
    drop(slow);
    let t = Instant::now();
    while srv.state.budget_available() != budget && t.elapsed() < secs(10.0) {
        std::thread::sleep(secs(0.01));
    }
    assert_eq!(srv.state.budget_available(), budget);
}

/// A request body that never arrives (a client gone silent).
struct Never;

impl hyper::body::Body for Never {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Pending
    }
}

/// hyper drops a request's future when its connection dies (the client
/// disconnected mid-request, or shutdown cut it): the in-flight gauge and the
/// body budget must come back all the same.
#[test]
fn a_dropped_request_leaves_no_count_and_no_bytes_behind() {
    use hyper::service::Service as _;
    let f = fix();
    let st = std::sync::Arc::new(
        dbl::serve::http::AppState::new(one(&f.idx), ServeConfig::default()).unwrap(),
    );
    let svc = hyper_util::service::TowerToHyperService::new(router(st.clone()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let budget = st.budget_available();
    rt.block_on(async {
        for _ in 0..3 {
            let req = axum::http::Request::post(IMG)
                .header("Content-Type", "application/json")
                .header("Content-Length", "1000")
                .body(axum::body::Body::new(Never))
                .unwrap();
            let r = tokio::time::timeout(secs(0.2), svc.call(req)).await;
            assert!(r.is_err(), "the request must still be waiting for its body");
        }
    });
    assert_eq!(st.metrics().in_flight(), 0);
    assert_eq!(st.budget_available(), budget);
    assert!(st.metrics().render().contains("dbl_requests_in_flight 0"));
}

#[test]
fn content_types_match_exactly() {
    let f = fix();
    let srv = start(one(&f.idx), ServeConfig::default());
    let body = json!({"text": "a dog", "k": 2}).to_string();
    for (ct, want) in [
        ("application/json", 200),
        ("Application/JSON; charset=utf-8", 200),
        ("application/jsonp", 415),
        ("application/json-patch+json", 415),
        ("application/jsonx; charset=utf-8", 415),
        ("text/plain", 415),
    ] {
        let (s, v) = request(
            srv.addr,
            "POST",
            IMG,
            &[("Content-Type", ct)],
            body.as_bytes(),
        );
        assert_eq!(s, want, "{ct}: {v}");
    }
}

#[test]
fn extreme_features_never_give_a_null_score() {
    let f = fix();
    let srv = start(one(&f.idx), ServeConfig::default());
    let ims = dbl::data::npy::NpyF32::open_ndim(f.data.join("test_ims.npy"), 3).unwrap();
    for scale in [3.0e38f32, 1.0e30, 1.0e20] {
        let feats: Vec<Vec<f32>> = ims
            .row(0)
            .chunks(2048)
            .map(|r| r.iter().map(|v| v.signum() * scale).collect())
            .collect();
        let (s, v) = post(srv.addr, "/v1/search/captions", &json!({"features": feats}));
        assert!(!v.to_string().contains("null"), "{scale}: {v}");
        if scale > 1e38 {
            assert_eq!(s, 400, "the encoder overflows at {scale}: {v}");
        }
        if s == 200 {
            let hits = v["hits"].as_array().unwrap();
            assert!(
                hits.iter()
                    .all(|h| h["score"].as_f64().unwrap().is_finite())
            );
        } else {
            assert_eq!(s, 400, "{v}");
            assert!(v["error"].as_str().unwrap().contains("not finite"), "{v}");
        }
    }
}

/// A `dbl serve` child with its address.
struct Served {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sh -c 'PREFIX exec dbl serve --index a=IDX ARGS'` and reads its address.
fn serve_bin(idx: &Path, prefix: &str, args: &[&str]) -> Served {
    let cmd = format!(
        "{prefix} exec {BIN} serve --addr 127.0.0.1:0 --index a={} {}",
        idx.display(),
        args.join(" ")
    );
    let mut child = Command::new("sh")
        .args(["-c", &cmd])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = served_addr(&mut child);
    Served { child, addr }
}

fn signal(child: &Child, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// Waits up to `within` for the child to exit → (status code, stderr).
fn exit_within(s: &mut Served, within: Duration) -> Option<(Option<i32>, String)> {
    let t = Instant::now();
    while t.elapsed() < within {
        if let Some(st) = s.child.try_wait().unwrap() {
            let mut err = String::new();
            s.child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return Some((st.code(), err));
        }
        std::thread::sleep(secs(0.02));
    }
    None
}

/// A request whose body never finishes (the client stalls mid-body).
fn stall_mid_body(addr: SocketAddr) -> TcpStream {
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(head("POST", IMG, &[JSON], 100).as_bytes())
        .unwrap();
    c.write_all(b"{\"text\"").unwrap();
    std::thread::sleep(secs(0.3));
    c
}

#[test]
fn sigterm_drains_within_the_deadline_and_a_second_signal_exits_at_once() {
    let f = fix();
    let long = ["--header-timeout", "60", "--body-timeout", "60"];
    // One SIGTERM: the stalled request is cut at the 1 s deadline, exit 0.
    let mut s = serve_bin(
        &f.idx,
        "",
        &[&long[..], &["--shutdown-deadline", "1"]].concat(),
    );
    let _stalled = stall_mid_body(s.addr);
    let t = Instant::now();
    signal(&s.child, "-TERM");
    let (code, err) = exit_within(&mut s, secs(10.0)).expect("still running after SIGTERM");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("were closed"), "{err}");
    assert!(t.elapsed() < secs(5.0), "{:?}", t.elapsed());
    // Two signals: the second exits at once (status 130), long deadline or not.
    let mut s = serve_bin(
        &f.idx,
        "",
        &[&long[..], &["--shutdown-deadline", "600"]].concat(),
    );
    let _stalled = stall_mid_body(s.addr);
    signal(&s.child, "-TERM");
    std::thread::sleep(secs(0.3));
    let t = Instant::now();
    signal(&s.child, "-INT");
    let (code, err) = exit_within(&mut s, secs(10.0)).expect("still running after two signals");
    assert_eq!(code, Some(130), "{err}");
    assert!(t.elapsed() < secs(3.0));
}

/// With `ulimit -n 128`, 200 stalled connections neither exhaust the
/// descriptors nor keep /healthz from answering.
#[test]
fn stalled_sockets_cannot_exhaust_descriptors() {
    let f = fix();
    let s = serve_bin(&f.idx, "ulimit -n 128 &&", &["--header-timeout", "1"]);
    let mut stalled: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(s.addr).ok())
        .collect();
    for c in &mut stalled {
        let _ = c.write_all(b"GET /healthz HTTP/1.1\r\n");
    }
    let t = Instant::now();
    let (st, v) = exchange(
        s.addr,
        head("GET", "/healthz", &[], 0).as_bytes(),
        secs(15.0),
    );
    assert_eq!(st, 200, "{v}");
    assert!(t.elapsed() < secs(10.0), "{:?}", t.elapsed());
}

#[test]
fn every_numeric_option_is_range_checked_and_the_token_must_fit_a_header() {
    let f = fix();
    let idx = format!("a={}", f.idx.display());
    let usage = |args: &[&str], needle: &str| {
        let o = run_bounded(args, secs(20.0));
        let err = String::from_utf8_lossy(&o.1);
        assert_eq!(o.0, Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    };
    for (flag, v) in [
        ("--queue", "99999999999999999"),
        ("--workers", "100000"),
        ("--workers", "0"),
        ("--body-limit", "0"),
        ("--shortlist", "0"),
        ("--header-timeout", "0"),
        ("--max-connections", "0"),
        ("--shutdown-deadline", "7200"),
        ("--body-timeout", "nan"),
    ] {
        usage(&["serve", "--index", &idx, flag, v], flag);
    }
    let out = f.idx.with_extension("out");
    let (out, data) = (out.to_str().unwrap(), f.data.to_str().unwrap());
    usage(
        &[
            "search",
            "--index",
            &idx[2..],
            "--text",
            "a",
            "--threads",
            "100000",
        ],
        "--threads",
    );
    usage(
        &["search", "--index", &idx[2..], "--text", "a", "--k", "0"],
        "--k",
    );
    usage(
        &[
            "index",
            "build",
            "--run",
            data,
            "--images",
            data,
            "--out",
            out,
            "--threads",
            "99999",
        ],
        "--threads",
    );
    // Token files an Authorization header cannot carry are refused at start.
    for (name, text) in [
        ("two", "abc\ndef\n"),
        ("utf", "caf\u{e9}\n"),
        ("sp", "a b\n"),
    ] {
        let p = f.idx.with_extension(name);
        std::fs::write(&p, text).unwrap();
        let o = run_bounded(
            &[
                "serve",
                "--index",
                &idx,
                "--token-file",
                p.to_str().unwrap(),
            ],
            secs(20.0),
        );
        let err = String::from_utf8_lossy(&o.1);
        assert_eq!(o.0, Some(1), "{name}: {err}");
        assert!(
            err.contains("--token-file") && err.contains("one line"),
            "{err}"
        );
    }
}

/// `dbl ARGS` killed after `within` → (status code, stderr); None code when killed.
fn run_bounded(args: &[&str], within: Duration) -> (Option<i32>, Vec<u8>) {
    let mut c = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while t.elapsed() < within {
        if let Some(st) = c.try_wait().unwrap() {
            let mut err = Vec::new();
            c.stderr.take().unwrap().read_to_end(&mut err).unwrap();
            return (st.code(), err);
        }
        std::thread::sleep(secs(0.02));
    }
    let _ = c.kill();
    let _ = c.wait();
    (None, b"still running".to_vec())
}
