//! API errors and their HTTP mapping — the one place where errors become status codes.
//!
//! Every error body has the same shape:
//! `{"error": {"code": "…", "message": "…", "param": "…"?, "details": …?}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::{ToResponse, ToSchema};

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code.
    #[schema(example = "invalid_parameter")]
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// The query parameter, header or field at fault (`invalid_parameter` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// More about the error: the fields at fault (`validation_failed`), or the ids the
    /// events were given (`unavailable` on ingest: retry with them).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Value)]
    pub details: Option<Value>,
}

/// An error response (`ErrorBody`): the documented shape of every 4xx/5xx.
#[derive(Debug, ToResponse)]
#[response(
    description = "An error; `error.code` says which (one status may have several codes)",
    content_type = "application/json"
)]
pub struct ErrorResponse(#[allow(dead_code)] ErrorBody);

/// `ErrorBody` answered with `Retry-After` (429, 503).
#[derive(Debug, ToResponse)]
#[response(
    description = "Try again later (after `Retry-After` seconds); `error.code` says why",
    headers(("Retry-After" = u64, description = "Seconds to wait before retrying")),
    content_type = "application/json"
)]
pub struct RetryLater(#[allow(dead_code)] ErrorBody);

/// `ErrorBody` answered with `WWW-Authenticate: Bearer` (401).
#[derive(Debug, ToResponse)]
#[response(
    description = "Missing, invalid, expired or revoked credential",
    headers(("WWW-Authenticate" = String, description = "`Bearer`")),
    content_type = "application/json"
)]
pub struct Unauthenticated(#[allow(dead_code)] ErrorBody);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{param}: {message}")]
    BadRequest { param: String, message: String },
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The client did not send its request in time (408; the connection is closed).
    #[error("{0}")]
    RequestTimeout(String),
    /// The caller has too many requests in flight (429 + `Retry-After`).
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// A read stopped by its time, memory or size bound (503 + `Retry-After`).
    #[error("{message}")]
    ReadLimit {
        message: String,
        retry_after_secs: u64,
    },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    Unprocessable { message: String, details: Value },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after_secs: u64,
        details: Option<Value>,
    },
    #[error("{0}")]
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn bad_request(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadRequest {
            param: param.into(),
            message: message.into(),
        }
    }

    pub fn unavailable(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::Unavailable {
            message: message.into(),
            retry_after_secs,
            details: None,
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "invalid_parameter"),
            ApiError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed_request"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_requests")
            }
            ApiError::ReadLimit { .. } => (StatusCode::SERVICE_UNAVAILABLE, "read_limit_exceeded"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unprocessable { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
            }
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::PreconditionFailed(_) => {
                (StatusCode::PRECONDITION_FAILED, "precondition_failed")
            }
            ApiError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            // Internal details go to the log, not to the caller.
            ApiError::Internal(detail) => {
                tracing::error!(detail = %detail, "internal error");
                "internal error".to_string()
            }
            ApiError::BadRequest { message, .. } => message.clone(),
            other => other.to_string(),
        };
        let (param, details) = match &self {
            ApiError::BadRequest { param, .. } => (Some(param.clone()), None),
            ApiError::Unprocessable { details, .. } => (None, Some(details.clone())),
            ApiError::Unavailable { details, .. } => (None, details.clone()),
            _ => (None, None),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message,
                param,
                details,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let ApiError::Unavailable {
            retry_after_secs, ..
        }
        | ApiError::TooManyRequests {
            retry_after_secs, ..
        }
        | ApiError::ReadLimit {
            retry_after_secs, ..
        } = &self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        if matches!(self, ApiError::RequestTimeout(_)) {
            // The rest of the body may still be on its way: do not read it, close.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if matches!(self, ApiError::Unauthorized(_)) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<audit_store::Error> for ApiError {
    fn from(error: audit_store::Error) -> Self {
        match error {
            audit_store::Error::InvalidQuery { param, reason } => {
                ApiError::bad_request(param, reason)
            }
            // ClickHouse, or the shard holding this organization's rows, cannot be reached.
            error if error.is_unavailable() => {
                tracing::warn!(%error, "clickhouse unavailable for a read");
                ApiError::unavailable("the audit log store is unavailable; retry shortly", 2)
            }
            audit_store::Error::ReadLimit { bound, detail } => {
                tracing::warn!(bound, %detail, "a read was stopped by its bound");
                ApiError::ReadLimit {
                    message: format!(
                        "the query exceeded its {bound} bound and was stopped; narrow the time range (since/until) or the filters, or retry later"
                    ),
                    retry_after_secs: 5,
                }
            }
            audit_store::Error::ClickHouse(error) => {
                ApiError::Internal(format!("clickhouse: {error}"))
            }
            audit_store::Error::Timeout(timeout) => {
                ApiError::Internal(format!("clickhouse: no answer within {timeout:?}"))
            }
            audit_store::Error::Schema(message) | audit_store::Error::Interrupted(message) => {
                ApiError::Internal(message)
            }
        }
    }
}

impl From<audit_settings::Error> for ApiError {
    fn from(error: audit_settings::Error) -> Self {
        match error {
            audit_settings::Error::Invalid { field, reason } => ApiError::Unprocessable {
                message: format!("{field}: {reason}"),
                details: json!([{"field": field, "reason": reason}]),
            },
            audit_settings::Error::NotFound(what) => ApiError::NotFound(what),
            // A lost compare-and-set on the settings topic: the change was not applied.
            audit_settings::Error::Conflict(message) => ApiError::PreconditionFailed(format!(
                "{message}: the settings changed concurrently and this change was not applied; read them again and retry"
            )),
            audit_settings::Error::Crypto(message) => {
                ApiError::Internal(format!("secret handling: {message}"))
            }
            audit_settings::Error::Config(error) => ApiError::Internal(error.to_string()),
            audit_settings::Error::Store(_) | audit_settings::Error::Kafka(_) => {
                tracing::warn!(%error, "settings store unavailable");
                ApiError::unavailable("settings store unavailable; retry shortly", 2)
            }
        }
    }
}

/// `Json<T>` whose rejections use the API's error shape (and name the offending field).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    axum::Json<T>:
        axum::extract::FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        use axum::extract::rejection::JsonRejection;
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(JsonRejection::JsonDataError(error)) => {
                // serde's message names the field: "unknown field `x`", "missing field `y`".
                let message = error.body_text().replace(
                    "Failed to deserialize the JSON body into the target type: ",
                    "",
                );
                Err(ApiError::Unprocessable {
                    details: json!([{"field": field_of(&message), "reason": message}]),
                    message,
                })
            }
            Err(JsonRejection::JsonSyntaxError(error)) => Err(ApiError::Malformed(format!(
                "malformed JSON: {}",
                error.body_text()
            ))),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType(
                "send the body as application/json".into(),
            )),
            Err(other) => Err(ApiError::Malformed(other.body_text())),
        }
    }
}

/// The field a serde error message is about: `config.url: …` or "… field `name` …".
fn field_of(message: &str) -> String {
    if let Some((path, _)) = message.split_once(": ")
        && !path.contains(' ')
    {
        return path.to_string();
    }
    message
        .split('`')
        .nth(1)
        .map(str::to_string)
        .unwrap_or_else(|| "body".into())
}

/// `Query<T>` whose rejections use the API's error shape (axum's own is a plain-text 400).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::try_from_uri(&parts.uri) {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => {
                // serde names the parameter: "unknown field `x`", "atomic: invalid …".
                let message = rejection
                    .body_text()
                    .replace("Failed to deserialize query string: ", "");
                let param = field_of(&message);
                let param = if param == "body" {
                    "query".into()
                } else {
                    param
                };
                Err(ApiError::bad_request(param, message))
            }
        }
    }
}
