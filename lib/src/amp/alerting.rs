//! AMP's rules and alert manager definitions: checked the way AMP checks them before it
//! accepts them, so that a tool refuses a bad file before it reaches AWS, and amp-local
//! refuses exactly what AMP refuses.
//!
//! AMP accepts only SNS receivers, with `sigv4.region` and `topic_arn`, and rejects `api_url`
//! (AMP publishes with its own credentials).

use std::collections::BTreeSet;

use serde_norway::{Mapping, Value};

use crate::error::Error;

/// A YAML mapping key.
pub fn key(s: &str) -> Value {
    Value::String(s.to_owned())
}

/// A field of a YAML mapping.
pub fn get<'a>(map: &'a Mapping, k: &str) -> Option<&'a Value> {
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

fn parse_definition(yaml: &str, whose: &str) -> crate::error::Result<(Mapping, Mapping)> {
    let top: Value = serde_norway::from_str(yaml)
        .map_err(|e| Error::input(format!("{whose} alert manager definition is not YAML: {e}")))?;
    let Value::Mapping(top) = top else {
        return Err(Error::input(format!(
            "{whose} alert manager definition is not a mapping"
        )));
    };
    let config = match top.get(key("alertmanager_config")).and_then(Value::as_str) {
        Some(text) => match serde_norway::from_str(text) {
            Ok(Value::Mapping(m)) => m,
            _ => {
                return Err(Error::input(format!(
                    "{whose} alertmanager_config is not a YAML mapping"
                )));
            }
        },
        None => Mapping::new(),
    };
    Ok((top, config))
}

/// Our definition merged into the one already in the workspace, which may hold other
/// people's receivers and routes (AMP has one definition per workspace, so a plain put would
/// replace them): our receiver (`receiver`, the first of ours) and template are added or
/// replaced, and our route goes first among the root's children, matching only alerts with
/// `matcher`. A definition whose root route is ours (made by an earlier run) is simply
/// replaced. [`remove_merged`] takes exactly this back out.
pub fn merge(
    existing: &str,
    ours: &str,
    receiver: &str,
    template: &str,
    matcher: &str,
) -> crate::error::Result<String> {
    let is_ours = |route: &Value| route.get("receiver").and_then(Value::as_str) == Some(receiver);
    let (their_top, mut config) = parse_definition(existing, "the workspace's")?;
    let (our_top, our_config) = parse_definition(ours, "our")?;
    let root_is_ours = config.get(key("route")).is_some_and(is_ours);
    if root_is_ours || config.get(key("route")).is_none() {
        return Ok(ours.to_owned());
    }
    // Our receiver, in place of an older one of ours.
    let our_receiver = our_config
        .get(key("receivers"))
        .and_then(Value::as_sequence)
        .and_then(|r| r.first())
        .cloned()
        .ok_or_else(|| Error::internal("our definition has no receiver"))?;
    let receivers = config
        .entry(key("receivers"))
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if let Value::Sequence(list) = receivers {
        list.retain(|r| r.get("name").and_then(Value::as_str) != Some(receiver));
        list.push(our_receiver);
    }
    // Our route: the root's timing and grouping, matching only what we alert on.
    let mut route = our_config
        .get(key("route"))
        .and_then(Value::as_mapping)
        .cloned()
        .unwrap_or_default();
    route.insert(key("matchers"), Value::Sequence(vec![key(matcher)]));
    route.insert(key("continue"), Value::Bool(false));
    if let Some(Value::Mapping(root)) = config.get_mut(key("route")) {
        let children = root
            .entry(key("routes"))
            .or_insert_with(|| Value::Sequence(Vec::new()));
        if let Value::Sequence(list) = children {
            list.retain(|r| !is_ours(r));
            list.insert(0, Value::Mapping(route));
        }
    }
    let templates = config
        .entry(key("templates"))
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if let Value::Sequence(list) = templates
        && !list.iter().any(|t| t.as_str() == Some(template))
    {
        list.push(key(template));
    }
    let mut top = their_top;
    let mut files = top
        .get(key("template_files"))
        .and_then(Value::as_mapping)
        .cloned()
        .unwrap_or_default();
    if let Some(Value::Mapping(ours)) = our_top.get(key("template_files")) {
        for (k, v) in ours {
            files.insert(k.clone(), v.clone());
        }
    }
    top.insert(key("template_files"), Value::Mapping(files));
    let config_text = serde_norway::to_string(&Value::Mapping(config))
        .map_err(|e| Error::internal(format!("cannot write the merged definition: {e}")))?;
    top.insert(key("alertmanager_config"), key(&config_text));
    let yaml = serde_norway::to_string(&Value::Mapping(top))
        .map_err(|e| Error::internal(format!("cannot write the merged definition: {e}")))?;
    validate_definition(&yaml).map_err(|e| {
        Error::input(format!(
            "merged into the workspace's alert manager definition, AMP would refuse it: {e}"
        ))
        .with_hint("fix the workspace's definition (it must pass AMP's checks) and run again")
    })?;
    Ok(yaml)
}

/// AMP's rule for a rule groups namespace's name: 1 to 64 of `0-9 A-Z a-z - . _`, starting
/// with a letter or digit (in AMP's words, `[0-9A-Za-z][-.0-9A-Z_a-z]*`).
pub fn check_namespace_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_alphanumeric() || (i > 0 && matches!(c, '-' | '.' | '_')));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "name '{name}' must be 1-64 characters [0-9A-Za-z][-.0-9A-Z_a-z]*"
        ))
    }
}

