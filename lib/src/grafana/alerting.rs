//! Grafana unified alerting through the provisioning API (`/api/v1/provisioning/...`): a
//! contact point, our child route in the notification policy tree, and an alert rule with its
//! rule group's interval, each ensured (created, kept, or updated in place) and each with the
//! delete teardown calls, "already gone" being success.
//!
//! The policy tree is one resource: a PUT replaces the whole tree, including routes people
//! made in the UI. So our route is added and removed by read-modify-write, touching nothing
//! else. Objects made through this API are locked in the UI (provenance `api`) unless the
//! request carries `X-Disable-Provenance` (Grafana checks only that the header is present);
//! a resource once locked cannot be unlocked through the API, which is explained when Grafana
//! refuses (500 before Grafana 11, 403 since).

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use super::uid_from;
use super::{Grafana, Outcome, message_of};
use crate::doc::Resource;
use crate::error::{Error, Result};
use crate::grafana::delete::recorded_grafana;
use crate::ledger::{self, Removal, Run, Verdict};

/// The header that keeps what we create editable in Grafana's UI.
pub const DISABLE_PROVENANCE: &str = "X-Disable-Provenance";

/// A contact point: its uid is the identity, name/type/settings are compared and updated.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactPointSpec {
    pub uid: String,
    pub name: String,
    pub kind: String,
    pub settings: Value,
}

/// Our route in the policy tree: the contact point (by name, as routes refer to it) and the
/// label matchers of our alert, as `[name, "=", value]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteSpec {
    pub receiver: String,
    pub matchers: Vec<(String, String)>,
    pub group_by: Vec<String>,
}

impl RouteSpec {
    fn object_matchers(&self) -> Value {
        Value::Array(
            self.matchers
                .iter()
                .map(|(k, v)| json!([k, "=", v]))
                .collect(),
        )
    }

    /// The route as the tree holds it.
    pub fn to_value(&self) -> Value {
        json!({
            "receiver": self.receiver,
            "object_matchers": self.object_matchers(),
            "group_by": self.group_by,
            "continue": false,
        })
    }

    /// Whether a route of the tree is ours: same receiver and same matchers.
    fn is(&self, route: &Value) -> bool {
        route["receiver"] == self.receiver.as_str()
            && route["object_matchers"] == self.object_matchers()
    }
}

/// Whether the policy tree is editable in the UI: Grafana's `provenance` of it is absent or
/// empty (set only once something provisioned it without `X-Disable-Provenance`).
fn tree_is_editable(tree: &Value) -> bool {
    tree.get("provenance")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
}

/// Whether `existing` already has every field `wanted` sets, recursively; Grafana adds fields
/// (ids, provenance, `[REDACTED]` secrets) that are not ours to compare.
fn covers(existing: &Value, wanted: &Value) -> bool {
    match (existing, wanted) {
        (Value::Object(have), Value::Object(want)) => want
            .iter()
            .all(|(k, v)| have.get(k).is_some_and(|h| covers(h, v))),
        (Value::Array(have), Value::Array(want)) => {
            have.len() == want.len() && have.iter().zip(want).all(|(h, w)| covers(h, w))
        }
        (Value::String(h), Value::String(_)) if h == "[REDACTED]" => true,
        _ => existing == wanted,
    }
}

