//! One ledger entry: parse it, plan it from read-only calls, and (unless dry) delete it.
//!
//! Every handler has the same shape: look the object up by its recorded identifier; absent is
//! confirmed against the caller's account and the entry's region; present is checked for
//! ownership (our tag, or for untaggable objects what the ledger recorded) and for users that
//! are not ours; then `plan_only` returns the plan, and only past it is anything mutated. So
//! the dry run and the real run are the same planner, and the dry run makes no mutating call.

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use serde_json::Value;

use ampkit::amp::{Deleted, Workspaces};
use ampkit::doc::{MANAGED_BY, Resource, ResourceKind, tagged_ours};
use ampkit::eks::{AssociationDetails, Eks};
use ampkit::error::Result;
use ampkit::grafana::delete::Gone;
use ampkit::iam;
use ampkit::kube::{self as k8s, Found};
use ampkit::sts::{arn_account, arn_region};

use crate::ownership::{NOT_TAGGED, detail};
use crate::{Context, Verdict};

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
    match plan_and_delete(ctx, &resource).await {
        Ok(verdict) => verdict,
        Err(e) => Verdict::Failed(e.to_string()),
    }
}

async fn plan_and_delete(ctx: &mut Context, r: &Resource) -> Result<Verdict> {
    match &r.kind {
        ResourceKind::AmpWorkspace => amp_workspace(ctx, r).await,
        ResourceKind::IamRole => iam_role(ctx, r).await,
        ResourceKind::IamRolePolicy => iam_role_policy(ctx, r).await,
        ResourceKind::IamOidcProvider => oidc_provider(ctx, r).await,
        ResourceKind::EksPodIdentityAssociation => pod_identity(ctx, r).await,
        ResourceKind::K8sNamespace => k8s_namespace(ctx, r).await,
        ResourceKind::K8sServiceAccount => k8s_service_account(ctx, r).await,
        ResourceKind::GrafanaDatasource
        | ResourceKind::GrafanaFolder
        | ResourceKind::GrafanaDashboard
        | ResourceKind::GrafanaContactPoint
        | ResourceKind::GrafanaNotificationRoute
        | ResourceKind::GrafanaAlertRule => grafana(ctx, r).await,
        ResourceKind::GrafanaServiceAccount => amg_service_account(ctx, r).await,
        ResourceKind::Other(kind) => Ok(Verdict::Failed(format!(
            "unknown kind `{kind}` (written by another ampkit version?): kept, never guessed at"
        ))),
        ResourceKind::SnsTopic => crate::alerting::topic(ctx, r).await,
        ResourceKind::SnsSubscription => crate::alerting::subscription(ctx, r).await,
        ResourceKind::SnsTopicPolicyStatement => crate::alerting::statement(ctx, r).await,
        ResourceKind::AmpRuleGroupsNamespace => crate::alerting::namespace(ctx, r).await,
        ResourceKind::AmpAlertManagerDefinition => crate::alerting::definition(ctx, r).await,
    }
}

async fn amp_workspace(ctx: &mut Context, r: &Resource) -> Result<Verdict> {
    let region = r
        .region
        .as_deref()
        .or_else(|| r.arn.as_deref().and_then(arn_region));
    let account = r.arn.as_deref().and_then(arn_account);
    let workspaces = Workspaces::new(&ctx.config(region).await?);
    let Some(found) = workspaces.find(&r.id).await? else {
        let what = format!("workspace {}", r.id);
        return Ok(ctx.confirm_absent(&what, account, region, true).await);
    };
    if let Some(arn) = r.arn.as_deref().filter(|a| *a != found.arn()) {
        return Ok(Verdict::Skipped(format!(
            "its ARN is {}, not the recorded {arn}",
            found.arn()
        )));
    }
    let tags = found.tags().cloned().unwrap_or_default();
    if !tagged_ours(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        return Ok(Verdict::Skipped(NOT_TAGGED.into()));
    }
    let status = found
        .status()
        .map(|s| s.status_code().as_str().to_owned())
        .unwrap_or_default();
    if ctx.dry_run {
        return Ok(Verdict::WouldDelete(format!(
            "workspace is {status}; deleted, then waited for until gone"
        )));
    }
    match workspaces
        .delete_and_wait(&r.id, ctx.timeout, &ctx.progress)
        .await?
    {
        Deleted::Now => Ok(Verdict::Deleted),
        Deleted::AlreadyGone => {
            let what = format!("workspace {}", r.id);
            Ok(ctx.confirm_absent(&what, account, region, true).await)
        }
    }
}

async fn iam_client(ctx: &mut Context) -> Result<aws_sdk_iam::Client> {
    Ok(aws_sdk_iam::Client::new(&ctx.config(None).await?))
}

