//! AMP's data plane under `/workspaces/<id>/api/v1/`, forwarded to the real Prometheus.
//!
//! `remote_write` goes to the receiver's `/api/v1/write` with the workspace label added to
//! every series; the query API (`query`, `query_range`, `series`, `labels`,
//! `label/<name>/values`, `metadata`, `query_exemplars`, in GET and POST-form forms) goes to
//! the same paths of the Prometheus, confined to the workspace ([`super::isolation`]). Query
//! answers stream back as they arrive: a range query can be large. A workspace that does not
//! exist, or is not ACTIVE, answers 404 as AMP does.
//!
//! AMP's alerting read APIs are here too: `api/v1/rules` and `api/v1/alerts` (ListRules,
//! ListAlerts) and `alertmanager/api/v2/` (alerts, alert groups, silences, receivers). Rules
//! and alerts are narrowed to the workspace's own (its rule files; the `ampkit_workspace`
//! label); silences and receivers are the shared Alertmanager's.

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::isolation::{self, Answer, WriteError};
use super::quotas;
use super::{ApiError, App, alerting, stream_body};

/// Request headers passed on to Prometheus.
const FORWARD_REQUEST: &[&str] = &[
    "content-type",
    "content-encoding",
    "accept",
    "accept-encoding",
    "x-prometheus-remote-write-version",
    "user-agent",
];
/// What is escaped in a label name put back into a path: all but RFC 3986's unreserved.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'-')
    .remove(b'.')
    .remove(b'~');
/// Response headers passed back.
const FORWARD_RESPONSE: &[&str] = &["content-type", "content-encoding"];

fn workspace_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Workspace not found: {id}"), id, "Workspace")
}

/// The Prometheus path for an AMP data-plane path, if it is one AMP serves.
fn upstream_path(rest: &[String]) -> Option<String> {
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match rest.as_slice() {
        ["remote_write"] => Some("/api/v1/write".to_owned()),
        [op @ ("query" | "query_range" | "series" | "labels" | "metadata" | "query_exemplars")] => {
            Some(format!("/api/v1/{op}"))
        }
        ["label", name, "values"] if !name.is_empty() => Some(format!(
            "/api/v1/label/{}/values",
            percent_encoding::utf8_percent_encode(name, SEGMENT)
        )),
        _ => None,
    }
}

fn active(app: &App, workspace_id: &str) -> bool {
    let now = super::store::now_secs();
    app.state()
        .workspaces
        .get(workspace_id)
        .is_some_and(|ws| ws.is_active(app.opts.activation_delay, now))
}

fn unknown_operation(what: String) -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "UnknownOperationException", what).into_response()
}

fn method_not_allowed(method: &Method, what: &str) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "ValidationException",
        format!("{method} is not allowed on {what}"),
    )
    .into_response()
}

/// A data-plane request: `/workspaces/<workspace_id>/<api>/<rest...>`.
pub struct DataRequest<'a> {
    pub method: &'a Method,
    pub workspace_id: &'a str,
    pub rest: &'a [String],
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
}

/// Which of AMP's data-plane APIs a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `api/v1/...`: remote write and the Prometheus query API.
    Prometheus,
    /// `alertmanager/api/v2/...`: the Alertmanager API.
    Alertmanager,
}

/// A data-plane request, answered only for a workspace that exists and is ACTIVE (404
/// otherwise, as AMP does).
pub async fn handle(app: &App, api: Api, req: DataRequest<'_>) -> Response {
    if !active(app, req.workspace_id) {
        return workspace_not_found(req.workspace_id).into_response();
    }
    match api {
        Api::Prometheus => prometheus(app, req).await,
        Api::Alertmanager => alertmanager(app, req).await,
    }
}

