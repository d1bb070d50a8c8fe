//! Reading an ingest request body within three bounds:
//!
//! * **size** — a declared `Content-Length` over `ingest.max_body_bytes` is refused before a
//!   byte is read, and a body that grows past it while streaming is cut off (413);
//! * **time** — the whole body must arrive within `ingest.body_timeout_secs`; a sender that
//!   drips bytes is answered 408 and its connection closed, so it holds its connection and
//!   its producer's slot for that long at most, and never an ingest permit (taken after the
//!   body is read);
//! * **memory** — every body being read reserves its bytes from one gateway-wide budget
//!   (`ingest.max_buffered_body_bytes`): the declared length up front, and chunked bodies as
//!   they grow. When the budget is spent the request is answered 503 with `Retry-After`, so
//!   memory is bounded however many senders there are.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use bytes::BytesMut;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{ApiError, ApiResult};

/// How a body may be read.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub timeout: Duration,
    /// `Retry-After` when the budget is spent.
    pub retry_after_secs: u64,
}

/// The bytes all bodies being read may hold together.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

/// A share of the budget, returned when dropped.
#[derive(Debug)]
struct Reservation {
    budget: BodyBudget,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.budget.report();
    }
}

/// A body read in full, with its share of the budget (released when dropped).
#[derive(Debug)]
pub struct ReadBody {
    pub bytes: Bytes,
    _reserved: Reservation,
}

impl BodyBudget {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(max_bytes)),
            total: max_bytes,
        }
    }

    /// Bytes not reserved by any body.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    fn report(&self) {
        metrics::gauge!("gateway_ingest_body_bytes_reserved")
            .set((self.total - self.available()) as f64);
    }

    /// Grows `reserved` by `more` bytes, or the 503 saying the gateway is full.
    fn reserve(
        &self,
        reserved: &mut Reservation,
        more: usize,
        retry_after_secs: u64,
    ) -> ApiResult<()> {
        if more == 0 {
            return Ok(());
        }
        let permit = u32::try_from(more)
            .ok()
            .and_then(|more| self.bytes.clone().try_acquire_many_owned(more).ok())
            .ok_or_else(|| {
                metrics::counter!("gateway_shed_requests_total", "reason" => "body_budget")
                    .increment(1);
                ApiError::unavailable(
                    "the gateway is reading too many request bodies at once",
                    retry_after_secs,
                )
            })?;
        match &mut reserved.permit {
            Some(held) => held.merge(permit),
            None => reserved.permit = Some(permit),
        }
        self.report();
        Ok(())
    }
}