impl Grafana {
    /// A provisioning call that may change provenance: with `editable`, the header that keeps
    /// the object editable in the UI. `(status, body)` for any answer but 401.
    async fn provisioning(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        editable: bool,
    ) -> Result<(StatusCode, Value)> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token.0)
            .json(body);
        if editable {
            request = request.header(DISABLE_PROVENANCE, "true");
        }
        let response = request
            .send()
            .await
            .map_err(|e| Error::remote(format!("{method} {path}: Grafana did not answer: {e}")))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == StatusCode::UNAUTHORIZED {
            return Err(Error::usage(format!(
                "Grafana refused the token ({}): {}",
                self.base,
                message_of(status, &value)
            ))
            .with_hint(
                "the token is wrong, expired or revoked: make a new service-account token",
            ));
        }
        Ok((status, value))
    }

    /// The error for a refused change, with the way out when it is about provenance.
    fn refused(&self, doing: &str, status: StatusCode, body: &Value, editable: bool) -> Error {
        let message = message_of(status, body);
        if message.contains("provenance") {
            let hint = if editable {
                "it was created without --editable, so Grafana keeps it locked to the API: run \
                 without --editable, or delete it in Grafana first"
            } else {
                "it was created with --editable (or in the UI): run with --editable again"
            };
            return Error::input(format!("{doing}: Grafana answered {status}: {message}"))
                .with_hint(hint);
        }
        if status == StatusCode::FORBIDDEN {
            return Error::remote(format!("{doing}: permission denied: {message}"))
                .with_hint("give the service account the Editor or Admin role");
        }
        self.failed(doing, status, body)
    }

    /// The contact point with `uid`, if there is one.
    pub async fn contact_point(&self, uid: &str) -> Result<Option<Value>> {
        let (status, body) = self
            .call(Method::GET, "/api/v1/provisioning/contact-points", None)
            .await?;
        if status != StatusCode::OK {
            return Err(self.failed("listing contact points", status, &body));
        }
        Ok(body
            .as_array()
            .into_iter()
            .flatten()
            .find(|cp| cp["uid"] == uid)
            .cloned())
    }

    /// Create the contact point, or update it in place when it differs.
    pub async fn ensure_contact_point(
        &self,
        spec: &ContactPointSpec,
        editable: bool,
    ) -> Result<Outcome> {
        let body = json!({
            "uid": spec.uid,
            "name": spec.name,
            "type": spec.kind,
            "settings": spec.settings,
            "disableResolveMessage": false,
        });
        let doing = format!("contact point `{}`", spec.name);
        match self.contact_point(&spec.uid).await? {
            None => {
                let (status, answer) = self
                    .provisioning(
                        Method::POST,
                        "/api/v1/provisioning/contact-points",
                        &body,
                        editable,
                    )
                    .await?;
                match status {
                    StatusCode::OK | StatusCode::CREATED | StatusCode::ACCEPTED => {
                        Ok(Outcome::Created)
                    }
                    _ => Err(self
                        .refused(&format!("creating {doing}"), status, &answer, editable)
                        .with_hint_if_none(
                            "check --grafana-sns-shape: Grafana's own SNS settings (upstream) \
                             and AMG's (amg) differ",
                        )),
                }
            }
            Some(existing) if covers(&existing, &body) => Ok(Outcome::Unchanged),
            Some(_) => {
                let (status, answer) = self
                    .provisioning(
                        Method::PUT,
                        &format!("/api/v1/provisioning/contact-points/{}", spec.uid),
                        &body,
                        editable,
                    )
                    .await?;
                match status {
                    StatusCode::OK | StatusCode::ACCEPTED => Ok(Outcome::Updated),
                    _ => Err(self.refused(&format!("updating {doing}"), status, &answer, editable)),
                }
            }
        }
    }

    /// Delete the contact point. Grafana refuses while a policy route uses it (teardown
    /// removes our route first).
    pub async fn delete_contact_point(&self, uid: &str) -> Result<Removal> {
        if self.contact_point(uid).await?.is_none() {
            return Ok(Removal::Absent);
        }
        let path = format!("/api/v1/provisioning/contact-points/{uid}");
        let (status, body) = self.call(Method::DELETE, &path, None).await?;
        match status {
            StatusCode::OK | StatusCode::ACCEPTED | StatusCode::NO_CONTENT => Ok(Removal::Deleted),
            StatusCode::NOT_FOUND => Ok(Removal::Absent),
            _ => Err(self
                .failed(&format!("deleting contact point {uid}"), status, &body)
                .with_hint("a notification policy route still uses it: remove the route first")),
        }
    }

    /// The notification policy tree.
    pub async fn policy_tree(&self) -> Result<Value> {
        let (status, body) = self
            .call(Method::GET, "/api/v1/provisioning/policies", None)
            .await?;
        if status != StatusCode::OK {
            return Err(self.failed("reading the notification policy tree", status, &body));
        }
        Ok(body)
    }

    async fn put_policy_tree(&self, tree: &Value, editable: bool) -> Result<()> {
        let (status, body) = self
            .provisioning(Method::PUT, "/api/v1/provisioning/policies", tree, editable)
            .await?;
        match status {
            StatusCode::OK | StatusCode::ACCEPTED => Ok(()),
            _ => Err(self.refused(
                "writing the notification policy tree",
                status,
                &body,
                editable,
            )),
        }
    }

    /// Put our route first among the root's children (so that no broader sibling takes our
    /// alerts), keeping every other route; a route of ours already there is left as it is.
    /// The tree is everyone's: one that people edit in the UI (no provenance) stays editable
    /// whatever `editable` says, since a PUT without the header would lock all of it.
    pub async fn ensure_route(&self, route: &RouteSpec, editable: bool) -> Result<Outcome> {
        let mut tree = self.policy_tree().await?;
        let editable = editable || tree_is_editable(&tree);
        if !tree.is_object() {
            return Err(Error::remote(format!(
                "the notification policy tree is not an object: {tree}"
            )));
        }
        let routes = tree
            .as_object_mut()
            .map(|t| t.entry("routes").or_insert_with(|| json!([])))
            .and_then(Value::as_array_mut)
            .ok_or_else(|| Error::remote("the policy tree's `routes` is not a list"))?;
        if let Some(i) = routes.iter().position(|r| route.is(r)) {
            if covers(&routes[i], &route.to_value()) {
                return Ok(Outcome::Unchanged);
            }
            routes[i] = route.to_value();
            self.put_policy_tree(&tree, editable).await?;
            return Ok(Outcome::Updated);
        }
        routes.insert(0, route.to_value());
        self.put_policy_tree(&tree, editable).await?;
        Ok(Outcome::Created)
    }

    /// Take our route out of the tree, leaving every other route as it is.
    pub async fn remove_route(&self, route: &RouteSpec) -> Result<Removal> {
        let mut tree = self.policy_tree().await?;
        let Some(routes) = tree.get_mut("routes").and_then(Value::as_array_mut) else {
            return Ok(Removal::Absent);
        };
        let before = routes.len();
        routes.retain(|r| !route.is(r));
        if routes.len() == before {
            return Ok(Removal::Absent);
        }
        // Written back with the provenance it has, so that removing our route neither locks
        // an editable tree nor is refused on a locked one.
        let editable = tree_is_editable(&tree);
        self.put_policy_tree(&tree, editable).await?;
        Ok(Removal::Deleted)
    }

    /// The alert rule with `uid`, if there is one.
    pub async fn alert_rule(&self, uid: &str) -> Result<Option<Value>> {
        self.get_optional(
            &format!("/api/v1/provisioning/alert-rules/{uid}"),
            &format!("alert rule {uid}"),
        )
        .await
    }

    /// Create the alert rule (its `uid` set), or update it in place when it differs.
    pub async fn ensure_alert_rule(&self, rule: &Value, editable: bool) -> Result<Outcome> {
        let uid = rule["uid"].as_str().unwrap_or_default();
        let doing = format!("alert rule `{}`", rule["title"].as_str().unwrap_or(uid));
        match self.alert_rule(uid).await? {
            None => {
                let (status, answer) = self
                    .provisioning(
                        Method::POST,
                        "/api/v1/provisioning/alert-rules",
                        rule,
                        editable,
                    )
                    .await?;
                match status {
                    StatusCode::OK | StatusCode::CREATED => Ok(Outcome::Created),
                    _ => Err(self.refused(&format!("creating {doing}"), status, &answer, editable)),
                }
            }
            Some(existing) if covers(&existing, rule) => Ok(Outcome::Unchanged),
            Some(_) => {
                let (status, answer) = self
                    .provisioning(
                        Method::PUT,
                        &format!("/api/v1/provisioning/alert-rules/{uid}"),
                        rule,
                        editable,
                    )
                    .await?;
                match status {
                    StatusCode::OK => Ok(Outcome::Updated),
                    _ => Err(self.refused(&format!("updating {doing}"), status, &answer, editable)),
                }
            }
        }
    }

    /// Set the evaluation interval of a rule group (the group is one resource: read, change
    /// the interval, write it whole). Grafana wants a multiple of its 10 s scheduler tick.
    pub async fn ensure_rule_group_interval(
        &self,
        folder_uid: &str,
        group: &str,
        seconds: u64,
        editable: bool,
    ) -> Result<Outcome> {
        let path = format!("/api/v1/provisioning/folder/{folder_uid}/rule-groups/{group}");
        let mut body = self
            .get_optional(&path, &format!("rule group {group}"))
            .await?
            .ok_or_else(|| {
                Error::remote(format!(
                    "rule group {group} in folder {folder_uid} is missing right after its rule was saved"
                ))
            })?;
        if body["interval"].as_u64() == Some(seconds) {
            return Ok(Outcome::Unchanged);
        }
        body["interval"] = json!(seconds);
        let (status, answer) = self
            .provisioning(Method::PUT, &path, &body, editable)
            .await?;
        match status {
            StatusCode::OK | StatusCode::ACCEPTED => Ok(Outcome::Updated),
            _ => Err(self.refused(
                &format!("setting the interval of rule group {group}"),
                status,
                &answer,
                editable,
            )),
        }
    }

    /// Delete the alert rule.
    pub async fn delete_alert_rule(&self, uid: &str) -> Result<Removal> {
        if self.alert_rule(uid).await?.is_none() {
            return Ok(Removal::Absent);
        }
        let path = format!("/api/v1/provisioning/alert-rules/{uid}");
        let (status, body) = self.call(Method::DELETE, &path, None).await?;
        match status {
            StatusCode::OK | StatusCode::ACCEPTED | StatusCode::NO_CONTENT => Ok(Removal::Deleted),
            StatusCode::NOT_FOUND => Ok(Removal::Absent),
            _ => Err(self.failed(&format!("deleting alert rule {uid}"), status, &body)),
        }
    }
}

