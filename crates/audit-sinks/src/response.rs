//! A destination's answer, read within bounds: what a customer's receiver sends back can
//! never cost the shared forwarder more than a few KiB, whatever it sends.
//!
//! Every exchange with a destination — each sink's request, Wazuh's login, Splunk's
//! indexer-acknowledgement polls, the operator's test event — goes through [`exchange`]:
//!
//! * **Size.** The body is read up to `[sinks] max_response_bytes` (default 8 KiB: enough to
//!   classify any vendor's answer and keep its excerpt); the rest is never read, and the
//!   connection is dropped instead of being returned to the pool. Wazuh echoes the events it
//!   accepted, so its `/events` answers may be as large as what was sent (see its sink).
//! * **Compression.** Never decoded: the client asks for none (no `Accept-Encoding`, see
//!   [`crate::outbound`]), and a body a receiver compresses anyway is kept as it came; the
//!   excerpt says so and the classifiers judge it by its status. A 2 MB gzip body that would
//!   inflate to 2 GiB therefore costs at most the cap.
//! * **Time.** The client's whole-request timeout (`delivery.request_timeout_ms`) covers the
//!   head and the body, so a receiver that drips bytes is cut there (status `timeout`).
//! * **Head.** hyper refuses response heads over about 400 KiB (HTTP/1.1) and header lists
//!   over 16 KiB (HTTP/2), before we see them: a transport failure (status `request`).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use reqwest::header::CONTENT_ENCODING;

use reqwest::header::HeaderMap;
use time::OffsetDateTime;

use crate::signing::Signer;
use crate::{Attempt, Verdict};

/// Default of `[sinks] max_response_bytes`.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 8 * 1024;

/// What a destination answered, read within bounds.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// The first bytes of the body, at most the cap.
    pub(crate) body: Bytes,
    /// `body` is the whole body.
    pub complete: bool,
    /// The body's `Content-Encoding`, when it is not `identity` (we asked for none).
    pub(crate) encoding: Option<String>,
}

impl Answer {
    /// The body as far as it was read; empty when the receiver compressed it (we cannot read
    /// it without decompressing, which we never do).
    pub fn body(&self) -> &[u8] {
        if self.encoding.is_some() {
            return &[];
        }
        &self.body
    }

    /// A short single-line description of the body, for health, dead letters and logs.
    pub fn excerpt(&self) -> String {
        match &self.encoding {
            Some(encoding) => format!(
                "({} bytes of a {encoding}-encoded body, not decoded{})",
                self.body.len(),
                if self.complete { "" } else { ", more not read" }
            ),
            None => excerpt(&self.body),
        }
    }
}

/// What every sink sends with: its destination's signer, the client every destination shares
/// and the most bytes of an answer it reads (`[sinks] max_response_bytes`).
#[derive(Debug)]
pub struct Sender {
    pub signer: Signer,
    pub client: reqwest::Client,
    pub max_response_bytes: usize,
}

impl Sender {
    /// `request` with `body`, signed under `message_id` ([`Signer::signed`]).
    pub fn signed(
        &self,
        request: reqwest::RequestBuilder,
        message_id: &str,
        body: Bytes,
    ) -> reqwest::RequestBuilder {
        self.signer.signed(request, message_id, body)
    }

    /// The [`exchange`] of `request`, its answer read within `max_response_bytes`.
    pub async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        started: Instant,
        message_id: &str,
    ) -> Result<Answer, Attempt> {
        exchange(request, self.max_response_bytes, started, message_id).await
    }

    /// The [`status_exchange`] of `request`, its answer read within `max_response_bytes`.
    pub async fn status_exchange(
        &self,
        request: reqwest::RequestBuilder,
        started: Instant,
        message_id: &str,
        classify: fn(u16) -> Verdict,
    ) -> Attempt {
        status_exchange(
            request,
            self.max_response_bytes,
            started,
            message_id,
            classify,
        )
        .await
    }
}

/// One request whose answer is judged by its status alone (webhook, Datadog): the
/// [`exchange`], then `classify`.
pub async fn status_exchange(
    request: reqwest::RequestBuilder,
    max_body_bytes: usize,
    started: Instant,
    message_id: &str,
    classify: fn(u16) -> Verdict,
) -> Attempt {
    match exchange(request, max_body_bytes, started, message_id).await {
        Ok(answer) => Attempt::answered(classify(answer.status), &answer, started, message_id),
        Err(failed) => failed,
    }
}

