//! The `grafana-agent` flavor: the recipe's Grafana Agent (static mode) manifests, fixed.
//!
//! A DaemonSet runs the Envoy job with `host_filter` (each agent scrapes the pods of its own
//! node); a one-replica Deployment runs the cluster-wide API server job. Static mode embeds
//! Prometheus's own `scrape_configs` and `remote_write`, which is why
//! [`embedded_prometheus_configs`] can hand them to `promtool` unchanged.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::k8s::{self, AgentContainer, Placement};
use super::model::{AgentModel, Targets};
use super::prometheus::{
    self, Authorization, GlobalConfig, KubernetesSdConfig, PrometheusConfig, RelabelConfig,
    RemoteWriteConfig, ScrapeConfig, TlsConfig,
};
use ampkit::error::{Error, Result};

pub const DEFAULT_IMAGE: &str = "grafana/agent:v0.44.2";
const CONFIG_KEY: &str = "agent.yml";
const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Agent static mode's file (`-config.file`), the parts we use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentFile {
    pub server: ServerConfig,
    pub metrics: MetricsConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerConfig {
    pub log_level: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsConfig {
    pub wal_directory: String,
    pub global: GlobalConfig,
    pub configs: Vec<InstanceConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceConfig {
    pub name: String,
    /// Scrape only targets on this agent's node (the DaemonSet's instance).
    pub host_filter: bool,
    pub scrape_configs: Vec<ScrapeConfig>,
    #[serde(default)]
    pub remote_write: Vec<RemoteWriteConfig>,
}

fn api_server_job() -> ScrapeConfig {
    ScrapeConfig {
        job_name: "default/kubernetes".into(),
        scheme: Some("https".into()),
        authorization: Some(Authorization {
            credentials_file: format!("{SA_DIR}/token"),
        }),
        tls_config: Some(TlsConfig {
            ca_file: format!("{SA_DIR}/ca.crt"),
            server_name: Some("kubernetes".into()),
        }),
        kubernetes_sd_configs: vec![KubernetesSdConfig {
            role: "endpoints".into(),
        }],
        relabel_configs: vec![RelabelConfig {
            source_labels: vec!["__meta_kubernetes_service_label_component".into()],
            regex: Some("apiserver".into()),
            target_label: None,
            replacement: None,
            action: "keep".into(),
        }],
        ..ScrapeConfig::default()
    }
}

fn agent_file(
    model: &AgentModel,
    instance: &str,
    host_filter: bool,
    jobs: Vec<ScrapeConfig>,
) -> AgentFile {
    AgentFile {
        server: ServerConfig {
            log_level: "info".into(),
        },
        metrics: MetricsConfig {
            wal_directory: "/tmp/agent/data".into(),
            global: prometheus::global(model),
            configs: vec![InstanceConfig {
                name: instance.into(),
                host_filter,
                scrape_configs: jobs,
                remote_write: prometheus::remote_write(model),
            }],
        },
    }
}

/// The two agent files: (DaemonSet's, Deployment's).
pub fn agent_files(model: &AgentModel) -> (AgentFile, AgentFile) {
    let envoy = prometheus::envoy_scrape_config(model);
    match model.targets {
        Targets::Kubernetes { .. } => (
            agent_file(model, "envoy", true, vec![envoy]),
            agent_file(model, "cluster", false, vec![api_server_job()]),
        ),
        // Fixed targets are not on any node: one replica scrapes them, or each node would.
        Targets::Static(_) => (
            agent_file(model, "envoy", true, Vec::new()),
            agent_file(model, "cluster", false, vec![envoy, api_server_job()]),
        ),
    }
}

/// The manifests, in apply order.
pub fn manifests(model: &AgentModel, placement: &Placement) -> Result<Vec<Value>> {
    let (node_file, cluster_file) = agent_files(model);
    let ns = placement.namespace.as_str();
    let node_name = "grafana-agent";
    let cluster_name = "grafana-agent-deployment";
    let container = |config_map: &'static str| AgentContainer {
        name: "agent",
        args: vec![
            format!("-config.file=/etc/agent/{CONFIG_KEY}"),
            "-server.http.address=0.0.0.0:12345".into(),
        ],
        config_map,
        mount_path: "/etc/agent",
        port: 12345,
    };
    Ok(vec![
        k8s::to_value(&k8s::namespace(ns))?,
        k8s::to_value(&k8s::cluster_role(node_name))?,
        k8s::to_value(&k8s::cluster_role_binding(node_name, placement))?,
        k8s::to_value(&k8s::config_map(
            node_name,
            ns,
            CONFIG_KEY,
            super::to_yaml(&node_file)?,
        ))?,
        k8s::to_value(&k8s::config_map(
            cluster_name,
            ns,
            CONFIG_KEY,
            super::to_yaml(&cluster_file)?,
        ))?,
        k8s::to_value(&k8s::daemon_set(
            node_name,
            placement,
            &container(node_name),
        ))?,
        k8s::to_value(&k8s::deployment(
            cluster_name,
            placement,
            &container(cluster_name),
        ))?,
    ])
}

/// The Prometheus-compatible part of an agent file: one Prometheus config per instance, with
/// the agent-only keys (`host_filter`, `wal_directory`, `server`) left out.
pub fn embedded_prometheus_configs(agent_yml: &str) -> Result<Vec<PrometheusConfig>> {
    let file: AgentFile = serde_norway::from_str(agent_yml)
        .map_err(|e| Error::input(format!("not a Grafana Agent static-mode file: {e}")))?;
    Ok(file
        .metrics
        .configs
        .into_iter()
        .filter(|instance| !instance.scrape_configs.is_empty())
        .map(|instance| PrometheusConfig {
            global: file.metrics.global.clone(),
            scrape_configs: instance.scrape_configs,
            remote_write: instance.remote_write,
        })
        .collect())
}

/// Every agent file found in the ConfigMaps of a rendered manifest file (YAML stream or JSON
/// `List`), as Prometheus configs.
pub fn prometheus_configs_in_manifests(text: &str) -> Result<Vec<PrometheusConfig>> {
    let objects = super::read_objects(text)?;
    let mut configs = Vec::new();
    for object in objects {
        if object["kind"] == "ConfigMap"
            && let Some(agent_yml) = object["data"][CONFIG_KEY].as_str()
        {
            configs.extend(embedded_prometheus_configs(agent_yml)?);
        }
    }
    Ok(configs)
}
