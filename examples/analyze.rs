//! Analyse experiments from JSON: one request (an object) or many (an array) read from the file
//! named by the first argument, or from stdin without one. Prints the report(s) as pretty JSON
//! on stdout in the same order; invalid input prints a message naming the field on stderr and
//! exits non-zero.
//!
//! ```text
//! cargo run --example analyze -- examples/data/analyze-request.json
//! echo '{"variants": [...], "metrics": [...]}' | cargo run --example analyze
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{Read, Write};
use std::process::ExitCode;

use abkit::stats::{AnalysisRequest, Report, StatsError, analyze};
use serde_json::Value;

fn run(value: Value) -> Result<Report, StatsError> {
    analyze(&AnalysisRequest::from_value(value)?)
}

fn main() -> ExitCode {
    let text = match std::env::args_os().nth(1) {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.to_string_lossy());
                return ExitCode::FAILURE;
            }
        },
        None => {
            let mut text = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut text) {
                eprintln!("error: cannot read stdin: {e}");
                return ExitCode::FAILURE;
            }
            text
        }
    };
    let value: Value = match serde_json::from_str(&text) {
        Ok(value) => value,
        Err(e) => {
            eprintln!("error: invalid json: {e}");
            return ExitCode::FAILURE;
        }
    };
    let output = match value {
        Value::Array(requests) => {
            let mut reports = Vec::with_capacity(requests.len());
            for (i, request) in requests.into_iter().enumerate() {
                match run(request) {
                    Ok(report) => reports.push(report),
                    Err(e) => {
                        eprintln!("error: request [{i}]: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            serde_json::to_string_pretty(&reports)
        }
        single => match run(single) {
            Ok(report) => serde_json::to_string_pretty(&report),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    match output {
        Ok(json) => match writeln!(std::io::stdout().lock(), "{json}") {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: cannot write the report: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("error: cannot serialize the report: {e}");
            ExitCode::FAILURE
        }
    }
}
