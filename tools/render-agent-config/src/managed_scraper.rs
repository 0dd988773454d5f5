//! The `managed-scraper` flavor: the scrape configuration blob of an AMP managed collector
//! (CreateScraper's `scrapeConfiguration.configurationBlob`).
//!
//! The collector writes to the workspace named at creation, so the blob has no
//! `remote_write`; the scrape part is the same Prometheus config the other flavors use.

use base64::Engine as _;
use serde::Serialize;

use super::k8s;
use super::model::AgentModel;
use super::prometheus::{self, PrometheusConfig};
use ampkit::error::Result;

pub fn config(model: &AgentModel) -> PrometheusConfig {
    PrometheusConfig {
        global: prometheus::global(model),
        scrape_configs: vec![prometheus::envoy_scrape_config(model)],
        remote_write: Vec::new(),
    }
}

/// AMP's `ScrapeConfiguration` shape, for `aws amp create-scraper --scrape-configuration file://`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScrapeConfiguration {
    pub configuration_blob: String,
}

pub fn scrape_configuration(model: &AgentModel) -> Result<ScrapeConfiguration> {
    let yaml = super::to_yaml(&config(model))?;
    Ok(ScrapeConfiguration {
        configuration_blob: base64::engine::general_purpose::STANDARD.encode(yaml),
    })
}

/// The ClusterRole and binding the collector's Kubernetes user (`aps-collector-user`, which
/// its EKS access entry maps the scraper's role to) needs to discover pods.
pub fn rbac() -> Result<Vec<serde_json::Value>> {
    Ok(vec![
        k8s::to_value(&k8s::scraper_cluster_role())?,
        k8s::to_value(&k8s::scraper_cluster_role_binding())?,
    ])
}
