//! The IAM side of the collector's identity: the cluster's OIDC provider, the role and its
//! trust, and the least-privilege policy on the workspace.
//!
//! Everything converges: a provider or role that exists is found and updated, not
//! duplicated, and only what this run created is returned for the ledger. The recipe's
//! script appended a new trust statement on every run and granted `aps:RemoteWrite` on `*`;
//! here our statement replaces its own earlier versions, and the policy names one workspace.

use aws_sdk_iam::Client;
use aws_sdk_iam::operation::get_role::GetRoleError;
use aws_sdk_iam::operation::get_role_policy::GetRolePolicyError;
use aws_sdk_iam::types::Tag;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::aws::sdk_error;
use crate::doc::{MANAGED_BY, Resource, tagged_ours};
use crate::error::{Error, Result};
use crate::ledger::{self, Run, Verdict};
use crate::preflight::{Decision, Need, Scope};
use crate::sts::arn_account;

/// The document's key of [`IrsaSection`].
pub const SECTION: &str = "irsa";

/// How the collector's pods get the role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityMode {
    /// IAM roles for service accounts: the service account's OIDC token.
    #[default]
    Irsa,
    /// EKS Pod Identity: an association of the service account with the role.
    PodIdentity,
}

/// The `irsa` section, written by irsa-role; render-agent-config reads where the collector
/// runs (namespace, service account) from it. Reading defaults every field, since a user may
/// hand-write only those.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IrsaSection {
    pub mode: IdentityMode,
    pub cluster: String,
    pub role_name: String,
    pub role_arn: String,
    pub inline_policy: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc_provider_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_identity_association_id: Option<String>,
    pub namespace: String,
    pub service_account: String,
    pub workspace_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
}

pub const STS_AUDIENCE: &str = "sts.amazonaws.com";
pub const POD_IDENTITY_SERVICE: &str = "pods.eks.amazonaws.com";
pub const POLICY_NAME: &str = "ampkit-amp-access";
/// Actions a collector needs to write; the query actions are added with `--query`.
pub const WRITE_ACTIONS: &[&str] = &["aps:RemoteWrite"];
pub const QUERY_ACTIONS: &[&str] = &[
    "aps:QueryMetrics",
    "aps:GetSeries",
    "aps:GetLabels",
    "aps:GetMetricMetadata",
];

pub fn managed_by_tag() -> Result<Tag> {
    Tag::builder()
        .key(MANAGED_BY.0)
        .value(MANAGED_BY.1)
        .build()
        .map_err(|e| Error::internal(format!("could not build an IAM tag: {e}")))
}

/// `https://oidc.eks.R.amazonaws.com/id/X` -> `oidc.eks.R.amazonaws.com/id/X`, the form IAM
/// uses in provider ARNs and condition keys.
pub fn issuer_host_path(issuer: &str) -> &str {
    issuer.trim_start_matches("https://").trim_end_matches('/')
}

/// Who may assume the role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// IRSA: tokens of one service account, from the cluster's OIDC provider.
    ServiceAccount {
        provider_arn: String,
        issuer: String,
        namespace: String,
        service_account: String,
    },
    /// EKS Pod Identity: the pod identity agent assumes the role on the pod's behalf.
    PodIdentity,
}

impl Trust {
    /// For IRSA: the `sub` condition key (`<issuer>:sub`) and the service account it names.
    fn subject(&self) -> Option<(String, String)> {
        match self {
            Trust::ServiceAccount {
                issuer,
                namespace,
                service_account,
                ..
            } => Some((
                format!("{}:sub", issuer_host_path(issuer)),
                format!("system:serviceaccount:{namespace}:{service_account}"),
            )),
            Trust::PodIdentity => None,
        }
    }

    pub fn statement(&self) -> Value {
        match (self, self.subject()) {
            (
                Trust::ServiceAccount {
                    provider_arn,
                    issuer,
                    ..
                },
                Some((sub_key, sub)),
            ) => json!({
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {
                    sub_key: sub,
                    format!("{}:aud", issuer_host_path(issuer)): STS_AUDIENCE,
                }}
            }),
            _ => json!({
                "Effect": "Allow",
                "Principal": {"Service": POD_IDENTITY_SERVICE},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
            }),
        }
    }

    /// Whether an existing statement is an earlier version of ours (same principal and, for
    /// IRSA, the same service account), which ours replaces.
    fn supersedes(&self, existing: &Value) -> bool {
        match (self, self.subject()) {
            (Trust::ServiceAccount { provider_arn, .. }, Some((sub_key, sub))) => {
                existing["Principal"]["Federated"] == provider_arn.as_str()
                    && existing["Condition"]
                        .as_object()
                        .into_iter()
                        .flat_map(|ops| ops.values())
                        .any(|keys| keys[&sub_key] == sub.as_str())
            }
            _ => existing["Principal"]["Service"] == POD_IDENTITY_SERVICE,
        }
    }
}

