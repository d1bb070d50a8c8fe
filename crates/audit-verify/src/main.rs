//! `audit-verify`: parses the arguments and runs the check; see the library docs. The
//! arguments and their help live in [`audit_verify::cli`].

use std::process::ExitCode;

use audit_verify::cli::{Cli, main_with};
use clap::Parser;

fn main() -> ExitCode {
    main_with(Cli::parse())
}
