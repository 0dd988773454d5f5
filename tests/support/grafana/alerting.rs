//! The fixture's alerting provisioning API (`/api/v1/provisioning/...`), as Grafana's
//! alerting provisioning HTTP API documentation and its source describe it: contact points with the SNS
//! settings checks of the configured flavour (Grafana's own `topic_arn` + `sigv4`, or AMG's
//! `topic`), the policy tree as one resource whose PUT replaces everything and must name
//! existing receivers, alert rules with their validation and per-version title rule, rule
//! groups whose interval must be a multiple of the 10 s scheduler tick, and provenance: set by
//! the absence of `X-Disable-Provenance`, and never changed from `api` to none (500 before
//! Grafana 11, 403 since). A contact point a route uses cannot be deleted (500).

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::{Db, GrafanaFixture, answer, bad_request, lock};

/// Which SNS settings the fixture's Grafana accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnsFlavour {
    /// Grafana's own notifier (grafana/alerting): `topic_arn` | `target_arn` | `phone_number`.
    #[default]
    Upstream,
    /// Amazon Managed Grafana's notifier: `topic`, `authProvider`, `messageFormat`.
    Amg,
}

/// The alerting state of one Grafana.
pub struct Alerting {
    pub flavour: SnsFlavour,
    /// Contact points, each with `provenance`.
    pub contact_points: Vec<Value>,
    pub policy: Value,
    pub policy_provenance: String,
    /// Alert rules, each with `provenance`.
    pub rules: Vec<Value>,
    /// Rule group intervals: (folder uid, group, seconds).
    pub intervals: Vec<(String, String, u64)>,
    /// Calls (`"POST /api/v1/provisioning/alert-rules"`) answered 500, as a Grafana that
    /// breaks half-way through a run.
    pub failing: Vec<String>,
}

impl Default for Alerting {
    fn default() -> Self {
        Alerting {
            flavour: SnsFlavour::Upstream,
            contact_points: vec![json!({
                "uid": "default-email", "name": "grafana-default-email", "type": "email",
                "settings": {"addresses": "<example@email.com>"}, "provenance": ""
            })],
            policy: json!({"receiver": "grafana-default-email", "group_by": ["grafana_folder", "alertname"]}),
            policy_provenance: String::new(),
            rules: Vec::new(),
            intervals: Vec::new(),
            failing: Vec::new(),
        }
    }
}

fn provenance(headers: &HeaderMap) -> String {
    // Grafana looks only at whether the header is there, not at its value.
    if headers.contains_key("x-disable-provenance") {
        String::new()
    } else {
        "api".to_owned()
    }
}

/// The refusal of a provenance change, as the version gives it; `None` when allowed.
fn provenance_refusal(version: &str, stored: &str, wanted: &str) -> Option<Response> {
    if stored.is_empty() || stored == wanted {
        return None;
    }
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    Some(if major < 11 {
        answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"message": format!("cannot change provenance from '{stored}' to '{wanted}'")}),
        )
    } else {
        answer(
            StatusCode::FORBIDDEN,
            json!({"messageId": "alerting.notifications.invalidProvenance", "statusCode": 403,
                   "message": format!("Resource with provenance status '{stored}' cannot be managed via API that handles resources with provenance status '{wanted}'")}),
        )
    })
}

fn is_arn(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    parts.len() >= 6 && parts[0] == "arn" && !parts[2].is_empty()
}

/// Grafana's check of a contact point's SNS settings; the reason when it refuses.
fn sns_refusal(flavour: SnsFlavour, settings: &Value) -> Option<String> {
    match flavour {
        SnsFlavour::Upstream => {
            let topic = settings["topic_arn"].as_str();
            if topic.is_none()
                && settings["target_arn"].as_str().is_none()
                && settings["phone_number"].as_str().is_none()
            {
                return Some("must specify topicArn, targetArn, or phone number".into());
            }
            if topic.is_some_and(|t| !is_arn(t)) {
                return Some("invalid topic ARN provided".into());
            }
            let keys = (
                settings["sigv4"]["access_key"].is_string(),
                settings["sigv4"]["secret_key"].is_string(),
            );
            if keys.0 != keys.1 {
                return Some("must specify both access key and secret key".into());
            }
            None
        }
        SnsFlavour::Amg => match settings["topic"].as_str() {
            Some(t) if is_arn(t) => None,
            _ => Some("topic is required and must be an SNS topic ARN".into()),
        },
    }
}

