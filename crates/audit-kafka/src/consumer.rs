//! The one shape of a group consumer here (the indexer's, the forwarder's events and retry
//! consumers): a dedicated thread that owns a [`BaseConsumer`] and polls it, offsets committed
//! only by the service (never automatically), rebalances served on that thread between two
//! messages.
//!
//! * [`run`] is the loop: ask the service whether to stop fetching ([`Polling::before_poll`],
//!   back-pressure: the assignment is paused, polling goes on so rebalances are served and
//!   the group keeps the member), poll, hand the message over, let the service do its periodic
//!   work ([`Polling::after_poll`]) — and at shutdown its drain.
//! * [`GroupContext`] is the client context: lag metrics from librdkafka's statistics, client
//!   errors logged, and a revoke that commits what the service says is done for the revoked
//!   partitions *before* they go ([`Partitions`]), so the next owner starts after it.
//! * Offsets are the service's [`crate::offsets::OffsetTracker`]; [`commit`] sends them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::BorrowedMessage;
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};

use crate::StatsContext;

/// How long one poll waits for a message.
pub const POLL_WAIT: Duration = Duration::from_millis(50);

/// What the service does when partitions come and go; called on the polling thread.
pub trait Partitions: Send + Sync + 'static {
    /// Partitions are being revoked: finish (within the service's drain timeout) what is in
    /// flight for them and return the offsets to commit before they go.
    fn revoking(&self, partitions: &[i32]) -> Vec<(i32, i64)>;

    /// Partitions are being revoked while the consumer closes ([`GroupContext::set_closing`]),
    /// after the service drained: return their offsets at once, nothing is left to wait for
    /// (waiting there once made a close hang).
    fn release(&self, partitions: &[i32]) -> Vec<(i32, i64)>;

    /// The offsets of [`Partitions::revoking`] are committed (or the commit failed): forget the
    /// partitions.
    fn revoked(&self, _partitions: &[i32]) {}

    /// Partitions were assigned.
    fn assigned(&self, partitions: &[i32]);
}

/// The client context of every group consumer (module doc).
pub struct GroupContext<P> {
    /// Metric prefix: `indexer` or `forwarder`.
    service: &'static str,
    /// The consumer, in logs and in the metrics' `consumer` label (also the statistics' role).
    name: &'static str,
    topic: String,
    partitions: P,
    stats: StatsContext,
    assignments: AtomicU64,
    /// Set at shutdown: a revoke releases instead of waiting ([`Partitions::release`]).
    closing: AtomicBool,
}

impl<P: Partitions> GroupContext<P> {
    pub fn new(service: &'static str, name: &'static str, topic: &str, partitions: P) -> Self {
        Self {
            service,
            name,
            topic: topic.to_string(),
            partitions,
            stats: StatsContext::new(name),
            assignments: AtomicU64::new(0),
            closing: AtomicBool::new(false),
        }
    }

    /// The service drained and the consumer is about to close: revokes from now on release.
    pub fn set_closing(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }

    /// The offsets to commit for a revoke of `revoked`.
    fn offsets_of_revoke(&self, revoked: &[i32]) -> Vec<(i32, i64)> {
        if self.closing.load(Ordering::Relaxed) {
            self.partitions.release(revoked)
        } else {
            self.partitions.revoking(revoked)
        }
    }

    pub fn partitions(&self) -> &P {
        &self.partitions
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Incremented on every assignment (a pause must be applied again to new partitions).
    pub fn assignments(&self) -> u64 {
        self.assignments.load(Ordering::Relaxed)
    }
}

impl<P: Partitions> ClientContext for GroupContext<P> {
    fn stats(&self, statistics: Statistics) {
        self.stats.record(&statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        crate::log_client_error(self.name, &error, reason);
    }
}

impl<P: Partitions> ConsumerContext for GroupContext<P> {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let revoked: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
        if revoked.is_empty() {
            return;
        }
        metrics::counter!(format!("{}_rebalances_total", self.service), "consumer" => self.name, "kind" => "revoke")
            .increment(1);
        let offsets = self.offsets_of_revoke(&revoked);
        commit(consumer, &self.topic, &offsets, CommitMode::Sync);
        self.partitions.revoked(&revoked);
        tracing::info!(consumer = self.name, ?revoked, "partitions revoked");
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let assigned: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
            self.partitions.assigned(&assigned);
            self.assignments.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(format!("{}_rebalances_total", self.service), "consumer" => self.name, "kind" => "assign")
                .increment(1);
            tracing::info!(consumer = self.name, ?assigned, "partitions assigned");
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(error) = result {
            metrics::counter!(format!("{}_commit_errors_total", self.service), "consumer" => self.name)
                .increment(1);
            tracing::warn!(consumer = self.name, %error, "offset commit failed (the next one covers it)");
        }
    }
}

/// How long a service's last step waits for its consumer to leave the group (everything is
/// committed by then; the group's session timeout covers a close that does not finish).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Closes a group consumer — it leaves its group — on a thread of its own, waiting at most
/// [`CLOSE_TIMEOUT`]. For a service's last step, once what it could commit is committed: librdkafka's
/// close can wait on a rebalance that does not complete (seen when a stop came while another
/// member was joining), and a graceful stop must not hang on it; the group then expires the
/// member after its session timeout. Closes only if `consumer` is the last reference.
pub async fn close<C: ConsumerContext + 'static>(
    consumer: Arc<BaseConsumer<C>>,
    name: &'static str,
) {
    let (closed, done) = tokio::sync::oneshot::channel();
    let closing = move || {
        drop(consumer);
        let _ = closed.send(());
    };
    if let Err(error) = std::thread::Builder::new()
        .name(format!("{name}-close"))
        .spawn(closing)
    {
        tracing::warn!(consumer = name, %error, "no thread to close the consumer; the group expires it after its session timeout");
        return;
    }
    if tokio::time::timeout(CLOSE_TIMEOUT, done).await.is_err() {
        tracing::warn!(
            consumer = name,
            timeout = ?CLOSE_TIMEOUT,
            "the consumer did not leave its group in time; the group expires it after its session timeout"
        );
    }
}

