//! Taking down what the ledger lists: the words between `teardown`, which drives a run (the
//! order, the dry run, signals, the state file, the report), and the service modules, each of
//! which owns its kinds' delete: look the object up by its recorded identifier, check that it
//! is still ours and that nothing else uses it, and only then (never on a dry run) delete it.
//!
//! The owner of a kind is the module that creates it, so what "ours" and "gone" mean is
//! written once: `amp` (workspace), `amp::rules` (rule groups namespace, alert manager
//! definition), `iam` (role, role policy, OIDC provider), `eks` (pod identity association,
//! access entry), `amp::scraper` (managed collector), `kube` (namespace, service account),
//! `sns` (topic, subscription, policy statement), `grafana` (datasource, folder, dashboard),
//! `grafana::alerting` (contact point, route, alert rule) and `grafana::amg` (AMG service
//! account).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::doc::{Resource, ResourceKind, StateDoc};
use crate::error::Result;
use crate::grafana::Grafana;
use crate::poll::Progress;
use crate::sts::Caller;

/// What became of one ledger entry (or, on a dry run, what would).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Dry run: it is there, ours, and would be deleted.
    WouldDelete(String),
    Deleted,
    /// Not there (verified against the right account and region where that applies).
    Absent(String),
    /// There, but not ours any more, or still used by something that is not ours.
    Skipped(String),
    /// Could not be handled; kept for a later run.
    Failed(String),
}

impl Verdict {
    /// The report's word for it.
    pub fn outcome(&self) -> &'static str {
        match self {
            Verdict::WouldDelete(_) => "delete",
            Verdict::Deleted => "deleted",
            Verdict::Absent(_) => "absent",
            Verdict::Skipped(_) => "skipped",
            Verdict::Failed(_) => "failed",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Verdict::Deleted => None,
            Verdict::WouldDelete(r)
            | Verdict::Absent(r)
            | Verdict::Skipped(r)
            | Verdict::Failed(r) => Some(r),
        }
    }

    /// Whether the entry leaves the ledger (only on a real run).
    pub fn is_gone(&self) -> bool {
        matches!(self, Verdict::Deleted | Verdict::Absent(_))
    }
}

/// What removing a ledgered object did, for the deletes that can find the object gone or
/// leave it in place (SNS, AMP rules, Grafana alerting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    Deleted,
    /// It was not there any more: done, as far as the ledger is concerned (once confirmed).
    Absent,
    /// Left in place for a reason the caller should report (and keep the ledger entry for).
    Skipped(String),
}

/// A removal as a verdict; `Absent` is confirmed like every other "not found".
pub async fn removed(
    run: &mut impl Run,
    removal: Removal,
    what: &str,
    account: Option<&str>,
    region: Option<&str>,
) -> Verdict {
    match removal {
        Removal::Deleted => Verdict::Deleted,
        Removal::Absent => confirm_absent(run, what, account, region, true).await,
        Removal::Skipped(why) => Verdict::Skipped(why),
    }
}

/// What a run has learned so far that later entries' plans depend on. Filled from the
/// document before the first entry, and by the owners as entries are handled.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// IAM roles deleted by this run (or, dry, planned to be): they no longer count as users
    /// of an OIDC provider.
    pub gone_roles: HashSet<String>,
    /// Grafana dashboards and folders deleted (or planned) by this run, and our routes as
    /// `route:RECEIVER`: a folder holding only those, and a contact point only those send
    /// to, are ours to delete.
    pub gone_grafana: HashSet<String>,
    /// The document's `irsa.roleName` -> `irsa.roleArn`, for the account of a role policy.
    pub irsa_role: Option<(String, String)>,
    /// Workspace id -> ARN, from the `workspace` section and the ledger: the account of an
    /// entry that lives in a workspace and records no ARN of its own.
    pub workspace_arns: HashMap<String, String>,
    /// The SNS topics this ledger created (a pending subscription goes with its topic).
    pub ledger_topics: HashSet<String>,
}

