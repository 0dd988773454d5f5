//! `sns-alert`: the SNS topic alerts go to (created or found, with email subscriptions and
//! a topic policy statement per publisher, merged into the policy) and the recipe's latency
//! alert — p99 downstream latency above 5 ms for 1 minute — defined once and delivered where
//! a user wants it: as AMP rules plus an alert manager definition with an SNS receiver
//! (`--target amp`), and as a Grafana alert rule with an SNS contact point and a route in the
//! notification policy tree (`--target grafana`), or both.
//!
//! Every value is checked before anything is created (flags, emails, the topic ARN's region
//! and account, the PromQL expression, the rendered files), so bad input changes nothing.
//! What is created is appended to the ledger as it is created, so a failure half-way still
//! leaves a document that says what to tear down.

pub mod render;

use std::time::Duration;

use aws_config::SdkConfig;
use serde::Serialize;
use serde_json::{Value, json};

use ampkit::amp::rules::{DefinitionDetails, NamespaceDetails, Rules};
use ampkit::amp::{WorkspaceSection, Workspaces};
use ampkit::aws::AwsArgs;
use ampkit::cli::{Runtime, Tool};
use ampkit::doc::{Resource, ResourceKind, StateDoc};
use ampkit::error::{Error, Result};
use ampkit::grafana::alerting::{
    AlertRuleDetails, ContactPointDetails, ContactPointSpec, RouteDetails, RouteSpec, uid_from,
};
use ampkit::grafana::delete::ObjectDetails;
use ampkit::grafana::{GrafanaArgs, Outcome, Session};
use ampkit::poll::Progress;
use ampkit::sns::{
    self, Sns, StatementDetails, StatementOutcome, SubscriptionDetails, TopicArn, TopicDetails,
};
use ampkit::timespec::parse_duration;

use render::{AlertSpec, SnsShape, Timing};

/// The program's name, as in the ledger and in error lines.
pub const NAME: &str = "sns-alert";
/// The document's key of the section this tool writes.
pub const SECTION: &str = "alerting";

/// What the frame needs to know of this tool besides its flags.
pub const TOOL: Tool = Tool {
    name: NAME,
    runtime: Runtime::CurrentThread,
    examples: &[
        "amp-workspace ensure --alias AMP-APPMESH | sns-alert --email ops@example.com",
        "sns-alert --target amp --threshold-ms 5 --for 1m --severity page < state.json > state2.json",
        "sns-alert test < state.json",
    ],
};

/// Where the alert goes.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// AMP rules + alert manager definition (SNS receiver)
    Amp,
    /// A Grafana alert rule, an SNS contact point and a route in the notification policy tree
    Grafana,
    /// Both
    Both,
}

impl Target {
    fn amp(self) -> bool {
        matches!(self, Target::Amp | Target::Both)
    }

    fn grafana(self) -> bool {
        matches!(self, Target::Grafana | Target::Both)
    }
}

/// How Grafana may publish to the topic.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permissions {
    /// AMG's service-managed role: it may publish only to topics named `grafana*`
    ServiceManaged,
    /// A role of your own that allows sns:Publish on the topic
    CustomerManaged,
}

/// The SNS topic and the recipe's latency alert. Reads `workspace`; writes `alerting`.
#[derive(clap::Parser, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub create: CreateArgs,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Publish a clearly marked test notification to the topic (from the document, or --topic-arn)
    Test(TestArgs),
}

