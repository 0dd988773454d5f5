//! AMP's managed collectors (scrapers): CreateScraper, DescribeScraper, ListScrapers and
//! DeleteScraper in the shapes aws-sdk-amp sends and reads, emulated for real.
//!
//! A scraper is not only a record: while it is ACTIVE, amp-local runs a Prometheus in agent
//! mode for it ([`crate::agents`]) on the scraper's own configuration, with Kubernetes
//! discovery answered by the local pods ([`crate::discovery`]), remote-writing into the
//! destination workspace through amp-local's own data plane, signed with SigV4 like any
//! other writer. So a scraper that AMP would run here scrapes, relabels and writes, and
//! what it writes can be queried.
//!
//! Its status follows that process rather than the clock alone: CREATING for at least the
//! `--activation-delay` (as workspaces), then ACTIVE once its agent answers, or
//! CREATION_FAILED with a reason when the agent cannot start (no Prometheus binary, a
//! configuration Prometheus refuses). DeleteScraper makes it DELETING; its agent is stopped
//! and it is gone one delay later. A supervisor task drives these steps, restarts the agent
//! of an ACTIVE scraper that exited (and at amp-local's start), and never holds the state
//! lock while a process starts or stops. What is checked when: a body AMP would refuse
//! (missing or malformed source, destination or configuration, a destination that is not a
//! workspace of this account and region) is a ValidationException at once, as AMP answers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::control::{Answer, ok, opt_string, page, parse_body, query_pairs, tags_of};
use super::discovery::{self, RemoteWrite};
use super::store::{self, Scraper, State, settled};
use super::{ApiError, App};

pub const CREATING: &str = "CREATING";
pub const ACTIVE: &str = "ACTIVE";
pub const CREATION_FAILED: &str = "CREATION_FAILED";
pub const DELETING: &str = "DELETING";
pub const DELETION_FAILED: &str = "DELETION_FAILED";
const STATUSES: &[&str] = &[CREATING, ACTIVE, CREATION_FAILED, DELETING, DELETION_FAILED];

/// How often the supervisor looks, when nothing wakes it sooner.
const TICK: Duration = Duration::from_millis(250);
/// How long an ACTIVE scraper's agent that will not start again waits between attempts.
const RESTART_BACKOFF: Duration = Duration::from_secs(10);

/// The filters ListScrapers takes (its `filters` map travels as query parameters).
const FILTERS: &[&str] = &["status", "alias", "sourceArn", "destinationArn"];

/// An id of AMP's shape: `s-` and a random (version 4) UUID.
fn new_scraper_id() -> String {
    let hex = |n: usize| -> String {
        (0..n)
            .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
            .collect()
    };
    let variant = char::from_digit(fastrand::u32(8..12), 16).unwrap_or('8');
    format!(
        "s-{}-{}-4{}-{variant}{}-{}",
        hex(8),
        hex(4),
        hex(3),
        hex(3),
        hex(12)
    )
}

fn validation(message: impl Into<String>) -> ApiError {
    ApiError::validation(message)
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Scraper not found: {id}"), id, "Scraper")
}

/// A list of 1-5 ids of one AWS kind (`subnet-...`, `sg-...`), as AMP checks them.
fn ids_of(
    obj: &Map<String, Value>,
    field: &str,
    prefix: &str,
    required: bool,
) -> Result<(), ApiError> {
    let Some(value) = obj.get(field).filter(|v| !v.is_null()) else {
        return if required {
            Err(validation(format!("source.{field} is required")))
        } else {
            Ok(())
        };
    };
    let list = value
        .as_array()
        .filter(|l| (1..=5).contains(&l.len()))
        .ok_or_else(|| validation(format!("{field} must be a list of 1 to 5 ids")))?;
    for id in list {
        let ok = id.as_str().is_some_and(|s| {
            s.strip_prefix(prefix).is_some_and(|rest| {
                !rest.is_empty()
                    && rest
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            })
        });
        if !ok {
            return Err(validation(format!(
                "{field}: {id} is not an id of the form {prefix}..."
            )));
        }
    }
    Ok(())
}

