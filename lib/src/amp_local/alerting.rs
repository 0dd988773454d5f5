//! Rules and alert manager definitions: validated the way AMP validates them, then turned
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

use std::collections::BTreeSet;

use serde_norway::{Mapping, Value};

/// The label that ties an alert to its workspace.
pub const WORKSPACE_LABEL: &str = "ampkit_workspace";

/// The receiver that takes alerts of no workspace.
const DISCARD: &str = "amp-local-discard";

fn key(s: &str) -> Value {
    Value::String(s.to_owned())
}

fn get<'a>(map: &'a Mapping, k: &str) -> Option<&'a Value> {
    map.get(key(k))
}

/// Check a rules file the way AMP does before it accepts it (Prometheus's own parser
/// gets the final word when it reloads). Returns the parsed document.
pub fn validate_rules(yaml: &str) -> Result<Value, String> {
    let doc: Value = serde_norway::from_str(yaml).map_err(|e| format!("invalid YAML: {e}"))?;
    let Some(top) = doc.as_mapping() else {
        return Err("rules must be a YAML mapping with a `groups` list".to_owned());
    };
    for k in top.keys() {
        if k.as_str() != Some("groups") {
            return Err(format!(
                "field {} not found in type rulefmt.RuleGroups",
                k.as_str().unwrap_or("?")
            ));
        }
    }
    let Some(groups) = get(top, "groups").and_then(Value::as_sequence) else {
        return Err("rules must have a `groups` list".to_owned());
    };
    let mut names = BTreeSet::new();
    for (i, group) in groups.iter().enumerate() {
        let g = group
            .as_mapping()
            .ok_or_else(|| format!("groups[{i}] is not a mapping"))?;
        let name = get(g, "name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("groups[{i}]: groupname must not be empty"))?;
        if !names.insert(name.to_owned()) {
            return Err(format!("{name}: repeated in the same file"));
        }
        let rules = get(g, "rules")
            .and_then(Value::as_sequence)
            .ok_or_else(|| format!("group {name}: `rules` must be a list"))?;
        for (j, rule) in rules.iter().enumerate() {
            let r = rule
                .as_mapping()
                .ok_or_else(|| format!("group {name}, rule {j}: not a mapping"))?;
            let alert = get(r, "alert").and_then(Value::as_str);
            let record = get(r, "record").and_then(Value::as_str);
            match (alert, record) {
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "group {name}, rule {j}: only one of 'record' and 'alert' must be set"
                    ));
                }
                (None, None) => {
                    return Err(format!(
                        "group {name}, rule {j}: one of 'record' or 'alert' must be set"
                    ));
                }
                (Some(""), None) => {
                    return Err(format!("group {name}, rule {j}: invalid alert name ''"));
                }
                (None, Some(_)) if get(r, "for").is_some() => {
                    return Err(format!(
                        "group {name}, rule {j}: invalid field 'for' in recording rule"
                    ));
                }
                _ => {}
            }
            let expr_ok = match get(r, "expr") {
                Some(Value::String(s)) => !s.trim().is_empty(),
                Some(Value::Number(_)) => true,
                _ => false,
            };
            if !expr_ok {
                return Err(format!(
                    "group {name}, rule {j}: field 'expr' must be set in rule"
                ));
            }
        }
    }
    Ok(doc)
}

/// The rule file Prometheus reads for one namespace: the caller's rules, with every alerting
/// rule labelled with its workspace.
pub fn render_rule_file(mut doc: Value, workspace_id: &str) -> Result<String, String> {
    if let Some(groups) = doc
        .as_mapping_mut()
        .and_then(|m| m.get_mut(key("groups")))
        .and_then(Value::as_sequence_mut)
    {
        for group in groups {
            let Some(rules) = group
                .as_mapping_mut()
                .and_then(|g| g.get_mut(key("rules")))
                .and_then(Value::as_sequence_mut)
            else {
                continue;
            };
            for rule in rules {
                let Some(r) = rule.as_mapping_mut() else {
                    continue;
                };
                if r.get(key("alert")).is_none() {
                    continue;
                }
                let labels = r
                    .entry(key("labels"))
                    .or_insert_with(|| Value::Mapping(Mapping::new()));
                if let Value::Mapping(labels) = labels {
                    labels.insert(key(WORKSPACE_LABEL), key(workspace_id));
                }
            }
        }
    }
    serde_norway::to_string(&doc).map_err(|e| format!("cannot write the rules: {e}"))
}

