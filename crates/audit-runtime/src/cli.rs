//! The shared shape of the binaries' `main`: run the async entry point on a multi-threaded
//! runtime, print one line `<binary>: <error chain>` on failure (no backtrace dump) and exit 1.

use std::process::ExitCode;

pub fn block_on_main<E: std::fmt::Display>(
    binary: &str,
    main: impl Future<Output = Result<(), E>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{binary}: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{binary}: {error:#}");
            ExitCode::FAILURE
        }
    }
}
