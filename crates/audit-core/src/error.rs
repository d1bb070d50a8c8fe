use std::path::PathBuf;

/// Errors of the event contract crate (loading the catalogue or the schema).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read catalogue {path}: {source}")]
    CatalogueRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid catalogue: {0}")]
    CatalogueInvalid(String),
    #[error("invalid event schema: {0}")]
    Schema(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
