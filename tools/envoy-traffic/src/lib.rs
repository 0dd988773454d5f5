//! envoy-traffic: drive HTTP traffic through the mesh and check the numbers against Envoy.
//!
//! The recipe makes traffic with a few hundred `kubectl exec ... curl` calls and measures
//! nothing. This module sends it at a fixed rate (open model, coordinated omission corrected)
//! or concurrency (closed model), for a duration or a count, reports what came back from an
//! HDR histogram of every request, and reads Envoy's admin counters before and after so that
//! every listener and cluster on the way can be held against our own counts.
//!
//! Layout: [`load`] is the engine, [`report`] the `traffic` section, [`envoy_stats`] the
//! cross-check, [`kube_forward`] the `--kube-service` target.

mod client;
pub mod envoy_stats;
pub mod kube_forward;
pub mod load;
pub mod report;

use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderMap, Uri};
use http::{HeaderName, HeaderValue, Method};
use tokio::time::Instant;

use ampkit::cli::{Runtime, Tool};
use ampkit::doc::StateDoc;
use ampkit::error::{Error, Result};
use ampkit::poll::Progress;
use ampkit::timespec::{parse_duration, parse_positive_duration};
use envoy_stats::{AdminClient, AdminRead};
use kube_forward::KubeService;
use load::{Load, Model, Plan, Template};

/// The section this tool owns.
pub const SECTION: &str = "traffic";

/// How long requests in flight may finish after Ctrl-C or SIGTERM before they are abandoned
/// (and counted as cancelled); a second signal abandons them at once.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The program's name, as in the ledger and in error lines.
pub const NAME: &str = "envoy-traffic";

/// What the frame needs to know of this tool besides its flags.
pub const TOOL: Tool = Tool {
    name: NAME,
    runtime: Runtime::MultiThread,
    examples: &[
        "envoy-traffic --url http://127.0.0.1:18510/ --rate 50 --duration 60s",
        "envoy-traffic -n 300 --paths /jazz,/metal -H 'x-envoy-fault-delay-request: 20' < state.json",
        "envoy-traffic merge pod-a.json pod-b.json < state.json",
    ],
};

/// Drive HTTP traffic through the mesh at a fixed rate (open model, latency from the intended
/// send time) or concurrency (closed model); report percentiles, status codes and errors in
/// the `traffic` section; with --envoy-admin, put Envoy's own counts next to ours.
#[derive(clap::Parser, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Target URL [default: the document's traffic.url or mesh.url, else AMPKIT_ENVOY_URL]
    #[arg(long, value_name = "URL", conflicts_with = "kube_service")]
    pub url: Option<String>,

    /// A Kubernetes service, reached through a port-forward
    #[arg(long, value_name = "NAMESPACE/SERVICE:PORT", value_parser = kube_forward::parse_kube_service)]
    pub kube_service: Option<KubeService>,

    /// Open model: requests per second, constant arrival rate
    #[arg(long, value_name = "R", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Connections; alone it is the closed model (as fast as possible) [default: 10, or with
    /// --rate enough for the rate]
    #[arg(short, long, value_name = "C", value_parser = parse_concurrency)]
    pub concurrency: Option<usize>,

    /// How long to send (e.g. 30s, 2m) [default: 10s unless --requests]
    #[arg(short, long, value_name = "D", value_parser = parse_positive_duration)]
    pub duration: Option<Duration>,

    /// How many requests to send (after the warmup)
    #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,

    /// Send for this long first, outside the statistics
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub warmup: Option<Duration>,

    /// HTTP method
    #[arg(short = 'm', long, value_name = "METHOD", value_parser = parse_method)]
    pub method: Option<Method>,

    /// A request header, repeatable (e.g. 'x-envoy-fault-delay-request: 20')
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(HeaderName, HeaderValue)>,

    /// Request body
    #[arg(long, value_name = "TEXT")]
    pub body: Option<String>,

    /// Give up on a request after this long
    #[arg(long, value_name = "D", value_parser = parse_positive_duration, default_value = "10s")]
    pub timeout: Duration,

    /// HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1 keep-alive
    #[arg(long)]
    pub http2: bool,

    /// Paths to spread the requests over, round-robin (e.g. /jazz,/metal) [default: the URL's]
    // Spelled `std::vec::Vec` so that clap takes the list as one value, split by the parser.
    #[arg(long, value_name = "PATH,...", value_parser = parse_paths)]
    pub paths: Option<std::vec::Vec<String>>,

    /// Envoy admin URLs to cross-check against [default: AMPKIT_ENVOY_ADMIN_URLS]
    #[arg(long, value_name = "URL,...", value_parser = parse_admin_urls)]
    pub envoy_admin: Option<std::vec::Vec<String>>,
}

