//! `teardown`: delete exactly what the ampkit tools recorded in the document's ledger, newest
//! first, and nothing else.
//!
//! The ledger is the only selector: every entry is deleted by the identifier it recorded
//! (id, ARN, uid; account and region), never by listing and matching names, which is how
//! deny-list tools (aws-nuke, cloud-nuke) came to delete what a filter failed to exclude. Each
//! entry is first planned from read-only calls (is it there, is it still ours, is anything
//! else using it), and the plan is what `--dry-run` prints; only then, and only without
//! `--dry-run`, is it deleted. An entry that cannot be handled (unknown kind, missing field,
//! not ours any more, still in use, a service failure) is reported and kept in the ledger; the
//! others go on. "Not found" counts as already gone only once STS says we asked the entry's
//! own account, in the entry's own region.
//!
//! With `--state FILE` the document is read from FILE and FILE is rewritten (atomically) after
//! every entry, so a teardown killed half-way leaves a ledger that lists exactly what is still
//! there; a second run finishes the job.

mod entry;
mod state;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use ampkit::aws::{self, AwsArgs};
use ampkit::cli::{Runtime, Tool};
use ampkit::doc::{ResourceKind, StateDoc};
use ampkit::error::{Error, ErrorKind, Result};
use ampkit::grafana::{Grafana, GrafanaArgs};
use ampkit::ledger::{self, Seen, Verdict};
use ampkit::poll::Progress;
use ampkit::sts::Caller;
use ampkit::timespec::parse_duration;

/// The program's name, as in the ledger and in error lines.
pub const NAME: &str = "teardown";
/// The document's key of the report.
pub const SECTION: &str = "teardown";

/// What the frame needs to know of this tool besides its flags.
pub const TOOL: Tool = Tool {
    name: NAME,
    runtime: Runtime::CurrentThread,
    examples: &[
        "teardown --dry-run < out/state.json",
        "teardown --state out/state.json",
        "teardown < state.json > left.json || teardown < left.json",
    ],
};

/// Delete, newest first, exactly the objects the document's `resources` ledger lists; keep in
/// the ledger what could not be deleted (and say why, in the `teardown` section); exit 1 when
/// anything is left.
#[derive(clap::Parser, Debug)]
pub struct Cli {
    /// Plan only: read-only calls, print what would be deleted, skipped or kept, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Read the document from FILE (not stdin) and rewrite FILE after every entry, so that an
    /// interrupted teardown loses nothing; the final document also goes to stdout
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// How long one asynchronous delete (workspace, namespace) may take to finish
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub grafana: GrafanaArgs,
}

/// What deleting the ledger calls, entry by entry, for `--print-policy` and `--check`; a dry
/// run only reads. The ledger is the one `--state` names, else the document's.
impl ampkit::preflight::Preflight for Cli {
    fn aws_args(&self) -> &AwsArgs {
        &self.aws
    }

    fn needs(
        &self,
        doc: &StateDoc,
        scope: &ampkit::preflight::Scope,
    ) -> Result<Vec<ampkit::preflight::Need>> {
        let from_file;
        let doc = match &self.state {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::usage(format!("cannot read --state {}: {e}", path.display()))
                })?;
                from_file = StateDoc::parse(&text)?;
                &from_file
            }
            None => doc,
        };
        let read_only = |need: &ampkit::preflight::Need| {
            let verb = need.action.split(':').nth(1).unwrap_or_default();
            ["Get", "List", "Describe"]
                .iter()
                .any(|prefix| verb.starts_with(prefix))
        };
        Ok(doc
            .resources()
            .iter()
            .flat_map(|r| entry::needs(scope, r))
            .filter(|need| !self.dry_run || read_only(need))
            .collect())
    }
}

/// One line of the `teardown` section.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryReport {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The `teardown` section.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Section {
    pub dry_run: bool,
    /// Deleted (with `--dry-run`: would be deleted).
    pub deleted: usize,
    pub absent: usize,
    pub skipped: usize,
    pub failed: usize,
    /// Ledger entries still in the ledger afterwards.
    pub left: usize,
    /// Newest first, as handled.
    pub entries: Vec<EntryReport>,
    /// The signal that stopped the run before the last entry (the rest stays in the ledger).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<&'static str>,
}

