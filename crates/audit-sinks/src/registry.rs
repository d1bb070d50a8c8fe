//! The destination types: one line each. Adding a type is a folder beside the others (see the
//! README's "Adding a destination") with a `build` function, plus its line here and its
//! settings variant in `audit_settings::DestinationKind`.

use audit_settings::DestinationKind;

use super::{BuildParts, InvalidSetting, Sink, datadog, splunk_hec, wazuh, webhook};

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
