//! irsa-role: the collector's IAM role and service account (see the crate's lib).

use std::process::ExitCode;

fn main() -> ExitCode {
    ampkit::cli::run_aws(&irsa_role::TOOL, irsa_role::run)
}
