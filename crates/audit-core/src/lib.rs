//! The audit event contract, version 1.
//!
//! * [`event`]: the Rust types of an event as it travels on the `audit.events.v1` topic.
//! * [`catalogue`]: which actions exist in which category (data, loaded from `config/catalogue.toml`).
//! * [`validate`]: the one validator used by the gateway (HTTP ingest) and the indexer
//!   (messages produced straight to Kafka): the JSON Schema in `schema/` plus the rules a
//!   schema cannot express (catalogue membership, clock skew, serialized size), and the
//!   stamping of the server-owned fields.
//! * [`system`]: the one builder of the platform's own `audit_log.*` events.
//! * [`integrity`]: the tags proving a message on the topic was written by the platform.
//! * [`ocsf`]: the event as an OCSF object (destinations and exports in the `ocsf` format).

pub mod arrival;
pub mod catalogue;
pub mod error;
pub mod event;
pub mod integrity;
pub mod ocsf;
pub mod system;
pub mod validate;

pub use catalogue::{Catalogue, CategoryDef};
pub use error::{Error, Result};
pub use event::{
    Actor, ActorType, AuditEvent, Context, MetadataValue, Outcome, Provenance, Target,
};
pub use validate::{EventValidator, FieldError, Limits};

/// The contract version this build produces and accepts.
pub const SCHEMA_VERSION: u8 = 1;

/// The JSON Schema of the event contract, as published in the repository.
pub const EVENT_SCHEMA_JSON: &str = include_str!("../schema/audit-event.v1.schema.json");

/// The catalogue shipped in the repository (`config/catalogue.toml`), for tests and defaults.
pub const DEFAULT_CATALOGUE_TOML: &str = include_str!("../../../config/catalogue.toml");