#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// The topic [default: the document's alerting.topicArn]
    #[arg(long, value_name = "ARN")]
    pub topic_arn: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Where the alert goes
    #[arg(long, value_enum, default_value = "amp")]
    pub target: Target,
    /// The topic's name, created or found (AMG's service-managed role publishes only to
    /// `grafana*` topics)
    #[arg(long, value_name = "NAME", default_value = "grafana-notification")]
    pub topic_name: String,
    /// An existing topic instead (same account and region)
    #[arg(long, value_name = "ARN", conflicts_with = "topic_name")]
    pub topic_arn: Option<String>,
    /// Subscribe this address (repeatable); it stays pending until its owner confirms
    #[arg(long = "email", value_name = "ADDR")]
    pub emails: Vec<String>,
    /// The query, without the comparison [default: the mesh's p99 request latency in ms by
    /// service: Envoy's downstream request time (admin listener excluded), or for Istio its
    /// destination-reported request duration]
    #[arg(long, value_name = "PROMQL")]
    pub expr: Option<String>,
    /// The mesh, for the default expression [default: the document's mesh.profile, else appmesh]
    #[arg(long, value_enum, value_name = "MESH")]
    pub mesh: Option<ampkit::mesh::Mesh>,
    /// The rate window of the default expression
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = positive_duration)]
    pub rate_window: Duration,
    /// Alert when the query is above this (milliseconds)
    #[arg(long, value_name = "MS", default_value = "5", value_parser = threshold)]
    pub threshold_ms: f64,
    /// How long it must hold before the alert fires
    #[arg(long = "for", value_name = "DURATION", default_value = "1m", value_parser = duration)]
    pub for_: Duration,
    /// How often the rule is evaluated
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = positive_duration)]
    pub interval: Duration,
    /// The alert's name
    #[arg(long, value_name = "NAME", default_value = "DownstreamLatencyP99High")]
    pub alert_name: String,
    /// The rule group's name
    #[arg(long, value_name = "NAME", default_value = "ampkit-downstream-latency")]
    pub rule_group: String,
    /// The alert's `severity` label
    #[arg(long, value_name = "LEVEL", default_value = "warning")]
    pub severity: String,
    /// An extra label, NAME=VALUE (repeatable)
    #[arg(long = "label", value_name = "NAME=VALUE", value_parser = pair)]
    pub labels: Vec<(String, String)>,
    /// An extra annotation, NAME=VALUE (repeatable; `summary` replaces ours)
    #[arg(long = "annotation", value_name = "NAME=VALUE", value_parser = pair)]
    pub annotations: Vec<(String, String)>,
    /// The AMP workspace [default: the document's workspace.workspaceId]
    #[arg(long, value_name = "ID")]
    pub workspace_id: Option<String>,
    /// The rule groups namespace in the workspace
    #[arg(long, value_name = "NAME", default_value = "ampkit-alerting")]
    pub namespace: String,
    /// Alertmanager: wait this long to group the first alerts
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = positive_duration)]
    pub group_wait: Duration,
    /// Alertmanager: wait this long before notifying of changes to a group
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = positive_duration)]
    pub group_interval: Duration,
    /// Alertmanager: repeat a firing notification this often (AMP caps it at 5 days)
    #[arg(long, value_name = "DURATION", default_value = "4h", value_parser = positive_duration)]
    pub repeat_interval: Duration,
    /// Give up waiting for AMP after this long
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = positive_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub grafana: GrafanaArgs,
    /// Grafana: the Prometheus datasource the rule queries [default: the document's
    /// grafana.datasourceUid]
    #[arg(long, value_name = "UID")]
    pub datasource_uid: Option<String>,
    /// Grafana: the folder of the rule (found or made) [default: the document's grafana.folderUid]
    #[arg(long, value_name = "TITLE", default_value = "Service mesh")]
    pub folder: String,
    /// Grafana: the contact point's name
    #[arg(long, value_name = "NAME", default_value = "ampkit-sns")]
    pub contact_point: String,
    /// Grafana: the SNS contact point's settings, Grafana's own or AMG's notifier's
    #[arg(long, value_enum, default_value = "upstream")]
    pub grafana_sns_shape: SnsShape,
    /// Grafana: how Grafana may publish to the topic
    #[arg(long, value_enum, default_value = "service-managed")]
    pub grafana_permissions: Permissions,
    /// Grafana: keep what is created editable in Grafana's UI (X-Disable-Provenance)
    #[arg(long)]
    pub editable: bool,
}

fn duration(text: &str) -> std::result::Result<Duration, String> {
    parse_duration(text).map_err(|e| format!("{e} (e.g. 1m, 30s, 1h30m)"))
}

fn positive_duration(text: &str) -> std::result::Result<Duration, String> {
    match duration(text)? {
        d if d.is_zero() => Err("must be more than zero (e.g. 1m)".to_owned()),
        d => Ok(d),
    }
}

fn threshold(text: &str) -> std::result::Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(n),
        _ => Err("not a number of milliseconds (e.g. 5 or 2.5)".to_owned()),
    }
}

