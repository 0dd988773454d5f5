//! amp-local: an endpoint with AMP's API in front of a real Prometheus and Alertmanager.
//!
//! Every AMP call the tools make goes to the same API shape locally as on AWS, with
//! signatures checked as AMP checks them, so no tool needs a "local mode" and signing bugs
//! are caught on a laptop rather than in a user's account. Three parts:
//! - the control plane (workspaces, rule groups namespaces, alert manager definitions, tags,
//!   scrapers), REST-JSON as the AWS SDK for Rust sends it ([`control`], [`scrapers`]);
//! - the data plane under `/workspaces/<id>/api/v1/`, forwarded to the Prometheus ([`data`]);
//! - SigV4 verification of every request except `GET /healthz` ([`sigv4_verify`]), and with
//!   `--iam-from` the caller's IAM policies evaluated for the AMP action ([`identity`],
//!   [`iam_eval`]).
//!
//! State lives in a JSON file in the data directory ([`store`]); rule files and the
//! Alertmanager configuration are derived from it ([`alerting`]) and written where the
//! Prometheus and the Alertmanager read them, which are then reloaded. A change that they
//! refuse is rolled back, so what the API accepted is what they run.
//!
//! All workspaces share the one Prometheus, and are kept apart as AMP keeps them: series,
//! queries and rules are confined to their workspace ([`isolation`]), alerts routed apart
//! ([`alerting`]). amp-local is for one machine, never production: fidelity to AMP's API,
//! signatures and isolation is its job, not scale.
//!
//! A scraper (AMP's managed collector) is run for real: one Prometheus in agent mode per
//! ACTIVE scraper ([`agents`]), on the scraper's own configuration with Kubernetes discovery
//! answered by the local pods given as `--scraper-pod` ([`discovery`]), writing into its
//! workspace through amp-local like any other writer.

pub mod agents;
pub mod alerting;
pub mod control;
pub mod data;
pub mod discovery;
pub mod iam_eval;
pub mod identity;
pub mod isolation;
pub mod istio_proxy;
pub mod quotas;
pub mod scrapers;
pub mod sigv4_verify;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State as AxumState};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use alerting::SnsAccess;
use ampkit::cli::{Runtime, Tool};
use ampkit::error::{Error, Result};
use ampkit::timespec::parse_duration;
use sigv4_verify::{Received, Verifier};
use store::{State, StateFile, write_atomically};

/// Largest control-plane or query body accepted.
pub const MAX_BODY: usize = 8 * 1024 * 1024;
/// Largest remote-write body accepted (snappy-compressed protobuf).
pub const MAX_WRITE_BODY: usize = 64 * 1024 * 1024;
/// How much of an oversized body is read and dropped before answering 413.
const DRAIN_LIMIT: usize = 256 * 1024 * 1024;
/// File-name prefix of the rule files amp-local owns in the rules directory.
const RULE_FILE_PREFIX: &str = "amp-local--";

/// Everything amp-local needs to run, from its flags.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    /// The base URL clients use (prometheusEndpoint is built from it); default `http://<listen>`.
    pub public_url: Option<String>,
    pub prometheus_url: String,
    pub alertmanager_url: Option<String>,
    pub rules_dir: PathBuf,
    pub alertmanager_config: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub region: String,
    pub account_id: String,
    /// Access key id -> secret access key.
    pub credentials: BTreeMap<String, String>,
    pub activation_delay: Duration,
    pub sns_endpoint: Option<String>,
    /// The Prometheus binary each scraper's agent runs.
    pub prometheus_bin: PathBuf,
    /// The pods scrapers' Kubernetes discovery finds.
    pub scraper_pods: Vec<discovery::Pod>,
    /// The Istio sidecars whose merged metrics endpoint is served ([`istio_proxy`]).
    pub istio_proxies: Vec<istio_proxy::Proxy>,
    /// AMP's quotas ([`quotas`]).
    pub limits: quotas::Limits,
    /// moto's URL: other access keys than the fixed ones are looked up there and their IAM
    /// policies enforced ([`identity`]).
    pub iam_from: Option<String>,
}

