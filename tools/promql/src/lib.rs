//! `promql`: SigV4-signed PromQL against an AMP workspace (or any Prometheus), from scripts.
//!
//! This is the role awscurl plays in the recipe, without its failure modes: queries travel as
//! POST form bodies (any PromQL survives), relative times resolve against one clock, errors
//! carry Prometheus's message and position with an exit code a script can branch on, and a
//! run costs milliseconds (one thread, environment credentials first, no SDK config), so it
//! can sit in a shell loop. `wait` turns "metrics are flowing" into a pipeline step.
//!
//! The answer goes into the document's `query` section (`{expr, kind, time|start/end/step,
//! resultType, result}` with `result` exactly as Prometheus returned it); `--raw` prints only
//! the API's `data`, `--format table` a table.

pub mod format;

use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use ampkit::amp::{self, WorkspaceSection};
use ampkit::aws::{AwsArgs, resolve_region};
use ampkit::cli::{self, Runtime, Tool};
use ampkit::doc::StateDoc;
use ampkit::error::{Error, ErrorKind, Result};
use ampkit::http::SignedClient;
use ampkit::poll::{self, Attempt, Pace, Progress};
use ampkit::prom::{PromClient, parse_response, query_data};
use ampkit::timespec::{self, parse_duration};

/// The program's name, as in the ledger and in error lines.
pub const NAME: &str = "promql";

/// What the frame needs to know of this tool besides its flags.
pub const TOOL: Tool = Tool {
    name: NAME,
    runtime: Runtime::CurrentThread,
    examples: &[
        "amp-workspace ensure --alias AMP-APPMESH | promql query 'sum(rate(envoy_http_downstream_rq_total[1m]))'",
        "promql --workspace-id ws-1234 range 'up' --start -1h --step 1m --format table",
        "promql wait 'sum(envoy_http_downstream_rq_total) > 0' --timeout 5m < state.json",
    ],
};

/// PromQL queries, signed with SigV4 (service `aps`) using the AWS credential chain. The
/// endpoint comes from the document's workspace.prometheusEndpoint, --workspace-id or --url;
/// the answer goes into the `query` section of the document.
#[derive(clap::Parser, Debug)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub options: Options,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// The SigV4 signing name of AMP.
pub const SIGNING_NAME: &str = "aps";

/// How the answer is printed.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// The state document with the `query` section
    #[default]
    Json,
    /// Aligned columns for people (stdout is then not the document)
    Table,
}

/// Where to send queries and how to print answers (shared by all subcommands).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Options {
    /// Prometheus API root to query instead of the document's workspace, e.g. http://127.0.0.1:9090
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// AMP workspace to query [default: workspace.prometheusEndpoint of the document]
    #[arg(long, global = true, value_name = "ID")]
    pub workspace_id: Option<String>,
    /// Do not sign requests (a self-hosted Prometheus without SigV4)
    #[arg(long, global = true)]
    pub no_sign: bool,
    /// Print only the API's `data` JSON (for jq); stdout is then not the document
    #[arg(long, global = true)]
    pub raw: bool,
    /// Output format
    #[arg(long, global = true, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// Give up after this long, e.g. 30s [default: 2m for wait, 1m otherwise]
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
}