/// `/workspaces/<id>/api/v1/...`: remote write and the Prometheus query API.
async fn prometheus(app: &App, req: DataRequest<'_>) -> Response {
    let DataRequest {
        method,
        workspace_id,
        rest,
        query,
        headers,
        body,
    } = req;
    let what = format!("api/v1/{}", rest.join("/"));
    // AMP's ListRules and ListAlerts: this workspace's rules and alerts only.
    match (
        method.as_str(),
        rest.first().map(String::as_str),
        rest.len(),
    ) {
        ("GET", Some("rules"), 1) => return rules(app, workspace_id, query).await,
        ("GET", Some("alerts"), 1) => return alerts(app, workspace_id).await,
        (_, Some("rules" | "alerts"), 1) => return method_not_allowed(method, &what),
        _ => {}
    }
    let Some(path) = upstream_path(rest) else {
        return unknown_operation(format!("No data-plane operation {what}"));
    };
    let allowed = if path == "/api/v1/write" {
        method == Method::POST
    } else {
        method == Method::GET || method == Method::POST
    };
    if !allowed {
        return method_not_allowed(method, &what);
    }
    if path == "/api/v1/write" {
        // Within the workspace's quotas, every series into this workspace, and only into it.
        let user = format!("{}_{workspace_id}", app.opts.account_id);
        let mut after: Option<quotas::Refusal> = None;
        let mut metadata_dropped: Option<String> = None;
        let labelled = isolation::label_write_request_admitted(&body, workspace_id, |raw| {
            let mut scan = isolation::scan_write_request(raw)?;
            let limits = &app.opts.limits;
            // Metadata is read only when the request has some: a Prometheus sends it in
            // requests of its own, once a minute, and never with the samples.
            let mut metadata = Vec::new();
            let mut invalid_metadata = None;
            if scan.metadata > 0 {
                for entry in quotas::read_metadata(raw).map_err(WriteError::Malformed)? {
                    match quotas::invalid_metadata(limits, &entry) {
                        Some(why) => {
                            invalid_metadata.get_or_insert(why);
                        }
                        None => metadata.push(entry),
                    }
                }
                // Cortex takes only the valid metadata from the bucket.
                scan.metadata = metadata.len();
            }
            let now = std::time::Instant::now();
            let admitted = app
                .ingest
                .admit(limits, &user, workspace_id, &scan, now)
                .map_err(WriteError::Quota)?;
            metadata_dropped =
                app.ingest
                    .record_metadata(limits, &user, workspace_id, metadata, now);
            // Cortex's order: the series limit's 429, an invalid series, invalid metadata.
            after = admitted.refusal.or_else(|| {
                invalid_metadata.map(|why| quotas::Refusal::new(StatusCode::BAD_REQUEST, why))
            });
            Ok(admitted.keep)
        });
        if let Some(why) = &metadata_dropped {
            // Best effort, as in Cortex's ingester: logged, and the write goes on.
            tracing::warn!(
                "remote write into {workspace_id}: failed to ingest some metadata: {why}"
            );
        }
        let body = match labelled {
            Ok(labelled) => Bytes::from(labelled),
            Err(WriteError::LabelTaken) => {
                return bad_data(format!(
                    "series may not carry the label {}: it is the workspace's, set by the service",
                    isolation::LABEL
                ));
            }
            Err(WriteError::Malformed(why)) => return bad_data(why),
            Err(WriteError::Quota(refusal)) => {
                tracing::info!("remote write into {workspace_id}: {}", refusal.message);
                return refusal.response();
            }
        };
        let written = forward(
            app,
            &app.opts.prometheus_url,
            method,
            &path,
            query,
            headers,
            body,
        )
        .await;
        // Some series were refused: the others are written, and the answer is the refusal.
        return match after {
            Some(refusal) if written.status().is_success() => {
                tracing::info!("remote write into {workspace_id}: {}", refusal.message);
                refusal.response()
            }
            _ => written,
        };
    }
    read(app, workspace_id, &path, query, headers, &body).await
}

/// A Prometheus answer in its own error shape (`bad_data`, 400), as AMP passes it on.
fn bad_data(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "application/json")],
        serde_json::json!({"status": "error", "errorType": "bad_data", "error": message})
            .to_string(),
    )
        .into_response()
}

/// The query parameters of a read, from the query string and (for POST) the form body.
fn read_params(query: &str, headers: &HeaderMap, body: &[u8]) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let is_form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        params.extend(form_urlencoded::parse(body).into_owned());
    }
    params
}