fn policy_document(statements: Vec<Value>) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn statements_of(document: &Value) -> Vec<Value> {
    match &document["Statement"] {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        single => vec![single.clone()],
    }
}

/// The trust document: the existing statements that are not ours, then ours.
pub fn merged_trust(existing: Option<&Value>, trust: &Trust) -> Value {
    let mut statements: Vec<Value> = existing
        .map(statements_of)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| !trust.supersedes(s))
        .collect();
    statements.push(trust.statement());
    policy_document(statements)
}

/// The permission policy: only the named actions, only on the workspace.
pub fn access_policy(workspace_arn: &str, query: bool) -> Value {
    let mut actions: Vec<&str> = WRITE_ACTIONS.to_vec();
    if query {
        actions.extend_from_slice(QUERY_ACTIONS);
    }
    policy_document(vec![json!({
        "Sid": "AmpWorkspaceAccess",
        "Effect": "Allow",
        "Action": actions,
        "Resource": workspace_arn,
    })])
}

/// IAM returns policy documents URL-encoded (RFC 3986); some emulators return them plain.
pub fn decode_document(text: &str) -> Result<Value> {
    if let Ok(value) = serde_json::from_str(text) {
        return Ok(value);
    }
    let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
    serde_json::from_str(&decoded).map_err(|e| {
        Error::remote(format!(
            "IAM returned a policy document that is not JSON: {e}"
        ))
    })
}

async fn listed_arn_for(iam: &Client, suffix: &str) -> Result<Option<String>> {
    let listed = iam
        .list_open_id_connect_providers()
        .send()
        .await
        .map_err(|e| sdk_error(e, "listing IAM OIDC providers"))?;
    Ok(listed
        .open_id_connect_provider_list()
        .iter()
        .filter_map(|p| p.arn())
        .find(|arn| arn.ends_with(suffix))
        .map(str::to_owned))
}

/// IAM (a global service: one client, whatever the region).
#[derive(Debug, Clone)]
pub struct Iam {
    client: Client,
}

impl Iam {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Iam {
            client: crate::aws_client!(aws_sdk_iam, config),
        }
    }
}

impl Iam {
    /// Find the account's OIDC provider for an issuer; create it if missing. Returns
    /// (provider ARN, created?).
    pub async fn ensure_oidc_provider(
        &self,
        issuer: &str,
        thumbprints: &[String],
    ) -> Result<(String, bool)> {
        let iam = &self.client;
        let host_path = issuer_host_path(issuer);
        let suffix = format!(":oidc-provider/{host_path}");
        if let Some(arn) = listed_arn_for(iam, &suffix).await? {
            let provider = iam
                .get_open_id_connect_provider()
                .open_id_connect_provider_arn(&arn)
                .send()
                .await
                .map_err(|e| sdk_error(e, format!("reading OIDC provider {arn}")))?;
            if !provider.client_id_list().iter().any(|c| c == STS_AUDIENCE) {
                iam.add_client_id_to_open_id_connect_provider()
                    .open_id_connect_provider_arn(&arn)
                    .client_id(STS_AUDIENCE)
                    .send()
                    .await
                    .map_err(|e| {
                        sdk_error(e, format!("adding client id {STS_AUDIENCE} to {arn}"))
                    })?;
            }
            return Ok((arn, false));
        }
        // Without a thumbprint IAM derives it from the issuer's certificate chain (and for EKS
        // issuers trusts its own root CA library); one given by --thumbprint is passed through.
        let mut request = iam
            .create_open_id_connect_provider()
            .url(format!("https://{host_path}"))
            .client_id_list(STS_AUDIENCE)
            .tags(managed_by_tag()?);
        for thumbprint in thumbprints {
            request = request.thumbprint_list(thumbprint);
        }
        let created = match request.send().await {
            Ok(created) => created,
            // Another run created it between our list and our create: it is found, not ours.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_entity_already_exists_exception()) =>
            {
                let arn = listed_arn_for(iam, &suffix).await?.ok_or_else(|| {
                    Error::remote(format!(
                        "IAM says the OIDC provider for {issuer} exists but does not list it"
                    ))
                })?;
                return Ok((arn, false));
            }
            Err(err) => {
                return Err(sdk_error(
                    err,
                    format!("creating the IAM OIDC provider for {issuer}"),
                ));
            }
        };
        let arn = created
            .open_id_connect_provider_arn()
            .ok_or_else(|| Error::remote("IAM created the OIDC provider but returned no ARN"))?
            .to_owned();
        Ok((arn, true))
    }