/// The `source` union: `eksConfiguration` (clusterArn, subnetIds, optional securityGroupIds)
/// or `vpcConfiguration`; kept as sent.
fn check_source(body: &Map<String, Value>) -> Result<Value, ApiError> {
    let source = match body.get("source") {
        None | Some(Value::Null) => {
            return Err(validation(
                "source is required: give source.eksConfiguration with the clusterArn and \
                 subnetIds of the cluster to scrape",
            ));
        }
        Some(Value::Object(o)) => o,
        Some(_) => return Err(validation("source must be an object")),
    };
    let mut variants = source.iter();
    let (Some((kind, config)), None) = (variants.next(), variants.next()) else {
        return Err(validation(
            "source must have exactly one of eksConfiguration and vpcConfiguration",
        ));
    };
    let config = config
        .as_object()
        .ok_or_else(|| validation(format!("source.{kind} must be an object")))?;
    match kind.as_str() {
        "eksConfiguration" => {
            let arn = config
                .get("clusterArn")
                .and_then(Value::as_str)
                .ok_or_else(|| validation("source.eksConfiguration.clusterArn is required"))?;
            let parts: Vec<&str> = arn.splitn(6, ':').collect();
            let is_cluster = matches!(
                parts.as_slice(),
                ["arn", partition, "eks", region, account, resource]
                    if partition.starts_with("aws")
                        && !region.is_empty()
                        && account.len() == 12
                        && account.chars().all(|c| c.is_ascii_digit())
                        && resource.strip_prefix("cluster/").is_some_and(|n| !n.is_empty())
            );
            if !is_cluster {
                return Err(validation(format!(
                    "source.eksConfiguration.clusterArn {arn} is not an EKS cluster ARN \
                     (arn:aws:eks:REGION:ACCOUNT:cluster/NAME)"
                )));
            }
            ids_of(config, "subnetIds", "subnet-", true)?;
            ids_of(config, "securityGroupIds", "sg-", false)?;
        }
        "vpcConfiguration" => {
            ids_of(config, "subnetIds", "subnet-", true)?;
            ids_of(config, "securityGroupIds", "sg-", true)?;
        }
        other => {
            return Err(validation(format!(
                "source.{other} is not a scraper source (eksConfiguration or vpcConfiguration)"
            )));
        }
    }
    Ok(Value::Object(source.clone()))
}

/// AMP's ScraperAlias: 1-100 characters, `[0-9A-Za-z][-.0-9A-Z_a-z]*`.
fn check_alias(alias: &str) -> Result<(), ApiError> {
    let ok = (1..=100).contains(&alias.len())
        && alias.starts_with(|c: char| c.is_ascii_alphanumeric())
        && alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if ok {
        Ok(())
    } else {
        Err(validation(format!(
            "alias {alias:?} is not a scraper alias: 1 to 100 letters, digits, `-`, `.` or `_`, \
             starting with a letter or digit"
        )))
    }
}

/// What CreateScraper asked for, checked.
struct Request {
    alias: Option<String>,
    client_token: Option<String>,
    tags: BTreeMap<String, String>,
    source: Value,
    workspace_arn: String,
    workspace_id: String,
    configuration: String,
    role_configuration: Option<Value>,
}

impl App {
    fn scraper_arn(&self, id: &str) -> String {
        format!(
            "arn:aws:aps:{}:{}:scraper/{id}",
            self.opts.region, self.opts.account_id
        )
    }

    /// The service-linked role AMP makes for a scraper; its name ends with the start of the
    /// scraper's id, as AMP's does.
    fn scraper_role_arn(&self, id: &str) -> String {
        let suffix: String = id.trim_start_matches("s-").chars().take(15).collect();
        format!(
            "arn:aws:iam::{}:role/aws-service-role/scraper.aps.amazonaws.com/\
             AWSServiceRoleForAmazonPrometheusScraper_{suffix}",
            self.opts.account_id
        )
    }

