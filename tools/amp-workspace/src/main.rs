//! amp-workspace: create (or find by alias), describe, list, wait for and delete an Amazon
//! Managed Service for Prometheus workspace; writes the `workspace` section.

use std::process::ExitCode;

fn main() -> ExitCode {
    ampkit::cli::run_aws(&amp_workspace::TOOL, amp_workspace::run)
}
