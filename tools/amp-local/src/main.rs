//! amp-local: a local AMP-compatible endpoint (control plane + data plane, SigV4 verified)
//! in front of a real Prometheus and Alertmanager. The logic is in the crate's lib.

use std::process::ExitCode;

fn main() -> ExitCode {
    ampkit::cli::run_without_doc(&amp_local::TOOL, amp_local::run)
}
