//! The alert, one definition rendered for each target: a Prometheus rules file and an
//! alert manager definition for AMP (checked here the way AMP checks them), and later a
//! Grafana alert rule. Pure functions, so the files are tested without any service.

use std::time::Duration;

use ampkit::amp::alerting::{validate_definition, validate_rules};
use ampkit::error::{Error, Result};
use ampkit::mesh::{Mesh, MetricFamily};
use ampkit::timespec::format_duration;
use serde_norway::{Mapping, Value};

/// The label every alert of ours carries; Grafana's policy route and teardown match on it.
pub const MANAGED_LABEL: (&str, &str) = ("managed_by", "ampkit");

/// The recipe's latency, per service, in milliseconds, as the mesh measures it. Raw Envoy:
/// p99 of the downstream request time, the proxy's own listeners left out (admin, and the
/// metrics listeners of Envoy Gateway and Consul: their scrapes would dilute the p99, or
/// raise it when serving /stats/prometheus is slow). Istio: p99 of `istio_request_duration_milliseconds`
/// as the receiving side reports it (`reporter="destination"`: each request once, timed where
/// it is served), by `destination_service`, copied to `service` so that the alert's labels and
/// subject read the same in every mesh.
pub fn default_expr(mesh: Mesh, window: Duration) -> String {
    let window = format_duration(window);
    match mesh.family() {
        // The proxies' own listeners (admin, and the metrics listeners of Envoy Gateway and
        // Consul that every scrape passes through) are not the service's latency.
        MetricFamily::RawEnvoy => format!(
            "histogram_quantile(0.99, sum by (le, service) (rate(envoy_http_downstream_rq_time_bucket{{envoy_http_conn_manager_prefix!~\"{}\"}}[{window}])))",
            ampkit::mesh::own_listeners_regex()
        ),
        MetricFamily::Istio => format!(
            "label_replace(histogram_quantile(0.99, sum by (le, destination_service) (rate(istio_request_duration_milliseconds_bucket{{reporter=\"destination\"}}[{window}]))), \"service\", \"$1\", \"destination_service\", \"(.*)\")"
        ),
    }
}

/// What the alert is, whatever the target.
#[derive(Debug, Clone)]
pub struct AlertSpec {
    pub name: String,
    /// The query, without the comparison (Grafana's threshold step adds that itself).
    pub query: String,
    pub threshold: f64,
    pub for_: Duration,
    /// How often the rule is evaluated (the rule group's interval).
    pub interval: Duration,
    pub group: String,
    pub severity: String,
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
}

/// A number as PromQL and YAML write it: `5`, not `5.0`.
pub fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

impl AlertSpec {
    /// The alerting expression: the query compared with the threshold.
    pub fn condition(&self) -> String {
        format!("({}) > {}", self.query, number(self.threshold))
    }

    /// Every label of the alert: severity, ours, and the extra ones.
    pub fn all_labels(&self) -> Vec<(String, String)> {
        let mut labels = vec![
            ("severity".to_owned(), self.severity.clone()),
            (MANAGED_LABEL.0.to_owned(), MANAGED_LABEL.1.to_owned()),
        ];
        for (k, v) in &self.labels {
            labels.retain(|(name, _)| name != k);
            labels.push((k.clone(), v.clone()));
        }
        labels
    }

    /// The annotations: a summary naming the service and the value unless one is given.
    pub fn all_annotations(&self, value: &str, service: &str) -> Vec<(String, String)> {
        let mut out = vec![(
            "summary".to_owned(),
            format!(
                "{} of {service} is {value} ms (threshold {} ms)",
                self.name,
                number(self.threshold)
            ),
        )];
        for (k, v) in &self.annotations {
            out.retain(|(name, _)| name != k);
            out.push((k.clone(), v.clone()));
        }
        out
    }
}

fn s(text: &str) -> Value {
    Value::String(text.to_owned())
}

