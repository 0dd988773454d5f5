//! AMP's data plane under `/workspaces/<id>/api/v1/`, forwarded to the real Prometheus.
//!
//! `remote_write` goes to the receiver's `/api/v1/write` with the body and the remote-write
//! headers untouched; the query API (`query`, `query_range`, `series`, `labels`,
//! `label/<name>/values`, `metadata`, in GET and POST-form forms) goes to the same paths of
//! the Prometheus. Answers stream back as they arrive: a range query can be large.
//! A workspace that does not exist, or is not ACTIVE, answers 404 as AMP does.

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::{ApiError, App, stream_body};

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

pub async fn handle(
    app: &App,
    method: &Method,
    workspace_id: &str,
    rest: &[String],
    query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let now = super::store::now_secs();
    let active = app
        .state()
        .workspaces
        .get(workspace_id)
        .is_some_and(|ws| ws.is_active(app.opts.activation_delay, now));
    if !active {
        return workspace_not_found(workspace_id).into_response();
    }
    let Some(path) = upstream_path(rest) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            format!("No data-plane operation api/v1/{}", rest.join("/")),
        )
        .into_response();
    };
    let is_write = path == "/api/v1/write";
    let allowed = if is_write {
        method == Method::POST
    } else {
        method == Method::GET || method == Method::POST
    };
    if !allowed {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "ValidationException",
            format!("{method} is not allowed on api/v1/{}", rest.join("/")),
        )
        .into_response();
    }

    let mut url = format!("{}{path}", app.opts.prometheus_url.trim_end_matches('/'));
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
        Err(e) => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
                format!("the Prometheus behind amp-local did not answer: {e}"),
            )
            .into_response();
        }
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