    /// Create the role with `trust`, or merge `trust` into the existing role's trust.
    pub async fn ensure_role(
        &self,
        name: &str,
        trust: &Trust,
        description: &str,
    ) -> Result<RoleOutcome> {
        let iam = &self.client;
        match iam.get_role().role_name(name).send().await {
            Ok(found) => {
                let role = found
                    .role()
                    .ok_or_else(|| Error::remote(format!("IAM returned no role for {name}")))?;
                let existing = role
                    .assume_role_policy_document()
                    .map(decode_document)
                    .transpose()?;
                let desired = merged_trust(existing.as_ref(), trust);
                if existing.as_ref() != Some(&desired) {
                    iam.update_assume_role_policy()
                        .role_name(name)
                        .policy_document(desired.to_string())
                        .send()
                        .await
                        .map_err(|e| {
                            sdk_error(e, format!("updating the trust policy of role {name}"))
                        })?;
                }
                Ok(RoleOutcome {
                    arn: role.arn().to_owned(),
                    created: false,
                })
            }
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(GetRoleError::is_no_such_entity_exception) =>
            {
                let created = iam
                    .create_role()
                    .role_name(name)
                    .assume_role_policy_document(merged_trust(None, trust).to_string())
                    .description(description)
                    .tags(managed_by_tag()?)
                    .send()
                    .await
                    .map_err(|e| sdk_error(e, format!("creating role {name}")))?;
                let arn = created.role().map(|r| r.arn().to_owned()).ok_or_else(|| {
                    Error::remote(format!("IAM created role {name} but returned no ARN"))
                })?;
                Ok(RoleOutcome { arn, created: true })
            }
            Err(err) => Err(sdk_error(err, format!("reading role {name}"))),
        }
    }

    /// Put the inline access policy unless it is already exactly that; returns whether the
    /// role had no such policy before.
    pub async fn ensure_inline_policy(&self, role: &str, document: &Value) -> Result<bool> {
        let iam = &self.client;
        let existing = match iam
            .get_role_policy()
            .role_name(role)
            .policy_name(POLICY_NAME)
            .send()
            .await
        {
            Ok(found) => Some(decode_document(found.policy_document())?),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(GetRolePolicyError::is_no_such_entity_exception) =>
            {
                None
            }
            Err(err) => {
                return Err(sdk_error(
                    err,
                    format!("reading policy {POLICY_NAME} of role {role}"),
                ));
            }
        };
        if existing.as_ref() != Some(document) {
            iam.put_role_policy()
                .role_name(role)
                .policy_name(POLICY_NAME)
                .policy_document(document.to_string())
                .send()
                .await
                .map_err(|e| {
                    sdk_error(e, format!("putting policy {POLICY_NAME} on role {role}"))
                })?;
        }
        Ok(existing.is_none())
    }
}

/// The role's ARN and whether this call created it.
pub struct RoleOutcome {
    pub arn: String,
    pub created: bool,
}

// ---- Deleting what irsa-role created (teardown) ---------------------------------------------
//
// Each function answers "was it there" so that teardown can tell deleted from already gone;
// none of them deletes anything it was not named (no listing and matching by name).

/// What else hangs on a role besides what the ledger says is ours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleAttachments {
    pub inline_policies: Vec<String>,
    pub managed_policies: Vec<String>,
    pub instance_profiles: Vec<String>,
}

fn is_no_such_entity<E: aws_smithy_types::error::metadata::ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("NoSuchEntity")
}

fn tag_pairs(tags: &[Tag]) -> Vec<(String, String)> {
    tags.iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect()
}

impl Iam {
    /// The role's ARN and tags, or `None` when IAM says there is no such role.
    pub async fn role_arn_and_tags(
        &self,
        name: &str,
    ) -> Result<Option<(String, Vec<(String, String)>)>> {
        let iam = &self.client;
        let arn = match iam.get_role().role_name(name).send().await {
            Ok(found) => found.role().map(|r| r.arn().to_owned()).unwrap_or_default(),
            Err(err) if err.as_service_error().is_some_and(is_no_such_entity) => return Ok(None),
            Err(err) => return Err(sdk_error(err, format!("reading role {name}"))),
        };
        let tags = iam
            .list_role_tags()
            .role_name(name)
            .send()
            .await
            .map_err(|e| sdk_error(e, format!("reading the tags of role {name}")))?;
        Ok(Some((arn, tag_pairs(tags.tags()))))
    }

    /// Inline and attached policies and instance profiles of a role.
    pub async fn role_attachments(&self, name: &str) -> Result<RoleAttachments> {
        let iam = &self.client;
        let inline = iam
            .list_role_policies()
            .role_name(name)
            .send()
            .await
            .map_err(|e| sdk_error(e, format!("listing the inline policies of role {name}")))?;
        let managed = iam
            .list_attached_role_policies()
            .role_name(name)
            .send()
            .await
            .map_err(|e| sdk_error(e, format!("listing the policies attached to role {name}")))?;
        let profiles = iam
            .list_instance_profiles_for_role()
            .role_name(name)
            .send()
            .await
            .map_err(|e| sdk_error(e, format!("listing the instance profiles of role {name}")))?;
        Ok(RoleAttachments {
            inline_policies: inline.policy_names().to_vec(),
            managed_policies: managed
                .attached_policies()
                .iter()
                .filter_map(|p| p.policy_arn().map(str::to_owned))
                .collect(),
            instance_profiles: profiles
                .instance_profiles()
                .iter()
                .map(|p| p.instance_profile_name().to_owned())
                .collect(),
        })
    }

