//! `forwarder`: audit events → SIEM destinations. See the library docs for the guarantees.

// mimalloc, tuned for RSS: see `audit_runtime::alloc`.
audit_runtime::global_allocator!();

fn main() -> std::process::ExitCode {
    forwarder::cli::main()
}
