//! promql: SigV4-signed PromQL against an AMP workspace (or any Prometheus) from scripts.

use std::process::ExitCode;

use ampkit::cli::Runtime;

fn main() -> ExitCode {
    ampkit::cli::run(promql::TOOL, Runtime::CurrentThread, promql::run)
}