fn map_of(pairs: &[(String, String)]) -> Value {
    Value::Mapping(pairs.iter().map(|(k, v)| (s(k), s(v))).collect())
}

/// The rule groups namespace: one group with one alerting rule (Prometheus's rules format,
/// which AMP takes as is).
pub fn rules_yaml(alert: &AlertSpec) -> Result<String> {
    let mut rule = Mapping::new();
    rule.insert(s("alert"), s(&alert.name));
    rule.insert(s("expr"), s(&alert.condition()));
    rule.insert(s("for"), s(&format_duration(alert.for_)));
    rule.insert(s("labels"), map_of(&alert.all_labels()));
    rule.insert(
        s("annotations"),
        map_of(&alert.all_annotations("{{ printf \"%.1f\" $value }}", "{{ $labels.service }}")),
    );
    let mut group = Mapping::new();
    group.insert(s("name"), s(&alert.group));
    group.insert(s("interval"), s(&format_duration(alert.interval)));
    group.insert(s("rules"), Value::Sequence(vec![Value::Mapping(rule)]));
    let mut top = Mapping::new();
    top.insert(s("groups"), Value::Sequence(vec![Value::Mapping(group)]));
    let yaml = serde_norway::to_string(&Value::Mapping(top))
        .map_err(|e| Error::internal(format!("cannot write the rules: {e}")))?;
    validate_rules(&yaml).map_err(|e| {
        Error::input(format!("AMP would refuse the rules: {e}"))
            .with_hint("check --alert-name, --label and --annotation")
    })?;
    Ok(yaml)
}

/// How the Alertmanager groups and repeats notifications.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
}

/// The name of the template file and the receiver of the definition.
pub const RECEIVER: &str = "ampkit-sns";
/// The name of our template, in `templates:` and `template_files`.
pub const TEMPLATE: &str = "ampkit";

/// The subject: status, alert and service, then cut to printable ASCII and 100 characters,
/// since SNS refuses longer subjects and AMP rewrites non-ASCII ones. The same Go template
/// text works in Alertmanager and in Grafana's notification templates.
pub const SUBJECT: &str = "{{ printf \"[%s] %s %s\" (.Status | toUpper) .CommonLabels.alertname .CommonLabels.service | reReplaceAll \"[^ -~]\" \"\" | reReplaceAll \"^(.{0,100}).*$\" \"$1\" }}";

fn subject_template() -> String {
    format!("{{{{ define \"ampkit.subject\" }}}}{SUBJECT}{{{{ end }}}}\n")
}

/// The alert manager definition: an SNS receiver (`sigv4.region`, `send_resolved`, and no
/// `api_url` or `http_config`, which AMP refuses) with a short ASCII subject.
pub fn definition_yaml(topic_arn: &str, region: &str, timing: Timing) -> Result<String> {
    let config = format!(
        "templates:\n  - 'ampkit'\nroute:\n  receiver: {RECEIVER}\n  group_by: [alertname, service]\n  group_wait: {}\n  group_interval: {}\n  repeat_interval: {}\nreceivers:\n  - name: {RECEIVER}\n    sns_configs:\n      - topic_arn: {topic_arn}\n        sigv4:\n          region: {region}\n        subject: '{{{{ template \"ampkit.subject\" . }}}}'\n        send_resolved: true\n        attributes:\n          managed_by: ampkit\n",
        format_duration(timing.group_wait),
        format_duration(timing.group_interval),
        format_duration(timing.repeat_interval),
    );
    let mut top = Mapping::new();
    top.insert(
        s("template_files"),
        Value::Mapping(Mapping::from_iter([(s(TEMPLATE), s(&subject_template()))])),
    );
    top.insert(s("alertmanager_config"), s(&config));
    let yaml = serde_norway::to_string(&Value::Mapping(top))
        .map_err(|e| Error::internal(format!("cannot write the definition: {e}")))?;
    validate_definition(&yaml).map_err(|e| {
        Error::input(format!(
            "AMP would refuse the alert manager definition: {e}"
        ))
        .with_hint("check --topic-arn and --region")
    })?;
    Ok(yaml)
}