fn pair(text: &str) -> std::result::Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__");
    if !ok {
        return Err(format!(
            "`{name}` is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// The `alerting` section.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertingSection {
    pub topic_arn: String,
    pub region: String,
    pub subscriptions: Vec<sns::Subscription>,
    pub alert: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amp: Option<AmpPart>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grafana: Option<GrafanaPart>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrafanaPart {
    pub url: String,
    pub contact_point_uid: String,
    pub contact_point_name: String,
    pub rule_uid: String,
    pub folder_uid: String,
    pub rule_group: String,
    /// Our route in the policy tree: the receiver and the matchers.
    pub route: Value,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AmpPart {
    pub workspace_id: String,
    /// The rule groups namespace's name.
    pub namespace: String,
    /// The alert manager definition's status.
    pub alert_manager: String,
    /// Our statement in the topic policy, letting AMP publish.
    pub policy_statement_sid: String,
}

/// The statement id of AMP's publish permission for one workspace (letters and digits only,
/// as policy Sids take).
pub fn amp_statement_sid(workspace_id: &str) -> String {
    let id: String = workspace_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("AmpkitApsPublish{id}")
}

/// Everything checked and resolved before the first change.
struct Plan {
    region: String,
    topic: TopicChoice,
    alert: AlertSpec,
    amp: Option<AmpPlan>,
    grafana: Option<GrafanaPlan>,
}

struct GrafanaPlan {
    /// The connection; on AMG it holds the service account made for this run.
    session: Session,
    url: String,
    datasource_uid: String,
    folder_uid: String,
    rule_uid: String,
    contact_point_uid: String,
    route: RouteSpec,
}

enum TopicChoice {
    Name(String),
    Arn(String),
}

struct AmpPlan {
    workspace_id: String,
    workspace_arn: String,
    account: String,
    rules: String,
    timing: Timing,
}

/// Run the tool against the document.
pub async fn run(cli: Cli, doc: &mut StateDoc) -> Result<()> {
    let config = ampkit::aws::load(&cli.aws).await?;
    match cli.command {
        Some(Command::Test(args)) => test(args, &config, doc).await,
        None => create(&cli.create, &cli.aws, &config, doc).await,
    }
}

/// What a run calls, for `--print-policy` and `--check` (the actions are declared by lib's
/// `sns`, `amp`, `amp::rules` and `grafana::amg`, next to the calls).
impl ampkit::preflight::Preflight for Cli {
    fn aws_args(&self) -> &AwsArgs {
        &self.aws
    }

    fn needs(
        &self,
        doc: &StateDoc,
        scope: &ampkit::preflight::Scope,
    ) -> Result<Vec<ampkit::preflight::Need>> {
        let doc_topic = doc.str_field(SECTION, "topicArn").filter(|t| !t.is_empty());
        if let Some(Command::Test(args)) = &self.command {
            let topic = args
                .topic_arn
                .as_deref()
                .or(doc_topic)
                .map_or_else(|| sns::topic_arn_in(scope, "*"), str::to_owned);
            return Ok(sns::needs_to_publish(&topic, "sns-alert test"));
        }
        let args = &self.create;
        let step = NAME;
        let (topic, by_name) = match &args.topic_arn {
            Some(arn) => (arn.clone(), false),
            None => (sns::topic_arn_in(scope, &args.topic_name), true),
        };
        let mut needs = sns::needs_for_topic(scope, &topic, by_name, !args.emails.is_empty(), step);
        if args.target.amp() {
            let workspace_id = args.workspace_id.clone().or_else(|| {
                WorkspaceSection::from_doc(doc)
                    .ok()
                    .flatten()
                    .and_then(|ws| WorkspaceSection::get(&ws.workspace_id).map(str::to_owned))
            });
            let workspace = ampkit::amp::workspace_arn_in(scope, workspace_id.as_deref());
            needs.extend(ampkit::amp::needs_to_describe(&workspace, step));
            needs.extend(ampkit::amp::rules::needs_for_alerting(
                scope,
                workspace_id.as_deref(),
                &args.namespace,
                step,
            ));
        }
        if args.target.grafana()
            && let Some(id) = &args.grafana.amg_workspace_id
        {
            needs.extend(ampkit::grafana::amg::needs_for_session(scope, id, step));
        }
        Ok(needs)
    }
}

/// Everything the run will do, checked before anything is created: the flags, the alert's
/// PromQL, the topic (its region and account), the workspace and the definition AMP would
/// be given, and the Grafana target.
async fn plan(
    args: &CreateArgs,
    aws: &AwsArgs,
    config: &SdkConfig,
    doc: &StateDoc,
) -> Result<Plan> {
    let region = ampkit::aws::region_of(config);
    for email in &args.emails {
        if !sns::valid_email(email) {
            return Err(
                Error::usage(format!("--email `{email}` is not an email address"))
                    .with_hint("give an address such as ops@example.com"),
            );
        }
    }
    let alert = alert_spec(args, doc)?;
    let topic = topic_choice(args, &region)?;
    let amp = if args.target.amp() {
        Some(amp_plan(args, config, doc, &alert, &region).await?)
    } else {
        None
    };
    if let TopicChoice::Arn(arn) = &topic {
        check_topic_account(arn, amp.as_ref(), config).await?;
    }
    if let Some(amp) = &amp {
        if ampkit::amp::alerting::check_namespace_name(&args.namespace).is_err() {
            return Err(Error::usage(format!(
                "--namespace `{}` is not a rule groups namespace name",
                args.namespace
            ))
            .with_hint("1-64 of A-Z a-z 0-9 - . _, starting with a letter or digit"));
        }
        // The definition must pass AMP's checks before anything is created; a topic made by
        // name gets the ARN SNS gives every topic.
        let arn = match &topic {
            TopicChoice::Arn(arn) => arn.clone(),
            TopicChoice::Name(name) => format!("arn:aws:sns:{region}:{}:{name}", amp.account),
        };
        render::definition_yaml(&arn, &region, amp.timing)?;
    }
    let grafana = if args.target.grafana() {
        Some(grafana_plan(args, aws, doc, &topic, &alert).await?)
    } else {
        None
    };
    Ok(Plan {
        region,
        topic,
        alert,
        amp,
        grafana,
    })
}

/// The alert the flags describe; its expression is parsed offline, so one that does not
/// parse never reaches a service.
fn alert_spec(args: &CreateArgs, doc: &StateDoc) -> Result<AlertSpec> {
    if args.alert_name.trim().is_empty() || args.severity.trim().is_empty() {
        return Err(Error::usage(
            "--alert-name and --severity must not be empty",
        ));
    }
    let mesh = ampkit::mesh::Mesh::resolve(args.mesh, doc)?;
    let query = args
        .expr
        .clone()
        .unwrap_or_else(|| render::default_expr(mesh, args.rate_window));
    let alert = AlertSpec {
        name: args.alert_name.clone(),
        query,
        threshold: args.threshold_ms,
        for_: args.for_,
        interval: args.interval,
        group: args.rule_group.clone(),
        severity: args.severity.clone(),
        labels: args.labels.clone(),
        annotations: args.annotations.clone(),
    };
    promql_parser::parser::parse(&alert.condition()).map_err(|e| {
        Error::usage(format!("--expr does not parse as PromQL: {}", e.trim()))
            .with_hint("give the query without the comparison, e.g. histogram_quantile(0.99, sum by (le) (rate(x_bucket[1m])))")
    })?;
    Ok(alert)
}

/// `--topic-arn` (which must be in this run's region) or `--topic-name` (a valid name).
fn topic_choice(args: &CreateArgs, region: &str) -> Result<TopicChoice> {
    let Some(arn) = &args.topic_arn else {
        sns::valid_topic_name(&args.topic_name)
            .map_err(|e| Error::usage(format!("--topic-name: {e}")))?;
        return Ok(TopicChoice::Name(args.topic_name.clone()));
    };
    let parsed = TopicArn::parse(arn).map_err(|e| {
        Error::usage(format!("--topic-arn: {e}"))
            .with_hint("give the ARN `aws sns list-topics` shows, or --topic-name")
    })?;
    // AMP and Grafana publish to a topic of their own region.
    parsed
        .placed(false)
        .in_region(Some(&parsed.region), region)?;
    Ok(TopicChoice::Arn(arn.clone()))
}

/// The workspace (from `--workspace-id` or the document's section, which must exist in this
/// region) and the rules and timing it will be given.
async fn amp_plan(
    args: &CreateArgs,
    config: &SdkConfig,
    doc: &StateDoc,
    alert: &AlertSpec,
    region: &str,
) -> Result<AmpPlan> {
    let section = if args.workspace_id.is_some() {
        WorkspaceSection::from_doc(doc)?
    } else {
        let section = WorkspaceSection::from_doc_in(doc, region)?;
        if let Some(section) = &section {
            section.check_account(config).await?;
        }
        section
    }
    .unwrap_or_default();
    let workspace_id = args
        .workspace_id
        .clone()
        .or_else(|| WorkspaceSection::get(&section.workspace_id).map(str::to_owned))
        .ok_or_else(|| {
            Error::usage(
                "no workspace: pass --workspace-id or pipe in a document with a workspace section",
            )
            .with_hint("amp-workspace ensure --alias NAME | sns-alert ...")
        })?;
    let described = Workspaces::new(config)
        .find(&workspace_id)
        .await?
        .ok_or_else(|| {
            Error::not_found(format!(
                "workspace {workspace_id} does not exist in {region}"
            ))
            .with_hint("list them with `amp-workspace list`")
        })?;
    let workspace_arn = described.arn().to_owned();
    let account = sns::arn_account(&workspace_arn)
        .unwrap_or_default()
        .to_owned();
    Ok(AmpPlan {
        rules: render::rules_yaml(alert)?,
        timing: Timing {
            group_wait: args.group_wait,
            group_interval: args.group_interval,
            repeat_interval: args.repeat_interval,
        },
        workspace_id,
        workspace_arn,
        account,
    })
}

/// A topic given by ARN must be in the caller's account, which is the workspace's (AMP
/// described it with these credentials, and publishes only to a topic of its own account).
/// STS is asked only when the topic's account is not the workspace's.
async fn check_topic_account(arn: &str, amp: Option<&AmpPlan>, config: &SdkConfig) -> Result<()> {
    let parsed = TopicArn::parse(arn).map_err(Error::usage)?;
    if amp.is_some_and(|amp| amp.account == parsed.account) {
        return Ok(());
    }
    parsed
        .placed(false)
        .of_account(Some(&parsed.account), &ampkit::sts::caller(config).await?)
}

/// Everything the Grafana target needs, checked before any change: the permission rule on
/// the topic name, the URL, token and datasource, an interval Grafana's scheduler takes, and
/// a Grafana that answers and takes the token.
async fn grafana_plan(
    args: &CreateArgs,
    aws: &AwsArgs,
    doc: &StateDoc,
    topic: &TopicChoice,
    alert: &AlertSpec,
) -> Result<GrafanaPlan> {
    let topic_name = match topic {
        TopicChoice::Name(name) => name.clone(),
        TopicChoice::Arn(arn) => TopicArn::parse(arn).map(|t| t.name).unwrap_or_default(),
    };
    if args.grafana_permissions == Permissions::ServiceManaged && !topic_name.starts_with("grafana")
    {
        return Err(Error::usage(format!(
            "topic `{topic_name}` does not start with `grafana`: AMG's service-managed role may publish only to topics named grafana*"
        ))
        .with_hint("name the topic grafana-..., or pass --grafana-permissions customer-managed if the workspace role is your own and allows sns:Publish on it"));
    }
    if !alert.interval.as_secs().is_multiple_of(10) || alert.interval.subsec_nanos() != 0 {
        return Err(Error::usage(format!(
            "--interval {} is not a multiple of 10s, which Grafana's scheduler needs",
            ampkit::timespec::format_duration(alert.interval)
        ))
        .with_hint("e.g. --interval 10s or 1m"));
    }
    // The Grafana: --grafana-url (else the one grafana-import recorded) with a token, or an
    // AMG workspace with a service account made for this run.
    let mut target = args.grafana.clone();
    if target.amg_workspace_id.is_none() {
        let url = match &args.grafana.grafana_url {
            Some(url) => Some(url.clone()),
            None => doc.str_field("grafana", "url").map(str::to_owned),
        };
        target.grafana_url = Some(url.filter(|u| !u.is_empty()).ok_or_else(|| {
            Error::usage(
                "no Grafana: pass --grafana-url or --amg-workspace-id, or pipe in the document grafana-import wrote",
            )
            .with_hint("... | grafana-import --grafana-url URL | sns-alert --target grafana")
        })?);
    }
    let datasource_uid = args
        .datasource_uid
        .clone()
        .or_else(|| doc.str_field("grafana", "datasourceUid").map(str::to_owned))
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            Error::usage("no datasource for the Grafana rule: pass --datasource-uid or pipe in the document grafana-import wrote")
                .with_hint("grafana-import makes the workspace's datasource and records its uid")
        })?;
    let folder_uid = doc
        .str_field("grafana", "folderUid")
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| uid_from("ampkit", &args.folder));
    let recorded = doc.str_field("grafana", "url");
    let session = target.open_with_record(aws, NAME, recorded).await?;
    let url = session.grafana.base().to_owned();
    let mut matchers = vec![(
        render::MANAGED_LABEL.0.to_owned(),
        render::MANAGED_LABEL.1.to_owned(),
    )];
    matchers.push(("alertname".to_owned(), alert.name.clone()));
    Ok(GrafanaPlan {
        session,
        url,
        datasource_uid,
        folder_uid,
        rule_uid: uid_from("ampkit", &alert.name),
        contact_point_uid: uid_from("ampkit-cp", &args.contact_point),
        route: RouteSpec {
            receiver: args.contact_point.clone(),
            matchers,
            group_by: vec!["alertname".to_owned(), "service".to_owned()],
        },
    })
}

/// The Grafana target: folder, contact point, route, rule and its group's interval, each
/// ledgered as soon as Grafana has it.
async fn apply_grafana(
    args: &CreateArgs,
    plan: &GrafanaPlan,
    alert: &AlertSpec,
    topic_arn: &str,
    region: &str,
    doc: &mut StateDoc,
    section: &mut AlertingSection,
) -> Result<()> {
    let grafana = &plan.session.grafana;
    let grafana_url = plan.url.as_str();
    let part = section.grafana.insert(GrafanaPart {
        url: plan.url.clone(),
        folder_uid: plan.folder_uid.clone(),
        rule_group: alert.group.clone(),
        ..GrafanaPart::default()
    });
    if grafana
        .ensure_folder(&plan.folder_uid, &args.folder)
        .await?
        == Outcome::Created
    {
        doc.push_resource(
            Resource::new(ResourceKind::GrafanaFolder, &plan.folder_uid, NAME).with_details(
                &ObjectDetails {
                    grafana_url: grafana_url.to_owned(),
                },
            ),
        );
    }
    let contact_point = ContactPointSpec {
        uid: plan.contact_point_uid.clone(),
        name: args.contact_point.clone(),
        kind: "sns".to_owned(),
        settings: render::contact_point_settings(args.grafana_sns_shape, topic_arn, region),
    };
    if grafana
        .ensure_contact_point(&contact_point, args.editable)
        .await?
        == Outcome::Created
    {
        doc.push_resource(
            Resource::new(ResourceKind::GrafanaContactPoint, &contact_point.uid, NAME)
                .with_details(&ContactPointDetails {
                    grafana_url: grafana_url.to_owned(),
                    name: Some(contact_point.name.clone()),
                }),
        );
    }
    part.contact_point_uid = contact_point.uid.clone();
    part.contact_point_name = contact_point.name.clone();
    let route = plan.route.to_value();
    if grafana.ensure_route(&plan.route, args.editable).await? == Outcome::Created {
        doc.push_resource(
            Resource::new(
                ResourceKind::GrafanaNotificationRoute,
                &plan.route.receiver,
                NAME,
            )
            .with_details(&RouteDetails::new(grafana_url, &plan.route)),
        );
    }
    part.route =
        json!({"receiver": plan.route.receiver, "objectMatchers": route["object_matchers"]});
    let rule = render::grafana_rule(
        alert,
        &plan.rule_uid,
        &plan.folder_uid,
        &plan.datasource_uid,
    );
    if grafana.ensure_alert_rule(&rule, args.editable).await? == Outcome::Created {
        doc.push_resource(
            Resource::new(ResourceKind::GrafanaAlertRule, &plan.rule_uid, NAME).with_details(
                &AlertRuleDetails {
                    grafana_url: grafana_url.to_owned(),
                    folder_uid: Some(plan.folder_uid.clone()),
                    rule_group: Some(alert.group.clone()),
                    title: Some(alert.name.clone()),
                },
            ),
        );
    }
    part.rule_uid = plan.rule_uid.clone();
    grafana
        .ensure_rule_group_interval(
            &plan.folder_uid,
            &alert.group,
            alert.interval.as_secs(),
            args.editable,
        )
        .await?;
    Ok(())
}

/// The ledger entry of something this run created.
fn created(kind: ResourceKind, id: &str, region: &str) -> Resource {
    Resource::new(kind, id, NAME).region(region)
}

async fn create(
    args: &CreateArgs,
    aws: &AwsArgs,
    config: &SdkConfig,
    doc: &mut StateDoc,
) -> Result<()> {
    let plan = plan(args, aws, config, doc).await?;
    let mut section = AlertingSection {
        region: plan.region.clone(),
        alert: json!({
            "name": plan.alert.name,
            "expr": plan.alert.condition(),
            "thresholdMs": plan.alert.threshold,
            "for": ampkit::timespec::format_duration(plan.alert.for_),
            "interval": ampkit::timespec::format_duration(plan.alert.interval),
            "severity": plan.alert.severity,
        }),
        ..AlertingSection::default()
    };
    // The section goes out whatever happens, with what was done so far; the ledger entries
    // were appended as each object was created.
    let outcome = apply(args, &plan, config, doc, &mut section).await;
    // AMG's service account for this run goes whatever happened; a failed delete is ledgered.
    if let Some(grafana) = plan.grafana
        && let Some(left) = grafana.session.close().await
    {
        doc.push_resource(left);
    }
    doc.set_section(SECTION, &section)?;
    outcome
}

/// Make (or find) everything the plan names, in order, each object ledgered as it is made:
/// the topic, AMP's statement in its policy, the subscriptions, the workspace's rules and
/// definition, the Grafana side.
async fn apply(
    args: &CreateArgs,
    plan: &Plan,
    config: &SdkConfig,
    doc: &mut StateDoc,
    section: &mut AlertingSection,
) -> Result<()> {
    let sns = Sns::new(config);
    let region = plan.region.as_str();
    let topic_arn = ensure_topic(&sns, &plan.topic, region, doc).await?;
    section.topic_arn = topic_arn.clone();
    if let Some(amp) = &plan.amp {
        let sid = allow_amp_to_publish(&sns, amp, &topic_arn, region, doc).await?;
        section.amp = Some(AmpPart {
            workspace_id: amp.workspace_id.clone(),
            policy_statement_sid: sid,
            ..AmpPart::default()
        });
    }
    for email in &args.emails {
        let sub = sns.ensure_email_subscription(&topic_arn, email).await?;
        if sub.created {
            doc.push_resource(
                created(ResourceKind::SnsSubscription, &sub.subscription_arn, region)
                    .arn(&sub.subscription_arn)
                    .with_details(&SubscriptionDetails {
                        topic_arn: topic_arn.clone(),
                        protocol: sub.protocol.clone(),
                        endpoint: Some(sub.endpoint.clone()),
                        pending_confirmation: sub.status != "confirmed",
                    }),
            );
        }
        section.subscriptions.push(sub);
    }
    if let Some(amp) = &plan.amp {
        apply_amp(args, amp, config, &topic_arn, region, doc, section).await?;
    }
    if let Some(grafana) = &plan.grafana {
        apply_grafana(args, grafana, &plan.alert, &topic_arn, region, doc, section).await?;
    }
    Ok(())
}

/// The topic given by ARN (which must exist), or the one named (made if missing).
async fn ensure_topic(
    sns: &Sns,
    topic: &TopicChoice,
    region: &str,
    doc: &mut StateDoc,
) -> Result<String> {
    match topic {
        TopicChoice::Arn(arn) => {
            if !sns.topic_exists(arn).await? {
                return Err(
                    Error::not_found(format!("--topic-arn {arn} does not exist"))
                        .with_hint("create it with --topic-name instead"),
                );
            }
            Ok(arn.clone())
        }
        TopicChoice::Name(name) => {
            let (arn, new) = sns.ensure_topic(name).await?;
            if new {
                doc.push_resource(
                    created(ResourceKind::SnsTopic, &arn, region)
                        .arn(&arn)
                        .with_details(&TopicDetails { name: name.clone() }),
                );
            }
            Ok(arn)
        }
    }
}

/// AMP publishes with its service principal, so the topic's own policy must let it, for this
/// workspace only (aws:SourceArn) and this account (the confused-deputy guard). Returns the
/// statement's Sid.
async fn allow_amp_to_publish(
    sns: &Sns,
    amp: &AmpPlan,
    topic_arn: &str,
    region: &str,
    doc: &mut StateDoc,
) -> Result<String> {
    let sid = amp_statement_sid(&amp.workspace_id);
    let statement = sns::service_publish_statement(
        &sid,
        "aps.amazonaws.com",
        topic_arn,
        &amp.workspace_arn,
        &amp.account,
    );
    if sns.ensure_policy_statement(topic_arn, &statement).await? == StatementOutcome::Added {
        doc.push_resource(
            created(ResourceKind::SnsTopicPolicyStatement, &sid, region).with_details(
                &StatementDetails {
                    topic_arn: topic_arn.to_owned(),
                    workspace_id: amp.workspace_id.clone(),
                },
            ),
        );
    }
    Ok(sid)
}

/// The workspace's side: the rule groups namespace, then the alert manager definition
/// (merged into someone's, if the workspace has one), each waited for until ACTIVE.
async fn apply_amp(
    args: &CreateArgs,
    amp: &AmpPlan,
    config: &SdkConfig,
    topic_arn: &str,
    region: &str,
    doc: &mut StateDoc,
    section: &mut AlertingSection,
) -> Result<()> {
    let progress = Progress::new(NAME, ampkit::cli::progress());
    let rules = Rules::new(config);
    let definition = render::definition_yaml(topic_arn, region, amp.timing)?;
    let ws = amp.workspace_id.as_str();
    // Ledgered as soon as AMP accepted it, before the wait that may still fail.
    let (outcome, arn) = rules
        .ensure_namespace(ws, &args.namespace, &amp.rules)
        .await?;
    if outcome == Outcome::Created {
        doc.push_resource(
            created(
                ResourceKind::AmpRuleGroupsNamespace,
                &args.namespace,
                region,
            )
            .arn(&arn)
            .with_details(&NamespaceDetails {
                workspace_id: ws.to_owned(),
            }),
        );
    }
    if outcome != Outcome::Unchanged {
        rules
            .wait_namespace_active(ws, &args.namespace, args.timeout, &progress)
            .await?;
    }
    if let Some(part) = section.amp.as_mut() {
        part.namespace = args.namespace.clone();
    }
    // Merged into someone's definition: the definition stays theirs, but what we put into it
    // is ledgered, so that teardown takes exactly that back out.
    let merged = std::cell::Cell::new(false);
    let outcome = rules
        .ensure_alert_manager_definition(ws, |existing| match existing {
            None => Ok(definition.clone()),
            Some(existing) => {
                let text = render::merge_definition(existing, &definition)?;
                merged.set(text != definition);
                Ok(text)
            }
        })
        .await?;
    let ledgered = doc.resources().iter().any(|r| {
        r.kind == ResourceKind::AmpAlertManagerDefinition
            && r.details_as::<DefinitionDetails>()
                .is_ok_and(|d| d.workspace_id == ws)
    });
    let ours = DefinitionDetails {
        workspace_id: ws.to_owned(),
        ..DefinitionDetails::default()
    };
    if outcome == Outcome::Created {
        doc.push_resource(
            created(ResourceKind::AmpAlertManagerDefinition, ws, region).with_details(&ours),
        );
    } else if outcome == Outcome::Updated && merged.get() && !ledgered {
        let merged = DefinitionDetails {
            merged: true,
            receiver: Some(render::RECEIVER.to_owned()),
            templates: vec![render::TEMPLATE.to_owned()],
            ..ours
        };
        doc.push_resource(
            created(ResourceKind::AmpAlertManagerDefinition, ws, region).with_details(&merged),
        );
    }
    if outcome != Outcome::Unchanged {
        rules
            .wait_definition_active(ws, args.timeout, &progress)
            .await?;
    }
    if let Some(part) = section.amp.as_mut() {
        part.alert_manager = "ACTIVE".to_owned();
    }
    Ok(())
}

/// `sns-alert test`: one clearly marked notification, so a subscriber can check delivery
/// without waiting for a real alert.
async fn test(args: TestArgs, config: &SdkConfig, doc: &mut StateDoc) -> Result<()> {
    let topic_arn = args
        .topic_arn
        .clone()
        .or_else(|| doc.str_field(SECTION, "topicArn").map(str::to_owned))
        .ok_or_else(|| {
            Error::usage("no topic: pass --topic-arn or pipe in the document sns-alert wrote")
                .with_hint("sns-alert --email you@example.com < state.json > state2.json; sns-alert test < state2.json")
        })?;
    let parsed = TopicArn::parse(&topic_arn).map_err(|e| Error::usage(format!("topic: {e}")))?;
    // Before the publish: SNS would say "not found" for another region's or account's topic.
    parsed
        .placed(args.topic_arn.is_none())
        .check_arn(&topic_arn, config)
        .await?;
    let sns = Sns::new(config);
    let message = format!(
        "TEST NOTIFICATION from ampkit sns-alert - not an alert.\n\
         If you read this, notifications published to {topic_arn} reach you.\n"
    );
    let id = sns
        .publish(
            &topic_arn,
            "[TEST] ampkit sns-alert test notification",
            &message,
            &[("managed_by", "ampkit"), ("test", "true")],
        )
        .await?;
    let mut section = doc
        .section(SECTION)
        .filter(|v| v.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    section["topicArn"] = json!(topic_arn);
    section["test"] = json!({"messageId": id});
    doc.set_section(SECTION, section)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod preflight_tests {
    use super::*;

    use ampkit::preflight::testing::assert_has;

    /// The actions a command line of this tool needs, from its own Preflight.
    fn actions_of(args: &[&str], doc: &str) -> Vec<String> {
        ampkit::preflight::testing::actions_of::<Cli>(args, doc)
    }

    #[test]
    fn each_target_declares_the_topic_the_rules_and_the_definition() {
        let doc = r#"{"workspace":{"workspaceId":"ws-1"}}"#;
        let amp = actions_of(
            &["sns-alert", "--topic-name", "grafana-x", "--email", "a@b.c"],
            doc,
        );
        assert_has(
            &amp,
            &[
                "sns:ListTopics *",
                "sns:CreateTopic arn:aws:sns:eu-west-1:123456789012:grafana-x",
                "sns:SetTopicAttributes arn:aws:sns:eu-west-1:123456789012:grafana-x",
                "sns:Subscribe",
                "aps:DescribeWorkspace arn:aws:aps:eu-west-1:123456789012:workspace/ws-1",
                "aps:CreateRuleGroupsNamespace arn:aws:aps:eu-west-1:123456789012:rulegroupsnamespace/ws-1/ampkit-alerting",
                "aps:PutAlertManagerDefinition arn:aws:aps:eu-west-1:123456789012:workspace/ws-1",
            ],
        );
        let amg = actions_of(
            &[
                "sns-alert",
                "--target",
                "grafana",
                "--amg-workspace-id",
                "g-1",
            ],
            doc,
        );
        assert_has(
            &amg,
            &[
                "grafana:CreateWorkspaceServiceAccount arn:aws:grafana:eu-west-1:123456789012:/workspaces/g-1",
            ],
        );
        assert!(!amg.iter().any(|a| a.starts_with("aps:")), "{amg:#?}");
        assert_eq!(
            actions_of(
                &[
                    "sns-alert",
                    "test",
                    "--topic-arn",
                    "arn:aws:sns:eu-west-1:123456789012:t"
                ],
                "{}"
            ),
            vec!["sns:Publish arn:aws:sns:eu-west-1:123456789012:t"]
        );
    }
}