/// Time range flags of series/labels/label-values.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Span {
    /// Start of the time range (now, -5m, now-1h, RFC 3339, Unix seconds)
    #[arg(long, allow_hyphen_values = true, value_name = "TIME")]
    pub start: Option<String>,
    /// End of the time range
    #[arg(long, allow_hyphen_values = true, value_name = "TIME")]
    pub end: Option<String>,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Command {
    /// Evaluate EXPR at one instant
    Query {
        /// PromQL expression
        expr: String,
        /// Evaluation time (now, -5m, now-1h, RFC 3339, Unix seconds) [default: now]
        #[arg(long, allow_hyphen_values = true, value_name = "TIME")]
        time: Option<String>,
    },
    /// Evaluate EXPR over a time range
    Range {
        /// PromQL expression
        expr: String,
        /// Start of the range
        #[arg(
            long,
            allow_hyphen_values = true,
            value_name = "TIME",
            default_value = "-1h"
        )]
        start: String,
        /// End of the range
        #[arg(
            long,
            allow_hyphen_values = true,
            value_name = "TIME",
            default_value = "now"
        )]
        end: String,
        /// Resolution, e.g. 15s [default: the range / 250, at least 1s]
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        step: Option<Duration>,
    },
    /// List the series that match selectors
    Series {
        /// Series selector, e.g. 'envoy_http_downstream_rq_total{envoy_response_code_class="5"}'
        #[arg(required = true, value_name = "MATCH")]
        matchers: Vec<String>,
        #[command(flatten)]
        span: Span,
    },
    /// List label names
    Labels {
        /// Only labels of series matching this selector (repeatable)
        #[arg(long = "match", value_name = "MATCH")]
        matchers: Vec<String>,
        #[command(flatten)]
        span: Span,
    },
    /// List the values of one label
    LabelValues {
        /// Label name
        name: String,
        /// Only values in series matching this selector (repeatable)
        #[arg(long = "match", value_name = "MATCH")]
        matchers: Vec<String>,
        #[command(flatten)]
        span: Span,
    },
    /// Re-run EXPR until it returns data (or, with --compare, until every value passes)
    Wait {
        /// PromQL expression
        expr: String,
        /// Time between attempts
        #[arg(long, default_value = "2s", value_name = "DURATION", value_parser = parse_duration)]
        interval: Duration,
        /// Hold only when every returned value compares so, e.g. --compare '>' 0
        #[arg(long, num_args = 2, value_names = ["OP", "N"], allow_hyphen_values = true)]
        compare: Vec<String>,
    },
}

/// What a run calls, for `--print-policy` and `--check`: the workspace's data plane (the
/// actions per API path are lib `amp::DATA_PLANE`'s). A `--url` that is not AMP's, or
/// `--no-sign`, asks nothing of IAM.
impl ampkit::preflight::Preflight for Cli {
    fn aws_args(&self) -> &AwsArgs {
        &self.aws
    }

    fn needs(
        &self,
        doc: &StateDoc,
        scope: &ampkit::preflight::Scope,
    ) -> Result<Vec<ampkit::preflight::Need>> {
        if self.options.no_sign || self.options.url.is_some() {
            return Ok(Vec::new());
        }
        let workspace = match self
            .options
            .workspace_id
            .as_deref()
            .filter(|id| !id.is_empty())
        {
            Some(id) => amp::workspace_arn_in(scope, Some(id)),
            None => WorkspaceSection::from_doc(doc)?
                .map(|ws| ws.arn)
                .filter(|arn| !arn.is_empty())
                .unwrap_or_else(|| amp::workspace_arn_in(scope, None)),
        };
        let (sub, path) = match &self.command {
            Command::Query { .. } => ("query", "api/v1/query"),
            Command::Wait { .. } => ("wait", "api/v1/query"),
            Command::Range { .. } => ("range", "api/v1/query_range"),
            Command::Series { .. } => ("series", "api/v1/series"),
            Command::Labels { .. } => ("labels", "api/v1/labels"),
            Command::LabelValues { .. } => ("label-values", "api/v1/label/<name>/values"),
        };
        Ok(amp::needs_to_query(
            &workspace,
            path,
            &format!("{NAME} {sub}"),
        ))
    }
}