/// Our definition merged into the one already in the workspace (lib's
/// `amp::alerting::merge`, beside the un-merge teardown uses): our receiver and template,
/// and our route matching only our alerts.
pub fn merge_definition(existing: &str, ours: &str) -> Result<String> {
    let matcher = format!("{}=\"{}\"", MANAGED_LABEL.0, MANAGED_LABEL.1);
    ampkit::amp::alerting::merge(existing, ours, RECEIVER, TEMPLATE, &matcher)
}

/// Which settings Grafana's SNS contact point takes: Grafana's own (`topic_arn`, `sigv4`) or
/// Amazon Managed Grafana's notifier (`topic`, `authProvider`, `messageFormat`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnsShape {
    Upstream,
    Amg,
}

/// The contact point's settings. No keys: Grafana publishes with its default credentials,
/// which on AMG are the workspace's role.
pub fn contact_point_settings(shape: SnsShape, topic_arn: &str, region: &str) -> serde_json::Value {
    match shape {
        SnsShape::Upstream => serde_json::json!({
            "topic_arn": topic_arn,
            "sigv4": {"region": region},
            "subject": SUBJECT,
        }),
        SnsShape::Amg => serde_json::json!({
            "topic": topic_arn,
            "authProvider": "default",
            "messageFormat": "text",
            "subject": SUBJECT,
        }),
    }
}

