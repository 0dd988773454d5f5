//! The one internal model every flavor is rendered from: what to scrape, how to relabel it,
//! how often, and where to remote-write it.
//!
//! Flavors differ only in syntax and packaging (a `prometheus.yml`, Agent static mode in a
//! ConfigMap, Alloy's component language, a managed-scraper blob); keeping the semantics in
//! one place is what makes "the same scrape in four syntaxes" true by construction.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use ampkit::error::{Error, Result};
use ampkit::mesh::ProxyScrape;

/// The collector's whole job, independent of any syntax.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentModel {
    pub job_name: String,
    /// A Prometheus duration, e.g. `15s`.
    pub scrape_interval: String,
    pub metrics_path: String,
    pub targets: Targets,
    /// Applied to discovered (or static) targets before the scrape.
    pub relabel: Vec<RelabelRule>,
    /// `None` for the managed scraper, whose destination is the workspace itself.
    pub remote_write: Option<RemoteWrite>,
    pub external_labels: BTreeMap<String, String>,
}

/// Where the targets come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// Fixed `host:port` targets with their own labels (the local stack's Envoy admins).
    Static(Vec<StaticTarget>),
    /// Pods in the cluster whose container has this name; the admin port is assumed unless a
    /// `prometheus.io/port` annotation says otherwise.
    Kubernetes { container: String, admin_port: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticTarget {
    pub address: String,
    pub labels: BTreeMap<String, String>,
}

/// Prometheus relabel actions used by the model (a subset; each maps 1:1 to every flavor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelabelAction {
    Replace,
    Keep,
    Drop,
    Labelmap,
}

impl RelabelAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RelabelAction::Replace => "replace",
            RelabelAction::Keep => "keep",
            RelabelAction::Drop => "drop",
            RelabelAction::Labelmap => "labelmap",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelabelRule {
    pub action: RelabelAction,
    pub source_labels: Vec<String>,
    pub regex: Option<String>,
    pub target_label: Option<String>,
    pub replacement: Option<String>,
}

impl RelabelRule {
    fn new(action: RelabelAction) -> Self {
        RelabelRule {
            action,
            source_labels: Vec::new(),
            regex: None,
            target_label: None,
            replacement: None,
        }
    }

    fn sources(mut self, labels: &[&str]) -> Self {
        self.source_labels = labels.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    fn regex(mut self, regex: impl Into<String>) -> Self {
        self.regex = Some(regex.into());
        self
    }

    fn target(mut self, label: &str) -> Self {
        self.target_label = Some(label.to_owned());
        self
    }

    fn replacement(mut self, replacement: impl Into<String>) -> Self {
        self.replacement = Some(replacement.into());
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteWrite {
    pub url: String,
    /// SigV4 signing region; `None` sends unsigned (a plain Prometheus receiver).
    pub sigv4_region: Option<String>,
    /// How long a partial batch may wait; short locally so data shows up in seconds.
    pub batch_send_deadline: Option<String>,
}

/// The relabel rules of a mesh's proxy pods: the recipe's `appmesh-envoy` job, with its
/// address rewrite fixed, and with `service` and `namespace` taken from where each mesh keeps
/// them, so that they mean the same thing in every profile.
///
/// The recipe rewrote `__address__` only when a `prometheus.io/port` annotation existed (its
/// regex needs the `;port` part), so unannotated sidecars were scraped on whatever port the pod
/// declared first — silently wrong. Here the proxy's metrics port is always set, and the
/// annotation, when present, overrides it. The labels dashboard 11022 groups by (`service`,
/// `namespace`) and `kubernetes_pod_name` are kept as the recipe named them.
pub fn proxy_pod_rules(container: &str, port: u16, scrape: &ProxyScrape) -> Vec<RelabelRule> {
    use RelabelAction::*;
    let mut rules = vec![
        RelabelRule::new(Keep)
            .sources(&["__meta_kubernetes_pod_container_name"])
            .regex(regex_literal(container)),
        RelabelRule::new(Replace)
            .sources(&["__address__"])
            .regex(r"([^:]+)(?::\d+)?")
            .target("__address__")
            .replacement(format!("${{1}}:{port}")),
        RelabelRule::new(Replace)
            .sources(&[
                "__address__",
                "__meta_kubernetes_pod_annotation_prometheus_io_port",
            ])
            .regex(r"([^:]+)(?::\d+)?;(\d+)")
            .target("__address__")
            .replacement("${1}:${2}"),
        RelabelRule::new(Labelmap).regex("__meta_kubernetes_pod_label_(.+)"),
    ];
    let namespace_source = match scrape.namespace_label {
        Some(label) => format!("__meta_kubernetes_pod_label_{label}"),
        None => "__meta_kubernetes_namespace".to_owned(),
    };
    rules.push(
        RelabelRule::new(Replace)
            .sources(&[namespace_source.as_str()])
            .target("namespace"),
    );
    // The first label present wins: the rules run last to first, each replacing only when
    // its label is not empty.
    for label in scrape.service_labels.iter().rev() {
        rules.push(
            RelabelRule::new(Replace)
                .sources(&[format!("__meta_kubernetes_pod_label_{label}").as_str()])
                .regex("(.+)")
                .target("service"),
        );
    }
    rules.push(
        RelabelRule::new(Replace)
            .sources(&["__meta_kubernetes_pod_name"])
            .target("kubernetes_pod_name"),
    );
    rules
}

/// Escape regex metacharacters so a container name matches only itself.
fn regex_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Parse `HOST:PORT[,label=value...]`.
pub fn parse_target(spec: &str) -> Result<StaticTarget> {
    let bad = |why: String| {
        Error::usage(format!("invalid --target `{spec}`: {why}")).with_hint(
            "write it as HOST:PORT[,label=value...], e.g. 127.0.0.1:9901,service=dj,namespace=prod",
        )
    };
    let mut parts = spec.split(',');
    let address = parts.next().unwrap_or_default().trim();
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| bad("the address has no `:PORT`".into()))?;
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(bad(format!("`{host}` is not a host name or address")));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(bad(format!("`{port}` is not a port (1-65535)"))),
    }
    let mut labels = BTreeMap::new();
    for pair in parts {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| bad(format!("`{pair}` is not label=value")))?;
        let name = name.trim();
        validate_label_name(name).map_err(bad)?;
        if labels.insert(name.to_owned(), value.to_owned()).is_some() {
            return Err(bad(format!("label `{name}` is given twice")));
        }
    }
    Ok(StaticTarget {
        address: address.to_owned(),
        labels,
    })
}

