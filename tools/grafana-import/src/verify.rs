//! `--verify`: does every panel show data? Each panel's queries are expanded as Grafana would
//! expand them (variables resolved against the workspace, built-in intervals for the panel's
//! width) and run over the dashboard's time range through the SigV4 Prometheus client, a
//! bounded number at a time. A Prometheus refusal is the panel's error; a workspace that
//! cannot be reached fails the run, since no panel would say anything true then.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use ampkit::error::{Error, ErrorKind, Result};
use ampkit::prom::{PromClient, parse_response, query_data};
use ampkit::timespec::{api_time, parse_duration, parse_time};

use crate::dashboard::{Placed, placed_panels};
use crate::panel_type::PanelType;
use crate::template::{Builtins, Variable, interpolate, legend};

/// How a verification runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    /// The datasource's scrape interval (Grafana's `timeInterval`): the shortest step, and the
    /// base of `$__rate_interval`.
    pub scrape: Duration,
    pub concurrency: usize,
    pub timeout: Duration,
}

/// The dashboard's own default range (`time.from`/`time.to`, e.g. `now-30m`/`now`).
pub fn dashboard_range(
    dashboard: &Value,
    now: OffsetDateTime,
) -> Result<(OffsetDateTime, OffsetDateTime)> {
    let at = |key: &str, default: &str| -> Result<OffsetDateTime> {
        let text = dashboard["time"][key].as_str().unwrap_or(default);
        // Grafana's rounding suffix (`now/d`) changes the range by less than the unit; the
        // verification does not need it.
        let text = text.split('/').next().unwrap_or(text);
        parse_time(text, now).map_err(|e| {
            Error::input(format!("the dashboard's time.{key}: {e}"))
                .with_hint("pass --from and --to to verify over another range")
        })
    };
    Ok((at("from", "now-6h")?, at("to", "now")?))
}

/// What a panel showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Empty,
    Error,
    Skipped,
}

/// One panel's report, as the section lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PanelReport {
    pub id: Option<u64>,
    pub title: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: Status,
    pub series: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<QueryReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryReport {
    pub ref_id: String,
    /// The query as sent, after interpolation.
    pub expr: String,
    pub series: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The section's `verify`: counts and every panel.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The verified range (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    pub ok: usize,
    pub empty: usize,
    pub error: usize,
    pub skipped: usize,
    pub panels: Vec<PanelReport>,
}

/// A series as drawn: its legend, its points (Unix seconds, value), and the query (refId) it
/// came from, since two queries of one panel can return the same label set.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub ref_id: String,
}

/// A verified panel with its data, for the snapshot.
#[derive(Debug, Clone)]
pub struct Panel {
    pub placed: Placed,
    pub report: PanelReport,
    pub series: Vec<Series>,
}

/// A verified dashboard.
#[derive(Debug, Clone)]
pub struct Verified {
    pub title: String,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    pub variables: Vec<Variable>,
    pub panels: Vec<Panel>,
}

impl Verified {
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            from: Some(ampkit::timespec::rfc3339(self.start)),
            to: Some(ampkit::timespec::rfc3339(self.end)),
            ..Summary::default()
        };
        for p in &self.panels {
            match p.report.status {
                Status::Ok => s.ok += 1,
                Status::Empty => s.empty += 1,
                Status::Error => s.error += 1,
                Status::Skipped => s.skipped += 1,
            }
            s.panels.push(p.report.clone());
        }
        s
    }
}

/// One query to run: which panel, which target, what to send.
struct Job {
    panel: usize,
    ref_id: String,
    expr: String,
    legend: String,
    instant: bool,
    step: Duration,
}

