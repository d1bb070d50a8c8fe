//! The peer of each throughput run: a bare HTTP client posting **the same batches** to the same
//! fake receiver, one request at a time (a forwarder lane has one request in flight per
//! destination), in the same run, on the same machine. What the forwarder adds on top of the
//! HTTP requests it must make (consuming, decoding, routing, batching, encoding, signing) is
//! the gap between the two rates; issue 19's goal is forwarder ≥ 0.7× this client.
//!
//! Why it is a fair peer:
//!
//! * **the same events**: the run's topic read back from its start, each message decoded by
//!   the forwarder's own [`Decoder`] (a direct producer's events are validated, as there);
//! * **the same bytes and headers**: the destination as the forwarder reads it from the
//!   settings topic, its sink built by the forwarder's [`SinkContext`] from the forwarder's
//!   configuration (limits, outbound policy, keys, catalogue): the same encoding (native or
//!   OCSF), framing, HEC token, `webhook-id` and Standard Webhooks signature
//!   ([`audit_sinks::Sink::request`]);
//! * **the same batches**: cut by the lane's rule on a full queue ([`Batcher::push`]);
//! * **the same client**: the sink's (the forwarder's outbound client: pool, timeouts, no
//!   compression).
//!
//! Only the posting is timed. Requests are built and signed before the clock runs (the fake
//! receivers accept signatures up to 5 minutes old), in windows of at most [`WINDOW_BYTES`] of
//! bodies so that memory stays bounded; the clock stops while the next window is built, and
//! the reader is paused while requests are posted. The rate is the forwarder's measure —
//! first to last event the receiver accepted — taken on the client's side: the events answered
//! after the first request, over the time from its answer to the last one (the receiver
//! answers right after accepting).
//!
//! In the bare client's favour: it re-sends ids the receiver has already accepted (counted as
//! duplicates), so the receiver's set of ids no longer grows. `--forwarder-env` is not applied
//! to the peer (it reads the forwarder's configuration file and this process's environment).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use audit_kafka::MessageParts;
use audit_settings::{Destination, SettingsStore, SettingsView};
use audit_sinks::signing::batch_message_id;
use audit_sinks::{
    BatchLimits, DestinationSink, ForwardEvent, SinkContext, SinkFactory, SinkState,
};
use forwarder::ForwarderConfig;
use forwarder::event::Decoder;
use loadgen::{BenchRow, cpu_seconds, cpu_seconds_since};
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::Cli;
use crate::kafka::{Topics, reader};
use crate::services::{Counters, FORWARDER_CONFIG};
use crate::throughput::Target;

/// Most bytes of request bodies built ahead at once (each window is posted, then the next
/// is built).
const WINDOW_BYTES: usize = 256 * 1024 * 1024;

/// Longest wait for the next message of a pre-filled topic.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What every peer run shares: the forwarder's decoder and sink builder, and the settings
/// the gateway provisioned.
pub(crate) struct Peer {
    brokers: String,
    decoder: Decoder,
    sinks: SinkContext,
    settings: Arc<SettingsView>,
}

impl Peer {
    /// The forwarder's configuration as the benchmark's forwarders read it, and the settings
    /// topic read to its end.
    pub(crate) async fn new(cli: &Cli, topics: &Topics) -> Result<Self> {
        let mut config: ForwarderConfig =
            audit_runtime::config::load(Some(Path::new(FORWARDER_CONFIG)), "FORWARDER")?;
        config.kafka.brokers = cli.brokers.clone();
        config.topics.settings = topics.settings();
        config.validate()?;
        let store = SettingsStore::start_for(&config.kafka, &config.topics, "bench-peer")?;
        store.wait_caught_up(Duration::from_secs(60)).await?;
        let settings = store.view();
        store.stop();
        let (decoder, sinks) = forwarder::decoder_and_sinks(&config)?;
        Ok(Self {
            brokers: cli.brokers.clone(),
            decoder,
            sinks,
            settings,
        })
    }

    /// The organization's destination (each benchmark organization has one).
    fn destination(&self, org: &str) -> Result<&Destination> {
        self.settings
            .org(org)
            .and_then(|settings| settings.destinations.first())
            .ok_or_else(|| anyhow!("{org} has no destination in the settings"))
    }

