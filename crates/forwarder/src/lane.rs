//! A lane delivers the events of one destination, in order, one request at a time.
//!
//! There are two lanes per destination and process: the **main** lane fed by the events
//! consumer, and the **retry** lane fed by the retry consumer with parked events that are due.
//!
//! A lane cuts batches within the destination's [`BatchLimits`] (or when the first event has
//! waited `linger_ms`), sends them, and acts on the classifier's verdict:
//!
//! | verdict | action |
//! |---|---|
//! | delivered | acknowledge the events |
//! | partial (Wazuh) | acknowledge the accepted ones, retry only the refused ones |
//! | poison at *i* (HEC `invalid-event-number`) | acknowledge those before *i*, dead-letter *i*, resend the rest at once |
//! | poison somewhere, too large (400, 413) | split the batch in halves until the bad event is alone, dead-letter it |
//! | retriable | retry in memory with backoff (`in_memory_attempts`, `in_memory_budget_ms`), then **park** |
//! | misconfigured | ask for a pause, park everything with reason `paused` |
//!
//! The main lane's modes: **direct** (healthy); **parking** (after the in-memory budget): every
//! new batch is parked on the retry topic so the consumer never waits for this destination,
//! except one probe batch sent directly each backoff interval — a success (or a success of
//! the retry lane) returns to direct; **paused** (settings say so): everything is parked with
//! reason `paused` until an operator resumes the destination. The retry lane has no in-memory
//! retries: a failure re-parks the events with the next attempt time and closes the
//! destination's retry circuit until then.
//!
//! Before sending, events whose partition was revoked are dropped (their new owner re-reads
//! them) and events older than `max_event_age_secs` are dead-lettered.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use audit_settings::{Destination, DestinationState};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backoff::BackoffEngine;
use crate::config::RetryConfig;
use crate::delivery::{Delivery, ParkReason};
use crate::health::{DestinationShared, PauseRequest};
use crate::offsets::Ack;
use crate::parking::{DeadInfo, ParkInfo, Parker};
use crate::signing::batch_message_id;
use crate::sinks::{Attempt, BatchLimits, Sink, SinkContext, Verdict};

/// Which consumer feeds the lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Main,
    Retry,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Main => "main",
            Role::Retry => "retry",
        }
    }
}

/// What a lane receives, in order.
#[derive(Debug)]
pub enum LaneInput {
    Deliver(Delivery),
    /// The destination's settings changed; `None` when it was deleted or disabled (the events
    /// still queued are dead-lettered, so a replay can send them if it is re-enabled).
    Configure(Option<Arc<Destination>>),
}

/// What every lane shares.
pub struct LaneContext {
    pub sinks: SinkContext,
    pub parker: Parker,
    pub backoff: BackoffEngine,
    pub retry: RetryConfig,
    pub linger: Duration,
    pub max_event_age: Duration,
    pub shutdown: CancellationToken,
}

/// One event and its encoding for the destination.
struct Item {
    delivery: Delivery,
    encoded: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Direct,
    Parking {
        probe_at: Instant,
        attempts: u32,
        since_ms: i64,
    },
    Paused,
}

/// Per-lane metric handles (created once).
struct LaneMetrics {
    delivered: metrics::Counter,
    parked: metrics::Counter,
    dead_lettered: metrics::Counter,
    retries: metrics::Counter,
    stale: metrics::Counter,
    batch_rows: metrics::Histogram,
    batch_bytes: metrics::Histogram,
    request_seconds: metrics::Histogram,
    latency_seconds: metrics::Histogram,
    labels: Vec<(&'static str, String)>,
}

impl LaneMetrics {
    fn new(org_id: &str, destination: &Destination, role: Role) -> Self {
        let labels = vec![
            ("org_id", org_id.to_string()),
            ("destination_id", destination.id.clone()),
            (
                "destination_type",
                destination.config.type_name().to_string(),
            ),
            ("lane", role.as_str().to_string()),
        ];
        let type_only = [(
            "destination_type",
            destination.config.type_name().to_string(),
        )];
        Self {
            delivered: metrics::counter!("forwarder_delivered_total", &labels),
            parked: metrics::counter!("forwarder_parked_total", &labels),
            dead_lettered: metrics::counter!("forwarder_dead_lettered_total", &labels),
            retries: metrics::counter!("forwarder_retries_total", &labels),
            stale: metrics::counter!("forwarder_dropped_revoked_total", &labels),
            batch_rows: metrics::histogram!("forwarder_batch_rows", &type_only),
            batch_bytes: metrics::histogram!("forwarder_batch_bytes", &type_only),
            request_seconds: metrics::histogram!("forwarder_request_seconds", &type_only),
            latency_seconds: metrics::histogram!("forwarder_delivery_latency_seconds", &type_only),
            labels,
        }
    }

