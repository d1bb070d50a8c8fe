//! The OCSF object as it is serialized: the attributes the mapping fills, borrowing from the
//! event; `None` and empty lists are left out.

use std::borrow::Cow;

use serde::{Serialize, Serializer};

use super::view::{MetadataView, TargetView};

/// One OCSF event object (the attributes this mapping fills; `None` is left out).
#[derive(Debug, Clone, Serialize)]
pub struct OcsfEvent<'a> {
    pub class_uid: u32,
    pub class_name: &'static str,
    pub category_uid: u32,
    pub category_name: &'static str,
    pub activity_id: u32,
    pub activity_name: &'a str,
    pub type_uid: u64,
    pub type_name: TypeName,
    pub time: i64,
    pub severity_id: u8,
    pub severity: &'static str,
    pub status_id: u8,
    pub status: &'static str,
    pub message: &'a str,
    pub metadata: Metadata<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<OcsfActor<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_endpoint: Option<Endpoint<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_request: Option<HttpRequest<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<User<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<Service<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileges: Option<Vec<Cow<'a, str>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<Entity<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<Api<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<Resource<'a>>>,
    pub unmapped: Unmapped<'a>,
}

/// `type_name`: `<class name>: <activity name>`, written without building the string.
#[derive(Debug, Clone, Copy)]
pub struct TypeName {
    pub class: &'static str,
    pub activity: &'static str,
}

impl std::fmt::Display for TypeName {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}: {}", self.class, self.activity)
    }
}

impl Serialize for TypeName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Metadata<'a> {
    pub version: &'static str,
    pub product: Product,
    /// The event's id: trace an OCSF object back to the native event with it.
    pub uid: &'a str,
    pub tenant_uid: &'a str,
    pub event_code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_provider: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logged_time: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Product {
    pub name: &'static str,
    pub vendor_name: &'static str,
    pub version: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct OcsfActor<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<User<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_uid: Option<&'a str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct User<'a> {
    pub uid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_addr: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub type_id: Option<u8>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Endpoint<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub svc_name: Option<&'a str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<&'a str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Service<'a> {
    pub name: &'a str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Entity<'a> {
    pub uid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(rename = "type")]
    pub kind: &'a str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Api<'a> {
    pub operation: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<Service<'a>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Resource<'a> {
    pub uid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(rename = "type")]
    pub kind: &'a str,
}

/// What has no OCSF attribute of its own (the category is always there).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Unmapped<'a> {
    pub category: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor_email: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<&'a TargetView<'a>>,
    #[serde(skip_serializing_if = "MetadataView::is_empty")]
    pub metadata: MetadataView<'a>,
}
