//! `bench-validate`: single-thread cost of the shared event validator (the indexer's and the
//! gateway's per-event CPU), for profiling the decode path.

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use audit_core::validate::Arrival;
use audit_core::{Catalogue, EventValidator, Limits};

fn main() -> anyhow::Result<()> {
    let validator = EventValidator::new(Arc::new(Catalogue::builtin()), Limits::default())?;
    let at =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?;
    let payloads: Vec<Vec<u8>> = (0..10_000)
        .map(|n| {
            loadgen::generated_event(&format!("org_{}", n % 100), n, &at)
                .to_string()
                .into_bytes()
        })
        .collect();
    let count = 200_000;
    let started = Instant::now();
    for n in 0..count {
        let now = time::OffsetDateTime::now_utc();
        let arrival = Arrival {
            now,
            received_at: now,
            fallback_id: uuid::Uuid::nil(),
            provenance: audit_core::Provenance::Kafka,
            verified_source: None,
        };
        let valid = validator
            .validate_bytes(&payloads[n % payloads.len()], arrival)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        std::hint::black_box(valid);
    }
    let elapsed = started.elapsed();
    println!(
        "validate_bytes: {:.0} events/s ({:.1} µs/event, one thread)",
        count as f64 / elapsed.as_secs_f64(),
        elapsed.as_micros() as f64 / count as f64
    );
    Ok(())
}