fn redact(cp: &Value) -> Value {
    let mut out = cp.clone();
    for key in ["access_key", "secret_key"] {
        if out["settings"]["sigv4"][key].is_string() {
            out["settings"]["sigv4"][key] = json!("[REDACTED]");
        }
    }
    out
}

/// Every receiver a route (and its children) names.
fn receivers(route: &Value, out: &mut Vec<String>) {
    if let Some(r) = route["receiver"].as_str() {
        out.push(r.to_owned());
    }
    for child in route["routes"].as_array().into_iter().flatten() {
        receivers(child, out);
    }
}

/// `invalid alert rule: <reason>`, as Grafana's rule validation words it.
fn rule_refusal(db: &Db, rule: &Value) -> Option<String> {
    let data = rule["data"].as_array().cloned().unwrap_or_default();
    if data.is_empty() {
        return Some("no queries or expressions are found".into());
    }
    if rule["title"].as_str().is_none_or(|t| t.trim().is_empty()) {
        return Some("title is empty".into());
    }
    let condition = rule["condition"].as_str().unwrap_or_default();
    if condition.is_empty() {
        return Some("condition cannot be empty".into());
    }
    let mut refs: Vec<&str> = Vec::new();
    for (i, q) in data.iter().enumerate() {
        let Some(r) = q["refId"].as_str().filter(|r| !r.is_empty()) else {
            return Some(format!(
                "refID is not specified for data query/expression at index {i}"
            ));
        };
        if refs.contains(&r) {
            return Some(format!(
                "refID '{r}' is already used by query/expression at index {i}"
            ));
        }
        refs.push(r);
        if q["datasourceUid"].as_str().is_none_or(str::is_empty) {
            return Some(format!(
                "data query/expression at index {i} has no datasourceUid"
            ));
        }
    }
    if !refs.contains(&condition) {
        return Some(format!(
            "condition {condition} does not exist, must be one of [{}]",
            refs.join(",")
        ));
    }
    if rule["ruleGroup"].as_str().is_none_or(str::is_empty) {
        return Some("rule group name is empty".into());
    }
    let folder = rule["folderUID"].as_str().unwrap_or_default();
    if !db.folders.iter().any(|f| f["uid"] == folder) {
        return Some(format!("folder {folder} does not exist"));
    }
    if rule["for"]
        .as_str()
        .is_none_or(|f| ampkit::timespec::parse_duration(f).is_err())
    {
        return Some(format!("field `for` is invalid: {}", rule["for"]));
    }
    if !matches!(
        rule["noDataState"].as_str(),
        Some("Alerting" | "NoData" | "OK")
    ) {
        return Some(format!(
            "unknown NoData state option {}",
            rule["noDataState"]
        ));
    }
    if !matches!(
        rule["execErrState"].as_str(),
        Some("Alerting" | "Error" | "OK")
    ) {
        return Some(format!(
            "unknown Error state option {}",
            rule["execErrState"]
        ));
    }
    for reserved in [
        "__alert_rule_uid__",
        "__alert_rule_namespace_uid__",
        "grafana_folder",
    ] {
        if rule["labels"].get(reserved).is_some() {
            return Some(format!(
                "system reserved label {reserved} cannot be defined"
            ));
        }
    }
    None
}

fn group_of(db: &Db, folder: &str, group: &str) -> Option<Value> {
    let rules: Vec<Value> = db
        .alerting
        .rules
        .iter()
        .filter(|r| r["folderUID"] == folder && r["ruleGroup"] == group)
        .cloned()
        .collect();
    if rules.is_empty() {
        return None;
    }
    let interval = db
        .alerting
        .intervals
        .iter()
        .find(|(f, g, _)| f == folder && g == group)
        .map_or(60, |(_, _, s)| *s);
    Some(json!({"title": group, "folderUid": folder, "interval": interval, "rules": rules}))
}