/// A read of the Prometheus API confined to the workspace: its expressions and selectors get
/// the workspace matcher, and the label is taken out of the answer. Sent as GET with the
/// rewritten parameters (every read API takes GET).
async fn read(
    app: &App,
    workspace_id: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let op = path.trim_start_matches("/api/v1/");
    if op == format!("label/{}/values", isolation::LABEL) {
        // The label itself is invisible: it has no values to list.
        return (
            [("content-type", "application/json")],
            r#"{"status":"success","data":[]}"#,
        )
            .into_response();
    }
    let answer = match op {
        "query" | "query_range" => Some(Answer::Query),
        "query_exemplars" => Some(Answer::Exemplars),
        "series" => Some(Answer::Series),
        "labels" => Some(Answer::Labels),
        _ => None,
    };
    let mut strip = answer;
    // The query as the user sent it: a parse error Prometheus finds in the confined one is
    // asked again of it, so that the position is the user's.
    let mut sent_query: Option<String> = None;
    let mut params = Vec::new();
    let mut has_match = false;
    for (name, value) in read_params(query, headers, body) {
        let confined = match name.as_str() {
            "query" if answer == Some(Answer::Query) => {
                sent_query = Some(value.clone());
                match isolation::confine_query(&value, workspace_id) {
                    Ok(q) => {
                        if !q.strip_answer {
                            strip = None;
                        }
                        q.expr
                    }
                    Err(ours) => return unparsable(app, &value, &ours).await,
                }
            }
            "query" if answer == Some(Answer::Exemplars) => {
                match isolation::confine_expr(&value, workspace_id) {
                    Ok(expr) => expr,
                    Err(ours) => return unparsable(app, &value, &ours).await,
                }
            }
            "match[]" => {
                has_match = true;
                match isolation::confine_selector(&value, workspace_id) {
                    Ok(selector) => selector,
                    Err(why) => return bad_data(format!("invalid parameter \"match[]\": {why}")),
                }
            }
            _ => value,
        };
        params.push((name, confined));
    }
    let mut cost = quotas::QueryCost::default();
    if answer == Some(Answer::Query) {
        if op == "query_range"
            && let Some(refusal) = range_too_long(&app.opts.limits, &params)
        {
            return refusal;
        }
        cap_timeout(&app.opts.limits, &mut params);
        cost = match quotas::QueryCost::take_thresholds(&mut params) {
            Ok(cost) => cost,
            Err(why) => return bad_data(why),
        };
        cost.max_samples = samples_quota_of_ours(app).await;
        if cost.needs_stats() && !cost.stats_asked {
            params.push(("stats".to_owned(), "all".to_owned()));
        }
    }
    // Label names and values of this workspace's series only.
    if !has_match && (op == "labels" || op.starts_with("label/")) {
        params.push((
            "match[]".to_owned(),
            isolation::workspace_selector(workspace_id),
        ));
    }
    if op == "metadata" {
        return metadata(app, workspace_id, &params).await;
    }
    let upstream = match send_get(app, path, &params).await {
        Ok(upstream) => upstream,
        Err(e) => return prometheus_down(&e),
    };
    // A query's answer may carry warnings and infos, whose positions are fixed here, so it
    // is read whole; other answers with nothing to take out stream back as they arrive.
    let is_query = answer == Some(Answer::Query);
    if strip.is_none() && !is_query {
        let status = upstream.status().as_u16();
        let mut response = Response::builder().status(status);
        if let Some(v) = upstream.headers().get("content-type") {
            response = response.header("content-type", v.clone());
        }
        return response
            .body(stream_body(upstream))
            .unwrap_or_else(|e| ApiError::internal(e.to_string()).into_response());
    }
    let (status, content_type, bytes) = match buffered(upstream).await {
        Ok(answer) => answer,
        Err(e) => return prometheus_down(&e),
    };
    if status == StatusCode::BAD_REQUEST
        && let Some(sent) = &sent_query
        && bytes.windows(11).any(|w| w == b"parse error")
        && let Some(theirs) = users_parse_error(app, sent).await
    {
        return theirs;
    }
    // A query that ran out of time: Prometheus says 503 (errorType timeout), AMP 422
    // (AMP-troubleshooting, "HTTP 422 error: query timeout"), with the same body.
    let status = if is_query
        && status == StatusCode::SERVICE_UNAVAILABLE
        && bytes.windows(21).any(|w| w == br#""errorType":"timeout""#)
    {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        status
    };
    let mut bytes = bytes.to_vec();
    if status == StatusCode::OK {
        if cost.needs_stats() {
            bytes = match cost.judge(std::mem::take(&mut bytes)) {
                Ok(judged) => judged,
                Err(refusal) => {
                    tracing::info!("query in {workspace_id}: {}", refusal.message);
                    return query_refused(refusal);
                }
            };
        }
        if let Some(stripped) = strip.and_then(|kind| isolation::strip_label(kind, &bytes)) {
            bytes = stripped;
        }
        if is_query && let Some(fixed) = isolation::drop_annotation_positions(&bytes) {
            bytes = fixed;
        }
    }
    (status, [("content-type", content_type)], bytes).into_response()
}

/// A query refused for its cost, in Prometheus's error shape.
fn query_refused(refusal: quotas::QueryRefusal) -> Response {
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
    (
        status,
        [("content-type", "application/json")],
        serde_json::json!({
            "status": "error",
            "errorType": refusal.error_type,
            "error": refusal.message,
        })
        .to_string(),
    )
        .into_response()
}

/// `--max-query-samples` when amp-local must enforce it: below the Prometheus's own
/// `--query.max-samples` (read once from its flags), which otherwise refuses first with the
/// same answer, and no stats are needed. When its flags cannot be read, amp-local enforces it.
async fn samples_quota_of_ours(app: &App) -> Option<u64> {
    let ours = app.opts.limits.max_query_samples;
    let theirs = match app.backend_samples.get() {
        Some(theirs) => Some(theirs),
        None => match get(app, "/api/v1/status/flags", &[]).await {
            Ok((StatusCode::OK, _, bytes)) => serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["data"]["query.max-samples"].as_str()?.parse::<u64>().ok())
                .inspect(|theirs| app.backend_samples.set(*theirs)),
            _ => None,
        },
    };
    match theirs {
        Some(theirs) if ours >= theirs => None,
        _ => Some(ours),
    }
}