/// Verify `dashboard` against the workspace behind `client`.
pub async fn verify(client: &PromClient, dashboard: &Value, options: &Options) -> Result<Verified> {
    let range = (options.end - options.start)
        .try_into()
        .unwrap_or(Duration::from_secs(1));
    let variables = resolve_variables(client, dashboard, options, range).await?;
    let placed = placed_panels(dashboard);
    let mut panels = Vec::with_capacity(placed.len());
    let mut jobs = Vec::new();
    for (index, placed) in placed.into_iter().enumerate() {
        let panel = &placed.panel;
        let kind = panel["type"].as_str().unwrap_or("graph").to_owned();
        let mut report = PanelReport {
            id: panel["id"].as_u64(),
            title: interpolate(
                panel["title"].as_str().unwrap_or_default(),
                &variables,
                &Builtins::for_panel(range, 1, options.scrape, options.scrape),
            ),
            kind: kind.clone(),
            status: Status::Skipped,
            series: 0,
            error: None,
            reason: None,
            queries: Vec::new(),
        };
        let skip_reason = if !PanelType::of(&kind).queries() {
            Some(format!("a {kind} panel has no queries"))
        } else if panel.get("libraryPanel").is_some() && panel.get("targets").is_none() {
            Some("a library panel: its queries live in the library".to_owned())
        } else if !is_prometheus(&panel["datasource"]) {
            Some(format!(
                "its datasource is not Prometheus: {}",
                panel["datasource"]
            ))
        } else {
            None
        };
        if skip_reason.is_none() {
            // Grafana asks for about one point per pixel; a 24-column row is ~1600 px wide.
            let width_px = placed.w * 1600 / 24;
            let max_points = panel["maxDataPoints"].as_u64().unwrap_or(width_px).max(1);
            let panel_min = min_interval(&panel["interval"], &variables).unwrap_or(options.scrape);
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap_or_default();
                if expr.trim().is_empty()
                    || target["hide"].as_bool() == Some(true)
                    || !is_prometheus(&target["datasource"])
                {
                    continue;
                }
                let min = min_interval(&target["interval"], &variables).unwrap_or(panel_min);
                let builtins = Builtins::for_panel(range, max_points, min, options.scrape);
                // Prometheus refuses more than 11,000 points per series.
                let step = builtins
                    .interval
                    .max(range / 11_000)
                    .max(Duration::from_millis(1));
                jobs.push(Job {
                    panel: index,
                    ref_id: target["refId"].as_str().unwrap_or("A").to_owned(),
                    expr: interpolate(expr, &variables, &builtins),
                    legend: target["legendFormat"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    instant: target["instant"].as_bool() == Some(true)
                        && target["range"].as_bool() != Some(true),
                    step,
                });
            }
        }
        report.reason = skip_reason.or_else(|| {
            (!jobs.iter().any(|j| j.panel == index)).then(|| "no Prometheus query".to_owned())
        });
        panels.push(Panel {
            placed,
            report,
            series: Vec::new(),
        });
    }

    let results: Vec<(Job, Result<Vec<Series>>)> = futures_util::stream::iter(jobs)
        .map(|job| async {
            let result = run_query(client, &job, options).await;
            (job, result)
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    let mut results = results;
    // Reports list queries in the dashboard's order, whatever order they finished in.
    results.sort_by(|(a, _), (b, _)| (a.panel, &a.ref_id).cmp(&(b.panel, &b.ref_id)));
    for (job, result) in results {
        let panel = &mut panels[job.panel];
        match result {
            Ok(series) => {
                let count = series.len();
                panel.series.extend(series.into_iter().map(|s| Series {
                    ref_id: job.ref_id.clone(),
                    ..s
                }));
                panel.report.queries.push(QueryReport {
                    ref_id: job.ref_id,
                    expr: job.expr,
                    series: count,
                    error: None,
                });
            }
            Err(e) if matches!(e.kind, ErrorKind::Input | ErrorKind::NotFound) => {
                panel.report.queries.push(QueryReport {
                    ref_id: job.ref_id,
                    expr: job.expr,
                    series: 0,
                    error: Some(e.message),
                });
            }
            Err(e) => return Err(e),
        }
    }
    for panel in &mut panels {
        let report = &mut panel.report;
        if report.queries.is_empty() {
            continue;
        }
        report.series = report.queries.iter().map(|q| q.series).sum();
        report.error = report.queries.iter().find_map(|q| q.error.clone());
        report.status = if report.error.is_some() {
            Status::Error
        } else if report.series > 0 {
            Status::Ok
        } else {
            Status::Empty
        };
        report.reason = None;
    }
    Ok(Verified {
        title: dashboard["title"]
            .as_str()
            .unwrap_or("dashboard")
            .to_owned(),
        start: options.start,
        end: options.end,
        variables,
        panels,
    })
}

/// A datasource reference that a Prometheus query can go through: none (the default), a
/// variable, our Prometheus, or a legacy name (rewritten to ours before this runs).
fn is_prometheus(datasource: &Value) -> bool {
    match datasource {
        Value::Null => true,
        Value::String(name) => !matches!(name.as_str(), "-- Grafana --" | "-- Dashboard --"),
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            None => true,
            Some(kind) => {
                kind.contains("prometheus")
                    || kind == "datasource"
                        && o.get("uid").and_then(Value::as_str) == Some("-- Mixed --")
            }
        },
        _ => false,
    }
}

/// A panel's or query's minimum interval (`interval`: `30s`, `>10s`, `$var`), if it sets one.
fn min_interval(value: &Value, variables: &[Variable]) -> Option<Duration> {
    let text = value.as_str()?.trim();
    let none = Builtins {
        interval: Duration::ZERO,
        rate_interval: Duration::ZERO,
        range: Duration::ZERO,
    };
    let text = interpolate(text, variables, &none);
    parse_duration(text.trim_start_matches('>')).ok()
}

async fn run_query(client: &PromClient, job: &Job, options: &Options) -> Result<Vec<Series>> {
    let deadline = Instant::now() + options.timeout;
    let body = if job.instant {
        let form = [("query", job.expr.clone()), ("time", api_time(options.end))];
        client
            .post_form(&["api", "v1", "query"], &form, deadline)
            .await?
    } else {
        // Aligned to the step so that repeated runs hit the same evaluation times. Grafana
        // floors the end too, which hides samples newer than the last whole step; a check
        // right after the first scrapes (the recipe's) must see them, so the end is rounded up.
        let step = job.step.as_secs_f64();
        let seconds = |t: OffsetDateTime| t.unix_timestamp() as f64 / step;
        let form = [
            ("query", job.expr.clone()),
            (
                "start",
                format!("{}", seconds(options.start).floor() * step),
            ),
            ("end", format!("{}", seconds(options.end).ceil() * step)),
            ("step", format!("{step}")),
        ];
        client
            .post_form(&["api", "v1", "query_range"], &form, deadline)
            .await?
    };
    let success = parse_response(&body, Some(&job.expr))?;
    let data = query_data(success.data)?;
    series_of(data.result.get(), &job.legend)
}

#[derive(Deserialize)]
struct RawSeries {
    #[serde(default)]
    metric: Map<String, Value>,
    #[serde(default)]
    values: Vec<(f64, String)>,
    #[serde(default)]
    value: Option<(f64, String)>,
}

/// Series of a matrix or vector result, named by the legend format (or their labels).
fn series_of(result: &str, legend_format: &str) -> Result<Vec<Series>> {
    let raw: Vec<RawSeries> = match serde_json::from_str(result) {
        Ok(raw) => raw,
        // A scalar or string result: one point.
        Err(_) => {
            let (t, v): (f64, String) = serde_json::from_str(result)
                .map_err(|e| Error::remote(format!("an answer that is not a query result: {e}")))?;
            return Ok(vec![Series {
                ref_id: String::new(),
                name: "value".into(),
                points: vec![(t, v.parse().unwrap_or(f64::NAN))],
            }]);
        }
    };
    Ok(raw
        .into_iter()
        .map(|s| {
            let points = s
                .values
                .into_iter()
                .chain(s.value)
                .map(|(t, v)| (t, v.parse().unwrap_or(f64::NAN)))
                .collect();
            let name = if legend_format.trim().is_empty() || legend_format == "__auto" {
                series_name(&s.metric)
            } else {
                legend(legend_format, &s.metric)
            };
            Series {
                name,
                points,
                ref_id: String::new(),
            }
        })
        .collect())
}

/// `metric{a="b", ...}`, as Grafana names a series without a legend.
fn series_name(metric: &Map<String, Value>) -> String {
    let name = metric.get("__name__").and_then(Value::as_str).unwrap_or("");
    let labels: Vec<String> = metric
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or_default()))
        .collect();
    if labels.is_empty() {
        if name.is_empty() {
            "{}".into()
        } else {
            name.into()
        }
    } else {
        format!("{name}{{{}}}", labels.join(", "))
    }
}

