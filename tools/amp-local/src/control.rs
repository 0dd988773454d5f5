//! AMP's control plane, REST-JSON as the AWS SDK for Rust (aws-sdk-amp) sends and reads it:
//! paths, methods, field names and status codes follow the SDK's serializers, errors carry
//! `x-amzn-errortype` and `{"message": ...}` so the SDK maps them to its typed errors.
//!
//! Workspaces start CREATING and turn ACTIVE one `--activation-delay` later, and a deleted
//! one stays DELETING for as long before it is gone, so that callers' waiting (the SDK's
//! waiters) is exercised as against AMP. A change to a workspace, rule groups namespace or
//! alert manager definition while it is CREATING, UPDATING or DELETING is refused with 409
//! ConflictException, as AMP refuses it (its API reference lists ConflictException for
//! DeleteWorkspace, PutRuleGroupsNamespace, DeleteRuleGroupsNamespace,
//! PutAlertManagerDefinition and DeleteAlertManagerDefinition), so that callers' retries are
//! exercised too. Quotas on rules and definitions are [`super::quotas`]'s flags. Scrapers have their own module ([`super::scrapers`]):
//! they run a process each.

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use super::store::{AlertManagerDefinition, RuleGroupsNamespace, State, Workspace};
use super::{ApiError, App, alerting, scrapers};

pub(crate) type Answer = Result<Response, ApiError>;

pub(crate) fn ok(status: StatusCode, body: Value) -> Answer {
    Ok((status, axum::Json(body)).into_response())
}

pub(crate) fn parse_body(body: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::validation(
            "The request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::validation(format!(
            "Could not parse request body into json: {e}"
        ))),
    }
}

pub(crate) fn opt_string(
    body: &serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::validation(format!("{field} must be a string"))),
    }
}

pub(crate) fn tags_of(
    body: &serde_json::Map<String, Value>,
) -> Result<BTreeMap<String, String>, ApiError> {
    match body.get("tags") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => {
            let mut tags = BTreeMap::new();
            for (k, v) in map {
                let v = v
                    .as_str()
                    .ok_or_else(|| ApiError::validation(format!("tag {k} must be a string")))?;
                if k.is_empty() || k.len() > 128 || v.len() > 256 {
                    return Err(ApiError::validation(format!(
                        "tag {k}: keys are 1-128 characters, values at most 256"
                    )));
                }
                tags.insert(k.clone(), v.to_owned());
            }
            if tags.len() > 50 {
                return Err(ApiError::validation("at most 50 tags per resource"));
            }
            Ok(tags)
        }
        Some(_) => Err(ApiError::validation("tags must be a map of strings")),
    }
}

fn check_alias(alias: &str) -> Result<(), ApiError> {
    if alias.is_empty() || alias.chars().count() > 100 {
        return Err(ApiError::validation(
            "alias must be between 1 and 100 characters",
        ));
    }
    Ok(())
}

/// The `data` field: base64 on the wire (a blob), UTF-8 YAML inside.
fn data_of(body: &serde_json::Map<String, Value>) -> Result<String, ApiError> {
    let encoded =
        opt_string(body, "data")?.ok_or_else(|| ApiError::validation("data is required"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.as_bytes())
        .map_err(|e| ApiError::validation(format!("data is not base64: {e}")))?;
    String::from_utf8(bytes).map_err(|_| ApiError::validation("data is not UTF-8 text"))
}

fn encode_data(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
}

pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn query_value(query: &str, name: &str) -> Option<String> {
    query_pairs(query)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// `maxResults`/`nextToken` pagination over a sorted list; the token is the next offset.
pub(crate) fn page<T: Clone>(
    items: &[T],
    query: &str,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let max = match query_value(query, "maxResults") {
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::validation("maxResults must be between 1 and 1000"))?,
        None => 100,
    };
    let start = match query_value(query, "nextToken") {
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= items.len())
            .ok_or_else(|| ApiError::validation("Invalid nextToken"))?,
        None => 0,
    };
    let end = (start + max).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    Ok((items[start..end].to_vec(), next))
}

