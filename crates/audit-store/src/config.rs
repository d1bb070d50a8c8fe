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
    /// Schema layout: `single_node` (one server), `replicated` (replicated `events_local`
    /// tables on every node of `cluster` behind a Distributed `events` table, DDL `ON
    /// CLUSTER` through Keeper) or `sharded` (plain `events_local` tables on the shards of
    /// `cluster`, one server each, behind a Distributed `events` table; no Keeper: DDL and
    /// retention changes go to every node of `shard_urls`). Chooses the migrations `indexer
    /// migrate` applies; reads and inserts use `events` either way.
    #[serde(default)]
    pub layout: Layout,
    /// The cluster (a `remote_servers` name) holding the tables; required by, and only
    /// allowed with, `layout = "replicated"` or `"sharded"`.
    #[serde(default)]
    pub cluster: String,
    /// HTTP URLs of every node of `cluster`, one per shard (`layout = "sharded"` only, and
    /// required there): `indexer migrate` creates the tables on each, the indexer checks the
    /// schema on each and applies retention changes to each.
    #[serde(default)]
    pub shard_urls: Vec<String>,
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
    Sharded,
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
        if !is_http_url(&self.url) {
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
        if self.layout != Layout::Sharded && !self.shard_urls.is_empty() {
            return Err(ConfigError::invalid(
                format!("{section}.shard_urls"),
                "is only used with layout = \"sharded\"",
            ));
        }
        match self.layout {
            Layout::SingleNode if !self.cluster.is_empty() => Err(ConfigError::invalid(
                format!("{section}.cluster"),
                "is only used with layout = \"replicated\" or \"sharded\"",
            )),
            Layout::Replicated | Layout::Sharded if !valid_cluster_name(&self.cluster) => {
                Err(ConfigError::invalid(
                    format!("{section}.cluster"),
                    "a cluster layout needs the cluster name ([A-Za-z0-9_.-]+)",
                ))
            }
            Layout::Sharded if self.shard_urls.is_empty() => Err(ConfigError::invalid(
                format!("{section}.shard_urls"),
                "layout = \"sharded\" needs the HTTP URL of every shard",
            )),
            Layout::Sharded => match self.shard_urls.iter().find(|url| !is_http_url(url)) {
                Some(url) => Err(ConfigError::invalid(
                    format!("{section}.shard_urls"),
                    format!("`{url}` is not an http(s) URL"),
                )),
                None => Ok(()),
            },
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
            Layout::Sharded => SchemaLayout::Sharded {
                cluster: self.cluster.clone(),
            },
        }
    }
}

fn is_http_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
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

    #[test]
    fn sharded_layout_needs_a_cluster_and_every_shard_url() {
        let config = parse(serde_json::json!({
            "layout": "sharded",
            "cluster": "audit_shards",
            "shard_urls": ["http://ch-1:8123", "https://ch-2:8443"],
        }));
        assert!(config.validate("clickhouse").is_ok());
        assert_eq!(
            config.schema_layout(),
            SchemaLayout::Sharded {
                cluster: "audit_shards".into()
            }
        );

        let cases = [
            (
                serde_json::json!({ "layout": "sharded", "shard_urls": ["http://a:1"] }),
                "clickhouse.cluster",
            ),
            (
                serde_json::json!({ "layout": "sharded", "cluster": "c" }),
                "clickhouse.shard_urls",
            ),
            (
                serde_json::json!({ "layout": "sharded", "cluster": "c", "shard_urls": ["ch-1:8123"] }),
                "not an http(s) URL",
            ),
            (
                serde_json::json!({ "layout": "replicated", "cluster": "c", "shard_urls": ["http://a:1"] }),
                "only used with layout = \"sharded\"",
            ),
        ];
        for (config, expected) in cases {
            let error = parse(config)
                .validate("clickhouse")
                .expect_err("invalid")
                .to_string();
            assert!(error.contains(expected), "{error}");
        }
    }
}
