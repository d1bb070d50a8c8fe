//! Sends Wazuh batches: paced, with a JWT refreshed before expiry and on 401.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use audit_runtime::Secret;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures::future::BoxFuture;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::event::ForwardEvent;
use crate::response::{Sender, exchange};
use crate::{Attempt, BatchLimits, Payload, Sink, Verdict};

use super::config::WazuhConfig;
use super::{classifier, encoder, request};

/// A logged-in token and when to replace it.
struct Token {
    jwt: Secret,
    refresh_at: Instant,
}

/// What every lane of one Wazuh destination shares: the token and the request pacing.
pub struct WazuhSession {
    token: tokio::sync::Mutex<Option<Token>>,
    pacing: DefaultDirectRateLimiter,
    logins: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for WazuhSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WazuhSession").finish_non_exhaustive()
    }
}

impl WazuhSession {
    /// A session pacing `/events` requests evenly at `requests_per_minute`.
    pub fn new(requests_per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(requests_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let period = Duration::from_secs(60) / per_minute.get();
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_minute(per_minute))
            .allow_burst(NonZeroU32::MIN);
        Self {
            token: tokio::sync::Mutex::new(None),
            pacing: RateLimiter::direct(quota),
            logins: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many times this session logged in (for tests and metrics).
    pub fn logins(&self) -> u64 {
        self.logins.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub struct WazuhSink {
    config: WazuhConfig,
    /// Reads at most `[sinks] max_response_bytes` of an answer, beyond the echo of the events
    /// sent (see [`WazuhSink::events_answer_limit`]).
    sender: Sender,
    session: std::sync::Arc<WazuhSession>,
}

impl WazuhSink {
    pub fn new(config: WazuhConfig, sender: Sender, session: std::sync::Arc<WazuhSession>) -> Self {
        Self {
            config,
            sender,
            session,
        }
    }

    /// How much of an `/events` answer is read: Wazuh lists every event it accepted or
    /// refused (`affected_items`, `failed_items`), each as the JSON string we sent, re-escaped
    /// (at most 3× longer: `\u00e9` for `é`). Bounded by what we sent, not by the receiver.
    fn events_answer_limit(&self, body_len: usize) -> usize {
        body_len
            .saturating_mul(3)
            .saturating_add(self.sender.max_response_bytes)
    }

    /// Sends one batch and classifies the answer.
    pub async fn deliver(&self, parts: &[&[u8]], message_id: &str) -> Attempt {
        let body = Bytes::from(encoder::frame(parts));
        let started = Instant::now();
        let mut relogged = false;
        loop {
            let jwt = match self.token(started, message_id).await {
                Ok(jwt) => jwt,
                Err(attempt) => return attempt,
            };
            self.session.pacing.until_ready().await;
            let request = request::events(
                &self.sender,
                &self.config,
                jwt.expose(),
                message_id,
                body.clone(),
            );
            let limit = self.events_answer_limit(body.len());
            let answer = match exchange(request, limit, started, message_id).await {
                Ok(answer) => answer,
                Err(failed) => return failed,
            };
            let status = answer.status;
            if status == 401 && !relogged {
                // Expired or revoked token: log in again and resend once.
                tracing::info!("wazuh answered 401; logging in again");
                self.forget_token(&jwt).await;
                relogged = true;
                continue;
            }
            let verdict = classifier::classify_answer(&answer, parts);
            return Attempt::answered(verdict, &answer, started, message_id);
        }
    }

    /// The current token, logging in when there is none or it is about to expire.
    async fn token(&self, started: Instant, message_id: &str) -> Result<Secret, Attempt> {
        let mut slot = self.session.token.lock().await;
        if let Some(token) = slot.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(token.jwt.clone());
        }
        let failed = |verdict: Verdict, status: String, excerpt: String, retry_after| Attempt {
            verdict,
            status,
            excerpt,
            retry_after,
            latency: started.elapsed(),
            message_id: message_id.to_string(),
        };
        let request = request::login(&self.sender, &self.config);
        let answer = self.sender.exchange(request, started, message_id).await?;
        let status = answer.status;
        if !(200..300).contains(&status) {
            let verdict = match status {
                408 | 429 | 500..=599 => Verdict::Retriable,
                _ => Verdict::Misconfigured,
            };
            return Err(failed(
                verdict,
                format!("login {status}"),
                answer.excerpt(),
                answer.retry_after,
            ));
        }
        let jwt = parse_login(answer.body()).ok_or_else(|| {
            failed(
                Verdict::Misconfigured,
                format!("login {status}"),
                "the login answer holds no token".into(),
                None,
            )
        })?;
        let lifetime = token_lifetime(&jwt).unwrap_or(self.config.default_token_lifetime);
        let margin = self.config.token_refresh_margin.min(lifetime / 2);
        self.session
            .logins
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        metrics::counter!("forwarder_wazuh_logins_total").increment(1);
        let token = Secret::new(jwt);
        *slot = Some(Token {
            jwt: token.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(margin),
        });
        Ok(token)
    }

    async fn forget_token(&self, used: &Secret) {
        let mut slot = self.session.token.lock().await;
        if slot.as_ref().is_some_and(|token| token.jwt == *used) {
            *slot = None;
        }
    }
}

impl Sink for WazuhSink {
    fn limits(&self) -> BatchLimits {
        self.config.limits
    }

    fn encode(&self, _event: &ForwardEvent, payload: Payload<'_>) -> Vec<u8> {
        encoder::encode(payload)
    }

    fn framed_len(&self, bytes: usize, count: usize) -> usize {
        encoder::framed_len(bytes, count)
    }

    fn send<'a>(&'a self, parts: &'a [&'a [u8]], message_id: &'a str) -> BoxFuture<'a, Attempt> {
        Box::pin(self.deliver(parts, message_id))
    }
}

/// The token of a login answer: the bare JWT (`raw=true`) or `{"data":{"token":…}}`.
pub fn parse_login(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?.trim();
    if text.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        return value["data"]["token"].as_str().map(str::to_string);
    }
    (text.split('.').count() == 3).then(|| text.to_string())
}

/// How long a JWT stays valid from now, from its `exp` (and `iat`, against clock skew).
pub fn token_lifetime(jwt: &str) -> Option<Duration> {
    let payload = jwt.split('.').nth(1)?;
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?)
            .ok()?;
    let exp = claims.get("exp")?.as_i64()?;
    let lifetime = match claims.get("iat").and_then(serde_json::Value::as_i64) {
        // Measured from iat: immune to a skew between our clock and the manager's.
        Some(iat) if exp > iat => exp - iat,
        _ => exp - time::OffsetDateTime::now_utc().unix_timestamp(),
    };
    u64::try_from(lifetime).ok().map(Duration::from_secs)
}