/// Sends `request` and reads the answer within `max_body_bytes`; a request that got no
/// complete answer (connection, timeout, refused head, body cut by the deadline) is the
/// failed [`Attempt`].
pub async fn exchange(
    request: reqwest::RequestBuilder,
    max_body_bytes: usize,
    started: Instant,
    message_id: &str,
) -> Result<Answer, Attempt> {
    let response = request
        .send()
        .await
        .map_err(|error| transport_failure(&error, started, message_id))?;
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    let encoding = response
        .headers()
        .get(CONTENT_ENCODING)
        .map(|value| {
            String::from_utf8_lossy(value.as_bytes())
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|encoding| !encoding.is_empty() && encoding != "identity");
    let announced = response.content_length();
    let (body, complete) = read_capped(response.bytes_stream(), max_body_bytes, announced)
        .await
        .map_err(|error| transport_failure(&error, started, message_id))?;
    Ok(Answer {
        status,
        retry_after,
        body,
        complete,
        encoding,
    })
}

/// The first `limit` bytes of a stream of chunks, and whether that is all of it. Stops
/// reading at the limit; `announced` (the `Content-Length`) tells a body of exactly `limit`
/// bytes from a longer one without reading further.
pub async fn read_capped<S, E>(
    mut chunks: S,
    limit: usize,
    announced: Option<u64>,
) -> Result<(Bytes, bool), E>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let mut body = BytesMut::with_capacity(limit.min(announced.map_or(limit, |len| len as usize)));
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body.freeze(), false));
        }
        body.extend_from_slice(&chunk);
        if body.len() == limit {
            let complete = announced == Some(limit as u64);
            return Ok((body.freeze(), complete));
        }
    }
    Ok((body.freeze(), true))
}

/// Longest response excerpt kept (health, dead-letter headers, logs).
pub const EXCERPT_BYTES: usize = 512;

/// The first [`EXCERPT_BYTES`] of a body, as text on one line.
pub fn excerpt(body: &[u8]) -> String {
    let mut end = body.len().min(EXCERPT_BYTES);
    let text = loop {
        match std::str::from_utf8(&body[..end]) {
            Ok(text) => break text,
            Err(error) if error.valid_up_to() > 0 => end = error.valid_up_to(),
            Err(_) => break "",
        }
    };
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.len() > end {
        line.push('…');
    }
    line
}

/// `Retry-After` of a response, if any.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, OffsetDateTime::now_utc())
}

/// The attempt for a request that got no response (connect error, timeout, …).
pub fn transport_failure(error: &reqwest::Error, started: Instant, message_id: &str) -> Attempt {
    let status = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "request"
    };
    Attempt::described(
        Verdict::Retriable,
        status.to_string(),
        describe_transport_error(error),
        started,
        message_id,
    )
}

/// An error's chain of causes, without the URL (which may carry a query string).
fn describe_transport_error(error: &reqwest::Error) -> String {
    let mut text = error.without_url_ref().to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    excerpt(text.as_bytes())
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut text = self.to_string();
        if let Some(url) = self.url() {
            text = text.replace(url.as_str(), "<url>");
        }
        text
    }
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP-date (RFC 9110).
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let delta = at - now;
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use futures::stream;

    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, String>> + Unpin {
        stream::iter(
            parts
                .iter()
                .map(|part| Ok(Bytes::from_static(part)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn short_bodies_are_read_whole() {
        let (body, complete) = read_capped(chunks(&[b"{\"text\":", b"\"ok\"}"]), 64, None)
            .await
            .unwrap();
        assert_eq!(&body[..], b"{\"text\":\"ok\"}");
        assert!(complete);
    }

    #[tokio::test]
    async fn long_bodies_stop_at_the_limit_without_reading_on() {
        // An endless body: the reader must stop polling once it has the limit.
        let endless = stream::repeat_with(|| Ok::<_, String>(Bytes::from_static(&[b'x'; 1000])));
        let (body, complete) = read_capped(endless, 2500, None).await.unwrap();
        assert_eq!(body.len(), 2500);
        assert!(!complete);
    }

    #[tokio::test]
    async fn a_body_of_exactly_the_limit_is_complete_only_when_announced_so() {
        let (_, complete) = read_capped(chunks(&[b"abcd"]), 4, Some(4)).await.unwrap();
        assert!(complete);
        let (_, complete) = read_capped(chunks(&[b"abcd", b"e"]), 4, None)
            .await
            .unwrap();
        assert!(!complete);
    }

    #[tokio::test]
    async fn errors_while_reading_are_errors() {
        let failing = stream::iter(vec![Ok(Bytes::from_static(b"ab")), Err("cut".to_string())]);
        assert_eq!(read_capped(failing, 64, None).await.unwrap_err(), "cut");
    }

    #[test]
    fn encoded_bodies_are_described_not_shown_or_classified() {
        let answer = Answer {
            status: 500,
            retry_after: None,
            body: Bytes::from_static(&[0x1f, 0x8b, 8, 0, 0, 0]),
            complete: false,
            encoding: Some("gzip".into()),
        };
        assert!(answer.body().is_empty());
        assert_eq!(
            answer.excerpt(),
            "(6 bytes of a gzip-encoded body, not decoded, more not read)"
        );
        let plain = Answer {
            encoding: None,
            body: Bytes::from_static(b"{\"code\":9}"),
            ..answer
        };
        assert_eq!(plain.body(), b"{\"code\":9}");
        assert_eq!(plain.excerpt(), "{\"code\":9}");
    }

    #[test]
    fn parses_both_retry_after_forms() {
        let now = OffsetDateTime::from_unix_timestamp(784_111_777).expect("time");
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:07 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
