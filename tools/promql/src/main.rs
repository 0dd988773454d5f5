//! promql: SigV4-signed PromQL against an AMP workspace (or any Prometheus) from scripts.

use std::process::ExitCode;

fn main() -> ExitCode {
    ampkit::cli::run_aws(&promql::TOOL, promql::run)
}