/// Commits `offsets` (partition, next offset to read) of `topic`. A failure is logged: the
/// next commit covers it, and at worst the next owner re-reads (at-least-once).
pub fn commit<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    offsets: &[(i32, i64)],
    mode: CommitMode,
) {
    if offsets.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::new();
    for (partition, offset) in offsets {
        let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*offset));
    }
    if let Err(error) = consumer.commit(&list, mode) {
        tracing::warn!(%error, "offset commit could not be sent; the next one covers it");
    }
}

/// What one consumer thread does within [`run`].
pub trait Polling {
    type Partitions: Partitions;

    fn consumer(&self) -> &Arc<BaseConsumer<GroupContext<Self::Partitions>>>;

    /// Whether to stop.
    fn stopping(&self) -> bool;

    /// Before each poll: whether fetching must stop (back-pressure), or `Wait` to come back
    /// without polling (a queue about to free up), or `Stop`. `pause` is the assignment's
    /// state, for a thread that must change it at once (to seek on fetching partitions).
    fn before_poll(&mut self, pause: &mut Pause) -> Step;

    /// Fetching resumed after a pause (a thread that pauses single partitions itself pauses
    /// them again here).
    fn resumed(&mut self) {}

    /// One message read.
    fn accept(&mut self, message: &BorrowedMessage<'_>);

    /// After each poll (periodic commits, ending batches).
    fn after_poll(&mut self) {}

    /// Shutdown: finish or hand back what is in flight, commit, leave.
    fn drain(self);
}

/// The answer of [`Polling::before_poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Poll, with the assignment paused (`true`: no fetching) or fetching.
    Poll { paused: bool },
    /// Come back after this long without polling.
    Wait(Duration),
    /// Leave the loop (and drain).
    Stop,
}

/// Runs `thread` until it stops, then drains it (module doc). A pause is applied again after
/// every assignment: new partitions would start fetching otherwise.
pub fn run<T: Polling>(mut thread: T) {
    let mut pause = Pause::default();
    while !thread.stopping() {
        let paused = match thread.before_poll(&mut pause) {
            Step::Stop => break,
            Step::Wait(wait) => {
                std::thread::sleep(wait);
                continue;
            }
            Step::Poll { paused } => paused,
        };
        if pause.set(thread.consumer(), paused) {
            thread.resumed();
        }
        // The message borrows the consumer, and the thread is borrowed mutably to accept it.
        let consumer = thread.consumer().clone();
        match consumer.poll(POLL_WAIT) {
            None => {}
            Some(Err(error)) => {
                let context = consumer.context();
                let name = context.name;
                metrics::counter!(format!("{}_poll_errors_total", context.service), "consumer" => name)
                    .increment(1);
                tracing::warn!(consumer = name, %error, "poll error");
            }
            Some(Ok(message)) => thread.accept(&message),
        }
        thread.after_poll();
    }
    thread.drain();
}

/// Whether the assignment is paused (fetching stopped while polling goes on).
#[derive(Debug, Default)]
pub struct Pause {
    paused: bool,
    /// [`GroupContext::assignments`] when last paused: a new assignment is paused again.
    assignments: u64,
}

impl Pause {
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Pauses or resumes the assignment if it is not so already. True when it resumed.
    pub fn set<P: Partitions>(
        &mut self,
        consumer: &BaseConsumer<GroupContext<P>>,
        pause: bool,
    ) -> bool {
        let assignments = consumer.context().assignments();
        if pause == self.paused && !(pause && assignments != self.assignments) {
            return false;
        }
        set_paused(consumer, pause);
        let resumed = self.paused && !pause;
        self.paused = pause;
        self.assignments = assignments;
        resumed
    }
}

/// Pauses or resumes every assigned partition.
fn set_paused<P: Partitions>(consumer: &BaseConsumer<GroupContext<P>>, pause: bool) {
    let (service, name) = (consumer.context().service, consumer.context().name);
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    let result = if pause {
        consumer.pause(&assignment)
    } else {
        consumer.resume(&assignment)
    };
    drop(assignment);
    metrics::gauge!(format!("{service}_consumer_paused"), "consumer" => name).set(if pause {
        1.0
    } else {
        0.0
    });
    match result {
        Ok(()) => tracing::debug!(consumer = name, pause, "consumption paused or resumed"),
        Err(error) => tracing::warn!(consumer = name, %error, pause, "pause/resume failed"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Records which half of a revoke ran.
    #[derive(Default)]
    struct Recorded(Mutex<Vec<&'static str>>);

    impl Partitions for Recorded {
        fn revoking(&self, _partitions: &[i32]) -> Vec<(i32, i64)> {
            self.0.lock().unwrap().push("revoking");
            Vec::new()
        }

        fn release(&self, _partitions: &[i32]) -> Vec<(i32, i64)> {
            self.0.lock().unwrap().push("release");
            Vec::new()
        }

        fn assigned(&self, _partitions: &[i32]) {}
    }

    #[test]
    fn a_revoke_waits_for_the_service_until_the_consumer_closes() {
        let context = GroupContext::new("test", "test", "t", Recorded::default());
        context.offsets_of_revoke(&[0]);
        context.set_closing();
        context.offsets_of_revoke(&[0]);
        assert_eq!(
            *context.partitions().0.lock().unwrap(),
            ["revoking", "release"]
        );
    }
}