impl Seen {
    /// What the document says before anything is deleted.
    pub fn from_doc(doc: &StateDoc) -> Seen {
        let mut seen = Seen {
            irsa_role: doc
                .str_field(crate::iam::SECTION, "roleName")
                .zip(doc.str_field(crate::iam::SECTION, "roleArn"))
                .map(|(n, a)| (n.to_owned(), a.to_owned())),
            ..Seen::default()
        };
        for value in doc.resource_values() {
            let Ok(r) = serde_json::from_value::<Resource>(value.clone()) else {
                continue;
            };
            match (&r.kind, r.arn) {
                (ResourceKind::AmpWorkspace, Some(arn)) => {
                    seen.workspace_arns.insert(r.id, arn);
                }
                (ResourceKind::SnsTopic, _) => {
                    seen.ledger_topics.insert(r.id);
                }
                _ => {}
            }
        }
        if let (Some(id), Some(arn)) = (
            doc.str_field(crate::amp::SECTION, "workspaceId"),
            doc.str_field(crate::amp::SECTION, "arn"),
        ) {
            seen.workspace_arns
                .entry(id.to_owned())
                .or_insert_with(|| arn.to_owned());
        }
        seen
    }
}

/// What an owner's delete asks of the run that drives it: whether it is a dry run, how long
/// an asynchronous delete may take, the connections (opened once per run, on first use) and
/// what earlier entries of the run left behind.
// Used generically and on one task only, so the futures need no `Send` bound.
#[allow(async_fn_in_trait)]
pub trait Run {
    fn dry_run(&self) -> bool;
    /// How long one asynchronous delete (workspace, namespace) may take to finish.
    fn timeout(&self) -> Duration;
    fn progress(&self) -> &Progress;
    fn seen(&mut self) -> &mut Seen;
    /// The Grafana the user named (`--grafana-url`), if any: entries of another are skipped.
    fn grafana_url(&self) -> Option<&str>;
    /// The AWS configuration for `region` (the configured one when `None`): an entry is
    /// always deleted in the region it was created in.
    async fn config(&mut self, region: Option<&str>) -> Result<aws_config::SdkConfig>;
    async fn caller(&mut self) -> Result<Caller>;
    async fn kube(&mut self) -> Result<kube::Client>;
    async fn grafana(&mut self, url: &str) -> Result<Grafana>;
}

/// "Not found" becomes `Absent` only when the caller is in the entry's account and the
/// question went to the entry's region (for `regional` services); otherwise the answer proves
/// nothing (a NotFound from the wrong account looks exactly like one for a deleted object)
/// and the entry is kept.
pub async fn confirm_absent(
    run: &mut impl Run,
    what: &str,
    account: Option<&str>,
    region: Option<&str>,
    regional: bool,
) -> Verdict {
    let caller = match run.caller().await {
        Ok(caller) => caller,
        Err(e) => {
            return Verdict::Failed(format!(
                "{what} was not found, but the caller's account could not be checked: {}",
                e.message
            ));
        }
    };
    let Some(account) = account else {
        return Verdict::Failed(format!(
            "{what} was not found, but the entry records no account to check that against (kept)"
        ));
    };
    if account != caller.account {
        return Verdict::Failed(format!(
            "{what} was not found, but the caller is account {} and the entry is in account {account}: \
             use credentials for {account} (kept)",
            caller.account
        ));
    }
    if regional && region.is_none() {
        return Verdict::Failed(format!(
            "{what} was not found, but the entry records no region to ask in (kept)"
        ));
    }
    let place = match region {
        Some(region) => format!("account {account}, region {region}"),
        None => format!("account {account}"),
    };
    Verdict::Absent(format!("not found in {place}"))
}

/// The entry's details as their owner types them; an entry whose details do not read is
/// kept, never guessed at.
pub fn details<T: DeserializeOwned>(r: &Resource) -> std::result::Result<T, Verdict> {
    serde_json::from_value(serde_json::Value::Object(r.details.clone())).map_err(|e| {
        let e = e.to_string();
        // serde's "missing field `x`" is said in the ledger's own terms.
        let missing = e
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        Verdict::Failed(match missing {
            Some(field) => format!("the entry has no `details.{field}`: kept, never guessed at"),
            None => format!(
                "its `details` do not read as a {} entry's ({e}): kept, never guessed at",
                r.kind
            ),
        })
    })
}

/// A detail the delete cannot do without, present but empty.
pub fn required<'a>(value: &'a str, key: &str) -> std::result::Result<&'a str, Verdict> {
    if value.is_empty() {
        Err(Verdict::Failed(format!(
            "the entry has no `details.{key}`: kept, never guessed at"
        )))
    } else {
        Ok(value)
    }
}

/// What a tagged object says when its tags no longer say it is ours.
pub const NOT_TAGGED: &str =
    "it no longer carries the tag managed-by=ampkit, so it may not be ours";