    /// The workspace id a destination ARN names, if it is a workspace ARN of this account and
    /// region.
    fn workspace_of_arn<'a>(&self, arn: &'a str) -> Option<&'a str> {
        let prefix = format!(
            "arn:aws:aps:{}:{}:workspace/",
            self.opts.region, self.opts.account_id
        );
        arn.strip_prefix(&prefix).filter(|id| !id.is_empty())
    }

    /// Where a scraper's agent writes: amp-local's own remote-write path of the workspace
    /// (on the address it listens on, which the agent beside it reaches), signed with a key
    /// amp-local accepts.
    fn remote_write(&self, workspace_id: &str) -> RemoteWrite {
        let (access_key, secret_key) = self
            .opts
            .credentials
            .iter()
            .next()
            .map(|(k, s)| (k.clone(), s.clone()))
            .unwrap_or_default();
        RemoteWrite {
            url: format!(
                "http://{}/workspaces/{workspace_id}/api/v1/remote_write",
                self.opts.listen
            ),
            region: self.opts.region.clone(),
            access_key,
            secret_key,
        }
    }

    /// The configuration a scraper's agent runs.
    fn agent_config(&self, configuration: &str, workspace_id: &str) -> Result<String, String> {
        discovery::agent_config(
            configuration,
            &self.opts.scraper_pods,
            &self.remote_write(workspace_id),
        )
    }
}

/// The destination's workspace, which must exist (and not be on its way out) in `state`.
fn existing_workspace(state: &State, arn: &str, id: &str) -> Result<(), ApiError> {
    match state.workspaces.get(id) {
        Some(ws) if ws.deleting_since.is_none() => Ok(()),
        _ => Err(validation(format!(
            "destination.ampConfiguration.workspaceArn {arn} names no workspace: create it \
             first (CreateWorkspace) or give the ARN of an existing one"
        ))),
    }
}

fn parse_create(app: &App, body: &[u8]) -> Result<Request, ApiError> {
    let body = parse_body(body)?;
    let alias = opt_string(&body, "alias")?;
    if let Some(alias) = &alias {
        check_alias(alias)?;
    }
    let client_token = opt_string(&body, "clientToken")?;
    if let Some(token) = &client_token
        && !(1..=64).contains(&token.len())
    {
        return Err(validation("clientToken must be 1 to 64 characters"));
    }
    let tags = tags_of(&body)?;
    let source = check_source(&body)?;

    let workspace_arn = body
        .get("destination")
        .and_then(|d| d.get("ampConfiguration"))
        .and_then(|a| a.get("workspaceArn"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            validation(
                "destination is required: give destination.ampConfiguration.workspaceArn, the \
                 ARN of the workspace the scraper writes to",
            )
        })?
        .to_owned();
    let workspace_id = app
        .workspace_of_arn(&workspace_arn)
        .ok_or_else(|| {
            validation(format!(
                "destination.ampConfiguration.workspaceArn {workspace_arn} is not a workspace \
                 ARN of this account and region (arn:aws:aps:{}:{}:workspace/ID)",
                app.opts.region, app.opts.account_id
            ))
        })?
        .to_owned();
    existing_workspace(&app.state(), &workspace_arn, &workspace_id)?;

    let blob = body
        .get("scrapeConfiguration")
        .and_then(|c| c.get("configurationBlob"))
        .ok_or_else(|| {
            validation(
                "scrapeConfiguration is required: give scrapeConfiguration.configurationBlob, a \
                 Prometheus configuration in base64",
            )
        })?
        .as_str()
        .ok_or_else(|| validation("scrapeConfiguration.configurationBlob must be a string"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob.as_bytes())
        .map_err(|e| {
            validation(format!(
                "scrapeConfiguration.configurationBlob is not base64: {e}"
            ))
        })?;
    let configuration = String::from_utf8(bytes).map_err(|_| {
        validation("scrapeConfiguration.configurationBlob is not UTF-8 text (a YAML configuration)")
    })?;
    discovery::check_configuration(&configuration)
        .map_err(|why| validation(format!("The scrape configuration is not valid: {why}")))?;

    let role_configuration = match body.get("roleConfiguration") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => Some(Value::Object(o.clone())),
        Some(_) => return Err(validation("roleConfiguration must be an object")),
    };
    Ok(Request {
        alias,
        client_token,
        tags,
        source,
        workspace_arn,
        workspace_id,
        configuration,
        role_configuration,
    })
}

