//! One ledger entry: read it, and hand it to the owner of its kind, which plans it from
//! read-only calls and (unless dry) deletes it.
//!
//! Every owner has the same shape (lib's `ledger`): look the object up by its recorded
//! identifier; absent is confirmed against the caller's account and the entry's region;
//! present is checked for ownership (our tag, or for untaggable objects what the ledger
//! recorded) and for users that are not ours; then a dry run returns the plan, and only past
//! it is anything mutated. So the dry run and the real run are the same planner, and the dry
//! run makes no mutating call. This file knows which module owns which kind, and nothing of
//! any service's API.

use serde_json::Value;

use ampkit::doc::{Resource, ResourceKind};
use ampkit::error::{ErrorKind, Result};
use ampkit::grafana::{alerting, amg, delete as grafana};
use ampkit::kube::service_account;
use ampkit::ledger::Verdict;
use ampkit::preflight::{Need, Scope};
use ampkit::{amp, eks, iam, sns};

use crate::Context;

/// Handle one raw ledger entry; never fails: what goes wrong is the entry's `Failed`.
pub async fn handle(ctx: &mut Context, value: &Value) -> Verdict {
    let resource: Resource = match serde_json::from_value(value.clone()) {
        Ok(resource) => resource,
        Err(e) => {
            return Verdict::Failed(format!(
                "malformed ledger entry ({e}): kept, never guessed at"
            ));
        }
    };
    if resource.id.is_empty() {
        return Verdict::Failed("the entry has an empty `id`: kept, never guessed at".into());
    }
    match take_down(ctx, &resource).await {
        Ok(verdict) => verdict,
        Err(e) => {
            if e.kind == ErrorKind::Denied {
                ctx.denied += 1;
            }
            Verdict::Failed(e.to_string())
        }
    }
}

/// The owner of each kind.
async fn take_down(ctx: &mut Context, r: &Resource) -> Result<Verdict> {
    match &r.kind {
        ResourceKind::AmpWorkspace => amp::take_down_workspace(ctx, r).await,
        ResourceKind::AmpRuleGroupsNamespace => amp::rules::take_down_namespace(ctx, r).await,
        ResourceKind::AmpAlertManagerDefinition => amp::rules::take_down_definition(ctx, r).await,
        ResourceKind::AmpScraper => amp::scraper::take_down_scraper(ctx, r).await,
        ResourceKind::IamRole => iam::take_down_role(ctx, r).await,
        ResourceKind::IamRolePolicy => iam::take_down_role_policy(ctx, r).await,
        ResourceKind::IamOidcProvider => iam::take_down_oidc_provider(ctx, r).await,
        ResourceKind::EksPodIdentityAssociation => eks::take_down_association(ctx, r).await,
        ResourceKind::EksAccessEntry => eks::take_down_access_entry(ctx, r).await,
        ResourceKind::K8sNamespace => service_account::take_down_namespace(ctx, r).await,
        ResourceKind::K8sServiceAccount => service_account::take_down_service_account(ctx, r).await,
        ResourceKind::SnsTopic => sns::take_down_topic(ctx, r).await,
        ResourceKind::SnsSubscription => sns::take_down_subscription(ctx, r).await,
        ResourceKind::SnsTopicPolicyStatement => sns::take_down_statement(ctx, r).await,
        ResourceKind::GrafanaDatasource => grafana::take_down_datasource(ctx, r).await,
        ResourceKind::GrafanaFolder => grafana::take_down_folder(ctx, r).await,
        ResourceKind::GrafanaDashboard => grafana::take_down_dashboard(ctx, r).await,
        ResourceKind::GrafanaContactPoint => alerting::take_down_contact_point(ctx, r).await,
        ResourceKind::GrafanaNotificationRoute => alerting::take_down_route(ctx, r).await,
        ResourceKind::GrafanaAlertRule => alerting::take_down_alert_rule(ctx, r).await,
        ResourceKind::GrafanaServiceAccount => amg::take_down_service_account(ctx, r).await,
        ResourceKind::Other(kind) => Ok(Verdict::Failed(format!(
            "unknown kind `{kind}` (written by another ampkit version?): kept, never guessed at"
        ))),
    }
}

/// What deleting entry `r` needs, for `--print-policy` and `--check`: each owner declares its
/// kinds' actions next to its `take_down_*` (the same table as [`take_down`]'s). Kubernetes and
/// Grafana's own objects ask nothing of IAM.
pub fn needs(scope: &Scope, r: &Resource) -> Vec<Need> {
    // An entry made in another region is deleted there.
    let scope = match r.region.as_deref().filter(|region| !region.is_empty()) {
        Some(region) => Scope::new(region, &scope.account),
        None => scope.clone(),
    };
    let scope = &scope;
    match &r.kind {
        ResourceKind::AmpWorkspace => amp::needs_to_take_down(scope, r),
        ResourceKind::AmpRuleGroupsNamespace | ResourceKind::AmpAlertManagerDefinition => {
            amp::rules::needs_to_take_down(scope, r)
        }
        ResourceKind::AmpScraper => amp::scraper::needs_to_take_down(scope, r),
        ResourceKind::IamRole | ResourceKind::IamRolePolicy | ResourceKind::IamOidcProvider => {
            iam::needs_to_take_down(scope, r)
        }
        ResourceKind::EksPodIdentityAssociation | ResourceKind::EksAccessEntry => {
            eks::needs_to_take_down(scope, r)
        }
        ResourceKind::SnsTopic
        | ResourceKind::SnsSubscription
        | ResourceKind::SnsTopicPolicyStatement => sns::needs_to_take_down(scope, r),
        ResourceKind::GrafanaServiceAccount => amg::needs_to_take_down(scope, r),
        ResourceKind::K8sNamespace
        | ResourceKind::K8sServiceAccount
        | ResourceKind::GrafanaDatasource
        | ResourceKind::GrafanaFolder
        | ResourceKind::GrafanaDashboard
        | ResourceKind::GrafanaContactPoint
        | ResourceKind::GrafanaNotificationRoute
        | ResourceKind::GrafanaAlertRule
        | ResourceKind::Other(_) => Vec::new(),
    }
}