fn new_workspace_id() -> String {
    let hex = |n: usize| -> String {
        (0..n)
            .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
            .collect()
    };
    format!("ws-{}-{}-{}-{}-{}", hex(8), hex(4), hex(4), hex(4), hex(12))
}

impl App {
    fn workspace_arn(&self, id: &str) -> String {
        format!(
            "arn:aws:aps:{}:{}:workspace/{id}",
            self.opts.region, self.opts.account_id
        )
    }

    fn namespace_arn(&self, ws: &str, name: &str) -> String {
        format!(
            "arn:aws:aps:{}:{}:rulegroupsnamespace/{ws}/{name}",
            self.opts.region, self.opts.account_id
        )
    }

    fn endpoint(&self, id: &str) -> String {
        format!("{}/workspaces/{id}/", self.base_url)
    }

    fn workspace_json(&self, ws: &Workspace, now: f64, full: bool) -> Value {
        let delay = self.opts.activation_delay;
        let mut v = json!({
            "workspaceId": ws.id,
            "arn": ws.arn,
            "status": {"statusCode": ws.status(delay, now)},
            "createdAt": ws.created_at,
            "tags": ws.tags,
        });
        if let Some(alias) = &ws.alias {
            v["alias"] = json!(alias);
        }
        if let Some(kms) = &ws.kms_key_arn {
            v["kmsKeyArn"] = json!(kms);
        }
        if full {
            v["prometheusEndpoint"] = json!(self.endpoint(&ws.id));
        }
        v
    }

    fn namespace_json(&self, ns: &RuleGroupsNamespace, now: f64, with_data: bool) -> Value {
        let mut v = json!({
            "arn": ns.arn,
            "name": ns.name,
            "status": {"statusCode": ns.status(self.opts.activation_delay, now)},
            "createdAt": ns.created_at,
            "modifiedAt": ns.modified_at,
            "tags": ns.tags,
        });
        if with_data {
            v["data"] = json!(encode_data(&ns.data));
        }
        v
    }
}

fn workspace<'a>(state: &'a State, id: &str) -> Result<&'a Workspace, ApiError> {
    state
        .workspaces
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("Workspace not found: {id}"), id, "Workspace"))
}

fn workspace_mut<'a>(state: &'a mut State, id: &str) -> Result<&'a mut Workspace, ApiError> {
    state
        .workspaces
        .get_mut(id)
        .ok_or_else(|| ApiError::not_found(format!("Workspace not found: {id}"), id, "Workspace"))
}

/// A workspace that can take changes to its alerting: ACTIVE (AMP answers a conflict otherwise).
fn active_workspace_mut<'a>(
    app: &App,
    state: &'a mut State,
    id: &str,
    now: f64,
) -> Result<&'a mut Workspace, ApiError> {
    let delay = app.opts.activation_delay;
    let ws = workspace_mut(state, id)?;
    let status = ws.status(delay, now);
    if status != "ACTIVE" {
        return Err(ApiError::conflict(
            format!("Workspace {id} is {status}, not ACTIVE"),
            id,
            "Workspace",
        ));
    }
    Ok(ws)
}

fn check_namespace_name(name: &str) -> Result<(), ApiError> {
    alerting::check_namespace_name(name).map_err(ApiError::validation)
}

fn checked_rules(data: &str) -> Result<(), ApiError> {
    alerting::validate_rules(data)
        .map(|_| ())
        .map_err(|e| ApiError::validation(format!("Invalid rules: {e}")))
}

fn checked_definition(data: &str) -> Result<(), ApiError> {
    alerting::validate_definition(data)
        .map(|_| ())
        .map_err(|e| ApiError::validation(format!("Invalid alert manager definition: {e}")))
}