/// Parse `name=value` (external labels).
pub fn parse_label(spec: &str, flag: &str) -> Result<(String, String)> {
    let bad = |why: String| {
        Error::usage(format!("invalid {flag} `{spec}`: {why}")).with_hint(format!(
            "write it as {flag} name=value, e.g. {flag} cluster=demo"
        ))
    };
    let (name, value) = spec
        .split_once('=')
        .ok_or_else(|| bad("it is not name=value".into()))?;
    validate_label_name(name).map_err(bad)?;
    Ok((name.to_owned(), value.to_owned()))
}

/// Prometheus label names: `[a-zA-Z_][a-zA-Z0-9_]*`; `__` is reserved for internal labels,
/// which a user-given label must not set (they would be dropped after relabeling).
fn validate_label_name(name: &str) -> std::result::Result<(), String> {
    let mut chars = name.chars();
    let valid = match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {
            chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        _ => false,
    };
    if !valid {
        return Err(format!(
            "`{name}` is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"
        ));
    }
    if name.starts_with("__") {
        return Err(format!(
            "`{name}` starts with `__`, which Prometheus reserves"
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_target_with_labels_parses() {
        let t = parse_target("127.0.0.1:19311,service=dj,namespace=prod").unwrap();
        assert_eq!(t.address, "127.0.0.1:19311");
        assert_eq!(t.labels["service"], "dj");
        assert_eq!(t.labels["namespace"], "prod");
    }

    #[test]
    fn bad_targets_are_usage_errors_naming_the_target() {
        for spec in [
            "localhost",
            ":9901",
            "h:0",
            "h:70000",
            "h:x",
            "h:1,service",
            "h:1,9x=y",
            "h:1,__address__=y",
            "h:1,a=1,a=2",
        ] {
            let err = parse_target(spec).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{spec}");
            assert!(err.message.contains(spec), "{spec}: {}", err.message);
        }
    }

    #[test]
    fn the_container_name_is_matched_literally() {
        assert_eq!(regex_literal("envoy"), "envoy");
        assert_eq!(regex_literal("a.b"), r"a\.b");
    }

    #[test]
    fn the_address_is_rewritten_without_an_annotation() {
        let rules = proxy_pod_rules("envoy", 9901, &ampkit::mesh::Mesh::Appmesh.scrape());
        let unconditional = &rules[1];
        assert_eq!(unconditional.source_labels, ["__address__"]);
        assert_eq!(unconditional.replacement.as_deref(), Some("${1}:9901"));
    }
}