/// A time parameter of the Prometheus API: RFC 3339 or (fractional) seconds since the epoch.
fn api_time(text: &str) -> Option<f64> {
    if let Ok(secs) = text.parse::<f64>() {
        return secs.is_finite().then_some(secs);
    }
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some(t.unix_timestamp_nanos() as f64 / 1e9)
}

/// A range query longer than AMP's query time range: Cortex's 400 (its query-frontend's
/// `max_query_length`), which AMP answers. Unreadable times are left to Prometheus to refuse.
fn range_too_long(limits: &quotas::Limits, params: &[(String, String)]) -> Option<Response> {
    let param = |name: &str| {
        params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| api_time(v))
    };
    let (start, end) = (param("start")?, param("end")?);
    let length = end - start;
    let limit = limits.max_query_range;
    (length > limit.as_secs_f64()).then(|| {
        bad_data(format!(
            "the query time range exceeds the limit (query length: {}, limit: {})",
            quotas::go_duration(std::time::Duration::from_secs_f64(length)),
            quotas::go_duration(limit)
        ))
    })
}

/// A query's `timeout`: the caller's, capped by `--query-timeout`, which is also the default
/// (AMP's QueryMetrics: "defaults to and is capped by" the service's query timeout).
fn cap_timeout(limits: &quotas::Limits, params: &mut Vec<(String, String)>) {
    let cap = limits.query_timeout;
    let asked = match params.iter().rev().find(|(k, _)| k == "timeout") {
        None => None,
        Some((_, v)) => {
            let parsed = v
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(std::time::Duration::from_secs_f64)
                .or_else(|| ampkit::timespec::parse_duration(v).ok());
            // One Prometheus cannot read either: its own 400 says so.
            if parsed.is_none() {
                return;
            }
            parsed
        }
    };
    let timeout = asked.map_or(cap, |t| t.min(cap));
    params.retain(|(k, _)| k != "timeout");
    params.push((
        "timeout".to_owned(),
        format!("{}ms", timeout.as_millis().max(1)),
    ));
}

/// An expression our parser refused: Prometheus's own 400 (with its position) when it refuses
/// it too, else ours. Either way it is never evaluated unconfined.
async fn unparsable(app: &App, expr: &str, ours: &str) -> Response {
    match users_parse_error(app, expr).await {
        Some(theirs) => theirs,
        None => bad_data(format!("invalid parameter \"query\": {ours}")),
    }
}

/// Prometheus's own 400 for the expression as the user sent it (its position the user's),
/// when it refuses to parse it.
async fn users_parse_error(app: &App, expr: &str) -> Option<Response> {
    let params = [("query".to_owned(), expr.to_owned())];
    match get(app, "/api/v1/format_query", &params).await {
        Ok((status, content_type, bytes)) if status == StatusCode::BAD_REQUEST => {
            Some((status, [("content-type", content_type)], bytes).into_response())
        }
        _ => None,
    }
}

