//! The ClickHouse side of the pipeline.
//!
//! * [`migrations`]: versioned SQL (in `migrations/`), applied by `indexer migrate`.
//! * [`rows`]: the row written per event.
//! * [`Store`]: streaming inserts, retention changes, health.
//! * [`query`]: the organization-scoped reads of the API (filters, keyset pages, export, feed),
//!   each bounded by [`bounds::ReadBounds`].
//!
//! Every statement that carries a value uses ClickHouse server-side parameters
//! (`{name:Type}` + `param_name`), never string interpolation.

pub mod bounds;
pub mod config;
pub mod error;
pub mod export;
pub mod integrity;
pub mod migrations;
pub mod query;
pub mod rows;
pub mod store;

pub use bounds::ReadBounds;
pub use config::ClickHouseConfig;
pub use error::{Error, Result};
pub use export::ExportRow;
pub use integrity::{DigestRow, LeafRow, SealedLeaf, WindowInsert};
pub use rows::{EventRow, PendingEvent, partition_of};
pub use store::{EventInsert, NotCanonical, RetentionMutation, RowKey, Store};
