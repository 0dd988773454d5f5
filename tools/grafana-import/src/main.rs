//! grafana-import: the workspace's datasource, a folder and dashboards in Grafana (see the
//! crate's lib).

use std::process::ExitCode;

fn main() -> ExitCode {
    ampkit::cli::run_aws(&grafana_import::TOOL, grafana_import::run)
}
