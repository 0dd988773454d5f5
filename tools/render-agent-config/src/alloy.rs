//! The `alloy` flavor: the same scrape for Grafana Alloy, the Agent's successor, and its
//! manifests (one DaemonSet; each Alloy discovers only the pods of its own node).
//!
//! Alloy's configuration language has no serde format, so a small writer renders the model's
//! components; every string goes through one quoting function, the only place where
//! escaping could go wrong.

use std::fmt::Write as _;

use serde_json::Value;

use super::k8s::{self, AgentContainer, Placement};
use super::model::{AgentModel, RelabelRule, Targets};
use ampkit::error::Result;

pub const DEFAULT_IMAGE: &str = "grafana/alloy:v1.11.3";
const CONFIG_KEY: &str = "config.alloy";

/// A double-quoted Alloy string (Go-style escapes).
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

fn object<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    let fields: Vec<String> = pairs
        .into_iter()
        .map(|(k, v)| format!("{} = {}", quote(k), quote(v)))
        .collect();
    format!("{{{}}}", fields.join(", "))
}

fn rule(out: &mut String, rule: &RelabelRule) {
    out.push_str("  rule {\n");
    if !rule.source_labels.is_empty() {
        let _ = writeln!(out, "    source_labels = {}", list(&rule.source_labels));
    }
    if let Some(regex) = &rule.regex {
        let _ = writeln!(out, "    regex         = {}", quote(regex));
    }
    if let Some(target) = &rule.target_label {
        let _ = writeln!(out, "    target_label  = {}", quote(target));
    }
    if let Some(replacement) = &rule.replacement {
        let _ = writeln!(out, "    replacement   = {}", quote(replacement));
    }
    let _ = writeln!(out, "    action        = {}", quote(rule.action.as_str()));
    out.push_str("  }\n");
}

/// The Alloy configuration file.
pub fn config(model: &AgentModel) -> String {
    let mut out = String::from("// Rendered by ampkit render-agent-config --flavor alloy.\n\n");
    let targets = match &model.targets {
        Targets::Kubernetes { .. } => {
            out.push_str(concat!(
                "discovery.kubernetes \"pods\" {\n",
                "  role = \"pod\"\n",
                "  // Each Alloy of the DaemonSet scrapes the pods of its own node.\n",
                "  selectors {\n",
                "    role  = \"pod\"\n",
                "    field = \"spec.nodeName=\" + sys.env(\"HOSTNAME\")\n",
                "  }\n",
                "}\n\n",
            ));
            "discovery.kubernetes.pods.targets".to_owned()
        }
        Targets::Static(targets) => {
            let items: Vec<String> = targets
                .iter()
                .map(|t| {
                    let address = ("__address__".to_owned(), t.address.clone());
                    let pairs = std::iter::once((&address.0, &address.1)).chain(t.labels.iter());
                    format!("    {},\n", object(pairs))
                })
                .collect();
            format!("[\n{}  ]", items.concat())
        }
    };
    let job = &model.job_name;
    // Component labels must be identifiers; the job name (any string) goes in `job_name`.
    let label = "envoy";
    let targets = if model.relabel.is_empty() {
        targets
    } else {
        let _ = writeln!(out, "discovery.relabel {} {{", quote(label));
        let _ = writeln!(out, "  targets = {targets}");
        for r in &model.relabel {
            rule(&mut out, r);
        }
        out.push_str("}\n\n");
        format!("discovery.relabel.{label}.output")
    };
    let _ = writeln!(out, "prometheus.scrape {} {{", quote(label));
    let _ = writeln!(out, "  targets         = {targets}");
    let _ = writeln!(out, "  job_name        = {}", quote(job));
    let _ = writeln!(out, "  metrics_path    = {}", quote(&model.metrics_path));
    let _ = writeln!(out, "  scrape_interval = {}", quote(&model.scrape_interval));
    out.push_str("  forward_to      = [prometheus.remote_write.workspace.receiver]\n}\n\n");

    out.push_str("prometheus.remote_write \"workspace\" {\n");
    if let Some(rw) = &model.remote_write {
        out.push_str("  endpoint {\n");
        let _ = writeln!(out, "    url = {}", quote(&rw.url));
        if let Some(region) = &rw.sigv4_region {
            let _ = writeln!(
                out,
                "\n    sigv4 {{\n      region = {}\n    }}",
                quote(region)
            );
        }
        if let Some(deadline) = &rw.batch_send_deadline {
            let _ = writeln!(
                out,
                "\n    queue_config {{\n      batch_send_deadline = {}\n    }}",
                quote(deadline)
            );
        }
        out.push_str("  }\n");
    }
    if !model.external_labels.is_empty() {
        let _ = writeln!(
            out,
            "\n  external_labels = {}",
            object(&model.external_labels)
        );
    }
    out.push_str("}\n");
    out
}

/// The manifests, in apply order.
pub fn manifests(model: &AgentModel, placement: &Placement) -> Result<Vec<Value>> {
    let name = "alloy";
    let ns = placement.namespace.as_str();
    let container = AgentContainer {
        name: "alloy",
        args: vec![
            "run".into(),
            format!("/etc/alloy/{CONFIG_KEY}"),
            "--storage.path=/tmp/alloy".into(),
            "--server.http.listen-addr=0.0.0.0:12345".into(),
        ],
        config_map: name,
        mount_path: "/etc/alloy",
        port: 12345,
    };
    Ok(vec![
        k8s::to_value(&k8s::namespace(ns))?,
        k8s::to_value(&k8s::cluster_role(name))?,
        k8s::to_value(&k8s::cluster_role_binding(name, placement))?,
        k8s::to_value(&k8s::config_map(name, ns, CONFIG_KEY, config(model)))?,
        k8s::to_value(&k8s::daemon_set(name, placement, &container))?,
    ])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(quote(r"([^:]+)(?::\d+)?"), r#""([^:]+)(?::\\d+)?""#);
        assert_eq!(quote("a\"b\n"), r#""a\"b\n""#);
    }
}
