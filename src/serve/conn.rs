//! The connection loop of the HTTP service: accepts TCP connections and
//! serves each over HTTP/1.1 with hyper, under three bounds (issue 25 §1):
//! - hyper's header-read timeout (`ConnLimits::header_timeout`): a client
//!   that does not finish a request head in time is disconnected. hyper
//!   starts this timer whenever the connection waits for a head, so it is also
//!   the keep-alive idle timeout. (Body reads are bounded in [`super::body`].)
//! - a cap on open connections (`ConnLimits::max_connections`, lowered to
//!   what the process's file-descriptor limit leaves after [`RESERVED_FDS`]):
//!   at the cap, new connections wait in the kernel's backlog instead of
//!   exhausting descriptors, and accept errors (EMFILE…) back off instead of
//!   spinning.
//! - a shutdown deadline: when `shutdown` resolves, the listener closes,
//!   open connections are told to finish (hyper-util's graceful shutdown:
//!   requests in flight complete, idle keep-alive connections close), and
//!   whatever is still open after `ConnLimits::shutdown_deadline` is dropped.
//!
//! axum's own `axum::serve` has none of these knobs, hence this loop; it
//! uses hyper's and hyper-util's facilities throughout and adds only the
//! connection semaphore and the deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// File descriptors kept free for index files, the listener and the runtime
/// when the connection cap is derived from `RLIMIT_NOFILE`.
pub const RESERVED_FDS: u64 = 64;

/// Connection bounds of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Longest wait for a complete request head (also the keep-alive idle time).
    pub header_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// How long shutdown waits for open connections before dropping them.
    pub shutdown_deadline: Duration,
}

/// How a shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Connections still open at the deadline, closed without finishing.
    pub cut: usize,
}

/// The soft `RLIMIT_NOFILE` of this process (None where unlimited or unknown).
pub fn fd_limit() -> Option<u64> {
    crate::train::resources::soft_limit(crate::train::resources::Limit::OpenFiles)
}

/// The connection cap actually used: `wanted`, lowered so that the open
/// connections plus [`RESERVED_FDS`] stay under `fd_limit`. Err when the
/// limit leaves room for no connection at all.
pub fn effective_max_connections(wanted: usize, fd_limit: Option<u64>) -> Result<usize, String> {
    match fd_limit {
        None => Ok(wanted),
        Some(l) if l <= RESERVED_FDS => Err(format!(
            "the file-descriptor limit (ulimit -n) is {l}: at least {} needed to serve any \
             connection ({RESERVED_FDS} are kept for files)",
            RESERVED_FDS + 1
        )),
        Some(l) => Ok(wanted.min(usize::try_from(l - RESERVED_FDS).unwrap_or(usize::MAX))),
    }
}

/// Serves `app` on `listener` under `limits` until `shutdown` resolves, then
/// drains within the deadline.
pub async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<ShutdownReport> {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while tasks.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = open.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // EMFILE/ENFILE/ECONNABORTED…: back off, never spin or stop.
                    eprintln!("serve: accept failed ({e}); retrying in 50 ms");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tasks.spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    let cut = match tokio::time::timeout(limits.shutdown_deadline, graceful.shutdown()).await {
        Ok(()) => 0,
        Err(_) => {
            let n = tasks.len();
            tasks.abort_all();
            n
        }
    };
    while tasks.join_next().await.is_some() {}
    Ok(ShutdownReport { cut })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_reserved_descriptors() {
        assert_eq!(effective_max_connections(1024, None), Ok(1024));
        assert_eq!(effective_max_connections(1024, Some(1 << 20)), Ok(1024));
        assert_eq!(effective_max_connections(1024, Some(256)), Ok(192));
        assert!(effective_max_connections(1024, Some(RESERVED_FDS)).is_err());
    }
}