/// A validated alert manager definition: the Alertmanager configuration and its templates.
#[derive(Debug, Clone)]
pub struct Definition {
    pub config: Mapping,
    pub templates: Vec<(String, String)>,
}

/// Check an alert manager definition the way AMP does.
pub fn validate_definition(yaml: &str) -> Result<Definition, String> {
    let doc: Value = serde_norway::from_str(yaml).map_err(|e| format!("invalid YAML: {e}"))?;
    let top = doc
        .as_mapping()
        .ok_or("the definition must be a YAML mapping with `alertmanager_config`")?;
    for k in top.keys() {
        match k.as_str() {
            Some("alertmanager_config" | "template_files") => {}
            other => {
                return Err(format!(
                    "unknown top-level field '{}': only alertmanager_config and template_files \
                     are allowed",
                    other.unwrap_or("?")
                ));
            }
        }
    }
    let config_text = get(top, "alertmanager_config")
        .and_then(Value::as_str)
        .ok_or("`alertmanager_config` is required and must be a string (a YAML block)")?;
    let config: Value = serde_norway::from_str(config_text)
        .map_err(|e| format!("alertmanager_config: invalid YAML: {e}"))?;
    let Value::Mapping(config) = config else {
        return Err("alertmanager_config must be a YAML mapping".to_owned());
    };
    let mut templates = Vec::new();
    if let Some(files) = get(top, "template_files") {
        let files = files
            .as_mapping()
            .ok_or("template_files must map names to template text")?;
        for (name, text) in files {
            let (Some(name), Some(text)) = (name.as_str(), text.as_str()) else {
                return Err("template_files must map names to template text".to_owned());
            };
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                return Err(format!("template_files: invalid name '{name}'"));
            }
            templates.push((name.to_owned(), text.to_owned()));
        }
    }

    let route = get(&config, "route")
        .and_then(Value::as_mapping)
        .ok_or("alertmanager_config: no route provided in config")?;
    if get(route, "receiver").and_then(Value::as_str).is_none() {
        return Err("alertmanager_config: root route must specify a default receiver".to_owned());
    }
    let mut names = BTreeSet::new();
    let receivers = get(&config, "receivers")
        .and_then(Value::as_sequence)
        .ok_or("alertmanager_config: `receivers` must be a list")?;
    for receiver in receivers {
        let r = receiver
            .as_mapping()
            .ok_or("alertmanager_config: each receiver must be a mapping")?;
        let name = get(r, "name")
            .and_then(Value::as_str)
            .ok_or("alertmanager_config: missing name in receiver")?;
        if !names.insert(name.to_owned()) {
            return Err(format!("notification config name \"{name}\" is not unique"));
        }
        for (k, v) in r {
            match k.as_str() {
                Some("name") => {}
                Some("sns_configs") => validate_sns_configs(name, v)?,
                other => {
                    return Err(format!(
                        "receiver {name}: {} is not supported; Amazon Managed Service for \
                         Prometheus supports only sns_configs",
                        other.unwrap_or("?")
                    ));
                }
            }
        }
    }
    check_route_receivers(route, &names)?;
    Ok(Definition { config, templates })
}

