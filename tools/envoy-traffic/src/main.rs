//! envoy-traffic: drive HTTP traffic through the Envoy mesh, report what came back, and
//! cross-check the counts with Envoy's own admin stats. The logic is in the crate's lib.

use std::process::ExitCode;

fn main() -> ExitCode {
    ampkit::cli::run(&envoy_traffic::TOOL, envoy_traffic::run)
}
