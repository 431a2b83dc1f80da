//! Reading a request body under the service's bounds (issue 25 §1–2):
//! - a declared `Content-Length` over the limit is refused at once, before
//!   a byte of the body is read (so hyper never sends `100 Continue` to an
//!   `Expect: 100-continue` client);
//! - a body that does not arrive within the body timeout is abandoned;
//! - the bytes of all bodies being read or handled at once stay within a
//!   budget ([`BodyBudget`], a semaphore counting bytes): a body is admitted
//!   by its declared length up front, or chunk by chunk as it arrives, and
//!   its bytes stay reserved until the request's [`Reserved`] is dropped.
//!
//! tower-http's `RequestBodyLimitLayer` would cover the first point only, and
//! answers plain text where this service answers JSON; hyper has no body
//! timeout. Hence this small reader over `http_body_util`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;
use thiserror::Error;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a body was not read.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum BodyError {
    /// Declared or actual length over the limit (413).
    #[error("request body over {limit} bytes")]
    TooLarge {
        /// The limit, bytes.
        limit: usize,
    },
    /// The body did not arrive in time (408).
    #[error("request body not received within {secs} s")]
    Timeout {
        /// The timeout, seconds.
        secs: f64,
    },
    /// Admitting it would exceed the bytes budget (503).
    #[error("server busy: {budget} bytes of request bodies are already being handled; retry later")]
    Busy {
        /// The budget, bytes.
        budget: usize,
    },
    /// The connection failed mid-body (400).
    #[error("reading the request body: {0}")]
    Read(String),
}

/// The bytes of request bodies the service holds at once.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    sem: Arc<Semaphore>,
    bytes: usize,
}

/// Bytes reserved for one request; released when dropped.
#[derive(Debug, Default)]
pub struct Reserved(Option<OwnedSemaphorePermit>);

impl Reserved {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }
}

impl BodyBudget {
    /// A budget of `bytes` (must not exceed `u32::MAX` per request, which the
    /// service's body limit guarantees).
    pub fn new(bytes: usize) -> Self {
        BodyBudget {
            sem: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))),
            bytes,
        }
    }

    /// Bytes not reserved now.
    pub fn available(&self) -> usize {
        self.sem.available_permits()
    }

    /// Adds `n` bytes to `held`, or Busy.
    fn reserve(&self, held: &mut Reserved, n: usize) -> Result<(), BodyError> {
        if n == 0 {
            return Ok(());
        }
        let busy = BodyError::Busy { budget: self.bytes };
        let n = u32::try_from(n).map_err(|_| busy.clone())?;
        let p = self
            .sem
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| busy)?;
        match &mut held.0 {
            Some(h) => h.merge(p),
            None => held.0 = Some(p),
        }
        Ok(())
    }
}

/// The `Content-Length` a request declares (None: absent or unreadable;
/// hyper itself rejects a malformed one).
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Reads `body` (at most `limit` bytes, within `timeout`) with its bytes
/// reserved from `budget`: → (the bytes, the reservation to hold while the
/// request is handled).
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
    budget: &BodyBudget,
) -> Result<(Vec<u8>, Reserved), BodyError> {
    let declared = declared_length(headers);
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut held = Reserved::default();
    // Cannot truncate: at most `limit`, a usize.
    let declared = declared.map_or(0, |n| n as usize);
    budget.reserve(&mut held, declared)?;
    let mut buf = Vec::with_capacity(declared);
    let read = async {
        let mut body = body;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let len = buf.len() + data.len();
            if len > limit {
                return Err(BodyError::TooLarge { limit });
            }
            let more = len.saturating_sub(held.bytes());
            budget.reserve(&mut held, more)?;
            buf.extend_from_slice(&data);
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(BodyError::Timeout {
                secs: timeout.as_secs_f64(),
            });
        }
    }
    Ok((buf, held))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(len: Option<usize>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(n) = len {
            h.insert(header::CONTENT_LENGTH, n.into());
        }
        h
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn bytes_are_held_until_dropped_and_the_budget_refuses_more() {
        rt().block_on(async {
            let b = BodyBudget::new(100);
            let t = Duration::from_secs(5);
            let (bytes, held) = read_body(&headers(Some(60)), Body::from(vec![1u8; 60]), 80, t, &b)
                .await
                .unwrap();
            assert_eq!((bytes.len(), held.bytes(), b.available()), (60, 60, 40));
            let second = read_body(&headers(Some(60)), Body::from(vec![1u8; 60]), 80, t, &b).await;
            assert_eq!(second.unwrap_err(), BodyError::Busy { budget: 100 });
            // Without a declared length the bytes are reserved as they arrive.
            let third = read_body(&headers(None), Body::from(vec![1u8; 50]), 80, t, &b).await;
            assert_eq!(third.unwrap_err(), BodyError::Busy { budget: 100 });
            assert_eq!(b.available(), 40, "a refused body holds nothing");
            drop(held);
            assert_eq!(b.available(), 100);
            let over = read_body(&headers(Some(81)), Body::empty(), 80, t, &b).await;
            assert_eq!(over.unwrap_err(), BodyError::TooLarge { limit: 80 });
        });
    }
}
