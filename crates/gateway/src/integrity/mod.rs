//! Tamper evidence for readers (docs/integrity.md): the published keys, an organization's
//! signed digests, the proof that one event is in the log, the verification of a range, and
//! the bundle an auditor needs to verify an export offline.
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/integrity/keys` | the public keys digests are signed with (public) |
//! | `GET /v1/orgs/{org}/integrity/digests?since&until` | digests sealed in the range |
//! | `GET /v1/orgs/{org}/integrity/proof/{event_id}` | the event's leaf, audit path and window digest |
//! | `GET /v1/orgs/{org}/integrity/verify?since&until` | the verdict for events that occurred in the range |
//! | `GET /v1/orgs/{org}/integrity/bundle?since&until` | digests and leaves for `audit-verify` |
//!
//! Organization-scoped like every read (Owners/Admins, API tokens); verifying and bundling
//! are recorded as views of the log.

pub mod heads;
pub mod schemas;

use std::sync::Arc;
use std::time::Duration;

use audit_integrity::check::{self, LeafRecord, Scope, StoredEvent, Window};
use audit_integrity::{PublicKeys, SignedDigest};
use audit_store::{DigestRow, LeafRow};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use self::heads::PublishedHeads;
use crate::App;
use crate::error::{ApiError, ApiQuery, ApiResult};
use crate::openapi::{NotFound, OrgPath, ReaderRequest};
use crate::read::ReaderAuth;

/// Events cannot be indexed before they occur (minus the allowed clock skew): windows sealed
/// this long before `since` cannot hold events of the range.
const SKEW: time::Duration = time::Duration::minutes(5);
/// Most digests one request returns.
const MAX_DIGESTS: u64 = 100_000;

/// What the gateway needs for tamper evidence.
#[derive(Debug, Clone)]
pub struct Integrity {
    pub keys: PublicKeys,
    pub heads: PublishedHeads,
    /// The indexer's window: a chain older than two windows is "not sealed recently".
    pub window: Duration,
    /// Most events one verification reads (beyond: narrow the range).
    pub max_events: u64,
    /// `integrity.in_flight_secs`: rows indexed this close to the newest seal may be in the
    /// next window.
    pub in_flight: time::Duration,
}

pub fn router() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(keys))
        .routes(routes!(digests))
        .routes(routes!(proof))
        .routes(routes!(verify))
        .routes(routes!(bundle))
}

/// `since`/`until` (RFC 3339 with a zone; `until` exclusive). Defaults: the last 24 hours.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeParams {
    since: Option<String>,
    until: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Range {
    since: OffsetDateTime,
    until: OffsetDateTime,
}

impl RangeParams {
    fn range(&self, now: OffsetDateTime) -> ApiResult<Range> {
        let parse = |name: &str, value: &Option<String>| -> ApiResult<Option<OffsetDateTime>> {
            value
                .as_deref()
                .map(|text| {
                    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
                        ApiError::bad_request(name, "must be an RFC 3339 time with a zone")
                    })
                })
                .transpose()
        };
        let until = parse("until", &self.until)?.unwrap_or(now);
        let since = parse("since", &self.since)?.unwrap_or(until - time::Duration::days(1));
        if since >= until {
            return Err(ApiError::bad_request("since", "must be before `until`"));
        }
        Ok(Range { since, until })
    }
}

fn enabled(app: &App) -> ApiResult<&Integrity> {
    app.integrity.as_ref().ok_or_else(|| {
        ApiError::NotFound("tamper evidence is not enabled on this deployment".into())
    })
}

/// The public keys digests are signed with (no credential)
///
/// 404 when tamper evidence is not enabled on the deployment.
#[utoipa::path(get, path = "/v1/integrity/keys", tag = "integrity", operation_id = "getIntegrityKeys",
    responses(
        (status = 200, description = "The keys", body = schemas::PublishedKeys),
        NotFound,
    ))]
async fn keys(State(app): State<Arc<App>>) -> ApiResult<Json<Value>> {
    let integrity = enabled(&app)?;
    Ok(Json(json!({"keys": integrity.keys.published()})))
}

/// The signed digests sealed in a range
#[utoipa::path(get, path = "/v1/orgs/{org}/integrity/digests", tag = "integrity", operation_id = "listIntegrityDigests",
    params(OrgPath, schemas::RangeQuery),
    responses(
        (status = 200, description = "The digests", body = schemas::DigestList),
        ReaderRequest,
    ),
    security(("user_jwt" = []), ("api_token" = [])))]
async fn digests(
    State(app): State<Arc<App>>,
    ReaderAuth(reader): ReaderAuth,
    Path(org_id): Path<String>,
    ApiQuery(params): ApiQuery<RangeParams>,
) -> ApiResult<Json<Value>> {
    reader.authorize(&org_id)?;
    enabled(&app)?;
    let range = params.range(OffsetDateTime::now_utc())?;
    let rows = app
        .store
        .digests_since(&org_id, range.since, MAX_DIGESTS)
        .await?;
    let digests: Vec<SignedDigest> = rows
        .iter()
        .filter(|row| row.sealed_at < range.until)
        .map(published)
        .collect();
    Ok(Json(json!({"org_id": org_id, "digests": digests})))
}

/// The proof that an event is in a sealed window
#[utoipa::path(get, path = "/v1/orgs/{org}/integrity/proof/{event_id}", tag = "integrity", operation_id = "getInclusionProof",
    params(OrgPath, ("event_id" = String, Path, description = "Event id (a UUID)", format = "uuid")),
    responses(
        (status = 200, description = "Leaf, audit path and digest", body = schemas::InclusionProof),
        ReaderRequest,
    ),
    security(("user_jwt" = []), ("api_token" = [])))]
async fn proof(
    State(app): State<Arc<App>>,
    ReaderAuth(reader): ReaderAuth,
    Path((org_id, event_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    reader.authorize(&org_id)?;
    enabled(&app)?;
    let id = Uuid::parse_str(&event_id)
        .map_err(|_| ApiError::bad_request("event_id", "must be a UUID"))?;
    let not_sealed = || ApiError::NotFound(format!("event `{id}` is not in a sealed window (yet)"));
    let seq = app
        .store
        .window_of_event(&org_id, id)
        .await?
        .ok_or_else(not_sealed)?;
    let windows = load_windows(&app, &org_id, seq, seq).await?;
    let window = windows.into_iter().next().ok_or_else(not_sealed)?;
    let leaves: Vec<audit_integrity::Hash> = window.leaves.iter().map(|leaf| leaf.leaf).collect();
    let index = window
        .leaves
        .iter()
        .position(|leaf| leaf.id == id.to_string())
        .ok_or_else(not_sealed)?;
    let path = audit_integrity::audit_path(&leaves, index).unwrap_or_default();
    Ok(Json(json!({
        "event_id": id,
        "leaf": hex::encode(leaves[index]),
        "leaf_index": index,
        "tree_size": leaves.len(),
        "audit_path": path.iter().map(hex::encode).collect::<Vec<_>>(),
        "digest": window.digest,
    })))
}

/// The verdict for the events that occurred in the range.
#[derive(Debug, Serialize)]
struct Verdict {
    org_id: String,
    #[serde(with = "time::serde::rfc3339")]
    since: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    until: OffsetDateTime,
    /// `intact`, `problems`, or `not_yet_sealed` (intact so far, newest events not sealed).
    state: &'static str,
    /// Whether the newest digest was compared with the one published outside the store.
    head_confirmed: bool,
    #[serde(flatten)]
    report: check::Report,
}

/// Verify the events that occurred in a range
///
/// Recorded as a view of the log.
#[utoipa::path(get, path = "/v1/orgs/{org}/integrity/verify", tag = "integrity", operation_id = "verifyIntegrity",
    params(OrgPath, schemas::RangeQuery),
    responses(
        (status = 200, description = "The verdict", body = schemas::Verdict),
        ReaderRequest,
    ),
    security(("user_jwt" = []), ("api_token" = [])))]
async fn verify(
    State(app): State<Arc<App>>,
    ReaderAuth(reader): ReaderAuth,
    Path(org_id): Path<String>,
    ApiQuery(params): ApiQuery<RangeParams>,
    headers: HeaderMap,
) -> ApiResult<Json<Verdict>> {
    reader.authorize(&org_id)?;
    let integrity = enabled(&app)?;
    let now = OffsetDateTime::now_utc();
    let range = params.range(now)?;
    crate::read::record_integrity_view(&app, &reader, &org_id, &headers).await?;

    let windows = windows_for(&app, &org_id, range).await?;
    let rows = app
        .store
        .stored_rows(&org_id, range.since, range.until, integrity.max_events + 1)
        .await?;
    if rows.len() as u64 > integrity.max_events {
        return Err(ApiError::bad_request(
            "since",
            format!(
                "the range holds more than {} events; verify a narrower range",
                integrity.max_events
            ),
        ));
    }
    let external = integrity.heads.head(&org_id);
    let stale_after = time::Duration::try_from(integrity.window * 2 + Duration::from_secs(60))
        .unwrap_or(time::Duration::HOUR);
    let scope = Scope {
        org_id: &org_id,
        since: range.since,
        until: range.until,
        now,
        external_head: external.as_ref(),
        stale_after,
    };
    let events: Vec<StoredEvent> = rows
        .iter()
        .map(|row| StoredEvent {
            raw: row.raw.as_bytes().to_vec(),
        })
        .collect();
    let mut report = check::check(&scope, &windows, &events, &integrity.keys);
    report
        .findings
        .extend(cut_before(&app, &org_id, &windows).await?);
    report.findings.extend(columns_altered(&rows));
    // Rows indexed after the newest seal (less the time a batch takes to reach the sealer)
    // are not in a window yet: not insertions, the range is only "not yet sealed". That
    // benefit ends when the sealer would have sealed them (a chain this late is not sealed
    // recently anyway), and a row claiming to be indexed in the future never gets it.
    let sealed_until = report
        .sealed_until
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .max(now - stale_after);
    let unsealed: std::collections::HashSet<String> = app
        .store
        .indexed_between(
            &org_id,
            range.since,
            range.until,
            sealed_until - integrity.in_flight,
            now + integrity.in_flight,
        )
        .await?
        .into_iter()
        .collect();
    report.findings.retain(|finding| {
        !(matches!(finding.kind, check::FindingKind::Inserted)
            && finding
                .event_id
                .as_ref()
                .is_some_and(|id| unsealed.contains(id)))
    });
    report.intact = report.findings.is_empty();
    let newest_unsealed = !unsealed.is_empty();
    let state = match (report.intact, newest_unsealed) {
        (false, _) => "problems",
        (true, true) => "not_yet_sealed",
        (true, false) => "intact",
    };
    metrics::counter!("gateway_integrity_verifications_total", "state" => state).increment(1);
    Ok(Json(Verdict {
        org_id,
        since: range.since,
        until: range.until,
        state,
        head_confirmed: external.is_some(),
        report,
    }))
}

/// The bundle `audit-verify` needs to verify an export offline
///
/// Recorded as a view of the log.
#[utoipa::path(get, path = "/v1/orgs/{org}/integrity/bundle", tag = "integrity", operation_id = "getIntegrityBundle",
    params(OrgPath, schemas::RangeQuery),
    responses(
        (status = 200, description = "Digests and leaves", body = schemas::Bundle),
        ReaderRequest,
    ),
    security(("user_jwt" = []), ("api_token" = [])))]
async fn bundle(
    State(app): State<Arc<App>>,
    ReaderAuth(reader): ReaderAuth,
    Path(org_id): Path<String>,
    ApiQuery(params): ApiQuery<RangeParams>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    reader.authorize(&org_id)?;
    enabled(&app)?;
    let now = OffsetDateTime::now_utc();
    let range = params.range(now)?;
    crate::read::record_integrity_view(&app, &reader, &org_id, &headers).await?;
    let windows = windows_for(&app, &org_id, range).await?;
    let windows: Vec<Value> = windows
        .iter()
        .map(|window| {
            json!({
                "digest": window.digest,
                "leaves": window.leaves.iter().map(|leaf| json!({
                    "leaf": hex::encode(leaf.leaf),
                    "id": leaf.id,
                    "occurred_at": audit_integrity::note::format_time(leaf.occurred_at),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({
        "format": "solarius-audit-integrity-bundle/v1",
        "org_id": org_id,
        "since": audit_integrity::note::format_time(range.since),
        "until": audit_integrity::note::format_time(range.until),
        "generated_at": audit_integrity::note::format_time(now),
        "windows": windows,
    })))
}

/// The windows that can hold events of the range: from the first sealed at `since - SKEW`
/// to the newest.
async fn windows_for(app: &App, org_id: &str, range: Range) -> ApiResult<Vec<Window>> {
    let digests = app
        .store
        .digests_since(org_id, range.since - SKEW, MAX_DIGESTS)
        .await?;
    let (Some(first), Some(last)) = (digests.first(), digests.last()) else {
        return Ok(Vec::new());
    };
    let leaves = app.store.leaves_of(org_id, first.seq, last.seq).await?;
    Ok(assemble(&digests, leaves))
}

/// The range's chain must continue one that is still stored: every organization's chain gets
/// a digest every window, so the window before the first one loaded was sealed shortly before
/// the range. Its absence means the chain was cut there (digests and leaves deleted, with
/// the events they covered) and the indexer kept sealing after the cut.
async fn cut_before(
    app: &App,
    org_id: &str,
    windows: &[Window],
) -> ApiResult<Option<check::Finding>> {
    let Some(first) = windows.first() else {
        return Ok(None);
    };
    let seq = first.digest.seq;
    if seq == 0 {
        return Ok(None);
    }
    let before = app.store.digests_between(org_id, seq - 1, seq - 1).await?;
    if !before.is_empty() {
        return Ok(None);
    }
    Ok(Some(check::Finding {
        kind: check::FindingKind::BrokenChain,
        seq: Some(seq),
        event_id: None,
        detail: format!(
            "window {} is missing from the store: the chain was cut before window {seq}",
            seq - 1
        ),
    }))
}

async fn load_windows(app: &App, org_id: &str, first: u64, last: u64) -> ApiResult<Vec<Window>> {
    let digests = app.store.digests_between(org_id, first, last).await?;
    let leaves = app.store.leaves_of(org_id, first, last).await?;
    Ok(assemble(&digests, leaves))
}

/// Digests with their leaves (only the leaves carrying the digest's hash: a window re-sealed
/// after a crash leaves nothing of the unpublished one behind).
fn assemble(digests: &[DigestRow], leaves: Vec<LeafRow>) -> Vec<Window> {
    let mut leaves = leaves.into_iter().peekable();
    digests
        .iter()
        .map(|digest| {
            let mut window = Window {
                digest: published(digest),
                leaves: Vec::new(),
            };
            while let Some(leaf) = leaves.next_if(|leaf| leaf.seq <= digest.seq) {
                if leaf.seq == digest.seq && leaf.digest_hash == digest.hash {
                    window.leaves.push(LeafRecord {
                        leaf: leaf.leaf,
                        id: leaf.id.to_string(),
                        occurred_at: leaf.occurred_at,
                    });
                }
            }
            window
        })
        .collect()
}

fn published(row: &DigestRow) -> SignedDigest {
    SignedDigest {
        org_id: row.org_id.clone(),
        seq: row.seq,
        note: row.note.clone(),
        key_id: row.key_id.clone(),
        signature: row.signature.clone(),
        hash: row.hash.clone(),
    }
}

/// Stored columns that differ from what the event's bytes say (an edit of a column behind
/// the event's back changes what filters find).
fn columns_altered(rows: &[audit_store::EventRow]) -> Vec<check::Finding> {
    let mut findings = Vec::new();
    for row in rows {
        let Ok(event) = serde_json::from_str::<audit_core::AuditEvent>(&row.raw) else {
            continue; // reported as altered/inserted by its bytes
        };
        let derived = audit_store::EventRow::from_event(
            &event,
            row.raw.as_bytes(),
            row.retention_days,
            row.received_at,
        );
        if &derived != row {
            findings.push(check::Finding {
                kind: check::FindingKind::Altered,
                seq: None,
                event_id: Some(row.id.to_string()),
                detail: format!(
                    "stored columns differ from the event's bytes ({})",
                    differing_columns(&derived, row)
                ),
            });
        }
    }
    findings
}

fn differing_columns(derived: &audit_store::EventRow, stored: &audit_store::EventRow) -> String {
    let derived = serde_json::to_value(derived).unwrap_or_default();
    let stored = serde_json::to_value(stored).unwrap_or_default();
    let (Some(derived), Some(stored)) = (derived.as_object(), stored.as_object()) else {
        return "unknown".into();
    };
    derived
        .iter()
        .filter(|(name, value)| stored.get(*name) != Some(value))
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