// ---- flag parsers (clap `value_parser`s: their errors name the flag) ------------------------

/// `--rate`: requests per second, a positive number.
pub fn parse_rate(s: &str) -> std::result::Result<f64, String> {
    let rate: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of requests per second (e.g. 50 or 12.5)"))?;
    if !rate.is_finite() || rate <= 0.0 {
        return Err(format!(
            "the rate must be above 0 requests per second, got `{s}`"
        ));
    }
    if rate > 10_000_000.0 {
        return Err(format!(
            "the rate `{s}` is beyond what one machine can send"
        ));
    }
    Ok(rate)
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Command {
    /// Add up the reports of runs made at the same time (several machines or pods) into one
    /// `traffic` section: counts and rates summed, percentiles exact from the added histograms
    Merge {
        /// Reports: documents with a `traffic` section, or the sections themselves
        #[arg(required = true, num_args = 2.., value_name = "FILE")]
        files: Vec<std::path::PathBuf>,
    },
}

/// `envoy-traffic merge`: the reports in `files`, added up into the document's section.
fn merge_files(files: &[std::path::PathBuf], doc: &mut StateDoc) -> Result<()> {
    let mut reports = Vec::with_capacity(files.len());
    for file in files {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).map_err(|e| {
            Error::input(format!("could not read {name}: {e}"))
                .with_hint("give readable report files")
        })?;
        let mut value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            Error::input(format!("{name} is not JSON: {e}"))
                .with_hint("give the output of envoy-traffic (a document or its traffic section)")
        })?;
        if let Some(section) = value.get_mut(SECTION) {
            value = section.take();
        }
        let report: report::Report = serde_json::from_value(value).map_err(|e| {
            Error::input(format!("{name} has no envoy-traffic report: {e}")).with_hint(
                "give documents written by envoy-traffic (with histograms, this version or later)",
            )
        })?;
        reports.push((name, report));
    }
    doc.set_section(SECTION, report::merge(reports)?)
}

/// `--concurrency`: 1 to 100,000 connections.
fn parse_concurrency(s: &str) -> std::result::Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n @ 1..=100_000) => Ok(n),
        _ => Err(format!(
            "`{s}` is not a number of connections from 1 to 100000"
        )),
    }
}

/// `--method`: any HTTP method, case-insensitive.
fn parse_method(s: &str) -> std::result::Result<Method, String> {
    Method::from_bytes(s.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("`{s}` is not an HTTP method"))
}

/// `--header 'Name: value'`.
pub fn parse_header(s: &str) -> std::result::Result<(HeaderName, HeaderValue), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not `Name: value` (the colon is missing)"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("`{}` is not a valid header name", name.trim()))?;
    let value = HeaderValue::from_str(value.trim()).map_err(|_| {
        format!("the value of header `{name}` has characters a header may not hold")
    })?;
    Ok((name, value))
}

/// `--paths /jazz,/metal`.
pub fn parse_paths(s: &str) -> std::result::Result<Vec<String>, String> {
    let paths: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    if paths.is_empty() {
        return Err("give at least one path, e.g. /jazz,/metal".to_owned());
    }
    for p in &paths {
        if !p.starts_with('/') {
            return Err(format!("path `{p}` must start with /"));
        }
        if p.parse::<http::uri::PathAndQuery>().is_err() {
            return Err(format!("path `{p}` has characters a URL path may not hold"));
        }
    }
    Ok(paths)
}