/// Take what a tool merged into someone's alert manager definition back out of it: the
/// receiver named `receiver`, the root's child routes that send to it, and the templates (in
/// `templates:` and in `template_files`) named in `templates`. Everything else is kept as it
/// is. `Ok(None)` when none of it is there any more (nothing to put back); an error when the
/// root route itself sends to `receiver` (then the definition is not someone else's).
pub fn remove_merged(
    yaml: &str,
    receiver: &str,
    templates: &[String],
) -> Result<Option<String>, String> {
    let mut top: Mapping = match serde_norway::from_str(yaml) {
        Ok(Value::Mapping(top)) => top,
        Ok(_) => return Err("the definition is not a YAML mapping".into()),
        Err(e) => return Err(format!("invalid YAML: {e}")),
    };
    let config_text = get(&top, "alertmanager_config")
        .and_then(Value::as_str)
        .ok_or("`alertmanager_config` is missing")?;
    let mut config: Mapping = match serde_norway::from_str(config_text) {
        Ok(Value::Mapping(config)) => config,
        _ => return Err("alertmanager_config is not a YAML mapping".into()),
    };
    let sends_to_ours = |v: &Value| v.get("receiver").and_then(Value::as_str) == Some(receiver);
    let mut changed = false;
    if let Some(Value::Mapping(root)) = config.get_mut(key("route")) {
        if root.get(key("receiver")).and_then(Value::as_str) == Some(receiver) {
            return Err(format!(
                "its root route sends to `{receiver}`: the whole definition is ours, not merged"
            ));
        }
        if let Some(Value::Sequence(children)) = root.get_mut(key("routes")) {
            let before = children.len();
            children.retain(|r| !sends_to_ours(r));
            changed |= children.len() != before;
        }
    }
    if let Some(Value::Sequence(receivers)) = config.get_mut(key("receivers")) {
        let before = receivers.len();
        receivers.retain(|r| r.get("name").and_then(Value::as_str) != Some(receiver));
        changed |= receivers.len() != before;
    }
    let ours = |v: &Value| v.as_str().is_some_and(|t| templates.iter().any(|n| n == t));
    if let Some(Value::Sequence(names)) = config.get_mut(key("templates")) {
        let before = names.len();
        names.retain(|t| !ours(t));
        changed |= names.len() != before;
    }
    if let Some(Value::Mapping(files)) = top.get_mut(key("template_files")) {
        let before = files.len();
        files.retain(|name, _| !ours(name));
        changed |= files.len() != before;
    }
    if !changed {
        return Ok(None);
    }
    let config_text = serde_norway::to_string(&Value::Mapping(config))
        .map_err(|e| format!("cannot write the definition: {e}"))?;
    top.insert(key("alertmanager_config"), Value::String(config_text));
    let yaml = serde_norway::to_string(&Value::Mapping(top))
        .map_err(|e| format!("cannot write the definition: {e}"))?;
    validate_definition(&yaml)?;
    Ok(Some(yaml))
}

#[cfg(test)]
mod merged_tests {
    use super::*;

    const MERGED: &str = "alertmanager_config: |\n  templates:\n  - ampkit\n  route:\n    receiver: team\n    routes:\n    - receiver: ampkit-sns\n      matchers: ['managed_by=\"ampkit\"']\n    - receiver: team\n      matchers: ['severity=\"page\"']\n  receivers:\n  - name: team\n    sns_configs:\n    - topic_arn: arn:aws:sns:eu-west-1:123456789012:team\n      sigv4:\n        region: eu-west-1\n  - name: ampkit-sns\n    sns_configs:\n    - topic_arn: arn:aws:sns:eu-west-1:123456789012:grafana-x\n      sigv4:\n        region: eu-west-1\ntemplate_files:\n  ampkit: '{{ define \"ampkit.subject\" }}x{{ end }}'\n  team: '{{ define \"team\" }}y{{ end }}'\n";

    #[test]
    fn what_was_merged_comes_out_and_the_rest_stays() {
        let names = vec!["ampkit".to_owned()];
        let Ok(Some(left)) = remove_merged(MERGED, "ampkit-sns", &names) else {
            panic!("something of ours was there");
        };
        let def = validate_definition(&left).expect("AMP takes what is left");
        let text = format!("{:?}", def.config);
        assert!(!text.contains("ampkit"), "{left}");
        assert!(
            text.contains("severity=\\\"page\\\""),
            "their route stays: {left}"
        );
        assert_eq!(def.templates.len(), 1);
        assert_eq!(def.templates[0].0, "team");
        // A second time there is nothing of ours left.
        assert_eq!(remove_merged(&left, "ampkit-sns", &names), Ok(None));
        // A definition whose root is ours is not a merged one.
        let ours = MERGED.replace(
            "    receiver: team\n    routes",
            "    receiver: ampkit-sns\n    routes",
        );
        assert!(remove_merged(&ours, "ampkit-sns", &names).is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = "groups:\n- name: g\n  rules:\n  - alert: High\n    expr: up > 0\n    for: 1m\n  - record: r:up\n    expr: sum(up)\n";

    #[test]
    fn rules_are_checked_the_amp_way() {
        assert!(validate_rules(RULES).is_ok());
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
}
