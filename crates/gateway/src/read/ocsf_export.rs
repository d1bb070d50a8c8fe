//! The `ocsf` export: the stored events, NDJSON from ClickHouse, rewritten line by line into
//! NDJSON of OCSF objects with the one mapping (`audit_core::ocsf`) the forwarder's sinks use.
//!
//! Chunks cut lines anywhere: the part of a line after a chunk's last newline waits for the
//! next chunk, so memory holds at most one chunk and one stored event. A stored line that is
//! not an event of this contract ends the export with an error (the client sees a failed
//! download, never a silently missing event).

use std::sync::Arc;

use audit_core::{AuditEvent, EventValidator};
use bytes::Bytes;
use futures::{Stream, StreamExt};

/// A stored line that is not an event of this contract: the export stops with it.
#[derive(Debug, thiserror::Error)]
#[error("a stored event does not read as contract v1: {0}")]
pub struct NotAnEvent(serde_json::Error);

/// Maps stored NDJSON to OCSF NDJSON across chunk boundaries.
pub struct OcsfLines {
    /// The start of a line whose end has not arrived yet.
    pending: Vec<u8>,
    /// Its catalogue classifies the actions.
    validator: Arc<EventValidator>,
}

impl OcsfLines {
    pub fn new(validator: Arc<EventValidator>) -> Self {
        Self {
            pending: Vec::new(),
            validator,
        }
    }

    /// The OCSF lines of every line `chunk` completes.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Bytes, NotAnEvent> {
        self.pending.extend_from_slice(chunk);
        let Some(last_newline) = self.pending.iter().rposition(|&b| b == b'\n') else {
            return Ok(Bytes::new());
        };
        let rest = self.pending.split_off(last_newline + 1);
        let complete = std::mem::replace(&mut self.pending, rest);
        let mut out = Vec::with_capacity(complete.len() * 2);
        for line in complete.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            self.map_line(line, &mut out)?;
        }
        Ok(Bytes::from(out))
    }

    /// The last line, if the input did not end with a newline.
    pub fn finish(&mut self) -> Result<Bytes, NotAnEvent> {
        let line = std::mem::take(&mut self.pending);
        let mut out = Vec::new();
        if !line.iter().all(u8::is_ascii_whitespace) {
            self.map_line(&line, &mut out)?;
        }
        Ok(Bytes::from(out))
    }

    fn map_line(&self, line: &[u8], out: &mut Vec<u8>) -> Result<(), NotAnEvent> {
        let event: AuditEvent = serde_json::from_slice(line).map_err(NotAnEvent)?;
        audit_core::ocsf::write_json(
            &audit_core::ocsf::EventView::from(&event),
            self.validator.catalogue(),
            out,
        );
        out.push(b'\n');
        Ok(())
    }
}

/// The OCSF export body of stored NDJSON `chunks`.
pub fn ocsf_lines(
    chunks: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    validator: Arc<EventValidator>,
) -> impl Stream<Item = std::io::Result<Bytes>> {
    let state = (Box::pin(chunks), OcsfLines::new(validator), false);
    futures::stream::unfold(state, |(mut chunks, mut lines, done)| async move {
        if done {
            return None;
        }
        let (out, done) = match chunks.next().await {
            Some(Ok(chunk)) => (lines.push(&chunk), false),
            Some(Err(error)) => return Some((Err(error), (chunks, lines, true))),
            None => (lines.finish(), true),
        };
        let out = out.map_err(|reason| {
            tracing::warn!(%reason, "OCSF export stopped");
            std::io::Error::other(reason)
        });
        let failed = out.is_err();
        Some((out, (chunks, lines, done || failed)))
    })
    .filter(|item| futures::future::ready(!matches!(item, Ok(bytes) if bytes.is_empty())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const EVENT: &str = r#"{"id":"0190d7a0-6c1e-7b3a-9f00-000000000001","org_id":"org_a","occurred_at":"2026-01-01T00:00:00.250Z","category":"authentication","action":"user.login.failed","outcome":"failure","actor":{"type":"user","id":"u_1"},"targets":[],"context":{},"metadata":{},"version":1}"#;

    fn lines() -> OcsfLines {
        let catalogue = Arc::new(audit_core::Catalogue::builtin());
        let validator = EventValidator::new(catalogue, audit_core::Limits::default()).unwrap();
        OcsfLines::new(Arc::new(validator))
    }

    #[test]
    fn lines_cut_anywhere_map_to_one_object_each() {
        let input = format!("{EVENT}\n{EVENT}\n");
        for cut in [1, 17, EVENT.len(), EVENT.len() + 1, input.len() - 1] {
            let mut mapper = lines();
            let mut out = mapper.push(&input.as_bytes()[..cut]).unwrap().to_vec();
            out.extend_from_slice(&mapper.push(&input.as_bytes()[cut..]).unwrap());
            out.extend_from_slice(&mapper.finish().unwrap());
            let text = String::from_utf8(out).unwrap();
            let objects: Vec<serde_json::Value> = text
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect();
            assert_eq!(objects.len(), 2, "cut at {cut}: {text}");
            for object in objects {
                assert_eq!(object["class_uid"], 3002);
                assert_eq!(
                    object["metadata"]["uid"],
                    "0190d7a0-6c1e-7b3a-9f00-000000000001"
                );
            }
        }
        // A last line without its newline is not lost.
        let mut mapper = lines();
        assert!(mapper.push(EVENT.as_bytes()).unwrap().is_empty());
        assert_eq!(
            mapper
                .finish()
                .unwrap()
                .iter()
                .filter(|&&b| b == b'\n')
                .count(),
            1
        );
    }

    #[test]
    fn a_line_that_is_not_an_event_is_an_error_not_a_gap() {
        let mut mapper = lines();
        let error = mapper.push(b"{\"not\":\"an event\"}\n").unwrap_err();
        assert!(error.to_string().contains("contract v1"), "{error}");
    }
}
