//! The destination types, listed once: the `destination_types!` line of each below. Adding a
//! type is a folder beside the others (README: "Adding a destination") whose `settings.rs`
//! implements [`DestinationType`] for its stored settings and [`OperatorInput`] for what
//! operators send, plus its line here. Nothing outside this crate knows the types: a
//! destination's settings are stored as an untyped [`DestinationConfig`] and typed here, at
//! the edge (the forwarder building a sink, the operator API checking and showing one).

use audit_runtime::{ConfigError, Secret};
use audit_settings::{Destination, DestinationConfig, OutboundPolicy, Sealed, SecretBox};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::PartialSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};

use crate::{BuildParts, InvalidSetting, Sink};

/// What the registry asks of a destination type, implemented by its stored settings.
pub trait DestinationType {
    /// The fields holding a sealed secret, masked in every view.
    fn secret_fields(&self) -> &'static [&'static str];

    /// Where the credential is sent: it is sealed for this endpoint and opens only for it.
    fn endpoint(&self) -> String;

    /// The credential with its field name (`config.token`), for the types that have one.
    fn credential(&self) -> Option<(&'static str, &Sealed)>;

    /// The destination's sink, which the forwarder's lanes deliver through.
    fn build(&self, parts: BuildParts<'_>) -> Result<Box<dyn Sink>, InvalidSetting>;

    /// Checks the settings exactly as [`DestinationType::build`] will, before they are stored
    /// (the operator API): one validation per field, whoever asks. Credentials are not needed
    /// here: they are checked where they are given ([`CredentialSealer`]).
    fn check(&self, options: &SinksConfig, policy: &OutboundPolicy) -> Result<(), InvalidSetting>;
}

/// What operators send for one type, secrets in plain text.
pub trait OperatorInput {
    type Settings: DestinationType;

    /// The settings to store: the credential sealed by `sealer`, or kept from `kept` (the
    /// stored settings, on update of a destination of the same type).
    fn seal(
        self,
        kept: Option<&Self::Settings>,
        sealer: &CredentialSealer<'_>,
    ) -> Result<Self::Settings, InvalidSetting>;
}

/// From one line per type — its folder (which is also its `type` name), its variant, its
/// stored settings, its operator input and its `[sinks.<type>]` options — the typed settings
/// [`DestinationKind`], the operator's [`ConfigInput`], the matches between them, and
/// [`SinksConfig`].
macro_rules! destination_types {
    ($($folder:ident: $variant:ident($settings:ident, $input:ident, $options:ident),)*) => {
        /// The `[sinks]` section: what every destination shares, and each type's limits and
        /// defaults.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct SinksConfig {
            /// Most bytes of a destination's answer that are read (the rest is never read, nor
            /// ever decompressed): enough to classify it and keep an excerpt, see
            /// [`crate::response`].
            pub max_response_bytes: usize,
            $(
                #[doc = concat!("`[sinks.", stringify!($folder), "]`")]
                pub $folder: crate::$folder::$options,
            )*
        }

        impl Default for SinksConfig {
            fn default() -> Self {
                Self {
                    max_response_bytes: crate::response::DEFAULT_MAX_RESPONSE_BYTES,
                    $($folder: Default::default(),)*
                }
            }
        }

        impl SinksConfig {
            /// Validates each type's options (`[sinks.<type>]`).
            pub(crate) fn validate_types(&self, section: &str) -> Result<(), ConfigError> {
                $(self.$folder.validate(&format!("{section}.{}", stringify!($folder)))?;)*
                Ok(())
            }
        }

        /// A destination's settings, typed (parsed from its stored [`DestinationConfig`]).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum DestinationKind {
            $($variant(crate::$folder::$settings),)*
        }

        /// Type-specific settings as sent by operators; secrets in plain text, optional on
        /// update (absent = keep the stored one).
        #[derive(Debug, Clone, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum ConfigInput {
            $($variant(crate::$folder::$input),)*
        }

        impl DestinationKind {
            /// The type's name: its `type` tag, the name of its folder.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => stringify!($folder),)*
                }
            }

            /// The settings, as the registry uses them.
            pub fn settings(&self) -> &dyn DestinationType {
                match self {
                    $(Self::$variant(settings) => settings,)*
                }
            }
        }

        impl ConfigInput {
            /// The settings to store; `existing` lends its credential only to its own type.
            fn seal(
                self,
                existing: Option<&DestinationKind>,
                sealer: &CredentialSealer<'_>,
            ) -> Result<DestinationKind, InvalidSetting> {
                match self {
                    $(Self::$variant(input) => {
                        let kept = match existing {
                            Some(DestinationKind::$variant(kept)) => Some(kept),
                            _ => None,
                        };
                        input.seal(kept, sealer).map(DestinationKind::$variant)
                    })*
                }
            }

            /// Each type's name and the schema of its input.
            pub(crate) fn type_schemas() -> Vec<(&'static str, RefOr<Schema>)> {
                vec![$((stringify!($folder), crate::$folder::$input::schema()),)*]
            }
        }
    };
}

destination_types! {
    // folder: variant(stored settings, operator input, `[sinks.<folder>]` options),
    splunk_hec: SplunkHec(SplunkHecSettings, SplunkHecInput, HecOptions),
    datadog: Datadog(DatadogSettings, DatadogInput, DatadogOptions),
    wazuh: Wazuh(WazuhSettings, WazuhInput, WazuhOptions),
    webhook: Webhook(WebhookSettings, WebhookInput, WebhookOptions),
}

impl DestinationKind {
    /// The typed settings of a stored config; an error when this build does not know its
    /// type or its fields (the forwarder pauses such a destination).
    pub fn parse(config: &DestinationConfig) -> Result<Self, InvalidSetting> {
        config
            .to_typed()
            .map_err(|error| InvalidSetting::new("config", error.to_string()))
    }

