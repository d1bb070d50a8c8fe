//! The bodies operators send to the destination endpoints, as deserialised: unknown fields
//! refused, secrets in plain text (checked and sealed by [`super::validate`] before anything
//! is stored). Their OpenAPI schemas are derived from these types; the type-specific part
//! ([`ConfigInput`]) is each destination type's, listed in `audit_sinks::registry`.

use audit_settings::{EventFormat, Filters};
/// Type-specific settings, one variant per destination type (`audit_sinks::registry`).
pub use audit_sinks::registry::ConfigInput;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::admin::schemas::{DestinationFilters, FormatName};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDestination {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    #[serde(default)]
    #[schema(value_type = DestinationFilters, required = false)]
    pub filters: Filters,
    /// Standard Webhooks secret `whsec_<base64 of 24–64 random bytes>`.
    #[schema(required = true, pattern = "^whsec_[A-Za-z0-9+/]{32,86}={0,2}$")]
    pub signing_secret: Option<String>,
    pub config: ConfigInput,
    /// `native` (default) or `ocsf`: how each event is written inside the type's envelope.
    #[serde(default)]
    #[schema(value_type = FormatName, required = false)]
    pub format: EventFormat,
}

fn enabled_by_default() -> bool {
    true
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDestination {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    pub enabled: Option<bool>,
    #[schema(value_type = DestinationFilters, required = false)]
    pub filters: Option<Filters>,
    pub config: Option<ConfigInput>,
    #[schema(value_type = Option<FormatName>)]
    pub format: Option<EventFormat>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    #[schema(pattern = "^whsec_[A-Za-z0-9+/]{32,86}={0,2}$")]
    pub signing_secret: String,
    /// How long the previous secret keeps signing, in seconds (default one day).
    #[serde(default = "default_overlap")]
    #[schema(minimum = 0, maximum = 2592000)]
    pub overlap_secs: i64,
}

fn default_overlap() -> i64 {
    24 * 3600
}