    fn request(&self, attempt: &Attempt) {
        let mut labels = self.labels.clone();
        labels.push(("class", attempt.verdict.class().to_string()));
        metrics::counter!("forwarder_requests_total", &labels).increment(1);
        if !attempt.is_delivered() {
            metrics::counter!("forwarder_failures_total", &labels).increment(1);
        }
        self.request_seconds.record(attempt.latency.as_secs_f64());
    }
}

/// Everything needed to start a lane.
pub struct LaneSpec {
    pub role: Role,
    pub org_id: String,
    pub destination: Arc<Destination>,
    pub shared: Arc<DestinationShared>,
    pub context: Arc<LaneContext>,
    pub input: mpsc::Receiver<LaneInput>,
    /// Set by the consumer when it parks this lane's events itself (queue full too long);
    /// cleared by the lane when its queue is empty again.
    pub overflowing: Arc<AtomicBool>,
    /// When the lane's request in flight was sent (unix ms), 0 when none is: the consumer
    /// does not wait for a full lane whose destination has not answered for long.
    pub sending_since_ms: Arc<AtomicI64>,
}

pub struct Lane {
    role: Role,
    org_id: String,
    destination: Arc<Destination>,
    /// The sink, or why it cannot be built (then the destination is misconfigured).
    sink: Result<Sink, String>,
    retired: bool,
    mode: Mode,
    shared: Arc<DestinationShared>,
    context: Arc<LaneContext>,
    input: mpsc::Receiver<LaneInput>,
    overflowing: Arc<AtomicBool>,
    sending_since_ms: Arc<AtomicI64>,
    carry: Option<Item>,
    pending_configure: Option<Option<Arc<Destination>>>,
    metrics: LaneMetrics,
}

impl Lane {
    pub fn new(spec: LaneSpec) -> Self {
        let metrics = LaneMetrics::new(&spec.org_id, &spec.destination, spec.role);
        let mut lane = Self {
            role: spec.role,
            org_id: spec.org_id,
            destination: spec.destination.clone(),
            sink: Err("not built".into()),
            retired: false,
            mode: Mode::Direct,
            shared: spec.shared,
            context: spec.context,
            input: spec.input,
            overflowing: spec.overflowing,
            sending_since_ms: spec.sending_since_ms,
            carry: None,
            pending_configure: None,
            metrics,
        };
        lane.configure(Some(spec.destination));
        lane
    }

    /// Runs until the router drops the lane's sender and the queue is empty.
    pub async fn run(mut self) {
        loop {
            let Some(batch) = self.gather().await else {
                break;
            };
            if !batch.is_empty() {
                self.process(batch).await;
            }
            if let Some(configure) = self.pending_configure.take() {
                self.configure(configure);
            }
            if self.input.is_empty() && self.carry.is_none() {
                self.overflowing.store(false, Ordering::Relaxed);
            }
        }
        tracing::debug!(destination_id = %self.destination.id, lane = self.role.as_str(), "lane stopped");
    }

    fn configure(&mut self, destination: Option<Arc<Destination>>) {
        let Some(destination) = destination else {
            self.retired = true;
            return;
        };
        self.retired = false;
        self.destination = destination.clone();
        self.sink = Sink::build(
            &self.org_id,
            &destination,
            &self.context.sinks,
            &self.shared.sink_state,
        )
        .map_err(|error| error.to_string());
        let paused_in_settings = matches!(destination.state, DestinationState::Paused { .. });
        match (&self.sink, paused_in_settings) {
            (_, true) => self.mode = Mode::Paused,
            (Err(reason), false) => {
                tracing::warn!(destination_id = %destination.id, %reason, "destination cannot be used; pausing it");
                self.shared.request_pause(PauseRequest {
                    reason: format!("misconfigured: {reason}"),
                    last_status: None,
                });
                self.mode = Mode::Paused;
            }
            (Ok(_), false) => {
                if self.mode == Mode::Paused {
                    tracing::info!(destination_id = %destination.id, lane = self.role.as_str(), "destination active again");
                    self.mode = Mode::Direct;
                }
            }
        }
    }

