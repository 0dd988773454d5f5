//! Which service mesh's proxies are being monitored: one notion that the first tool of a
//! pipeline chooses (`--mesh`) and records in the document (`mesh.profile`), so that the
//! tools downstream scrape, chart and alert on the same thing.
//!
//! App Mesh (the recipe's, and the default) reached its end of support on 30 September 2026;
//! the Envoy-based meshes EKS users run now are Istio, Envoy Gateway and Consul. Three of them
//! expose Envoy's own (raw) statistics, so the recipe's dashboards and alert work unchanged
//! once `service` and `namespace` mean the same thing; Istio publishes its own standard
//! metrics (`istio_requests_total`, `istio_request_duration_milliseconds`), which need their
//! own dashboard and alert.
//!
//! Sources: Envoy Gateway's proxies serve `/stats/prometheus` on 19001
//! (gateway.envoyproxy.io, "Proxy Metrics"); Istio's sidecars serve merged metrics on 15020 at
//! `/stats/prometheus` and its standard metrics are in milliseconds with a `reporter` label
//! (istio.io, "Istio Standard Metrics", "Envoy Statistics"); Consul's dataplane serves merged
//! metrics at `/metrics` on 20200 (developer.hashicorp.com, Consul "Observe" docs; the port is
//! its documented default for `envoy_prometheus_bind_addr`-less merging).

use serde::{Deserialize, Serialize};

use crate::doc::StateDoc;
use crate::error::Result;

/// The document's key of [`MeshSection`].
pub const SECTION: &str = "mesh";

/// The HTTP listeners (stat prefixes) through which a proxy serves itself rather than the
/// service: Envoy's admin, Envoy Gateway's stats and readiness listeners (`eg-stats-http`,
/// `eg-ready-http`, from its bootstrap), and Consul's metrics, stats and ready listeners
/// (`envoy_prometheus_metrics`, `envoy_metrics`, `envoy_ready`, from its bootstrap). Every
/// scrape of those meshes' proxies passes through one of them, so a panel or an alert about
/// the service's requests leaves them out, or the collector's own scrapes count as traffic.
pub const OWN_LISTENERS: &[&str] = &[
    "admin",
    "eg-stats-http",
    "eg-ready-http",
    "envoy_prometheus_metrics",
    "envoy_metrics",
    "envoy_ready",
];

/// The clusters behind [`OWN_LISTENERS`] (Envoy Gateway's `prometheus_stats`, Consul's
/// `self_admin` and `prometheus_backend`): upstream traffic of the proxy's own scrapes.
pub const OWN_CLUSTERS: &[&str] = &["prometheus_stats", "self_admin", "prometheus_backend"];

/// [`OWN_LISTENERS`] as a PromQL regex, for `envoy_http_conn_manager_prefix!~"..."`.
pub fn own_listeners_regex() -> String {
    OWN_LISTENERS.join("|")
}

/// A mesh profile.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Mesh {
    /// AWS App Mesh's Envoy sidecars (the recipe's; end of support 30 Sep 2026)
    #[default]
    Appmesh,
    /// Envoy Gateway's data-plane proxies
    EnvoyGateway,
    /// Consul service mesh (Envoy through consul-dataplane)
    Consul,
    /// Istio's sidecars and their standard metrics
    Istio,
}

/// The `mesh` section.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshSection {
    pub profile: Mesh,
}

/// Which family of metrics a mesh's proxies give, and so which dashboard and alert fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricFamily {
    /// Envoy's own statistics (`envoy_http_downstream_rq_total`, ...).
    RawEnvoy,
    /// Istio's standard metrics (`istio_requests_total`, ...).
    Istio,
}

/// How a mesh's proxies are found and scraped in Kubernetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyScrape {
    /// The proxy container's name in each pod.
    pub container: &'static str,
    /// The port serving the metrics (a `prometheus.io/port` annotation overrides it).
    pub port: u16,
    pub path: &'static str,
    /// The pod labels that name the service, first present wins (as Kubernetes
    /// discovery's meta label suffixes: `app` is `__meta_kubernetes_pod_label_app`).
    pub service_labels: &'static [&'static str],
    /// A pod label naming the service's namespace; `None`: the pod's own namespace.
    pub namespace_label: Option<&'static str>,
}

