//! A webhook destination as stored on the settings topic and as operators send it. It has no
//! credential: the Standard Webhooks signature authenticates it.

use audit_settings::{OutboundPolicy, Sealed};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{WebhookConfig, WebhookSink};
use crate::registry::{CredentialSealer, DestinationType, OperatorInput};
use crate::{BuildParts, InvalidSetting, Sink, SinksConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Receiver URL.
    pub url: String,
    /// Most events per request.
    #[serde(default)]
    pub max_batch_events: Option<usize>,
}

// The fields mean what they mean in `WebhookSettings`; plain comments, not doc comments,
// keep the published OpenAPI schema as it is.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    url: String,
    max_batch_events: Option<usize>,
}

impl DestinationType for WebhookSettings {
    fn secret_fields(&self) -> &'static [&'static str] {
        &[]
    }

    fn endpoint(&self) -> String {
        self.url.clone()
    }

    fn credential(&self) -> Option<(&'static str, &Sealed)> {
        None
    }

    /// Builds the sink of a webhook destination.
    fn build(&self, parts: BuildParts<'_>) -> Result<Box<dyn Sink>, InvalidSetting> {
        let config = WebhookConfig::new(self, &parts.options.webhook, parts.policy)?;
        Ok(Box::new(WebhookSink::new(config, parts.sender)))
    }

    fn check(&self, options: &SinksConfig, policy: &OutboundPolicy) -> Result<(), InvalidSetting> {
        WebhookConfig::new(self, &options.webhook, policy).map(drop)
    }
}

impl OperatorInput for WebhookInput {
    type Settings = WebhookSettings;

    fn seal(
        self,
        _kept: Option<&WebhookSettings>,
        _sealer: &CredentialSealer<'_>,
    ) -> Result<WebhookSettings, InvalidSetting> {
        Ok(WebhookSettings {
            url: self.url,
            max_batch_events: self.max_batch_events,
        })
    }
}
