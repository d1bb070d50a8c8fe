//! The hostile-input suite, one module per boundary. Every case asserts two things: the
//! hostile input gets a clear, bounded answer (an error status with a JSON error body, a 429
//! with `Retry-After`, a closed connection, …), and the pipeline keeps indexing other
//! organizations' events afterwards.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // test suites: unwrap states what must hold

mod http_ingest;
mod readers;