/// A scraper as ListScrapers gives it (ScraperSummary); `full` adds what only
/// DescribeScraper has (ScraperDescription: the configuration).
fn scraper_json(s: &Scraper, full: bool) -> Value {
    let mut v = json!({
        "scraperId": s.id,
        "arn": s.arn,
        "roleArn": s.role_arn,
        "status": {"statusCode": s.status},
        "createdAt": s.created_at,
        "lastModifiedAt": s.last_modified_at,
        "tags": s.tags,
        "source": s.source,
        "destination": {"ampConfiguration": {"workspaceArn": s.workspace_arn}},
    });
    if let Some(alias) = &s.alias {
        v["alias"] = json!(alias);
    }
    if let Some(reason) = &s.status_reason {
        v["statusReason"] = json!(reason);
    }
    if let Some(role) = &s.role_configuration {
        v["roleConfiguration"] = role.clone();
    }
    if full {
        v["scrapeConfiguration"] = json!({
            "configurationBlob":
                base64::engine::general_purpose::STANDARD.encode(s.configuration.as_bytes()),
        });
    }
    v
}

fn create_answer(s: &Scraper) -> Value {
    json!({
        "arn": s.arn,
        "scraperId": s.id,
        "status": {"statusCode": s.status},
        "tags": s.tags,
    })
}

pub async fn create(app: &App, body: &[u8]) -> Answer {
    let req = parse_create(app, body)?;
    // Prometheus's own check of what the agent will run, before anything is made.
    let config = app
        .agent_config(&req.configuration, &req.workspace_id)
        .map_err(|why| validation(format!("The scrape configuration is not valid: {why}")))?;
    app.agents.check(&config).await.map_err(|why| {
        validation(format!(
            "The scrape configuration is not valid: Prometheus refuses it: {why}"
        ))
    })?;
    let id = new_scraper_id();
    let arn = app.scraper_arn(&id);
    let role_arn = app.scraper_role_arn(&id);
    let answer = app
        .change(|state, now| {
            // A retry with the same token gets the scraper the first call made.
            if let Some(token) = &req.client_token
                && let Some(made) = state
                    .scrapers
                    .values()
                    .find(|s| s.client_token.as_ref() == Some(token) && s.deleting_since.is_none())
            {
                return Ok(create_answer(made));
            }
            existing_workspace(state, &req.workspace_arn, &req.workspace_id)?;
            let scraper = Scraper {
                id: id.clone(),
                arn,
                alias: req.alias,
                role_arn,
                status: CREATING.to_owned(),
                status_reason: None,
                created_at: now,
                last_modified_at: now,
                deleting_since: None,
                source: req.source,
                workspace_arn: req.workspace_arn,
                workspace_id: req.workspace_id,
                configuration: req.configuration,
                role_configuration: req.role_configuration,
                tags: req.tags,
                client_token: req.client_token,
            };
            let answer = create_answer(&scraper);
            state.scrapers.insert(id.clone(), scraper);
            Ok(answer)
        })
        .await?;
    app.agents.wake();
    ok(StatusCode::ACCEPTED, answer)
}

pub fn describe(app: &App, id: &str) -> Answer {
    let state = app.state();
    let s = state.scrapers.get(id).ok_or_else(|| not_found(id))?;
    ok(StatusCode::OK, json!({ "scraper": scraper_json(s, true) }))
}