    /// The config to store.
    pub fn to_config(&self) -> Result<DestinationConfig, InvalidSetting> {
        DestinationConfig::from_typed(self)
            .map_err(|error| InvalidSetting::new("config", error.to_string()))
    }

    /// Opens the type's credential (HEC token, Datadog API key, Wazuh password), if it has one:
    /// it opens only for the organization, destination and endpoint it was sealed for.
    pub fn open_credential(
        &self,
        org_id: &str,
        destination_id: &str,
        secrets: &SecretBox,
    ) -> audit_settings::Result<Option<Secret>> {
        let settings = self.settings();
        let Some((field, sealed)) = settings.credential() else {
            return Ok(None);
        };
        let context = Destination::credential_seal_context(
            org_id,
            destination_id,
            field,
            &settings.endpoint(),
        );
        secrets.open(sealed, &context).map(Some)
    }
}

/// Seals the credential an operator gives, by the rules every type shares: never empty;
/// sealed for the endpoint it is sent to, so it opens only there; a stored one is kept only
/// while that endpoint stays (it could not open elsewhere), else it must be given again.
pub struct CredentialSealer<'a> {
    secrets: &'a SecretBox,
    org_id: &'a str,
    destination_id: &'a str,
}

impl<'a> CredentialSealer<'a> {
    pub fn new(secrets: &'a SecretBox, org_id: &'a str, destination_id: &'a str) -> Self {
        Self {
            secrets,
            org_id,
            destination_id,
        }
    }

    /// The credential of `field` for `endpoint`: `plain` sealed, else the one of `kept`.
    pub fn seal<T: DestinationType>(
        &self,
        field: &str,
        plain: Option<String>,
        kept: Option<&T>,
        endpoint: &str,
    ) -> Result<Sealed, InvalidSetting> {
        let kept = kept.and_then(|kept| Some((kept.credential()?.1, kept.endpoint())));
        match (plain, kept) {
            (Some(plain), _) if plain.trim().is_empty() => {
                Err(InvalidSetting::new(field, "must not be empty"))
            }
            (Some(plain), _) => Ok(self.secrets.seal(
                &plain,
                &Destination::credential_seal_context(
                    self.org_id,
                    self.destination_id,
                    field,
                    endpoint,
                ),
            )),
            (None, Some((sealed, kept_endpoint))) if kept_endpoint == endpoint => {
                Ok(sealed.clone())
            }
            (None, Some(_)) => Err(InvalidSetting::new(
                field,
                "is required when the destination's URL changes: a stored credential is bound to the URL it was given for",
            )),
            (None, None) => Err(InvalidSetting::new(field, "is required")),
        }
    }
}

/// The config to store for what an operator sent: its credential sealed (or kept from
/// `existing`, the stored config on update), checked as the forwarder will build it. The type
/// of a destination cannot change.
pub fn config_from_input(
    input: ConfigInput,
    existing: Option<&DestinationConfig>,
    sealer: &CredentialSealer<'_>,
    options: &SinksConfig,
    policy: &OutboundPolicy,
) -> Result<DestinationConfig, InvalidSetting> {
    // A stored config this build cannot type lends no credential: it must be given again.
    let existing_kind = existing.and_then(|config| DestinationKind::parse(config).ok());
    let kind = input.seal(existing_kind.as_ref(), sealer)?;
    kind.settings().check(options, policy)?;
    if let Some(existing) = existing
        && existing.type_name() != kind.type_name()
    {
        return Err(InvalidSetting::new(
            "config.type",
            "the type of a destination cannot change; create a new one",
        ));
    }
    kind.to_config()
}

/// A stored config as operators see it: typed (every field of its type, defaults included),
/// the type's secret fields and any value that looks sealed replaced by `mask`. A config this
/// build cannot type is shown as stored, masked by the look of its values alone.
pub fn masked_config(config: &DestinationConfig, mask: &str) -> Value {
    let typed = DestinationKind::parse(config).ok();
    let secret_fields = typed
        .as_ref()
        .map(|kind| kind.settings().secret_fields())
        .unwrap_or_default();
    let mut value = typed
        .and_then(|kind| serde_json::to_value(kind).ok())
        .unwrap_or_else(|| config.to_value());
    if let Value::Object(fields) = &mut value {
        for (name, field) in fields.iter_mut() {
            let sealed = field.as_str().is_some_and(Sealed::looks_sealed);
            if sealed || secret_fields.contains(&name.as_str()) {
                *field = Value::from(mask);
            }
        }
    }
    value
}

/// The OpenAPI schema of [`ConfigInput`]: one of the types' inputs, each tagged with its
/// `type` (what deriving it for an enum of struct variants would give).
impl PartialSchema for ConfigInput {
    fn schema() -> RefOr<Schema> {
        let tagged = |(name, schema): (&str, RefOr<Schema>)| match schema {
            RefOr::T(Schema::Object(mut object)) => {
                let tag = ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([name]));
                object.properties.insert("type".into(), tag.into());
                object.required.push("type".into());
                // As the published document has it: unknown fields are refused all the same.
                object.additional_properties = None;
                RefOr::T(Schema::Object(object))
            }
            other => other,
        };
        let description = "Type-specific settings as sent by operators; secrets in plain text, optional on update\n(absent = keep the stored one).";
        let one_of = OneOfBuilder::new().description(Some(description));
        Self::type_schemas()
            .into_iter()
            .map(tagged)
            .fold(one_of, OneOfBuilder::item)
            .into()
    }
}

impl utoipa::ToSchema for ConfigInput {
    fn name() -> std::borrow::Cow<'static, str> {
        "ConfigInput".into()
    }
}
