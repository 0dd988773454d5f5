//! `grafana-import`: put the workspace's Prometheus datasource (SigV4), a folder and dashboards
//! into a Grafana, each ensured so that a re-run changes nothing; rewrite the hard-coded
//! datasource references that point nowhere (the cause of most empty panels after an import);
//! then prove each panel shows data by running its queries against the workspace, and draw
//! the result as a page that needs no Grafana.

pub mod dashboard;
pub mod panel_type;
pub mod snapshot;
pub mod template;
pub mod verify;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use ampkit::amp::WorkspaceSection;
use ampkit::aws::AwsArgs;
use ampkit::cli::{Runtime, Tool};
use ampkit::doc::{Resource, ResourceKind, StateDoc};
use ampkit::error::{Error, Result};
use ampkit::grafana::delete::{DashboardDetails, ObjectDetails};
use ampkit::grafana::{DatasourceSpec, Grafana, GrafanaArgs, ImportInput, Outcome, uid_from};
use ampkit::http::SignedClient;
use ampkit::prom::PromClient;
use ampkit::timespec::{parse_positive_duration, parse_time};

use dashboard::{Reference, Rewritten, Source};

/// The program's name, as in the ledger and in error lines.
pub const NAME: &str = "grafana-import";
/// The document's key of [`GrafanaSection`].
pub const SECTION: &str = "grafana";

/// What the frame needs to know of this tool besides its flags.
pub const TOOL: Tool = Tool {
    name: NAME,
    runtime: Runtime::CurrentThread,
    examples: &[
        "amp-workspace ensure --alias AMP-APPMESH | grafana-import --grafana-url https://g-abc.grafana-workspace.eu-west-1.amazonaws.com --dashboard builtin:envoy-global --verify",
        "grafana-import --amg-workspace-id g-0123456789 --folder Mesh --dashboard gnet:11022 --dashboard mine.json --verify --require-data < state.json",
        "grafana-import --render-only --dashboard builtin:envoy-global --snapshot out/dashboard.html < state.json",
    ],
};

/// Grafana for the workspace: a Prometheus datasource signing with SigV4, a folder, dashboards
/// (files, built-in, grafana.com), each panel verified against the workspace on request and
/// drawn as a static page. Reads the `workspace` section; writes `grafana`.
#[derive(clap::Parser, Debug)]
pub struct Cli {
    #[command(flatten)]
    pub grafana: GrafanaArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Folder the dashboards go into (found or made by a uid derived from the title)
    #[arg(long, value_name = "TITLE", default_value = "Service mesh")]
    pub folder: String,
    /// A dashboard: a JSON FILE, builtin:envoy-global, builtin:istio, builtin:mesh (the mesh
    /// profile's), or gnet:ID[@REV] from grafana.com
    /// (repeatable)
    #[arg(long = "dashboard", value_name = "SOURCE", value_parser = Source::parse)]
    pub dashboards: Vec<Source>,
    /// The mesh, for builtin:mesh [default: the document's mesh.profile, else appmesh]
    #[arg(long, value_enum, value_name = "MESH")]
    pub mesh: Option<ampkit::mesh::Mesh>,
    /// A value for a non-datasource `__inputs` entry, NAME=VALUE (repeatable)
    #[arg(long = "input", value_name = "NAME=VALUE", value_parser = parse_input)]
    pub inputs: Vec<(String, String)>,
    /// Replace dashboards that someone changed in Grafana since they were imported
    #[arg(long)]
    pub overwrite: bool,
    /// The datasource's SigV4 auth type [default: ec2_iam_role on Amazon Managed Grafana
    /// (the workspace's role), default (the credential chain) elsewhere]
    #[arg(long, value_name = "TYPE", value_parser = ["default", "ec2_iam_role", "keys", "credentials", "grafana_assume_role"])]
    pub sigv4_auth_type: Option<String>,
    /// The datasource plugin: `prometheus`, or `grafana-amazonprometheus-datasource` (AMG 12+)
    #[arg(long, value_name = "TYPE", default_value = "prometheus", value_parser = ["prometheus", "grafana-amazonprometheus-datasource"])]
    pub datasource_type: String,
    /// The collector's scrape interval: the datasource's `timeInterval`, the smallest step of
    /// a panel and the base of `$__rate_interval`
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_positive_duration)]
    pub scrape_interval: Duration,
    /// Run every panel's queries against the workspace and report ok / empty / error per panel
    #[arg(long)]
    pub verify: bool,
    /// With --verify: fail (exit 1) when a panel is empty or in error
    #[arg(long, requires = "verify")]
    pub require_data: bool,
    /// Draw the verified panels into a self-contained HTML page (implies --verify); with
    /// several dashboards, each gets FILE's name with its uid added
    #[arg(long, value_name = "FILE.html")]
    pub snapshot: Option<PathBuf>,
    /// No Grafana at all: resolve the dashboards, verify (and snapshot) them against the
    /// workspace, and write the resolved JSON into --out
    #[arg(long)]
    pub render_only: bool,
    /// Where --render-only writes the resolved dashboards
    #[arg(long, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,
    /// Start of the verified range [default: four scrape intervals before the traffic that
    /// envoy-traffic sent (the document's traffic.startedAt), else the dashboard's time.from]
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub from: Option<String>,
    /// End of the verified range [default: now after traffic, else the dashboard's time.to]
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub to: Option<String>,
    /// Queries run at once during --verify
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Time allowed for each query of --verify
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_positive_duration)]
    pub query_timeout: Duration,
    /// grafana.com's address, for gnet: dashboards (a mirror, or a proxy)
    #[arg(
        long,
        value_name = "URL",
        env = "AMPKIT_GRAFANA_COM_URL",
        default_value = "https://grafana.com"
    )]
    pub grafana_com_url: String,
}