    /// Posts the `count` events of `topic` to `target`'s destination as the bare client.
    pub(crate) async fn run(
        &self,
        http: &reqwest::Client,
        topic: &str,
        target: &Target<'_>,
        count: u64,
    ) -> Result<Posted> {
        let destination = self.destination(target.org)?;
        let sink = self
            .sinks
            .build(target.org, destination, &SinkState::default())?;
        let reader = reader(&self.brokers, topic)?;
        let mut batcher = Batcher::new(&sink, &destination.id);
        let mut remaining = count;
        let mut clock = Clock::default();
        let mut posted = Posted::default();
        let before = Counters::read(http, target.receiver).await?;
        let receiver_cpu = cpu_seconds(target.receiver_pid);
        while remaining > 0 {
            let window = self.window(&reader, topic, &mut batcher, &mut remaining)?;
            // Fetching the next window now would compete with the posting for the cores.
            reader.pause(&reader.assignment()?)?;
            let client_cpu = cpu_seconds(std::process::id());
            clock.resume();
            for prepared in window {
                posted.add(&prepared);
                post(&self.sinks.client, prepared.request).await?;
                clock.answered(prepared.events);
            }
            clock.pause();
            posted.client_cpu_s +=
                cpu_seconds_since(std::process::id(), client_cpu).unwrap_or(f64::NAN);
            reader.resume(&reader.assignment()?)?;
        }
        let after = Counters::read(http, target.receiver).await?;
        let accepted = after.since(&before, "events");
        if accepted != count {
            bail!("the receiver accepted {accepted} of the {count} events the peer posted");
        }
        posted.receiver_cpu_s =
            cpu_seconds_since(target.receiver_pid, receiver_cpu).unwrap_or(f64::NAN);
        posted.per_s = clock.per_s();
        posted.receiver = after.summary_since(&before);
        Ok(posted)
    }

    /// Reads, decodes and batches events until the requests built hold [`WINDOW_BYTES`] or
    /// every event is read (then the last batch is closed too).
    fn window(
        &self,
        reader: &BaseConsumer,
        topic: &str,
        batcher: &mut Batcher<'_>,
        remaining: &mut u64,
    ) -> Result<Vec<Prepared>> {
        let mut window = Vec::new();
        let mut bytes = 0;
        while *remaining > 0 && bytes < WINDOW_BYTES {
            let message = reader
                .poll(READ_TIMEOUT)
                .with_context(|| format!("{topic}: nothing read for {READ_TIMEOUT:?}"))??;
            let event = self
                .decoder
                .decode(MessageParts::of(&message, topic, "bench-peer"))?;
            *remaining -= 1;
            if let Some(prepared) = batcher.push(&event)? {
                bytes += prepared.bytes;
                window.push(prepared);
            }
        }
        if *remaining == 0 {
            window.extend(batcher.close()?);
        }
        Ok(window)
    }
}

/// One request built and signed, and what it carries.
struct Prepared {
    request: reqwest::Request,
    events: usize,
    bytes: usize,
}

/// Cuts events into batches as a lane with a full queue does, and builds each batch's request.
struct Batcher<'a> {
    sink: &'a DestinationSink,
    destination_id: &'a str,
    limits: BatchLimits,
    ids: Vec<String>,
    parts: Vec<Vec<u8>>,
    bytes: usize,
}

impl<'a> Batcher<'a> {
    fn new(sink: &'a DestinationSink, destination_id: &'a str) -> Self {
        Self {
            sink,
            destination_id,
            limits: sink.limits(),
            ids: Vec::new(),
            parts: Vec::new(),
            bytes: 0,
        }
    }

    /// Adds `event`; the request of the batch it closed, if it closed one.
    fn push(&mut self, event: &ForwardEvent) -> Result<Option<Prepared>> {
        let encoded = self.sink.encode(event);
        // The lane's rule (`forwarder::lane`, `Lane::gather`): an event joins the batch while
        // the batch has room for it, in events and in framed bytes; a first event always joins.
        let framed = self
            .sink
            .framed_len(self.bytes + encoded.len(), self.parts.len() + 1);
        let fits = self.parts.len() < self.limits.max_events && framed <= self.limits.max_bytes;
        let closed = if fits { None } else { self.close()? };
        self.bytes += encoded.len();
        self.parts.push(encoded);
        self.ids.push(event.id.clone());
        Ok(closed)
    }

