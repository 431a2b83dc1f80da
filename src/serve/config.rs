//! [`ServeConfig`]: the HTTP service's limits, with the range of every field
//! ([`ServeConfig::validate`], checked once when the service is built; the
//! CLI parses its flags against the same bounds).

use std::ops::RangeInclusive;
use std::time::Duration;

use super::ServeError;
use super::conn::ConnLimits;

/// Searches that may wait beyond those running.
pub const QUEUE: RangeInclusive<usize> = 0..=65_536;
/// Largest request body, bytes (fits the body budget's u32 reservations).
pub const BODY_LIMIT: RangeInclusive<usize> = 1024..=(256 << 20);
/// Bytes of request bodies held at once (and at least the body limit).
pub const BODY_BUDGET: RangeInclusive<usize> = 1024..=(64 << 30);
/// Default shortlist size K.
pub const SHORTLIST: RangeInclusive<usize> = 1..=1_000_000;
/// Open connections.
pub const MAX_CONNECTIONS: RangeInclusive<usize> = 1..=1_000_000;
/// Header and body timeouts, seconds.
pub const TIMEOUT_SECS: RangeInclusive<f64> = 0.05..=3600.0;
/// Shutdown deadline, seconds.
pub const DEADLINE_SECS: RangeInclusive<f64> = 0.0..=3600.0;

/// Service limits and defaults.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Search threads (the bounded pool): 1 ..= `train::resources::max_threads()`.
    pub workers: usize,
    /// Searches that may wait for a thread beyond those running ([`QUEUE`]).
    pub queue: usize,
    /// Largest request body, bytes ([`BODY_LIMIT`]).
    pub body_limit: usize,
    /// Bytes of request bodies read or handled at once ([`BODY_BUDGET`], and
    /// at least `body_limit`); a body that does not fit gets 503.
    pub body_budget: usize,
    /// Access token (required on every request when set).
    pub token: Option<String>,
    /// Default shortlist size K ([`SHORTLIST`]).
    pub shortlist: usize,
    /// Longest wait for a request head, and keep-alive idle time ([`TIMEOUT_SECS`]).
    pub header_timeout: Duration,
    /// Longest wait for a request body ([`TIMEOUT_SECS`]).
    pub body_timeout: Duration,
    /// Most open connections ([`MAX_CONNECTIONS`]; lowered to the fd limit).
    pub max_connections: usize,
    /// Drain time after shutdown is asked for ([`DEADLINE_SECS`]).
    pub shutdown_deadline: Duration,
    /// Thumbnails `{id}.jpg|jpeg|png` for `GET /images/{id}` (the search page).
    pub image_dir: Option<std::path::PathBuf>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            workers: 2,
            queue: 64,
            body_limit: 4 << 20,
            body_budget: 64 << 20,
            token: None,
            shortlist: 100,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
            shutdown_deadline: Duration::from_secs(10),
            image_dir: None,
        }
    }
}

fn check<T: PartialOrd + std::fmt::Debug>(
    name: &str,
    v: T,
    range: &RangeInclusive<T>,
) -> Result<(), ServeError> {
    if range.contains(&v) {
        Ok(())
    } else {
        Err(ServeError::Usage(format!(
            "serve: {name} = {v:?} is out of range ({:?} ..= {:?})",
            range.start(),
            range.end()
        )))
    }
}

impl ServeConfig {
    /// Checks every field against its range.
    pub fn validate(&self) -> Result<(), ServeError> {
        check(
            "workers",
            self.workers,
            &(1..=crate::train::resources::max_threads()),
        )?;
        check("queue", self.queue, &QUEUE)?;
        check("body_limit", self.body_limit, &BODY_LIMIT)?;
        check(
            "body_budget",
            self.body_budget,
            &(self.body_limit.max(*BODY_BUDGET.start())..=*BODY_BUDGET.end()),
        )?;
        check("shortlist", self.shortlist, &SHORTLIST)?;
        check(
            "header_timeout",
            self.header_timeout.as_secs_f64(),
            &TIMEOUT_SECS,
        )?;
        check(
            "body_timeout",
            self.body_timeout.as_secs_f64(),
            &TIMEOUT_SECS,
        )?;
        check("max_connections", self.max_connections, &MAX_CONNECTIONS)?;
        check(
            "shutdown_deadline",
            self.shutdown_deadline.as_secs_f64(),
            &DEADLINE_SECS,
        )?;
        if let Some(t) = &self.token {
            check_token(t)?;
        }
        Ok(())
    }

    /// The connection bounds.
    pub fn conn_limits(&self, max_connections: usize) -> ConnLimits {
        ConnLimits {
            header_timeout: self.header_timeout,
            max_connections,
            shutdown_deadline: self.shutdown_deadline,
        }
    }
}

/// A token must travel in an `Authorization: Bearer` header: one line of
/// visible ASCII, no spaces.
pub fn check_token(t: &str) -> Result<(), ServeError> {
    if t.is_empty() {
        return Err(ServeError::Usage("the access token is empty".into()));
    }
    if let Some(c) = t.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(ServeError::Usage(format!(
            "the access token holds {c:?}: a token is one line of visible ASCII characters \
             without spaces (an HTTP header cannot carry anything else)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_range_checked() {
        assert!(ServeConfig::default().validate().is_ok());
        let bad = [
            ServeConfig {
                workers: 0,
                ..ServeConfig::default()
            },
            ServeConfig {
                queue: usize::MAX,
                ..ServeConfig::default()
            },
            ServeConfig {
                body_limit: 1 << 40,
                ..ServeConfig::default()
            },
            ServeConfig {
                body_budget: 1,
                ..ServeConfig::default()
            },
            ServeConfig {
                shortlist: 0,
                ..ServeConfig::default()
            },
            ServeConfig {
                header_timeout: Duration::ZERO,
                ..ServeConfig::default()
            },
            ServeConfig {
                max_connections: 0,
                ..ServeConfig::default()
            },
            ServeConfig {
                token: Some("two\nlines".into()),
                ..ServeConfig::default()
            },
            ServeConfig {
                token: Some("caf\u{e9}".into()),
                ..ServeConfig::default()
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }
}