/// `--envoy-admin URL[,URL...]`.
pub fn parse_admin_urls(s: &str) -> std::result::Result<Vec<String>, String> {
    let urls: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| u.trim_end_matches('/').to_owned())
        .collect();
    if urls.is_empty() {
        return Err("give at least one admin URL, e.g. http://127.0.0.1:9901".to_owned());
    }
    for u in &urls {
        let uri: Uri = u.parse().map_err(|_| format!("`{u}` is not a URL"))?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() {
            return Err(format!("`{u}` must be an http:// URL with a host and port"));
        }
    }
    Ok(urls)
}

// ---- the target -------------------------------------------------------------------------------

/// The URL traffic goes to, split into what a connection and a request need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    pub host: String,
    pub port: u16,
    pub authority: String,
    /// Path and query of the URL (`/` when it has none).
    pub path: String,
}

impl Target {
    /// Parse a target URL; `flag` names where it came from, for the error.
    pub fn parse(url: &str, flag: &str) -> Result<Target> {
        let uri: Uri = url.parse().map_err(|e| {
            Error::usage(format!("{flag}: `{url}` is not a URL: {e}"))
                .with_hint("give an http:// URL, e.g. http://127.0.0.1:8080")
        })?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(Error::usage(format!(
                    "{flag}: scheme `{other}` is not supported, only http://"
                ))
                .with_hint("the mesh's listeners speak plain HTTP (h2c with --http2)"));
            }
            None => {
                return Err(Error::usage(format!("{flag}: `{url}` has no scheme"))
                    .with_hint(format!("write it as http://{url}")));
            }
        }
        let authority = uri
            .authority()
            .ok_or_else(|| Error::usage(format!("{flag}: `{url}` has no host")))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        Ok(Target {
            url: url.to_owned(),
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_owned(),
            path: uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "/".to_owned()),
        })
    }
}

/// Where the traffic goes: `--url`, else the document (`traffic.url` of an earlier run,
/// `mesh.url`), else `AMPKIT_ENVOY_URL`.
pub fn resolve_url(flag: Option<&str>, doc: &StateDoc) -> Result<(String, &'static str)> {
    if let Some(url) = flag {
        return Ok((url.to_owned(), "--url"));
    }
    if let Some(url) = doc.str_field(SECTION, "url") {
        return Ok((url.to_owned(), "document field traffic.url"));
    }
    if let Some(url) = doc.str_field("mesh", "url") {
        return Ok((url.to_owned(), "document field mesh.url"));
    }
    if let Ok(url) = std::env::var("AMPKIT_ENVOY_URL")
        && !url.trim().is_empty()
    {
        return Ok((url.trim().to_owned(), "AMPKIT_ENVOY_URL"));
    }
    Err(Error::usage("no target: give --url (or --kube-service)").with_hint(
        "e.g. --url http://127.0.0.1:8080, or set AMPKIT_ENVOY_URL (`eval \"$(scripts/local-stack env)\"`)",
    ))
}

/// Admin endpoints: `--envoy-admin`, else `AMPKIT_ENVOY_ADMIN_URLS`; none means no cross-check.
pub fn resolve_admins(flag: Option<&[String]>) -> Result<Vec<String>> {
    if let Some(urls) = flag {
        return Ok(urls.to_vec());
    }
    match std::env::var("AMPKIT_ENVOY_ADMIN_URLS") {
        Ok(v) if !v.trim().is_empty() => parse_admin_urls(&v).map_err(|e| {
            Error::usage(format!("AMPKIT_ENVOY_ADMIN_URLS: {e}"))
                .with_hint("a comma-separated list of Envoy admin URLs, or unset it")
        }),
        _ => Ok(Vec::new()),
    }
}

