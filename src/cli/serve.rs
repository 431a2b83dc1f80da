//! `dbl serve`: the HTTP search service over one or more index folders
//! (`crate::serve::http` documents the endpoints) and its search page at `/`. Binds to loopback by
//! default; any other address needs `--token-file`. SIGTERM or Ctrl-C stops
//! accepting, lets the requests in flight finish within `--shutdown-deadline`
//! (closing what is still open then), and exits 0; a second SIGTERM or
//! Ctrl-C exits at once (status 130).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::bounds::{secs_in, usize_in, workers};
use crate::serve::config::{
    BODY_BUDGET, BODY_LIMIT, DEADLINE_SECS, MAX_CONNECTIONS, QUEUE, SHORTLIST, TIMEOUT_SECS,
    check_token,
};
use crate::serve::conn::{effective_max_connections, fd_limit};
use crate::serve::http::{AppState, ServeConfig, serve};
use crate::serve::{Index, Models};

/// Arguments of `dbl serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Index to serve: `DIR`, or `NAME=DIR` (repeatable; requests pick one with "index").
    #[arg(long = "index", value_name = "[NAME=]DIR", required = true)]
    pub indexes: Vec<String>,
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// File holding the access token (required to bind a non-loopback address).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Search threads (1 up to 4 x the cores).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = workers)]
    pub workers: usize,
    /// Searches that may wait beyond those running; more get 503.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = usize_in(QUEUE))]
    pub queue: usize,
    /// Largest request body in bytes (a larger declared Content-Length gets 413 at once).
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20, value_parser = usize_in(BODY_LIMIT))]
    pub body_limit: usize,
    /// Bytes of request bodies held at once across all requests (at least --body-limit);
    /// a body that does not fit gets 503. Bounds the memory of a flood of large bodies.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20, value_parser = usize_in(BODY_BUDGET))]
    pub body_budget: usize,
    /// Default shortlist size K (candidates re-ranked exactly).
    #[arg(long, value_name = "K", default_value_t = 100, value_parser = usize_in(SHORTLIST))]
    pub shortlist: usize,
    /// Seconds a client may take to send a request head; also how long an idle
    /// keep-alive connection stays open.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = secs_in(TIMEOUT_SECS))]
    pub header_timeout: Duration,
    /// Seconds a client may take to send a request body (408 after).
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = secs_in(TIMEOUT_SECS))]
    pub body_timeout: Duration,
    /// Most open connections (lowered to what `ulimit -n` allows); more wait to be accepted.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = usize_in(MAX_CONNECTIONS))]
    pub max_connections: usize,
    /// Seconds to let requests in flight finish after SIGTERM/Ctrl-C before closing the rest.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = secs_in(DEADLINE_SECS))]
    pub shutdown_deadline: Duration,
    /// Folder of thumbnails named by image id (`ID.jpg`, `ID.jpeg` or `ID.png`),
    /// shown by the search page at `/`.
    #[arg(long, value_name = "DIR")]
    pub image_dir: Option<PathBuf>,
}

fn parse_index(s: &str) -> (String, PathBuf) {
    match s.split_once('=') {
        Some((name, dir)) if !name.is_empty() => (name.to_string(), PathBuf::from(dir)),
        _ => {
            let p = PathBuf::from(s);
            let name = p
                .file_name()
                .map_or("default".to_string(), |n| n.to_string_lossy().into_owned());
            (name, p)
        }
    }
}

/// Runs `dbl serve`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let token = match &args.token_file {
        Some(p) => Some(read_token(p)?),
        None => None,
    };
    if !args.addr.ip().is_loopback() && token.is_none() {
        anyhow::bail!(
            "--addr {}: binding a non-loopback address needs an access token (--token-file FILE)",
            args.addr
        );
    }
    if let Some(d) = &args.image_dir
        && !d.is_dir()
    {
        anyhow::bail!("--image-dir {}: not a folder", d.display());
    }
    let models = Models::new();
    let mut indexes = BTreeMap::new();
    for s in &args.indexes {
        let (name, dir) = parse_index(s);
        if indexes.contains_key(&name) {
            anyhow::bail!("--index {s}: the name {name:?} is given twice");
        }
        let idx = Index::open(&dir, &models).with_context(|| format!("--index {s}"))?;
        indexes.insert(name, idx);
    }
    let cfg = ServeConfig {
        workers: args.workers,
        queue: args.queue,
        body_limit: args.body_limit,
        body_budget: args.body_budget,
        token,
        shortlist: args.shortlist,
        header_timeout: args.header_timeout,
        body_timeout: args.body_timeout,
        max_connections: args.max_connections,
        shutdown_deadline: args.shutdown_deadline,
        image_dir: args.image_dir.clone(),
    };
    let max_conn = effective_max_connections(cfg.max_connections, fd_limit())
        .map_err(|e| anyhow::anyhow!("--max-connections: {e}"))?;
    let deadline = cfg.shutdown_deadline;
    let st = Arc::new(AppState::new(indexes, cfg)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("binding {}", args.addr))?;
        let local = listener.local_addr()?;
        let (first, stop) = tokio::sync::oneshot::channel();
        tokio::spawn(signals(first, deadline));
        println!(
            "listening on http://{local} ({} index(es), {} model(s) loaded, at most {max_conn} connections)",
            args.indexes.len(),
            models.len()
        );
        std::io::stdout().flush()?;
        let report = serve(listener, st, async {
            let _ = stop.await;
        })
        .await?;
        if report.cut == 0 {
            eprintln!("shut down cleanly");
        } else {
            eprintln!(
                "shut down: {} connection(s) still open after the {:.1} s deadline were closed",
                report.cut,
                deadline.as_secs_f64()
            );
        }
        anyhow::Ok(())
    })
}

/// The token in `path`: one line (a final newline is allowed) that an HTTP
/// header can carry.
fn read_token(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--token-file {}", path.display()))?;
    let t = text.strip_suffix('\n').unwrap_or(&text);
    let t = t.strip_suffix('\r').unwrap_or(t);
    check_token(t).with_context(|| format!("--token-file {}", path.display()))?;
    Ok(t.to_string())
}

/// On the first SIGTERM or Ctrl-C, sends on `first` (graceful shutdown);
/// on the second, exits at once with status 130.
async fn signals(first: tokio::sync::oneshot::Sender<()>, deadline: Duration) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            eprintln!("serve: cannot listen for signals; stop the process with SIGKILL");
            return std::future::pending().await;
        };
        let mut next = async move || {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        };
        next().await;
        eprintln!(
            "shutting down: finishing requests in flight (at most {:.1} s); a second signal exits at once",
            deadline.as_secs_f64()
        );
        let _ = first.send(());
        next().await;
        eprintln!("second signal: exiting now");
        std::process::exit(130);
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        let _ = first.send(());
        let _ = tokio::signal::ctrl_c().await;
        std::process::exit(130);
    }
}
