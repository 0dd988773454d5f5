//! Prometheus's configuration file, typed: the `prometheus-agent` flavor, and the scrape and
//! remote-write parts that Grafana Agent static mode and the managed scraper embed verbatim.
//!
//! Only the fields the model uses are declared; serde renders them in Prometheus's own names,
//! so the output is what `promtool check config` reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{AgentModel, RelabelRule, Targets};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrometheusConfig {
    pub global: GlobalConfig,
    pub scrape_configs: Vec<ScrapeConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_write: Vec<RemoteWriteConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlobalConfig {
    pub scrape_interval: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub external_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ScrapeConfig {
    pub job_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relabel_configs: Vec<RelabelConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Authorization {
    pub credentials_file: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlsConfig {
    pub ca_file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaticConfig {
    pub targets: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KubernetesSdConfig {
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelabelConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    pub action: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteWriteConfig {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigv4: Option<Sigv4Config>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_config: Option<QueueConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sigv4Config {
    pub region: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_send_deadline: Option<String>,
    /// Always on: AMP answers 429 when a workspace's ingestion rate or series quota is
    /// exceeded, and Prometheus (2.53 and 3.x alike: `config.DefaultQueueConfig` leaves it
    /// false; `storage/remote/client.go` retries a 429 only with it) otherwise drops the
    /// batch as a "non-recoverable error": samples lost. With it the batch is retried with
    /// backoff until it is taken. Grafana Agent's static mode reads the same option.
    #[serde(default)]
    pub retry_on_http_429: bool,
}

impl From<&RelabelRule> for RelabelConfig {
    fn from(rule: &RelabelRule) -> Self {
        RelabelConfig {
            source_labels: rule.source_labels.clone(),
            regex: rule.regex.clone(),
            target_label: rule.target_label.clone(),
            replacement: rule.replacement.clone(),
            action: rule.action.as_str().to_owned(),
        }
    }
}

pub fn global(model: &AgentModel) -> GlobalConfig {
    GlobalConfig {
        scrape_interval: model.scrape_interval.clone(),
        external_labels: model.external_labels.clone(),
    }
}

/// The model's Envoy job.
pub fn envoy_scrape_config(model: &AgentModel) -> ScrapeConfig {
    let (static_configs, kubernetes_sd_configs) = match &model.targets {
        Targets::Static(targets) => (
            targets
                .iter()
                .map(|t| StaticConfig {
                    targets: vec![t.address.clone()],
                    labels: t.labels.clone(),
                })
                .collect(),
            Vec::new(),
        ),
        Targets::Kubernetes { .. } => (Vec::new(), vec![KubernetesSdConfig { role: "pod".into() }]),
    };
    ScrapeConfig {
        job_name: model.job_name.clone(),
        metrics_path: Some(model.metrics_path.clone()),
        static_configs,
        kubernetes_sd_configs,
        relabel_configs: model.relabel.iter().map(RelabelConfig::from).collect(),
        ..ScrapeConfig::default()
    }
}

pub fn remote_write(model: &AgentModel) -> Vec<RemoteWriteConfig> {
    model
        .remote_write
        .iter()
        .map(|rw| RemoteWriteConfig {
            url: rw.url.clone(),
            sigv4: rw.sigv4_region.clone().map(|region| Sigv4Config { region }),
            queue_config: Some(QueueConfig {
                batch_send_deadline: rw.batch_send_deadline.clone(),
                retry_on_http_429: true,
            }),
        })
        .collect()
}

/// `prometheus.yml` for Prometheus in agent mode (or any Prometheus).
pub fn config(model: &AgentModel) -> PrometheusConfig {
    PrometheusConfig {
        global: global(model),
        scrape_configs: vec![envoy_scrape_config(model)],
        remote_write: remote_write(model),
    }
}
