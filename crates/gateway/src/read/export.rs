//! `GET /v1/orgs/{org}/events/export?format=csv|json|ndjson&<filters>`: the whole filtered log,
//! newest first, streamed from ClickHouse to the client with no row cap.
//!
//! ClickHouse formats the rows (the stored canonical JSON for NDJSON/JSON; CSV with every text
//! cell that a spreadsheet would run as a formula prefixed with `'`), and the gateway relays
//! the bytes chunk by chunk, so its memory stays flat however large the export. Timestamps are
//! RFC 3339 UTC with an explicit `Z`. The file name names the organization and the range.

use std::sync::Arc;

use audit_store::query::ExportFormat;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use time::OffsetDateTime;

use super::ReaderAuth;
use super::params;
use crate::App;
use crate::error::ApiResult;
use crate::meta;

pub async fn export(
    State(app): State<Arc<App>>,
    ReaderAuth(reader): ReaderAuth,
    Path(org_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    reader.authorize(&org_id)?;
    let params = params::parse(
        query.as_deref(),
        &["format"],
        app.validator.catalogue(),
        app.config.read.max_limit,
    )?;
    let format = params.format.unwrap_or(ExportFormat::Csv);
    let (extension, content_type) = match (format, params.json_array) {
        (ExportFormat::Csv, _) => ("csv", "text/csv; charset=utf-8"),
        (ExportFormat::Ndjson, true) => ("json", "application/json"),
        (ExportFormat::Ndjson, false) => ("ndjson", "application/x-ndjson"),
    };

    // The audit trail first: no export leaves without being recorded.
    let mut event = meta::event(&org_id, "audit_log.exported", reader.actor(), &headers)
        .meta("format", extension);
    for (name, value) in &params.described {
        event = event.meta(&format!("filter.{name}"), value.clone());
    }
    meta::record(&app, event).await?;

    let cursor = app.store.export(&org_id, &params.filter, format)?;
    let chunks = futures::stream::unfold(cursor, |mut cursor| async move {
        match cursor.next().await {
            Ok(Some(bytes)) => Some((Ok::<Bytes, std::io::Error>(bytes), cursor)),
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(%error, "export stream from ClickHouse failed mid-way");
                Some((Err(std::io::Error::other(error)), cursor))
            }
        }
    });
    let body = if params.json_array {
        Body::from_stream(json_array(chunks))
    } else {
        Body::from_stream(counted(chunks))
    };
    metrics::counter!("gateway_exports_total", "format" => extension).increment(1);

    let file_name = format!(
        "audit-log_{}_{}_{}.{extension}",
        sanitize(&org_id),
        range_part(params.filter.since, "start"),
        range_part(params.filter.until, "now")
    );
    let mut response = body.into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\""))
    {
        response_headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response_headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn range_part(at: Option<OffsetDateTime>, open: &str) -> String {
    match at {
        Some(at) => {
            let utc = at.to_offset(time::UtcOffset::UTC);
            format!(
                "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                utc.year(),
                u8::from(utc.month()),
                utc.day(),
                utc.hour(),
                utc.minute(),
                utc.second()
            )
        }
        None => open.to_string(),
    }
}

fn counted(
    chunks: impl Stream<Item = std::io::Result<Bytes>>,
) -> impl Stream<Item = std::io::Result<Bytes>> {
    use futures::StreamExt;
    chunks.inspect(|chunk| {
        if let Ok(bytes) = chunk {
            metrics::counter!("gateway_export_bytes_total").increment(bytes.len() as u64);
        }
    })
}

/// Turns NDJSON chunks into one JSON array: `[` + records joined by `,\n` + `]`.
fn json_array(
    chunks: impl Stream<Item = std::io::Result<Bytes>>,
) -> impl Stream<Item = std::io::Result<Bytes>> {
    use futures::StreamExt;
    let framer = ArrayFramer::default();
    let body = counted(chunks).scan(framer, |framer, chunk| {
        let out = chunk.map(|bytes| framer.push(&bytes));
        futures::future::ready(Some(out))
    });
    futures::stream::once(async { Ok(Bytes::from_static(b"[")) })
        .chain(body)
        .chain(futures::stream::once(async {
            Ok(Bytes::from_static(b"]\n"))
        }))
}

/// Rewrites line breaks between records into `,\n`, across chunk boundaries.
#[derive(Debug, Default)]
struct ArrayFramer {
    /// A record ended (newline seen) and its separator is owed if another record follows.
    separator_owed: bool,
    /// At least one record has started.
    started: bool,
}

impl ArrayFramer {
    fn push(&mut self, chunk: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(chunk.len() + 16);
        for &byte in chunk {
            if byte == b'\n' {
                self.separator_owed = true;
                continue;
            }
            if self.separator_owed {
                out.extend_from_slice(b",\n");
                self.separator_owed = false;
            } else if !self.started {
                out.push(b'\n');
            }
            self.started = true;
            out.push(byte);
        }
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn framing_survives_chunk_boundaries() {
        let mut framer = ArrayFramer::default();
        let mut out = Vec::new();
        for chunk in [&b"{\"a\":1}\n{\"b\""[..], b":2}", b"\n", b"{\"c\":3}\n"] {
            out.extend_from_slice(&framer.push(chunk));
        }
        let text = format!("[{}]", String::from_utf8(out).expect("utf8"));
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON array");
        assert_eq!(parsed.as_array().map(Vec::len), Some(3));
        let mut empty = ArrayFramer::default();
        assert!(empty.push(b"").is_empty());
    }

    #[test]
    fn file_names_name_org_and_range() {
        let at = time::macros::datetime!(2026-11-01 00:00:00 UTC);
        assert_eq!(range_part(Some(at), "start"), "20261101T000000Z");
        assert_eq!(sanitize("org/../x"), "org----x");
    }
}
