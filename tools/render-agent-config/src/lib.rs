//! render-agent-config: the collector's configuration, in four flavors from one model.
//!
//! The collector scrapes Envoy's admin `/stats/prometheus` and remote-writes to the
//! workspace with SigV4. What to scrape and where to send it is decided once, in
//! [`model::AgentModel`]; each flavor module only translates it (typed serde models for
//! Prometheus-style YAML, k8s-openapi types for manifests, a small writer for Alloy). No
//! network: everything comes from flags and the document's `workspace` (and `irsa`) sections.

pub mod alloy;
pub mod grafana_agent;
pub mod k8s;
pub mod managed_scraper;
pub mod model;
pub mod prometheus;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use ampkit::amp::WorkspaceSection;
use ampkit::cli::{self, Runtime, Tool};
use ampkit::doc::StateDoc;
use ampkit::error::{Error, Result};
use ampkit::iam::IrsaSection;
use ampkit::kube::NameRule;
use ampkit::mesh::Mesh;
use ampkit::timespec::{format_duration, parse_positive_duration};
use model::{AgentModel, RemoteWrite, Targets};

/// The program's name, as in the ledger and in error lines.
pub const NAME: &str = "render-agent-config";

/// What the frame needs to know of this tool besides its flags.
pub const TOOL: Tool = Tool {
    name: NAME,
    runtime: Runtime::CurrentThread,
    examples: &[
        "amp-workspace ensure --alias AMP-APPMESH | render-agent-config --flavor grafana-agent --out out/",
        "render-agent-config --flavor alloy --stdout < state.json | kubectl apply -f -",
        "render-agent-config --flavor prometheus-agent --target 127.0.0.1:9901,service=dj --out out/ < state.json",
    ],
};

/// Which collector the configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flavor {
    /// Kubernetes manifests for Grafana Agent static mode (the recipe's collector)
    GrafanaAgent,
    /// Kubernetes manifests and config for Grafana Alloy (the Agent's successor)
    Alloy,
    /// prometheus.yml for Prometheus in agent mode
    PrometheusAgent,
    /// The scrape configuration blob of an AMP managed collector
    ManagedScraper,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Yaml,
    Json,
}

/// Render the configuration that scrapes Envoy's /stats/prometheus and remote-writes to the
/// workspace with SigV4: Grafana Agent or Alloy manifests, a Prometheus agent config, or an
/// AMP managed-scraper blob. Reads `workspace` (and `irsa`) from the document; flags win.
#[derive(clap::Parser, Debug, Clone)]
pub struct Cli {
    /// Which collector to render for
    #[arg(long, value_enum)]
    pub flavor: Flavor,
    /// Directory to write the files to (created if missing)
    #[arg(long, value_name = "DIR", required_unless_present = "stdout")]
    pub out: Option<PathBuf>,
    /// Print only the main rendered file on stdout (no document: ends the pipeline)
    #[arg(long, conflicts_with = "out")]
    pub stdout: bool,
    /// File format: JSON where the consumer takes JSON (kubectl, aws amp create-scraper)
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    pub format: Format,
    /// Static target HOST:PORT[,label=value...] (repeatable); none means Kubernetes pod discovery
    #[arg(long = "target", value_name = "HOST:PORT[,LABEL=VALUE...]")]
    pub targets: Vec<String>,
    /// Remote-write URL [default: the document's workspace.remoteWriteUrl]
    #[arg(long, value_name = "URL")]
    pub remote_write_url: Option<String>,
    /// SigV4 signing region [default: the document's workspace.region]
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Send remote writes unsigned (a plain Prometheus receiver, not AMP)
    #[arg(long)]
    pub no_sigv4: bool,
    /// Scrape interval, e.g. 15s, 1m
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_positive_duration)]
    pub scrape_interval: Duration,
    /// Longest wait before a partial remote-write batch is sent, e.g. 5s
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub batch_send_deadline: Option<Duration>,
    /// External label NAME=VALUE added to every series (repeatable)
    #[arg(long = "external-label", value_name = "NAME=VALUE")]
    pub external_labels: Vec<String>,
    /// Scrape job name
    #[arg(long, value_name = "NAME", default_value = "envoy")]
    pub job_name: String,
    /// The mesh whose proxies are scraped: what to scrape and how `service` and `namespace`
    /// are labelled [default: the document's mesh.profile, else appmesh]
    #[arg(long, value_enum, value_name = "MESH")]
    pub mesh: Option<Mesh>,
    /// Name of the proxy container to scrape in discovered pods [default: the mesh's: envoy,
    /// consul-dataplane, istio-proxy]
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,
    /// The proxy's metrics port when a pod has no prometheus.io/port annotation [default:
    /// the mesh's: 9901 App Mesh, 19001 Envoy Gateway, 20200 Consul, 15020 Istio]
    #[arg(long, value_name = "PORT")]
    pub admin_port: Option<u16>,
    /// Namespace of the agent [default: the document's irsa.namespace, else grafana-agent]
    #[arg(long, value_name = "NAME")]
    pub namespace: Option<String>,
    /// Service account of the agent [default: irsa.serviceAccount, else grafana-agent]
    #[arg(long, value_name = "NAME")]
    pub service_account: Option<String>,
    /// Container image of the agent, pinned [default: per flavor]
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
}