/// The filters of a ListScrapers query: key -> accepted values (OR within a key, AND across).
fn filters_of(query: &str) -> Result<BTreeMap<String, Vec<String>>, ApiError> {
    let mut filters: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in query_pairs(query) {
        if k == "maxResults" || k == "nextToken" {
            continue;
        }
        if !FILTERS.contains(&k.as_str()) {
            return Err(validation(format!(
                "{k} is not a ListScrapers filter (filters are {})",
                FILTERS.join(", ")
            )));
        }
        if k == "status" && !STATUSES.contains(&v.as_str()) {
            return Err(validation(format!(
                "status {v} is not a scraper status (one of {})",
                STATUSES.join(", ")
            )));
        }
        filters.entry(k).or_default().push(v);
    }
    Ok(filters)
}

fn matches(s: &Scraper, filters: &BTreeMap<String, Vec<String>>) -> bool {
    let source_arn = s
        .source
        .get("eksConfiguration")
        .and_then(|e| e.get("clusterArn"))
        .and_then(Value::as_str);
    filters.iter().all(|(k, values)| {
        let have = match k.as_str() {
            "status" => Some(s.status.as_str()),
            "alias" => s.alias.as_deref(),
            "sourceArn" => source_arn,
            "destinationArn" => Some(s.workspace_arn.as_str()),
            _ => None,
        };
        have.is_some_and(|h| values.iter().any(|v| v == h))
    })
}

pub fn list(app: &App, query: &str) -> Answer {
    let filters = filters_of(query)?;
    let items: Vec<Value> = {
        let state = app.state();
        let mut list: Vec<&Scraper> = state
            .scrapers
            .values()
            .filter(|s| matches(s, &filters))
            .collect();
        list.sort_by(|a, b| a.created_at.total_cmp(&b.created_at).then(a.id.cmp(&b.id)));
        list.into_iter().map(|s| scraper_json(s, false)).collect()
    };
    let (items, next) = page(&items, query)?;
    let mut out = json!({ "scrapers": items });
    if let Some(next) = next {
        out["nextToken"] = json!(next);
    }
    ok(StatusCode::OK, out)
}

pub async fn delete(app: &App, id: &str) -> Answer {
    app.change(|state, now| {
        let s = state.scrapers.get_mut(id).ok_or_else(|| not_found(id))?;
        if s.status != DELETING {
            s.status = DELETING.to_owned();
            s.status_reason = None;
            s.deleting_since = Some(now);
            s.last_modified_at = now;
        }
        Ok(())
    })
    .await?;
    app.agents.wake();
    ok(
        StatusCode::ACCEPTED,
        json!({"scraperId": id, "status": {"statusCode": DELETING}}),
    )
}

/// What the supervisor does for one scraper.
#[derive(Debug, Clone, Copy)]
enum Job {
    /// CREATING, delay over: start its agent, then ACTIVE (or CREATION_FAILED).
    Activate,
    /// ACTIVE without an agent (amp-local restarted, or the agent exited): start it again.
    Restart,
    /// Stop its agent (DELETING, failed, or a scraper that is gone).
    Stop,
    /// DELETING, agent stopped, delay over: forget it.
    Remove,
}

/// A scraper the supervisor is working on; released (and the supervisor woken) when the job
/// ends, however it ends.
struct Busy {
    app: Arc<App>,
    set: Arc<Mutex<BTreeSet<String>>>,
    id: String,
}

impl Busy {
    fn claim(app: &Arc<App>, set: &Arc<Mutex<BTreeSet<String>>>, id: &str) -> Option<Busy> {
        let fresh = set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned());
        fresh.then(|| Busy {
            app: Arc::clone(app),
            set: Arc::clone(set),
            id: id.to_owned(),
        })
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
        self.app.agents.wake();
    }
}

/// Start the supervisor: it runs until amp-local stops its agents.
pub fn supervise(app: &Arc<App>) {
    let app = Arc::clone(app);
    tokio::spawn(async move {
        let busy = Arc::new(Mutex::new(BTreeSet::new()));
        let mut attempts: BTreeMap<String, Instant> = BTreeMap::new();
        while !app.agents.closing() {
            tick(&app, &busy, &mut attempts);
            tokio::select! {
                () = app.agents.woken() => {}
                () = tokio::time::sleep(TICK) => {}
            }
        }
    });
}