impl Mesh {
    pub fn as_str(self) -> &'static str {
        match self {
            Mesh::Appmesh => "appmesh",
            Mesh::EnvoyGateway => "envoy-gateway",
            Mesh::Consul => "consul",
            Mesh::Istio => "istio",
        }
    }

    /// The flag, else the document's `mesh.profile`, else App Mesh (the recipe's).
    pub fn resolve(flag: Option<Mesh>, doc: &StateDoc) -> Result<Mesh> {
        if let Some(mesh) = flag {
            return Ok(mesh);
        }
        let section: Option<MeshSection> = doc.section_as(SECTION)?;
        Ok(section.map(|s| s.profile).unwrap_or_default())
    }

    /// Record the profile, so that the tools downstream follow it.
    pub fn record(self, doc: &mut StateDoc) -> Result<()> {
        doc.set_section(SECTION, MeshSection { profile: self })
    }

    pub fn family(self) -> MetricFamily {
        match self {
            Mesh::Istio => MetricFamily::Istio,
            Mesh::Appmesh | Mesh::EnvoyGateway | Mesh::Consul => MetricFamily::RawEnvoy,
        }
    }

    pub fn scrape(self) -> ProxyScrape {
        match self {
            Mesh::Appmesh => ProxyScrape {
                container: "envoy",
                port: 9901,
                path: "/stats/prometheus",
                service_labels: &["app"],
                namespace_label: None,
            },
            // The proxies run in Envoy Gateway's own namespace; the Gateway they serve is what
            // a user calls the service, and its namespace the service's.
            Mesh::EnvoyGateway => ProxyScrape {
                container: "envoy",
                port: 19001,
                path: "/stats/prometheus",
                service_labels: &["gateway_envoyproxy_io_owning_gateway_name"],
                namespace_label: Some("gateway_envoyproxy_io_owning_gateway_namespace"),
            },
            Mesh::Consul => ProxyScrape {
                container: "consul-dataplane",
                port: 20200,
                path: "/metrics",
                service_labels: &["app"],
                namespace_label: None,
            },
            // Istio's canonical service name, else the `app` label it is derived from.
            Mesh::Istio => ProxyScrape {
                container: "istio-proxy",
                port: 15020,
                path: "/stats/prometheus",
                service_labels: &["service_istio_io_canonical_name", "app"],
                namespace_label: None,
            },
        }
    }

    /// The requests a service received, as the mesh counts them (a counter, by `service`):
    /// what a recipe waits for and compares with what it sent.
    pub fn requests_metric(self) -> &'static str {
        match self.family() {
            MetricFamily::RawEnvoy => "envoy_http_downstream_rq_total",
            MetricFamily::Istio => "istio_requests_total",
        }
    }
}

impl std::fmt::Display for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_own_listeners_regex_needs_no_escaping() {
        // Names of letters, digits, `_` and `-` only: joined, they are a plain alternation.
        for name in OWN_LISTENERS.iter().chain(OWN_CLUSTERS) {
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                "{name}"
            );
        }
        assert!(own_listeners_regex().starts_with("admin|eg-stats-http|"));
    }

    #[test]
    fn the_flag_wins_then_the_document_then_app_mesh() {
        let mut doc = StateDoc::new();
        assert_eq!(Mesh::resolve(None, &doc).unwrap(), Mesh::Appmesh);
        Mesh::Istio.record(&mut doc).unwrap();
        assert_eq!(doc.str_field(SECTION, "profile"), Some("istio"));
        assert_eq!(Mesh::resolve(None, &doc).unwrap(), Mesh::Istio);
        assert_eq!(
            Mesh::resolve(Some(Mesh::Consul), &doc).unwrap(),
            Mesh::Consul
        );
        let bad = StateDoc::parse(r#"{"mesh":{"profile":"linkerd"}}"#).unwrap();
        assert_eq!(Mesh::resolve(None, &bad).unwrap_err().exit_code(), 2);
    }
}