/// Answer an alerting call; `None` when the path is not one of them.
pub(super) fn route(
    db: &mut Db,
    method: &str,
    segments: &[&str],
    headers: &HeaderMap,
    body: Option<Value>,
) -> Option<Response> {
    let ["api", "v1", "provisioning", rest @ ..] = segments else {
        return None;
    };
    let call = format!("{method} /{}", segments.join("/"));
    if db.alerting.failing.contains(&call) {
        return Some(answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"message": "database is locked"}),
        ));
    }
    let wanted = provenance(headers);
    let version = db.version.clone();
    Some(match (method, rest) {
        ("GET", ["contact-points"]) => answer(
            StatusCode::OK,
            Value::Array(db.alerting.contact_points.iter().map(redact).collect()),
        ),
        ("POST", ["contact-points"]) => {
            let Some(mut cp) = body else {
                return Some(bad_request(json!({"message": "bad request data"})));
            };
            let name = cp["name"].as_str().unwrap_or_default().to_owned();
            if name.is_empty() || cp["type"].as_str().is_none_or(str::is_empty) {
                return Some(bad_request(
                    json!({"message": "invalid object specification: name and type are required"}),
                ));
            }
            if cp["type"] == "sns"
                && let Some(reason) = sns_refusal(db.alerting.flavour, &cp["settings"])
            {
                return Some(bad_request(json!({"message": format!(
                    "invalid object specification: failed to validate integration \"{name}\" (UID ) of type \"sns\": {reason}"
                )})));
            }
            if db
                .alerting
                .contact_points
                .iter()
                .any(|c| c["uid"] == cp["uid"])
            {
                return Some(bad_request(
                    json!({"message": "contact point with this uid already exists"}),
                ));
            }
            cp["provenance"] = json!(wanted);
            db.alerting.contact_points.push(cp.clone());
            answer(StatusCode::ACCEPTED, redact(&cp))
        }
        ("PUT", ["contact-points", uid]) => {
            let Some(mut cp) = body else {
                return Some(bad_request(json!({"message": "bad request data"})));
            };
            let Some(i) = db
                .alerting
                .contact_points
                .iter()
                .position(|c| c["uid"] == *uid)
            else {
                return Some(answer(
                    StatusCode::NOT_FOUND,
                    json!({"message": "contact point not found"}),
                ));
            };
            let stored = db.alerting.contact_points[i]["provenance"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if let Some(refused) = provenance_refusal(&version, &stored, &wanted) {
                return Some(refused);
            }
            if cp["type"] == "sns"
                && let Some(reason) = sns_refusal(db.alerting.flavour, &cp["settings"])
            {
                return Some(bad_request(json!({"message": format!(
                    "invalid object specification: failed to validate integration \"{}\" (UID {uid}) of type \"sns\": {reason}", cp["name"].as_str().unwrap_or_default()
                )})));
            }
            cp["uid"] = json!(uid);
            cp["provenance"] = json!(wanted);
            db.alerting.contact_points[i] = cp;
            answer(
                StatusCode::ACCEPTED,
                json!({"message": "contactpoint updated"}),
            )
        }
        ("DELETE", ["contact-points", uid]) => {
            let name = db
                .alerting
                .contact_points
                .iter()
                .find(|c| c["uid"] == *uid)
                .and_then(|c| c["name"].as_str())
                .map(str::to_owned);
            let mut used = Vec::new();
            receivers(&db.alerting.policy, &mut used);
            if let Some(name) = name
                && used.contains(&name)
            {
                return Some(answer(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"message": "contact point is referenced by notification policy"}),
                ));
            }
            db.alerting.contact_points.retain(|c| c["uid"] != *uid);
            answer(
                StatusCode::ACCEPTED,
                json!({"message": "contactpoint deleted"}),
            )
        }
        ("GET", ["policies"]) => {
            // Grafana reports the tree's provenance in it, when it has one.
            let mut tree = db.alerting.policy.clone();
            if !db.alerting.policy_provenance.is_empty() {
                tree["provenance"] = json!(db.alerting.policy_provenance);
            }
            answer(StatusCode::OK, tree)
        }
        ("PUT", ["policies"]) => {
            let Some(mut tree) = body else {
                return Some(bad_request(json!({"message": "bad request data"})));
            };
            if let Some(t) = tree.as_object_mut() {
                t.remove("provenance");
            }
            if tree["receiver"].as_str().is_none_or(str::is_empty) {
                return Some(bad_request(
                    json!({"message": "root route must specify a default receiver"}),
                ));
            }
            if tree.get("object_matchers").is_some() || tree.get("matchers").is_some() {
                return Some(bad_request(
                    json!({"message": "root route must not have any matchers"}),
                ));
            }
            let mut named = Vec::new();
            receivers(&tree, &mut named);
            for r in named {
                if !db
                    .alerting
                    .contact_points
                    .iter()
                    .any(|c| c["name"] == r.as_str())
                {
                    return Some(bad_request(
                        json!({"message": format!("receiver '{r}' does not exist")}),
                    ));
                }
            }
            if let Some(refused) =
                provenance_refusal(&version, &db.alerting.policy_provenance, &wanted)
            {
                return Some(refused);
            }
            db.alerting.policy = tree;
            db.alerting.policy_provenance = wanted;
            answer(StatusCode::ACCEPTED, json!({"message": "policies updated"}))
        }
        ("GET", ["alert-rules", uid]) => {
            match db.alerting.rules.iter().find(|r| r["uid"] == *uid) {
                Some(rule) => answer(StatusCode::OK, rule.clone()),
                None => answer(StatusCode::NOT_FOUND, Value::Null),
            }
        }
        ("POST", ["alert-rules"]) => {
            let Some(mut rule) = body else {
                return Some(bad_request(json!({"message": "bad request data"})));
            };
            if let Some(reason) = rule_refusal(db, &rule) {
                return Some(bad_request(
                    json!({"message": format!("invalid alert rule: {reason}")}),
                ));
            }
            let uid = rule["uid"].as_str().unwrap_or_default().to_owned();
            if db.alerting.rules.iter().any(|r| r["uid"] == uid.as_str()) {
                return Some(answer(
                    StatusCode::CONFLICT,
                    json!({"message": format!("cannot create rule with UID '{uid}': a rule with this UID already exists")}),
                ));
            }
            // Titles unique per folder until Grafana 12 removed the rule.
            if !version.starts_with("12")
                && db
                    .alerting
                    .rules
                    .iter()
                    .any(|r| r["folderUID"] == rule["folderUID"] && r["title"] == rule["title"])
            {
                return Some(bad_request(
                    json!({"message": "[alerting.alert-rule.conflict] conflicting alert rule found: rule title under the same organisation and folder should be unique"}),
                ));
            }
            rule["provenance"] = json!(wanted);
            rule["id"] = json!(db.next_id);
            db.next_id += 1;
            db.alerting.rules.push(rule.clone());
            answer(StatusCode::CREATED, rule)
        }
        ("PUT", ["alert-rules", uid]) => {
            let Some(mut rule) = body else {
                return Some(bad_request(json!({"message": "bad request data"})));
            };
            let Some(i) = db.alerting.rules.iter().position(|r| r["uid"] == *uid) else {
                return Some(answer(StatusCode::NOT_FOUND, Value::Null));
            };
            if let Some(reason) = rule_refusal(db, &rule) {
                return Some(bad_request(
                    json!({"message": format!("invalid alert rule: {reason}")}),
                ));
            }
            let stored = db.alerting.rules[i]["provenance"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if let Some(refused) = provenance_refusal(&version, &stored, &wanted) {
                return Some(refused);
            }
            rule["provenance"] = json!(wanted);
            rule["id"] = db.alerting.rules[i]["id"].clone();
            db.alerting.rules[i] = rule.clone();
            answer(StatusCode::OK, rule)
        }
        ("DELETE", ["alert-rules", uid]) => {
            db.alerting.rules.retain(|r| r["uid"] != *uid);
            answer(StatusCode::NO_CONTENT, Value::Null)
        }
        ("GET", ["folder", folder, "rule-groups", group]) => match group_of(db, folder, group) {
            Some(g) => answer(StatusCode::OK, g),
            None => answer(
                StatusCode::NOT_FOUND,
                json!({"message": "rule group does not exist"}),
            ),
        },
        ("PUT", ["folder", folder, "rule-groups", group]) => {
            let Some(g) = body else {
                return Some(bad_request(json!({"message": "bad request data"})));
            };
            let interval = g["interval"].as_u64().unwrap_or(0);
            if interval == 0 || !interval.is_multiple_of(10) {
                return Some(bad_request(json!({"message": format!(
                    "invalid alert rule: interval ({interval}s) should be non-zero and divided exactly by scheduler interval: 10"
                )})));
            }
            // The group is one resource: its rules are replaced by the body's.
            for rule in g["rules"].as_array().into_iter().flatten() {
                if let Some(reason) = rule_refusal(db, rule) {
                    return Some(bad_request(
                        json!({"message": format!("invalid alert rule: {reason}")}),
                    ));
                }
                let stored = db
                    .alerting
                    .rules
                    .iter()
                    .find(|r| r["uid"] == rule["uid"])
                    .and_then(|r| r["provenance"].as_str())
                    .unwrap_or_default()
                    .to_owned();
                if let Some(refused) = provenance_refusal(&version, &stored, &wanted) {
                    return Some(refused);
                }
            }
            db.alerting
                .rules
                .retain(|r| !(r["folderUID"] == *folder && r["ruleGroup"] == *group));
            for rule in g["rules"].as_array().into_iter().flatten() {
                let mut rule = rule.clone();
                rule["provenance"] = json!(wanted);
                db.alerting.rules.push(rule);
            }
            db.alerting
                .intervals
                .retain(|(f, gr, _)| !(f == folder && gr == group));
            db.alerting
                .intervals
                .push(((*folder).to_owned(), (*group).to_owned(), interval));
            answer(StatusCode::OK, g)
        }
        _ => return None,
    })
}