fn validate_sns_configs(receiver: &str, configs: &Value) -> Result<(), String> {
    let configs = configs
        .as_sequence()
        .ok_or_else(|| format!("receiver {receiver}: sns_configs must be a list"))?;
    for c in configs {
        let c = c
            .as_mapping()
            .ok_or_else(|| format!("receiver {receiver}: each sns_config must be a mapping"))?;
        for banned in ["api_url", "http_config"] {
            if get(c, banned).is_some() {
                return Err(format!(
                    "receiver {receiver}: {banned} is not allowed in sns_configs"
                ));
            }
        }
        if get(c, "topic_arn")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(format!(
                "receiver {receiver}: sns_configs must have a topic_arn"
            ));
        }
        let sigv4 = get(c, "sigv4").and_then(Value::as_mapping);
        if sigv4
            .and_then(|s| get(s, "region"))
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(format!(
                "receiver {receiver}: sns_configs must have sigv4 with a region"
            ));
        }
        if let Some(s) = sigv4 {
            for banned in ["access_key", "secret_key", "profile"] {
                if get(s, banned).is_some() {
                    return Err(format!(
                        "receiver {receiver}: sigv4.{banned} is not allowed; the service \
                         publishes with its own credentials"
                    ));
                }
            }
        }
    }
    Ok(())
}

fn check_route_receivers(route: &Mapping, names: &BTreeSet<String>) -> Result<(), String> {
    if let Some(r) = get(route, "receiver").and_then(Value::as_str)
        && !names.contains(r)
    {
        return Err(format!("undefined receiver \"{r}\" used in route"));
    }
    if let Some(children) = get(route, "routes") {
        let children = children
            .as_sequence()
            .ok_or("route.routes must be a list")?;
        for child in children {
            let child = child.as_mapping().ok_or("each route must be a mapping")?;
            check_route_receivers(child, names)?;
        }
    }
    Ok(())
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

    #[test]
    fn rules_are_checked_and_alerts_labelled() {
        let doc = validate_rules(RULES).expect("valid");
        let out = render_rule_file(doc, "ws-1").expect("renders");
        let back: Value = serde_norway::from_str(&out).expect("yaml");
        let rules = &back["groups"][0]["rules"];
        assert_eq!(rules[0]["labels"][WORKSPACE_LABEL], key("ws-1"));
        assert!(rules[1].get("labels").is_none());

        for bad in [
            "groups: [",
            "- a\n- b\n",
            "groups:\n- rules: []\n",
            "groups:\n- name: g\n  rules:\n  - expr: up\n",
            "groups:\n- name: g\n  rules:\n  - alert: A\n",
            "groups:\n- name: g\n  rules: []\n- name: g\n  rules: []\n",
            "groups: []\nextra: 1\n",
        ] {
            assert!(validate_rules(bad).is_err(), "accepted: {bad}");
        }
    }

    const DEF: &str = "alertmanager_config: |\n  route:\n    receiver: sns\n    routes:\n    - receiver: sns\n      matchers: ['severity=\"page\"']\n  receivers:\n  - name: sns\n    sns_configs:\n    - topic_arn: arn:aws:sns:eu-west-1:123456789012:t\n      sigv4:\n        region: eu-west-1\n";

    #[test]
    fn definitions_are_checked_the_amp_way() {
        assert!(validate_definition(DEF).is_ok());
        let no_region = DEF.replace("      sigv4:\n        region: eu-west-1\n", "");
        assert!(
            validate_definition(&no_region)
                .expect_err("refused")
                .contains("region")
        );
        let api_url = DEF.replace("      sigv4:", "      api_url: http://x\n      sigv4:");
        assert!(
            validate_definition(&api_url)
                .expect_err("refused")
                .contains("api_url")
        );
        let webhook = DEF.replace(
            "    sns_configs:",
            "    webhook_configs: []\n    sns_configs:",
        );
        assert!(validate_definition(&webhook).is_err());
        assert!(validate_definition("route: {}\n").is_err());
        let undefined = DEF.replace(
            "    receiver: sns\n    routes",
            "    receiver: nope\n    routes",
        );
        assert!(
            validate_definition(&undefined)
                .expect_err("refused")
                .contains("nope")
        );
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