fn parse_input(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not NAME=VALUE")),
    }
}

/// The `grafana` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GrafanaSection {
    pub url: String,
    pub version: String,
    pub datasource_uid: String,
    pub folder_uid: String,
    pub dashboards: Vec<DashboardEntry>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DashboardEntry {
    pub uid: String,
    pub title: String,
    pub url: String,
    /// Where it came from: the file, `builtin:NAME` or `gnet:ID@REV`.
    pub source: String,
    /// The version Grafana gave it when this tool imported it: a re-import sends it back, so
    /// that a change made since (a higher version) is refused rather than lost.
    pub version: u64,
    /// Hard-coded datasource references that pointed nowhere and now point at ours.
    pub rewritten_datasources: Vec<Rewritten>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<verify::Summary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// --render-only: the resolved JSON written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// The inputs that satisfy a dashboard's `__inputs`: every datasource input is ours,
/// expressions are Grafana's own, the rest come from `--input` or the entry's default.
fn inputs_for(
    label: &str,
    dashboard: &Value,
    datasource_uid: &str,
    given: &[(String, String)],
) -> Result<Vec<ImportInput>> {
    let mut inputs = Vec::new();
    for wanted in dashboard["__inputs"].as_array().into_iter().flatten() {
        let input_name = wanted["name"].as_str().unwrap_or_default().to_owned();
        let kind = wanted["type"].as_str().unwrap_or_default().to_owned();
        let plugin = wanted["pluginId"].as_str().unwrap_or_default().to_owned();
        let value = if plugin == "__expr__" {
            continue;
        } else if kind == "datasource" {
            datasource_uid.to_owned()
        } else if let Some((_, v)) = given.iter().find(|(n, _)| *n == input_name) {
            v.clone()
        } else if let Some(default) = wanted["value"].as_str() {
            default.to_owned()
        } else {
            return Err(Error::usage(format!(
                "--dashboard {label} needs a value for its input `{input_name}` ({kind})"
            ))
            .with_hint(format!("pass --input {input_name}=VALUE")));
        };
        inputs.push(ImportInput {
            name: input_name,
            kind,
            plugin_id: plugin,
            value,
        });
    }
    Ok(inputs)
}

/// The dashboard as Grafana saves it after an import: `${NAME}` of every input replaced in
/// string values (keys untouched), and the import-only fields removed.
pub fn resolve_inputs(dashboard: &Value, inputs: &[ImportInput]) -> Value {
    fn substitute(value: &mut Value, inputs: &[ImportInput]) {
        match value {
            Value::String(text) if text.contains("${") => {
                for input in inputs {
                    let token = format!("${{{}}}", input.name);
                    if text.contains(&token) {
                        *text = text.replace(&token, &input.value);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, inputs)),
            Value::Object(map) => map.values_mut().for_each(|v| substitute(v, inputs)),
            _ => {}
        }
    }
    let mut resolved = dashboard.clone();
    if let Some(map) = resolved.as_object_mut() {
        for key in ["__inputs", "__requires", "__elements"] {
            map.remove(key);
        }
    }
    substitute(&mut resolved, inputs);
    resolved
}

/// A dashboard read and made ready, before anything is created.
struct Prepared {
    source: Source,
    dashboard: Value,
    inputs: Vec<ImportInput>,
}

/// Everything checked before any change: the workspace, the range, every dashboard.
struct Plan {
    workspace_id: String,
    endpoint: String,
    region: String,
    alias: Option<String>,
    datasource_uid: String,
    prepared: Vec<Prepared>,
    /// When the document's traffic began (`traffic.startedAt`), if it has any.
    traffic_started: Option<OffsetDateTime>,
}

/// How many scrape intervals before the traffic the verified range begins: Grafana's
/// `$__rate_interval` is at least four, so the first rates of the traffic have their samples,
/// and a short run is not drawn as a long flat window with the data at its end.
const SCRAPES_BEFORE_TRAFFIC: u32 = 4;

/// `traffic.startedAt` of the document (written by envoy-traffic), if there is one.
fn traffic_started(doc: &StateDoc) -> Result<Option<OffsetDateTime>> {
    let Some(value) = doc.section("traffic").and_then(|t| t.get("startedAt")) else {
        return Ok(None);
    };
    let text = value.as_str().unwrap_or_default();
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(Some)
        .map_err(|e| {
            Error::input(format!(
                "traffic.startedAt is not an RFC 3339 time ({value}): {e}"
            ))
            .with_hint("it is written by envoy-traffic; give --from and --to to choose the range")
        })
}

async fn plan(cli: &Cli, doc: &StateDoc) -> Result<Plan> {
    let workspace = WorkspaceSection::from_doc(doc)?.unwrap_or_default();
    let (Some(workspace_id), Some(endpoint), Some(region)) = (
        WorkspaceSection::get(&workspace.workspace_id),
        WorkspaceSection::get(&workspace.prometheus_endpoint),
        WorkspaceSection::get(&workspace.region),
    ) else {
        return Err(Error::usage(
            "no workspace: the document has no workspace section with workspaceId, prometheusEndpoint and region",
        )
        .with_hint("pipe in the output of `amp-workspace ensure --alias NAME`"));
    };
    if cli.dashboards.is_empty() && (cli.render_only || cli.verify || cli.snapshot.is_some()) {
        return Err(Error::usage("nothing to verify: no --dashboard given")
            .with_hint("add --dashboard builtin:envoy-global, a FILE, or gnet:ID"));
    }
    for flag in [("--from", &cli.from), ("--to", &cli.to)] {
        if let (name, Some(text)) = flag {
            parse_time(text, OffsetDateTime::now_utc())
                .map_err(|e| Error::usage(format!("{name}: {e}")))?;
        }
    }
    let datasource_uid = uid_from("ampkit", workspace_id);
    let mesh = ampkit::mesh::Mesh::resolve(cli.mesh, doc)?;
    let mut prepared = Vec::new();
    for source in &cli.dashboards {
        let source = &source.for_mesh(mesh);
        let dashboard = source.load(&cli.grafana_com_url).await?;
        let inputs = inputs_for(&source.label(), &dashboard, &datasource_uid, &cli.inputs)?;
        prepared.push(Prepared {
            source: source.clone(),
            dashboard,
            inputs,
        });
    }
    Ok(Plan {
        workspace_id: workspace_id.to_owned(),
        endpoint: endpoint.to_owned(),
        region: region.to_owned(),
        alias: workspace.alias.clone(),
        datasource_uid,
        prepared,
        traffic_started: traffic_started(doc)?,
    })
}

/// Run the tool against the document.
/// What a run calls of AWS, for `--print-policy` and `--check`: AMG's service account for the
/// run (`--amg-workspace-id`), and with `--verify` the workspace's queries (lib `amp`'s data
/// plane actions). Grafana's own API is not IAM's.
impl ampkit::preflight::Preflight for Cli {
    fn aws_args(&self) -> &AwsArgs {
        &self.aws
    }

    fn needs(
        &self,
        doc: &StateDoc,
        scope: &ampkit::preflight::Scope,
    ) -> Result<Vec<ampkit::preflight::Need>> {
        let mut needs = Vec::new();
        if !self.render_only
            && let Some(id) = &self.grafana.amg_workspace_id
        {
            needs.extend(ampkit::grafana::amg::needs_for_session(scope, id, NAME));
        }
        if self.verify {
            let workspace = WorkspaceSection::from_doc(doc)?
                .map(|ws| ws.arn)
                .filter(|arn| !arn.is_empty())
                .unwrap_or_else(|| ampkit::amp::workspace_arn_in(scope, None));
            let step = format!("{NAME} --verify");
            for path in [
                "api/v1/query",
                "api/v1/query_range",
                "api/v1/series",
                "api/v1/label/<name>/values",
            ] {
                needs.extend(ampkit::amp::needs_to_query(&workspace, path, &step));
            }
        }
        Ok(needs)
    }
}

pub async fn run(cli: Cli, doc: &mut StateDoc) -> Result<()> {
    let plan = plan(&cli, doc).await?;
    if cli.render_only {
        return render_only(&cli, &plan, doc).await;
    }
    // The Grafana an earlier run recorded: an AMG workspace it places in another region than
    // this run's is refused before any AMG call.
    let recorded = doc.str_field(SECTION, "url").map(str::to_owned);
    let session = cli
        .grafana
        .open_with_record(&cli.aws, NAME, recorded.as_deref())
        .await?;
    let result = import(&cli, &plan, &session.grafana, session.is_amg, doc).await;
    // The service account made for this run goes whatever happened; only a failed delete is
    // left for teardown, in the ledger.
    if let Some(leftover) = session.close().await {
        doc.push_resource(leftover);
    }
    result
}

async fn import(
    cli: &Cli,
    plan: &Plan,
    grafana: &Grafana,
    on_amg: bool,
    doc: &mut StateDoc,
) -> Result<()> {
    let url = grafana.base().to_owned();
    let previous: GrafanaSection = doc.section_as(SECTION)?.unwrap_or_default();
    let auth_type = cli.sigv4_auth_type.clone().unwrap_or_else(|| {
        // The session says AMG both for --amg-workspace-id and for an AMG workspace's URL.
        if on_amg {
            "ec2_iam_role".to_owned()
        } else {
            "default".to_owned()
        }
    });
    let spec = DatasourceSpec {
        uid: plan.datasource_uid.clone(),
        name: format!(
            "AMP {}",
            plan.alias.as_deref().unwrap_or(&plan.workspace_id)
        ),
        kind: cli.datasource_type.clone(),
        url: plan.endpoint.clone(),
        json_data: json!({
            "httpMethod": "POST",
            "sigV4Auth": true,
            "sigV4AuthType": auth_type,
            "sigV4Region": plan.region,
            "timeInterval": ampkit::timespec::format_duration(cli.scrape_interval),
        }),
    };
    let mut section = GrafanaSection {
        url: url.clone(),
        version: grafana.version.to_string(),
        datasource_uid: plan.datasource_uid.clone(),
        folder_uid: uid_from("ampkit", &cli.folder),
        dashboards: Vec::new(),
    };
    let ledger = |kind: ResourceKind, id: &str| {
        Resource::new(kind, id, NAME).with_details(&ObjectDetails {
            grafana_url: url.clone(),
        })
    };
    if grafana.ensure_datasource(&spec).await? == Outcome::Created {
        doc.push_resource(ledger(
            ResourceKind::GrafanaDatasource,
            &plan.datasource_uid,
        ));
    }
    if grafana
        .ensure_folder(&section.folder_uid, &cli.folder)
        .await?
        == Outcome::Created
    {
        doc.push_resource(ledger(ResourceKind::GrafanaFolder, &section.folder_uid));
    }
    let prom = if cli.verify || cli.snapshot.is_some() {
        Some(prom_client(cli, plan).await?)
    } else {
        None
    };
    let several = plan.prepared.len() > 1;
    for prepared in &plan.prepared {
        let mut dashboard = prepared.dashboard.clone();
        let label = prepared.source.label();
        // References that exist in this Grafana are someone's choice and stay.
        let mut missing = Vec::new();
        for reference in dashboard::references(&dashboard) {
            let exists = match &reference {
                Reference::Uid(uid) => grafana.datasource(uid).await?.is_some(),
                Reference::Name(name) => grafana.datasource_by_name(name).await?.is_some(),
            };
            if !exists {
                missing.push(reference);
            }
        }
        let rewritten = dashboard::rewrite(
            &mut dashboard,
            &missing,
            &plan.datasource_uid,
            &cli.datasource_type,
        );
        let stored = match dashboard["uid"].as_str() {
            Some(uid) => grafana.dashboard(uid).await?,
            None => None,
        };
        let existed = stored.is_some();
        // Ours from an earlier run: re-imported at the version we left it at, so that Grafana
        // refuses (412) only when someone changed it since. Someone else's: the file's own
        // version, refused unless --overwrite.
        if let Some(uid) = dashboard["uid"].as_str()
            && let Some(ours) = previous.dashboards.iter().find(|d| d.uid == uid)
        {
            dashboard["version"] = json!(ours.version);
        }
        let imported = match grafana
            .import_dashboard(
                &dashboard,
                &section.folder_uid,
                &prepared.inputs,
                cli.overwrite,
            )
            .await
        {
            Ok(imported) => imported,
            Err(e) => {
                doc.set_section(SECTION, &section)?;
                return Err(e);
            }
        };
        let version = grafana
            .dashboard(&imported.uid)
            .await?
            .and_then(|d| d["dashboard"]["version"].as_u64())
            .unwrap_or(0);
        if !existed {
            doc.push_resource(
                Resource::new(ResourceKind::GrafanaDashboard, &imported.uid, NAME).with_details(
                    &DashboardDetails {
                        grafana_url: url.clone(),
                        folder_uid: Some(section.folder_uid.clone()),
                    },
                ),
            );
        }
        let mut entry = DashboardEntry {
            uid: imported.uid.clone(),
            title: imported.title,
            url: format!("{}{}", url.trim_end_matches('/'), imported.url),
            source: label.clone(),
            version,
            rewritten_datasources: rewritten,
            ..DashboardEntry::default()
        };
        if let Some(prom) = &prom {
            let resolved = resolve_inputs(&dashboard, &prepared.inputs);
            check(cli, plan, prom, &resolved, &label, several, &mut entry).await?;
        }
        section.dashboards.push(entry);
        doc.set_section(SECTION, &section)?;
    }
    doc.set_section(SECTION, &section)?;
    require_data(cli, &section)
}

/// --render-only: no Grafana; every reference that is not a variable becomes ours (there is
/// no target to keep others in), the resolved JSON is written, verified and drawn.
async fn render_only(cli: &Cli, plan: &Plan, doc: &mut StateDoc) -> Result<()> {
    let prom = prom_client(cli, plan).await?;
    let mut section: GrafanaSection = doc.section_as(SECTION)?.unwrap_or_default();
    section.datasource_uid = plan.datasource_uid.clone();
    let several = plan.prepared.len() > 1;
    std::fs::create_dir_all(&cli.out).map_err(|e| {
        Error::input(format!("--out {}: {e}", cli.out.display()))
            .with_hint("give a directory that can be written")
    })?;
    for prepared in &plan.prepared {
        let label = prepared.source.label();
        let mut dashboard = resolve_inputs(&prepared.dashboard, &prepared.inputs);
        let ours = Reference::Uid(plan.datasource_uid.clone());
        let missing: Vec<Reference> = dashboard::references(&dashboard)
            .into_iter()
            .filter(|r| *r != ours)
            .collect();
        let rewritten = dashboard::rewrite(
            &mut dashboard,
            &missing,
            &plan.datasource_uid,
            &cli.datasource_type,
        );
        let uid = dashboard["uid"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| {
                uid_from("ampkit", dashboard["title"].as_str().unwrap_or("dashboard"))
            });
        let file = cli.out.join(format!("{uid}.json"));
        let text = serde_json::to_string_pretty(&dashboard)
            .map_err(|e| Error::internal(format!("could not write the dashboard JSON: {e}")))?;
        std::fs::write(&file, text + "\n")
            .map_err(|e| Error::input(format!("--out: cannot write {}: {e}", file.display())))?;
        let mut entry = DashboardEntry {
            uid,
            title: dashboard["title"].as_str().unwrap_or_default().to_owned(),
            source: label.clone(),
            rewritten_datasources: rewritten,
            file: Some(file.display().to_string()),
            ..DashboardEntry::default()
        };
        check(cli, plan, &prom, &dashboard, &label, several, &mut entry).await?;
        section.dashboards.retain(|d| d.uid != entry.uid);
        section.dashboards.push(entry);
        doc.set_section(SECTION, &section)?;
    }
    require_data(cli, &section)
}

/// The SigV4 client for the workspace's query API.
async fn prom_client(cli: &Cli, plan: &Plan) -> Result<PromClient> {
    let mut aws = cli.aws.clone();
    if aws.region.is_none() {
        aws.region = Some(plan.region.clone());
    }
    let client = SignedClient::for_endpoint(&aws, "aps", &plan.endpoint).await?;
    PromClient::new(client, &plan.endpoint)
}

/// Verify (and draw) one resolved dashboard into its entry.
async fn check(
    cli: &Cli,
    plan: &Plan,
    prom: &PromClient,
    dashboard: &Value,
    label: &str,
    several: bool,
    entry: &mut DashboardEntry,
) -> Result<()> {
    if !(cli.verify || cli.render_only || cli.snapshot.is_some()) {
        return Ok(());
    }
    let now = OffsetDateTime::now_utc();
    let (mut start, mut end) = verify::dashboard_range(dashboard, now)?;
    // After traffic, the range follows it: from shortly before it began to now, so that the
    // charts are not a long empty window with the data squeezed into its last seconds.
    if let (None, Some(began)) = (&cli.from, plan.traffic_started) {
        start = began - cli.scrape_interval * SCRAPES_BEFORE_TRAFFIC;
        end = now;
    }
    if let Some(from) = &cli.from {
        start = parse_time(from, now).map_err(|e| Error::usage(format!("--from: {e}")))?;
    }
    if let Some(to) = &cli.to {
        end = parse_time(to, now).map_err(|e| Error::usage(format!("--to: {e}")))?;
    }
    if end <= start {
        return Err(Error::usage(format!(
            "the verified range of {label} is empty or backwards ({} to {})",
            ampkit::timespec::rfc3339(start),
            ampkit::timespec::rfc3339(end)
        ))
        .with_hint("give --from before --to"));
    }
    let options = verify::Options {
        start,
        end,
        scrape: cli.scrape_interval,
        concurrency: cli.concurrency.into(),
        timeout: cli.query_timeout,
    };
    let verified = verify::verify(prom, dashboard, &options).await?;
    let summary = verified.summary();
    if !ampkit::cli::quiet() {
        eprintln!(
            "{NAME}: {} ({label}): panels {} ok, {} empty, {} error, {} skipped",
            verified.title, summary.ok, summary.empty, summary.error, summary.skipped
        );
        for panel in summary
            .panels
            .iter()
            .filter(|p| matches!(p.status, verify::Status::Empty | verify::Status::Error))
        {
            eprintln!(
                "{NAME}:   {:?} panel `{}`{}",
                panel.status,
                panel.title,
                panel
                    .error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
        }
    }
    if let Some(path) = &cli.snapshot {
        let path = if several {
            with_uid(path, &entry.uid)
        } else {
            path.clone()
        };
        let html = snapshot::render(&verified, label)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::input(format!("--snapshot {}: {e}", path.display())))?;
        }
        std::fs::write(&path, html).map_err(|e| {
            Error::input(format!("--snapshot: cannot write {}: {e}", path.display()))
        })?;
        entry.snapshot = Some(path.display().to_string());
    }
    entry.verify = Some(summary);
    Ok(())
}

/// `out/dashboard.html` for uid `abc` is `out/dashboard-abc.html`.
fn with_uid(path: &Path, uid: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("dashboard");
    let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("html");
    path.with_file_name(format!("{stem}-{uid}.{ext}"))
}

/// --require-data: a panel without data fails the run, after the document is written.
fn require_data(cli: &Cli, section: &GrafanaSection) -> Result<()> {
    if !cli.require_data {
        return Ok(());
    }
    let lacking: Vec<String> = section
        .dashboards
        .iter()
        .flat_map(|d| {
            d.verify.iter().flat_map(move |v| {
                v.panels
                    .iter()
                    .filter(|p| matches!(p.status, verify::Status::Empty | verify::Status::Error))
                    .map(move |p| format!("`{}` in {} ({:?})", p.title, d.title, p.status))
            })
        })
        .collect();
    if lacking.is_empty() {
        return Ok(());
    }
    Err(Error::remote(format!(
        "{} panel(s) show no data: {}",
        lacking.len(),
        lacking.join(", ")
    ))
    .with_hint("the section `grafana.dashboards[].verify` lists each panel's query; send traffic, wait for a scrape, or fix the query"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn inputs_parse() {
        assert_eq!(parse_input("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_input("=x").is_err());
    }

    #[test]
    fn inputs_are_substituted_in_strings_only() {
        let d = json!({"__inputs": [{"name": "DS_P"}], "panels": [{"datasource": "${DS_P}", "title": "job ${VAR_JOB} ${other}", "${DS_P}": 1}]});
        let inputs = vec![
            ImportInput {
                name: "DS_P".into(),
                kind: "datasource".into(),
                plugin_id: "prometheus".into(),
                value: "ampkit-ws".into(),
            },
            ImportInput {
                name: "VAR_JOB".into(),
                kind: "constant".into(),
                plugin_id: String::new(),
                value: "envoy".into(),
            },
        ];
        let r = resolve_inputs(&d, &inputs);
        assert!(r.get("__inputs").is_none());
        assert_eq!(r["panels"][0]["datasource"], "ampkit-ws");
        assert_eq!(r["panels"][0]["title"], "job envoy ${other}");
        assert_eq!(r["panels"][0]["${DS_P}"], 1);
    }

    #[test]
    fn snapshot_names_take_the_uid() {
        assert_eq!(
            with_uid(Path::new("out/dashboard.html"), "abc"),
            PathBuf::from("out/dashboard-abc.html")
        );
    }
}