/// Reads `body` within `limits`, reserving its bytes from `budget`.
pub async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limits: BodyLimits,
    budget: &BodyBudget,
) -> ApiResult<ReadBody> {
    let too_large =
        || ApiError::PayloadTooLarge(format!("request body exceeds {} bytes", limits.max_bytes));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limits.max_bytes) {
        return Err(too_large());
    }
    let mut reserved = Reservation {
        budget: budget.clone(),
        permit: None,
    };
    let mut reserved_bytes = declared.unwrap_or(0);
    budget.reserve(&mut reserved, reserved_bytes, limits.retry_after_secs)?;

    let deadline = tokio::time::Instant::now() + limits.timeout;
    let mut buffer = BytesMut::with_capacity(reserved_bytes);
    let mut body = body;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_elapsed) => {
                metrics::counter!("gateway_body_timeouts_total").increment(1);
                return Err(ApiError::RequestTimeout(format!(
                    "the request body did not arrive within {} s ({} bytes received)",
                    limits.timeout.as_secs(),
                    buffer.len()
                )));
            }
            Ok(None) => break,
            Ok(Some(Err(error))) => {
                if is_length_limit(&error) {
                    return Err(too_large());
                }
                return Err(ApiError::Malformed(format!(
                    "could not read the request body: {error}"
                )));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing we use
        };
        let length = buffer.len() + data.len();
        if length > limits.max_bytes {
            return Err(too_large());
        }
        if length > reserved_bytes {
            budget.reserve(
                &mut reserved,
                length - reserved_bytes,
                limits.retry_after_secs,
            )?;
            reserved_bytes = length;
        }
        buffer.extend_from_slice(&data);
    }
    Ok(ReadBody {
        bytes: buffer.freeze(),
        _reserved: reserved,
    })
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::convert::Infallible;

    use futures::StreamExt;

    use super::*;

    fn limits() -> BodyLimits {
        BodyLimits {
            max_bytes: 1024,
            timeout: Duration::from_secs(10),
            retry_after_secs: 1,
        }
    }

    fn with_length(length: usize) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, length.into());
        headers
    }

    /// A chunked body of `chunks`, each arriving after `every`.
    fn dripping(chunks: usize, every: Duration) -> Body {
        let stream = futures::stream::iter(0..chunks).then(move |_| async move {
            tokio::time::sleep(every).await;
            Ok::<_, Infallible>(Bytes::from_static(b"x"))
        });
        Body::from_stream(stream)
    }

    #[tokio::test]
    async fn a_body_is_read_and_its_bytes_reserved_until_dropped() {
        let budget = BodyBudget::new(4096);
        let read = read_body(Body::from("{}"), &with_length(2), limits(), &budget)
            .await
            .unwrap();
        assert_eq!(&read.bytes[..], b"{}");
        assert_eq!(budget.available(), 4094);
        drop(read);
        assert_eq!(budget.available(), 4096);
    }

    #[tokio::test]
    async fn an_oversized_body_is_refused_declared_or_streamed() {
        let budget = BodyBudget::new(1 << 20);
        let declared = read_body(Body::from("x"), &with_length(2048), limits(), &budget).await;
        assert!(matches!(declared, Err(ApiError::PayloadTooLarge(_))));
        let streamed = read_body(
            Body::from(vec![b'x'; 2048]),
            &HeaderMap::new(),
            limits(),
            &budget,
        )
        .await;
        assert!(matches!(streamed, Err(ApiError::PayloadTooLarge(_))));
        assert_eq!(budget.available(), 1 << 20, "nothing stays reserved");
    }

    #[tokio::test]
    async fn a_dripping_body_gets_a_408() {
        let budget = BodyBudget::new(4096);
        // A byte every 100 ms for 10 s, against a 1 s deadline.
        let body = dripping(100, Duration::from_millis(100));
        let limits = BodyLimits {
            timeout: Duration::from_secs(1),
            ..limits()
        };
        let result = read_body(body, &HeaderMap::new(), limits, &budget).await;
        match result {
            Err(ApiError::RequestTimeout(message)) => {
                assert!(message.contains("within 1 s"), "{message}");
                assert!(message.contains("bytes received"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(budget.available(), 4096);
    }

    #[tokio::test]
    async fn a_spent_budget_is_a_503_and_chunked_bodies_are_counted_as_they_grow() {
        let budget = BodyBudget::new(1500);
        let held = read_body(
            Body::from(vec![b'x'; 1000]),
            &with_length(1000),
            limits(),
            &budget,
        )
        .await
        .unwrap();
        let refused = read_body(Body::from("x"), &with_length(600), limits(), &budget).await;
        assert!(
            matches!(refused, Err(ApiError::Unavailable { .. })),
            "{refused:?}"
        );
        let chunked = read_body(
            Body::from(vec![b'x'; 600]),
            &HeaderMap::new(),
            limits(),
            &budget,
        )
        .await;
        assert!(
            matches!(chunked, Err(ApiError::Unavailable { .. })),
            "{chunked:?}"
        );
        drop(held);
        assert!(
            read_body(
                Body::from(vec![b'x'; 600]),
                &HeaderMap::new(),
                limits(),
                &budget
            )
            .await
            .is_ok()
        );
    }
}
