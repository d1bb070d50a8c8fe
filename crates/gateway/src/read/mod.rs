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

use audit_core::system::SystemEvent;
use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
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
use crate::admission::{ReadKind, ReadPermit};
use crate::auth::user::Reader;
use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::openapi::{AuditEvent, OrgPath, ReaderRequest, TooManyReads};

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

/// A read of one organization's log (list, feed, export): what the handler needs besides the
/// route's own parameters. Extracting it authenticates the reader and authorizes it for the
/// organization in the path (`{org}`).
pub struct LogRead {
    pub app: Arc<App>,
    pub reader: Reader,
    pub org_id: String,
    /// The raw query string, parsed by [`LogRead::params`].
    pub query: Option<String>,
    /// The request's headers, for the read's audit event.
    pub headers: HeaderMap,
}

impl FromRequestParts<Arc<App>> for LogRead {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        let ReaderAuth(reader) = ReaderAuth::from_request_parts(parts, app)
            .await
            .map_err(IntoResponse::into_response)?;
        let Path(org_id) = Path::<String>::from_request_parts(parts, app)
            .await
            .map_err(IntoResponse::into_response)?;
        reader
            .authorize(&org_id)
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            app: Arc::clone(app),
            reader,
            org_id,
            query: parts.uri.query().map(str::to_string),
            headers: parts.headers.clone(),
        })
    }
}

impl LogRead {
    /// The query's parameters: the filters and the route's `extra` ones.
    fn params(&self, extra: &[&str]) -> ApiResult<params::ReadParams> {
        params::parse(
            self.query.as_deref(),
            extra,
            self.app.validator.catalogue(),
            self.app.config.read.max_limit,
        )
    }

    /// A read slot of `kind` for this organization and reader (429 when none is free).
    fn admit(&self, kind: ReadKind) -> ApiResult<ReadPermit> {
        self.app
            .reads
            .admit(kind, &self.org_id, &self.reader.subject)
    }

    /// The position a cursor parameter (`param`) signed for this organization names, if given.
    fn decode_cursor(
        &self,
        kind: CursorKind,
        param: &str,
        cursor: Option<&str>,
    ) -> ApiResult<Option<(i64, Uuid)>> {
        cursor
            .map(|cursor| self.app.cursors.decode(kind, &self.org_id, param, cursor))
            .transpose()
    }

    /// The read's audit event, with its filters.
    fn event(&self, action: &'static str, described: &[(String, String)]) -> SystemEvent {
        let event = meta::event(&self.org_id, action, self.reader.actor(), &self.headers);
        with_filters(event, described)
    }

    /// Records this read as a view of the log (throttled: see [`record_view`]).
    async fn record_view(&self, described: &[(String, String)]) -> ApiResult<()> {
        record_view(
            &self.app,
            &self.reader,
            &self.org_id,
            &self.headers,
            described,
        )
        .await
    }
}

/// Adds the filters of a read (`filter.<name>`) to its audit event.
fn with_filters(mut event: SystemEvent, described: &[(String, String)]) -> SystemEvent {
    for (name, value) in described {
        event = event.meta(&format!("filter.{name}"), value.clone());
    }
    event
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
    let event = meta::event(org_id, "audit_log.viewed", reader.actor(), headers);
    meta::record(app, with_filters(event, described)).await?;
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
        ReaderRequest, TooManyReads,
    ),
    security(("user_jwt" = []), ("api_token" = [])))]
async fn list(read: LogRead) -> ApiResult<Response> {
    let params = read.params(&["limit", "cursor"])?;
    let _permit = read.admit(ReadKind::Query)?;
    let cursor = read
        .decode_cursor(CursorKind::Page, "cursor", params.cursor.as_deref())?
        .map(|(at, id)| audit_store::query::PageCursor {
            occurred_at_ms: at,
            id,
        });
    if cursor.is_none() {
        read.record_view(&params.described).await?;
    }
    let limit = params.limit.unwrap_or(read.app.config.read.default_limit);
    let rows = read
        .app
        .store
        .list_events(&read.org_id, &params.filter, cursor, limit + 1)
        .await?;
    let (rows, last, has_more) = cut_page(&read.app, CursorKind::Page, &read.org_id, rows, limit)?;
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
        ReaderRequest, TooManyReads,
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
        ReaderRequest, TooManyReads,
    ),
    security(("user_jwt" = []), ("api_token" = [])))]
async fn feed(read: LogRead) -> ApiResult<Response> {
    let params = read.params(&["limit", "after"])?;
    if !params.described.is_empty() {
        return Err(ApiError::bad_request(
            &params.described[0].0,
            "the feed takes no filters (only `after` and `limit`); filter on your side",
        ));
    }
    let _permit = read.admit(ReadKind::Query)?;
    let after = read
        .decode_cursor(CursorKind::Feed, "after", params.after.as_deref())?
        .map(|(at, id)| audit_store::query::FeedCursor {
            indexed_at_ms: at,
            id,
        });
    read.record_view(&[("feed".into(), "true".into())]).await?;
    let config = &read.app.config.read;
    let limit = params.limit.unwrap_or(config.max_limit);
    let rows = read
        .app
        .store
        .feed(&read.org_id, after, config.feed_settle_secs, limit + 1)
        .await?;
    let (rows, last, has_more) = cut_page(&read.app, CursorKind::Feed, &read.org_id, rows, limit)?;
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