/// The program's name, as in the ledger and in error lines.
pub const NAME: &str = "amp-local";

/// What the frame needs to know of this tool besides its flags.
pub const TOOL: Tool = Tool {
    name: NAME,
    runtime: Runtime::MultiThread,
    examples: &[
        "amp-local --prometheus-url http://127.0.0.1:9090 --rules-dir rules/ --data-dir data/ --region eu-west-1",
        "amp-local --listen 127.0.0.1:18501 --prometheus-url http://127.0.0.1:18502 --rules-dir r/ --data-dir d/ --alertmanager-url http://127.0.0.1:18503 --alertmanager-config am.yml --credentials keys.txt",
        "amp-local ... --prometheus-bin .local/bin/prometheus --scraper-pod 127.0.0.1:18511,namespace=prod,name=dj-0,container=envoy,app=dj",
        "scripts/local-stack up   # starts it with the rest of the local stack",
    ],
};

/// Serve AMP's API (workspaces, rule groups namespaces, alert manager definitions, scrapers,
/// remote write and queries) on 127.0.0.1, verifying every request's SigV4 signature, and back
/// it with a real Prometheus (rules, data), Alertmanager (alerts) and, per scraper, a
/// Prometheus agent.
#[derive(clap::Parser, Debug)]
pub struct Cli {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:9095", value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// Base URL clients reach amp-local at (prometheusEndpoint uses it) [default: http://<listen>]
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// The Prometheus receiver (remote-write receiver and lifecycle API enabled)
    #[arg(long, value_name = "URL")]
    pub prometheus_url: String,
    /// The Alertmanager whose configuration amp-local writes and reloads
    #[arg(long, value_name = "URL")]
    pub alertmanager_url: Option<String>,
    /// Directory the Prometheus reads rule files from (its rule_files glob: DIR/*.yml)
    #[arg(long, value_name = "DIR")]
    pub rules_dir: PathBuf,
    /// The configuration file the Alertmanager reads; amp-local owns and rewrites it
    #[arg(long, value_name = "FILE")]
    pub alertmanager_config: Option<PathBuf>,
    /// Where the workspaces, rules and definitions are kept (state.json)
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Region requests must be signed for
    #[arg(long, env = "AWS_REGION", value_name = "REGION")]
    pub region: String,
    /// Account id used in ARNs
    #[arg(long, default_value = "123456789012", value_name = "ID")]
    pub account_id: String,
    /// Access keys accepted: lines `ACCESS_KEY_ID SECRET`, or a JSON object; also
    /// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY from the environment
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// How long workspaces stay CREATING (and DELETING) before they turn ACTIVE (gone)
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub activation_delay: Duration,
    /// SNS endpoint the Alertmanager publishes to [default: AWS_ENDPOINT_URL_SNS, AWS_ENDPOINT_URL]
    #[arg(long, value_name = "URL")]
    pub sns_endpoint: Option<String>,
    /// The Prometheus binary run in agent mode for each ACTIVE scraper [default:
    /// $AMPKIT_HOME/bin/prometheus, else .local/bin/prometheus]
    #[arg(long, value_name = "PATH")]
    pub prometheus_bin: Option<PathBuf>,
    /// A local pod that scrapers' kubernetes_sd_configs (role pod) discover (repeatable):
    /// HOST:PORT,name=POD,container=NAME[,namespace=NS][,LABEL=VALUE...][,annotation:KEY=VALUE...].
    /// Other KEY=VALUE pairs are pod labels (`label:KEY=VALUE` for any key); the
    /// prometheus.io/port annotation defaults to PORT, the namespace to `default`
    #[arg(long = "scraper-pod", value_name = "POD", value_parser = discovery::parse_pod)]
    pub scraper_pods: Vec<discovery::Pod>,
    /// Serve an Istio sidecar's merged metrics endpoint (`/stats/prometheus`, Istio's port
    /// 15020) for a local Envoy in Istio's shape (repeatable): Istio's standard metrics
    /// computed from the Envoy's own statistics at each scrape, since istio-proxy cannot run
    /// here. ADDR:PORT,admin=HOST:PORT,workload=NAME[,namespace=NS][,caller=WORKLOAD]
    #[arg(long = "istio-proxy", value_name = "PROXY", value_parser = istio_proxy::parse_proxy)]
    pub istio_proxies: Vec<istio_proxy::Proxy>,
    #[command(flatten, next_help_heading = "AMP's quotas (defaults: AMP's)")]
    pub limits: quotas::Limits,
    /// moto's URL: enforce IAM. Access keys other than the --credentials ones are looked up in
    /// moto's state (IAM users' keys, STS sessions), and each request is refused with 403
    /// AccessDeniedException unless the caller's policies allow its AMP action on its resource.
    /// The --credentials keys keep full access [default: off, every valid signature may do all]
    #[arg(long, value_name = "URL")]
    pub iam_from: Option<String>,
}