/// Early return of a `Verdict` carried in an `Err`: `verdict!(details(r))`.
#[macro_export]
macro_rules! verdict {
    ($e:expr) => {
        match $e {
            Ok(value) => value,
            Err(verdict) => return Ok(verdict),
        }
    };
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde::Serialize;
    use serde_json::{Map, Value};

    use super::*;
    use crate::grafana::{alerting, amg, delete};
    use crate::{amp, eks, iam, kube, sns};

    /// A ledger as the tools wrote it before their details were typed: a real demo ledger,
    /// and the other kinds key by key as those tools wrote them.
    const UNTYPED: &str = include_str!("../../tests/fixtures/ledgers/untyped-0.1.json");

    fn through<T: DeserializeOwned + Serialize>(r: &Resource) -> Map<String, Value> {
        let typed: T = details(r).unwrap_or_else(|v| panic!("{}: {v:?}", r.kind));
        Resource::new(r.kind.clone(), &r.id, &r.tool)
            .with_details(&typed)
            .details
    }

    /// The details read as their owner's type and written back. The match has no catch-all
    /// for known kinds, so a new kind cannot be added without saying what its details are.
    fn retyped(r: &Resource) -> Map<String, Value> {
        use ResourceKind as K;
        match &r.kind {
            K::AmpWorkspace => through::<amp::WorkspaceDetails>(r),
            K::AmpRuleGroupsNamespace => through::<amp::rules::NamespaceDetails>(r),
            K::AmpAlertManagerDefinition => through::<amp::rules::DefinitionDetails>(r),
            K::AmpScraper => through::<amp::scraper::ScraperDetails>(r),
            K::IamRole => through::<iam::RoleDetails>(r),
            K::IamRolePolicy => through::<iam::RolePolicyDetails>(r),
            K::IamOidcProvider | K::K8sNamespace => r.details.clone(),
            K::EksPodIdentityAssociation => through::<eks::AssociationDetails>(r),
            K::EksAccessEntry => through::<eks::AccessEntryDetails>(r),
            K::K8sServiceAccount => through::<kube::service_account::ServiceAccountDetails>(r),
            K::SnsTopic => through::<sns::TopicDetails>(r),
            K::SnsSubscription => through::<sns::SubscriptionDetails>(r),
            K::SnsTopicPolicyStatement => through::<sns::StatementDetails>(r),
            K::GrafanaDatasource | K::GrafanaFolder => through::<delete::ObjectDetails>(r),
            K::GrafanaDashboard => through::<delete::DashboardDetails>(r),
            K::GrafanaContactPoint => through::<alerting::ContactPointDetails>(r),
            K::GrafanaNotificationRoute => through::<alerting::RouteDetails>(r),
            K::GrafanaAlertRule => through::<alerting::AlertRuleDetails>(r),
            K::GrafanaServiceAccount => through::<amg::ServiceAccountDetails>(r),
            K::Other(kind) => panic!("the fixture has an unknown kind {kind}"),
        }
    }

    #[test]
    fn a_ledger_written_before_typed_details_reads_and_writes_back_unchanged() {
        let doc = StateDoc::parse(UNTYPED).unwrap();
        let ledger = doc.resources();
        let kinds: HashSet<&str> = ledger.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(
            kinds.len(),
            19,
            "every kind 0.1 wrote is in the fixture: {kinds:?}"
        );
        for r in &ledger {
            assert_eq!(retyped(r), r.details, "{} {}", r.kind, r.id);
        }
    }

    #[test]
    fn details_that_do_not_read_keep_the_entry_and_say_why() {
        let r = Resource::new(ResourceKind::IamRolePolicy, "role/policy", "irsa-role");
        let Err(Verdict::Failed(why)) = details::<iam::RolePolicyDetails>(&r) else {
            panic!("missing details must fail the entry");
        };
        assert!(why.contains("`details.roleName`"), "{why}");
        let Err(Verdict::Failed(why)) = required("", "workspaceId") else {
            panic!("an empty detail must fail the entry");
        };
        assert!(why.contains("details.workspaceId"), "{why}");
    }

    #[test]
    fn our_route_leaves_before_the_alert_rules_created_after_it_and_nothing_else_moves() {
        use ResourceKind as K;
        assert!(K::GrafanaNotificationRoute.leaves_before(&K::GrafanaAlertRule));
        assert!(!K::GrafanaAlertRule.leaves_before(&K::GrafanaNotificationRoute));
        assert!(!K::AmpWorkspace.leaves_before(&K::SnsTopic));
    }
}
