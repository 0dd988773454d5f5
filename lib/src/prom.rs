//! The Prometheus HTTP API client: POST form bodies, SigV4 when asked, errors mapped to exit
//! codes, and response bodies kept as one byte buffer.
//!
//! Queries go as `application/x-www-form-urlencoded` bodies, never in the query string, so
//! braces, quotes, `=~`, `+`, spaces and non-ASCII reach Prometheus exactly as typed (awscurl's
//! query strings break on them). A response is read once into a buffer and parsed with its
//! `data` borrowed as raw JSON: a million-sample range result is never expanded into a tree,
//! so memory stays near the size of the response itself.

use std::time::{Duration, Instant};

use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{Error, ErrorKind, Result};
use crate::http::{SignedClient, transport_error};

/// A Prometheus-compatible API rooted at a base URL (a workspace's `prometheusEndpoint`, or a
/// Prometheus server's root).
pub struct PromClient {
    client: SignedClient,
    base: Url,
}

/// A successful API answer: `data` borrowed from the response body.
#[derive(Debug)]
pub struct Success<'a> {
    pub data: &'a RawValue,
    pub warnings: Vec<String>,
}

/// `data` of a query or range query.
#[derive(Debug, Deserialize)]
pub struct QueryData<'a> {
    #[serde(rename = "resultType")]
    pub result_type: String,
    #[serde(borrow)]
    pub result: &'a RawValue,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    status: String,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(rename = "errorType", default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

/// The error shape of AWS services in front of the API (AMP answers 403/404 this way).
#[derive(Deserialize)]
struct AwsErrorBody {
    #[serde(alias = "Message")]
    message: String,
}

impl PromClient {
    pub fn new(client: SignedClient, base: &str) -> Result<Self> {
        let mut text = base.trim().to_owned();
        if !text.ends_with('/') {
            text.push('/');
        }
        let base = Url::parse(&text).map_err(|e| {
            Error::usage(format!("the endpoint `{base}` is not a valid URL: {e}"))
                .with_hint("give a URL such as https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-.../ or http://127.0.0.1:9090")
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(
                Error::usage(format!("the endpoint `{base}` is not an http(s) URL"))
                    .with_hint("give an http:// or https:// URL"),
            );
        }
        Ok(PromClient { client, base })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    fn url(&self, segments: &[&str]) -> Result<Url> {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().map_err(|_| {
                Error::usage(format!("the endpoint `{}` cannot take a path", self.base))
            })?;
            path.pop_if_empty();
            path.extend(segments);
        }
        Ok(url)
    }

    /// POST a form to `api/v1/<path...>`; the whole body, or the mapped error.
    pub async fn post_form(
        &self,
        segments: &[&str],
        form: &[(&str, String)],
        deadline: Instant,
    ) -> Result<Vec<u8>> {
        let url = self.url(segments)?;
        let request = self
            .client
            .http()
            .post(url.clone())
            .form(form)
            .timeout(remaining(deadline, &url)?)
            .build()
            .map_err(|e| Error::internal(format!("could not build the request to {url}: {e}")))?;
        self.send(request, &url).await
    }

    /// GET `api/v1/<path...>` with query parameters (for endpoints that take only GET).
    pub async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        deadline: Instant,
    ) -> Result<Vec<u8>> {
        let mut url = self.url(segments)?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let request = self
            .client
            .http()
            .get(url.clone())
            .timeout(remaining(deadline, &url)?)
            .build()
            .map_err(|e| Error::internal(format!("could not build the request to {url}: {e}")))?;
        self.send(request, &url).await
    }

    async fn send(&self, request: reqwest::Request, url: &Url) -> Result<Vec<u8>> {
        let mut response = self.client.execute(request).await?;
        let status = response.status();
        let capacity = response
            .content_length()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0);
        let mut body = Vec::with_capacity(capacity);
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport_error(&e, url.as_str()))?
        {
            body.extend_from_slice(&chunk);
        }
        check_status(status, &body, url)?;
        Ok(body)
    }
}

fn remaining(deadline: Instant, url: &Url) -> Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(
            Error::remote(format!("{url}: timed out before the request could be sent"))
                .with_hint("raise --timeout"),
        );
    }
    Ok(left)
}

/// Errors for answers that are not a Prometheus success envelope.
fn check_status(status: StatusCode, body: &[u8], url: &Url) -> Result<()> {
    if status.is_success() {
        return Ok(());
    }
    // Prometheus's own error envelopes are mapped by `parse_response`.
    if let Ok(envelope) = serde_json::from_slice::<Envelope<'_>>(body)
        && envelope.status == "error"
    {
        return Ok(());
    }
    let detail = serde_json::from_slice::<AwsErrorBody>(body)
        .map(|b| b.message)
        .unwrap_or_else(|_| snippet(body));
    let message = format!("{url}: HTTP {status}: {detail}");
    // AMP's refusal of the caller's permissions reads as IAM's does; say it as the SDK tools do
    // (access-denied, exit 2: a grant fixes it, not a retry).
    if status == StatusCode::FORBIDDEN && detail.contains("is not authorized to perform") {
        return Err(crate::aws::Denial::parse(&detail).error(url, &detail));
    }
    Err(match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::remote(message).with_hint(
            "check the credentials and region used for signing (AWS_PROFILE, AWS_ACCESS_KEY_ID, --region), their aps:QueryMetrics permissions, or pass --no-sign for an endpoint without authentication",
        ),
        StatusCode::NOT_FOUND => Error::not_found(message)
            .with_hint("check the workspace id or URL (--workspace-id, --url, workspace.prometheusEndpoint)"),
        _ => Error::remote(message),
    })
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    let text = text.trim();
    if text.is_empty() {
        "empty response".into()
    } else {
        text.to_owned()
    }
}