    /// An inline policy's document, or `None` when the role or the policy is not there.
    pub async fn role_policy_document(&self, role: &str, policy: &str) -> Result<Option<Value>> {
        let iam = &self.client;
        match iam
            .get_role_policy()
            .role_name(role)
            .policy_name(policy)
            .send()
            .await
        {
            Ok(found) => decode_document(found.policy_document()).map(Some),
            Err(err) if err.as_service_error().is_some_and(is_no_such_entity) => Ok(None),
            Err(err) => Err(sdk_error(
                err,
                format!("reading policy {policy} of role {role}"),
            )),
        }
    }

    /// Delete one inline policy; `false` when it (or its role) was already gone.
    pub async fn delete_role_policy(&self, role: &str, policy: &str) -> Result<bool> {
        let iam = &self.client;
        match iam
            .delete_role_policy()
            .role_name(role)
            .policy_name(policy)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if err.as_service_error().is_some_and(is_no_such_entity) => Ok(false),
            Err(err) => Err(sdk_error(
                err,
                format!("deleting policy {policy} of role {role}"),
            )),
        }
    }

    /// Delete a role whose attachments were removed; `false` when it was already gone.
    /// DeleteConflict and ConcurrentModification are IAM catching up with those removals (its
    /// propagation delay), so they are retried a bounded number of times, with progress.
    pub async fn delete_role(&self, name: &str, progress: &crate::poll::Progress) -> Result<bool> {
        let iam = &self.client;
        use crate::poll::{self, Attempt, Pace};
        // 0.5 + 1 + 2 + 4 + 8 s of pauses: what IAM's propagation has needed.
        let pace = Pace::doubling(
            std::time::Duration::from_millis(500),
            std::time::Duration::from_secs(8),
            std::time::Duration::from_secs(16),
        );
        let (deleted, _) = poll::until(
            &format!("IAM to let role {name} go"),
            pace,
            progress,
            move || async move {
                match iam.delete_role().role_name(name).send().await {
                    Ok(_) => Ok(Attempt::Done(true)),
                    Err(err) if err.as_service_error().is_some_and(is_no_such_entity) => {
                        Ok(Attempt::Done(false))
                    }
                    Err(err)
                        if err.as_service_error().is_some_and(|e| {
                            e.is_delete_conflict_exception()
                                || e.is_concurrent_modification_exception()
                        }) =>
                    {
                        Ok(Attempt::Pending("IAM still sees attachments".to_owned()))
                    }
                    Err(err) => Err(sdk_error(err, format!("deleting role {name}"))),
                }
            },
            |t| {
                Error::remote(format!(
                    "deleting role {name}: still in conflict after {} attempts",
                    t.attempts
                ))
            },
        )
        .await?;
        Ok(deleted)
    }

    /// The provider's tags, or `None` when IAM says there is no such provider.
    pub async fn oidc_provider_tags(&self, arn: &str) -> Result<Option<Vec<(String, String)>>> {
        let iam = &self.client;
        match iam
            .get_open_id_connect_provider()
            .open_id_connect_provider_arn(arn)
            .send()
            .await
        {
            Ok(found) => Ok(Some(tag_pairs(found.tags()))),
            Err(err) if err.as_service_error().is_some_and(is_no_such_entity) => Ok(None),
            Err(err) => Err(sdk_error(err, format!("reading OIDC provider {arn}"))),
        }
    }

    /// The roles of the account whose trust policy names `provider_arn` as a federated principal:
    /// deleting the provider would break every one of them (IAM does not update them).
    pub async fn roles_trusting(&self, provider_arn: &str) -> Result<Vec<String>> {
        let iam = &self.client;
        let mut pages = iam.list_roles().into_paginator().items().send();
        let mut out = Vec::new();
        while let Some(role) = pages.next().await {
            let role = role.map_err(|e| sdk_error(e, "listing IAM roles"))?;
            let Some(text) = role.assume_role_policy_document() else {
                continue;
            };
            let document = decode_document(text)?;
            let trusts =
                statements_of(&document)
                    .iter()
                    .any(|s| match &s["Principal"]["Federated"] {
                        Value::String(arn) => arn == provider_arn,
                        Value::Array(arns) => arns.iter().any(|a| a == provider_arn),
                        _ => false,
                    });
            if trusts {
                out.push(role.role_name().to_owned());
            }
        }
        Ok(out)
    }

    /// Delete an OIDC provider; `false` when it was already gone.
    pub async fn delete_oidc_provider(&self, arn: &str) -> Result<bool> {
        let iam = &self.client;
        match iam
            .delete_open_id_connect_provider()
            .open_id_connect_provider_arn(arn)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if err.as_service_error().is_some_and(is_no_such_entity) => Ok(false),
            Err(err) => Err(sdk_error(err, format!("deleting OIDC provider {arn}"))),
        }
    }
}