/// Metric metadata of the metrics this workspace has.
async fn metadata(app: &App, workspace_id: &str, params: &[(String, String)]) -> Response {
    let names = [(
        "match[]".to_owned(),
        isolation::workspace_selector(workspace_id),
    )];
    let ours: Vec<String> = match get(app, "/api/v1/label/__name__/values", &names).await {
        Ok((StatusCode::OK, _, bytes)) => serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| serde_json::from_value(v["data"].clone()).ok())
            .unwrap_or_default(),
        Ok((status, content_type, bytes)) => {
            return (status, [("content-type", content_type)], bytes).into_response();
        }
        Err(e) => return prometheus_down(&e),
    };
    let (status, content_type, bytes) = match get(app, "/api/v1/metadata", params).await {
        Ok(answer) => answer,
        Err(e) => return prometheus_down(&e),
    };
    if status != StatusCode::OK {
        return (status, [("content-type", content_type)], bytes).into_response();
    }
    let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if let Some(map) = value["data"].as_object_mut() {
        map.retain(|name, _| ours.contains(name));
        remote_written_metadata(app, workspace_id, params, map);
    }
    (
        status,
        [("content-type", "application/json".to_owned())],
        value.to_string(),
    )
        .into_response()
}

/// The workspace's remote-written metadata added to a metadata answer's `data` (the
/// Prometheus keeps none of it: [`quotas`] does), with the `metric`, `limit` and
/// `limit_per_metric` parameters applied to the whole, as Prometheus applies them.
fn remote_written_metadata(
    app: &App,
    workspace_id: &str,
    params: &[(String, String)],
    data: &mut serde_json::Map<String, serde_json::Value>,
) {
    let param = |name: &str| {
        params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let metric = param("metric").filter(|m| !m.is_empty());
    let now = std::time::Instant::now();
    for (name, metas) in app.ingest.metadata_of(&app.opts.limits, workspace_id, now) {
        if metric.is_some_and(|m| m != name) {
            continue;
        }
        let list = data
            .entry(name)
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        let Some(list) = list.as_array_mut() else {
            continue;
        };
        for meta in metas {
            let entry =
                serde_json::json!({"type": meta.kind, "help": meta.help, "unit": meta.unit});
            if !list.contains(&entry) {
                list.push(entry);
            }
        }
    }
    // Non-positive or unreadable limits mean no limit, as in Prometheus.
    let limit = |name: &str| {
        param(name)
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|n| *n > 0)
            .map(|n| n as usize)
    };
    if let Some(per_metric) = limit("limit_per_metric") {
        for list in data
            .values_mut()
            .filter_map(serde_json::Value::as_array_mut)
        {
            list.truncate(per_metric);
        }
    }
    if let Some(metrics) = limit("limit") {
        let extra: Vec<String> = data.keys().skip(metrics).cloned().collect();
        for name in extra {
            data.remove(&name);
        }
    }
}

/// GET `path` of the Prometheus with `params`.
async fn send_get(
    app: &App,
    path: &str,
    params: &[(String, String)],
) -> Result<reqwest::Response, reqwest::Error> {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let url = format!(
        "{}{path}?{query}",
        app.opts.prometheus_url.trim_end_matches('/')
    );
    app.http.get(url).send().await
}

/// An answer read whole: status, content type and body.
async fn buffered(
    upstream: reqwest::Response,
) -> Result<(StatusCode, String, Bytes), reqwest::Error> {
    let status =
        StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = upstream
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    Ok((status, content_type, upstream.bytes().await?))
}

/// GET `path` of the Prometheus with `params`, read whole.
async fn get(
    app: &App,
    path: &str,
    params: &[(String, String)],
) -> Result<(StatusCode, String, Bytes), reqwest::Error> {
    buffered(send_get(app, path, params).await?).await
}

/// The rule groups of this workspace's namespaces (Prometheus filters by rule file).
async fn rules(app: &App, workspace_id: &str, query: &str) -> Response {
    let files: Vec<String> = app
        .state()
        .workspaces
        .get(workspace_id)
        .map(|ws| {
            ws.rule_groups_namespaces
                .keys()
                .map(|ns| {
                    app.opts
                        .rules_dir
                        .join(App::rule_file_name(workspace_id, ns))
                        .to_string_lossy()
                        .into_owned()
                })
                .collect()
        })
        .unwrap_or_default();
    if files.is_empty() {
        return (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "success", "data": {"groups": []}})),
        )
            .into_response();
    }
    let mut params: Vec<String> = files
        .iter()
        .map(|f| {
            format!(
                "file[]={}",
                percent_encoding::utf8_percent_encode(f, SEGMENT)
            )
        })
        .collect();
    if !query.is_empty() {
        params.push(query.to_owned());
    }
    forward(
        app,
        &app.opts.prometheus_url,
        &Method::GET,
        "/api/v1/rules",
        &params.join("&"),
        &HeaderMap::new(),
        Bytes::new(),
    )
    .await
}

