//! amp-local: a local AMP-compatible endpoint (control plane + data plane, SigV4 verified)
//! in front of a real Prometheus and Alertmanager. The logic is in `ampkit::amp_local`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ampkit::cli::{LogArgs, Runtime, ToolArgs};
use clap::Parser;

/// Serve AMP's API (workspaces, rule groups namespaces, alert manager definitions, remote
/// write and queries) on 127.0.0.1, verifying every request's SigV4 signature, and back it
/// with a real Prometheus (rules, data) and Alertmanager (alerts).
#[derive(Parser, Debug)]
#[command(name = "amp-local", version)]
struct Cli {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:9095", value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// Base URL clients reach amp-local at (prometheusEndpoint uses it) [default: http://<listen>]
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// The Prometheus receiver (remote-write receiver and lifecycle API enabled)
    #[arg(long, value_name = "URL")]
    prometheus_url: String,
    /// The Alertmanager whose configuration amp-local writes and reloads
    #[arg(long, value_name = "URL")]
    alertmanager_url: Option<String>,
    /// Directory the Prometheus reads rule files from (its rule_files glob: DIR/*.yml)
    #[arg(long, value_name = "DIR")]
    rules_dir: PathBuf,
    /// The configuration file the Alertmanager reads; amp-local owns and rewrites it
    #[arg(long, value_name = "FILE")]
    alertmanager_config: Option<PathBuf>,
    /// Where the workspaces, rules and definitions are kept (state.json)
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Region requests must be signed for
    #[arg(long, env = "AWS_REGION", value_name = "REGION")]
    region: String,
    /// Account id used in ARNs
    #[arg(long, default_value = "123456789012", value_name = "ID")]
    account_id: String,
    /// Access keys accepted: lines `ACCESS_KEY_ID SECRET`, or a JSON object; also
    /// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY from the environment
    #[arg(long, value_name = "FILE")]
    credentials: Option<PathBuf>,
    /// How long workspaces stay CREATING (and DELETING) before they turn ACTIVE (gone)
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    activation_delay: Duration,
    /// SNS endpoint the Alertmanager publishes to [default: AWS_ENDPOINT_URL_SNS, AWS_ENDPOINT_URL]
    #[arg(long, value_name = "URL")]
    sns_endpoint: Option<String>,
    #[command(flatten)]
    log: LogArgs,
}

impl ToolArgs for Cli {
    fn log_args(&self) -> &LogArgs {
        &self.log
    }
}

fn options(cli: Cli) -> ampkit::Result<ampkit::amp_local::Options> {
    let mut credentials = match &cli.credentials {
        Some(path) => ampkit::amp_local::read_credentials_file(path)?,
        None => Default::default(),
    };
    if let (Ok(key), Ok(secret)) = (
        std::env::var("AWS_ACCESS_KEY_ID"),
        std::env::var("AWS_SECRET_ACCESS_KEY"),
    ) && !key.is_empty()
    {
        credentials.entry(key).or_insert(secret);
    }
    let sns_endpoint = cli.sns_endpoint.or_else(|| {
        ["AWS_ENDPOINT_URL_SNS", "AWS_ENDPOINT_URL"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
    });
    Ok(ampkit::amp_local::Options {
        listen: cli.listen,
        public_url: cli.public_url,
        prometheus_url: cli.prometheus_url,
        alertmanager_url: cli.alertmanager_url,
        rules_dir: cli.rules_dir,
        alertmanager_config: cli.alertmanager_config,
        data_dir: cli.data_dir,
        region: cli.region,
        account_id: cli.account_id,
        credentials,
        activation_delay: cli.activation_delay,
        sns_endpoint,
    })
}

fn main() -> ExitCode {
    ampkit::cli::run_without_doc::<Cli, _>("amp-local", Runtime::MultiThread, async |cli| {
        ampkit::amp_local::serve(options(cli)?).await
    })
}