/// A role's ledger details: the inline policies on it that are ours (as the ledger has
/// always had them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleDetails {
    #[serde(default)]
    pub inline_policies: Vec<String>,
}

/// The ledger details of our inline policy on a role someone else made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolePolicyDetails {
    pub role_name: String,
    pub policy_name: String,
}

impl RolePolicyDetails {
    /// The ledger id of our policy on `role`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.role_name, self.policy_name)
    }
}

/// The Sid of the statement irsa-role writes; a policy of that name without it was rewritten
/// by someone else.
const OUR_SID: &str = "AmpWorkspaceAccess";

/// teardown's `iam-role` entry: our inline policies, then the role, unless it carries
/// something ampkit did not put there or the caller is running as it.
pub async fn take_down_role(run: &mut impl Run, r: &Resource) -> Result<Verdict> {
    let details: RoleDetails = crate::verdict!(ledger::details(r));
    let name = r.id.as_str();
    let account = r.arn.as_deref().and_then(arn_account);
    let iam = Iam::new(&run.config(None).await?);
    // Never delete the role the caller is running as (ekristen/aws-nuke#919).
    if run.caller().await?.role_name() == Some(name) {
        return Ok(Verdict::Skipped(
            "the caller is running as this role; delete it with other credentials".into(),
        ));
    }
    let what = format!("role {name}");
    let Some((arn, tags)) = iam.role_arn_and_tags(name).await? else {
        return Ok(ledger::confirm_absent(run, &what, account, None, false).await);
    };
    if let Some(recorded) = r.arn.as_deref().filter(|a| *a != arn) {
        return Ok(Verdict::Skipped(format!(
            "its ARN is {arn}, not the recorded {recorded}"
        )));
    }
    if !tagged_ours(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        return Ok(Verdict::Skipped(ledger::NOT_TAGGED.into()));
    }
    let ours = &details.inline_policies;
    let attached = iam.role_attachments(name).await?;
    let (to_delete, foreign_inline): (Vec<&String>, Vec<&String>) = attached
        .inline_policies
        .iter()
        .partition(|p| ours.contains(p));
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
    if run.dry_run() {
        run.seen().gone_roles.insert(name.to_owned());
        return Ok(Verdict::WouldDelete(format!(
            "inline policies {to_delete:?}, then the role"
        )));
    }
    for policy in to_delete {
        iam.delete_role_policy(name, policy).await?;
    }
    let deleted = iam.delete_role(name, run.progress()).await?;
    run.seen().gone_roles.insert(name.to_owned());
    if deleted {
        Ok(Verdict::Deleted)
    } else {
        Ok(ledger::confirm_absent(run, &what, account, None, false).await)
    }
}

/// teardown's `iam-role-policy` entry: our policy (still holding our statement) leaves the
/// role, which stays.
pub async fn take_down_role_policy(run: &mut impl Run, r: &Resource) -> Result<Verdict> {
    let details: RolePolicyDetails = crate::verdict!(ledger::details(r));
    let role = crate::verdict!(ledger::required(&details.role_name, "roleName"));
    let policy = crate::verdict!(ledger::required(&details.policy_name, "policyName"));
    // The entry records no ARN; the account is that of the role the irsa section names.
    let role_arn = r.arn.clone().or_else(|| {
        run.seen()
            .irsa_role
            .as_ref()
            .filter(|(name, _)| name == role)
            .map(|(_, arn)| arn.clone())
    });
    let account = role_arn.as_deref().and_then(arn_account);
    let iam = Iam::new(&run.config(None).await?);
    let what = format!("policy {policy} of role {role}");
    let Some(document) = iam.role_policy_document(role, policy).await? else {
        return Ok(ledger::confirm_absent(run, &what, account, None, false).await);
    };
    if !statements_of(&document).iter().any(|s| s["Sid"] == OUR_SID) {
        return Ok(Verdict::Skipped(format!(
            "policy {policy} no longer has ampkit's statement {OUR_SID}: someone rewrote it"
        )));
    }
    if run.dry_run() {
        return Ok(Verdict::WouldDelete(format!(
            "only our inline policy; role {role} stays"
        )));
    }
    if iam.delete_role_policy(role, policy).await? {
        Ok(Verdict::Deleted)
    } else {
        Ok(ledger::confirm_absent(run, &what, account, None, false).await)
    }
}

