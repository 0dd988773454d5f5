//! render-agent-config: render the collector configuration (see the crate's lib).

use std::process::ExitCode;

use ampkit::cli::Runtime;

fn main() -> ExitCode {
    ampkit::cli::run(
        render_agent_config::TOOL,
        Runtime::CurrentThread,
        render_agent_config::run,
    )
}
