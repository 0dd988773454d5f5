//! teardown: delete exactly what the ledger of the state document lists, newest first.

use std::process::ExitCode;

fn main() -> ExitCode {
    ampkit::cli::run_aws(&teardown::TOOL, teardown::run)
}