/// Parse a response body: `data` of a success, or the Prometheus error mapped to our kinds
/// (bad PromQL is the caller's input: exit 2; timeouts and server trouble: exit 1).
pub fn parse_response<'a>(body: &'a [u8], expr: Option<&str>) -> Result<Success<'a>> {
    let envelope: Envelope<'a> = serde_json::from_slice(body).map_err(|e| {
        Error::remote(format!(
            "the endpoint did not answer with the Prometheus API's JSON ({e}): {}",
            snippet(body)
        ))
        .with_hint("check that the URL is a Prometheus API root or an AMP workspace endpoint")
    })?;
    if envelope.status == "success" {
        let data = envelope
            .data
            .ok_or_else(|| Error::remote("the Prometheus API answered success without `data`"))?;
        return Ok(Success {
            data,
            warnings: envelope.warnings,
        });
    }
    let error_type = envelope.error_type.unwrap_or_else(|| "unknown".into());
    let message = envelope.error.unwrap_or_else(|| "no message".into());
    let kind = match error_type.as_str() {
        "bad_data" | "execution" => ErrorKind::Input,
        "not_found" => ErrorKind::NotFound,
        _ => ErrorKind::Remote,
    };
    let mut err = Error::new(
        kind,
        format!("Prometheus rejected the request ({error_type}): {message}"),
    );
    if let Some(hint) = expr.and_then(|e| position_hint(&message, e)) {
        err = err.with_hint(hint);
    } else if error_type == "timeout" {
        err = err.with_hint(
            "narrow the query (shorter range, larger step, fewer series) or raise --timeout",
        );
    }
    Err(err)
}

/// Parse the `data` of a query into its result type and raw result.
pub fn query_data(data: &RawValue) -> Result<QueryData<'_>> {
    serde_json::from_str(data.get())
        .map_err(|e| Error::remote(format!("the query answer has no resultType/result: {e}")))
}

/// Prometheus reports parse errors as `LINE:COL: parse error: ...`; point at that place.
pub fn position_hint(message: &str, expr: &str) -> Option<String> {
    let (line, col) = find_position(message)?;
    let line_text = expr.lines().nth(line.checked_sub(1)?)?;
    // Prometheus counts columns in bytes from 1.
    let at = col.saturating_sub(1).min(line_text.len());
    let at = (0..=at).rev().find(|i| line_text.is_char_boundary(*i))?;
    let (before, after) = line_text.split_at(at);
    Some(format!(
        "the error is at line {line}, column {col} of the expression: `{before}` >>> `{after}`"
    ))
}

fn find_position(message: &str) -> Option<(usize, usize)> {
    let bytes = message.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_digit()) {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if bytes.get(i) == Some(&b':') {
                let col_start = i + 1;
                let mut j = col_start;
                while j < bytes.len() && bytes[j].is_ascii_digit() {
                    j += 1;
                }
                if j > col_start && matches!(bytes.get(j), Some(b':') | Some(b'-')) {
                    let line = message[start..i].parse().ok()?;
                    let col = message[col_start..j].parse().ok()?;
                    return Some((line, col));
                }
            }
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn success_borrows_data_without_copying() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"\u00e9"},"value":[1,"2"]}]}}"#;
        let ok = parse_response(body, None).unwrap();
        let data = query_data(ok.data).unwrap();
        assert_eq!(data.result_type, "vector");
        assert_eq!(
            data.result.get(),
            r#"[{"metric":{"a":"\u00e9"},"value":[1,"2"]}]"#
        );
    }

    #[test]
    fn bad_promql_is_input_with_the_position() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:10: parse error: unexpected end of input in aggregation"}"#;
        let err = parse_response(body, Some("sum(rate(")).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.message.contains("1:10: parse error"), "{}", err.message);
        let hint = err.hint.unwrap();
        assert!(hint.contains("line 1, column 10"), "{hint}");
        assert!(hint.contains("`sum(rate(` >>> ``"), "{hint}");
    }

    #[test]
    fn timeouts_are_remote() {
        let body = br#"{"status":"error","errorType":"timeout","error":"query timed out in query execution"}"#;
        assert_eq!(parse_response(body, Some("up")).unwrap_err().exit_code(), 1);
    }

    #[test]
    fn non_json_answers_are_remote_and_quoted() {
        let err = parse_response(b"<html>bad gateway</html>", None).unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(err.message.contains("bad gateway"));
    }

    #[test]
    fn positions_in_multiline_and_unicode_expressions() {
        assert_eq!(find_position("1:5: parse error"), Some((1, 5)));
        assert_eq!(find_position("x 2:3-2:7: bad"), Some((2, 3)));
        assert_eq!(find_position("at 10.5s: nothing"), None);
        let hint = position_hint("1:8: parse error: x", "up{a=\"é\"} +").unwrap();
        assert!(hint.contains("column 8"), "{hint}");
    }
}
