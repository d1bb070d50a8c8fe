//! The fakes the lane tests run on: a scripted destination ([`FakeSink`] over a [`Receiver`]),
//! a recording hand-off ([`Recorder`]), and a lane started on them ([`Setup`], [`Harness`]).
#![allow(clippy::unwrap_used)]

use std::sync::Mutex;

use futures::future::BoxFuture;

use serde_json::json;

use super::super::*;
use crate::delivery::ParkReason;
use crate::event::{ForwardEvent, synthetic_event};
use audit_kafka::offsets::{Ack, OffsetTracker};
use audit_sinks::{Attempt, Payload, Sink, SinkState, Verdict};
use audit_sinks::{Error, Result};

/// What the fake destination answers to one request (the ids of its events, in order).
pub(super) type Script = Box<dyn FnMut(&[String]) -> Reply + Send>;

pub(super) struct Reply {
    pub(super) verdict: Verdict,
    pub(super) retry_after: Option<Duration>,
}

pub(super) fn reply(verdict: Verdict) -> Reply {
    Reply {
        verdict,
        retry_after: None,
    }
}

/// The fake destination: its limits, its script, and every request it received.
pub(super) struct Receiver {
    pub(super) limits: BatchLimits,
    pub(super) script: Mutex<Script>,
    pub(super) requests: Mutex<Vec<(Instant, Vec<String>)>>,
}

impl Receiver {
    pub(super) fn requests(&self) -> Vec<Vec<String>> {
        let requests = self.requests.lock().unwrap();
        requests.iter().map(|(_, ids)| ids.clone()).collect()
    }

    pub(super) fn request_times(&self) -> Vec<Instant> {
        let requests = self.requests.lock().unwrap();
        requests.iter().map(|(at, _)| *at).collect()
    }
}

#[derive(Debug)]
pub(super) struct FakeSink(Arc<Receiver>);

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

impl Sink for FakeSink {
    fn limits(&self) -> BatchLimits {
        self.0.limits
    }

    /// The event's id: requests show which events they carried.
    fn encode(&self, event: &ForwardEvent, _payload: Payload<'_>) -> Vec<u8> {
        event.id.as_bytes().to_vec()
    }

    fn framed_len(&self, bytes: usize, count: usize) -> usize {
        bytes + count
    }

    fn send<'a>(&'a self, parts: &'a [&'a [u8]], message_id: &'a str) -> BoxFuture<'a, Attempt> {
        let ids: Vec<String> = parts
            .iter()
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .collect();
        let reply = (self.0.script.lock().unwrap())(&ids);
        self.0.requests.lock().unwrap().push((Instant::now(), ids));
        let attempt = Attempt {
            status: match reply.verdict {
                Verdict::Delivered => "200".into(),
                _ => "503".into(),
            },
            verdict: reply.verdict,
            excerpt: "fake".into(),
            retry_after: reply.retry_after,
            latency: Duration::from_millis(1),
            message_id: message_id.to_string(),
        };
        Box::pin(async move { attempt })
    }
}

/// Builds the fake sink, or fails as a destination with unusable settings does.
pub(super) struct FakeFactory {
    pub(super) receiver: Arc<Receiver>,
    pub(super) unusable: Option<&'static str>,
}

impl SinkFactory for FakeFactory {
    fn build(
        &self,
        _org: &str,
        destination: &Destination,
        _: &SinkState,
    ) -> Result<DestinationSink> {
        match self.unusable {
            Some(reason) => Err(Error::destination(&destination.id, reason)),
            None => Ok(DestinationSink::native(Box::new(FakeSink(
                self.receiver.clone(),
            )))),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Parked {
    pub(super) id: String,
    pub(super) reason: ParkReason,
    pub(super) attempt: u32,
    pub(super) next_attempt_ms: i64,
}

/// Records hand-offs and acknowledges them, as the Kafka one does once the broker has them.
#[derive(Default)]
pub(super) struct Recorder {
    pub(super) parked: Mutex<Vec<Parked>>,
    pub(super) dead: Mutex<Vec<(String, String)>>,
}

impl Handoff for Recorder {
    fn park<'a>(
        &'a self,
        deliveries: &'a [&'a Delivery],
        info: &'a crate::parking::ParkInfo<'a>,
    ) -> BoxFuture<'a, bool> {
        let mut parked = self.parked.lock().unwrap();
        for delivery in deliveries {
            parked.push(Parked {
                id: delivery.event.id.clone(),
                reason: info.reason,
                attempt: info.attempt,
                next_attempt_ms: info.next_attempt_ms,
            });
        }
        Ack::all(deliveries.iter().filter_map(|d| d.ack.as_ref()));
        Box::pin(async { true })
    }

    fn dead_letter<'a>(
        &'a self,
        delivery: &'a Delivery,
        info: &'a crate::parking::DeadInfo<'a>,
    ) -> BoxFuture<'a, bool> {
        let letter = (delivery.event.id.clone(), info.reason.clone());
        self.dead.lock().unwrap().push(letter);
        if let Some(ack) = &delivery.ack {
            ack.done();
        }
        Box::pin(async { true })
    }
}