/// teardown's `iam-oidc-provider` entry: deleted only when no role (other than those this run
/// deletes) still trusts it.
pub async fn take_down_oidc_provider(run: &mut impl Run, r: &Resource) -> Result<Verdict> {
    let arn = r.arn.clone().unwrap_or_else(|| r.id.clone());
    let account = arn_account(&arn);
    let iam = Iam::new(&run.config(None).await?);
    let what = format!("OIDC provider {arn}");
    let Some(tags) = iam.oidc_provider_tags(&arn).await? else {
        return Ok(ledger::confirm_absent(run, &what, account, None, false).await);
    };
    if !tagged_ours(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        return Ok(Verdict::Skipped(ledger::NOT_TAGGED.into()));
    }
    // One provider per cluster issuer, shared by every IRSA role of the cluster: deleting it
    // breaks them all ("No OpenIDConnect provider found"), and IAM does not warn.
    let gone = &run.seen().gone_roles;
    let users: Vec<String> = iam
        .roles_trusting(&arn)
        .await?
        .into_iter()
        .filter(|role| !gone.contains(role))
        .collect();
    if !users.is_empty() {
        return Ok(Verdict::Skipped(format!(
            "still trusted by roles {users:?}; deleting it would break them"
        )));
    }
    if run.dry_run() {
        return Ok(Verdict::WouldDelete("no role trusts it".into()));
    }
    if iam.delete_oidc_provider(&arn).await? {
        Ok(Verdict::Deleted)
    } else {
        Ok(ledger::confirm_absent(run, &what, account, None, false).await)
    }
}

// ---- What these calls need (preflight) --------------------------------------------------------

/// The IAM action of every IAM call this module makes (SDK method → action): `--print-policy`
/// and `--check` (crate::preflight) are built from the need builders below, and a unit test
/// finds every SDK call of this file in this table.
pub const CALLS: &[(&str, &str)] = &[
    (
        "add_client_id_to_open_id_connect_provider",
        "iam:AddClientIDToOpenIDConnectProvider",
    ),
    (
        "create_open_id_connect_provider",
        "iam:CreateOpenIDConnectProvider",
    ),
    ("create_role", "iam:CreateRole"),
    (
        "delete_open_id_connect_provider",
        "iam:DeleteOpenIDConnectProvider",
    ),
    ("delete_role", "iam:DeleteRole"),
    ("delete_role_policy", "iam:DeleteRolePolicy"),
    (
        "get_open_id_connect_provider",
        "iam:GetOpenIDConnectProvider",
    ),
    ("get_role", "iam:GetRole"),
    ("get_role_policy", "iam:GetRolePolicy"),
    (
        "list_attached_role_policies",
        "iam:ListAttachedRolePolicies",
    ),
    (
        "list_instance_profiles_for_role",
        "iam:ListInstanceProfilesForRole",
    ),
    (
        "list_open_id_connect_providers",
        "iam:ListOpenIDConnectProviders",
    ),
    ("list_role_policies", "iam:ListRolePolicies"),
    ("list_role_tags", "iam:ListRoleTags"),
    ("list_roles", "iam:ListRoles"),
    ("put_role_policy", "iam:PutRolePolicy"),
    ("update_assume_role_policy", "iam:UpdateAssumeRolePolicy"),
    ("simulate_principal_policy", "iam:SimulatePrincipalPolicy"),
];

/// A role's ARN, or every role's when the name is not known.
pub fn role_arn_in(scope: &Scope, role: Option<&str>) -> String {
    scope.global_arn("iam", &format!("role/{}", role.unwrap_or("*")))
}

/// What [`Iam::ensure_oidc_provider`] needs: the provider of `issuer` (every provider's
/// pattern when the issuer is not known before the run reads the cluster).
pub fn needs_for_oidc_provider(scope: &Scope, issuer: Option<&str>, step: &str) -> Vec<Need> {
    let provider = scope.global_arn(
        "iam",
        &format!("oidc-provider/{}", issuer.map_or("*", issuer_host_path)),
    );
    vec![
        Need::new(
            "iam:ListOpenIDConnectProviders",
            "*",
            format!("{step}: find the cluster's OIDC provider"),
        ),
        Need::new(
            "iam:GetOpenIDConnectProvider",
            &provider,
            format!("{step}: read the OIDC provider"),
        ),
        Need::new(
            "iam:AddClientIDToOpenIDConnectProvider",
            &provider,
            format!("{step}: add the STS audience to the OIDC provider"),
        ),
        Need::new(
            "iam:CreateOpenIDConnectProvider",
            &provider,
            format!("{step}: create the OIDC provider"),
        ),
        Need::new(
            "iam:TagOpenIDConnectProvider",
            &provider,
            format!("{step}: tag the OIDC provider managed-by=ampkit"),
        ),
    ]
}

