//! envoy-traffic: drive HTTP traffic through the Envoy mesh, report what came back, and
//! cross-check the counts with Envoy's own admin stats. The logic is in `ampkit::traffic`.

use std::process::ExitCode;
use std::time::Duration;

use ampkit::cli::{LogArgs, Runtime, ToolArgs};
use ampkit::traffic::{self, HeaderName, HeaderValue, Method, kube_forward};
use clap::Parser;

/// Drive HTTP traffic through the mesh at a fixed rate (open model, latency from the intended
/// send time) or concurrency (closed model); report percentiles, status codes and errors in
/// the `traffic` section; with --envoy-admin, put Envoy's own counts next to ours.
#[derive(Parser, Debug)]
#[command(name = "envoy-traffic", version)]
struct Cli {
    /// Target URL [default: the document's traffic.url or mesh.url, else AMPKIT_ENVOY_URL]
    #[arg(long, value_name = "URL", conflicts_with = "kube_service")]
    url: Option<String>,

    /// A Kubernetes service, reached through a port-forward
    #[arg(long, value_name = "NAMESPACE/SERVICE:PORT", value_parser = kube_forward::parse_kube_service)]
    kube_service: Option<kube_forward::KubeService>,

    /// Open model: requests per second, constant arrival rate
    #[arg(long, value_name = "R", value_parser = traffic::parse_rate)]
    rate: Option<f64>,

    /// Connections; alone it is the closed model (as fast as possible) [default: 10, or with
    /// --rate enough for the rate]
    #[arg(short, long, value_name = "C", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    concurrency: Option<u32>,

    /// How long to send (e.g. 30s, 2m) [default: 10s unless --requests]
    #[arg(short, long, value_name = "D", value_parser = traffic::parse_duration)]
    duration: Option<Duration>,

    /// How many requests to send (after the warmup)
    #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    requests: Option<u64>,

    /// Send for this long first, outside the statistics
    #[arg(long, value_name = "D", value_parser = traffic::parse_duration_or_zero)]
    warmup: Option<Duration>,

    /// HTTP method
    #[arg(short = 'm', long, value_name = "METHOD", value_parser = parse_method)]
    method: Option<Method>,

    /// A request header, repeatable (e.g. 'x-envoy-fault-delay-request: 20')
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = traffic::parse_header)]
    headers: Vec<(HeaderName, HeaderValue)>,

    /// Request body
    #[arg(long, value_name = "TEXT")]
    body: Option<String>,

    /// Give up on a request after this long
    #[arg(long, value_name = "D", value_parser = traffic::parse_duration, default_value = "10s")]
    timeout: Duration,

    /// HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1 keep-alive
    #[arg(long)]
    http2: bool,

    /// Paths to spread the requests over, round-robin (e.g. /jazz,/metal) [default: the URL's]
    // Spelled `std::vec::Vec` so that clap takes the list as one value, split by the parser.
    #[arg(long, value_name = "PATH,...", value_parser = traffic::parse_paths)]
    paths: Option<std::vec::Vec<String>>,

    /// Envoy admin URLs to cross-check against [default: AMPKIT_ENVOY_ADMIN_URLS]
    #[arg(long, value_name = "URL,...", value_parser = traffic::parse_admin_urls)]
    envoy_admin: Option<std::vec::Vec<String>>,

    #[command(flatten)]
    log: LogArgs,
}

fn parse_method(s: &str) -> Result<Method, String> {
    Method::from_bytes(s.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("`{s}` is not an HTTP method"))
}

impl ToolArgs for Cli {
    fn log_args(&self) -> &LogArgs {
        &self.log
    }
}

fn main() -> ExitCode {
    ampkit::cli::run::<Cli, _>("envoy-traffic", Runtime::MultiThread, async |cli, doc| {
        let options = traffic::Options {
            progress: cli.log.progress(),
            url: cli.url,
            kube_service: cli.kube_service,
            rate: cli.rate,
            concurrency: cli.concurrency.map(|c| c as usize),
            duration: cli.duration,
            requests: cli.requests,
            warmup: cli.warmup,
            method: cli.method,
            headers: cli.headers,
            body: cli.body,
            timeout: Some(cli.timeout),
            http2: cli.http2,
            paths: cli.paths,
            envoy_admin: cli.envoy_admin,
        };
        traffic::run(options, doc).await
    })
}
