//! Meta events: the audit log records who read it, who exported it and who changed its
//! settings, in the organization's own log (category `audit_log`, built by the one builder of
//! the platform's own events, `audit_core::system`), tagged as the system's own so that no
//! producer can write or imitate them.

use audit_core::integrity::Signer;
use audit_core::system::{self, SystemEvent};
use audit_core::{Actor, Context};
use axum::http::HeaderMap;
use time::OffsetDateTime;

use crate::App;
use crate::error::ApiError;
use crate::publisher::Outgoing;

/// The `source` of meta events.
pub const SOURCE: &str = system::SOURCE;

/// A meta event about `org_id`, caused by `actor` in the request carrying `headers`.
pub fn event(org_id: &str, action: &'static str, actor: Actor, headers: &HeaderMap) -> SystemEvent {
    SystemEvent::new(org_id, action, actor).context(request_context(headers))
}

/// The actor for an operator (platform staff).
pub fn operator_actor(name: &str) -> Actor {
    system::operator_actor(name)
}

/// Records a meta event (durably: waits for Kafka's acknowledgement).
pub async fn record(app: &App, meta: SystemEvent) -> Result<(), ApiError> {
    let event = meta.build(OffsetDateTime::now_utc());
    let json = event.to_json();
    app.publisher
        .publish(
            &[Outgoing {
                org_id: &event.org_id,
                json: &json,
            }],
            SOURCE,
            Signer::System,
        )
        .await
        .map_err(|error| {
            tracing::warn!(%error, action = %event.action, "could not record a meta event");
            ApiError::unavailable(
                format!("could not record the audit trail of this action: {error}"),
                2,
            )
        })
}

/// The request's context, whole: the builder cuts each text to its limit (see
/// `audit_core::system`); the client address is kept only when it parses as one.
fn request_context(headers: &HeaderMap) -> Context {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let ip = text("x-forwarded-for")
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
        .map(str::to_string);
    Context {
        ip,
        user_agent: text("user-agent").map(str::to_string),
        location: None,
        request_id: text("x-request-id").map(str::to_string),
    }
}
