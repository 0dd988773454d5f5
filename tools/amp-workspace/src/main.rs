//! amp-workspace: create (or find by alias), describe, list, wait for and delete an Amazon
//! Managed Service for Prometheus workspace; writes the `workspace` section.

use std::process::ExitCode;

use ampkit::aws::AwsArgs;
use ampkit::cli::{LogArgs, Runtime, ToolArgs};
use ampkit::workspace::{Command, Options};
use clap::Parser;

/// Amazon Managed Service for Prometheus workspaces. Reads the state document on stdin and
/// writes it on stdout with the `workspace` section (and the ledger entry when it creates one).
#[derive(Parser, Debug)]
#[command(name = "amp-workspace", version)]
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
    ampkit::cli::run::<Cli, _>("amp-workspace", Runtime::CurrentThread, async |cli, doc| {
        let progress = cli.log.progress();
        ampkit::workspace::run(cli.command, cli.options, cli.aws, progress, doc).await
    })
}