/// Serve until stopped, with the options the flags and the environment give.
pub async fn run(cli: Cli) -> Result<()> {
    serve(Options::from_cli(cli)?).await
}

impl Options {
    /// The flags resolved: keys from the file and the environment, the SNS endpoint from the
    /// flag or the variables the AWS SDK reads.
    pub fn from_cli(cli: Cli) -> Result<Self> {
        let mut credentials = match &cli.credentials {
            Some(path) => read_credentials_file(path)?,
            None => BTreeMap::new(),
        };
        if let (Ok(key), Ok(secret)) = (
            std::env::var("AWS_ACCESS_KEY_ID"),
            std::env::var("AWS_SECRET_ACCESS_KEY"),
        ) && !key.is_empty()
        {
            credentials.entry(key).or_insert(secret);
        }
        let sns_endpoint = cli.sns_endpoint.or_else(|| {
            ["AWS_ENDPOINT_URL_SNS", "AWS_ENDPOINT_URL"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        });
        // scripts/setup installs Prometheus into $AMPKIT_HOME/bin (default .local/bin); the
        // path is made absolute so that messages name the file looked for.
        let prometheus_bin = cli.prometheus_bin.unwrap_or_else(|| {
            std::env::var_os("AMPKIT_HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join("bin").join("prometheus"))
                .unwrap_or_else(|| PathBuf::from(".local/bin/prometheus"))
        });
        let prometheus_bin = std::path::absolute(&prometheus_bin).unwrap_or(prometheus_bin);
        Ok(Options {
            prometheus_bin,
            scraper_pods: cli.scraper_pods,
            istio_proxies: cli.istio_proxies,
            limits: cli.limits,
            iam_from: cli.iam_from,
            listen: cli.listen,
            public_url: cli.public_url,
            prometheus_url: cli.prometheus_url,
            alertmanager_url: cli.alertmanager_url,
            rules_dir: cli.rules_dir,
            alertmanager_config: cli.alertmanager_config,
            data_dir: cli.data_dir,
            region: cli.region,
            account_id: cli.account_id,
            credentials,
            activation_delay: cli.activation_delay,
            sns_endpoint,
        })
    }
}

/// Read access keys from a file: one `ACCESS_KEY_ID SECRET` pair per line (`#` comments), or
/// a JSON object `{"ACCESS_KEY_ID": "SECRET", ...}`.
pub fn read_credentials_file(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("cannot read --credentials {}: {e}", path.display())))?;
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(&text).map_err(|e| {
            Error::input(format!(
                "--credentials {}: not a JSON object of strings: {e}",
                path.display()
            ))
            .with_hint(
                "write {\"ACCESS_KEY_ID\": \"SECRET\"} or one `ACCESS_KEY_ID SECRET` per line",
            )
        });
    }
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some(key), Some(secret), None) => {
                out.insert(key.to_owned(), secret.to_owned());
            }
            _ => {
                return Err(Error::input(format!(
                    "--credentials {} line {}: expected `ACCESS_KEY_ID SECRET`",
                    path.display(),
                    n + 1
                )));
            }
        }
    }
    Ok(out)
}