// ---- The ledger's Grafana alerting entries and their deletes (teardown) --------------------
//
// None is taggable: each is ours by what the ledger recorded (the rule's folder and title, the
// route's receiver and matchers, the contact point's name), and the contact point goes only
// when no route still sends to it (Grafana answers 500 otherwise).

/// A contact point's ledger details.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactPointDetails {
    pub grafana_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Our route's ledger details: its receiver and matchers, `[name, "=", value]` as the tree
/// holds them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteDetails {
    pub grafana_url: String,
    pub receiver: String,
    pub object_matchers: Value,
}

impl RouteDetails {
    pub fn new(grafana_url: &str, route: &RouteSpec) -> Self {
        RouteDetails {
            grafana_url: grafana_url.to_owned(),
            receiver: route.receiver.clone(),
            object_matchers: route.object_matchers(),
        }
    }

    /// The route the entry recorded, for [`Grafana::remove_route`]; `None` when malformed.
    pub fn route(&self) -> Option<RouteSpec> {
        let matchers = self
            .object_matchers
            .as_array()?
            .iter()
            .map(|m| match (m[0].as_str(), m[1].as_str(), m[2].as_str()) {
                (Some(k), Some("="), Some(v)) => Some((k.to_owned(), v.to_owned())),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some(RouteSpec {
            receiver: self.receiver.clone(),
            matchers,
            group_by: Vec::new(),
        })
    }
}

/// An alert rule's ledger details.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertRuleDetails {
    pub grafana_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

fn removed_from(removal: Removal, url: &str) -> Verdict {
    match removal {
        Removal::Deleted => Verdict::Deleted,
        Removal::Absent => Verdict::Absent(format!("not in Grafana {url}")),
        Removal::Skipped(why) => Verdict::Skipped(why),
    }
}

/// teardown's `grafana-alert-rule` entry: deleted while its folder and title are the recorded.
pub async fn take_down_alert_rule(run: &mut impl Run, r: &Resource) -> Result<Verdict> {
    let details: AlertRuleDetails = crate::verdict!(ledger::details(r));
    let (grafana, url) = crate::verdict!(recorded_grafana(run, &details.grafana_url).await?);
    let uid = r.id.as_str();
    let Some(rule) = grafana.alert_rule(uid).await? else {
        return Ok(removed_from(Removal::Absent, &url));
    };
    for (recorded, field) in [
        (&details.folder_uid, "folderUID"),
        (&details.title, "title"),
    ] {
        if let Some(recorded) = recorded
            && rule[field] != recorded.as_str()
        {
            return Ok(Verdict::Skipped(format!(
                "its {field} is now {}, not the recorded `{recorded}`",
                rule[field]
            )));
        }
    }
    if run.dry_run() {
        return Ok(Verdict::WouldDelete("the alert rule".into()));
    }
    Ok(removed_from(grafana.delete_alert_rule(uid).await?, &url))
}

/// teardown's `grafana-notification-route` entry: our route leaves the policy tree, rebuilt
/// from what the ledger recorded; every other route stays.
pub async fn take_down_route(run: &mut impl Run, r: &Resource) -> Result<Verdict> {
    let details: RouteDetails = crate::verdict!(ledger::details(r));
    let (grafana, url) = crate::verdict!(recorded_grafana(run, &details.grafana_url).await?);
    let Some(route) = details.route() else {
        return Ok(Verdict::Failed(
            "the entry's `details.objectMatchers` are malformed: kept, never guessed at".into(),
        ));
    };
    let tree = grafana.policy_tree().await?;
    let present = tree["routes"]
        .as_array()
        .is_some_and(|routes| routes.iter().any(|r| route.is(r)));
    if !present {
        return Ok(removed_from(Removal::Absent, &url));
    }
    run.seen()
        .gone_grafana
        .insert(format!("route:{}", route.receiver));
    if run.dry_run() {
        return Ok(Verdict::WouldDelete(
            "only our route; the tree's others stay".into(),
        ));
    }
    Ok(removed_from(grafana.remove_route(&route).await?, &url))
}

/// teardown's `grafana-contact-point` entry: deleted while it has the recorded name and no
/// route (but ours, which this run removes first) sends to it.
pub async fn take_down_contact_point(run: &mut impl Run, r: &Resource) -> Result<Verdict> {
    let details: ContactPointDetails = crate::verdict!(ledger::details(r));
    let (grafana, url) = crate::verdict!(recorded_grafana(run, &details.grafana_url).await?);
    let uid = r.id.as_str();
    let Some(found) = grafana.contact_point(uid).await? else {
        return Ok(removed_from(Removal::Absent, &url));
    };
    let name = found["name"].as_str().unwrap_or_default().to_owned();
    if let Some(recorded) = details.name.filter(|recorded| *recorded != name) {
        return Ok(Verdict::Skipped(format!(
            "it is now named `{name}`, not the recorded `{recorded}`"
        )));
    }
    // Routes sending to it, other than ours that this run removes.
    let tree = grafana.policy_tree().await?;
    let mut users: usize = 0;
    let mut stack = vec![&tree];
    while let Some(node) = stack.pop() {
        if node["receiver"] == name.as_str() {
            users += 1;
        }
        stack.extend(node["routes"].as_array().into_iter().flatten());
    }
    if run.dry_run() && run.seen().gone_grafana.contains(&format!("route:{name}")) {
        users = users.saturating_sub(1);
    }
    if users > 0 {
        return Ok(Verdict::Skipped(format!(
            "{users} notification route(s) still send to `{name}`; Grafana refuses to delete it"
        )));
    }
    if run.dry_run() {
        return Ok(Verdict::WouldDelete(format!("contact point `{name}`")));
    }
    Ok(removed_from(grafana.delete_contact_point(uid).await?, &url))
}

trait HintIfNone {
    fn with_hint_if_none(self, hint: &str) -> Self;
}

impl HintIfNone for Error {
    fn with_hint_if_none(self, hint: &str) -> Self {
        if self.hint.is_some() {
            self
        } else {
            self.with_hint(hint)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn covers_ignores_what_grafana_adds_and_redacts() {
        let wanted = json!({"name": "a", "settings": {"topic_arn": "arn", "sigv4": {"region": "r", "secret_key": "s"}}});
        let stored = json!({"uid": "x", "name": "a", "provenance": "api", "settings": {"topic_arn": "arn", "sigv4": {"region": "r", "secret_key": "[REDACTED]"}}});
        assert!(covers(&stored, &wanted));
        let changed = json!({"name": "a", "settings": {"topic_arn": "arn2"}});
        assert!(!covers(&stored, &changed));
    }

    #[test]
    fn our_route_is_known_by_receiver_and_matchers() {
        let route = RouteSpec {
            receiver: "ampkit-sns".into(),
            matchers: vec![("managed_by".into(), "ampkit".into())],
            group_by: vec!["alertname".into()],
        };
        assert!(route.is(&route.to_value()));
        assert!(!route.is(&json!({"receiver": "ampkit-sns"})));
        assert_eq!(
            route.to_value()["object_matchers"],
            json!([["managed_by", "=", "ampkit"]])
        );
    }
}