/// AMP's ServiceQuotaExceededException (402), as aws-sdk-amp reads it.
fn quota_exceeded(message: String, id: &str, resource_type: &str, quota: &str) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::PAYMENT_REQUIRED,
        "ServiceQuotaExceededException",
        message,
    );
    e.extra.insert("resourceId".into(), json!(id));
    e.extra.insert("resourceType".into(), json!(resource_type));
    e.extra.insert("serviceCode".into(), json!("aps"));
    e.extra.insert("quotaCode".into(), json!(quota));
    e
}

/// The rule groups of a rules file, by name (after [`checked_rules`]).
fn rule_groups(data: &str) -> Vec<(String, usize)> {
    let doc: serde_norway::Value = serde_norway::from_str(data).unwrap_or_default();
    doc.get("groups")
        .and_then(serde_norway::Value::as_sequence)
        .into_iter()
        .flatten()
        .map(|g| {
            let name = g
                .get("name")
                .and_then(serde_norway::Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let rules = g
                .get("rules")
                .and_then(serde_norway::Value::as_sequence)
                .map_or(0, Vec::len);
            (name, rules)
        })
        .collect()
}

/// A rules file within AMP's quotas on its own: its size and its rules per group
/// (AMP_quotas: rule definition file size, rules per rule group).
fn rules_within_limits(app: &App, data: &str) -> Result<(), ApiError> {
    let limits = &app.opts.limits;
    if data.len() as u64 > limits.max_rules_file_size {
        return Err(ApiError::validation(format!(
            "Invalid rules: the rules file is {} bytes, more than the {} allowed",
            data.len(),
            limits.max_rules_file_size
        )));
    }
    for (name, rules) in rule_groups(data) {
        if rules as u64 > limits.max_rules_per_group {
            return Err(ApiError::validation(format!(
                "Invalid rules: group {name} has {rules} rules, more than the {} allowed per rule group",
                limits.max_rules_per_group
            )));
        }
    }
    Ok(())
}

/// The workspace's rule groups over all its namespaces, with `name`'s data replaced by
/// `data`, within AMP's quota of rule groups per workspace.
fn groups_within_limits(app: &App, ws: &Workspace, name: &str, data: &str) -> Result<(), ApiError> {
    let others: usize = ws
        .rule_groups_namespaces
        .values()
        .filter(|ns| ns.name != name)
        .map(|ns| rule_groups(&ns.data).len())
        .sum();
    let total = others + rule_groups(data).len();
    let max = app.opts.limits.max_rule_groups;
    if total as u64 > max {
        return Err(quota_exceeded(
            format!(
                "Workspace {} would have {total} rule groups; the quota is {max}",
                ws.id
            ),
            name,
            "RuleGroupsNamespace",
            "rule-groups-per-workspace",
        ));
    }
    Ok(())
}

/// An alert manager definition within AMP's quotas: its size, templates, routing-tree nodes,
/// inhibition rules and `repeat_interval` (AMP_quotas; AMP-alertmanager-config).
fn definition_within_limits(app: &App, data: &str) -> Result<(), ApiError> {
    use serde_norway::Value;
    let limits = &app.opts.limits;
    let refuse = |why: String| {
        Err(ApiError::validation(format!(
            "Invalid alert manager definition: {why}"
        )))
    };
    if data.len() as u64 > limits.max_definition_size {
        return refuse(format!(
            "the definition is {} bytes, more than the {} allowed",
            data.len(),
            limits.max_definition_size
        ));
    }
    let parsed = alerting::validate_definition(data).map_err(ApiError::validation)?;
    if parsed.templates.len() as u64 > limits.max_templates {
        return refuse(format!(
            "{} templates, more than the {} allowed",
            parsed.templates.len(),
            limits.max_templates
        ));
    }
    let inhibit = parsed
        .config
        .get("inhibit_rules")
        .and_then(Value::as_sequence)
        .map_or(0, Vec::len);
    if inhibit as u64 > limits.max_inhibition_rules {
        return refuse(format!(
            "{inhibit} inhibition rules, more than the {} allowed",
            limits.max_inhibition_rules
        ));
    }
    // The routing tree: every node counted, and every repeat_interval checked.
    let mut nodes = 0u64;
    let mut stack: Vec<&Value> = parsed.config.get("route").into_iter().collect();
    while let Some(route) = stack.pop() {
        nodes += 1;
        if let Some(text) = route.get("repeat_interval").and_then(Value::as_str) {
            let repeat = ampkit::timespec::parse_duration(text)
                .map_err(|e| ApiError::validation(format!("repeat_interval {text}: {e}")))?;
            if repeat > limits.max_repeat_interval {
                return refuse(format!(
                    "repeat_interval {text} is longer than the {} allowed",
                    ampkit::timespec::format_duration(limits.max_repeat_interval)
                ));
            }
        }
        if let Some(children) = route.get("routes").and_then(Value::as_sequence) {
            stack.extend(children);
        }
    }
    if nodes > limits.max_routing_nodes {
        return refuse(format!(
            "the routing tree has {nodes} nodes, more than the {} allowed",
            limits.max_routing_nodes
        ));
    }
    Ok(())
}

/// AMP refuses a change to an object while an earlier one is still being applied (409
/// ConflictException): CREATING or UPDATING (the caller waits and tries again).
fn settled_or_conflict(status: &str, what: &str, id: &str, kind: &str) -> Result<(), ApiError> {
    if matches!(status, "CREATING" | "UPDATING" | "DELETING") {
        return Err(ApiError::conflict(
            format!("{what} is {status}; try again once it is ACTIVE"),
            id,
            kind,
        ));
    }
    Ok(())
}

/// Route one control-plane request (already verified).
pub async fn handle(
    app: &App,
    method: &Method,
    segs: &[String],
    query: &str,
    body: &[u8],
) -> Answer {
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            format!("No operation {method} /{}", segs.join("/")),
        )
    };
    match (method.as_str(), segs.as_slice()) {
        ("POST", ["workspaces"]) => create_workspace(app, body).await,
        ("GET", ["workspaces"]) => list_workspaces(app, query),
        ("GET", ["workspaces", id]) => describe_workspace(app, id),
        ("DELETE", ["workspaces", id]) => delete_workspace(app, id).await,
        ("POST", ["workspaces", id, "alias"]) => update_alias(app, id, body).await,
        ("POST", ["workspaces", id, "rulegroupsnamespaces"]) => {
            create_namespace(app, id, body).await
        }
        ("GET", ["workspaces", id, "rulegroupsnamespaces"]) => list_namespaces(app, id, query),
        ("GET", ["workspaces", id, "rulegroupsnamespaces", name]) => {
            describe_namespace(app, id, name)
        }
        ("PUT", ["workspaces", id, "rulegroupsnamespaces", name]) => {
            put_namespace(app, id, name, body).await
        }
        ("DELETE", ["workspaces", id, "rulegroupsnamespaces", name]) => {
            delete_namespace(app, id, name).await
        }
        ("POST", ["workspaces", id, "alertmanager", "definition"]) => {
            put_definition(app, id, body, true).await
        }
        ("PUT", ["workspaces", id, "alertmanager", "definition"]) => {
            put_definition(app, id, body, false).await
        }
        ("GET", ["workspaces", id, "alertmanager", "definition"]) => describe_definition(app, id),
        ("DELETE", ["workspaces", id, "alertmanager", "definition"]) => {
            delete_definition(app, id).await
        }
        ("POST", ["scrapers"]) => scrapers::create(app, body).await,
        ("GET", ["scrapers"]) => scrapers::list(app, query),
        ("GET", ["scrapers", id]) => scrapers::describe(app, id),
        ("DELETE", ["scrapers", id]) => scrapers::delete(app, id).await,
        ("POST", ["tags", arn]) => tag_resource(app, arn, body).await,
        ("DELETE", ["tags", arn]) => untag_resource(app, arn, query).await,
        ("GET", ["tags", arn]) => list_tags(app, arn),
        _ => Err(not_found()),
    }
}