/// The resolved plan and request template.
fn plan(opts: &Cli) -> Plan {
    let (model, workers) = match opts.rate {
        Some(rate) => {
            // Enough connections for the asked rate at ~20 ms per request, and a floor so that
            // a slow answer does not hold the schedule back.
            let default = (rate / 50.0).ceil().clamp(8.0, 512.0) as usize;
            (Model::Open { rate }, opts.concurrency.unwrap_or(default))
        }
        None => (Model::Closed, opts.concurrency.unwrap_or(10)),
    };
    let duration = match (opts.duration, opts.requests) {
        (None, None) => Some(Duration::from_secs(10)),
        (d, _) => d,
    };
    Plan {
        model,
        workers: workers.max(1),
        requests: opts.requests,
        duration,
        warmup: opts.warmup.unwrap_or_default(),
        timeout: opts.timeout,
        http2: opts.http2,
    }
}

fn template(target: &Target, paths: &[String], opts: &Cli) -> Result<Template> {
    let resolved = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next());
    let mut uris = Vec::with_capacity(paths.len());
    for p in paths {
        let text = if opts.http2 {
            format!("http://{}{p}", target.authority)
        } else {
            p.clone()
        };
        let uri: Uri = text
            .parse()
            .map_err(|e| Error::usage(format!("--paths: `{p}` is not a URL path: {e}")))?;
        uris.push(uri);
    }
    let mut headers = HeaderMap::new();
    if !opts.http2 {
        let host = HeaderValue::from_str(&target.authority).map_err(|_| {
            Error::usage(format!("--url: host `{}` is not valid", target.authority))
        })?;
        headers.insert(HOST, host);
    }
    for (name, value) in &opts.headers {
        if name == HOST {
            headers.insert(HOST, value.clone());
        } else {
            headers.append(name.clone(), value.clone());
        }
    }
    Ok(Template {
        connect: format!("{}:{}", target.host, target.port),
        resolved,
        method: opts.method.clone().unwrap_or(Method::GET),
        uris,
        headers,
        body: Bytes::from(opts.body.clone().unwrap_or_default()),
    })
}

fn settings(opts: &Cli, plan: &Plan) -> report::Settings {
    report::Settings {
        model: match plan.model {
            Model::Open { .. } => "open",
            Model::Closed => "closed",
        }
        .to_owned(),
        rate: opts.rate,
        concurrency: plan.workers,
        duration_s: plan.duration.map(|d| d.as_secs_f64()),
        requests: plan.requests,
        warmup_s: plan.warmup.as_secs_f64(),
        method: opts.method.clone().unwrap_or(Method::GET).to_string(),
        headers: opts
            .headers
            .iter()
            .map(|(n, v)| report::redact_header(n.as_str(), v.to_str().unwrap_or("<binary>")))
            .collect(),
        body_bytes: opts.body.as_ref().map_or(0, String::len),
        timeout_s: plan.timeout.as_secs_f64(),
        http2: plan.http2,
        kube_service: opts.kube_service.as_ref().map(|k| k.to_string()),
        kube_pod: None,
    }
}

// ---- the run ----------------------------------------------------------------------------------

/// The whole tool: resolve the target, read Envoy, run the load, read Envoy again, write the
/// `traffic` section. Exit 1 when no request was answered at all.
pub async fn run(opts: Cli, doc: &mut StateDoc) -> Result<()> {
    if let Some(Command::Merge { files }) = &opts.command {
        return merge_files(files, doc);
    }
    let mut signals = watch_signals();
    // Kept alive for the whole run: dropping it closes the port-forward.
    let (target, forward) = resolve_target(&opts, doc).await?;
    let paths = opts
        .paths
        .clone()
        .unwrap_or_else(|| vec![target.path.clone()]);
    let admins = resolve_admins(opts.envoy_admin.as_deref())?;
    let plan = plan(&opts);
    let template = template(&target, &paths, &opts)?;
    let mut settings = settings(&opts, &plan);
    settings.kube_pod = forward.as_ref().map(|f| f.pod().to_owned());

    // Read Envoy first, so that a wrong admin URL fails before any traffic is sent.
    let admin = AdminClient::new();
    let reads = read_envoy_before(&admin, &admins).await?;
    let finished = drive_load(plan.clone(), template, signals.as_mut()).await?;
    let mut report = build_report(&opts, &plan, &target, &paths, &finished, settings)?;
    warn_if_behind_rate(opts.rate, report.rate.achieved, &finished, plan.workers);

    let mut admin_failure = None;
    if !reads.is_empty() {
        let (check, failure) =
            cross_check(&admin, &admins, reads, target.port, &paths, &finished.tally).await;
        report.envoy = Some(check);
        admin_failure = failure;
    }

    doc.set_section(SECTION, &report)?;
    run_result(&target, &finished.tally, admin_failure)
}