/// How a test lane is set up.
pub(super) struct Setup {
    pub(super) role: Role,
    pub(super) limits: BatchLimits,
    pub(super) script: Script,
    pub(super) unusable: Option<&'static str>,
    pub(super) max_event_age: Duration,
}

impl Setup {
    pub(super) fn new(script: impl FnMut(&[String]) -> Reply + Send + 'static) -> Self {
        Self {
            role: Role::Main,
            limits: BatchLimits {
                max_events: 100,
                max_bytes: 1024 * 1024,
                max_event_bytes: 64 * 1024,
            },
            script: Box::new(script),
            unusable: None,
            max_event_age: Duration::from_secs(3600),
        }
    }

    pub(super) fn start(self) -> Harness {
        let receiver = Arc::new(Receiver {
            limits: self.limits,
            script: Mutex::new(self.script),
            requests: Mutex::new(Vec::new()),
        });
        let recorder = Arc::new(Recorder::default());
        let retry = RetryConfig {
            initial_backoff_ms: 1_000,
            max_backoff_ms: 60_000,
            in_memory_attempts: 3,
            in_memory_budget_ms: 20_000,
            ..RetryConfig::default()
        };
        let context = Arc::new(LaneContext {
            sinks: Arc::new(FakeFactory {
                receiver: receiver.clone(),
                unusable: self.unusable,
            }),
            parker: recorder.clone(),
            backoff: retry.engine(),
            retry,
            linger: Duration::from_millis(50),
            max_event_age: self.max_event_age,
            shutdown: CancellationToken::new(),
        });
        let tracker = OffsetTracker::new("events");
        tracker.assign(&[0]);
        let shared = Arc::new(DestinationShared::new("org_a", "dst_1"));
        let (input, lane_input) = mpsc::channel(1_000);
        let lane = Lane::new(LaneSpec {
            role: self.role,
            org_id: "org_a".into(),
            destination: Arc::new(destination()),
            shared: shared.clone(),
            context,
            input: lane_input,
            overflowing: Arc::new(AtomicBool::new(false)),
            sending_since_ms: Arc::new(AtomicI64::new(0)),
        });
        Harness {
            input,
            receiver,
            recorder,
            shared,
            tracker,
            next_offset: 0,
            task: tokio::spawn(lane.run()),
        }
    }
}

pub(super) fn destination() -> Destination {
    serde_json::from_value(serde_json::json!({
        "id": "dst_1", "name": "siem", "enabled": true, "format": "native",
        "config": {"type": "webhook", "url": "https://soc.example.com/hook"},
        "created_at": "2026-01-01T00:00:00Z", "signing_secrets": [],
    }))
    .unwrap()
}

pub(super) struct Harness {
    pub(super) input: mpsc::Sender<LaneInput>,
    pub(super) receiver: Arc<Receiver>,
    pub(super) recorder: Arc<Recorder>,
    pub(super) shared: Arc<DestinationShared>,
    pub(super) tracker: Arc<OffsetTracker>,
    pub(super) next_offset: i64,
    pub(super) task: tokio::task::JoinHandle<()>,
}

impl Harness {
    /// Queues `count` new events (parked `attempt` times before); returns their ids.
    pub(super) async fn send(&mut self, count: usize, attempt: u32) -> Vec<String> {
        let mut ids = Vec::new();
        for _ in 0..count {
            let event = synthetic_event("org_a", "audit_log.destination.tested", json!({}));
            ids.push(event.id.clone());
            self.deliver(event, attempt).await;
        }
        ids
    }

    pub(super) async fn deliver(&mut self, event: ForwardEvent, attempt: u32) {
        let offset = self.next_offset;
        self.next_offset += 1;
        let delivery = Delivery {
            event: Arc::new(event),
            ack: self.tracker.track(0, offset, 1),
            attempt,
            first_failed_ms: None,
            source: Arc::from(format!("events/0/{offset}")),
        };
        self.input.send(LaneInput::Deliver(delivery)).await.unwrap();
    }

    /// Closes the lane's input and waits until it has handled everything.
    pub(super) async fn finish(self) -> Finished {
        let Harness {
            input,
            receiver,
            recorder,
            shared,
            tracker,
            task,
            ..
        } = self;
        drop(input);
        task.await.unwrap();
        Finished {
            requests: receiver.requests(),
            times: receiver.request_times(),
            parked: recorder.parked.lock().unwrap().clone(),
            dead: recorder.dead.lock().unwrap().clone(),
            shared,
            unanswered: tracker.in_flight(),
        }
    }
}

/// What a lane did, once its input was closed and drained.
pub(super) struct Finished {
    pub(super) requests: Vec<Vec<String>>,
    pub(super) times: Vec<Instant>,
    pub(super) parked: Vec<Parked>,
    pub(super) dead: Vec<(String, String)>,
    pub(super) shared: Arc<DestinationShared>,
    /// Events nobody acknowledged (must be 0: every event is delivered, parked or dead).
    pub(super) unanswered: usize,
}

impl Finished {
    pub(super) fn delivered(&self) -> u64 {
        self.shared.snapshot().delivered_total
    }
}

pub(super) fn ids(list: &[String], indices: &[usize]) -> Vec<String> {
    indices.iter().map(|&index| list[index].clone()).collect()
}
