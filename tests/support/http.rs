//! An in-process `dbl serve` on an ephemeral loopback port, the address a
//! `dbl serve` child process listens on, and a raw HTTP/1.1 client for the
//! HTTP tests (also used to drive chromedriver).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Child;
use std::sync::Arc;
use std::time::Duration;

use dbl::serve::Index;
use dbl::serve::conn::ShutdownReport;
use dbl::serve::http::{AppState, ServeConfig, serve};
use serde_json::Value;

/// A running in-process server.
pub struct Server {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<ShutdownReport>>,
}

impl Server {
    /// Asks for shutdown and waits for the serving thread: → its report.
    pub fn stop(mut self) -> ShutdownReport {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// Serves `indexes` under `cfg` on 127.0.0.1:0 in a thread of its own.
pub fn start(indexes: BTreeMap<String, Index>, cfg: ServeConfig) -> Server {
    let state = Arc::new(AppState::new(indexes, cfg).unwrap());
    let st = state.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (atx, arx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            atx.send(l.local_addr().unwrap()).unwrap();
            serve(l, st, async {
                let _ = rx.await;
            })
            .await
            .unwrap()
        })
    });
    Server {
        addr: arx.recv().unwrap(),
        state,
        stop: Some(tx),
        thread: Some(thread),
    }
}

/// Parses a raw response → (status, body as JSON or a string); status 0
/// when nothing (or no status line) came back.
pub fn parse_response(resp: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(resp).into_owned();
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let v = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
    (status, v)
}

/// The address a `dbl serve` child (stdout piped) prints on its first line
/// (`… http://ADDR …`); takes the child's stdout.
pub fn served_addr(child: &mut Child) -> SocketAddr {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .parse()
        .unwrap()
}

/// The request head of `method path` with `Content-Length: len` and `headers`.
pub fn head(method: &str, path: &str, headers: &[(&str, &str)], len: usize) -> String {
    head_for("x", method, path, headers, len)
}

/// [`head`] with `Host: host`.
fn head_for(host: &str, method: &str, path: &str, headers: &[(&str, &str)], len: usize) -> String {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {len}\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Sends `raw` and reads the answer until the server closes or `timeout`
/// passes → (status, body); status 0 on timeout or no answer.
pub fn exchange(addr: SocketAddr, raw: &[u8], timeout: Duration) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    let _ = s.write_all(raw); // the server may answer (413) before reading it all
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    parse_response(&resp)
}

/// One HTTP/1.1 request → (status, body as JSON or a string).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Value) {
    let mut raw = head(method, path, headers, body.len()).into_bytes();
    raw.extend_from_slice(body);
    let (status, v) = exchange(addr, &raw, Duration::from_secs(60));
    assert_ne!(status, 0, "no answer to {method} {path}");
    (status, v)
}

/// POST `body` as JSON.
pub fn post(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
}

/// One HTTP/1.1 exchange with `Host: ADDR`, the answer read by its framing
/// (`Content-Length`, chunked, or to the end) → (status, head in lower
/// case, body). Reading by framing matters for servers that keep the
/// connection open despite `Connection: close` (chromedriver).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let head = head_for(&addr.to_string(), method, path, headers, body.len());
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse::<usize>().unwrap());
    let body = match len {
        Some(n) => {
            let mut b = vec![0u8; n];
            r.read_exact(&mut b).unwrap();
            b
        }
        None if head.contains("transfer-encoding: chunked") => read_chunked(&mut r),
        None => {
            let mut b = Vec::new();
            let _ = r.read_to_end(&mut b);
            b
        }
    };
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, body)
}

/// Reads a chunked body up to its last (empty) chunk.
fn read_chunked(r: &mut impl BufRead) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut size = String::new();
        r.read_line(&mut size).unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        let mut chunk = vec![0u8; n + 2];
        r.read_exact(&mut chunk).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&chunk[..n]);
    }
}