/// The tool: the files into `--out` and the `agent` section, or `--stdout`'s main file.
pub async fn run(cli: Cli, doc: &mut StateDoc) -> Result<()> {
    if cli.stdout {
        // The file, not the document, is the output: the frame must not add the document,
        // even when rendering fails.
        cli::stdout_written();
        let text = render_stdout(&cli, doc)?;
        cli::write_stdout(&[text.as_bytes()])
    } else {
        render(&cli, doc)
    }
}

/// The `agent` section.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentSection {
    pub flavor: Flavor,
    pub format: Format,
    pub files: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_write_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sigv4_region: Option<String>,
}

/// One rendered file: its name in the output directory and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    pub name: String,
    pub content: String,
}

pub(crate) fn to_yaml(value: &impl Serialize) -> Result<String> {
    serde_norway::to_string(value)
        .map_err(|e| Error::internal(format!("could not render YAML: {e}")))
}

pub(crate) fn to_json(value: &impl Serialize) -> Result<String> {
    serde_json::to_string_pretty(value)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| Error::internal(format!("could not render JSON: {e}")))
}

/// The objects of a manifest file: a YAML stream, or a JSON `List` / single object.
pub fn read_objects(text: &str) -> Result<Vec<Value>> {
    if text.trim_start().starts_with('{') {
        let value: Value =
            serde_json::from_str(text).map_err(|e| Error::input(format!("not valid JSON: {e}")))?;
        return Ok(match value.get("items").and_then(Value::as_array) {
            Some(items) if value["kind"] == "List" => items.clone(),
            _ => vec![value],
        });
    }
    let mut objects = Vec::new();
    for document in serde_norway::Deserializer::from_str(text) {
        let value = Value::deserialize(document)
            .map_err(|e| Error::input(format!("not valid YAML: {e}")))?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

fn remote_write(opts: &Cli, workspace: &WorkspaceSection) -> Result<RemoteWrite> {
    let url = opts
        .remote_write_url
        .clone()
        .or_else(|| WorkspaceSection::get(&workspace.remote_write_url).map(str::to_owned))
        .or_else(|| {
            WorkspaceSection::get(&workspace.prometheus_endpoint)
                .map(|endpoint| format!("{}/api/v1/remote_write", endpoint.trim_end_matches('/')))
        })
        .ok_or_else(|| {
            Error::usage("no remote-write URL: neither --remote-write-url nor a `workspace` section in the document gives one")
                .with_hint("pipe in the output of `amp-workspace ensure --alias NAME`, or pass --remote-write-url URL")
        })?;
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(Error::usage(format!("invalid remote-write URL `{url}`: not an http(s) URL"))
            .with_hint("pass the workspace's remote-write URL, e.g. https://aps-workspaces.REGION.amazonaws.com/workspaces/ID/api/v1/remote_write"));
    }
    let sigv4_region = if opts.no_sigv4 {
        None
    } else {
        Some(
            opts.region
                .clone()
                .or_else(|| WorkspaceSection::get(&workspace.region).map(str::to_owned))
                .ok_or_else(|| {
                    Error::usage("no SigV4 region: neither --region nor the document's `workspace.region` gives one")
                        .with_hint("pass --region REGION (or --no-sigv4 for a receiver that takes unsigned writes)")
                })?,
        )
    };
    Ok(RemoteWrite {
        url,
        sigv4_region,
        batch_send_deadline: opts.batch_send_deadline.map(format_duration),
    })
}

/// Build the model from flags and document; every validation error is exit 2.
pub fn build_model(opts: &Cli, doc: &StateDoc) -> Result<AgentModel> {
    let workspace = WorkspaceSection::from_doc(doc)?.unwrap_or_default();
    if opts.job_name.trim().is_empty() {
        return Err(Error::usage("--job-name is empty").with_hint("pass a job name such as envoy"));
    }
    let mesh = Mesh::resolve(opts.mesh, doc)?;
    let scrape = mesh.scrape();
    let container = opts
        .container
        .clone()
        .unwrap_or_else(|| scrape.container.to_owned());
    let port = opts.admin_port.unwrap_or(scrape.port);
    NameRule::Dns1123Label.validate("--container", &container)?;
    let mut external_labels = BTreeMap::new();
    for spec in &opts.external_labels {
        let (name, value) = model::parse_label(spec, "--external-label")?;
        external_labels.insert(name, value);
    }
    let (targets, relabel) = if opts.targets.is_empty() {
        (
            Targets::Kubernetes {
                container: container.clone(),
                admin_port: port,
            },
            model::proxy_pod_rules(&container, port, &scrape),
        )
    } else {
        let targets = opts
            .targets
            .iter()
            .map(|spec| model::parse_target(spec))
            .collect::<Result<Vec<_>>>()?;
        (Targets::Static(targets), Vec::new())
    };
    let remote_write = match opts.flavor {
        Flavor::ManagedScraper => None,
        _ => Some(remote_write(opts, &workspace)?),
    };
    Ok(AgentModel {
        job_name: opts.job_name.clone(),
        // Written in Prometheus's own form: `90` may be typed, `1m30s` is written.
        scrape_interval: format_duration(opts.scrape_interval),
        metrics_path: scrape.path.to_owned(),
        targets,
        relabel,
        remote_write,
        external_labels,
    })
}

fn placement(opts: &Cli, doc: &StateDoc, default_image: &str) -> Result<k8s::Placement> {
    let irsa: IrsaSection = doc.section_as(ampkit::iam::SECTION)?.unwrap_or_default();
    // A flag, else the irsa section, else the recipe's grafana-agent.
    let pick = |flag: &Option<String>, from_doc: String| {
        flag.clone()
            .or(Some(from_doc).filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "grafana-agent".into())
    };
    let namespace = pick(&opts.namespace, irsa.namespace);
    let service_account = pick(&opts.service_account, irsa.service_account);
    NameRule::Dns1123Label.validate("--namespace", &namespace)?;
    NameRule::Dns1123Subdomain.validate("--service-account", &service_account)?;
    Ok(k8s::Placement {
        namespace,
        service_account,
        image: opts
            .image
            .clone()
            .unwrap_or_else(|| default_image.to_owned()),
    })
}

fn manifest_file(stem: &str, objects: &[Value], format: Format) -> Result<RenderedFile> {
    Ok(match format {
        Format::Yaml => RenderedFile {
            name: format!("{stem}.yaml"),
            content: ampkit::kube::to_yaml_stream(objects)?,
        },
        Format::Json => RenderedFile {
            name: format!("{stem}.json"),
            content: k8s::to_json_list(objects)?,
        },
    })
}

fn config_file(stem: &str, value: &impl Serialize, format: Format) -> Result<RenderedFile> {
    Ok(match format {
        Format::Yaml => RenderedFile {
            name: format!("{stem}.yml"),
            content: to_yaml(value)?,
        },
        Format::Json => RenderedFile {
            name: format!("{stem}.json"),
            content: to_json(value)?,
        },
    })
}

/// Render the files of a flavor; the first one is the main file (what `--stdout` prints).
pub fn render_files(opts: &Cli, doc: &StateDoc) -> Result<(AgentModel, Vec<RenderedFile>)> {
    let model = build_model(opts, doc)?;
    let files = match opts.flavor {
        Flavor::PrometheusAgent => vec![config_file(
            "prometheus-agent",
            &prometheus::config(&model),
            opts.format,
        )?],
        Flavor::ManagedScraper => {
            let configuration = match opts.format {
                Format::Yaml => config_file(
                    "managed-scraper",
                    &managed_scraper::config(&model),
                    Format::Yaml,
                )?,
                Format::Json => config_file(
                    "managed-scraper",
                    &managed_scraper::scrape_configuration(&model)?,
                    Format::Json,
                )?,
            };
            // The cluster side: what the collector's user may read, for `kubectl apply`.
            let rbac = manifest_file("scraper-rbac", &managed_scraper::rbac()?, opts.format)?;
            vec![configuration, rbac]
        }
        Flavor::GrafanaAgent => {
            let placement = placement(opts, doc, grafana_agent::DEFAULT_IMAGE)?;
            vec![manifest_file(
                "grafana-agent",
                &grafana_agent::manifests(&model, &placement)?,
                opts.format,
            )?]
        }
        Flavor::Alloy => {
            let placement = placement(opts, doc, alloy::DEFAULT_IMAGE)?;
            vec![
                manifest_file("alloy", &alloy::manifests(&model, &placement)?, opts.format)?,
                RenderedFile {
                    name: "config.alloy".into(),
                    content: alloy::config(&model),
                },
            ]
        }
    };
    Ok((model, files))
}

fn write_files(dir: &Path, files: &[RenderedFile]) -> Result<Vec<String>> {
    let io_error = |path: &Path, e: std::io::Error| {
        Error::input(format!("could not write {}: {e}", path.display()))
            .with_hint("pass an --out directory you can write to")
    };
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let mut written = Vec::new();
    for file in files {
        let path = dir.join(&file.name);
        std::fs::write(&path, &file.content).map_err(|e| io_error(&path, e))?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

/// The tool: render, write the files to `--out`, set the `agent` section.
pub fn render(opts: &Cli, doc: &mut StateDoc) -> Result<()> {
    let dir = opts.out.clone().ok_or_else(|| {
        Error::usage(
            "no output: give --out DIR to write the files, or --stdout to print the main one",
        )
        .with_hint("e.g. render-agent-config --flavor prometheus-agent --out out/")
    })?;
    let (model, files) = render_files(opts, doc)?;
    let written = write_files(&dir, &files)?;
    // The tools downstream (dashboards, the alert) follow the mesh this scrape is for.
    Mesh::resolve(opts.mesh, doc)?.record(doc)?;
    let remote_write = model.remote_write.as_ref();
    doc.set_section(
        "agent",
        AgentSection {
            flavor: opts.flavor,
            format: opts.format,
            files: written,
            remote_write_url: remote_write.map(|rw| rw.url.clone()),
            sigv4_region: remote_write.and_then(|rw| rw.sigv4_region.clone()),
        },
    )
}

/// `--stdout`: the main file's text alone (for `kubectl apply -f -`); the document stops here.
pub fn render_stdout(opts: &Cli, doc: &StateDoc) -> Result<String> {
    let (_, files) = render_files(opts, doc)?;
    files
        .into_iter()
        .next()
        .map(|f| f.content)
        .ok_or_else(|| Error::internal("the flavor rendered no file"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