/// What [`Iam::ensure_role`] and [`Iam::ensure_inline_policy`] need on role `role`.
pub fn needs_for_role(scope: &Scope, role: &str, step: &str) -> Vec<Need> {
    let arn = role_arn_in(scope, Some(role));
    vec![
        Need::new("iam:GetRole", &arn, format!("{step}: find the role")),
        Need::new("iam:CreateRole", &arn, format!("{step}: create the role")),
        Need::new(
            "iam:TagRole",
            &arn,
            format!("{step}: tag the role managed-by=ampkit"),
        ),
        Need::new(
            "iam:UpdateAssumeRolePolicy",
            &arn,
            format!("{step}: merge the trust into the role"),
        ),
        Need::new(
            "iam:GetRolePolicy",
            &arn,
            format!("{step}: read the role's access policy"),
        ),
        Need::new(
            "iam:PutRolePolicy",
            &arn,
            format!("{step}: put the access policy on the role"),
        ),
    ]
}

/// What teardown needs for a ledger entry of an IAM kind (`take_down_*` below).
pub fn needs_to_take_down(scope: &Scope, r: &Resource) -> Vec<Need> {
    let step = format!("teardown: delete {} {}", r.kind.as_str(), r.id);
    let arn = |fallback: String| r.arn.clone().unwrap_or(fallback);
    match &r.kind {
        crate::doc::ResourceKind::IamRole => {
            let arn = arn(role_arn_in(scope, Some(&r.id)));
            [
                "iam:GetRole",
                "iam:ListRoleTags",
                "iam:ListRolePolicies",
                "iam:ListAttachedRolePolicies",
                "iam:ListInstanceProfilesForRole",
                "iam:GetRolePolicy",
                "iam:DeleteRolePolicy",
                "iam:DeleteRole",
            ]
            .iter()
            .map(|a| Need::new(a, &arn, &step))
            .collect()
        }
        crate::doc::ResourceKind::IamRolePolicy => {
            let role = r
                .details_as::<RolePolicyDetails>()
                .map(|d| d.role_name)
                .ok();
            let arn = role_arn_in(scope, role.as_deref());
            ["iam:GetRole", "iam:GetRolePolicy", "iam:DeleteRolePolicy"]
                .iter()
                .map(|a| Need::new(a, &arn, &step))
                .collect()
        }
        crate::doc::ResourceKind::IamOidcProvider => {
            let arn = arn(scope.global_arn("iam", "oidc-provider/*"));
            vec![
                Need::new("iam:GetOpenIDConnectProvider", &arn, &step),
                Need::new(
                    "iam:ListRoles",
                    "*",
                    format!("{step}: find roles that still trust it"),
                ),
                Need::new("iam:DeleteOpenIDConnectProvider", &arn, &step),
            ]
        }
        _ => Vec::new(),
    }
}

/// What `--check` itself needs (not part of a run's policy): the caller's role's ARN and the
/// simulation.
pub fn needs_to_check(scope: &Scope) -> Vec<Need> {
    vec![
        Need::new(
            "iam:GetRole",
            role_arn_in(scope, None),
            "--check: the caller's role ARN",
        ),
        Need::new(
            "iam:SimulatePrincipalPolicy",
            scope.global_arn("iam", "*"),
            "--check: simulate the caller's policies",
        ),
    ]
}

impl Iam {
    /// The ARN of role `name`, with its path (an assumed role's session ARN has neither).
    pub async fn role_arn(&self, name: &str) -> Result<String> {
        let found = self
            .client
            .get_role()
            .role_name(name)
            .send()
            .await
            .map_err(|e| sdk_error(e, format!("reading role {name}")))?;
        found
            .role()
            .map(|r| r.arn().to_owned())
            .ok_or_else(|| Error::remote(format!("IAM returned no role for {name}")))
    }

