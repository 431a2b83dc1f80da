//! `dbl serve`: the HTTP search service over one or more index folders
//! (`crate::serve::http` documents the endpoints) and its search page at `/`. Binds to loopback by
//! default; any other address needs `--token-file`. SIGTERM or Ctrl-C stops
//! accepting, lets the requests in flight finish, and exits 0.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

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
    /// Search threads.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub workers: usize,
    /// Searches that may wait beyond those running; more get 503.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub queue: usize,
    /// Largest request body in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20)]
    pub body_limit: usize,
    /// Default shortlist size K (candidates re-ranked exactly).
    #[arg(long, value_name = "K", default_value_t = 100)]
    pub shortlist: usize,
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
        Some(p) => {
            let t = std::fs::read_to_string(p)
                .with_context(|| format!("--token-file {}", p.display()))?;
            let t = t.trim().to_string();
            if t.is_empty() {
                anyhow::bail!("--token-file {}: the file is empty", p.display());
            }
            Some(t)
        }
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
        token,
        shortlist: args.shortlist,
        image_dir: args.image_dir.clone(),
    };
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
        println!(
            "listening on http://{local} ({} index(es), {} model(s) loaded)",
            args.indexes.len(),
            models.len()
        );
        std::io::stdout().flush()?;
        serve(listener, st, shutdown_signal()).await?;
        eprintln!("shut down cleanly");
        anyhow::Ok(())
    })
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
