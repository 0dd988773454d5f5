//! sns-alert: the SNS topic and the recipe's latency alert, in AMP and Grafana (see the
//! crate's lib).

use std::process::ExitCode;

fn main() -> ExitCode {
    ampkit::cli::run_aws(&sns_alert::TOOL, sns_alert::run)
}