    /// iam:SimulatePrincipalPolicy of `principal` for `actions` on `resource` (`*`: no
    /// resource named), every page. An endpoint that does not implement it (moto answers an
    /// HTTP 500 that is no AWS error) is [`Simulation::Unavailable`], not a failure: the
    /// caller says so and goes on, as where the caller may not simulate.
    pub async fn simulate(
        &self,
        principal: &str,
        actions: &[String],
        resource: &str,
    ) -> Result<Simulation> {
        use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
        let mut decisions = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut request = self
                .client
                .simulate_principal_policy()
                .policy_source_arn(principal)
                .set_action_names(Some(actions.to_vec()));
            if resource != "*" {
                request = request.resource_arns(resource);
            }
            if let Some(m) = &marker {
                request = request.marker(m);
            }
            // One attempt: the SDK would retry moto's HTTP 500 (it cannot simulate) and say
            // each retry, for a check that is advisory anyway; a throttled one goes on as an
            // unavailable one does.
            let one_attempt = aws_sdk_iam::config::Builder::default()
                .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1));
            let page = match request
                .customize()
                .config_override(one_attempt)
                .send()
                .await
            {
                Ok(page) => page,
                Err(SdkError::ServiceError(e))
                    if e.err().code().is_some_and(|c| {
                        [
                            "Throttling",
                            "ThrottlingException",
                            "TooManyRequestsException",
                        ]
                        .contains(&c)
                    }) =>
                {
                    return Ok(Simulation::Unavailable(
                        "IAM throttled the simulation".to_owned(),
                    ));
                }
                Err(SdkError::ServiceError(e))
                    if e.err()
                        .code()
                        .is_none_or(|c| ["NotImplemented", "InvalidAction"].contains(&c))
                        && e.raw().status().as_u16() != 403 =>
                {
                    return Ok(Simulation::Unavailable(format!(
                        "the IAM endpoint does not answer SimulatePrincipalPolicy (HTTP {})",
                        e.raw().status().as_u16()
                    )));
                }
                Err(SdkError::ResponseError(e)) => {
                    return Ok(Simulation::Unavailable(format!(
                        "the IAM endpoint does not answer SimulatePrincipalPolicy as IAM does (HTTP {})",
                        e.raw().status().as_u16()
                    )));
                }
                Err(e) => {
                    return Err(sdk_error(
                        e,
                        format!("simulating the caller's policies on {resource}"),
                    ));
                }
            };
            for result in page.evaluation_results() {
                decisions.push(Decision {
                    action: result.eval_action_name().to_owned(),
                    resource: result.eval_resource_name().unwrap_or(resource).to_owned(),
                    decision: result.eval_decision().as_str().to_owned(),
                });
            }
            match (page.is_truncated(), page.marker()) {
                (true, Some(next)) => marker = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(Simulation::Decisions(decisions))
    }
}

/// What a simulation gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Simulation {
    Decisions(Vec<Decision>),
    /// The endpoint cannot simulate (why).
    Unavailable(String),
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_iam_call_has_its_action_declared() {
        let scope = Scope::new("eu-west-1", "1");
        let mut declared = needs_for_oidc_provider(&scope, None, "t");
        declared.extend(needs_for_role(&scope, "r", "t"));
        declared.extend(needs_to_check(&scope));
        for kind in [
            crate::doc::ResourceKind::IamRole,
            crate::doc::ResourceKind::IamRolePolicy,
            crate::doc::ResourceKind::IamOidcProvider,
        ] {
            declared.extend(needs_to_take_down(&scope, &Resource::new(kind, "x", "t")));
        }
        crate::preflight::assert_calls_declared(include_str!("iam.rs"), CALLS, &declared);
    }

    fn irsa() -> Trust {
        Trust::ServiceAccount {
            provider_arn:
                "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC"
                    .into(),
            issuer: "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC".into(),
            namespace: "grafana-agent".into(),
            service_account: "grafana-agent".into(),
        }
    }

    #[test]
    fn the_trust_has_sub_and_aud() {
        let s = irsa().statement();
        let cond = &s["Condition"]["StringEquals"];
        assert_eq!(
            cond["oidc.eks.eu-west-1.amazonaws.com/id/ABC:sub"],
            "system:serviceaccount:grafana-agent:grafana-agent"
        );
        assert_eq!(
            cond["oidc.eks.eu-west-1.amazonaws.com/id/ABC:aud"],
            "sts.amazonaws.com"
        );
        assert_eq!(s["Action"], "sts:AssumeRoleWithWebIdentity");
    }

    #[test]
    fn merging_replaces_our_old_statement_and_keeps_others() {
        // The recipe's statement (no `aud`) for the same service account, and someone else's.
        let recipe = json!({
            "Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {"oidc.eks.eu-west-1.amazonaws.com/id/ABC:sub": "system:serviceaccount:grafana-agent:grafana-agent"}}
        });
        let other = json!({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"});
        let existing = json!({"Version": "2012-10-17", "Statement": [recipe, other.clone()]});
        let merged = merged_trust(Some(&existing), &irsa());
        assert_eq!(merged["Statement"], json!([other, irsa().statement()]));
        // Converged: merging again changes nothing.
        assert_eq!(merged_trust(Some(&merged), &irsa()), merged);
    }

    #[test]
    fn the_policy_names_the_workspace_and_never_a_wildcard() {
        let arn = "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1";
        let p = access_policy(arn, false);
        assert_eq!(p["Statement"][0]["Action"], json!(["aps:RemoteWrite"]));
        assert_eq!(p["Statement"][0]["Resource"], arn);
        let q = access_policy(arn, true);
        assert_eq!(q["Statement"][0]["Action"].as_array().unwrap().len(), 5);
        assert!(!q.to_string().contains('*'));
    }

    #[test]
    fn url_encoded_documents_decode() {
        let v = decode_document("%7B%22Version%22%3A%222012-10-17%22%7D").unwrap();
        assert_eq!(v, json!({"Version": "2012-10-17"}));
        assert_eq!(decode_document(r#"{"a":1}"#).unwrap(), json!({"a": 1}));
    }
}
