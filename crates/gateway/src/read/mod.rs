//! The read API of an organization's log, for its Owners and Admins (JWT) and, on Enterprise,
//! its read-only API tokens.
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/orgs/{org}/events` | filtered list, newest first, keyset cursor (`next_cursor`) |
//! | `GET /v1/orgs/{org}/events/{id}` | one event |
//! | `GET /v1/orgs/{org}/events/export?format=csv\|json\|ndjson` | the whole filtered log, streamed |
//! | `GET /v1/orgs/{org}/events/feed?after=…` | everything after a cursor in arrival order (SIEM polling) |
//! | `POST/GET /v1/orgs/{org}/api-tokens`, `DELETE …/{id}` | Enterprise read-only API tokens |
//! | `GET /v1/catalogue` | categories and actions (filter choices) |
//!
//! Every read is bounded: its ClickHouse query by time, memory and (except exports) result
//! size (`audit_store::bounds`), and the reads in flight per organization and per reader by
//! [`crate::admission::ReadAdmission`] (429 + `Retry-After` beyond), exports with their own,
//! lower caps.
//!
//! Reading is itself audited: an export is recorded (with its filters) before the first byte
//! is sent, and viewing the log at most once per reader and organization every ten minutes.
//! When the audit trail cannot be written, the read is refused (503): no unaudited reads.

pub mod csv_export;
pub mod cursor;
pub mod export;
pub mod ocsf_export;
pub mod params;
pub mod tokens;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use self::cursor::CursorKind;
use self::params::{FeedQuery, FilterQuery, PageQuery};
use crate::App;
use crate::admission::ReadKind;
use crate::auth::user::Reader;
use crate::error::{ApiError, ApiResult, ErrorResponse, RetryLater};
use crate::meta;
use crate::openapi::{AuditEvent, OrgPath};

/// How often viewing the log is recorded per reader and organization.
const VIEW_RECORD_INTERVAL: Duration = Duration::from_secs(600);

/// Extracts an authenticated reader (not yet authorized for a given organization).
#[derive(Debug)]
pub struct ReaderAuth(pub Reader);

impl FromRequestParts<Arc<App>> for ReaderAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        let view = app.settings.view();
        app.user_auth
            .authenticate(&parts.headers, &view, &app.config.plans)
            .map(ReaderAuth)
    }
}

pub fn router() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(export::export))
        .routes(routes!(feed))
        .routes(routes!(one))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(catalogue))
}

/// A page of events (the list route) or a feed poll.
#[derive(ToSchema)]
#[allow(dead_code)] // read by the derive: the page is written by `page_response`
pub struct EventPage {
    /// The events as stored.
    data: Vec<crate::openapi::AuditEvent>,
    /// List: the cursor of the next page (`null` on the last). Feed: the cursor to poll with
    /// next (the one sent when nothing is new; `null` only when the log is empty).
    next_cursor: Option<String>,
    /// Whether more events follow right now.
    has_more: bool,
}

/// The catalogue: the categories and actions events may have.
#[derive(Serialize, ToSchema)]
pub struct CatalogueView {
    categories: Vec<CategoryView>,
}

#[derive(Serialize, ToSchema)]
pub struct CategoryView {
    name: String,
    description: String,
    /// A category still being introduced.
    beta: bool,
    actions: Vec<ActionView>,
}

#[derive(Serialize, ToSchema)]
pub struct ActionView {
    name: String,
    description: String,
}

/// A JSON page: `{"data": [<events>], "next_cursor": …, "has_more": …}`, the events spliced
/// in as stored (canonical JSON) without re-encoding.
fn page_response(
    rows: &[audit_store::query::ListedEvent],
    next_cursor: Option<String>,
    has_more: bool,
) -> Response {
    let mut body = String::with_capacity(rows.iter().map(|r| r.raw.len() + 1).sum::<usize>() + 128);
    body.push_str("{\"data\":[");
    for (index, row) in rows.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        body.push_str(&row.raw);
    }
    body.push_str("],\"next_cursor\":");
    body.push_str(&serde_json::to_string(&next_cursor).unwrap_or_else(|_| "null".into()));
    body.push_str(",\"has_more\":");
    body.push_str(if has_more { "true" } else { "false" });
    body.push('}');
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Records `audit_log.viewed` unless this reader did so recently for this organization.
async fn record_view(
    app: &App,
    reader: &Reader,
    org_id: &str,
    headers: &HeaderMap,
    described: &[(String, String)],
) -> ApiResult<()> {
    let key = (org_id.to_string(), reader.subject.clone());
    {
        let recent = app.recent_views.lock().unwrap_or_else(|e| e.into_inner());
        if recent
            .get(&key)
            .is_some_and(|at| at.elapsed() < VIEW_RECORD_INTERVAL)
        {
            return Ok(());
        }
    }
    let mut event = meta::event(org_id, "audit_log.viewed", reader.actor(), headers);
    for (name, value) in described {
        event = event.meta(&format!("filter.{name}"), value.clone());
    }
    meta::record(app, event).await?;
    let mut recent = app.recent_views.lock().unwrap_or_else(|e| e.into_inner());
    recent.retain(|_, at| at.elapsed() < VIEW_RECORD_INTERVAL);
    recent.insert(key, Instant::now());
    Ok(())
}

/// Records a verification or an integrity bundle as a view of the log (throttled like views).
pub(crate) async fn record_integrity_view(
    app: &App,
    reader: &Reader,
    org_id: &str,
    headers: &HeaderMap,
) -> ApiResult<()> {
    record_view(
        app,
        reader,
        org_id,
        headers,
        &[("integrity".into(), "verify".into())],
    )
    .await
}

/// List an organization's events, newest first
///
/// Filtered, paged with a keyset cursor. The first page of a listing is recorded in the
/// organization's log (at most once per reader every ten minutes).
#[utoipa::path(get, path = "/v1/orgs/{org}/events", tag = "read", operation_id = "listEvents",
    params(OrgPath, FilterQuery, PageQuery),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        (status = 400, response = ErrorResponse),
        (status = 403, response = ErrorResponse),
        (status = 404, response = ErrorResponse),
        (status = 429, response = RetryLater),
        (status = 503, response = RetryLater),
    ),
    security(("user_jwt" = []), ("api_token" = [])))]
async fn list(
    State(app): State<Arc<App>>,
    ReaderAuth(reader): ReaderAuth,
    Path(org_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    reader.authorize(&org_id)?;
    let read = &app.config.read;
    let params = params::parse(
        query.as_deref(),
        &["limit", "cursor"],
        app.validator.catalogue(),
        read.max_limit,
    )?;
    let _permit = app.reads.admit(ReadKind::Query, &org_id, &reader.subject)?;
    let cursor = match &params.cursor {
        Some(cursor) => {
            let (at, id) = app
                .cursors
                .decode(CursorKind::Page, &org_id, "cursor", cursor)?;
            Some(audit_store::query::PageCursor {
                occurred_at_ms: at,
                id,
            })
        }
        None => None,
    };
    if cursor.is_none() {
        record_view(&app, &reader, &org_id, &headers, &params.described).await?;
    }
    let limit = params.limit.unwrap_or(read.default_limit);
    let rows = app
        .store
        .list_events(&org_id, &params.filter, cursor, limit + 1)
        .await?;
    let (rows, last, has_more) = cut_page(&app, CursorKind::Page, &org_id, rows, limit)?;
    let next_cursor = if has_more { last } else { None };
    metrics::counter!("gateway_reads_total", "kind" => "list").increment(1);
    Ok(page_response(&rows, next_cursor, has_more))
}

/// Cuts rows fetched with `limit + 1` to `limit`; returns them, the signed cursor of the last
/// row kept (if any), and whether more rows follow.
fn cut_page(
    app: &App,
    kind: CursorKind,
    org_id: &str,
    mut rows: Vec<audit_store::query::ListedEvent>,
    limit: u32,
) -> ApiResult<(Vec<audit_store::query::ListedEvent>, Option<String>, bool)> {
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let last = match rows.last() {
        Some(last) => {
            Some(
                app.cursors
                    .encode(kind, org_id, last.position_ms, parse_id(&last.event_id)?),
            )
        }
        None => None,
    };
    Ok((rows, last, has_more))
}

fn parse_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::Internal(format!("stored id `{id}` is not a UUID")))
}

/// One event
#[utoipa::path(get, path = "/v1/orgs/{org}/events/{id}", tag = "read", operation_id = "getEvent",
    params(OrgPath, ("id" = String, Path, description = "Event id (a UUID)", format = "uuid")),
    responses(
        (status = 200, description = "The event as stored", body = AuditEvent),
        (status = 400, response = ErrorResponse),
        (status = 403, response = ErrorResponse),
        (status = 404, response = ErrorResponse),
        (status = 429, response = RetryLater),
        (status = 503, response = RetryLater),
    ),
    security(("user_jwt" = []), ("api_token" = [])))]
async fn one(
    State(app): State<Arc<App>>,
    ReaderAuth(reader): ReaderAuth,
    Path((org_id, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    reader.authorize(&org_id)?;
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::bad_request("id", "must be a UUID"))?;
    let _permit = app.reads.admit(ReadKind::Query, &org_id, &reader.subject)?;
    let raw = app
        .store
        .event_json(&org_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("event `{id}` not found")))?;
    let mut response = raw.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// Poll everything after a cursor, in arrival order
///
/// A SIEM or compliance tool polls this with the returned `next_cursor` and gets every event
/// exactly once, late arrivals included. No filters.
#[utoipa::path(get, path = "/v1/orgs/{org}/events/feed", tag = "read", operation_id = "pollFeed",
    params(OrgPath, FeedQuery),
    responses(
        (status = 200, description = "The next events", body = EventPage),
        (status = 400, response = ErrorResponse),
        (status = 403, response = ErrorResponse),
        (status = 404, response = ErrorResponse),
        (status = 429, response = RetryLater),
        (status = 503, response = RetryLater),
    ),
    security(("user_jwt" = []), ("api_token" = [])))]
async fn feed(
    State(app): State<Arc<App>>,
    ReaderAuth(reader): ReaderAuth,
    Path(org_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    reader.authorize(&org_id)?;
    let read = &app.config.read;
    let params = params::parse(
        query.as_deref(),
        &["limit", "after"],
        app.validator.catalogue(),
        read.max_limit,
    )?;
    if !params.described.is_empty() {
        return Err(ApiError::bad_request(
            &params.described[0].0,
            "the feed takes no filters (only `after` and `limit`); filter on your side",
        ));
    }
    let _permit = app.reads.admit(ReadKind::Query, &org_id, &reader.subject)?;
    let after = match &params.after {
        Some(after) => {
            let (at, id) = app
                .cursors
                .decode(CursorKind::Feed, &org_id, "after", after)?;
            Some(audit_store::query::FeedCursor {
                indexed_at_ms: at,
                id,
            })
        }
        None => None,
    };
    record_view(
        &app,
        &reader,
        &org_id,
        &headers,
        &[("feed".into(), "true".into())],
    )
    .await?;
    let limit = params.limit.unwrap_or(read.max_limit);
    let rows = app
        .store
        .feed(&org_id, after, read.feed_settle_secs, limit + 1)
        .await?;
    let (rows, last, has_more) = cut_page(&app, CursorKind::Feed, &org_id, rows, limit)?;
    // Nothing new: poll again with the same cursor.
    let next_cursor = last.or_else(|| params.after.clone());
    metrics::counter!("gateway_reads_total", "kind" => "feed").increment(1);
    Ok(page_response(&rows, next_cursor, has_more))
}

/// The catalogue of categories and actions (filter choices)
#[utoipa::path(get, path = "/v1/catalogue", tag = "read", operation_id = "getCatalogue",
    responses((status = 200, description = "The catalogue", body = CatalogueView)),
    security(("user_jwt" = []), ("api_token" = [])))]
async fn catalogue(
    State(app): State<Arc<App>>,
    ReaderAuth(_reader): ReaderAuth,
) -> Json<CatalogueView> {
    let categories = app
        .validator
        .catalogue()
        .categories()
        .map(|category| CategoryView {
            name: category.name.clone(),
            description: category.description.clone(),
            beta: category.beta,
            actions: category
                .actions
                .iter()
                .map(|action| ActionView {
                    name: action.name.clone(),
                    description: action.description.clone(),
                })
                .collect(),
        })
        .collect();
    Json(CatalogueView { categories })
}
