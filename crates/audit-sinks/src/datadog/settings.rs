//! A Datadog destination as stored on the settings topic and as operators send it.

use audit_settings::{OutboundPolicy, Sealed};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{DatadogConfig, DatadogSink};
use crate::registry::{CredentialSealer, DestinationType, OperatorInput};
use crate::{BuildParts, InvalidSetting, Sink, SinksConfig, unchecked_credential};

/// The field holding the API key.
pub const API_KEY: &str = "config.api_key";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatadogSettings {
    /// Datadog site, e.g. `datadoghq.com` or `datadoghq.eu`.
    pub site: String,
    /// Overrides the intake URL derived from the site (tests, proxies).
    #[serde(default)]
    pub url: Option<String>,
    /// Sealed `DD-API-KEY`.
    pub api_key: Sealed,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub ddsource: Option<String>,
    #[serde(default)]
    pub ddtags: Option<String>,
}

impl DatadogSettings {
    /// Where the API key is sent: the `url` override, else the site's intake.
    pub fn endpoint_of(site: &str, url: Option<&str>) -> String {
        url.map_or_else(|| format!("datadog-site:{site}"), str::to_string)
    }
}

// The fields mean what they mean in `DatadogSettings`; plain comments, not doc comments,
// keep the published OpenAPI schema as it is.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatadogInput {
    site: String,
    url: Option<String>,
    // Absent on update: keep the stored key (while the site and URL stay).
    api_key: Option<String>,
    service: Option<String>,
    ddsource: Option<String>,
    ddtags: Option<String>,
}

impl DestinationType for DatadogSettings {
    fn secret_fields(&self) -> &'static [&'static str] {
        &["api_key"]
    }

    fn endpoint(&self) -> String {
        Self::endpoint_of(&self.site, self.url.as_deref())
    }

    fn credential(&self) -> Option<(&'static str, &Sealed)> {
        Some((API_KEY, &self.api_key))
    }

    /// Builds the sink of a Datadog destination.
    fn build(&self, mut parts: BuildParts<'_>) -> Result<Box<dyn Sink>, InvalidSetting> {
        let api_key = parts.credential(API_KEY)?;
        let config = DatadogConfig::new(
            parts.org_id,
            self,
            api_key,
            &parts.options.datadog,
            parts.policy,
        )?;
        Ok(Box::new(DatadogSink::new(config, parts.sender)))
    }

    fn check(&self, options: &SinksConfig, policy: &OutboundPolicy) -> Result<(), InvalidSetting> {
        DatadogConfig::new("", self, unchecked_credential(), &options.datadog, policy).map(drop)
    }
}

impl OperatorInput for DatadogInput {
    type Settings = DatadogSettings;

    fn seal(
        self,
        kept: Option<&DatadogSettings>,
        sealer: &CredentialSealer<'_>,
    ) -> Result<DatadogSettings, InvalidSetting> {
        let endpoint = DatadogSettings::endpoint_of(&self.site, self.url.as_deref());
        let api_key = sealer.seal(API_KEY, self.api_key, kept, &endpoint)?;
        Ok(DatadogSettings {
            site: self.site,
            url: self.url,
            api_key,
            service: self.service,
            ddsource: self.ddsource,
            ddtags: self.ddtags,
        })
    }
}