    /// The request of the batch so far (signed now), if it has events.
    fn close(&mut self) -> Result<Option<Prepared>> {
        if self.parts.is_empty() {
            return Ok(None);
        }
        let message_id = batch_message_id(self.destination_id, self.ids.iter().map(String::as_str));
        let parts: Vec<&[u8]> = self.parts.iter().map(Vec::as_slice).collect();
        let request = self
            .sink
            .request(&parts, &message_id)
            .ok_or_else(|| anyhow!("this destination's requests cannot be built ahead"))?
            .build()?;
        let bytes = request
            .body()
            .and_then(reqwest::Body::as_bytes)
            .map_or(0, <[u8]>::len);
        let prepared = Prepared {
            request,
            events: parts.len(),
            bytes,
        };
        self.ids.clear();
        self.parts.clear();
        self.bytes = 0;
        Ok(Some(prepared))
    }
}

/// Posts one request and reads its answer; anything but a 2xx ends the run.
async fn post(client: &reqwest::Client, request: reqwest::Request) -> Result<()> {
    let response = client.execute(request).await?;
    let status = response.status();
    let body = response.bytes().await?;
    if !status.is_success() {
        bail!(
            "the receiver answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

/// Times the posting from the first answer to the last, stopped between windows; counts the
/// events answered after the first request (the forwarder's rate, too, counts from the first
/// events the receiver accepted).
#[derive(Debug, Default)]
struct Clock {
    running_since: Option<Instant>,
    elapsed: Duration,
    first_answered: bool,
    events: u64,
}

impl Clock {
    fn resume(&mut self) {
        if self.first_answered {
            self.running_since = Some(Instant::now());
        }
    }

    fn answered(&mut self, events: usize) {
        if self.first_answered {
            self.events += events as u64;
        } else {
            self.first_answered = true;
            self.running_since = Some(Instant::now());
        }
    }

    fn pause(&mut self) {
        if let Some(since) = self.running_since.take() {
            self.elapsed += since.elapsed();
        }
    }

    fn per_s(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }
}

/// What the bare client measured.
#[derive(Debug, Default)]
pub(crate) struct Posted {
    /// Events per second, first to last answer.
    pub(crate) per_s: f64,
    events: u64,
    requests: u64,
    bytes: u64,
    /// CPU of this process while posting.
    client_cpu_s: f64,
    /// CPU of the receivers over the peer's run.
    receiver_cpu_s: f64,
    /// The receiver's counters over the peer's run.
    receiver: String,
}

impl Posted {
    fn add(&mut self, prepared: &Prepared) {
        self.events += prepared.events as u64;
        self.requests += 1;
        self.bytes += prepared.bytes as u64;
    }

    /// The peer's row, named `name`, beside a forwarder that made `forwarder_per_s`.
    pub(crate) fn row(&self, name: String, forwarder_per_s: f64) -> BenchRow {
        let per_event_us = |seconds: f64| seconds * 1e6 / self.events.max(1) as f64;
        let requests = self.requests.max(1) as f64;
        BenchRow {
            name,
            throughput: format!("{:.0} events/s", self.per_s),
            p50_ms: None,
            p99_ms: None,
            peak_rss_mb: None,
            notes: format!(
                "**forwarder / bare = {:.2}** (goal ≥ 0.7); the same {} events in {} requests (mean {:.0} events, {:.0} bytes), built and signed before the clock, posted one at a time; first → last answer; CPU per event: client {:.1} µs, receiver {:.1} µs; {}",
                forwarder_per_s / self.per_s,
                self.events,
                self.requests,
                self.events as f64 / requests,
                self.bytes as f64 / requests,
                per_event_us(self.client_cpu_s),
                per_event_us(self.receiver_cpu_s),
                self.receiver,
            ),
        }
    }
}