/// An AWS-shaped error answer: status, `x-amzn-errortype`, and `{"message": ...}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
            extra: serde_json::Map::new(),
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "ValidationException", message);
        e.extra.insert("reason".into(), json!("OTHER"));
        e
    }

    pub fn not_found(message: impl Into<String>, id: &str, resource_type: &str) -> Self {
        let mut e = Self::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", message);
        e.extra.insert("resourceId".into(), json!(id));
        e.extra.insert("resourceType".into(), json!(resource_type));
        e
    }

    pub fn conflict(message: impl Into<String>, id: &str, resource_type: &str) -> Self {
        let mut e = Self::new(StatusCode::CONFLICT, "ConflictException", message);
        e.extra.insert("resourceId".into(), json!(id));
        e.extra.insert("resourceType".into(), json!(resource_type));
        e
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerException",
            message,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.extra;
        body.insert("message".into(), json!(self.message));
        let mut response = (self.status, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert("x-amzn-errortype", HeaderValue::from_static(self.kind));
        response
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::internal(e.to_string())
    }
}

/// How a reload went.
enum Reload {
    Done,
    /// The program answered and refused the new files: its message.
    Refused(String),
    /// Nobody answered; the files take effect at its next start.
    Unreachable(String),
}

/// The running server's shared parts.
pub struct App {
    pub opts: Options,
    pub verifier: Verifier,
    /// Who signed: the fixed keys, and with `--iam-from` moto's identities.
    pub identities: identity::Identities,
    pub http: reqwest::Client,
    pub base_url: String,
    state_file: StateFile,
    state: Mutex<State>,
    /// Serializes changes: each one writes files and reloads before the next begins.
    writer: tokio::sync::Mutex<()>,
    /// The scrapers' agent processes.
    pub agents: agents::Agents,
    /// What each workspace has used of its ingestion quotas.
    pub ingest: quotas::Ingest,
    /// The Prometheus's own samples limit, once read ([`data`]'s query cost).
    pub backend_samples: quotas::BackendSamples,
}

impl App {
    pub fn new(opts: Options) -> Result<Self> {
        if opts.credentials.is_empty() {
            return Err(
                Error::usage("amp-local has no credentials to verify signatures with").with_hint(
                    "pass --credentials FILE or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                ),
            );
        }
        std::fs::create_dir_all(&opts.rules_dir).map_err(|e| {
            Error::usage(format!(
                "cannot create --rules-dir {}: {e}",
                opts.rules_dir.display()
            ))
        })?;
        let state_file = StateFile::new(&opts.data_dir)?;
        let state = state_file.load()?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| Error::internal(format!("building the HTTP client: {e}")))?;
        let base_url = opts
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", opts.listen))
            .trim_end_matches('/')
            .to_owned();
        Ok(App {
            agents: agents::Agents::new(
                opts.prometheus_bin.clone(),
                opts.data_dir.join("scrapers"),
            ),
            verifier: Verifier::new(opts.credentials.clone(), opts.region.clone()),
            identities: identity::Identities::new(
                &opts.credentials,
                &opts.account_id,
                opts.iam_from.clone(),
                http.clone(),
            ),
            opts,
            http,
            base_url,
            state_file,
            state: Mutex::new(state),
            writer: tokio::sync::Mutex::new(()),
            ingest: quotas::Ingest::default(),
            backend_samples: quotas::BackendSamples::default(),
        })
    }

    /// The current state (a short lock; never held across an await).
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sns_access(&self) -> SnsAccess {
        // The keys amp-local itself verifies with are the ones it publishes with; locally the
        // SNS is moto, which accepts any.
        let (access_key, secret_key) = self
            .opts
            .credentials
            .iter()
            .next()
            .map(|(k, s)| (k.clone(), s.clone()))
            .unwrap_or_default();
        SnsAccess {
            endpoint: self.opts.sns_endpoint.clone(),
            access_key,
            secret_key,
        }
    }

    pub(crate) fn rule_file_name(ws: &str, ns: &str) -> String {
        format!("{RULE_FILE_PREFIX}{ws}--{ns}.yml")
    }

