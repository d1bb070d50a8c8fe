//! Checks what operators send and seals its secrets: type-specific settings (URLs through the
//! outbound policy, limits, Datadog sites), filters against the catalogue, `whsec_` signing
//! secrets. A credential is sealed for the endpoint it is sent to, so a changed URL needs the
//! credential again. Errors name the offending field (422).

use audit_settings::model::{DatadogSettings, SplunkHecSettings, WazuhSettings, WebhookSettings};
use audit_settings::{Destination, DestinationKind, Filters, Sealed};
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

/// Validates the input and seals its secrets, merging with `existing` on update.
pub(super) fn build_config(
    app: &App,
    input: ConfigInput,
    existing: Option<&DestinationKind>,
    context: (&str, &str),
) -> ApiResult<DestinationKind> {
    let (org_id, destination_id) = context;
    let kept_endpoint = existing.map(DestinationKind::endpoint);
    // A credential is sealed for the endpoint it is sent to: when the endpoint changes, the
    // stored one cannot follow it (it would not open), so it must be given again.
    let seal = |field: &str,
                plain: Option<String>,
                kept: Option<&Sealed>,
                endpoint: &str|
     -> ApiResult<Sealed> {
        match (plain, kept) {
            (Some(plain), _) if plain.trim().is_empty() => Err(invalid(field, "must not be empty")),
            (Some(plain), _) => Ok(app.secrets.seal(
                &plain,
                &Destination::credential_seal_context(org_id, destination_id, field, endpoint),
            )),
            (None, Some(kept)) if kept_endpoint.as_deref() == Some(endpoint) => Ok(kept.clone()),
            (None, Some(_)) => Err(invalid(
                field,
                "is required when the destination's URL changes: a stored credential is bound to the URL it was given for",
            )),
            (None, None) => Err(invalid(field, "is required")),
        }
    };
    let kind = match input {
        ConfigInput::SplunkHec {
            url,
            token,
            index,
            source,
            sourcetype,
            host,
            indexer_ack,
            max_batch_bytes,
        } => {
            let kept = match existing {
                Some(DestinationKind::SplunkHec(settings)) => Some(&settings.token),
                _ => None,
            };
            let token = seal("config.token", token, kept, &url)?;
            DestinationKind::SplunkHec(SplunkHecSettings {
                url,
                token,
                index,
                source,
                sourcetype,
                host,
                indexer_ack,
                max_batch_bytes,
            })
        }
        ConfigInput::Datadog {
            site,
            url,
            api_key,
            service,
            ddsource,
            ddtags,
        } => {
            let kept = match existing {
                Some(DestinationKind::Datadog(settings)) => Some(&settings.api_key),
                _ => None,
            };
            let endpoint = DatadogSettings::endpoint(&site, url.as_deref());
            let api_key = seal("config.api_key", api_key, kept, &endpoint)?;
            DestinationKind::Datadog(DatadogSettings {
                site,
                url,
                api_key,
                service,
                ddsource,
                ddtags,
            })
        }
        ConfigInput::Wazuh {
            url,
            username,
            password,
            requests_per_minute,
        } => {
            let kept = match existing {
                Some(DestinationKind::Wazuh(settings)) => Some(&settings.password),
                _ => None,
            };
            let password = seal("config.password", password, kept, &url)?;
            DestinationKind::Wazuh(WazuhSettings {
                url,
                username,
                password,
                requests_per_minute,
            })
        }
        ConfigInput::Webhook {
            url,
            max_batch_events,
        } => DestinationKind::Webhook(WebhookSettings {
            url,
            max_batch_events,
        }),
    };
    // The settings as the forwarder will check them when it builds the sink (one validation
    // per field, in `audit_sinks`); the credentials were checked above as they were sealed.
    audit_sinks::registry::check(&kind, &app.config.sinks, &app.config.outbound)
        .map_err(|error| invalid(error.field, error.reason))?;
    if let Some(existing) = existing
        && existing.type_name() != kind.type_name()
    {
        return Err(invalid(
            "config.type",
            "the type of a destination cannot change; create a new one",
        ));
    }
    Ok(kind)
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