/// The dashboard's variables with their values for this run, in order (a variable may use the
/// ones before it).
async fn resolve_variables(
    client: &PromClient,
    dashboard: &Value,
    options: &Options,
    range: Duration,
) -> Result<Vec<Variable>> {
    let mut resolved: Vec<Variable> = Vec::new();
    let builtins = Builtins::for_panel(range, 1000, options.scrape, options.scrape);
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(name) = var["name"].as_str() else {
            continue;
        };
        let kind = var["type"].as_str().unwrap_or("query");
        let query = match &var["query"] {
            Value::String(q) => q.clone(),
            Value::Object(o) => o
                .get("query")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            _ => String::new(),
        };
        let options_list: Vec<String> = match kind {
            "query" => {
                let query = interpolate(&query, &resolved, &builtins);
                let values = query_variable(client, &query, options).await.map_err(|e| {
                    Error::new(
                        e.kind,
                        format!("variable `{name}` ({query}): {}", e.message),
                    )
                })?;
                let values = apply_regex(name, var["regex"].as_str().unwrap_or_default(), values)?;
                sort_values(values, var["sort"].as_u64().unwrap_or(0))
            }
            "custom" => query
                .split(',')
                .map(|o| o.rsplit(" : ").next().unwrap_or(o).trim().to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
            "interval" => query
                .split(',')
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty() && o != "auto")
                .collect(),
            "constant" | "textbox" => vec![query.clone()],
            // A datasource variable names our datasource; ad hoc filters add no text.
            _ => continue,
        };
        resolved.push(select_current(name, var, options_list));
    }
    Ok(resolved)
}

