//! `indexer`: Kafka → ClickHouse. See the library docs for the delivery guarantee. The
//! subcommands live in [`indexer::cli`]; this file only parses the arguments and runs them.

// mimalloc, tuned for RSS: see `audit_runtime::alloc`.
audit_runtime::global_allocator!();

use clap::Parser;
use indexer::cli::{Cli, dispatch};

fn main() -> std::process::ExitCode {
    audit_runtime::cli::block_on_main("indexer", dispatch(Cli::parse()))
}