    fn limits(&self) -> BatchLimits {
        match &self.sink {
            Ok(sink) => sink.limits(),
            Err(_) => BatchLimits {
                max_events: 1_000,
                max_bytes: 4 * 1024 * 1024,
                max_event_bytes: usize::MAX,
            },
        }
    }

    /// Whether events are encoded for sending (not when they can only be parked or dropped).
    fn encodes(&self) -> bool {
        !self.retired && self.mode != Mode::Paused && self.sink.is_ok()
    }

    fn item(&self, delivery: Delivery) -> Item {
        let encoded = match (&self.sink, self.encodes()) {
            (Ok(sink), true) => sink.encode(&delivery.event),
            _ => Vec::new(),
        };
        Item { delivery, encoded }
    }

    fn item_len(item: &Item) -> usize {
        if item.encoded.is_empty() {
            item.delivery.event.json.len()
        } else {
            item.encoded.len()
        }
    }

    fn framed_len(&self, bytes: usize, count: usize) -> usize {
        match &self.sink {
            Ok(sink) => sink.framed_len(bytes, count),
            Err(_) => bytes,
        }
    }

    /// The next batch: waits for a first event, then takes more until a limit is reached or
    /// the first has waited `linger`. `None` when the lane is closed and empty.
    async fn gather(&mut self) -> Option<Vec<Item>> {
        let limits = self.limits();
        let mut batch: Vec<Item> = Vec::new();
        let mut bytes = 0;
        if let Some(item) = self.carry.take() {
            bytes += Self::item_len(&item);
            batch.push(item);
        }
        if batch.is_empty() {
            match self.input.recv().await? {
                LaneInput::Configure(destination) => {
                    self.pending_configure = Some(destination);
                    return Some(Vec::new());
                }
                LaneInput::Deliver(delivery) => {
                    let item = self.item(delivery);
                    bytes += Self::item_len(&item);
                    batch.push(item);
                }
            }
        }
        let deadline = tokio::time::Instant::now() + self.context.linger;
        while batch.len() < limits.max_events
            && self.framed_len(bytes, batch.len()) < limits.max_bytes
        {
            let next = match self.input.try_recv() {
                Ok(next) => next,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    match tokio::time::timeout_at(deadline, self.input.recv()).await {
                        Ok(Some(next)) => next,
                        Ok(None) | Err(_) => break,
                    }
                }
            };
            match next {
                LaneInput::Configure(destination) => {
                    self.pending_configure = Some(destination);
                    break;
                }
                LaneInput::Deliver(delivery) => {
                    let item = self.item(delivery);
                    let len = Self::item_len(&item);
                    if self.framed_len(bytes + len, batch.len() + 1) > limits.max_bytes {
                        self.carry = Some(item);
                        break;
                    }
                    bytes += len;
                    batch.push(item);
                }
            }
        }
        Some(batch)
    }

