//! A Splunk HEC destination as stored on the settings topic and as operators send it.

use audit_settings::{OutboundPolicy, Sealed};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{HecConfig, HecSink};
use crate::registry::{CredentialSealer, DestinationType, OperatorInput};
use crate::{BuildParts, InvalidSetting, Sink, SinksConfig, unchecked_credential};

/// The field holding the HEC token.
pub const TOKEN: &str = "config.token";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplunkHecSettings {
    /// Collector base URL, e.g. `https://hec.example.com:8088` (the event path is appended).
    pub url: String,
    /// Sealed HEC token (a GUID).
    pub token: Sealed,
    #[serde(default)]
    pub index: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub sourcetype: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    /// Use indexer acknowledgement: "delivered" then means "indexed".
    #[serde(default)]
    pub indexer_ack: bool,
    /// Largest request body in bytes (Splunk Cloud accepts about 1 MiB).
    #[serde(default)]
    pub max_batch_bytes: Option<usize>,
}

// The fields mean what they mean in `SplunkHecSettings`; plain comments, not doc comments,
// keep the published OpenAPI schema as it is.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SplunkHecInput {
    url: String,
    // Absent on update: keep the stored token (while the URL stays).
    token: Option<String>,
    index: Option<String>,
    source: Option<String>,
    sourcetype: Option<String>,
    host: Option<String>,
    #[serde(default)]
    indexer_ack: bool,
    max_batch_bytes: Option<usize>,
}

/// This instance's indexer-acknowledgement channel for the destination (a GUID), kept while
/// the destination's settings change.
#[derive(Debug)]
struct Channel(String);

impl DestinationType for SplunkHecSettings {
    fn secret_fields(&self) -> &'static [&'static str] {
        &["token"]
    }

    fn endpoint(&self) -> String {
        self.url.clone()
    }

    fn credential(&self) -> Option<(&'static str, &Sealed)> {
        Some((TOKEN, &self.token))
    }

    /// Builds the sink of a Splunk HEC destination.
    fn build(&self, mut parts: BuildParts<'_>) -> Result<Box<dyn Sink>, InvalidSetting> {
        let token = parts.credential(TOKEN)?;
        let config = HecConfig::new(
            parts.org_id,
            self,
            token,
            &parts.options.splunk_hec,
            parts.policy,
        )?;
        let channel = config.indexer_ack.then(|| {
            let new_channel = || Channel(uuid::Uuid::new_v4().to_string());
            parts.state.get_or_create("channel", new_channel).0.clone()
        });
        Ok(Box::new(HecSink::new(config, parts.sender, channel)))
    }

    fn check(&self, options: &SinksConfig, policy: &OutboundPolicy) -> Result<(), InvalidSetting> {
        HecConfig::new(
            "",
            self,
            unchecked_credential(),
            &options.splunk_hec,
            policy,
        )
        .map(drop)
    }
}

impl OperatorInput for SplunkHecInput {
    type Settings = SplunkHecSettings;

    fn seal(
        self,
        kept: Option<&SplunkHecSettings>,
        sealer: &CredentialSealer<'_>,
    ) -> Result<SplunkHecSettings, InvalidSetting> {
        let token = sealer.seal(TOKEN, self.token, kept, &self.url)?;
        Ok(SplunkHecSettings {
            url: self.url,
            token,
            index: self.index,
            source: self.source,
            sourcetype: self.sourcetype,
            host: self.host,
            indexer_ack: self.indexer_ack,
            max_batch_bytes: self.max_batch_bytes,
        })
    }
}
