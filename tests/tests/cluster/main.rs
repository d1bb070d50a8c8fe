//! The pipeline on real clusters: a 3-node KRaft Kafka (every topic at replication factor 3,
//! `min.insync.replicas=2`) and a ClickHouse of 2 shards (`layout = "sharded"`), started once
//! per run by `make test`. Each test breaks a node on purpose and checks the promises that
//! matter on a cluster: an acknowledged event survives the loss of the broker leading its
//! partition; a stopped shard costs neither events nor the other shard's reads; every copy
//! of an event lands on one shard, so it is returned once; retention reaches every shard.
//! The tests take the cluster in turn ([`Cluster::exclusive`]).
//!
//! One module per node broken:
//!
//! | module | what it checks |
//! |---|---|
//! | [`broker_loss`] | acknowledged events survive the loss of the partition leader and the active controller |
//! | [`shard_stop`] | a stopped shard holds back indexing, answers 503 for its organizations only, loses nothing |
//! | [`shard_placement`] | copies of an event meet on one shard across a rebalance; retention reaches every shard |
//!
//! Shared: [`common`] (services on the cluster, partition leadership), [`load`] (load and the
//! ledger of what clients were told), [`checks`] (exactly once, each event on its shard).

#![allow(clippy::unwrap_used, clippy::print_stdout)] // test suites: unwrap states what must hold

mod broker_loss;
mod checks;
mod common;
mod load;
mod shard_placement;
mod shard_stop;