    async fn process(&mut self, batch: Vec<Item>) {
        let now_ms = crate::now_ms();
        let max_age_ms = i64::try_from(self.context.max_event_age.as_millis()).unwrap_or(i64::MAX);
        let limits = self.limits();
        let mut ready = Vec::with_capacity(batch.len());
        for item in batch {
            if !item.delivery.is_current() {
                // The partition went to another instance, which re-reads the event.
                self.metrics.stale.increment(1);
                self.shared.queued(-1);
                continue;
            }
            if self.retired {
                self.dead_letter(
                    item,
                    "the destination was deleted or disabled before the event was delivered".into(),
                    None,
                )
                .await;
                continue;
            }
            if now_ms - item.delivery.event.received_at_ms > max_age_ms {
                let reason = format!(
                    "older than max_event_age ({} s) and not delivered",
                    self.context.max_event_age.as_secs()
                );
                self.dead_letter(item, reason, None).await;
                continue;
            }
            if !item.encoded.is_empty() && item.encoded.len() > limits.max_event_bytes {
                let reason = format!(
                    "the event's encoding is {} bytes, over the destination's limit of {} bytes",
                    item.encoded.len(),
                    limits.max_event_bytes
                );
                self.dead_letter(item, reason, None).await;
                continue;
            }
            ready.push(item);
        }
        if ready.is_empty() {
            return;
        }
        match self.mode {
            Mode::Paused => {
                let next = now_ms + ms(Duration::from_secs(self.context.retry.paused_recheck_secs));
                self.park(ready, ParkReason::Paused, None, Some(next), None)
                    .await;
            }
            Mode::Parking {
                probe_at,
                attempts,
                since_ms,
            } => {
                if self.shared.last_success_ms() > since_ms {
                    // The retry lane got through: the destination is back.
                    self.set_mode(Mode::Direct);
                    self.deliver(ready, false).await;
                } else if Instant::now() >= probe_at {
                    self.deliver(ready, true).await;
                } else {
                    let next = now_ms + ms(probe_at.saturating_duration_since(Instant::now()));
                    self.park(ready, ParkReason::Failing, Some(attempts), Some(next), None)
                        .await;
                }
            }
            Mode::Direct => self.deliver(ready, false).await,
        }
    }

    fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
        self.shared
            .set_parking(matches!(mode, Mode::Parking { .. }));
    }

    /// Sends `items` with splitting, poison isolation and in-memory retries.
    async fn deliver(&mut self, items: Vec<Item>, probe: bool) {
        let mut work: VecDeque<Vec<Item>> = VecDeque::from([items]);
        while let Some(mut batch) = work.pop_front() {
            let mut failures: u32 = 0;
            let started = Instant::now();
            while !batch.is_empty() {
                let attempt = self.send(&batch).await;
                match attempt.verdict.clone() {
                    Verdict::Delivered => {
                        self.delivered(batch);
                        if matches!(self.mode, Mode::Parking { .. }) {
                            tracing::info!(destination_id = %self.destination.id, "destination recovered; delivering directly again");
                            self.set_mode(Mode::Direct);
                        }
                        break;
                    }
                    Verdict::Partial { failed } => {
                        let (refused, accepted): (Vec<_>, Vec<_>) = batch
                            .into_iter()
                            .enumerate()
                            .partition(|(index, _)| failed.contains(index));
                        self.delivered(accepted.into_iter().map(|(_, item)| item).collect());
                        batch = refused.into_iter().map(|(_, item)| item).collect();
                        failures += 1;
                        self.shared.failed(&attempt);
                        if !self
                            .retry_in_memory(failures, started, probe, &attempt)
                            .await
                        {
                            work.push_front(batch);
                            self.give_up(work, failures, &attempt).await;
                            return;
                        }
                    }
                    Verdict::PoisonAt { index } if index < batch.len() => {
                        let rest = batch.split_off(index + 1);
                        let poison = batch.pop();
                        self.delivered(batch);
                        if let Some(poison) = poison {
                            let reason = format!(
                                "refused by the destination as invalid (event {index} of its batch)"
                            );
                            self.dead_letter(poison, reason, Some(&attempt)).await;
                        }
                        batch = rest;
                    }
                    Verdict::PoisonAt { .. } | Verdict::PoisonSomewhere | Verdict::TooLarge => {
                        if batch.len() == 1 {
                            let reason = if attempt.verdict == Verdict::TooLarge {
                                "too large for the destination even alone".to_string()
                            } else {
                                "refused by the destination as invalid".to_string()
                            };
                            for item in batch {
                                self.dead_letter(item, reason.clone(), Some(&attempt)).await;
                            }
                            break;
                        }
                        // Split and resend each half, in order, until the bad event is alone.
                        let second = batch.split_off(batch.len() / 2);
                        work.push_front(second);
                        work.push_front(batch);
                        break;
                    }
                    Verdict::Retriable => {
                        failures += 1;
                        self.shared.failed(&attempt);
                        if !self
                            .retry_in_memory(failures, started, probe, &attempt)
                            .await
                        {
                            work.push_front(batch);
                            self.give_up(work, failures, &attempt).await;
                            return;
                        }
                    }
                    Verdict::Misconfigured => {
                        self.shared.failed(&attempt);
                        tracing::warn!(
                            destination_id = %self.destination.id,
                            status = %attempt.status,
                            excerpt = %attempt.excerpt,
                            "destination misconfigured; pausing it and keeping its events parked"
                        );
                        self.shared.request_pause(PauseRequest {
                            reason: format!(
                                "misconfigured: HTTP {} {}",
                                attempt.status, attempt.excerpt
                            ),
                            last_status: Some(attempt.status.clone()),
                        });
                        self.set_mode(Mode::Paused);
                        work.push_front(batch);
                        let next = crate::now_ms()
                            + ms(Duration::from_secs(self.context.retry.paused_recheck_secs));
                        for batch in work {
                            self.park(batch, ParkReason::Paused, None, Some(next), Some(&attempt))
                                .await;
                        }
                        return;
                    }
                }
            }
        }
    }

    /// One request.
    async fn send(&mut self, batch: &[Item]) -> Attempt {
        let message_id = batch_message_id(
            &self.destination.id,
            batch.iter().map(|item| item.delivery.event.id.as_str()),
        );
        let parts: Vec<&[u8]> = batch.iter().map(|item| item.encoded.as_slice()).collect();
        let bytes: usize = parts.iter().map(|part| part.len()).sum();
        self.metrics.batch_rows.record(batch.len() as f64);
        self.metrics.batch_bytes.record(bytes as f64);
        let attempt = match &self.sink {
            Ok(sink) => {
                self.sending_since_ms
                    .store(crate::now_ms(), Ordering::Relaxed);
                let attempt = sink.send(&parts, &message_id).await;
                self.sending_since_ms.store(0, Ordering::Relaxed);
                attempt
            }
            Err(reason) => Attempt {
                verdict: Verdict::Misconfigured,
                status: "config".into(),
                excerpt: reason.clone(),
                retry_after: None,
                latency: Duration::ZERO,
                message_id,
            },
        };
        self.metrics.request(&attempt);
        if !attempt.is_delivered() {
            tracing::info!(
                destination_id = %self.destination.id,
                lane = self.role.as_str(),
                webhook_id = %attempt.message_id,
                events = batch.len(),
                status = %attempt.status,
                verdict = attempt.verdict.class(),
                excerpt = %attempt.excerpt,
                "delivery attempt failed"
            );
        }
        attempt
    }

    /// Waits before retrying in memory; false when the budget is spent (or shutting down).
    async fn retry_in_memory(
        &mut self,
        failures: u32,
        started: Instant,
        probe: bool,
        attempt: &Attempt,
    ) -> bool {
        let budget_attempts = if probe || self.role == Role::Retry {
            1
        } else {
            self.context.retry.in_memory_attempts
        };
        if failures >= budget_attempts {
            return false;
        }
        let delay = self.context.backoff.delay(failures, attempt.retry_after);
        let budget = Duration::from_millis(self.context.retry.in_memory_budget_ms);
        if started.elapsed() + delay > budget {
            return false;
        }
        self.metrics.retries.increment(1);
        tokio::select! {
            _ = self.context.shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }

    /// The in-memory budget is spent: park everything left, and (main lane) park new batches
    /// too until a probe or the retry lane succeeds.
    async fn give_up(&mut self, work: VecDeque<Vec<Item>>, failures: u32, attempt: &Attempt) {
        let now_ms = crate::now_ms();
        match self.role {
            Role::Main => {
                let previous = match self.mode {
                    Mode::Parking { attempts, .. } => attempts,
                    _ => 0,
                };
                let attempts = previous + failures;
                let delay = self.context.backoff.delay(attempts, attempt.retry_after);
                if !matches!(self.mode, Mode::Parking { .. }) {
                    tracing::warn!(
                        destination_id = %self.destination.id,
                        status = %attempt.status,
                        retry_in_ms = delay.as_millis() as u64,
                        "destination failing past the in-memory budget; parking its events on the retry topic"
                    );
                }
                self.set_mode(Mode::Parking {
                    probe_at: Instant::now() + delay,
                    attempts,
                    since_ms: now_ms,
                });
                for batch in work {
                    self.park(
                        batch,
                        ParkReason::Failing,
                        Some(failures),
                        Some(now_ms + ms(delay)),
                        Some(attempt),
                    )
                    .await;
                }
            }
            Role::Retry => {
                // Each event's own attempt count decides its next time; the circuit keeps
                // the retry consumer from trying this destination again before then.
                let mut latest = now_ms;
                for batch in work {
                    for item in batch {
                        let attempts = item.delivery.attempt + failures;
                        let next =
                            now_ms + ms(self.context.backoff.delay(attempts, attempt.retry_after));
                        latest = latest.max(next);
                        self.park(
                            vec![item],
                            ParkReason::Failing,
                            Some(failures),
                            Some(next),
                            Some(attempt),
                        )
                        .await;
                    }
                }
                self.shared.block_retries_until(latest);
            }
        }
    }

    fn delivered(&mut self, items: Vec<Item>) {
        if items.is_empty() {
            return;
        }
        let now_ms = crate::now_ms();
        Ack::all(items.iter().filter_map(|item| item.delivery.ack.as_ref()));
        let count = items.len() as u64;
        for item in &items {
            let age_ms = (now_ms - item.delivery.event.received_at_ms).max(0);
            self.metrics.latency_seconds.record(age_ms as f64 / 1000.0);
        }
        self.metrics.delivered.increment(count);
        self.shared.delivered(count);
        self.shared.queued(-(count as i64));
        if self.role == Role::Retry {
            self.shared.unparked(count);
        }
    }

    /// Parks items: `added_attempts` failures are added to each event's count (`None`: keep
    /// it), next attempt at `next_ms` (default: the backoff of the event's count).
    async fn park(
        &mut self,
        items: Vec<Item>,
        reason: ParkReason,
        added_attempts: Option<u32>,
        next_ms: Option<i64>,
        attempt: Option<&Attempt>,
    ) {
        if items.is_empty() {
            return;
        }
        let now_ms = crate::now_ms();
        // Items of one park call share their attempt count when they are fresh; parked
        // events keep their own.
        let mut groups: Vec<(u32, Vec<&Delivery>)> = Vec::new();
        for item in &items {
            let attempts = item.delivery.attempt + added_attempts.unwrap_or(0);
            match groups.last_mut() {
                Some((count, deliveries)) if *count == attempts => deliveries.push(&item.delivery),
                _ => groups.push((attempts, vec![&item.delivery])),
            }
        }
        for (attempts, deliveries) in groups {
            let next = next_ms
                .unwrap_or_else(|| now_ms + ms(self.context.backoff.delay(attempts.max(1), None)));
            let info = ParkInfo {
                org_id: &self.org_id,
                destination_id: &self.destination.id,
                reason,
                attempt: attempts,
                next_attempt_ms: next,
                last_status: attempt.map(|a| a.status.as_str()),
                last_excerpt: attempt.map(|a| a.excerpt.as_str()),
            };
            let parked = self.context.parker.park(&deliveries, &info).await;
            let count = deliveries.len() as u64;
            self.shared.queued(-(count as i64));
            if parked {
                self.metrics.parked.increment(count);
                self.shared.parked(count);
                if self.role == Role::Retry {
                    self.shared.unparked(count);
                }
            }
        }
    }

    async fn dead_letter(&mut self, item: Item, reason: String, attempt: Option<&Attempt>) {
        let info = DeadInfo {
            destination_id: &self.destination.id,
            reason,
            last_status: attempt.map(|a| a.status.as_str()),
            last_excerpt: attempt.map(|a| a.excerpt.as_str()),
        };
        tracing::warn!(
            destination_id = %self.destination.id,
            event_id = %item.delivery.event.id,
            reason = %info.reason,
            status = ?info.last_status,
            "dead-lettering an event"
        );
        let done = self.context.parker.dead_letter(&item.delivery, &info).await;
        self.shared.queued(-1);
        if done {
            self.metrics.dead_lettered.increment(1);
            self.shared.dead_lettered(1);
            if self.role == Role::Retry {
                self.shared.unparked(1);
            }
        }
    }
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