/// Connections made on first use and shared by the entries: one AWS configuration per
/// region, the caller's identity, one Grafana per URL, the Kubernetes client. Each is kept as
/// a result, so a missing configuration fails only the entries that need it, once each.
pub struct Context {
    pub dry_run: bool,
    /// Entries that failed because the caller lacks a permission: when they are all the
    /// failures, the run's error says so (exit 2: a grant, not a retry, fixes it).
    pub denied: usize,
    pub timeout: Duration,
    pub progress: Progress,
    aws_args: AwsArgs,
    grafana_args: GrafanaArgs,
    base: Option<Result<aws_config::SdkConfig>>,
    regional: HashMap<String, aws_config::SdkConfig>,
    caller: Option<Result<Caller>>,
    grafanas: HashMap<String, Result<Grafana>>,
    /// With `--amg-workspace-id`: the run's AMG session (a service account made for this run,
    /// deleted at its end), opened on first use.
    amg: Option<Result<ampkit::grafana::amg::Session>>,
    kube: Option<Result<kube::Client>>,
    /// What earlier entries (and the document) told the later ones.
    seen: Seen,
}

impl Context {
    pub fn new(cli: &Cli, progress: Progress) -> Self {
        Context {
            dry_run: cli.dry_run,
            denied: 0,
            timeout: cli.timeout,
            progress,
            aws_args: cli.aws.clone(),
            grafana_args: cli.grafana.clone(),
            base: None,
            regional: HashMap::new(),
            caller: None,
            grafanas: HashMap::new(),
            amg: None,
            kube: None,
            seen: Seen::default(),
        }
    }

    /// Use this Kubernetes client instead of the kubeconfig's (tests).
    pub fn with_kube(mut self, client: kube::Client) -> Self {
        self.kube = Some(Ok(client));
        self
    }

    async fn base_config(&mut self) -> Result<aws_config::SdkConfig> {
        if self.base.is_none() {
            self.base = Some(aws::load(&self.aws_args).await);
        }
        self.base
            .clone()
            .unwrap_or_else(|| Err(Error::internal("no AWS configuration")))
    }
}

