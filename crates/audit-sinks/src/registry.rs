//! The destination types: one line each in [`build`] and [`check`]. Adding a type is a folder beside the others (see the
//! README's "Adding a destination") with a `build` function, plus its line here and its
//! settings variant in `audit_settings::DestinationKind`.

use audit_settings::{DestinationKind, OutboundPolicy};

use super::{BuildParts, InvalidSetting, Sink, SinksConfig, datadog, splunk_hec, wazuh, webhook};

/// Builds the sink of a destination of type `kind` from its settings.
pub fn build(
    kind: &DestinationKind,
    parts: BuildParts<'_>,
) -> Result<Box<dyn Sink>, InvalidSetting> {
    match kind {
        DestinationKind::SplunkHec(settings) => splunk_hec::build(settings, parts),
        DestinationKind::Datadog(settings) => datadog::build(settings, parts),
        DestinationKind::Wazuh(settings) => wazuh::build(settings, parts),
        DestinationKind::Webhook(settings) => webhook::build(settings, parts),
    }
}

/// Checks a destination's settings exactly as [`build`] will, before they are stored (the
/// operator API): one validation per field, whoever asks. Credentials are not needed here —
/// they are checked where they are given.
pub fn check(
    kind: &DestinationKind,
    options: &SinksConfig,
    policy: &OutboundPolicy,
) -> Result<(), InvalidSetting> {
    match kind {
        DestinationKind::SplunkHec(settings) => splunk_hec::check(settings, options, policy),
        DestinationKind::Datadog(settings) => datadog::check(settings, options, policy),
        DestinationKind::Wazuh(settings) => wazuh::check(settings, options, policy),
        DestinationKind::Webhook(settings) => webhook::check(settings, options, policy),
    }
}