/// Run one `promql` subcommand and write its answer.
pub async fn run(cli: Cli, doc: &mut StateDoc) -> Result<()> {
    let Cli {
        command,
        options,
        aws,
    } = cli;
    let progress = Progress::new(NAME, cli::progress());
    if options.raw && options.format == Format::Table {
        return Err(
            Error::usage("--raw and --format table both choose the output")
                .with_hint("pick one of them"),
        );
    }
    let started = Instant::now();
    let timeout = options.timeout.unwrap_or(default_timeout(&command));
    let prom = connect(&options, aws, doc).await?;
    let session = Session {
        prom,
        now: OffsetDateTime::now_utc(),
        started,
        timeout,
        deadline: started + timeout,
    };
    let reply = match command {
        Command::Query { expr, time } => session.query(expr, time.as_deref()).await?,
        Command::Range {
            expr,
            start,
            end,
            step,
        } => session.query_range(expr, &start, &end, step).await?,
        Command::Series { matchers, span } => session.series(matchers, &span).await?,
        Command::Labels { matchers, span } => session.labels(matchers, &span).await?,
        Command::LabelValues {
            name,
            matchers,
            span,
        } => session.label_values(name, matchers, &span).await?,
        Command::Wait {
            expr,
            interval,
            compare,
        } => session.wait(expr, interval, &compare, &progress).await?,
    };
    emit(doc, &options, reply)
}

/// How long a run may take when --timeout does not say: 2m for wait, 1m otherwise.
fn default_timeout(command: &Command) -> Duration {
    match command {
        Command::Wait { .. } => Duration::from_secs(120),
        _ => Duration::from_secs(60),
    }
}

/// One run's access to Prometheus: the client, the one clock that relative times resolve
/// against, and when to give up.
struct Session {
    prom: PromClient,
    /// What `now`, `-5m` and the like mean in every time flag of the run.
    now: OffsetDateTime,
    started: Instant,
    timeout: Duration,
    /// `started` + `timeout`.
    deadline: Instant,
}

/// What a subcommand got back, and what [`emit`] needs to print it.
struct Reply {
    /// The shape of the answer: instant, range, series, labels or label-values.
    kind: &'static str,
    /// The `query` section so far (the question); [`emit`] adds the result.
    section: Map<String, Value>,
    /// The response body, exactly as Prometheus sent it.
    body: Vec<u8>,
    /// The expression (or first matcher) that Prometheus's errors are about.
    expr: Option<String>,
}

impl Session {
    /// The time a time flag names, relative times counting from `now`.
    fn time(&self, flag: &str, text: &str) -> Result<OffsetDateTime> {
        timespec::parse_time(text, self.now).map_err(|e| {
            Error::usage(format!("--{flag}: {e}"))
                .with_hint("e.g. now, -5m, now-1h, 2026-01-02T15:04:05Z")
        })
    }

    /// `query`: `expr` at one instant (`at`, default now).
    async fn query(&self, expr: String, at: Option<&str>) -> Result<Reply> {
        let at = self.time("time", at.unwrap_or("now"))?;
        let form = [("query", expr.clone()), ("time", timespec::api_time(at))];
        let body = self
            .prom
            .post_form(&["api", "v1", "query"], &form, self.deadline)
            .await?;
        let mut section = Map::new();
        section.insert("expr".into(), expr.clone().into());
        section.insert("kind".into(), "instant".into());
        section.insert("time".into(), timespec::rfc3339(at).into());
        Ok(Reply {
            kind: "instant",
            section,
            body,
            expr: Some(expr),
        })
    }

    /// `range`: `expr` from `start` to `end`, every `step`.
    async fn query_range(
        &self,
        expr: String,
        start: &str,
        end: &str,
        step: Option<Duration>,
    ) -> Result<Reply> {
        let (start, end) = (self.time("start", start)?, self.time("end", end)?);
        let step = range_step(start, end, step)?;
        let form = [
            ("query", expr.clone()),
            ("start", timespec::api_time(start)),
            ("end", timespec::api_time(end)),
            ("step", format!("{}", step.as_secs_f64())),
        ];
        let body = self
            .prom
            .post_form(&["api", "v1", "query_range"], &form, self.deadline)
            .await?;
        let mut section = Map::new();
        section.insert("expr".into(), expr.clone().into());
        section.insert("kind".into(), "range".into());
        section.insert("start".into(), timespec::rfc3339(start).into());
        section.insert("end".into(), timespec::rfc3339(end).into());
        section.insert("step".into(), timespec::format_duration(step).into());
        Ok(Reply {
            kind: "range",
            section,
            body,
            expr: Some(expr),
        })
    }