async fn create_workspace(app: &App, body: &[u8]) -> Answer {
    let body = parse_body(body)?;
    let alias = opt_string(&body, "alias")?;
    if let Some(alias) = &alias {
        check_alias(alias)?;
    }
    let kms_key_arn = opt_string(&body, "kmsKeyArn")?;
    let tags = tags_of(&body)?;
    let id = new_workspace_id();
    let ws = Workspace {
        id: id.clone(),
        alias,
        arn: app.workspace_arn(&id),
        created_at: super::store::now_secs(),
        kms_key_arn,
        tags,
        deleting_since: None,
        rule_groups_namespaces: BTreeMap::new(),
        alert_manager: None,
    };
    let answer = app
        .change(|state, now| {
            let mut ws = ws;
            ws.created_at = now;
            let v = app.workspace_json(&ws, now, false);
            state.workspaces.insert(ws.id.clone(), ws);
            Ok(v)
        })
        .await?;
    let mut out = json!({
        "workspaceId": answer["workspaceId"],
        "arn": answer["arn"],
        "status": answer["status"],
        "tags": answer["tags"],
    });
    if let Some(kms) = answer.get("kmsKeyArn") {
        out["kmsKeyArn"] = kms.clone();
    }
    ok(StatusCode::ACCEPTED, out)
}