    fn desired_rule_files(state: &State) -> std::result::Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        for ws in state.workspaces.values() {
            if ws.deleting_since.is_some() {
                continue;
            }
            for ns in ws.rule_groups_namespaces.values() {
                let doc = alerting::validate_rules(&ns.data)?;
                out.insert(
                    Self::rule_file_name(&ws.id, &ns.name),
                    alerting::render_rule_file(doc, &ws.id)?,
                );
            }
        }
        Ok(out)
    }

    /// Make the rules directory hold exactly `state`'s rule files; true if anything changed.
    fn sync_rule_files(&self, state: &State) -> std::result::Result<bool, ApiError> {
        let desired = Self::desired_rule_files(state).map_err(ApiError::validation)?;
        let dir = &self.opts.rules_dir;
        let mut changed = false;
        let mut present = BTreeSet::new();
        let entries = std::fs::read_dir(dir)
            .map_err(|e| ApiError::internal(format!("reading {}: {e}", dir.display())))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(RULE_FILE_PREFIX) || !name.ends_with(".yml") {
                continue;
            }
            if desired.contains_key(&name) {
                present.insert(name);
            } else {
                std::fs::remove_file(entry.path())
                    .map_err(|e| ApiError::internal(format!("removing {name}: {e}")))?;
                changed = true;
            }
        }
        for (name, content) in &desired {
            let path = dir.join(name);
            if present.contains(name)
                && std::fs::read_to_string(&path).is_ok_and(|old| &old == content)
            {
                continue;
            }
            write_atomically(&path, content.as_bytes())?;
            changed = true;
        }
        Ok(changed)
    }

    fn templates_dir(&self) -> PathBuf {
        self.opts.data_dir.join("templates")
    }

    /// Write the Alertmanager configuration (and templates) for `state`; true if changed.
    fn sync_alertmanager(&self, state: &State) -> std::result::Result<bool, ApiError> {
        let Some(path) = &self.opts.alertmanager_config else {
            return Ok(false);
        };
        let mut definitions = Vec::new();
        let mut templates = BTreeMap::new();
        for ws in state.workspaces.values() {
            if ws.deleting_since.is_some() {
                continue;
            }
            if let Some(def) = &ws.alert_manager {
                let parsed =
                    alerting::validate_definition(&def.data).map_err(ApiError::validation)?;
                for (name, text) in &parsed.templates {
                    templates.insert(format!("{}/{name}", ws.id), text.clone());
                }
                definitions.push((ws.id.clone(), parsed));
            }
        }
        let tdir = self.templates_dir();
        let glob = tdir.join("*").join("*");
        let config = alerting::render_alertmanager_config(
            &definitions,
            &self.sns_access(),
            Some(&glob.to_string_lossy()),
        )
        .map_err(ApiError::internal)?;

        let mut changed = false;
        // Templates: rewrite the set (small) when it differs from what is on disk.
        let mut on_disk = BTreeMap::new();
        if let Ok(wss) = std::fs::read_dir(&tdir) {
            for ws in wss.flatten() {
                if let Ok(files) = std::fs::read_dir(ws.path()) {
                    for f in files.flatten() {
                        let rel = format!(
                            "{}/{}",
                            ws.file_name().to_string_lossy(),
                            f.file_name().to_string_lossy()
                        );
                        on_disk.insert(rel, std::fs::read_to_string(f.path()).unwrap_or_default());
                    }
                }
            }
        }
        if on_disk != templates {
            let _ = std::fs::remove_dir_all(&tdir);
            for (rel, text) in &templates {
                let p = tdir.join(rel);
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        ApiError::internal(format!("creating {}: {e}", parent.display()))
                    })?;
                }
                write_atomically(&p, text.as_bytes())?;
            }
            changed = true;
        }
        if std::fs::read_to_string(path).ok().as_deref() != Some(config.as_str()) {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                let _ = std::fs::create_dir_all(parent);
            }
            write_atomically(path, config.as_bytes())?;
            changed = true;
        }
        Ok(changed)
    }

    async fn reload(&self, base: &str) -> Reload {
        let url = format!("{}/-/reload", base.trim_end_matches('/'));
        match self
            .http
            .post(&url)
            .timeout(Duration::from_secs(30))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => Reload::Done,
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                Reload::Refused(format!("{} ({status})", text.trim()))
            }
            Err(e) => Reload::Unreachable(e.to_string()),
        }
    }

    async fn reload_prometheus(&self) -> std::result::Result<(), String> {
        match self.reload(&self.opts.prometheus_url).await {
            Reload::Done => Ok(()),
            Reload::Refused(msg) => Err(msg),
            Reload::Unreachable(e) => {
                tracing::warn!(
                    "Prometheus did not answer the reload ({e}); rules apply at its next start"
                );
                Ok(())
            }
        }
    }

    async fn reload_alertmanager(&self) -> std::result::Result<(), String> {
        let Some(url) = &self.opts.alertmanager_url else {
            return Ok(());
        };
        match self.reload(url).await {
            Reload::Done => Ok(()),
            Reload::Refused(msg) => Err(msg),
            Reload::Unreachable(e) => {
                tracing::warn!(
                    "Alertmanager did not answer the reload ({e}); its config applies at its next start"
                );
                Ok(())
            }
        }
    }

    /// Bring the files on disk and the running programs to `new`, then persist it. On a
    /// refusal everything goes back to `old` and the refusal is the caller's error.
    async fn apply(&self, old: &State, new: State) -> std::result::Result<(), ApiError> {
        let rules_changed = self.sync_rule_files(&new)?;
        if rules_changed && let Err(msg) = self.reload_prometheus().await {
            let _ = self.sync_rule_files(old);
            let _ = self.reload_prometheus().await;
            return Err(ApiError::validation(format!(
                "Prometheus refused the rules: {msg}"
            )));
        }
        let am_changed = match self.sync_alertmanager(&new) {
            Ok(c) => c,
            Err(e) => {
                if rules_changed {
                    let _ = self.sync_rule_files(old);
                    let _ = self.reload_prometheus().await;
                }
                return Err(e);
            }
        };
        if am_changed && let Err(msg) = self.reload_alertmanager().await {
            let _ = self.sync_alertmanager(old);
            let _ = self.reload_alertmanager().await;
            if rules_changed {
                let _ = self.sync_rule_files(old);
                let _ = self.reload_prometheus().await;
            }
            return Err(ApiError::validation(format!(
                "Alertmanager refused the configuration: {msg}"
            )));
        }
        if let Err(e) = self.state_file.save(&new) {
            let _ = self.sync_rule_files(old);
            let _ = self.sync_alertmanager(old);
            let _ = self.reload_prometheus().await;
            let _ = self.reload_alertmanager().await;
            return Err(e.into());
        }
        *self.state() = new;
        Ok(())
    }

    /// Run one change: `f` edits a copy of the state (returning the answer); the copy is
    /// applied and persisted, or nothing changes at all.
    pub async fn change<T>(
        &self,
        f: impl FnOnce(&mut State, f64) -> std::result::Result<T, ApiError>,
    ) -> std::result::Result<T, ApiError> {
        let _guard = self.writer.lock().await;
        let now = store::now_secs();
        let old = self.state().clone();
        let mut new = old.clone();
        new.purge_deleted(self.opts.activation_delay, now);
        let answer = f(&mut new, now)?;
        if new != old {
            self.apply(&old, new).await?;
        }
        Ok(answer)
    }

    /// At start: make the files match the saved state. The reloads are retried in the
    /// background: under `local-stack up` the Prometheus and the Alertmanager may still be
    /// starting, and one that starts after the files were written needs no reload at all.
    pub fn resync(self: &Arc<Self>) -> Result<()> {
        let state = self.state().clone();
        let api = |e: ApiError| Error::input(format!("restoring the saved state: {}", e.message));
        self.sync_rule_files(&state).map_err(api)?;
        self.sync_alertmanager(&state).map_err(api)?;
        let app = Arc::clone(self);
        tokio::spawn(async move {
            let mut targets = vec![("Prometheus", app.opts.prometheus_url.clone())];
            if let Some(am) = &app.opts.alertmanager_url {
                targets.push(("Alertmanager", am.clone()));
            }
            for (what, url) in targets {
                for attempt in 0..120 {
                    match app.reload(&url).await {
                        Reload::Done => break,
                        Reload::Refused(msg) => {
                            tracing::warn!("{what} refused the saved state: {msg}");
                            break;
                        }
                        Reload::Unreachable(e) if attempt == 119 => {
                            tracing::warn!("{what} at {url} never answered a reload: {e}");
                        }
                        Reload::Unreachable(_) => {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
            }
        });
        Ok(())
    }
}

fn too_large(limit: usize) -> Response {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "ValidationException",
        format!("Request body is larger than the {limit} bytes allowed"),
    )
    .into_response()
}

/// Read the whole body, up to `limit` bytes. A larger one is read on (and dropped, up to
/// [`DRAIN_LIMIT`]) before the 413 goes out: a client still sending when the answer comes
/// sees a broken pipe instead of the answer.
async fn read_body(body: Body, limit: usize) -> std::result::Result<bytes::Bytes, ()> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ())?;
        seen = seen.saturating_add(chunk.len());
        if seen > DRAIN_LIMIT {
            return Err(());
        }
        if seen <= limit {
            buf.extend_from_slice(&chunk);
        }
    }
    if seen > limit {
        Err(())
    } else {
        Ok(buf.freeze())
    }
}

