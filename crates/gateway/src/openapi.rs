//! The HTTP API as an OpenAPI 3.1 document, generated from the code.
//!
//! Every public API route is registered with `utoipa_axum::routes!` from its handler's
//! `#[utoipa::path]` attribute ([`crate::api_router`]): the router that serves a route and the
//! document that describes it come from the same line, so a route cannot exist undocumented.
//! This module adds what belongs to no single handler:
//! * the document's info, tags and the four credential kinds as security schemes
//!   (producer keys, user JWTs, Enterprise API tokens, operator tokens);
//! * the one error body ([`ErrorBody`]) and the responses every operation shares: 401 for
//!   every operation that needs a credential, 500 for all;
//! * named sets of the other error responses ([`SettingsChange`], [`ReaderRequest`], …), so
//!   that a handler's `responses(...)` names what can go wrong rather than listing statuses;
//! * the event (`AuditEvent`): the published JSON Schema of the event contract
//!   (`audit_core::EVENT_SCHEMA_JSON`), verbatim but for its `$defs`, which are inlined.
//!
//! The document is served at `GET /openapi.json` (public, no credential), printed by
//! `gateway openapi`, and committed as `docs/openapi.json`; a unit test keeps that file
//! identical to [`render`]. The dashboard page and its assets are HTML for browsers, not API,
//! and are not in it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, Response as OaResponse};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, PartialSchema, ToResponse, ToSchema};

use crate::error::{ErrorBody, ErrorResponse, RetryLater, Unauthenticated};

/// Security scheme names, as handlers name them in `security(...)`.
pub const PRODUCER_KEY: &str = "producer_key";
pub const PRODUCER_KEY_HEADER: &str = "producer_key_header";
pub const USER_JWT: &str = "user_jwt";
pub const API_TOKEN: &str = "api_token";
pub const OPERATOR_TOKEN: &str = "operator_token";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Audit logs API",
        description = "Organization audit logs: ingest for product services, reads, exports, the \
            arrival-ordered feed and tamper evidence for Owners/Admins and Enterprise API tokens, \
            and the operator settings API. Every error has the body `ErrorBody`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(
        schemas(ErrorBody, AuditEvent),
        responses(ErrorResponse, RetryLater, Unauthenticated)
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "ingest", description = "Publishing events (producer API keys)"),
        (name = "read", description = "Reading an organization's log (Owners/Admins, Enterprise API tokens)"),
        (name = "api-tokens", description = "Enterprise read-only API tokens (Owners/Admins)"),
        (name = "integrity", description = "Tamper evidence (docs/integrity.md)"),
        (name = "admin", description = "Operator API: tenant settings and producer keys"),
        (name = "meta", description = "Health and this document"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |format: &str, description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format(format)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme(
            PRODUCER_KEY,
            bearer(
                "ak_<id>_<secret>",
                "A producer API key (created with `POST /v1/admin/producer-keys`), scoped to \
                 categories and optionally organizations.",
            ),
        );
        components.add_security_scheme(
            PRODUCER_KEY_HEADER,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Api-Key",
                "The producer API key in `X-Api-Key` instead of `Authorization`.",
            ))),
        );
        components.add_security_scheme(
            USER_JWT,
            bearer(
                "JWT",
                "A user token from the platform's identity provider (claims `sub`, `org_id`, \
                 `role`: owner, admin or member). Members get 403; another organization's \
                 path answers 404.",
            ),
        );
        components.add_security_scheme(
            API_TOKEN,
            bearer(
                "at_<id>_<secret>",
                "An Enterprise read-only API token of one organization (created with \
                 `POST /v1/orgs/{org}/api-tokens`).",
            ),
        );
        components.add_security_scheme(
            OPERATOR_TOKEN,
            bearer(
                "opaque",
                "An operator token (platform staff), configured as a SHA-256 in `[operators]`.",
            ),
        );
    }
}

/// The organization named in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct OrgPath {
    /// Organization id (an event's `org_id`).
    #[param(
        min_length = 1,
        max_length = 128,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]*$"
    )]
    #[allow(dead_code)] // read by the derive
    pub org: String,
}

/// Declares sets of error responses for the `responses(...)` of `#[utoipa::path]`: each set a
/// unit type whose [`IntoResponses`] refers, by status, to the shared responses (components).
macro_rules! response_sets {
    ($($(#[$doc:meta])* $name:ident { $($status:literal => $response:ty),+ $(,)? })+) => {$(
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<OaResponse>> {
                [$(($status, <$response as ToResponse>::response().0)),+]
                    .into_iter()
                    .map(|(status, name)| (status.to_string(), RefOr::Ref(Ref::from_response_name(name))))
                    .collect()
            }
        }
    )+};
}