/// The Grafana alert rule: A queries the datasource (instant), B reduces it to its last
/// value per series, C compares with the threshold; C is the condition.
pub fn grafana_rule(
    alert: &AlertSpec,
    uid: &str,
    folder_uid: &str,
    datasource_uid: &str,
) -> serde_json::Value {
    let labels: serde_json::Map<String, serde_json::Value> = alert
        .all_labels()
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    let annotations: serde_json::Map<String, serde_json::Value> = alert
        .all_annotations(
            "{{ printf \"%.1f\" $values.B.Value }}",
            "{{ $labels.service }}",
        )
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    serde_json::json!({
        "uid": uid,
        "title": alert.name,
        "ruleGroup": alert.group,
        "folderUID": folder_uid,
        "condition": "C",
        "for": format_duration(alert.for_),
        "noDataState": "OK",
        "execErrState": "Error",
        "labels": labels,
        "annotations": annotations,
        "data": [
            {
                "refId": "A",
                "datasourceUid": datasource_uid,
                "relativeTimeRange": {"from": 600, "to": 0},
                "model": {"refId": "A", "expr": alert.query, "instant": true}
            },
            {
                "refId": "B",
                "datasourceUid": "__expr__",
                "model": {"refId": "B", "type": "reduce", "expression": "A", "reducer": "last"}
            },
            {
                "refId": "C",
                "datasourceUid": "__expr__",
                "model": {"refId": "C", "type": "threshold", "expression": "B",
                          "conditions": [{"evaluator": {"type": "gt", "params": [alert.threshold]}}]}
            }
        ]
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    pub fn spec() -> AlertSpec {
        AlertSpec {
            name: "DownstreamLatencyP99High".into(),
            query: default_expr(Mesh::Appmesh, Duration::from_secs(60)),
            threshold: 5.0,
            for_: Duration::from_secs(60),
            interval: Duration::from_secs(60),
            group: "ampkit-downstream-latency".into(),
            severity: "warning".into(),
            labels: vec![("team".into(), "mesh".into())],
            annotations: vec![],
        }
    }

    #[test]
    fn the_rules_file_has_the_recipes_alert() {
        let yaml = rules_yaml(&spec()).unwrap();
        let doc: Value = serde_norway::from_str(&yaml).unwrap();
        let rule = &doc["groups"][0]["rules"][0];
        assert_eq!(rule["alert"], s("DownstreamLatencyP99High"));
        assert_eq!(rule["for"], s("1m"));
        assert_eq!(doc["groups"][0]["interval"], s("1m"));
        let expr = rule["expr"].as_str().unwrap();
        assert!(expr.ends_with(") > 5"), "{expr}");
        assert!(
            expr.contains("envoy_http_conn_manager_prefix!~\"admin|eg-stats-http|"),
            "{expr}"
        );
        assert!(expr.contains("[1m]"), "{expr}");
        assert_eq!(rule["labels"]["severity"], s("warning"));
        assert_eq!(rule["labels"]["managed_by"], s("ampkit"));
        assert_eq!(rule["labels"]["team"], s("mesh"));
        let summary = rule["annotations"]["summary"].as_str().unwrap();
        assert!(summary.contains("{{ $labels.service }}"), "{summary}");
        assert!(summary.contains("$value"), "{summary}");
        // The expression is one PromQL expression.
        promql_parser::parser::parse(expr).unwrap();
    }

    #[test]
    fn the_definition_is_what_amp_takes() {
        let timing = Timing {
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
        };
        let yaml = definition_yaml(
            "arn:aws:sns:eu-west-1:123456789012:grafana-notification",
            "eu-west-1",
            timing,
        )
        .unwrap();
        let def = validate_definition(&yaml).unwrap();
        assert_eq!(def.templates[0].0, "ampkit");
        let receiver = &def.config[&s("receivers")][0]["sns_configs"][0];
        assert_eq!(receiver["sigv4"]["region"], s("eu-west-1"));
        assert_eq!(receiver["send_resolved"], Value::Bool(true));
        assert!(receiver.get("api_url").is_none() && receiver.get("http_config").is_none());
        assert_eq!(
            receiver["subject"],
            s("{{ template \"ampkit.subject\" . }}")
        );
        assert_eq!(def.config[&s("route")]["group_wait"], s("30s"));
        assert_eq!(def.config[&s("route")]["repeat_interval"], s("4h"));
    }

    #[test]
    fn a_definition_someone_made_keeps_its_receivers_and_routes() {
        let timing = Timing {
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
        };
        let arn = "arn:aws:sns:eu-west-1:123456789012:grafana-notification";
        let ours = definition_yaml(arn, "eu-west-1", timing).unwrap();
        let theirs = "template_files:\n  team: '{{ define \"team.x\" }}x{{ end }}'\nalertmanager_config: |\n  templates: ['team']\n  route:\n    receiver: team\n    routes:\n    - receiver: team\n      matchers: ['severity=\"page\"']\n  receivers:\n  - name: team\n    sns_configs:\n    - topic_arn: arn:aws:sns:eu-west-1:123456789012:team\n      sigv4:\n        region: eu-west-1\n";
        let merged = merge_definition(theirs, &ours).unwrap();
        let def = validate_definition(&merged).unwrap();
        let names: Vec<&str> = def.config[&s("receivers")]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["team", RECEIVER]);
        let route = &def.config[&s("route")];
        assert_eq!(route["receiver"], s("team"));
        assert_eq!(route["routes"][0]["receiver"], s(RECEIVER));
        assert_eq!(
            route["routes"][0]["matchers"][0],
            s("managed_by=\"ampkit\"")
        );
        assert_eq!(route["routes"][1]["receiver"], s("team"));
        let templates: Vec<&str> = def.templates.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(templates, ["team", "ampkit"]);
        // Merging again changes nothing; a definition of ours is replaced by ours.
        assert_eq!(merge_definition(&merged, &ours).unwrap(), merged);
        assert_eq!(merge_definition(&ours, &ours).unwrap(), ours);
    }

    #[test]
    fn numbers_are_written_as_promql_writes_them() {
        assert_eq!(number(5.0), "5");
        assert_eq!(number(2.5), "2.5");
    }
}