impl ledger::Run for Context {
    fn dry_run(&self) -> bool {
        self.dry_run
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn progress(&self) -> &Progress {
        &self.progress
    }

    fn seen(&mut self) -> &mut Seen {
        &mut self.seen
    }

    fn grafana_url(&self) -> Option<&str> {
        self.grafana_args.grafana_url.as_deref()
    }

    /// The AWS configuration for `region` (the configured one when `None`): an entry is always
    /// deleted in the region it was created in, whatever the environment's region is now.
    async fn config(&mut self, region: Option<&str>) -> Result<aws_config::SdkConfig> {
        // Every entry records its region: a run given none (a shell without AWS_REGION, after
        // a recipe that had one) deletes in the entries' own regions rather than stopping at
        // "no AWS region is configured".
        if self.base.is_none()
            && let Some(region) = region
            && aws::resolve_region(&self.aws_args).await.is_none()
        {
            self.aws_args.region = Some(region.to_owned());
        }
        let base = self.base_config().await?;
        let Some(region) = region.filter(|r| *r != aws::region_of(&base)) else {
            return Ok(base);
        };
        if let Some(config) = self.regional.get(region) {
            return Ok(config.clone());
        }
        let config = base
            .to_builder()
            .region(aws_config::Region::new(region.to_owned()))
            .build();
        self.regional.insert(region.to_owned(), config.clone());
        Ok(config)
    }

    async fn caller(&mut self) -> Result<Caller> {
        if self.caller.is_none() {
            let caller = match self.base_config().await {
                Ok(config) => ampkit::sts::caller(&config).await,
                Err(e) => Err(e),
            };
            self.caller = Some(caller);
        }
        self.caller
            .clone()
            .unwrap_or_else(|| Err(Error::internal("no caller identity")))
    }

    async fn kube(&mut self) -> Result<kube::Client> {
        if self.kube.is_none() {
            self.kube = Some(
                ampkit::kube::client("delete the objects with kubectl, then drop their entries")
                    .await,
            );
        }
        self.kube
            .clone()
            .unwrap_or_else(|| Err(Error::internal("no Kubernetes client")))
    }

    async fn grafana(&mut self, url: &str) -> Result<Grafana> {
        if self.grafana_args.amg_workspace_id.is_some() {
            if self.amg.is_none() {
                self.amg = Some(self.grafana_args.open(&self.aws_args, NAME).await);
            }
            return match &self.amg {
                Some(Ok(session)) if session.grafana.base().trim_end_matches('/') == url => {
                    Ok(session.grafana.clone())
                }
                Some(Ok(session)) => Err(Error::usage(format!(
                    "the entry is in Grafana {url}, not in the AMG workspace's {}",
                    session.grafana.base()
                ))
                .with_hint("run teardown again with the --amg-workspace-id of that Grafana")),
                Some(Err(e)) => Err(e.clone()),
                None => Err(Error::internal("no AMG session")),
            };
        }
        if !self.grafanas.contains_key(url) {
            let connected = match self.grafana_args.token() {
                Ok(token) => Grafana::connect(url, token).await,
                Err(e) => Err(e),
            };
            self.grafanas.insert(url.to_owned(), connected);
        }
        self.grafanas
            .get(url)
            .cloned()
            .unwrap_or_else(|| Err(Error::internal("no Grafana connection")))
    }
}

/// Run `teardown` on the document (or on `--state FILE`).
pub async fn run(cli: Cli, doc: &mut StateDoc) -> Result<()> {
    if let Some(path) = &cli.state {
        if !doc.as_map().is_empty() {
            return Err(Error::usage(
                "a document came on stdin and --state names a file: give it one way",
            )
            .with_hint("drop --state to read stdin, or stop piping a document in"));
        }
        *doc = state::read(path)?;
    }
    let progress = Progress::new(NAME, ampkit::cli::progress());
    let mut ctx = Context::new(&cli, progress);
    let section = teardown(&mut ctx, doc, cli.state.as_deref()).await;
    let mut leftovers = 0;
    // The AMG service account made for this run goes whatever happened; one whose delete
    // failed is left in the ledger, for the next teardown.
    if let Some(Ok(session)) = ctx.amg.take()
        && let Some(leftover) = session.close().await
    {
        doc.push_resource(leftover);
        leftovers += 1;
        if let (Some(path), false) = (cli.state.as_deref(), cli.dry_run) {
            state::write(path, doc)?;
        }
    }
    let section = section?;
    let left = section.left + leftovers;
    if let Some(signal) = section.interrupted {
        return Err(Error::remote(format!(
            "interrupted by {signal}: {left} ledger entries are left (see section `teardown`)"
        ))
        .with_hint("run teardown again on this output (or --state file) to finish"));
    }
    if cli.dry_run {
        let blocked = section.skipped + section.failed;
        if blocked > 0 {
            return Err(Error::remote(format!(
                "dry run: {blocked} of {} ledger entries would be kept (see section `teardown`)",
                section.entries.len()
            ))
            .with_hint("each kept entry's reason says what to do"));
        }
        return Ok(());
    }
    if left > 0 && section.skipped == 0 && leftovers == 0 && ctx.denied == section.failed {
        return Err(Error::new(
            ErrorKind::Denied,
            format!(
                "{left} of {} ledger entries are left: the caller may not delete them (see section `teardown`)",
                section.entries.len()
            ),
        )
        .with_hint(
            "grant the permissions each kept entry's reason names (or run as a role that has \
             them), then run teardown again on this output",
        ));
    }
    if left > 0 {
        return Err(Error::remote(format!(
            "{left} of {} ledger entries are left: {} skipped, {} failed (see section `teardown`)",
            section.entries.len(),
            section.skipped,
            section.failed
        ))
        .with_hint(
            "each kept entry's reason says why; fix that and run teardown again on this output \
             (only what is left is retried)",
        ));
    }
    Ok(())
}

/// Handle every ledger entry, newest first; the document is updated (ledger and section)
/// after each one and, with `state`, written there. Returns the section.
pub async fn teardown(
    ctx: &mut Context,
    doc: &mut StateDoc,
    state: Option<&std::path::Path>,
) -> Result<Section> {
    ctx.seen = Seen::from_doc(doc);
    let values: Vec<Value> = doc.resource_values().to_vec();
    let mut kept: Vec<Option<Value>> = values.iter().cloned().map(Some).collect();
    let stop = interruption();
    tokio::pin!(stop);
    let mut section = Section {
        dry_run: ctx.dry_run,
        ..Section::default()
    };
    let total = values.len();
    for (done, index) in order(&values).into_iter().enumerate() {
        let value = &values[index];
        let (kind, id) = (
            value["type"].as_str().unwrap_or("?").to_owned(),
            value["id"].as_str().unwrap_or("?").to_owned(),
        );
        ctx.progress
            .show(format!("[{}/{total}] {kind} {id}", done + 1));
        // A signal abandons the entry in hand (it stays in the ledger: a delete that was
        // under way is found done, or absent, by the next run) and ends the run cleanly, so
        // the document written on stdout still lists exactly what is left.
        let verdict = tokio::select! {
            verdict = entry::handle(ctx, value) => verdict,
            signal = &mut stop => {
                ctx.progress.clear();
                eprintln!(
                    "{NAME}: {signal}: stopping; {} ledger entries left",
                    kept.iter().flatten().count()
                );
                section.interrupted = Some(signal);
                doc.set_section(SECTION, &section)?;
                break;
            }
        };
        ctx.progress.clear();
        eprintln!(
            "{NAME}: [{}/{total}] {kind} {id}: {}{}",
            done + 1,
            verdict.outcome(),
            verdict
                .reason()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        match &verdict {
            Verdict::WouldDelete(_) | Verdict::Deleted => section.deleted += 1,
            Verdict::Absent(_) => section.absent += 1,
            Verdict::Skipped(_) => section.skipped += 1,
            Verdict::Failed(_) => section.failed += 1,
        }
        if !ctx.dry_run && verdict.is_gone() {
            kept[index] = None;
        }
        section.entries.push(EntryReport {
            kind,
            id,
            outcome: verdict.outcome(),
            reason: verdict.reason().map(str::to_owned),
        });
        section.left = kept.iter().flatten().count();
        doc.set_resources(kept.iter().flatten().cloned().collect());
        doc.set_section(SECTION, &section)?;
        // A dry run writes nothing anywhere but stdout.
        if let (Some(path), false) = (state, ctx.dry_run) {
            state::write(path, doc)?;
        }
    }
    if total == 0 {
        doc.set_section(SECTION, &section)?;
        if let (Some(path), false) = (state, ctx.dry_run) {
            state::write(path, doc)?;
        }
    }
    Ok(section)
}

/// The order entries are handled in: newest first (the reverse of creation, so children
/// before parents), except where a kind must leave before a newer one
/// ([`ResourceKind::leaves_before`]): it moves ahead of the run of those newer entries.
fn order(values: &[Value]) -> Vec<usize> {
    let kinds: Vec<ResourceKind> = values
        .iter()
        .map(|v| ResourceKind::from(v["type"].as_str().unwrap_or_default().to_owned()))
        .collect();
    let mut order: Vec<usize> = (0..values.len()).rev().collect();
    for pos in 0..order.len() {
        let kind = &kinds[order[pos]];
        let mut to = pos;
        while to > 0 && kind.leaves_before(&kinds[order[to - 1]]) {
            to -= 1;
        }
        let entry = order.remove(pos);
        order.insert(to, entry);
    }
    order
}

/// Completes on SIGINT or SIGTERM (Ctrl-C, `timeout`, a CI runner cancelling the job).
async fn interruption() -> &'static str {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        () = term => "SIGTERM",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use ampkit::preflight::testing::assert_has;

    /// The actions a command line of this tool needs, from its own Preflight.
    fn actions_of(args: &[&str], doc: &str) -> Vec<String> {
        ampkit::preflight::testing::actions_of::<Cli>(args, doc)
    }

    #[test]
    fn every_aws_kind_of_the_ledger_declares_its_deletes_and_a_dry_run_only_reads() {
        let ledger = r#"{"resources":[
            {"type":"amp-workspace","id":"ws-1","arn":"arn:aws:aps:eu-west-1:123456789012:workspace/ws-1","tool":"t"},
            {"type":"iam-role","id":"r","tool":"t"},
            {"type":"sns-topic","id":"arn:aws:sns:eu-west-1:123456789012:grafana-x","arn":"arn:aws:sns:eu-west-1:123456789012:grafana-x","tool":"t"},
            {"type":"amp-scraper","id":"s-1","tool":"t","region":"us-east-2"},
            {"type":"k8s-namespace","id":"ns","tool":"t"}
        ]}"#;
        let all = actions_of(&["teardown"], ledger);
        assert_has(
            &all,
            &[
                "aps:DeleteWorkspace arn:aws:aps:eu-west-1:123456789012:workspace/ws-1",
                "iam:DeleteRole arn:aws:iam::123456789012:role/r",
                "sns:DeleteTopic arn:aws:sns:eu-west-1:123456789012:grafana-x",
                "aps:DeleteScraper arn:aws:aps:us-east-2:123456789012:scraper/s-1",
            ],
        );
        let dry = actions_of(&["teardown", "--dry-run"], ledger);
        assert!(
            !dry.is_empty()
                && dry
                    .iter()
                    .all(|a| a.contains(":Get") || a.contains(":List") || a.contains(":Describe")),
            "{dry:#?}"
        );
    }
    use ampkit::kube::testing::{Call, not_found, serve};
    use clap::Parser;
    use http::{Method, StatusCode};
    use serde_json::json;

    fn labelled(kind: &str, name: &str, ours: bool) -> Value {
        let labels = if ours {
            json!({"app.kubernetes.io/managed-by": "ampkit"})
        } else {
            json!({"team": "payments"})
        };
        json!({"kind": kind, "apiVersion": "v1", "metadata": {"name": name, "labels": labels}})
    }

    fn ledger() -> StateDoc {
        StateDoc::parse(
            &json!({"resources": [
                {"type": "k8s-namespace", "id": "grafana-agent", "tool": "irsa-role"},
                {"type": "k8s-service-account", "id": "grafana-agent/grafana-agent", "tool": "irsa-role",
                 "details": {"namespace": "grafana-agent", "name": "grafana-agent"}}
            ]})
            .to_string(),
        )
        .unwrap()
    }

    const NS: &str = "/api/v1/namespaces/grafana-agent";
    const SA: &str = "/api/v1/namespaces/grafana-agent/serviceaccounts/grafana-agent";

    async fn run_with(args: &[&str], calls: Vec<Call>) -> (StateDoc, Section) {
        let cli = Cli::parse_from(std::iter::once("teardown").chain(args.iter().copied()));
        let (client, server) = serve(calls);
        let mut ctx = Context::new(&cli, Progress::new(NAME, false)).with_kube(client);
        let mut doc = ledger();
        let section = teardown(&mut ctx, &mut doc, None).await.unwrap();
        drop(ctx);
        server.verify().await;
        (doc, section)
    }

    #[tokio::test]
    async fn our_namespace_goes_and_is_waited_for_a_relabelled_account_stays() {
        let (doc, section) = run_with(
            &[],
            vec![
                // Newest first: the service account, which someone relabelled.
                Call::get(SA).reply(
                    StatusCode::OK,
                    labelled("ServiceAccount", "grafana-agent", false),
                ),
                Call::get(NS).reply(StatusCode::OK, labelled("Namespace", "grafana-agent", true)),
                Call::new(Method::DELETE, NS)
                    .reply(StatusCode::OK, labelled("Namespace", "grafana-agent", true)),
                Call::get(NS).reply(
                    StatusCode::NOT_FOUND,
                    not_found("namespaces", "grafana-agent"),
                ),
            ],
        )
        .await;
        assert_eq!((section.deleted, section.skipped, section.left), (1, 1, 1));
        assert_eq!(doc.resources().len(), 1);
        assert_eq!(doc.resources()[0].id, "grafana-agent/grafana-agent");
    }

    #[test]
    fn newest_first_with_our_route_before_the_rules() {
        let ledger: Vec<Value> = [
            "sns-topic",
            "grafana-folder",
            "grafana-contact-point",
            "grafana-notification-route",
            "grafana-alert-rule",
        ]
        .iter()
        .map(|k| json!({"type": k}))
        .collect();
        assert_eq!(order(&ledger), [3, 4, 2, 1, 0]);
        let plain: Vec<Value> = (0..3).map(|_| json!({"type": "amp-workspace"})).collect();
        assert_eq!(order(&plain), [2, 1, 0]);
    }

    #[tokio::test]
    async fn a_dry_run_only_reads_the_cluster() {
        // The scripted server fails the test on any call not listed: a DELETE would.
        let (doc, section) = run_with(
            &["--dry-run"],
            vec![
                Call::get(SA).reply(
                    StatusCode::OK,
                    labelled("ServiceAccount", "grafana-agent", true),
                ),
                Call::get(NS).reply(StatusCode::OK, labelled("Namespace", "grafana-agent", true)),
            ],
        )
        .await;
        assert_eq!(section.deleted, 2, "both would be deleted");
        assert_eq!(doc.resources().len(), 2, "and both stay in the ledger");
    }
}