/// The active alerts of this workspace (those labelled with it by its rules).
async fn alerts(app: &App, workspace_id: &str) -> Response {
    let url = format!(
        "{}/api/v1/alerts",
        app.opts.prometheus_url.trim_end_matches('/')
    );
    let answer = match app.http.get(&url).send().await {
        Ok(r) => r.json::<serde_json::Value>().await,
        Err(e) => return prometheus_down(&e),
    };
    let mut answer = match answer {
        Ok(v) => v,
        Err(e) => return ApiError::internal(format!("Prometheus answered: {e}")).into_response(),
    };
    if let Some(list) = answer["data"]["alerts"].as_array_mut() {
        list.retain(|a| a["labels"][alerting::WORKSPACE_LABEL] == workspace_id);
    }
    (StatusCode::OK, axum::Json(answer)).into_response()
}

/// `/workspaces/<id>/alertmanager/api/v2/...`: the Alertmanager API, as AMP serves it.
/// Alerts and alert groups are limited to this workspace's.
async fn alertmanager(app: &App, req: DataRequest<'_>) -> Response {
    let method = req.method;
    let what = format!("alertmanager/api/v2/{}", req.rest.join("/"));
    let Some(am) = &app.opts.alertmanager_url else {
        return unknown_operation(format!("{what}: amp-local runs without --alertmanager-url"));
    };
    let rest: Vec<&str> = req.rest.iter().map(String::as_str).collect();
    let (allowed, scoped) = match rest.as_slice() {
        ["alerts"] | ["alerts", "groups"] => (method == Method::GET, true),
        ["silences"] => (method == Method::GET || method == Method::POST, false),
        ["silence", _] => (method == Method::GET || method == Method::DELETE, false),
        ["receivers"] | ["status"] => (method == Method::GET, false),
        _ => return unknown_operation(format!("No alertmanager operation {what}")),
    };
    if !allowed {
        return method_not_allowed(method, &what);
    }
    let path = format!(
        "/api/v2/{}",
        rest.iter()
            .map(|s| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string())
            .collect::<Vec<_>>()
            .join("/")
    );
    let mut query = req.query.to_owned();
    if scoped {
        let filter = format!("{}=\"{}\"", alerting::WORKSPACE_LABEL, req.workspace_id);
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str("filter=");
        query.push_str(&percent_encoding::utf8_percent_encode(&filter, SEGMENT).to_string());
    }
    forward(app, am, method, &path, &query, req.headers, req.body).await
}

fn prometheus_down(e: &reqwest::Error) -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailableException",
        format!("the program behind amp-local did not answer: {e}"),
    )
    .into_response()
}

/// Send the request on to `base` + `path`, and stream the answer back.
async fn forward(
    app: &App,
    base: &str,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let mut url = format!("{}{path}", base.trim_end_matches('/'));
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    let mut request = app.http.request(method.clone(), &url);
    for name in FORWARD_REQUEST {
        for value in headers.get_all(*name) {
            request = request.header(*name, value.clone());
        }
    }
    if method == Method::POST {
        request = request.body(body);
    }
    let upstream = match request.send().await {
        Ok(r) => r,
        Err(e) => return prometheus_down(&e),
    };
    let status = upstream.status();
    let mut response = Response::builder().status(status.as_u16());
    for name in FORWARD_RESPONSE {
        if let Some(v) = upstream.headers().get(*name) {
            response = response.header(*name, v.clone());
        }
    }
    response
        .body(stream_body(upstream))
        .unwrap_or_else(|e| ApiError::internal(e.to_string()).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(parts: &[&str]) -> Option<String> {
        upstream_path(&parts.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn maps_amp_paths_to_prometheus_paths() {
        assert_eq!(p(&["remote_write"]).as_deref(), Some("/api/v1/write"));
        assert_eq!(p(&["query_range"]).as_deref(), Some("/api/v1/query_range"));
        assert_eq!(
            p(&["label", "__name__", "values"]).as_deref(),
            Some("/api/v1/label/__name__/values")
        );
        assert_eq!(p(&["write"]), None);
        assert_eq!(p(&["status", "config"]), None);
    }
}
