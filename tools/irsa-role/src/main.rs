//! irsa-role: the collector's IAM role and service account (see the crate's lib).

use std::process::ExitCode;

use ampkit::cli::Runtime;

fn main() -> ExitCode {
    ampkit::cli::run(irsa_role::TOOL, Runtime::CurrentThread, irsa_role::run)
}
