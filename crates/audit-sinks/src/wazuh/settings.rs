//! A Wazuh destination as stored on the settings topic and as operators send it.

use audit_settings::{OutboundPolicy, Sealed};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{WazuhConfig, WazuhSession, WazuhSink};
use crate::registry::{CredentialSealer, DestinationType, OperatorInput};
use crate::{BuildParts, InvalidSetting, Sink, SinksConfig, unchecked_credential};

/// The field holding the API user's password.
pub const PASSWORD: &str = "config.password";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WazuhSettings {
    /// Manager API base URL, e.g. `https://wazuh.example.com:55000`.
    pub url: String,
    pub username: String,
    /// Sealed password of the API user (needs RBAC action `event:ingest`).
    pub password: Sealed,
    /// Requests per minute the manager accepts (Wazuh's default limit is 30).
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
}

// The fields mean what they mean in `WazuhSettings`; plain comments, not doc comments,
// keep the published OpenAPI schema as it is.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WazuhInput {
    url: String,
    username: String,
    // Absent on update: keep the stored password (while the URL stays).
    password: Option<String>,
    requests_per_minute: Option<u32>,
}

impl DestinationType for WazuhSettings {
    fn secret_fields(&self) -> &'static [&'static str] {
        &["password"]
    }

    fn endpoint(&self) -> String {
        self.url.clone()
    }

    fn credential(&self) -> Option<(&'static str, &Sealed)> {
        Some((PASSWORD, &self.password))
    }

    /// Builds the sink of a Wazuh destination; its session (token, pacing) is shared by the
    /// destination's lanes until its URL, user, password or pacing change.
    fn build(&self, mut parts: BuildParts<'_>) -> Result<Box<dyn Sink>, InvalidSetting> {
        let password = parts.credential(PASSWORD)?;
        let config = WazuhConfig::new(self, password, &parts.options.wazuh, parts.policy)?;
        let session = parts.state.get_or_create(&config.fingerprint(), || {
            WazuhSession::new(config.requests_per_minute)
        });
        Ok(Box::new(WazuhSink::new(config, parts.sender, session)))
    }

    fn check(&self, options: &SinksConfig, policy: &OutboundPolicy) -> Result<(), InvalidSetting> {
        WazuhConfig::new(self, unchecked_credential(), &options.wazuh, policy).map(drop)
    }
}

impl OperatorInput for WazuhInput {
    type Settings = WazuhSettings;

    fn seal(
        self,
        kept: Option<&WazuhSettings>,
        sealer: &CredentialSealer<'_>,
    ) -> Result<WazuhSettings, InvalidSetting> {
        let password = sealer.seal(PASSWORD, self.password, kept, &self.url)?;
        Ok(WazuhSettings {
            url: self.url,
            username: self.username,
            password,
            requests_per_minute: self.requests_per_minute,
        })
    }
}