/// One look at every scraper: start the jobs that are due and not already under way.
fn tick(
    app: &Arc<App>,
    busy: &Arc<Mutex<BTreeSet<String>>>,
    attempts: &mut BTreeMap<String, Instant>,
) {
    let delay = app.opts.activation_delay;
    let now = store::now_secs();
    let scrapers: Vec<Scraper> = app.state().scrapers.values().cloned().collect();
    let mut jobs: Vec<(String, Job)> = app
        .agents
        .ids()
        .into_iter()
        .filter(|id| !scrapers.iter().any(|s| &s.id == id))
        .map(|id| (id, Job::Stop))
        .collect();
    for s in &scrapers {
        let id = s.id.clone();
        let job = match s.status.as_str() {
            CREATING if settled(s.created_at, delay, now) => Job::Activate,
            ACTIVE if !app.agents.is_running(&id) => {
                if attempts
                    .get(&id)
                    .is_some_and(|t| t.elapsed() < RESTART_BACKOFF)
                {
                    continue;
                }
                attempts.insert(id.clone(), Instant::now());
                Job::Restart
            }
            DELETING | CREATION_FAILED | DELETION_FAILED if app.agents.has(&id) => Job::Stop,
            DELETING if settled(s.deleting_since.unwrap_or(s.last_modified_at), delay, now) => {
                Job::Remove
            }
            _ => continue,
        };
        jobs.push((id, job));
    }
    attempts.retain(|id, _| scrapers.iter().any(|s| &s.id == id && s.status == ACTIVE));
    for (id, job) in jobs {
        let Some(guard) = Busy::claim(app, busy, &id) else {
            continue;
        };
        let app = Arc::clone(app);
        tokio::spawn(async move {
            run(&app, &id, job).await;
            drop(guard);
        });
    }
}

/// Set a scraper's status if it still is `from` (a DeleteScraper may have come meanwhile).
async fn transition(app: &App, id: &str, from: &str, to: &str, reason: Option<String>) -> bool {
    let changed = app
        .change(|state, now| {
            let Some(s) = state.scrapers.get_mut(id).filter(|s| s.status == from) else {
                return Ok(false);
            };
            s.status = to.to_owned();
            s.status_reason = reason;
            s.last_modified_at = now;
            Ok(true)
        })
        .await;
    match changed {
        Ok(changed) => changed,
        Err(e) => {
            tracing::warn!("scraper {id}: could not record {to}: {}", e.message);
            false
        }
    }
}

