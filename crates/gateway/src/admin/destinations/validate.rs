//! Checks what operators send and seals its secrets: type-specific settings (URLs through the
//! outbound policy, limits, Datadog sites), filters against the catalogue, `whsec_` signing
//! secrets. A credential is sealed for the endpoint it is sent to, so a changed URL needs the
//! credential again. Errors name the offending field (422).

use audit_settings::{DestinationConfig, Filters};
use audit_sinks::registry::{CredentialSealer, config_from_input};
use base64::Engine;

use super::ConfigInput;
use crate::App;
use crate::error::{ApiError, ApiResult};

pub(super) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ApiError {
    audit_settings::Error::invalid(field, reason).into()
}

/// Checks a `whsec_` secret (PROTOCOLS.md: 24–64 random bytes, base64).
pub fn check_signing_secret(field: &str, secret: &str) -> ApiResult<()> {
    let encoded = secret
        .strip_prefix("whsec_")
        .ok_or_else(|| invalid(field, "must start with `whsec_`"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| invalid(field, "the part after `whsec_` must be standard base64"))?;
    if !(24..=64).contains(&bytes.len()) {
        return Err(invalid(
            field,
            format!("must hold 24–64 random bytes, not {}", bytes.len()),
        ));
    }
    Ok(())
}

/// Validates the input and seals its secrets, merging with `existing` on update: each type's
/// rules are its own (`audit_sinks::registry`), the sealing rules shared by every type.
pub(super) fn build_config(
    app: &App,
    input: ConfigInput,
    existing: Option<&DestinationConfig>,
    context: (&str, &str),
) -> ApiResult<DestinationConfig> {
    let (org_id, destination_id) = context;
    let sealer = CredentialSealer::new(&app.secrets, org_id, destination_id);
    config_from_input(
        input,
        existing,
        &sealer,
        &app.config.sinks,
        &app.config.outbound,
    )
    .map_err(|error| invalid(error.field, error.reason))
}

/// Categories must be known to the catalogue; actions known, or prefixes like `user.*`.
pub(super) fn check_filters(app: &App, filters: &Filters) -> ApiResult<()> {
    let catalogue = app.validator.catalogue();
    for (index, category) in filters.categories.iter().enumerate() {
        if catalogue.category(category).is_none() {
            return Err(invalid(
                format!("filters.categories[{index}]"),
                format!("unknown category `{category}`"),
            ));
        }
    }
    for (field, patterns) in [
        ("actions", &filters.actions),
        ("exclude_actions", &filters.exclude_actions),
    ] {
        for (index, pattern) in patterns.iter().enumerate() {
            let known = match pattern.strip_suffix('*') {
                Some(prefix) => !prefix.is_empty(),
                None => catalogue.category_of(pattern).is_some(),
            };
            if !known {
                return Err(invalid(
                    format!("filters.{field}[{index}]"),
                    format!("`{pattern}` is neither a known action nor a prefix like `user.*`"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_secrets_follow_the_standard() {
        assert!(check_signing_secret("s", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").is_ok());
        assert!(check_signing_secret("s", "C2FVsBQIhrscChlQIMV+b5sSYspob7oD").is_err());
        assert!(check_signing_secret("s", "whsec_c2hvcnQ=").is_err());
        assert!(check_signing_secret("s", "whsec_not base64!").is_err());
    }
}
