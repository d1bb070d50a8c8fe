//! `bench-validate`: single-thread cost per event of the steps the consumers run on each
//! message, for profiling the decode paths: the shared validator (the indexer's and the
//! gateway's per-event CPU on the direct-producer path), the head read of a tagged event (what
//! the indexer and the forwarder parse to route it), and the OCSF object of an event (what a
//! forwarder lane adds per event in the OCSF format).

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use audit_core::validate::Arrival;
use audit_core::{Catalogue, EventValidator, Limits};

/// Times `step` over `count` calls and prints its cost per event.
fn time(
    name: &str,
    count: usize,
    mut step: impl FnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    for n in 0..count {
        step(n)?;
    }
    let elapsed = started.elapsed();
    println!(
        "{name}: {:.0} events/s ({:.2} µs/event, one thread)",
        count as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / count as f64
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let catalogue = Arc::new(Catalogue::builtin());
    let validator = EventValidator::new(catalogue.clone(), Limits::default())?;
    let at =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?;
    let payloads: Vec<Vec<u8>> = (0..10_000)
        .map(|n| {
            loadgen::generated_event(&format!("org_{}", n % 100), n, &at)
                .to_string()
                .into_bytes()
        })
        .collect();
    let arrival = || {
        let now = time::OffsetDateTime::now_utc();
        Arrival {
            now,
            received_at: now,
            fallback_id: uuid::Uuid::nil(),
            provenance: audit_core::Provenance::Kafka,
            verified_source: None,
        }
    };
    let count = 200_000;
    let mut canonical = Vec::with_capacity(payloads.len());
    time("validate_bytes", count, |n| {
        let valid = validator
            .validate_bytes(&payloads[n % payloads.len()], arrival())
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        if canonical.len() < payloads.len() {
            canonical.push(valid.json.clone());
        }
        std::hint::black_box(valid);
        Ok(())
    })?;
    let size = canonical.iter().map(Vec::len).sum::<usize>() / canonical.len();
    println!("canonical events: {size} bytes on average");
    time("EventHead::read (tagged routing)", count, |n| {
        let head = audit_kafka::EventHead::read(&canonical[n % canonical.len()])?;
        std::hint::black_box(head);
        Ok(())
    })?;
    let events: Vec<_> = canonical
        .iter()
        .map(|json| forwarder::event::decode_head(json, 0))
        .collect::<Result<_, _>>()?;
    time("ocsf_json (view read, map, write)", count, |n| {
        let object = audit_sinks::event::ocsf_json(&events[n % events.len()], &catalogue);
        std::hint::black_box(object);
        Ok(())
    })?;
    // The forwarder's consumer reads an OCSF-bound event whole instead of its head, then maps it.
    time("EventView read (whole, instead of the head)", count, |n| {
        let text = std::str::from_utf8(&canonical[n % canonical.len()])?;
        let view: audit_core::ocsf::EventView<'_> = serde_json::from_str(text)?;
        std::hint::black_box(view);
        Ok(())
    })?;
    let views: Vec<audit_core::ocsf::EventView<'_>> = canonical
        .iter()
        .map(|json| serde_json::from_slice(json))
        .collect::<Result<_, _>>()?;
    time("OCSF map + write of a read view", count, |n| {
        let view = &views[n % views.len()];
        let mut out = Vec::with_capacity(1536);
        audit_core::ocsf::write_json(view, &catalogue, &mut out);
        std::hint::black_box(out);
        Ok(())
    })?;
    Ok(())
}