async fn iam_role(ctx: &mut Context, r: &Resource) -> Result<Verdict> {
    let name = r.id.as_str();
    let account = r.arn.as_deref().and_then(arn_account);
    let iam = iam_client(ctx).await?;
    // Never delete the role the caller is running as (ekristen/aws-nuke#919).
    if ctx.caller().await?.role_name() == Some(name) {
        return Ok(Verdict::Skipped(
            "the caller is running as this role; delete it with other credentials".into(),
        ));
    }
    let Some((arn, tags)) = iam::role_arn_and_tags(&iam, name).await? else {
        return Ok(ctx
            .confirm_absent(&format!("role {name}"), account, None, false)
            .await);
    };
    if let Some(recorded) = r.arn.as_deref().filter(|a| *a != arn) {
        return Ok(Verdict::Skipped(format!(
            "its ARN is {arn}, not the recorded {recorded}"
        )));
    }
    if !tagged_ours(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        return Ok(Verdict::Skipped(NOT_TAGGED.into()));
    }
    let ours: Vec<String> = r
        .details
        .get("inlinePolicies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect();
    let attached = iam::role_attachments(&iam, name).await?;
    let foreign_inline: Vec<&String> = attached
        .inline_policies
        .iter()
        .filter(|p| !ours.contains(p))
        .collect();
    if !foreign_inline.is_empty()
        || !attached.managed_policies.is_empty()
        || !attached.instance_profiles.is_empty()
    {
        // Not forced: detaching what someone else attached is theirs to decide
        // (terraform-provider-aws#47855 shows what a silent force does to users).
        return Ok(Verdict::Failed(format!(
            "the role has attachments ampkit did not make (inline policies {foreign_inline:?}, \
             managed policies {:?}, instance profiles {:?}); remove them, then run teardown again",
            attached.managed_policies, attached.instance_profiles
        )));
    }
    let to_delete: Vec<&String> = attached
        .inline_policies
        .iter()
        .filter(|p| ours.contains(p))
        .collect();
    if ctx.dry_run {
        ctx.gone_roles.insert(name.to_owned());
        return Ok(Verdict::WouldDelete(format!(
            "inline policies {to_delete:?}, then the role"
        )));
    }
    for policy in to_delete {
        iam::delete_role_policy(&iam, name, policy).await?;
    }
    if iam::delete_role(&iam, name, &ctx.progress).await? {
        ctx.gone_roles.insert(name.to_owned());
        Ok(Verdict::Deleted)
    } else {
        ctx.gone_roles.insert(name.to_owned());
        Ok(ctx
            .confirm_absent(&format!("role {name}"), account, None, false)
            .await)
    }
}

/// The Sid of the statement irsa-role writes; a policy of that name without it was rewritten
/// by someone else.
const OUR_SID: &str = "AmpWorkspaceAccess";

async fn iam_role_policy(ctx: &mut Context, r: &Resource) -> Result<Verdict> {
    let (role, policy) = match (detail(r, "roleName"), detail(r, "policyName")) {
        (Ok(role), Ok(policy)) => (role.to_owned(), policy.to_owned()),
        (Err(v), _) | (_, Err(v)) => return Ok(v),
    };
    // The entry records no ARN; the account is that of the role the irsa section names.
    let role_arn = r.arn.clone().or_else(|| {
        ctx.irsa_role
            .as_ref()
            .filter(|(name, _)| *name == role)
            .map(|(_, arn)| arn.clone())
    });
    let account = role_arn.as_deref().and_then(arn_account).map(str::to_owned);
    let iam = iam_client(ctx).await?;
    let Some(document) = iam::role_policy_document(&iam, &role, &policy).await? else {
        let what = format!("policy {policy} of role {role}");
        return Ok(ctx
            .confirm_absent(&what, account.as_deref(), None, false)
            .await);
    };
    let statements = match &document["Statement"] {
        Value::Array(items) => items.clone(),
        single => vec![single.clone()],
    };
    if !statements.iter().any(|s| s["Sid"] == OUR_SID) {
        return Ok(Verdict::Skipped(format!(
            "policy {policy} no longer has ampkit's statement {OUR_SID}: someone rewrote it"
        )));
    }
    if ctx.dry_run {
        return Ok(Verdict::WouldDelete(format!(
            "only our inline policy; role {role} stays"
        )));
    }
    if iam::delete_role_policy(&iam, &role, &policy).await? {
        Ok(Verdict::Deleted)
    } else {
        let what = format!("policy {policy} of role {role}");
        Ok(ctx
            .confirm_absent(&what, account.as_deref(), None, false)
            .await)
    }
}

async fn oidc_provider(ctx: &mut Context, r: &Resource) -> Result<Verdict> {
    let arn = r.arn.clone().unwrap_or_else(|| r.id.clone());
    let account = arn_account(&arn).map(str::to_owned);
    let iam = iam_client(ctx).await?;
    let Some(tags) = iam::oidc_provider_tags(&iam, &arn).await? else {
        let what = format!("OIDC provider {arn}");
        return Ok(ctx
            .confirm_absent(&what, account.as_deref(), None, false)
            .await);
    };
    if !tagged_ours(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        return Ok(Verdict::Skipped(NOT_TAGGED.into()));
    }
    // One provider per cluster issuer, shared by every IRSA role of the cluster: deleting it
    // breaks them all ("No OpenIDConnect provider found"), and IAM does not warn.
    let users: Vec<String> = iam::roles_trusting(&iam, &arn)
        .await?
        .into_iter()
        .filter(|role| !ctx.gone_roles.contains(role))
        .collect();
    if !users.is_empty() {
        return Ok(Verdict::Skipped(format!(
            "still trusted by roles {users:?}; deleting it would break them"
        )));
    }
    if ctx.dry_run {
        return Ok(Verdict::WouldDelete("no role trusts it".into()));
    }
    if iam::delete_oidc_provider(&iam, &arn).await? {
        Ok(Verdict::Deleted)
    } else {
        let what = format!("OIDC provider {arn}");
        Ok(ctx
            .confirm_absent(&what, account.as_deref(), None, false)
            .await)
    }
}

async fn pod_identity(ctx: &mut Context, r: &Resource) -> Result<Verdict> {
    let details: AssociationDetails = match r.details_as() {
        Ok(details) => details,
        Err(e) => return Ok(Verdict::Failed(format!("{e}: kept, never guessed at"))),
    };
    if details.cluster_name.is_empty() {
        return Ok(Verdict::Failed(
            "the entry has no `details.clusterName`: kept, never guessed at".into(),
        ));
    }
    let cluster = details.cluster_name.as_str();
    let cluster_arn = details.cluster_arn.as_deref();
    let region = r
        .region
        .clone()
        .or_else(|| cluster_arn.and_then(arn_region).map(str::to_owned));
    let account = cluster_arn.and_then(arn_account).map(str::to_owned);
    let eks = Eks::new(&ctx.config(region.as_deref()).await?);
    let id = r.id.as_str();
    let what = format!("pod identity association {id} of cluster {cluster}");
    // EKS answers not found for a wrong cluster or region too: only the account and region
    // check makes it "gone".
    let Some(association) = eks.find_pod_identity_association(cluster, id).await? else {
        return Ok(ctx
            .confirm_absent(&what, account.as_deref(), region.as_deref(), true)
            .await);
    };
    if !association.ours {
        return Ok(Verdict::Skipped(NOT_TAGGED.into()));
    }
    if ctx.dry_run {
        return Ok(Verdict::WouldDelete(format!(
            "{}/{} -> {}",
            association.namespace, association.service_account, association.role_arn
        )));
    }
    match eks.delete_pod_identity_association(cluster, id).await? {
        Deleted::Now => Ok(Verdict::Deleted),
        Deleted::AlreadyGone => Ok(ctx
            .confirm_absent(&what, account.as_deref(), region.as_deref(), true)
            .await),
    }
}

/// A Kubernetes object by name, deleted only with our label. The ledger records no cluster
/// identity, so "absent" means absent in the current kubeconfig's cluster, and says so.
async fn k8s_object<K>(ctx: &mut Context, api: kube::Api<K>, what: &str) -> Result<Verdict>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = what.rsplit('/').next().unwrap_or(what);
    match k8s::find_ours(&api, name).await? {
        Found::Absent => Ok(Verdict::Absent(
            "not in the cluster of the current kubeconfig".into(),
        )),
        Found::NotOurs => Ok(Verdict::Skipped(format!(
            "it has no label {}={}, so it may not be ours",
            ampkit::doc::MANAGED_BY_LABEL,
            MANAGED_BY.1
        ))),
        Found::Ours if ctx.dry_run => Ok(Verdict::WouldDelete(format!("{what}, labelled ours"))),
        Found::Ours => {
            k8s::delete_and_wait(&api, name, ctx.timeout).await?;
            Ok(Verdict::Deleted)
        }
    }
}