/// The variable as the dashboard's saved selection leaves it: `All`, the saved values that
/// still exist, or else the first option.
fn select_current(name: &str, var: &Value, options: Vec<String>) -> Variable {
    let include_all = var["includeAll"].as_bool().unwrap_or(false);
    let multi = var["multi"].as_bool().unwrap_or(false);
    let saved: Vec<String> = match &var["current"]["value"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let wants_all = saved.iter().any(|v| v == "$__all");
    let all_value = var["allValue"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    if include_all && (wants_all || saved.is_empty()) {
        return Variable {
            name: name.to_owned(),
            values: options,
            all: true,
            all_value,
            multi: true,
        };
    }
    let kept: Vec<String> = saved.into_iter().filter(|v| options.contains(v)).collect();
    let values = if kept.is_empty() {
        options.into_iter().take(1).collect()
    } else {
        kept
    };
    Variable {
        name: name.to_owned(),
        values,
        all: false,
        all_value: None,
        multi: multi || include_all,
    }
}

/// A variable's `regex` filter (`/pattern/flags`): values that match, or their first capture
/// (or the `value` named one).
fn apply_regex(name: &str, pattern: &str, values: Vec<String>) -> Result<Vec<String>> {
    let pattern = pattern.trim();
    if pattern.is_empty() {
        return Ok(values);
    }
    let (body, flags) = match pattern.strip_prefix('/').and_then(|p| p.rsplit_once('/')) {
        Some((body, flags)) => (body, flags),
        None => (pattern, ""),
    };
    let body = if flags.contains('i') {
        format!("(?i){body}")
    } else {
        body.to_owned()
    };
    let re = regex::Regex::new(&body).map_err(|e| {
        Error::input(format!(
            "variable `{name}`: its regex `{pattern}` does not compile: {e}"
        ))
    })?;
    let mut out = Vec::new();
    for value in values {
        if let Some(caps) = re.captures(&value) {
            let chosen = caps
                .name("value")
                .or_else(|| caps.name("text"))
                .or_else(|| caps.get(1))
                .or_else(|| caps.get(0))
                .map(|m| m.as_str().to_owned());
            if let Some(v) = chosen
                && !out.contains(&v)
            {
                out.push(v);
            }
        }
    }
    Ok(out)
}

fn sort_values(mut values: Vec<String>, sort: u64) -> Vec<String> {
    let number = |s: &String| s.parse::<f64>().unwrap_or(f64::NAN);
    match sort {
        1 | 5 => values.sort(),
        2 | 6 => values.sort_by(|a, b| b.cmp(a)),
        3 => values.sort_by(|a, b| number(a).total_cmp(&number(b))),
        4 => values.sort_by(|a, b| number(b).total_cmp(&number(a))),
        _ => {}
    }
    values
}

/// Split `f(a, b)` arguments at the top-level comma (selectors hold commas in braces).
fn split_args(args: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, None, 0);
    for (i, c) in args.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'' | '`') => quote = Some(c),
            (None, '{' | '(' | '[') => depth += 1,
            (None, '}' | ')' | ']') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(args[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(args[start..].trim());
    parts.retain(|p| !p.is_empty());
    parts
}

/// The values of a query variable: Grafana's Prometheus variable functions.
async fn query_variable(client: &PromClient, query: &str, o: &Options) -> Result<Vec<String>> {
    let deadline = Instant::now() + o.timeout;
    let window = [("start", api_time(o.start)), ("end", api_time(o.end))];
    let call = |name: &str| {
        let q = query.trim();
        q.strip_prefix(name)
            .and_then(|r| r.trim_start().strip_prefix('('))
            .and_then(|r| r.strip_suffix(')'))
            .map(str::to_owned)
    };
    let strings = |body: &[u8]| -> Result<Vec<String>> {
        let data = parse_response(body, None)?.data;
        serde_json::from_str(data.get())
            .map_err(|e| Error::remote(format!("an answer that is not a list of names: {e}")))
    };
    if let Some(args) = call("label_values") {
        let args = split_args(&args);
        let (selector, label) = match args.as_slice() {
            [label] => (None, *label),
            [selector, label] => (Some(*selector), *label),
            _ => {
                return Err(Error::input(format!(
                    "`{query}`: label_values takes (label) or (metric, label)"
                )));
            }
        };
        let mut form: Vec<(&str, String)> = window.to_vec();
        if let Some(selector) = selector {
            form.push(("match[]", selector.to_owned()));
        }
        let body = client
            .get(&["api", "v1", "label", label, "values"], &form, deadline)
            .await?;
        return strings(&body);
    }
    if let Some(args) = call("label_names") {
        let mut form: Vec<(&str, String)> = window.to_vec();
        if !args.trim().is_empty() {
            form.push(("match[]", args.trim().to_owned()));
        }
        let body = client
            .post_form(&["api", "v1", "labels"], &form, deadline)
            .await?;
        return strings(&body);
    }
    if let Some(args) = call("metrics") {
        let body = client
            .get(
                &["api", "v1", "label", "__name__", "values"],
                &window,
                deadline,
            )
            .await?;
        let re = regex::Regex::new(args.trim()).map_err(|e| {
            Error::input(format!(
                "`{query}`: the metrics() regex does not compile: {e}"
            ))
        })?;
        return Ok(strings(&body)?
            .into_iter()
            .filter(|m| re.is_match(m))
            .collect());
    }
    if let Some(expr) = call("query_result") {
        let form = [("query", expr.clone()), ("time", api_time(o.end))];
        let body = client
            .post_form(&["api", "v1", "query"], &form, deadline)
            .await?;
        let data = query_data(parse_response(&body, Some(&expr))?.data)?;
        let raw: Vec<RawSeries> = serde_json::from_str(data.result.get()).unwrap_or_default();
        return Ok(raw
            .into_iter()
            .map(|s| {
                let (t, v) = s.value.unwrap_or_default();
                format!("{} {v} {}", series_name(&s.metric), (t * 1000.0) as i64)
            })
            .collect());
    }
    // Anything else is a series selector: its series, named as Grafana names them.
    let mut form: Vec<(&str, String)> = window.to_vec();
    form.push(("match[]", query.trim().to_owned()));
    let body = client
        .post_form(&["api", "v1", "series"], &form, deadline)
        .await?;
    let data = parse_response(&body, Some(query))?.data;
    let series: Vec<Map<String, Value>> = serde_json::from_str(data.get()).unwrap_or_default();
    Ok(series.iter().map(series_name).collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selector_arguments_split_at_top_level_commas() {
        assert_eq!(
            split_args("envoy_x{a=\"1,2\", b=~\"c\"}, service"),
            vec!["envoy_x{a=\"1,2\", b=~\"c\"}", "service"]
        );
        assert_eq!(split_args("namespace"), vec!["namespace"]);
    }

    #[test]
    fn saved_selections_become_values() {
        let opts = vec!["dj".to_owned(), "jazz".to_owned(), "metal".to_owned()];
        let all = json!({"includeAll": true, "multi": true, "allValue": ".*", "current": {"value": ["$__all"]}});
        let v = select_current("s", &all, opts.clone());
        assert!(v.all && v.all_value.as_deref() == Some(".*") && v.values.len() == 3);
        let some = json!({"multi": true, "current": {"value": ["jazz", "gone"]}});
        assert_eq!(
            select_current("s", &some, opts.clone()).values,
            vec!["jazz"]
        );
        let stale = json!({"current": {"value": "gone"}});
        assert_eq!(select_current("s", &stale, opts).values, vec!["dj"]);
    }

    #[test]
    fn variable_regexes_filter_and_capture() {
        let values = vec!["ns/dj".to_owned(), "ns/jazz".to_owned(), "other".to_owned()];
        assert_eq!(
            apply_regex("v", "/ns\\/(.*)/", values.clone()).unwrap(),
            vec!["dj", "jazz"]
        );
        assert_eq!(apply_regex("v", "/OTHER/i", values).unwrap(), vec!["other"]);
        assert_eq!(apply_regex("v", "(", vec![]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn series_are_named_by_legend_or_labels() {
        let result = r#"[{"metric":{"__name__":"up","job":"envoy"},"values":[[1,"1"],[2,"0.5"]]}]"#;
        let s = series_of(result, "").unwrap();
        assert_eq!(s[0].name, "up{job=\"envoy\"}");
        assert_eq!(s[0].points, vec![(1.0, 1.0), (2.0, 0.5)]);
        assert_eq!(series_of(result, "{{job}} up").unwrap()[0].name, "envoy up");
        let vector = r#"[{"metric":{},"value":[3,"7"]}]"#;
        assert_eq!(series_of(vector, "").unwrap()[0].points, vec![(3.0, 7.0)]);
    }

    #[test]
    fn the_dashboard_range_comes_from_its_time() {
        let now = OffsetDateTime::from_unix_timestamp(10_000).unwrap();
        let d = json!({"time": {"from": "now-30m", "to": "now/m"}});
        let (start, end) = dashboard_range(&d, now).unwrap();
        assert_eq!((end - start).whole_seconds(), 1800);
        let bad = json!({"time": {"from": "yesterday"}});
        assert_eq!(dashboard_range(&bad, now).unwrap_err().exit_code(), 2);
    }
}