fn list_workspaces(app: &App, query: &str) -> Answer {
    let now = super::store::now_secs();
    let alias = query_value(query, "alias");
    let mut items: Vec<Value> = {
        let state = app.state();
        let mut list: Vec<&Workspace> = state
            .workspaces
            .values()
            .filter(|ws| {
                !ws.deleting_since
                    .is_some_and(|t| super::store::settled(t, app.opts.activation_delay, now))
            })
            // AMP filters by alias prefix.
            .filter(|ws| match &alias {
                Some(a) => ws
                    .alias
                    .as_deref()
                    .is_some_and(|w| w.starts_with(a.as_str())),
                None => true,
            })
            .collect();
        list.sort_by(|a, b| a.created_at.total_cmp(&b.created_at).then(a.id.cmp(&b.id)));
        list.iter()
            .map(|ws| app.workspace_json(ws, now, false))
            .collect()
    };
    let (page_items, next) = page(&items, query)?;
    items = page_items;
    let mut out = json!({ "workspaces": items });
    if let Some(next) = next {
        out["nextToken"] = json!(next);
    }
    ok(StatusCode::OK, out)
}

fn visible<'a>(app: &App, state: &'a State, id: &str, now: f64) -> Result<&'a Workspace, ApiError> {
    let ws = workspace(state, id)?;
    if ws
        .deleting_since
        .is_some_and(|t| super::store::settled(t, app.opts.activation_delay, now))
    {
        return Err(ApiError::not_found(
            format!("Workspace not found: {id}"),
            id,
            "Workspace",
        ));
    }
    Ok(ws)
}

fn describe_workspace(app: &App, id: &str) -> Answer {
    let now = super::store::now_secs();
    let state = app.state();
    let ws = visible(app, &state, id, now)?;
    ok(
        StatusCode::OK,
        json!({ "workspace": app.workspace_json(ws, now, true) }),
    )
}