async fn run(app: &App, id: &str, job: Job) {
    match job {
        Job::Activate | Job::Restart => {
            let Some(s) = app.state().scrapers.get(id).cloned() else {
                return;
            };
            if matches!(job, Job::Restart)
                && let Some(how) = app.agents.exit_of(id)
            {
                tracing::warn!("scraper {id}: its agent exited ({how}); starting it again");
            }
            let started = match app.agent_config(&s.configuration, &s.workspace_id) {
                Ok(config) => app.agents.start(id, &config).await,
                Err(why) => Err(format!("its configuration cannot run: {why}")),
            };
            match (started, job) {
                (Ok(_), Job::Activate) => {
                    if transition(app, id, CREATING, ACTIVE, None).await {
                        tracing::info!("scraper {id} is ACTIVE");
                    }
                    // Not CREATING any more (deleted meanwhile): the next look stops it.
                }
                (Ok(_), _) => {}
                // Stopping amp-local is no failure of the scraper's.
                (Err(_), _) if app.agents.closing() => {}
                (Err(why), Job::Activate) => {
                    tracing::warn!("scraper {id}: CREATION_FAILED: {why}");
                    transition(app, id, CREATING, CREATION_FAILED, Some(why)).await;
                }
                (Err(why), _) => {
                    tracing::warn!(
                        "scraper {id}: its agent does not start ({why}); trying again in {} s",
                        RESTART_BACKOFF.as_secs()
                    );
                }
            }
        }
        Job::Stop => {
            if let Err(why) = app.agents.stop(id).await {
                tracing::warn!("scraper {id}: {why}");
                transition(app, id, DELETING, DELETION_FAILED, Some(why)).await;
            }
        }
        Job::Remove => {
            let removed = app
                .change(|state, _| {
                    let gone = state.scrapers.get(id).is_some_and(|s| s.status == DELETING);
                    if gone {
                        state.scrapers.remove(id);
                    }
                    Ok(gone)
                })
                .await;
            match removed {
                Ok(true) => {
                    app.agents.remove_files(id);
                    tracing::info!("scraper {id} deleted");
                }
                Ok(false) => {}
                Err(e) => tracing::warn!("scraper {id}: could not remove it: {}", e.message),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scraper(status: &str, alias: Option<&str>) -> Scraper {
        Scraper {
            id: new_scraper_id(),
            arn: "arn".into(),
            alias: alias.map(str::to_owned),
            role_arn: "role".into(),
            status: status.into(),
            status_reason: None,
            created_at: 1.0,
            last_modified_at: 1.0,
            deleting_since: None,
            source: json!({"eksConfiguration": {"clusterArn": "arn:aws:eks:eu-west-1:123456789012:cluster/c", "subnetIds": ["subnet-1"]}}),
            workspace_arn: "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1".into(),
            workspace_id: "ws-1".into(),
            configuration: String::new(),
            role_configuration: None,
            tags: BTreeMap::new(),
            client_token: None,
        }
    }

    #[test]
    fn ids_have_amps_shape() {
        let id = new_scraper_id();
        assert_eq!(id.len(), 38, "{id}");
        let groups: Vec<usize> = id["s-".len()..].split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
    }

    #[test]
    fn list_filters_are_anded_across_keys_and_ored_within_one() {
        let a = scraper(ACTIVE, Some("a"));
        let b = scraper(CREATING, Some("b"));
        let f = filters_of("status=ACTIVE&status=CREATING&alias=b").expect("filters");
        assert!(!matches(&a, &f));
        assert!(matches(&b, &f));
        let f = filters_of(
            "sourceArn=arn%3Aaws%3Aeks%3Aeu-west-1%3A123456789012%3Acluster%2Fc&maxResults=5",
        )
        .expect("filters");
        assert!(matches(&a, &f) && matches(&b, &f));
        assert!(filters_of("colour=red").is_err());
        assert!(filters_of("status=RUNNING").is_err());
    }

    #[test]
    fn sources_are_checked_as_amp_checks_them() {
        let body = |source: Value| {
            let mut m = Map::new();
            m.insert("source".into(), source);
            m
        };
        let eks = |arn: &str, subnets: Value| {
            body(json!({"eksConfiguration": {"clusterArn": arn, "subnetIds": subnets}}))
        };
        let arn = "arn:aws:eks:eu-west-1:123456789012:cluster/demo";
        assert!(check_source(&eks(arn, json!(["subnet-1a"]))).is_ok());
        for (bad, fragment) in [
            (Map::new(), "source is required"),
            (
                eks("arn:aws:eks:eu-west-1:1:cluster/x", json!(["subnet-1"])),
                "not an EKS cluster ARN",
            ),
            (eks(arn, json!([])), "1 to 5"),
            (eks(arn, json!(["sub-1"])), "subnet-..."),
            (
                body(json!({"mskConfiguration": {}})),
                "not a scraper source",
            ),
        ] {
            let err = check_source(&bad).expect_err(fragment);
            assert!(err.message.contains(fragment), "{}", err.message);
        }
    }

    #[test]
    fn aliases_follow_amps_pattern() {
        assert!(check_alias("ampkit-demo_1.x").is_ok());
        assert!(check_alias("-x").is_err());
        assert!(check_alias("a b").is_err());
        assert!(check_alias("").is_err());
    }
}