    /// `series`: the series that match `matchers`.
    async fn series(&self, matchers: Vec<String>, span: &Span) -> Result<Reply> {
        let mut section = Map::new();
        let mut form = matcher_form(&matchers);
        self.span_form(span, &mut form, &mut section)?;
        let body = self
            .prom
            .post_form(&["api", "v1", "series"], &form, self.deadline)
            .await?;
        section.insert("kind".into(), "series".into());
        section.insert("match".into(), json!(matchers));
        Ok(Reply {
            kind: "series",
            section,
            body,
            expr: matchers.first().cloned(),
        })
    }

    /// `labels`: the label names, of the series that match `matchers` if any.
    async fn labels(&self, matchers: Vec<String>, span: &Span) -> Result<Reply> {
        let mut section = Map::new();
        let mut form = matcher_form(&matchers);
        self.span_form(span, &mut form, &mut section)?;
        let body = self
            .prom
            .post_form(&["api", "v1", "labels"], &form, self.deadline)
            .await?;
        section.insert("kind".into(), "labels".into());
        if !matchers.is_empty() {
            section.insert("match".into(), json!(matchers));
        }
        Ok(Reply {
            kind: "labels",
            section,
            body,
            expr: matchers.first().cloned(),
        })
    }

    /// `label-values`: the values of label `name`, in the series that match `matchers` if any.
    async fn label_values(
        &self,
        name: String,
        matchers: Vec<String>,
        span: &Span,
    ) -> Result<Reply> {
        let mut section = Map::new();
        let mut query = matcher_form(&matchers);
        self.span_form(span, &mut query, &mut section)?;
        // This endpoint is GET-only in the Prometheus API.
        let body = self
            .prom
            .get(
                &["api", "v1", "label", &name, "values"],
                &query,
                self.deadline,
            )
            .await?;
        section.insert("kind".into(), "label-values".into());
        section.insert("name".into(), name.into());
        if !matchers.is_empty() {
            section.insert("match".into(), json!(matchers));
        }
        Ok(Reply {
            kind: "label-values",
            section,
            body,
            expr: matchers.first().cloned(),
        })
    }

