//! render-agent-config: render the collector configuration (see ampkit::agent_config).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use ampkit::agent_config::{self, Flavor, Format, RenderOptions};
use ampkit::cli::{LogArgs, Runtime, ToolArgs};
use ampkit::{Error, StateDoc};
use clap::Parser;

/// Render the configuration that scrapes Envoy's /stats/prometheus and remote-writes to the
/// workspace with SigV4: Grafana Agent or Alloy manifests, a Prometheus agent config, or an
/// AMP managed-scraper blob. Reads `workspace` (and `irsa`) from the document; flags win.
#[derive(Parser, Debug)]
#[command(name = "render-agent-config", version)]
struct Cli {
    /// Which collector to render for
    #[arg(long, value_enum)]
    flavor: Flavor,
    /// Directory to write the files to (created if missing)
    #[arg(long, value_name = "DIR", required_unless_present = "stdout")]
    out: Option<PathBuf>,
    /// Print only the main rendered file on stdout (no document: ends the pipeline)
    #[arg(long, conflicts_with = "out")]
    stdout: bool,
    /// File format: JSON where the consumer takes JSON (kubectl, aws amp create-scraper)
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    format: Format,
    /// Static target HOST:PORT[,label=value...] (repeatable); none means Kubernetes pod discovery
    #[arg(long = "target", value_name = "HOST:PORT[,LABEL=VALUE...]")]
    targets: Vec<String>,
    /// Remote-write URL [default: the document's workspace.remoteWriteUrl]
    #[arg(long, value_name = "URL")]
    remote_write_url: Option<String>,
    /// SigV4 signing region [default: the document's workspace.region]
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// Send remote writes unsigned (a plain Prometheus receiver, not AMP)
    #[arg(long)]
    no_sigv4: bool,
    /// Scrape interval (Prometheus duration)
    #[arg(long, value_name = "DURATION", default_value = "15s")]
    scrape_interval: String,
    /// Longest wait before a partial remote-write batch is sent (Prometheus duration)
    #[arg(long, value_name = "DURATION")]
    batch_send_deadline: Option<String>,
    /// External label NAME=VALUE added to every series (repeatable)
    #[arg(long = "external-label", value_name = "NAME=VALUE")]
    external_labels: Vec<String>,
    /// Scrape job name
    #[arg(long, value_name = "NAME", default_value = "envoy")]
    job_name: String,
    /// Name of the Envoy container to scrape in discovered pods
    #[arg(long, value_name = "NAME", default_value = "envoy")]
    container: String,
    /// Envoy admin port used when a pod has no prometheus.io/port annotation
    #[arg(long, value_name = "PORT", default_value_t = 9901)]
    admin_port: u16,
    /// Namespace of the agent [default: the document's irsa.namespace, else grafana-agent]
    #[arg(long, value_name = "NAME")]
    namespace: Option<String>,
    /// Service account of the agent [default: irsa.serviceAccount, else grafana-agent]
    #[arg(long, value_name = "NAME")]
    service_account: Option<String>,
    /// Container image of the agent, pinned [default: per flavor]
    #[arg(long, value_name = "IMAGE")]
    image: Option<String>,
    #[command(flatten)]
    log: LogArgs,
}

impl ToolArgs for Cli {
    fn log_args(&self) -> &LogArgs {
        &self.log
    }
}

impl Cli {
    fn options(self) -> RenderOptions {
        RenderOptions {
            flavor: self.flavor,
            format: self.format,
            out: self.out,
            targets: self.targets,
            remote_write_url: self.remote_write_url,
            region: self.region,
            no_sigv4: self.no_sigv4,
            scrape_interval: self.scrape_interval,
            batch_send_deadline: self.batch_send_deadline,
            external_labels: self.external_labels,
            job_name: self.job_name,
            container: self.container,
            admin_port: self.admin_port,
            namespace: self.namespace,
            service_account: self.service_account,
            image: self.image,
        }
    }
}

fn main() -> ExitCode {
    const TOOL: &str = "render-agent-config";
    // --stdout prints the file instead of the document, so it runs outside the document frame.
    if std::env::args_os().any(|a| a == "--stdout") {
        return ampkit::cli::run_without_doc::<Cli, _>(TOOL, Runtime::CurrentThread, async |cli| {
            let doc = StateDoc::read_stdin()?;
            let text = agent_config::render_stdout(&cli.options(), &doc)?;
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(Error::internal(format!("could not write to stdout: {e}")))
                }
                _ => Ok(()),
            }
        });
    }
    ampkit::cli::run::<Cli, _>(TOOL, Runtime::CurrentThread, async |cli, doc| {
        agent_config::render(&cli.options(), doc)
    })
}