/// Ctrl-C and SIGTERM, or none (with a warning) when they cannot be watched.
fn watch_signals() -> Option<Signals> {
    match Signals::new() {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(
                "cannot watch for Ctrl-C/SIGTERM ({e}); the run cannot be stopped early"
            );
            None
        }
    }
}

/// The target, and with --kube-service the port-forward that reaches it.
async fn resolve_target(
    opts: &Cli,
    doc: &StateDoc,
) -> Result<(Target, Option<kube_forward::Forward>)> {
    let (url, source, forward) = match &opts.kube_service {
        Some(svc) => {
            let forward = kube_forward::open(svc).await?;
            (forward.url(), "--kube-service", Some(forward))
        }
        None => {
            let (url, source) = resolve_url(opts.url.as_deref(), doc)?;
            (url, source, None)
        }
    };
    Ok((Target::parse(&url, source)?, forward))
}

/// Envoy's counters (and its topology, when it gives it) at every admin URL, before the run.
async fn read_envoy_before(admin: &AdminClient, admins: &[String]) -> Result<Vec<AdminRead>> {
    let mut reads = Vec::with_capacity(admins.len());
    for a in admins {
        let before = admin.counters(a).await?;
        let topology = admin.topology(a).await.ok();
        reads.push(AdminRead {
            url: a.clone(),
            before: Some(before),
            after: None,
            topology,
        });
    }
    Ok(reads)
}

/// A load that has ended: what it counted, and when and how it ran.
struct Finished {
    tally: load::Tally,
    /// When the load started, RFC 3339.
    started_at: String,
    /// From the end of the warmup to the last answer.
    measured_secs: f64,
    /// Whether Ctrl-C or SIGTERM stopped it.
    signalled: bool,
}

/// Run the load until its plan ends or a signal stops it, with the live line on a terminal.
async fn drive_load(
    plan: Plan,
    template: Template,
    signals: Option<&mut Signals>,
) -> Result<Finished> {
    // One engine thread per core, as wrk's -t defaults to on a small machine.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let started_at = ampkit::timespec::rfc3339(time::OffsetDateTime::now_utc());
    let mut load = Load::start(plan, template, threads)?;
    let progress = ampkit::cli::progress().then(|| spawn_progress(&load));
    let signalled = supervise(&mut load, signals).await;
    let tally = load.snapshot();
    if let Some((done, handle)) = progress {
        done.store(true, Ordering::Relaxed);
        let _ = handle.await;
    }

    let end = tally.last_done.unwrap_or_else(Instant::now);
    let measured_secs = end
        .saturating_duration_since(load.shared.measure_start)
        .as_secs_f64();
    Ok(Finished {
        tally,
        started_at,
        measured_secs,
        signalled,
    })
}

/// The `traffic` section of a finished load, before the Envoy cross-check.
fn build_report(
    opts: &Cli,
    plan: &Plan,
    target: &Target,
    paths: &[String],
    finished: &Finished,
    settings: report::Settings,
) -> Result<report::Report> {
    let stopped_by = if finished.signalled {
        "signal"
    } else if plan.requests.is_some_and(|n| finished.tally.sent >= n) {
        "requests"
    } else {
        "duration"
    };
    report::build(report::ReportInput {
        url: target.url.clone(),
        paths,
        tally: &finished.tally,
        asked_rate: opts.rate,
        measured_secs: finished.measured_secs,
        started_at: Some(finished.started_at.clone()),
        stopped_by,
        settings,
    })
}

