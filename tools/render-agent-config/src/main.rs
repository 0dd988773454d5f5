//! render-agent-config: render the collector configuration (see the crate's lib).

use std::process::ExitCode;

fn main() -> ExitCode {
    ampkit::cli::run(&render_agent_config::TOOL, render_agent_config::run)
}
