//! `GET /v1/orgs/{org}/events/export?format=csv|json|ndjson|ocsf&<filters>`: the whole filtered
//! log, newest first, streamed from ClickHouse to the client with no row cap.
//!
//! NDJSON/JSON relay the stored canonical JSON chunk by chunk; OCSF maps it line by line
//! ([`super::ocsf_export`]: NDJSON of OCSF objects); CSV is encoded here from typed
//! rows ([`super::csv_export`]: formula-injection protection, RFC 3339 UTC timestamps with an
//! explicit `Z`). Either way the gateway's memory stays flat however large the export. The
//! file name names the organization and the range.
//!
//! An export is a long-lived read: it holds an export slot of its organization and of its
//! reader (`read.max_concurrent_exports_per_*`, 429 beyond) for as long as it streams, and
//! its ClickHouse query is bounded by time and memory (`read.export_*`), never by rows. When
//! the client goes away the body stream is dropped, which drops the ClickHouse response and
//! frees the slot; ClickHouse cancels the query
//! (`cancel_http_readonly_queries_on_client_close`, see `audit_store::bounds`).

use audit_store::ExportRow;
use audit_store::query::ExportFormat;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use clickhouse::query::{BytesCursor, RowCursor};
use futures::{Stream, StreamExt};
use time::OffsetDateTime;

use super::LogRead;
use super::csv_export::CsvEncoder;
use super::params::{ExportQuery, FilterQuery};
use crate::admission::{ReadKind, ReadPermit};
use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::openapi::{AuditEvent, OrgPath, ReaderRequest, TooManyReads};

/// How many CSV bytes are encoded before they are sent as one chunk.
const CSV_CHUNK_BYTES: usize = 64 * 1024;

/// Export an organization's filtered log, streamed
///
/// The whole filtered log, newest first, with no row cap: CSV (formula-injection protected),
/// a JSON array or NDJSON; UTC timestamps with an explicit zone. Recorded in the
/// organization's log before the first byte is sent.
#[utoipa::path(get, path = "/v1/orgs/{org}/events/export", tag = "read", operation_id = "exportEvents",
    params(OrgPath, FilterQuery, ExportQuery),
    responses(
        (status = 200, description = "The events; the file name (`Content-Disposition`) names the organization and the range",
            headers(("Content-Disposition" = String, description = "`attachment; filename=…`")),
            content(
                (String = "text/csv"),
                (Vec<AuditEvent> = "application/json"),
                (String = "application/x-ndjson"),
            )),
        ReaderRequest, TooManyReads,
    ),
    security(("user_jwt" = []), ("api_token" = [])))]
pub async fn export(read: LogRead) -> ApiResult<Response> {
    let params = read.params(&["format"])?;
    let permit = read.admit(ReadKind::Export)?;
    let format = params.format.unwrap_or(ExportFormat::Csv);
    let (extension, content_type) = match (format, params.json_array, params.ocsf) {
        (ExportFormat::Csv, _, _) => ("csv", "text/csv; charset=utf-8"),
        (ExportFormat::Ndjson, _, true) => ("ocsf.ndjson", "application/x-ndjson"),
        (ExportFormat::Ndjson, true, false) => ("json", "application/json"),
        (ExportFormat::Ndjson, false, false) => ("ndjson", "application/x-ndjson"),
    };

    // The audit trail first: no export leaves without being recorded.
    let event = read
        .event("audit_log.exported", &params.described)
        .meta("format", extension);
    meta::record(&read.app, event).await?;
    let LogRead { app, org_id, .. } = read;

    let body = match format {
        ExportFormat::Csv => {
            let rows = app.store.export_rows(&org_id, &params.filter)?;
            Body::from_stream(counted(csv_chunks(rows, permit).await?))
        }
        ExportFormat::Ndjson => {
            let chunks =
                ndjson_chunks(app.store.export_ndjson(&org_id, &params.filter)?, permit).await?;
            if params.ocsf {
                let lines = super::ocsf_export::ocsf_lines(chunks, app.validator.clone());
                Body::from_stream(counted(lines))
            } else if params.json_array {
                Body::from_stream(json_array(chunks))
            } else {
                Body::from_stream(counted(chunks))
            }
        }
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

fn engine_error(error: clickhouse::error::Error) -> ApiError {
    ApiError::from(audit_store::bounds::classify(error))
}

fn mid_stream(error: clickhouse::error::Error) -> std::io::Error {
    tracing::warn!(%error, "export stream from ClickHouse failed mid-way");
    std::io::Error::other(error)
}

/// The stored JSON chunk by chunk. The first chunk is awaited before answering, so a query
/// the engine refuses or stops at once is a proper error status, not a truncated 200.
async fn ndjson_chunks(
    mut cursor: BytesCursor,
    permit: ReadPermit,
) -> ApiResult<impl Stream<Item = std::io::Result<Bytes>>> {
    let first = cursor.next().await.map_err(engine_error)?;
    let done = first.is_none();
    let rest = futures::stream::unfold(
        (cursor, permit, done),
        |(mut cursor, permit, done)| async move {
            if done {
                return None;
            }
            match cursor.next().await {
                Ok(Some(bytes)) => Some((Ok(bytes), (cursor, permit, false))),
                Ok(None) => None,
                Err(error) => Some((Err(mid_stream(error)), (cursor, permit, true))),
            }
        },
    );
    Ok(futures::stream::iter(first.map(Ok)).chain(rest))
}

/// CSV encoded here, about [`CSV_CHUNK_BYTES`] per chunk; the first row is awaited before
/// answering, as for NDJSON.
async fn csv_chunks(
    mut rows: RowCursor<ExportRow>,
    permit: ReadPermit,
) -> ApiResult<impl Stream<Item = std::io::Result<Bytes>>> {
    let mut encoder = CsvEncoder::new();
    encoder.header();
    let first = rows.next().await.map_err(engine_error)?;
    let done = first.is_none();
    if let Some(row) = &first {
        encoder.row(row);
    }
    let state = (rows, encoder, permit, done);
    Ok(futures::stream::unfold(
        state,
        |(mut rows, mut encoder, permit, mut done)| async move {
            while !done && encoder.buffered() < CSV_CHUNK_BYTES {
                match rows.next().await {
                    Ok(Some(row)) => encoder.row(&row),
                    Ok(None) => done = true,
                    Err(error) => {
                        return Some((Err(mid_stream(error)), (rows, encoder, permit, true)));
                    }
                }
            }
            let chunk = encoder.take();
            if chunk.is_empty() {
                return None;
            }
            Some((Ok(chunk), (rows, encoder, permit, done)))
        },
    ))
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
