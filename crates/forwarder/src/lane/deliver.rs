//! Sending a batch and acting on the destination's verdict: split, isolate poison, retry in
//! memory, give up to the retry topic, pause.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::{Item, Lane, Mode, Role, ms};
use crate::delivery::ParkReason;
use crate::health::PauseRequest;
use audit_sinks::signing::batch_message_id;
use audit_sinks::{Attempt, Verdict};

impl Lane {
    /// Sends `items` with splitting, poison isolation and in-memory retries.
    pub(super) async fn deliver(&mut self, items: Vec<Item>, probe: bool) {
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
                        let next = crate::clock::now_ms()
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
                    .store(crate::clock::now_ms(), Ordering::Relaxed);
                let attempt = sink.send(&parts, &message_id).await;
                self.sending_since_ms.store(0, Ordering::Relaxed);
                attempt
            }
            Err(reason) => Attempt {
                verdict: Verdict::Misconfigured,
                status: "config".into(),
                excerpt: reason.to_string(),
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
        let now_ms = crate::clock::now_ms();
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
}