/// Warn when an open-model run that went its full course sent well below the asked rate.
fn warn_if_behind_rate(asked: Option<f64>, achieved: f64, finished: &Finished, workers: usize) {
    if let Some(rate) = asked
        && !finished.signalled
        && finished.tally.completed > 0
        && achieved < rate * 0.95
    {
        tracing::warn!(
            "achieved {:.1} req/s of the {rate} asked: the target or {} connections cannot keep up \
             (latency counts from the intended send times, so the percentiles show the backlog); \
             raise --concurrency to add connections",
            achieved,
            workers
        );
    }
}

/// Read Envoy again once its counters settle and hold them against ours. The first read that
/// failed comes back as well, for the run to fail on once the report is written.
async fn cross_check(
    admin: &AdminClient,
    admins: &[String],
    mut reads: Vec<AdminRead>,
    target_port: u16,
    paths: &[String],
    tally: &load::Tally,
) -> (envoy_stats::CrossCheck, Option<Error>) {
    let mut admin_failure = None;
    let (afters, settle) = admin.settled(admins).await;
    let mut errors = Vec::new();
    for (read, after) in reads.iter_mut().zip(afters) {
        match after {
            Ok(snap) => read.after = Some(snap),
            Err(e) => {
                errors.push(e.message.clone());
                admin_failure.get_or_insert(e);
            }
        }
    }
    let flows: Vec<(String, load::PathCounts)> = paths
        .iter()
        .cloned()
        .zip(tally.paths.iter().copied())
        .collect();
    let check = envoy_stats::compare(
        &reads,
        target_port,
        &flows,
        u64::try_from(settle.as_millis()).unwrap_or(u64::MAX),
        errors,
    );
    warn_mismatches(&check);
    (check, admin_failure)
}

/// A warning for every listener or cluster where Envoy counted other than we expected.
fn warn_mismatches(check: &envoy_stats::CrossCheck) {
    for row in check.mismatches() {
        let name = row
            .prefix
            .as_deref()
            .or(row.cluster.as_deref())
            .unwrap_or("?");
        tracing::warn!(
            "Envoy {} counted {} for {name}, we expected {}: mismatch",
            row.admin,
            serde_json::to_string(&row.envoy).unwrap_or_default(),
            row.ours
                .map(|o| serde_json::to_string(&o).unwrap_or_default())
                .unwrap_or_default()
        );
    }
}

/// How the run ends once the report is written: failed when no request was answered at all,
/// else when reading Envoy after the run failed.
fn run_result(target: &Target, tally: &load::Tally, admin_failure: Option<Error>) -> Result<()> {
    if tally.completed == 0 && tally.errors.total() > 0 {
        let e = &tally.errors;
        return Err(Error::remote(format!(
            "no request to {} was answered: {} connect errors, {} timeouts, {} resets, {} other",
            target.url, e.connect, e.timeout, e.reset, e.other
        ))
        .with_hint("is the target up and listening? check --url (the report is in the document)"));
    }
    if let Some(e) = admin_failure {
        return Err(e.context("reading Envoy's counters after the run"));
    }
    Ok(())
}

/// Wait for the load to end, or for Ctrl-C / SIGTERM (then stop, give requests in flight a
/// grace period, and abandon them). True when a signal stopped it.
async fn supervise(load: &mut Load, signals: Option<&mut Signals>) -> bool {
    let Some(signals) = signals else {
        load.join().await;
        return false;
    };
    let signalled = tokio::select! {
        _ = load.join() => false,
        _ = signals.recv() => true,
    };
    if signalled {
        load.stop();
        let finished = tokio::select! {
            _ = load.join() => true,
            _ = signals.recv() => false,
            _ = tokio::time::sleep(STOP_GRACE) => false,
        };
        if !finished {
            load.abort();
            load.join().await;
        }
    }
    signalled
}

