//! Rules and alert manager definitions, validated as AMP does (`ampkit::amp::alerting`), turned
//! into what the real Prometheus and Alertmanager read.
//!
//! All workspaces share one Prometheus and one Alertmanager. To keep their alerts apart,
//! every alerting rule written for a workspace gets the label `ampkit_workspace=<id>`, and
//! the Alertmanager configuration is the merge of every workspace's definition: each one's
//! route tree becomes a child of the root route matching that label, and its receivers, time
//! intervals and inhibit rules are renamed or scoped to it. The root route discards alerts
//! that belong to no workspace with a definition.
//!
//! AMP accepts only SNS receivers, with `sigv4.region` and `topic_arn`, and rejects `api_url`;
//! AMP itself then publishes with its own credentials. amp-local does the same on the
//! caller's behalf: it writes the SNS endpoint (moto locally) and its own keys into each
//! `sns_config` of the file the Alertmanager reads.

use serde_norway::{Mapping, Value};

pub use ampkit::amp::alerting::{
    Definition, check_namespace_name, validate_definition, validate_rules,
};
use ampkit::amp::alerting::{get, key};

/// The label that ties an alert to its workspace.
pub const WORKSPACE_LABEL: &str = "ampkit_workspace";

/// The receiver that takes alerts of no workspace.
const DISCARD: &str = "amp-local-discard";

/// The rule file Prometheus reads for one namespace: the caller's rules, each expression
/// confined to the workspace's series and everything a rule makes (alerts, recorded series)
/// labelled with the workspace, so one workspace's rules neither see nor feed another's.
pub fn render_rule_file(mut doc: Value, workspace_id: &str) -> Result<String, String> {
    let rules = doc
        .as_mapping_mut()
        .and_then(|m| m.get_mut(key("groups")))
        .and_then(Value::as_sequence_mut)
        .into_iter()
        .flatten()
        .filter_map(|group| {
            group
                .as_mapping_mut()?
                .get_mut(key("rules"))?
                .as_sequence_mut()
        })
        .flatten()
        .filter_map(Value::as_mapping_mut);
    for rule in rules {
        if let Some(Value::String(expr)) = rule.get_mut(key("expr")) {
            *expr = crate::isolation::confine_expr(expr, workspace_id)
                .map_err(|e| format!("rule expression `{expr}`: {e}"))?;
        }
        let labels = rule
            .entry(key("labels"))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if let Value::Mapping(labels) = labels {
            labels.insert(key(WORKSPACE_LABEL), key(workspace_id));
        }
    }
    serde_norway::to_string(&doc).map_err(|e| format!("cannot write the rules: {e}"))
}

/// What amp-local adds to every SNS receiver so the real Alertmanager can publish.
#[derive(Debug, Clone)]
pub struct SnsAccess {
    pub endpoint: Option<String>,
    pub access_key: String,
    pub secret_key: String,
}

fn scoped(ws: &str, name: &str) -> String {
    format!("{ws}/{name}")
}

fn rename_list(map: &mut Mapping, field: &str, ws: &str) {
    if let Some(Value::Sequence(items)) = map.get_mut(key(field)) {
        for item in items {
            if let Some(s) = item.as_str() {
                *item = key(&scoped(ws, s));
            }
        }
    }
}

fn rename_route(route: &mut Mapping, ws: &str) {
    if let Some(Value::String(r)) = route.get_mut(key("receiver")) {
        *r = scoped(ws, r);
    }
    rename_list(route, "mute_time_intervals", ws);
    rename_list(route, "active_time_intervals", ws);
    if let Some(Value::Sequence(children)) = route.get_mut(key("routes")) {
        for child in children {
            if let Some(child) = child.as_mapping_mut() {
                rename_route(child, ws);
            }
        }
    }
}

fn add_matcher(rule: &mut Mapping, map_field: &str, list_field: &str, ws: &str) {
    if let Some(Value::Mapping(m)) = rule.get_mut(key(map_field)) {
        m.insert(key(WORKSPACE_LABEL), key(ws));
        return;
    }
    let matcher = key(&format!("{WORKSPACE_LABEL}=\"{ws}\""));
    match rule.get_mut(key(list_field)) {
        Some(Value::Sequence(list)) => list.push(matcher),
        _ => {
            rule.insert(key(list_field), Value::Sequence(vec![matcher]));
        }
    }
}