async fn delete_workspace(app: &App, id: &str) -> Answer {
    app.change(|state, now| {
        let delay = app.opts.activation_delay;
        let ws = workspace_mut(state, id)?;
        settled_or_conflict(
            ws.status(delay, now),
            &format!("Workspace {id}"),
            id,
            "Workspace",
        )?;
        ws.deleting_since = Some(now);
        Ok(())
    })
    .await?;
    delete_series(app, id).await;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Delete a deleted workspace's series from the Prometheus, where its admin API is enabled.
/// They are unreachable already (every path of the workspace answers 404); this frees them.
async fn delete_series(app: &App, id: &str) {
    let selector = crate::isolation::workspace_selector(id);
    let url = format!(
        "{}/api/v1/admin/tsdb/delete_series?{}",
        app.opts.prometheus_url.trim_end_matches('/'),
        form_urlencoded::Serializer::new(String::new())
            .append_pair("match[]", &selector)
            .finish()
    );
    match app.http.post(url).send().await {
        Ok(r) if r.status().is_success() => tracing::info!("deleted the series of workspace {id}"),
        Ok(r) => tracing::info!(
            "the series of workspace {id} stay in the Prometheus (admin API answered {})",
            r.status()
        ),
        Err(e) => tracing::warn!("could not delete the series of workspace {id}: {e}"),
    }
}

async fn update_alias(app: &App, id: &str, body: &[u8]) -> Answer {
    let body = parse_body(body)?;
    let alias = opt_string(&body, "alias")?;
    if let Some(alias) = &alias {
        check_alias(alias)?;
    }
    app.change(|state, now| {
        let ws = active_workspace_mut(app, state, id, now)?;
        ws.alias = alias;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn create_namespace(app: &App, id: &str, body: &[u8]) -> Answer {
    let body = parse_body(body)?;
    let name =
        opt_string(&body, "name")?.ok_or_else(|| ApiError::validation("name is required"))?;
    check_namespace_name(&name)?;
    let data = data_of(&body)?;
    checked_rules(&data)?;
    rules_within_limits(app, &data)?;
    let tags = tags_of(&body)?;
    let arn = app.namespace_arn(id, &name);
    let out = app
        .change(|state, now| {
            let ws = active_workspace_mut(app, state, id, now)?;
            if ws.rule_groups_namespaces.contains_key(&name) {
                return Err(ApiError::conflict(
                    format!("A rule groups namespace named {name} already exists"),
                    &name,
                    "RuleGroupsNamespace",
                ));
            }
            let max = app.opts.limits.max_rule_groups_namespaces;
            if ws.rule_groups_namespaces.len() as u64 >= max {
                return Err(quota_exceeded(
                    format!(
                        "Workspace {id} has {} rule groups namespaces; the quota is {max}",
                        ws.rule_groups_namespaces.len()
                    ),
                    &name,
                    "RuleGroupsNamespace",
                    "rule-groups-namespaces-per-workspace",
                ));
            }
            groups_within_limits(app, ws, &name, &data)?;
            let ns = RuleGroupsNamespace {
                name: name.clone(),
                arn: arn.clone(),
                data,
                created_at: now,
                modified_at: now,
                tags,
            };
            let v = app.namespace_json(&ns, now, false);
            ws.rule_groups_namespaces.insert(name.clone(), ns);
            Ok(v)
        })
        .await?;
    ok(
        StatusCode::ACCEPTED,
        json!({"name": out["name"], "arn": out["arn"], "status": out["status"], "tags": out["tags"]}),
    )
}

async fn put_namespace(app: &App, id: &str, name: &str, body: &[u8]) -> Answer {
    let body = parse_body(body)?;
    let data = data_of(&body)?;
    checked_rules(&data)?;
    rules_within_limits(app, &data)?;
    let out = app
        .change(|state, now| {
            let delay = app.opts.activation_delay;
            let ws = active_workspace_mut(app, state, id, now)?;
            groups_within_limits(app, ws, name, &data)?;
            let ns = ws.rule_groups_namespaces.get_mut(name).ok_or_else(|| {
                ApiError::not_found(
                    format!("Rule groups namespace not found: {name}"),
                    name,
                    "RuleGroupsNamespace",
                )
            })?;
            settled_or_conflict(
                ns.status(delay, now),
                &format!("Rule groups namespace {name}"),
                name,
                "RuleGroupsNamespace",
            )?;
            ns.data = data;
            ns.modified_at = now;
            Ok(app.namespace_json(ns, now, false))
        })
        .await?;
    ok(
        StatusCode::ACCEPTED,
        json!({"name": out["name"], "arn": out["arn"], "status": out["status"], "tags": out["tags"]}),
    )
}

fn describe_namespace(app: &App, id: &str, name: &str) -> Answer {
    let now = super::store::now_secs();
    let state = app.state();
    let ws = visible(app, &state, id, now)?;
    let ns = ws.rule_groups_namespaces.get(name).ok_or_else(|| {
        ApiError::not_found(
            format!("Rule groups namespace not found: {name}"),
            name,
            "RuleGroupsNamespace",
        )
    })?;
    ok(
        StatusCode::OK,
        json!({ "ruleGroupsNamespace": app.namespace_json(ns, now, true) }),
    )
}

fn list_namespaces(app: &App, id: &str, query: &str) -> Answer {
    let now = super::store::now_secs();
    let prefix = query_value(query, "name");
    let items: Vec<Value> = {
        let state = app.state();
        let ws = visible(app, &state, id, now)?;
        ws.rule_groups_namespaces
            .values()
            .filter(|ns| {
                prefix
                    .as_ref()
                    .is_none_or(|p| ns.name.starts_with(p.as_str()))
            })
            .map(|ns| app.namespace_json(ns, now, false))
            .collect()
    };
    let (items, next) = page(&items, query)?;
    let mut out = json!({ "ruleGroupsNamespaces": items });
    if let Some(next) = next {
        out["nextToken"] = json!(next);
    }
    ok(StatusCode::OK, out)
}

async fn delete_namespace(app: &App, id: &str, name: &str) -> Answer {
    app.change(|state, now| {
        let delay = app.opts.activation_delay;
        let ws = active_workspace_mut(app, state, id, now)?;
        let ns = ws.rule_groups_namespaces.get(name).ok_or_else(|| {
            ApiError::not_found(
                format!("Rule groups namespace not found: {name}"),
                name,
                "RuleGroupsNamespace",
            )
        })?;
        settled_or_conflict(
            ns.status(delay, now),
            &format!("Rule groups namespace {name}"),
            name,
            "RuleGroupsNamespace",
        )?;
        ws.rule_groups_namespaces.remove(name);
        Ok(())
    })
    .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn put_definition(app: &App, id: &str, body: &[u8], create: bool) -> Answer {
    let body = parse_body(body)?;
    let data = data_of(&body)?;
    checked_definition(&data)?;
    definition_within_limits(app, &data)?;
    let status = app
        .change(|state, now| {
            let ws = active_workspace_mut(app, state, id, now)?;
            match (&mut ws.alert_manager, create) {
                (Some(_), true) => Err(ApiError::conflict(
                    format!("Workspace {id} already has an alert manager definition"),
                    id,
                    "AlertManagerDefinition",
                )),
                (None, false) => Err(ApiError::not_found(
                    format!("Workspace {id} has no alert manager definition"),
                    id,
                    "AlertManagerDefinition",
                )),
                (Some(def), false) => {
                    settled_or_conflict(
                        def.status(app.opts.activation_delay, now),
                        &format!("The alert manager definition of workspace {id}"),
                        id,
                        "AlertManagerDefinition",
                    )?;
                    def.data = data;
                    def.modified_at = now;
                    Ok(def.status(app.opts.activation_delay, now))
                }
                (None, true) => {
                    let def = AlertManagerDefinition {
                        data,
                        created_at: now,
                        modified_at: now,
                    };
                    let status = def.status(app.opts.activation_delay, now);
                    ws.alert_manager = Some(def);
                    Ok(status)
                }
            }
        })
        .await?;
    ok(
        StatusCode::ACCEPTED,
        json!({"status": {"statusCode": status}}),
    )
}

fn describe_definition(app: &App, id: &str) -> Answer {
    let now = super::store::now_secs();
    let state = app.state();
    let ws = visible(app, &state, id, now)?;
    let def = ws.alert_manager.as_ref().ok_or_else(|| {
        ApiError::not_found(
            format!("Workspace {id} has no alert manager definition"),
            id,
            "AlertManagerDefinition",
        )
    })?;
    ok(
        StatusCode::OK,
        json!({"alertManagerDefinition": {
            "status": {"statusCode": def.status(app.opts.activation_delay, now)},
            "data": encode_data(&def.data),
            "createdAt": def.created_at,
            "modifiedAt": def.modified_at,
        }}),
    )
}

async fn delete_definition(app: &App, id: &str) -> Answer {
    app.change(|state, now| {
        let ws = active_workspace_mut(app, state, id, now)?;
        let def = ws.alert_manager.as_ref().ok_or_else(|| {
            ApiError::not_found(
                format!("Workspace {id} has no alert manager definition"),
                id,
                "AlertManagerDefinition",
            )
        })?;
        settled_or_conflict(
            def.status(app.opts.activation_delay, now),
            &format!("The alert manager definition of workspace {id}"),
            id,
            "AlertManagerDefinition",
        )?;
        ws.alert_manager = None;
        Ok(())
    })
    .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// The tag map of the resource an ARN names (a workspace, a rule groups namespace or a
/// scraper).
fn tags_mut<'a>(
    app: &App,
    state: &'a mut State,
    arn: &str,
) -> Result<&'a mut BTreeMap<String, String>, ApiError> {
    let missing = || ApiError::not_found(format!("Resource not found: {arn}"), arn, "Resource");
    let prefix = format!("arn:aws:aps:{}:{}:", app.opts.region, app.opts.account_id);
    let rest = arn.strip_prefix(&prefix).ok_or_else(missing)?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["workspace", id] => Ok(&mut workspace_mut(state, id).map_err(|_| missing())?.tags),
        ["scraper", id] => Ok(&mut state.scrapers.get_mut(*id).ok_or_else(missing)?.tags),
        ["rulegroupsnamespace", id, name] => Ok(&mut workspace_mut(state, id)
            .map_err(|_| missing())?
            .rule_groups_namespaces
            .get_mut(*name)
            .ok_or_else(missing)?
            .tags),
        _ => Err(ApiError::validation(format!("Invalid resource ARN: {arn}"))),
    }
}

async fn tag_resource(app: &App, arn: &str, body: &[u8]) -> Answer {
    let body = parse_body(body)?;
    let tags = tags_of(&body)?;
    if tags.is_empty() {
        return Err(ApiError::validation("tags is required"));
    }
    app.change(|state, _| {
        let current = tags_mut(app, state, arn)?;
        current.extend(tags);
        if current.len() > 50 {
            return Err(ApiError::validation("at most 50 tags per resource"));
        }
        Ok(())
    })
    .await?;
    ok(StatusCode::OK, json!({}))
}

async fn untag_resource(app: &App, arn: &str, query: &str) -> Answer {
    let keys: Vec<String> = query_pairs(query)
        .into_iter()
        .filter(|(k, _)| k == "tagKeys")
        .map(|(_, v)| v)
        .collect();
    if keys.is_empty() {
        return Err(ApiError::validation("tagKeys is required"));
    }
    app.change(|state, _| {
        let current = tags_mut(app, state, arn)?;
        for k in &keys {
            current.remove(k);
        }
        Ok(())
    })
    .await?;
    ok(StatusCode::OK, json!({}))
}

fn list_tags(app: &App, arn: &str) -> Answer {
    let mut state = app.state().clone();
    let tags = tags_mut(app, &mut state, arn)?.clone();
    ok(StatusCode::OK, json!({ "tags": tags }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_have_amp_shapes() {
        let id = new_workspace_id();
        assert_eq!(id.len(), 39, "{id}");
        assert!(id.starts_with("ws-"));
        assert!(check_namespace_name("envoy-alerts_1.x").is_ok());
        assert!(check_namespace_name("-bad").is_err());
        assert!(check_namespace_name("a/b").is_err());
        assert!(check_namespace_name("").is_err());
    }

    #[test]
    fn pages_by_offset() {
        let items: Vec<u32> = (0..5).collect();
        let (p, next) = page(&items, "maxResults=2").expect("page");
        assert_eq!((p, next.as_deref()), (vec![0, 1], Some("2")));
        let (p, next) = page(&items, "maxResults=2&nextToken=4").expect("page");
        assert_eq!((p, next), (vec![4], None));
        assert!(page(&items, "nextToken=x").is_err());
    }
}
