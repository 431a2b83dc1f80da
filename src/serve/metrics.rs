//! Prometheus text metrics of the HTTP service: request counts by route and
//! status, a latency histogram, requests in flight and queue rejections.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Upper bounds of the latency histogram, seconds.
pub const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// One request in flight (see [`Metrics::begin`]).
#[derive(Debug)]
pub struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The service's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (route, status) → count.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// Cumulative counts per bucket, then +Inf.
    latency: [AtomicU64; BUCKETS.len() + 1],
    latency_sum_us: AtomicU64,
    in_flight: AtomicI64,
    rejected: AtomicU64,
}

impl Metrics {
    /// A request started: counted in flight until the guard is dropped —
    /// also when the request's future is dropped unfinished (the client
    /// disconnected, or shutdown cut the connection).
    pub fn begin(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    /// A request ended with `status` after `secs`.
    pub fn end(&self, route: &str, status: u16, secs: f64) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((route.to_string(), status))
            .or_default() += 1;
        let b = BUCKETS
            .iter()
            .position(|&u| secs <= u)
            .unwrap_or(BUCKETS.len());
        self.latency[b].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
    }

    /// A request turned away because the queue was full.
    pub fn reject(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str("# HELP dbl_requests_total HTTP requests by route and status.\n");
        s.push_str("# TYPE dbl_requests_total counter\n");
        for ((route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                s,
                "dbl_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        s.push_str("# HELP dbl_request_duration_seconds Request latency.\n");
        s.push_str("# TYPE dbl_request_duration_seconds histogram\n");
        let mut cum = 0;
        for (i, c) in self.latency.iter().enumerate() {
            cum += c.load(Ordering::Relaxed);
            let le = BUCKETS.get(i).map_or("+Inf".to_string(), |u| u.to_string());
            let _ = writeln!(
                s,
                "dbl_request_duration_seconds_bucket{{le=\"{le}\"}} {cum}"
            );
        }
        let sum = self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(s, "dbl_request_duration_seconds_sum {sum}");
        let _ = writeln!(s, "dbl_request_duration_seconds_count {cum}");
        s.push_str("# HELP dbl_requests_in_flight Requests being handled.\n");
        s.push_str("# TYPE dbl_requests_in_flight gauge\n");
        let _ = writeln!(s, "dbl_requests_in_flight {}", self.in_flight());
        s.push_str("# HELP dbl_queue_rejected_total Requests answered 503 (queue full).\n");
        s.push_str("# TYPE dbl_queue_rejected_total counter\n");
        let _ = writeln!(
            s,
            "dbl_queue_rejected_total {}",
            self.rejected.load(Ordering::Relaxed)
        );
        s
    }
}