/// The one Alertmanager configuration for every workspace's definition.
/// `templates_glob` is where the definitions' template files are written.
pub fn render_alertmanager_config(
    definitions: &[(String, Definition)],
    sns: &SnsAccess,
    templates_glob: Option<&str>,
) -> Result<String, String> {
    let mut routes = Vec::new();
    let mut receivers = vec![Value::Mapping(Mapping::from_iter([(
        key("name"),
        key(DISCARD),
    )]))];
    let mut inhibit_rules = Vec::new();
    let mut time_intervals = Vec::new();
    let mut mute_time_intervals = Vec::new();

    for (ws, def) in definitions {
        let config = &def.config;
        if let Some(Value::Mapping(route)) = get(config, "route") {
            let mut route = route.clone();
            rename_route(&mut route, ws);
            let matcher = key(&format!("{WORKSPACE_LABEL}=\"{ws}\""));
            route.insert(key("matchers"), Value::Sequence(vec![matcher]));
            route.insert(key("continue"), Value::Bool(false));
            routes.push(Value::Mapping(route));
        }
        if let Some(Value::Sequence(list)) = get(config, "receivers") {
            for receiver in list {
                let Some(mut r) = receiver.as_mapping().cloned() else {
                    continue;
                };
                if let Some(Value::String(name)) = r.get_mut(key("name")) {
                    *name = scoped(ws, name);
                }
                if let Some(Value::Sequence(configs)) = r.get_mut(key("sns_configs")) {
                    for c in configs {
                        let Some(c) = c.as_mapping_mut() else {
                            continue;
                        };
                        if let Some(endpoint) = &sns.endpoint {
                            c.insert(key("api_url"), key(endpoint));
                        }
                        if let Some(Value::Mapping(sigv4)) = c.get_mut(key("sigv4")) {
                            sigv4.insert(key("access_key"), key(&sns.access_key));
                            sigv4.insert(key("secret_key"), key(&sns.secret_key));
                        }
                    }
                }
                receivers.push(Value::Mapping(r));
            }
        }
        if let Some(Value::Sequence(list)) = get(config, "inhibit_rules") {
            for rule in list {
                let Some(mut rule) = rule.as_mapping().cloned() else {
                    continue;
                };
                add_matcher(&mut rule, "source_match", "source_matchers", ws);
                add_matcher(&mut rule, "target_match", "target_matchers", ws);
                inhibit_rules.push(Value::Mapping(rule));
            }
        }
        for (field, out) in [
            ("time_intervals", &mut time_intervals),
            ("mute_time_intervals", &mut mute_time_intervals),
        ] {
            if let Some(Value::Sequence(list)) = get(config, field) {
                for interval in list {
                    let Some(mut interval) = interval.as_mapping().cloned() else {
                        continue;
                    };
                    if let Some(Value::String(name)) = interval.get_mut(key("name")) {
                        *name = scoped(ws, name);
                    }
                    out.push(Value::Mapping(interval));
                }
            }
        }
    }

    let mut root = Mapping::new();
    root.insert(key("receiver"), key(DISCARD));
    root.insert(key("group_wait"), key("1s"));
    root.insert(key("group_interval"), key("5s"));
    root.insert(key("repeat_interval"), key("1h"));
    if !routes.is_empty() {
        root.insert(key("routes"), Value::Sequence(routes));
    }
    let mut out = Mapping::new();
    out.insert(key("route"), Value::Mapping(root));
    out.insert(key("receivers"), Value::Sequence(receivers));
    if !inhibit_rules.is_empty() {
        out.insert(key("inhibit_rules"), Value::Sequence(inhibit_rules));
    }
    if !time_intervals.is_empty() {
        out.insert(key("time_intervals"), Value::Sequence(time_intervals));
    }
    if !mute_time_intervals.is_empty() {
        out.insert(
            key("mute_time_intervals"),
            Value::Sequence(mute_time_intervals),
        );
    }
    if let Some(glob) = templates_glob {
        out.insert(key("templates"), Value::Sequence(vec![key(glob)]));
    }
    let body = serde_norway::to_string(&Value::Mapping(out))
        .map_err(|e| format!("cannot write the Alertmanager configuration: {e}"))?;
    Ok(format!(
        "# Generated by amp-local from the workspaces' alert manager definitions; \
         edits are overwritten.\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = "groups:\n- name: g\n  rules:\n  - alert: High\n    expr: up > 0\n    for: 1m\n  - record: r:up\n    expr: sum(up)\n";

    const DEF: &str = "alertmanager_config: |\n  route:\n    receiver: sns\n    routes:\n    - receiver: sns\n      matchers: ['severity=\"page\"']\n  receivers:\n  - name: sns\n    sns_configs:\n    - topic_arn: arn:aws:sns:eu-west-1:123456789012:t\n      sigv4:\n        region: eu-west-1\n";

    #[test]
    fn rules_are_confined_and_what_they_make_is_labelled_with_their_workspace() {
        let doc = validate_rules(RULES).expect("valid");
        let out = render_rule_file(doc, "ws-1").expect("renders");
        let back: Value = serde_norway::from_str(&out).expect("yaml");
        let rules = &back["groups"][0]["rules"];
        let confined = format!("{WORKSPACE_LABEL}=\"ws-1\"");
        for rule in [&rules[0], &rules[1]] {
            assert_eq!(rule["labels"][WORKSPACE_LABEL], key("ws-1"));
            let expr = rule["expr"].as_str().expect("expr");
            assert!(expr.contains(&confined), "{expr}");
        }
    }

    #[test]
    fn merged_config_scopes_each_workspace() {
        let def = validate_definition(DEF).expect("valid");
        let sns = SnsAccess {
            endpoint: Some("http://127.0.0.1:5000".into()),
            access_key: "AK".into(),
            secret_key: "SK".into(),
        };
        let out = render_alertmanager_config(
            &[("ws-1".into(), def.clone()), ("ws-2".into(), def)],
            &sns,
            None,
        )
        .expect("renders");
        let v: Value = serde_norway::from_str(&out).expect("yaml");
        assert_eq!(v["route"]["receiver"], key(DISCARD));
        assert_eq!(v["route"]["routes"][1]["receiver"], key("ws-2/sns"));
        assert_eq!(
            v["route"]["routes"][0]["routes"][0]["receiver"],
            key("ws-1/sns")
        );
        let sns0 = &v["receivers"][1]["sns_configs"][0];
        assert_eq!(sns0["api_url"], key("http://127.0.0.1:5000"));
        assert_eq!(sns0["sigv4"]["access_key"], key("AK"));
        assert_eq!(sns0["sigv4"]["region"], key("eu-west-1"));
    }
}