    /// `wait`: the answer of `expr` once it holds (see [`poll_until_holds`]).
    async fn wait(
        &self,
        expr: String,
        interval: Duration,
        compare: &[String],
        progress: &Progress,
    ) -> Result<Reply> {
        let compare = Compare::parse(compare)?;
        let (body, attempts) = poll_until_holds(
            &self.prom,
            &expr,
            compare,
            interval,
            (self.deadline, self.timeout),
            progress,
        )
        .await?;
        let mut section = Map::new();
        section.insert("expr".into(), expr.clone().into());
        section.insert("kind".into(), "wait".into());
        section.insert(
            "time".into(),
            timespec::rfc3339(OffsetDateTime::now_utc()).into(),
        );
        if let Some(c) = compare {
            section.insert(
                "compare".into(),
                json!({"op": c.op.as_str(), "value": c.value}),
            );
        }
        section.insert("attempts".into(), attempts.into());
        section.insert(
            "waitedSeconds".into(),
            json!((self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0),
        );
        Ok(Reply {
            kind: "instant",
            section,
            body,
            expr: Some(expr),
        })
    }

    /// `--start`/`--end` of series/labels/label-values, into the request and the section.
    fn span_form(
        &self,
        span: &Span,
        form: &mut Vec<(&'static str, String)>,
        section: &mut Map<String, Value>,
    ) -> Result<()> {
        for (flag, value) in [("start", &span.start), ("end", &span.end)] {
            if let Some(text) = value {
                let t = self.time(flag, text)?;
                form.push((flag, timespec::api_time(t)));
                section.insert(flag.into(), timespec::rfc3339(t).into());
            }
        }
        Ok(())
    }
}

/// The client for the endpoint the flags or the document name.
async fn connect(options: &Options, mut aws: AwsArgs, doc: &StateDoc) -> Result<PromClient> {
    let workspace = WorkspaceSection::from_doc(doc)?.unwrap_or_default();
    // The workspace's own region signs its requests unless --region says otherwise.
    if aws.region.is_none()
        && options.url.is_none()
        && let Some(region) = WorkspaceSection::get(&workspace.region)
    {
        aws.region = Some(region.to_owned());
    }
    let base = if let Some(url) = &options.url {
        url.clone()
    } else if let Some(id) = &options.workspace_id {
        let region = resolve_region(&aws).await.ok_or_else(|| {
            Error::usage("no AWS region is configured (needed for --workspace-id)")
                .with_hint("pass --region or set AWS_REGION")
        })?;
        amp::workspace_endpoint(id, region.as_ref(), amp::endpoint_from_env().as_deref())
    } else if let Some(endpoint) = WorkspaceSection::get(&workspace.prometheus_endpoint) {
        endpoint.to_owned()
    } else {
        return Err(Error::usage("no endpoint to query").with_hint(
            "pipe in the document of `amp-workspace ensure`, or pass --workspace-id ID or --url URL",
        ));
    };
    let client = if options.no_sign {
        SignedClient::unsigned_for(&base)?
    } else {
        SignedClient::for_endpoint(&aws, SIGNING_NAME, &base).await?
    };
    PromClient::new(client, &base)
}

/// About 250 points per series, never below 1s: readable and cheap.
fn default_step(range: time::Duration) -> Duration {
    let secs = (range.as_seconds_f64() / 250.0).ceil().max(1.0);
    Duration::from_secs_f64(secs)
}

/// The step of a range query: `--step`, else [`default_step`]; an end before the start or a
/// zero step is a usage error.
fn range_step(
    start: OffsetDateTime,
    end: OffsetDateTime,
    step: Option<Duration>,
) -> Result<Duration> {
    if end < start {
        return Err(Error::usage("--end is before --start")
            .with_hint("give a start earlier than the end, e.g. --start -1h --end now"));
    }
    match step {
        Some(step) if step.is_zero() => {
            Err(Error::usage("--step must be more than 0").with_hint("e.g. --step 15s"))
        }
        Some(step) => Ok(step),
        None => Ok(default_step(end - start)),
    }
}

fn matcher_form(matchers: &[String]) -> Vec<(&'static str, String)> {
    matchers.iter().map(|m| ("match[]", m.clone())).collect()
}

/// The token standing in for the result while the document is rendered (see [`emit`]).
const RESULT_PLACEHOLDER: &str = "\u{1}ampkit-promql-result\u{1}";

/// Print the answer: the document with the raw result spliced in, only `data`, or a table.
///
/// The result is never turned into a `serde_json::Value`: the document is rendered with a
/// placeholder and the result's bytes are written in its place, so a large range answer costs
/// one copy of the response in memory, not a tree many times its size.
fn emit(doc: &mut StateDoc, options: &Options, reply: Reply) -> Result<()> {
    let Reply {
        kind,
        mut section,
        body,
        expr,
    } = reply;
    let answer = parse_response(&body, expr.as_deref())?;
    for warning in &answer.warnings {
        tracing::warn!("Prometheus: {warning}");
    }
    if options.raw {
        return cli::write_stdout(&[answer.data.get().as_bytes(), b"\n"]);
    }
    if options.format == Format::Table {
        let text = format::table(kind, answer.data.get())?;
        return cli::write_stdout(&[text.as_bytes()]);
    }
    let result: &RawValue = if matches!(kind, "instant" | "range") {
        let data = query_data(answer.data)?;
        section.insert("resultType".into(), data.result_type.into());
        data.result
    } else {
        answer.data
    };
    if !answer.warnings.is_empty() {
        section.insert("warnings".into(), json!(answer.warnings));
    }
    section.insert("result".into(), RESULT_PLACEHOLDER.into());
    doc.set_section("query", Value::Object(section))?;
    let text = doc.render(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let token = serde_json::to_string(RESULT_PLACEHOLDER)
        .map_err(|e| Error::internal(format!("could not encode the placeholder: {e}")))?;
    let (before, after) = text
        .rsplit_once(&token)
        .ok_or_else(|| Error::internal("the result placeholder is missing from the document"))?;
    cli::write_stdout(&[
        before.as_bytes(),
        result.get().as_bytes(),
        after.as_bytes(),
        b"\n",
    ])
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

/// `--compare OP N`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Compare {
    op: Op,
    value: f64,
}

impl Compare {
    fn parse(args: &[String]) -> Result<Option<Compare>> {
        let [op, value] = args else {
            return Ok(None);
        };
        let op = match op.as_str() {
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            "<=" => Op::Le,
            "==" | "=" => Op::Eq,
            "!=" => Op::Ne,
            other => {
                return Err(
                    Error::usage(format!("--compare: `{other}` is not a comparison"))
                        .with_hint("use one of > >= < <= == !=, e.g. --compare '>' 0"),
                );
            }
        };
        let value = value.parse::<f64>().map_err(|_| {
            Error::usage(format!("--compare: `{value}` is not a number"))
                .with_hint("e.g. --compare '>' 0.5")
        })?;
        Ok(Some(Compare { op, value }))
    }
}

/// Whether a query answer satisfies the wait, and a short description of it for progress.
fn check(result_type: &str, result: &Value, compare: Option<Compare>) -> (bool, String) {
    let values: Vec<f64> = match result_type {
        "scalar" => vec![sample_value(&result[1])],
        "vector" => result
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| sample_value(&s["value"][1]))
            .collect(),
        "matrix" => result
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["values"].as_array()?.last().map(|p| sample_value(&p[1])))
            .collect(),
        // A string result has no number to compare; it is data.
        _ => return (compare.is_none(), "a string".into()),
    };
    if values.is_empty() {
        return (false, "no data".into());
    }
    let shown: Vec<String> = values.iter().take(5).map(|v| v.to_string()).collect();
    let more = if values.len() > 5 { ", ..." } else { "" };
    let summary = format!("{} value(s): {}{more}", values.len(), shown.join(", "));
    let ok = match compare {
        None => true,
        Some(c) => values.iter().all(|v| c.op.holds(*v, c.value)),
    };
    (ok, summary)
}

fn sample_value(v: &Value) -> f64 {
    v.as_str()
        .and_then(|s| match s {
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            _ => s.parse().ok(),
        })
        .unwrap_or(f64::NAN)
}

/// The least time left for one more attempt of [`poll_until_holds`].
const LAST_ATTEMPT: Duration = Duration::from_millis(250);

/// Poll `expr` until it holds or the deadline passes. Bad PromQL fails at once; an endpoint
/// that is down or failing is retried until the deadline, then reported.
async fn poll_until_holds(
    prom: &PromClient,
    expr: &str,
    compare: Option<Compare>,
    interval: Duration,
    (deadline, timeout): (Instant, Duration),
    progress: &Progress,
) -> Result<(Vec<u8>, u64)> {
    let pace = Pace {
        // Keep a little time for the last attempt's request itself.
        last_attempt: LAST_ATTEMPT,
        ..Pace::every(interval, deadline.saturating_duration_since(Instant::now()))
    };
    poll::until(
        &format!("`{expr}`"),
        pace,
        progress,
        || async move {
            let form = [
                ("query", expr.to_owned()),
                ("time", timespec::api_time(OffsetDateTime::now_utc())),
            ];
            match prom
                .post_form(&["api", "v1", "query"], &form, deadline)
                .await
            {
                Ok(body) => {
                    let answer = parse_response(&body, Some(expr))?;
                    let data = query_data(answer.data)?;
                    let result: Value = serde_json::from_str(data.result.get())
                        .map_err(|e| Error::remote(format!("the query answer is not JSON: {e}")))?;
                    let (ok, summary) = check(&data.result_type, &result, compare);
                    Ok(if ok {
                        Attempt::Done(body)
                    } else {
                        Attempt::Pending(summary)
                    })
                }
                // The endpoint may come up (or recover) while we wait.
                Err(err) if matches!(err.kind, ErrorKind::Remote) => {
                    Ok(Attempt::Pending(err.message))
                }
                Err(err) => Err(err),
            }
        },
        |t| {
            Error::remote(format!(
                "`{expr}` did not hold within {} ({} attempts; last: {})",
                timespec::format_duration(timeout),
                t.attempts,
                t.last
            ))
            .with_hint(
                "raise --timeout, or check that metrics reach the workspace (promql series ...)",
            )
        },
    )
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The actions a command line of this tool needs, from its own Preflight.
    fn actions_of(args: &[&str], doc: &str) -> Vec<String> {
        ampkit::preflight::testing::actions_of::<Cli>(args, doc)
    }

    #[test]
    fn each_subcommand_declares_its_data_plane_action_on_the_workspace() {
        let ws = "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1";
        for (args, action) in [
            (
                vec!["promql", "--workspace-id", "ws-1", "query", "up"],
                "aps:QueryMetrics",
            ),
            (
                vec!["promql", "--workspace-id", "ws-1", "range", "up"],
                "aps:QueryMetrics",
            ),
            (
                vec!["promql", "--workspace-id", "ws-1", "wait", "up"],
                "aps:QueryMetrics",
            ),
            (
                vec!["promql", "--workspace-id", "ws-1", "series", "up"],
                "aps:GetSeries",
            ),
            (
                vec!["promql", "--workspace-id", "ws-1", "labels"],
                "aps:GetLabels",
            ),
            (
                vec!["promql", "--workspace-id", "ws-1", "label-values", "job"],
                "aps:GetLabels",
            ),
        ] {
            assert_eq!(
                actions_of(&args, "{}"),
                vec![format!("{action} {ws}")],
                "{args:?}"
            );
        }
        // A Prometheus of one's own asks nothing of IAM.
        assert!(
            actions_of(
                &["promql", "--url", "http://127.0.0.1:9090", "query", "up"],
                "{}"
            )
            .is_empty()
        );
    }

    fn cmp(op: &str, n: &str) -> Option<Compare> {
        Compare::parse(&[op.to_owned(), n.to_owned()]).unwrap()
    }

    #[test]
    fn waits_hold_on_data_or_on_every_value_passing() {
        let vector = json!([{"metric":{},"value":[1,"3"]},{"metric":{},"value":[1,"5"]}]);
        assert!(check("vector", &vector, None).0);
        assert!(check("vector", &vector, cmp(">", "2")).0);
        assert!(!check("vector", &vector, cmp(">", "4")).0);
        assert!(!check("vector", &json!([]), None).0);
        assert!(check("scalar", &json!([1, "+Inf"]), cmp(">=", "1e300")).0);
        assert!(!check("scalar", &json!([1, "NaN"]), cmp("==", "0")).0);
        let matrix = json!([{"metric":{},"values":[[1,"0"],[2,"7"]]}]);
        assert!(check("matrix", &matrix, cmp("==", "7")).0);
    }

    #[test]
    fn bad_comparisons_are_usage_errors() {
        let err = Compare::parse(&["=>".into(), "1".into()]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = Compare::parse(&[">".into(), "many".into()]).unwrap_err();
        assert!(err.message.contains("`many`"));
    }

    #[test]
    fn default_step_is_about_250_points() {
        assert_eq!(
            default_step(time::Duration::hours(1)),
            Duration::from_secs(15)
        );
        assert_eq!(
            default_step(time::Duration::seconds(10)),
            Duration::from_secs(1)
        );
    }
}
