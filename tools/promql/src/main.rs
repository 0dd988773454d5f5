//! promql: SigV4-signed PromQL against an AMP workspace (or any Prometheus) from scripts.

use std::process::ExitCode;

use ampkit::aws::AwsArgs;
use ampkit::cli::{LogArgs, Runtime, ToolArgs};
use ampkit::promql::{Command, Options};
use clap::Parser;

/// PromQL queries, signed with SigV4 (service `aps`) using the AWS credential chain. The
/// endpoint comes from the document's workspace.prometheusEndpoint, --workspace-id or --url;
/// the answer goes into the `query` section of the document.
#[derive(Parser, Debug)]
#[command(name = "promql", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    options: Options,
    #[command(flatten)]
    aws: AwsArgs,
    #[command(flatten)]
    log: LogArgs,
}

impl ToolArgs for Cli {
    fn log_args(&self) -> &LogArgs {
        &self.log
    }
}

fn main() -> ExitCode {
    ampkit::cli::run::<Cli, _>("promql", Runtime::CurrentThread, async |cli, doc| {
        let progress = cli.log.progress();
        ampkit::promql::run(cli.command, cli.options, cli.aws, progress, doc).await
    })
}