/// Split a raw path into percent-decoded segments (an ARN in `/tags/{arn}` arrives encoded).
fn segments(path: &str) -> Vec<String> {
    path.trim_start_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

async fn handle(AxumState(app): AxumState<Arc<App>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    if path == "/healthz" {
        return (StatusCode::OK, "ok\n").into_response();
    }
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| path.clone());
    let limit = if path.ends_with("/api/v1/remote_write") {
        MAX_WRITE_BODY
    } else {
        MAX_BODY
    };
    let body = match read_body(body, limit).await {
        Ok(body) => body,
        Err(()) => return too_large(limit),
    };
    let received = Received {
        method: parts.method.as_str(),
        path_and_query: &path_and_query,
        headers: &parts.headers,
        body: &body,
    };
    let caller = match Verifier::access_key(&parts.headers) {
        Some(key) => match app.identities.resolve(&key).await {
            Ok(caller) => caller,
            // As an unknown key (AWS's answer to a key it cannot find); the cause is logged.
            Err(identity::Unavailable(why)) => {
                tracing::warn!("{why}");
                None
            }
        },
        None => None,
    };
    let secret = caller.as_ref().map(|c| c.secret.clone());
    if let Err(rejection) = app
        .verifier
        .verify_with(&received, SystemTime::now(), |_| secret)
    {
        tracing::info!("{} {}: 403 {}", parts.method, path, rejection.error_type());
        return ApiError::new(
            StatusCode::FORBIDDEN,
            rejection.error_type(),
            rejection.message(),
        )
        .into_response();
    }
    let segs = segments(&path);
    if let Some(caller) = &caller
        && let Some(refused) = authorize(&app, caller, &parts, &segs, &body)
    {
        return refused;
    }
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let data_api = match segs.as_slice() {
        [ws, _, api, v1, ..] if ws == "workspaces" && api == "api" && v1 == "v1" => {
            Some((data::Api::Prometheus, 4))
        }
        [ws, _, am, api, v2, ..]
            if ws == "workspaces" && am == "alertmanager" && api == "api" && v2 == "v2" =>
        {
            Some((data::Api::Alertmanager, 5))
        }
        _ => None,
    };
    if let Some((api, skip)) = data_api {
        let req = data::DataRequest {
            method: &parts.method,
            workspace_id: &segs[1],
            rest: &segs[skip..],
            query: &query,
            headers: &parts.headers,
            body,
        };
        return data::handle(&app, api, req).await;
    }
    control::handle(&app, &parts.method, &segs, &query, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// The caller's session token and IAM policies against the request: `Some` answer refuses it
/// as AMP does (403 UnrecognizedClientException for a session's missing or wrong token, 403
/// AccessDeniedException for what the policies do not allow).
fn authorize(
    app: &App,
    caller: &identity::Caller,
    parts: &http::request::Parts,
    segs: &[String],
    body: &[u8],
) -> Option<Response> {
    if let Some(token) = &caller.session_token {
        let sent = parts
            .headers
            .get("x-amz-security-token")
            .map(|v| v.as_bytes());
        if sent != Some(token.as_bytes()) {
            let rejection = sigv4_verify::Rejection::UnknownAccessKey;
            tracing::info!("{} {}: 403 session token", parts.method, parts.uri.path());
            return Some(
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    rejection.error_type(),
                    rejection.message(),
                )
                .into_response(),
            );
        }
    }
    let (action, resource) = identity::action_for(
        &app.opts.region,
        &app.opts.account_id,
        &parts.method,
        segs,
        body,
    )?;
    let tags = app.resource_tags(&resource);
    let outcome = caller.decide(action, &resource, &tags, &app.opts.region);
    for unknown in &outcome.unknown_operators {
        tracing::warn!(
            "{}: condition operator {unknown} is not evaluated by amp-local: it grants nothing",
            caller.arn
        );
    }
    if outcome.decision == iam_eval::Decision::Allow {
        return None;
    }
    let message = caller.denial_message(action, &resource, outcome.decision);
    tracing::info!("{} {}: 403 {message}", parts.method, parts.uri.path());
    Some(ApiError::new(StatusCode::FORBIDDEN, "AccessDeniedException", message).into_response())
}

impl App {
    /// The tags of the workspace, rule groups namespace or scraper `arn` names (none for
    /// others), as the `aws:ResourceTag/...` condition keys see them.
    fn resource_tags(&self, arn: &str) -> BTreeMap<String, String> {
        let state = self.state();
        for ws in state.workspaces.values() {
            if ws.arn == arn {
                return ws.tags.clone();
            }
            if let Some(ns) = ws.rule_groups_namespaces.values().find(|n| n.arn == arn) {
                return ns.tags.clone();
            }
        }
        state
            .scrapers
            .values()
            .find(|s| s.arn == arn)
            .map(|s| s.tags.clone())
            .unwrap_or_default()
    }
}

/// Serve until SIGINT or SIGTERM.
pub async fn serve(opts: Options) -> Result<()> {
    let listen = opts.listen;
    // amp-local accepts the local keys and forwards to an unauthenticated Prometheus: it is
    // for one machine, never a network, so it refuses to listen anywhere but loopback.
    if !listen.ip().is_loopback() {
        return Err(Error::usage(format!(
            "--listen {listen} is not a loopback address; amp-local serves this machine only"
        ))
        .with_hint("use --listen 127.0.0.1:PORT"));
    }
    let app = Arc::new(App::new(opts)?);
    app.resync()?;
    let router = axum::Router::new()
        .fallback(handle)
        .with_state(Arc::clone(&app));
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        Error::usage(format!("cannot listen on {listen}: {e}"))
            .with_hint("pick a free port with --listen 127.0.0.1:PORT")
    })?;
    tracing::info!("amp-local listening on {}", app.base_url);
    // Only now that the address is ours: a second amp-local on the same data directory, which
    // cannot listen, must not touch the first one's agents.
    let known: Vec<String> = app.state().scrapers.keys().cloned().collect();
    app.agents.reap_stale(&known).await;
    scrapers::supervise(&app);
    istio_proxy::start(&app.opts.istio_proxies, app.http.clone()).await?;
    // Answers are streamed in several writes; Nagle's algorithm would hold the later ones back.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // The agents stop before the server does, so their last writes still reach a workspace.
    let stopping = Arc::clone(&app);
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            stopping.agents.stop_all().await;
        })
        .await;
    // Stopped some other way (an error): the agents go too, never left behind.
    app.agents.stop_all().await;
    served.map_err(|e| Error::remote(format!("serving on {listen}: {e}")))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// A response body that is passed through as it streams in.
pub(crate) fn stream_body(response: reqwest::Response) -> Body {
    Body::from_stream(response.bytes_stream())
}
