//! `gateway`: ingest, read/export API, dashboard and operator API. The subcommands live in
//! [`gateway::cli`]; this file only parses the arguments and runs them.

// mimalloc, tuned for RSS: see `audit_runtime::alloc`.
audit_runtime::global_allocator!();

use clap::Parser;
use gateway::cli::{Cli, dispatch};

fn main() -> std::process::ExitCode {
    audit_runtime::cli::block_on_main("gateway", dispatch(Cli::parse()))
}
