//! The command's IO: the keys, the bundle and the head are read whole (their size follows the
//! leaves and keys), the export is streamed line by line, the report is written, and the
//! throughput measured over the whole run. Every input error names its file (and the line
//! and column for JSON).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::bundle::{Bundle, SignedDigest};
use crate::export::LineReader;
use crate::keys::{KeyRing, KeysError};
use crate::report::{Report, Throughput};
use crate::verify::{Options, Verification};

/// What the command was asked to check.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The NDJSON export; `-` is standard input.
    pub export: PathBuf,
    pub bundle: PathBuf,
    pub keys: PathBuf,
    pub head: Option<PathBuf>,
    pub options: Options,
    /// The report as JSON rather than text.
    pub json: bool,
}

/// The check could not be made: exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: cannot read: {source}")]
    Read { path: String, source: io::Error },
    #[error("{path}: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path}: {source}")]
    Keys { path: String, source: KeysError },
    #[error("{path}: line {line}: cannot read: {source}")]
    Export {
        path: String,
        line: u64,
        source: io::Error,
    },
    #[error("cannot write the report: {0}")]
    Output(io::Error),
}

/// Runs the check and writes the report to `out`.
pub fn run(inputs: &Inputs, out: &mut impl Write) -> Result<Report, InputError> {
    let started = Instant::now();
    let keys = KeyRing::from_json(&read(&inputs.keys)?).map_err(|source| InputError::Keys {
        path: display(&inputs.keys),
        source,
    })?;
    let bundle = Bundle::from_json(&read(&inputs.bundle)?).map_err(json_error(&inputs.bundle))?;
    let head = match &inputs.head {
        Some(path) => Some(SignedDigest::from_json(&read(path)?).map_err(json_error(path))?),
        None => None,
    };
    let mut verification = Verification::new(bundle, &keys, head.as_ref(), &inputs.options);
    if inputs.export.as_os_str() == "-" {
        let stdin = BufReader::with_capacity(1 << 20, io::stdin().lock());
        check_export(&mut verification, stdin, "standard input")?;
    } else {
        let file = File::open(&inputs.export).map_err(read_error(&inputs.export))?;
        let input = BufReader::with_capacity(1 << 20, file);
        check_export(&mut verification, input, &display(&inputs.export))?;
    }
    let mut report = verification.finish();
    let seconds = started.elapsed().as_secs_f64();
    report.throughput = Some(Throughput {
        seconds,
        events_per_second: report.events as f64 / seconds.max(1e-9),
    });
    let written = if inputs.json {
        report.write_json(out)
    } else {
        report.write_human(out)
    };
    written
        .and_then(|()| out.flush())
        .map_err(InputError::Output)?;
    Ok(report)
}

fn check_export(
    verification: &mut Verification,
    input: impl BufRead,
    name: &str,
) -> Result<(), InputError> {
    let mut reader = LineReader::new(input);
    let mut lines_read = 0;
    loop {
        match reader.next_line() {
            Ok(Some(line)) => {
                lines_read = line.number;
                verification.check_line(&line);
            }
            Ok(None) => return Ok(()),
            Err(source) => {
                return Err(InputError::Export {
                    path: name.to_owned(),
                    line: lines_read + 1,
                    source,
                });
            }
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, InputError> {
    std::fs::read(path).map_err(read_error(path))
}

fn read_error(path: &Path) -> impl FnOnce(io::Error) -> InputError + '_ {
    move |source| InputError::Read {
        path: display(path),
        source,
    }
}

fn json_error(path: &Path) -> impl FnOnce(serde_json::Error) -> InputError + '_ {
    move |source| InputError::Json {
        path: display(path),
        source,
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