async fn k8s_namespace(ctx: &mut Context, r: &Resource) -> Result<Verdict> {
    let client = ctx.kube().await?;
    let api: kube::Api<Namespace> = kube::Api::all(client);
    k8s_object(ctx, api, &format!("namespace/{}", r.id)).await
}

async fn k8s_service_account(ctx: &mut Context, r: &Resource) -> Result<Verdict> {
    let (namespace, name) = match (detail(r, "namespace"), detail(r, "name")) {
        (Ok(ns), Ok(name)) => (ns.to_owned(), name.to_owned()),
        (Err(v), _) | (_, Err(v)) => return Ok(v),
    };
    let client = ctx.kube().await?;
    let api: kube::Api<ServiceAccount> = kube::Api::namespaced(client, &namespace);
    k8s_object(ctx, api, &format!("serviceaccount/{namespace}/{name}")).await
}

/// Grafana objects carry no tags: they are ours by the uid (and, for a dashboard, the
/// folder) the ledger recorded, in the Grafana it recorded.
async fn grafana(ctx: &mut Context, r: &Resource) -> Result<Verdict> {
    let url = match detail(r, "grafanaUrl") {
        Ok(url) => url.trim_end_matches('/').to_owned(),
        Err(v) => return Ok(v),
    };
    if let Some(given) = ctx.grafana_args.grafana_url.as_deref()
        && given.trim_end_matches('/') != url
    {
        return Ok(Verdict::Skipped(format!(
            "recorded in Grafana {url}, not the --grafana-url {given}"
        )));
    }
    let grafana = ctx.grafana(&url).await?;
    let uid = r.id.as_str();
    let absent = || Verdict::Absent(format!("no such uid in Grafana {url}"));
    let gone = |g: Gone| match g {
        Gone::Deleted => Verdict::Deleted,
        Gone::AlreadyGone => absent(),
    };
    match r.kind {
        ResourceKind::GrafanaContactPoint
        | ResourceKind::GrafanaNotificationRoute
        | ResourceKind::GrafanaAlertRule => crate::alerting::grafana(ctx, r, &grafana, &url).await,
        ResourceKind::GrafanaDashboard => {
            let Some(folder) = grafana.dashboard_folder(uid).await? else {
                return Ok(absent());
            };
            if let Some(recorded) = r.details.get("folderUid").and_then(Value::as_str)
                && recorded != folder
            {
                return Ok(Verdict::Skipped(format!(
                    "it was moved from folder {recorded} to {folder} since it was imported"
                )));
            }
            if !ctx.dry_run {
                grafana.delete_dashboard(uid).await?;
            }
            ctx.gone_grafana.insert(uid.to_owned());
            if ctx.dry_run {
                return Ok(Verdict::WouldDelete(format!(
                    "dashboard in folder {folder}"
                )));
            }
            Ok(Verdict::Deleted)
        }
        ResourceKind::GrafanaFolder => {
            if grafana.folder(uid).await?.is_none() {
                return Ok(absent());
            }
            // Grafana deletes a folder with everything in it.
            let foreign: Vec<String> = grafana
                .folder_contents(uid)
                .await?
                .into_iter()
                .filter(|u| !ctx.gone_grafana.contains(u))
                .collect();
            if !foreign.is_empty() {
                return Ok(Verdict::Skipped(format!(
                    "it holds {foreign:?}, which ampkit did not create (or could not delete); \
                     deleting the folder would delete them"
                )));
            }
            if ctx.dry_run {
                return Ok(Verdict::WouldDelete(
                    "the folder is empty of others' objects".into(),
                ));
            }
            Ok(gone(grafana.delete_folder(uid).await?))
        }
        _ => {
            let Some(found) = grafana.datasource(uid).await? else {
                return Ok(absent());
            };
            if ctx.dry_run {
                return Ok(Verdict::WouldDelete(format!(
                    "datasource `{}`",
                    found["name"].as_str().unwrap_or(uid)
                )));
            }
            Ok(gone(grafana.delete_datasource(uid).await?))
        }
    }
}

/// An AMG workspace service account that grafana-import could not delete at the end of its
/// run (it makes one per run). AMG has no read of a single one, and its delete is "gone is
/// done", so the plan cannot tell present from absent; the account and region are checked
/// before the delete all the same, so that it goes to the workspace the entry names.
async fn amg_service_account(ctx: &mut Context, r: &Resource) -> Result<Verdict> {
    let workspace = match detail(r, "workspaceId") {
        Ok(w) => w.to_owned(),
        Err(v) => return Ok(v),
    };
    let Some(region) = r.region.clone() else {
        return Ok(Verdict::Failed(
            "the entry records no region: kept, never guessed at".into(),
        ));
    };
    if ctx.dry_run {
        return Ok(Verdict::WouldDelete(format!(
            "service account of AMG workspace {workspace} in {region} (and its tokens)"
        )));
    }
    let config = ctx.config(Some(&region)).await?;
    ampkit::grafana::amg::delete_service_account(&config, &workspace, &r.id).await?;
    Ok(Verdict::Deleted)
}