impl GrafanaFixture {
    /// Accept AMG's SNS settings (`topic`) instead of Grafana's own (`topic_arn`).
    pub fn sns_flavour(&self, flavour: SnsFlavour) {
        lock(&self.db).alerting.flavour = flavour;
    }

    /// The stored contact points (with their provenance), policy tree and rules.
    pub fn contact_points(&self) -> Vec<Value> {
        lock(&self.db).alerting.contact_points.clone()
    }

    pub fn policy_tree(&self) -> (Value, String) {
        let db = lock(&self.db);
        (
            db.alerting.policy.clone(),
            db.alerting.policy_provenance.clone(),
        )
    }

    pub fn alert_rules(&self) -> Vec<Value> {
        lock(&self.db).alerting.rules.clone()
    }

    pub fn rule_group_interval(&self, folder: &str, group: &str) -> Option<u64> {
        lock(&self.db)
            .alerting
            .intervals
            .iter()
            .find(|(f, g, _)| f == folder && g == group)
            .map(|(_, _, s)| *s)
    }

    /// Answer `call` (`"POST /api/v1/provisioning/alert-rules"`) with 500 from now on.
    pub fn fail(&self, call: &str) {
        lock(&self.db).alerting.failing.push(call.to_owned());
    }

    /// Lock the policy tree as a provisioning tool without the header would (provenance `api`).
    pub fn lock_policy_tree(&self) {
        lock(&self.db).alerting.policy_provenance = "api".to_owned();
    }

    /// A route and its contact point as someone made them in the UI.
    pub fn seed_route(&self, receiver: &str, matchers: Value) {
        let mut db = lock(&self.db);
        db.alerting.contact_points.push(json!({
            "uid": format!("ui-{receiver}"), "name": receiver, "type": "email",
            "settings": {"addresses": "team@example.com"}, "provenance": ""
        }));
        let routes = db.alerting.policy["routes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut routes = routes;
        routes.push(json!({"receiver": receiver, "object_matchers": matchers}));
        db.alerting.policy["routes"] = Value::Array(routes);
    }
}