response_sets! {
    /// 400: a path segment, parameter or header is refused.
    BadRequest { "400" => ErrorResponse }
    /// 403: the credential may not do this (role, plan).
    Forbidden { "403" => ErrorResponse }
    /// 404: no such thing (or not the caller's organization).
    NotFound { "404" => ErrorResponse }
    /// 409: the thing is not in a state that allows this.
    Conflict { "409" => ErrorResponse }
    /// 415 and 422: a request body that is not JSON, or does not validate.
    JsonBodyRefused { "415" => ErrorResponse, "422" => ErrorResponse }
    /// 429: too many reads in flight for the organization or the reader.
    TooManyReads { "429" => RetryLater }
    /// 503: a store or the settings topic is unavailable.
    Unavailable { "503" => RetryLater }
    /// A change of an organization's settings (`admin::update_org`): 400 (organization id,
    /// `If-Match`), 412 (changed since the `If-Match` revision), 503 (the settings topic).
    SettingsChange { "400" => ErrorResponse, "412" => ErrorResponse, "503" => RetryLater }
    /// A reader's request on an organization: 400 (a parameter), 403 (role or plan), 404 (not
    /// the reader's organization, or nothing there), 503 (a store).
    ReaderRequest { "400" => ErrorResponse, "403" => ErrorResponse, "404" => ErrorResponse, "503" => RetryLater }
}

/// A stored or submitted event: the event contract's JSON Schema (replaced in [`document`]).
pub struct AuditEvent;

impl PartialSchema for AuditEvent {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::Object::new().into()
    }
}

impl ToSchema for AuditEvent {}

/// The document as JSON.
pub fn document() -> Value {
    let mut api = ApiDoc::openapi();
    api.merge(crate::api_router().into_openapi());
    api.info.version = env!("CARGO_PKG_VERSION").to_string();
    for item in api.paths.paths.values_mut() {
        for operation in operations(item) {
            add_shared_responses(operation);
        }
    }
    let mut json = serde_json::to_value(&api).unwrap_or(Value::Null);
    json["components"]["schemas"]["AuditEvent"] = event_schema();
    json
}

/// The document as committed in `docs/openapi.json` (pretty, one trailing newline).
pub fn render() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// 401 on every operation that needs a credential, 500 on all (`ApiError::Internal`).
fn add_shared_responses(operation: &mut Operation) {
    let secured = operation
        .security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty());
    let responses = &mut operation.responses.responses;
    let reference =
        |name: &str| RefOr::<OaResponse>::Ref(utoipa::openapi::Ref::from_response_name(name));
    if secured && !responses.contains_key("401") {
        responses.insert("401".into(), reference("Unauthenticated"));
    }
    responses
        .entry("500".into())
        .or_insert_with(|| reference("ErrorResponse"));
}

/// The event contract's JSON Schema as an OpenAPI 3.1 schema object: `$defs` inlined
/// (a `{"$ref": "#/$defs/x", …}` becomes the definition with the siblings over it), the
/// document-level keywords dropped.
fn event_schema() -> Value {
    let mut schema: Value =
        serde_json::from_str(audit_core::EVENT_SCHEMA_JSON).unwrap_or(Value::Null);
    let defs = schema
        .as_object_mut()
        .and_then(|object| object.remove("$defs"))
        .and_then(|defs| defs.as_object().cloned())
        .unwrap_or_default();
    if let Some(object) = schema.as_object_mut() {
        object.remove("$schema");
        object.remove("$id");
    }
    inline_defs(&mut schema, &defs);
    schema
}

fn inline_defs(value: &mut Value, defs: &Map<String, Value>) {
    match value {
        Value::Object(object) => {
            let target = object
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|reference| reference.strip_prefix("#/$defs/"))
                .and_then(|name| defs.get(name))
                .and_then(Value::as_object);
            if let Some(definition) = target {
                let mut merged = definition.clone();
                object.remove("$ref");
                merged.extend(std::mem::take(object));
                *object = merged;
            }
            for child in object.values_mut() {
                inline_defs(child, defs);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| inline_defs(item, defs)),
        _ => {}
    }
}

/// This document
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    operation_id = "getOpenApi",
    responses((status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub async fn serve() -> Response {
    static RENDERED: OnceLock<String> = OnceLock::new();
    let body = RENDERED.get_or_init(render).clone();
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Liveness of the public listener
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "meta",
    operation_id = "getHealth",
    responses((status = 200, description = "`ok`", content_type = "text/plain", body = String))
)]
pub async fn healthz() -> &'static str {
    "ok\n"
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// `docs/openapi.json` is what the gateway serves; regenerate it with `make openapi`.
    #[test]
    fn committed_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == render(),
            "docs/openapi.json is not the document the code generates: run `make openapi`"
        );
    }

    #[test]
    fn every_defs_reference_of_the_event_schema_is_inlined() {
        let schema = event_schema().to_string();
        assert!(!schema.contains("$defs"), "{schema}");
        let actor_id = &event_schema()["properties"]["actor"]["properties"]["id"];
        assert_eq!(actor_id["type"], "string");
        assert_eq!(actor_id["minLength"], 1, "siblings of the $ref win");
    }

    #[test]
    fn secured_operations_document_401_and_every_operation_500() {
        let document = document();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let responses = &operation["responses"];
                assert!(responses.get("500").is_some(), "{method} {path}");
                if operation.get("security").is_some() {
                    assert!(responses.get("401").is_some(), "{method} {path}");
                }
            }
        }
    }
}