/// Ctrl-C and SIGTERM, registered before anything else happens so that neither can kill the
/// process before the report is written.
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The live line on stderr (only when it is a terminal): elapsed, sent, answered, errors,
/// the rate over the last second and the p99 so far.
fn spawn_progress(load: &Load) -> (Arc<AtomicBool>, tokio::task::JoinHandle<()>) {
    let done = Arc::new(AtomicBool::new(false));
    let tallies = load.tallies.clone();
    let start = load.shared.start;
    let histogram = load.shared.histogram.clone();
    let flag = done.clone();
    let handle = tokio::spawn(async move {
        let line = Progress::new(NAME, true);
        let mut last_completed = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(1000));
        tick.tick().await;
        while !flag.load(Ordering::Relaxed) {
            tick.tick().await;
            let mut total = load::Tally::new(0, &histogram);
            for t in &tallies {
                total.merge(&t.lock().unwrap_or_else(PoisonError::into_inner));
            }
            let answered = total.completed + total.warmup.completed;
            let rate = answered.saturating_sub(last_completed);
            last_completed = answered;
            let p99 = if total.latency_us.is_empty() {
                "-".to_owned()
            } else {
                format!(
                    "{:.2}",
                    total.latency_us.value_at_quantile(0.99) as f64 / 1000.0
                )
            };
            line.show(format_args!(
                "{:>5.1}s  sent {}  answered {}  errors {}  {} req/s  p99 {} ms",
                start.elapsed().as_secs_f64(),
                total.sent + total.warmup.sent,
                answered,
                total.errors.total() + total.warmup.errors,
                rate,
                p99
            ));
        }
    });
    (done, handle)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rates_must_be_positive_numbers() {
        assert_eq!(parse_rate("12.5"), Ok(12.5));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-3").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("NaN").is_err());
    }

    #[test]
    fn concurrency_and_methods_parse() {
        assert_eq!(parse_concurrency("32"), Ok(32));
        assert!(parse_concurrency("0").is_err());
        assert!(parse_concurrency("100001").is_err());
        assert_eq!(parse_method("post"), Ok(Method::POST));
        assert!(parse_method("GE T").is_err());
    }

    #[test]
    fn headers_need_a_name_and_a_colon() {
        let (n, v) = parse_header("x-envoy-fault-delay-request: 20").unwrap();
        assert_eq!(
            (n.as_str(), v.to_str().unwrap()),
            ("x-envoy-fault-delay-request", "20")
        );
        assert!(parse_header("novalue").is_err());
        assert!(parse_header("bad name: 1").is_err());
        assert!(parse_header(": 1").is_err());
    }

    #[test]
    fn paths_start_with_a_slash() {
        assert_eq!(
            parse_paths("/jazz, /metal").unwrap(),
            vec!["/jazz", "/metal"]
        );
        assert!(parse_paths("jazz").is_err());
        assert!(parse_paths(" , ").is_err());
    }

    #[test]
    fn targets_are_plain_http() {
        let t = Target::parse("http://127.0.0.1:19110/jazz?x=1", "--url").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 19110, "/jazz?x=1")
        );
        assert_eq!(Target::parse("http://mesh", "--url").unwrap().port, 80);
        assert_eq!(
            Target::parse("https://x", "--url").unwrap_err().exit_code(),
            2
        );
        assert_eq!(
            Target::parse("127.0.0.1:80", "--url")
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn a_flag_wins_over_the_document() {
        let doc = StateDoc::parse(r#"{"traffic":{"url":"http://from-doc:1"}}"#).unwrap();
        assert_eq!(
            resolve_url(Some("http://flag:2"), &doc).unwrap().0,
            "http://flag:2"
        );
        assert_eq!(resolve_url(None, &doc).unwrap().0, "http://from-doc:1");
    }
}
