use audit_runtime::{ConfigError, Secret};
use serde::{Deserialize, Serialize};

use crate::migrations::SchemaLayout;

/// The `[clickhouse]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP interface URL, e.g. `http://127.0.0.1:18123`.
    pub url: String,
    /// User name.
    #[serde(default = "default_user")]
    pub user: String,
    /// Password (empty for none).
    #[serde(default)]
    pub password: Secret,
    /// Database holding the audit tables.
    #[serde(default = "default_database")]
    pub database: String,
    /// Compression of requests and responses: `lz4` (default) saves network; `none` saves CPU
    /// when ClickHouse runs on the same host.
    #[serde(default)]
    pub compression: Compression,
    /// Seconds a query or insert may take before it is abandoned (and retried by the caller).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Schema layout: `single_node` (one server) or `replicated` (replicated `events_local`
    /// tables on every node of `cluster` behind a Distributed `events` table). Chooses the
    /// migrations `indexer migrate` applies; reads and inserts use `events` either way.
    #[serde(default)]
    pub layout: Layout,
    /// The cluster (a `remote_servers` name) holding the tables; required by, and only
    /// allowed with, `layout = "replicated"`.
    #[serde(default)]
    pub cluster: String,
    /// Build the free-text search index (`idx_search`, n-grams) during inserts. Off by
    /// default: the index is then built when ClickHouse merges the new parts, which it does
    /// anyway, and inserts cost about a third less (searches stay correct; a part not merged
    /// yet is just read without the index). Needs ClickHouse 25.x or later
    /// (`exclude_materialize_skip_indexes_on_insert`); set `true` for older servers.
    #[serde(default)]
    pub search_index_on_insert: bool,
}

/// The `[clickhouse] layout` choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    #[default]
    SingleNode,
    Replicated,
}

/// Wire compression between a service and ClickHouse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Lz4,
    None,
}

fn default_user() -> String {
    "default".into()
}

fn default_database() -> String {
    "audit".into()
}

fn default_timeout() -> u64 {
    30
}

impl ClickHouseConfig {
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(ConfigError::invalid(
                format!("{section}.url"),
                "must be an http(s) URL",
            ));
        }
        let valid_identifier = !self.database.is_empty()
            && self
                .database
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !self.database.starts_with(|c: char| c.is_ascii_digit());
        if !valid_identifier {
            return Err(ConfigError::invalid(
                format!("{section}.database"),
                "must be an identifier ([A-Za-z_][A-Za-z0-9_]*)",
            ));
        }
        if self.timeout_secs == 0 {
            return Err(ConfigError::invalid(
                format!("{section}.timeout_secs"),
                "must be positive",
            ));
        }
        match self.layout {
            Layout::SingleNode if !self.cluster.is_empty() => Err(ConfigError::invalid(
                format!("{section}.cluster"),
                "is only used with layout = \"replicated\"",
            )),
            Layout::Replicated if !valid_cluster_name(&self.cluster) => Err(ConfigError::invalid(
                format!("{section}.cluster"),
                "layout = \"replicated\" needs the cluster name ([A-Za-z0-9_.-]+)",
            )),
            _ => Ok(()),
        }
    }

    /// The schema layout, with its cluster.
    pub fn schema_layout(&self) -> SchemaLayout {
        match self.layout {
            Layout::SingleNode => SchemaLayout::SingleNode,
            Layout::Replicated => SchemaLayout::Replicated {
                cluster: self.cluster.clone(),
            },
        }
    }
}

/// A cluster name goes into SQL as a quoted literal: allow only what `remote_servers` names use.
fn valid_cluster_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(layout: serde_json::Value) -> ClickHouseConfig {
        let mut value = serde_json::json!({ "url": "http://127.0.0.1:18123" });
        if let (Some(base), Some(extra)) = (value.as_object_mut(), layout.as_object()) {
            base.extend(extra.clone());
        }
        serde_json::from_value(value).expect("deserializes")
    }

    #[test]
    fn layout_defaults_to_single_node() {
        let config = parse(serde_json::json!({}));
        assert!(config.validate("clickhouse").is_ok());
        assert_eq!(config.schema_layout(), SchemaLayout::SingleNode);
    }

    #[test]
    fn replicated_layout_needs_a_cluster_name() {
        let config =
            parse(serde_json::json!({ "layout": "replicated", "cluster": "audit_cluster" }));
        assert!(config.validate("clickhouse").is_ok());
        assert_eq!(
            config.schema_layout(),
            SchemaLayout::Replicated {
                cluster: "audit_cluster".into()
            }
        );

        for bad in ["", "x' OR 1", "a b"] {
            let error = parse(serde_json::json!({ "layout": "replicated", "cluster": bad }))
                .validate("clickhouse")
                .expect_err("invalid")
                .to_string();
            assert!(error.contains("clickhouse.cluster"), "{error}");
        }
        let error = parse(serde_json::json!({ "cluster": "audit_cluster" }))
            .validate("clickhouse")
            .expect_err("invalid")
            .to_string();
        assert!(error.contains("only used with"), "{error}");
    }
}
