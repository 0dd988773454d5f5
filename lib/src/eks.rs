//! EKS: the cluster the collector runs in (its ARN and OIDC issuer, which irsa-role trusts) and
//! the two EKS objects ampkit makes: a pod identity association (`irsa-role --pod-identity`)
//! and an access entry mapping a managed collector's role to its Kubernetes user
//! (`amp-workspace scraper`). The creating tool ensures each and teardown deletes it, both
//! through [`Eks`], so what "ours" means (the managed-by tag) and what "gone" means are
//! written once.

use aws_sdk_eks::operation::create_access_entry::CreateAccessEntryError;
use aws_sdk_eks::operation::describe_access_entry::DescribeAccessEntryError;
use aws_sdk_eks::operation::describe_cluster::DescribeClusterError;
use aws_sdk_eks::operation::describe_pod_identity_association::DescribePodIdentityAssociationError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::{Deserialize, Serialize};

use crate::aws::{Deleted, sdk_error};
use crate::doc::{MANAGED_BY, Resource, tagged_ours};
use crate::error::{Error, Result};
use crate::ledger::{self, Run, Verdict};
use crate::preflight::{Need, Scope};
use crate::sts::{arn_account, arn_region};

/// What the tools need of a cluster: irsa-role its ARN and issuer, a managed collector its
/// ARN and network (it scrapes from inside the cluster's VPC).
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub arn: Option<String>,
    /// The OIDC issuer URL (IRSA's identity provider), when the cluster has one.
    pub issuer: Option<String>,
    pub subnet_ids: Vec<String>,
    /// The cluster's own security group first (EKS makes it), then the additional ones.
    pub security_group_ids: Vec<String>,
    /// `accessConfig.authenticationMode`: API, API_AND_CONFIG_MAP or CONFIG_MAP; `None` where
    /// EKS does not say (an emulator that predates access entries).
    pub authentication_mode: Option<String>,
}

/// The Kubernetes user a managed collector's role is mapped to: the subject of the
/// ClusterRoleBinding that render-agent-config's managed-scraper flavor writes (its
/// `k8s::SCRAPER_USER` is this constant), and the name AWS's guide uses ("Configuring your Amazon EKS cluster",
/// https://docs.aws.amazon.com/prometheus/latest/userguide/AMP-collector-how-to.html).
pub const COLLECTOR_USER: &str = "aps-collector-user";

impl Cluster {
    /// Refuse a cluster that cannot take access entries. A cluster authenticates IAM
    /// principals through the aws-auth ConfigMap, access entries, or both
    /// (`accessConfig.authenticationMode`; EKS User Guide, "Change authentication mode to use
    /// access entries", https://docs.aws.amazon.com/eks/latest/userguide/setting-up-access-entries.html):
    /// with CONFIG_MAP alone an access entry is refused, and AWS's AMP guide asks for API or
    /// API_AND_CONFIG_MAP. The mode can be moved towards API, never back.
    pub fn check_takes_access_entries(&self, name: &str) -> Result<()> {
        if self.authentication_mode.as_deref() == Some("CONFIG_MAP") {
            return Err(Error::input(format!(
                "EKS cluster {name} authenticates only through the aws-auth ConfigMap \
                 (authenticationMode CONFIG_MAP), so it cannot take an access entry"
            ))
            .with_hint(format!(
                "switch it to `aws eks update-cluster-config --name {name} --access-config \
                 authenticationMode=API_AND_CONFIG_MAP`, or map the role to a user in aws-auth"
            )));
        }
        Ok(())
    }
}

/// An access entry as EKS describes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccessEntry {
    /// The IAM principal it maps, as the entry names it.
    pub principal_arn: String,
    pub arn: Option<String>,
    /// The Kubernetes user the principal authenticates as (EKS picks one when none is given).
    pub username: Option<String>,
    pub kubernetes_groups: Vec<String>,
    /// Carries ampkit's managed-by tag.
    pub ours: bool,
}

/// The ledger details of an access entry (its id is the principal ARN): the cluster it
/// belongs to, which its describe and delete need, and the cluster's ARN for the account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessEntryDetails {
    pub cluster_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_arn: Option<String>,
}

/// The principal ARN an access entry gets for `role_arn`: the role's ARN without its path.
/// AMP describes a scraper's service-linked role with the path
/// `aws-service-role/scraper.aps.amazonaws.com/`, and AWS's AMP guide ("Configuring your
/// Amazon EKS cluster", AMP-collector-how-to) says EKS needs it as
/// `arn:aws:iam::ACCOUNT:role/AWSServiceRoleForAmazonPrometheusScraper_ID`. EKS itself takes
/// either form for an access entry (EKS User Guide, "Create access entries"), and a role's
/// name is unique in its account whatever its path, so nothing is lost.
pub fn principal_for_role(role_arn: &str) -> String {
    match role_arn.split_once(":role/") {
        Some((head, path_and_name)) => {
            let name = path_and_name.rsplit('/').next().unwrap_or(path_and_name);
            format!("{head}:role/{name}")
        }
        None => role_arn.to_owned(),
    }
}

/// The account and name of an IAM role ARN, whatever its path.
fn role_of(arn: &str) -> Option<(&str, &str)> {
    let account = arn_account(arn)?;
    let (_, path_and_name) = arn.split_once(":role/")?;
    path_and_name
        .rsplit('/')
        .next()
        .filter(|name| !name.is_empty())
        .map(|name| (account, name))
}

/// Whether two principal ARNs name the same role (paths aside), or are the same ARN.
fn same_principal(a: &str, b: &str) -> bool {
    a == b || role_of(a).is_some_and(|role| role_of(b) == Some(role))
}

/// An answer that is a bare HTTP 404, not an AWS error: the endpoint has no such API (an EKS
/// emulator; moto 5.2 has no access entries). EKS's own "not found" is an AWS error.
fn api_missing<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    let bare = match err {
        SdkError::ServiceError(service) => service.err().code().is_none(),
        SdkError::ResponseError(_) => true,
        _ => false,
    };
    bare && err.raw_response().map(|r| r.status().as_u16()) == Some(404)
}

fn entry_of(entry: &aws_sdk_eks::types::AccessEntry, principal: &str) -> AccessEntry {
    AccessEntry {
        principal_arn: entry.principal_arn().unwrap_or(principal).to_owned(),
        arn: entry.access_entry_arn().map(str::to_owned),
        username: entry
            .username()
            .filter(|u| !u.is_empty())
            .map(str::to_owned),
        kubernetes_groups: entry.kubernetes_groups().to_vec(),
        ours: tagged_ours(
            entry
                .tags()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        ),
    }
}

/// A pod identity association as EKS describes it.
#[derive(Debug, Clone, Default)]
pub struct Association {
    pub id: String,
    pub namespace: String,
    pub service_account: String,
    pub role_arn: String,
    /// Carries ampkit's managed-by tag.
    pub ours: bool,
}

/// The ledger details of a pod identity association: the cluster it belongs to, which its
/// delete needs (serialised as the ledger has always had them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationDetails {
    pub cluster_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_arn: Option<String>,
}

/// EKS, for one region.
#[derive(Debug, Clone)]
pub struct Eks {
    client: aws_sdk_eks::Client,
}

impl Eks {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Eks {
            client: crate::aws_client!(aws_sdk_eks, config),
        }
    }

    /// The cluster `name`; not found is exit 3, naming the region that was asked.
    pub async fn cluster(&self, name: &str, region: &str) -> Result<Cluster> {
        match self.client.describe_cluster().name(name).send().await {
            Ok(out) => {
                let cluster = out
                    .cluster()
                    .ok_or_else(|| Error::remote(format!("EKS returned no cluster for {name}")))?;
                let vpc = cluster.resources_vpc_config();
                let security_group_ids = vpc
                    .and_then(|v| v.cluster_security_group_id())
                    .map(str::to_owned)
                    .into_iter()
                    .chain(
                        vpc.map(|v| v.security_group_ids().to_vec())
                            .unwrap_or_default(),
                    )
                    .collect();
                Ok(Cluster {
                    arn: cluster.arn().map(str::to_owned),
                    issuer: cluster
                        .identity()
                        .and_then(|i| i.oidc())
                        .and_then(|o| o.issuer())
                        .map(str::to_owned),
                    subnet_ids: vpc.map(|v| v.subnet_ids().to_vec()).unwrap_or_default(),
                    security_group_ids,
                    authentication_mode: cluster
                        .access_config()
                        .and_then(|a| a.authentication_mode())
                        .map(|m| m.as_str().to_owned()),
                })
            }
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(DescribeClusterError::is_resource_not_found_exception) =>
            {
                Err(
                    Error::not_found(format!("EKS cluster `{name}` not found in region {region}"))
                        .with_hint("check --cluster and --region (`aws eks list-clusters`)"),
                )
            }
            Err(err) => Err(sdk_error(err, format!("describing EKS cluster {name}"))),
        }
    }

    /// Find the association of `namespace/service_account` in `cluster` and point it at
    /// `role_arn`, or create it (tagged ours). Returns its id and whether it was created: one
    /// found is repointed, never ledgered (it may be someone else's).
    pub async fn ensure_pod_identity_association(
        &self,
        cluster: &str,
        namespace: &str,
        service_account: &str,
        role_arn: &str,
    ) -> Result<(String, bool)> {
        let listed = self
            .client
            .list_pod_identity_associations()
            .cluster_name(cluster)
            .namespace(namespace)
            .service_account(service_account)
            .send()
            .await
            .map_err(|e| sdk_error(e, format!("listing pod identity associations of {cluster}")))?;
        if let Some(id) = listed
            .associations()
            .iter()
            .find_map(|a| a.association_id())
        {
            let current = self.find_pod_identity_association(cluster, id).await?;
            if current.is_none_or(|a| a.role_arn != role_arn) {
                self.client
                    .update_pod_identity_association()
                    .cluster_name(cluster)
                    .association_id(id)
                    .role_arn(role_arn)
                    .send()
                    .await
                    .map_err(|e| sdk_error(e, format!("updating pod identity association {id}")))?;
            }
            return Ok((id.to_owned(), false));
        }
        let created = self
            .client
            .create_pod_identity_association()
            .cluster_name(cluster)
            .namespace(namespace)
            .service_account(service_account)
            .role_arn(role_arn)
            .tags(MANAGED_BY.0, MANAGED_BY.1)
            .send()
            .await
            .map_err(|e| {
                sdk_error(
                    e,
                    format!("creating the pod identity association in {cluster}"),
                )
            })?;
        let id = created
            .association()
            .and_then(|a| a.association_id())
            .ok_or_else(|| {
                Error::remote("EKS created the pod identity association but returned no id")
            })?;
        Ok((id.to_owned(), true))
    }

    /// The association `id` of `cluster`, or `None` where EKS answers not found (which it
    /// also does for a wrong cluster or region: the caller decides what that means).
    pub async fn find_pod_identity_association(
        &self,
        cluster: &str,
        id: &str,
    ) -> Result<Option<Association>> {
        match self
            .client
            .describe_pod_identity_association()
            .cluster_name(cluster)
            .association_id(id)
            .send()
            .await
        {
            Ok(out) => Ok(out.association.map(|a| {
                let ours = tagged_ours(
                    a.tags()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                );
                Association {
                    id: a.association_id().unwrap_or(id).to_owned(),
                    namespace: a.namespace().unwrap_or_default().to_owned(),
                    service_account: a.service_account().unwrap_or_default().to_owned(),
                    role_arn: a.role_arn().unwrap_or_default().to_owned(),
                    ours,
                }
            })),
            Err(e)
                if e.as_service_error().is_some_and(
                    DescribePodIdentityAssociationError::is_resource_not_found_exception,
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error(
                e,
                format!("describing pod identity association {id} of cluster {cluster}"),
            )),
        }
    }

    /// Delete the association `id` of `cluster`.
    pub async fn delete_pod_identity_association(
        &self,
        cluster: &str,
        id: &str,
    ) -> Result<Deleted> {
        match self
            .client
            .delete_pod_identity_association()
            .cluster_name(cluster)
            .association_id(id)
            .send()
            .await
        {
            Ok(_) => Ok(Deleted::Now),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(Deleted::AlreadyGone)
            }
            Err(e) => Err(sdk_error(
                e,
                format!("deleting pod identity association {id} of cluster {cluster}"),
            )),
        }
    }

    /// The principal ARNs of `cluster`'s access entries (EKS API Reference,
    /// ListAccessEntries). An endpoint without the access-entry API is a usage error said in
    /// one line, so that a caller can ask before making anything that would need an entry.
    pub async fn access_entries(&self, cluster: &str) -> Result<Vec<String>> {
        let mut pages = self
            .client
            .list_access_entries()
            .cluster_name(cluster)
            .into_paginator()
            .send();
        let mut principals = Vec::new();
        while let Some(page) = pages.next().await {
            match page {
                Ok(page) => principals.extend(page.access_entries().iter().cloned()),
                Err(e) if api_missing(&e) => {
                    return Err(Error::usage(format!(
                        "this EKS endpoint has no access-entry API (ListAccessEntries for \
                         cluster {cluster} answered a bare HTTP 404)"
                    ))
                    .with_hint("map the role to its Kubernetes user another way (aws-auth)"));
                }
                Err(e) => {
                    return Err(sdk_error(
                        e,
                        format!("listing the access entries of cluster {cluster}"),
                    ));
                }
            }
        }
        Ok(principals)
    }

    /// Find the access entry of `cluster` for `principal`'s role, or create it (a STANDARD
    /// entry, tagged ours) mapping the principal to the Kubernetes user `username`. Returns it
    /// and whether it was created: one found is left as it is and never ledgered (AMP makes
    /// one itself for a scraper on a cluster that takes access entries, per its guide; it may
    /// be someone else's). The search compares roles by account and name, because the entry
    /// may name the role with or without its path, and EKS takes one entry per principal.
    pub async fn ensure_access_entry(
        &self,
        cluster: &str,
        principal: &str,
        username: &str,
    ) -> Result<(AccessEntry, bool)> {
        let listed = self.access_entries(cluster).await?;
        if let Some(found) = listed.iter().find(|p| same_principal(p, principal))
            && let Some(entry) = self.find_access_entry(cluster, found).await?
        {
            return Ok((entry, false));
        }
        // EKS API Reference, CreateAccessEntry: a username given here is what Kubernetes RBAC
        // sees (the ClusterRoleBinding's subject); STANDARD is the type for any IAM principal
        // that is not a node's.
        let created = self
            .client
            .create_access_entry()
            .cluster_name(cluster)
            .principal_arn(principal)
            .username(username)
            .r#type("STANDARD")
            .tags(MANAGED_BY.0, MANAGED_BY.1)
            .send()
            .await;
        match created {
            Ok(out) => {
                let entry = out.access_entry().ok_or_else(|| {
                    Error::remote(format!(
                        "EKS created the access entry for {principal} but did not describe it"
                    ))
                })?;
                Ok((entry_of(entry, principal), true))
            }
            // Made meanwhile (by AMP, or another run): found, not ours to ledger.
            Err(e)
                if e.as_service_error()
                    .is_some_and(CreateAccessEntryError::is_resource_in_use_exception) =>
            {
                let entry = self
                    .find_access_entry(cluster, principal)
                    .await?
                    .ok_or_else(|| {
                        Error::remote(format!(
                            "EKS says an access entry for {principal} exists in cluster \
                             {cluster}, but does not describe it"
                        ))
                    })?;
                Ok((entry, false))
            }
            Err(e) => Err(sdk_error(
                e,
                format!("creating the access entry for {principal} in cluster {cluster}"),
            )),
        }
    }

    /// The access entry of `cluster` for `principal`, or `None` where EKS answers not found
    /// (which it also does for a wrong cluster or region: the caller decides what that means).
    pub async fn find_access_entry(
        &self,
        cluster: &str,
        principal: &str,
    ) -> Result<Option<AccessEntry>> {
        match self
            .client
            .describe_access_entry()
            .cluster_name(cluster)
            .principal_arn(principal)
            .send()
            .await
        {
            Ok(out) => Ok(out.access_entry().map(|e| entry_of(e, principal))),
            Err(e)
                if e.as_service_error()
                    .is_some_and(DescribeAccessEntryError::is_resource_not_found_exception) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error(
                e,
                format!("describing the access entry for {principal} in cluster {cluster}"),
            )),
        }
    }

    /// Delete the access entry of `cluster` for `principal`.
    pub async fn delete_access_entry(&self, cluster: &str, principal: &str) -> Result<Deleted> {
        match self
            .client
            .delete_access_entry()
            .cluster_name(cluster)
            .principal_arn(principal)
            .send()
            .await
        {
            Ok(_) => Ok(Deleted::Now),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(Deleted::AlreadyGone)
            }
            Err(e) => Err(sdk_error(
                e,
                format!("deleting the access entry for {principal} in cluster {cluster}"),
            )),
        }
    }
}

/// Where an EKS ledger entry's object is: the entry's region, else its cluster ARN's, and the
/// cluster ARN's account (what makes EKS's "not found" mean gone, see `confirm_absent`).
fn placed<'a>(r: &'a Resource, cluster_arn: Option<&'a str>) -> (Option<&'a str>, Option<&'a str>) {
    let region = r
        .region
        .as_deref()
        .or_else(|| cluster_arn.and_then(arn_region));
    (region, cluster_arn.and_then(arn_account))
}

/// teardown's `eks-pod-identity-association` entry: the recorded association of the recorded
/// cluster, if it still carries our tag.
pub async fn take_down_association(run: &mut impl Run, r: &Resource) -> Result<Verdict> {
    let details: AssociationDetails = crate::verdict!(ledger::details(r));
    let cluster = crate::verdict!(ledger::required(&details.cluster_name, "clusterName"));
    let (region, account) = placed(r, details.cluster_arn.as_deref());
    let eks = Eks::new(&run.config(region).await?);
    let id = r.id.as_str();
    let what = format!("pod identity association {id} of cluster {cluster}");
    // EKS answers not found for a wrong cluster or region too: only the account and region
    // check makes it "gone".
    let Some(association) = eks.find_pod_identity_association(cluster, id).await? else {
        return Ok(ledger::confirm_absent(run, &what, account, region, true).await);
    };
    if !association.ours {
        return Ok(Verdict::Skipped(ledger::NOT_TAGGED.into()));
    }
    if run.dry_run() {
        return Ok(Verdict::WouldDelete(format!(
            "{}/{} -> {}",
            association.namespace, association.service_account, association.role_arn
        )));
    }
    match eks.delete_pod_identity_association(cluster, id).await? {
        Deleted::Now => Ok(Verdict::Deleted),
        Deleted::AlreadyGone => Ok(ledger::confirm_absent(run, &what, account, region, true).await),
    }
}

/// teardown's `eks-access-entry` entry: the access entry of the recorded principal (the
/// entry's id) in the recorded cluster, if it still carries our tag.
pub async fn take_down_access_entry(run: &mut impl Run, r: &Resource) -> Result<Verdict> {
    let details: AccessEntryDetails = crate::verdict!(ledger::details(r));
    let cluster = crate::verdict!(ledger::required(&details.cluster_name, "clusterName"));
    let (region, account) = placed(r, details.cluster_arn.as_deref());
    let eks = Eks::new(&run.config(region).await?);
    let principal = r.id.as_str();
    let what = format!("access entry for {principal} in cluster {cluster}");
    // EKS answers not found for a wrong cluster or region too: only the account and region
    // check makes it "gone".
    let Some(entry) = eks.find_access_entry(cluster, principal).await? else {
        return Ok(ledger::confirm_absent(run, &what, account, region, true).await);
    };
    if !entry.ours {
        return Ok(Verdict::Skipped(ledger::NOT_TAGGED.into()));
    }
    if run.dry_run() {
        return Ok(Verdict::WouldDelete(format!(
            "{} as Kubernetes user {}",
            entry.principal_arn,
            entry.username.as_deref().unwrap_or("(EKS's default)")
        )));
    }
    match eks.delete_access_entry(cluster, principal).await? {
        Deleted::Now => Ok(Verdict::Deleted),
        Deleted::AlreadyGone => Ok(ledger::confirm_absent(run, &what, account, region, true).await),
    }
}

// ---- What these calls need (preflight) --------------------------------------------------------

/// The IAM action of every EKS call this module makes (SDK method → action); a unit test
/// finds every SDK call of this file here.
pub const CALLS: &[(&str, &str)] = &[
    ("describe_cluster", "eks:DescribeCluster"),
    (
        "create_pod_identity_association",
        "eks:CreatePodIdentityAssociation",
    ),
    (
        "delete_pod_identity_association",
        "eks:DeletePodIdentityAssociation",
    ),
    (
        "describe_pod_identity_association",
        "eks:DescribePodIdentityAssociation",
    ),
    (
        "list_pod_identity_associations",
        "eks:ListPodIdentityAssociations",
    ),
    (
        "update_pod_identity_association",
        "eks:UpdatePodIdentityAssociation",
    ),
    ("list_access_entries", "eks:ListAccessEntries"),
    ("create_access_entry", "eks:CreateAccessEntry"),
    ("describe_access_entry", "eks:DescribeAccessEntry"),
    ("delete_access_entry", "eks:DeleteAccessEntry"),
];

/// A cluster's ARN.
pub fn cluster_arn_in(scope: &Scope, cluster: &str) -> String {
    scope.arn("eks", &format!("cluster/{cluster}"))
}

/// What [`Eks::cluster`] needs.
pub fn needs_to_describe_cluster(scope: &Scope, cluster: &str, step: &str) -> Vec<Need> {
    vec![Need::new(
        "eks:DescribeCluster",
        cluster_arn_in(scope, cluster),
        format!("{step}: read the EKS cluster"),
    )]
}

/// What [`Eks::ensure_pod_identity_association`] needs: associations of the cluster, and
/// passing the role to EKS.
pub fn needs_for_pod_identity(
    scope: &Scope,
    cluster: &str,
    role_arn: &str,
    step: &str,
) -> Vec<Need> {
    let cluster_arn = cluster_arn_in(scope, cluster);
    let associations = scope.arn("eks", &format!("podidentityassociation/{cluster}/*"));
    vec![
        Need::new(
            "eks:ListPodIdentityAssociations",
            &cluster_arn,
            format!("{step}: find the pod identity association"),
        ),
        Need::new(
            "eks:CreatePodIdentityAssociation",
            &cluster_arn,
            format!("{step}: create the pod identity association"),
        ),
        Need::new(
            "eks:TagResource",
            &associations,
            format!("{step}: tag the association managed-by=ampkit"),
        ),
        Need::new(
            "eks:DescribePodIdentityAssociation",
            &associations,
            format!("{step}: read the association"),
        ),
        Need::new(
            "eks:UpdatePodIdentityAssociation",
            &associations,
            format!("{step}: point the association at the role"),
        ),
        Need::new(
            "iam:PassRole",
            role_arn,
            format!("{step}: give the role to EKS Pod Identity"),
        ),
    ]
}

/// The ARN of `cluster`'s access entry for `principal` (any principal when `None`), as the
/// Service Authorization Reference for Amazon EKS writes it:
/// `access-entry/${ClusterName}/${IamIdentityType}/${IamIdentityAccountID}/${IamIdentityName}/${UUID}`.
pub fn access_entry_arn_in(scope: &Scope, cluster: &str, principal: Option<&str>) -> String {
    match principal.and_then(role_of) {
        Some((account, name)) => scope.arn(
            "eks",
            &format!("access-entry/{cluster}/role/{account}/{name}/*"),
        ),
        None => scope.arn("eks", &format!("access-entry/{cluster}/*")),
    }
}

/// What [`Eks::ensure_access_entry`] (and the [`Eks::access_entries`] asked before it) needs.
/// The scraper's role is AMP's to name once the scraper exists, so the entry is any of the
/// cluster's.
pub fn needs_for_access_entry(scope: &Scope, cluster: &str, step: &str) -> Vec<Need> {
    let cluster_arn = cluster_arn_in(scope, cluster);
    let entries = access_entry_arn_in(scope, cluster, None);
    vec![
        Need::new(
            "eks:ListAccessEntries",
            &cluster_arn,
            format!("{step}: find the access entry for the collector's role"),
        ),
        Need::new(
            "eks:CreateAccessEntry",
            &cluster_arn,
            format!("{step}: map the collector's role to {COLLECTOR_USER}"),
        ),
        Need::new(
            "eks:TagResource",
            &entries,
            format!("{step}: tag the access entry managed-by=ampkit"),
        ),
        Need::new(
            "eks:DescribeAccessEntry",
            &entries,
            format!("{step}: read the access entry"),
        ),
    ]
}

/// What teardown needs for an `eks-pod-identity-association` or `eks-access-entry` entry.
pub fn needs_to_take_down(scope: &Scope, r: &Resource) -> Vec<Need> {
    if r.kind == crate::doc::ResourceKind::EksAccessEntry {
        let cluster = r
            .details_as::<AccessEntryDetails>()
            .map(|d| d.cluster_name)
            .unwrap_or_else(|_| "*".to_owned());
        let arn = access_entry_arn_in(scope, &cluster, Some(&r.id));
        let step = format!("teardown: delete eks-access-entry {}", r.id);
        return vec![
            Need::new("eks:DescribeAccessEntry", &arn, &step),
            Need::new("eks:DeleteAccessEntry", &arn, &step),
        ];
    }
    let cluster = r
        .details_as::<AssociationDetails>()
        .map(|d| d.cluster_name)
        .unwrap_or_else(|_| "*".to_owned());
    let arn = scope.arn("eks", &format!("podidentityassociation/{cluster}/{}", r.id));
    let step = format!("teardown: delete eks-pod-identity-association {}", r.id);
    vec![
        Need::new("eks:DescribePodIdentityAssociation", &arn, &step),
        Need::new("eks:DeletePodIdentityAssociation", &arn, &step),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_eks_call_has_its_action_declared() {
        let scope = Scope::new("eu-west-1", "1");
        let mut declared = needs_to_describe_cluster(&scope, "c", "t");
        declared.extend(needs_for_pod_identity(&scope, "c", "arn:r", "t"));
        declared.extend(needs_to_take_down(
            &scope,
            &Resource::new(
                crate::doc::ResourceKind::EksPodIdentityAssociation,
                "a-1",
                "t",
            ),
        ));
        declared.extend(needs_for_access_entry(&scope, "c", "t"));
        declared.extend(needs_to_take_down(
            &scope,
            &Resource::new(
                crate::doc::ResourceKind::EksAccessEntry,
                "arn:aws:iam::1:role/r",
                "t",
            ),
        ));
        crate::preflight::assert_calls_declared(include_str!("eks.rs"), CALLS, &declared);
    }

    #[test]
    fn a_scrapers_role_is_mapped_without_its_path_and_found_with_or_without_it() {
        // DescribeScraper's roleArn, as AMP's guide shows it, and the form it says EKS needs.
        let described = "arn:aws:iam::111122223333:role/aws-service-role/scraper.aps.amazonaws.com/AWSServiceRoleForAmazonPrometheusScraper_1234abcd-56ef-7";
        let principal = "arn:aws:iam::111122223333:role/AWSServiceRoleForAmazonPrometheusScraper_1234abcd-56ef-7";
        assert_eq!(principal_for_role(described), principal);
        assert_eq!(principal_for_role(principal), principal);
        assert_eq!(
            principal_for_role("arn:aws:iam::1:user/someone"),
            "arn:aws:iam::1:user/someone"
        );
        assert!(same_principal(described, principal));
        assert!(!same_principal(
            principal,
            "arn:aws:iam::444455556666:role/AWSServiceRoleForAmazonPrometheusScraper_1234abcd-56ef-7"
        ));
        assert!(!same_principal(
            principal,
            "arn:aws:iam::111122223333:role/AWSServiceRoleForAmazonPrometheusScraper_other"
        ));
        let scope = Scope::new("eu-west-1", "111122223333");
        assert_eq!(
            access_entry_arn_in(&scope, "c1", Some(described)),
            "arn:aws:eks:eu-west-1:111122223333:access-entry/c1/role/111122223333/AWSServiceRoleForAmazonPrometheusScraper_1234abcd-56ef-7/*"
        );
    }

    #[test]
    fn a_config_map_cluster_is_refused_in_one_line_with_the_fix() {
        let mut cluster = Cluster::default();
        assert!(
            cluster.check_takes_access_entries("c1").is_ok(),
            "unknown mode: ask EKS"
        );
        for mode in ["API", "API_AND_CONFIG_MAP"] {
            cluster.authentication_mode = Some(mode.into());
            assert!(cluster.check_takes_access_entries("c1").is_ok(), "{mode}");
        }
        cluster.authentication_mode = Some("CONFIG_MAP".into());
        let err = cluster.check_takes_access_entries("c1").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.message.contains("CONFIG_MAP"), "{err}");
        assert!(!err.to_string().contains('\n'), "{err}");
        assert!(
            err.hint
                .unwrap()
                .contains("authenticationMode=API_AND_CONFIG_MAP")
        );
    }

    #[test]
    fn access_entry_details_round_trip() {
        let written = serde_json::json!({"clusterName": "c1", "clusterArn": "arn:aws:eks:eu-west-1:123456789012:cluster/c1"});
        let details: AccessEntryDetails = serde_json::from_value(written.clone()).unwrap();
        assert_eq!(details.cluster_name, "c1");
        assert_eq!(serde_json::to_value(&details).unwrap(), written);
    }

    #[test]
    fn association_details_read_the_ledger_as_written_before() {
        let written = serde_json::json!({"clusterName": "c1", "clusterArn": "arn:aws:eks:eu-west-1:123456789012:cluster/c1"});
        let details: AssociationDetails = serde_json::from_value(written.clone()).unwrap();
        assert_eq!(details.cluster_name, "c1");
        assert_eq!(serde_json::to_value(&details).unwrap(), written);
        let bare: AssociationDetails =
            serde_json::from_value(serde_json::json!({"clusterName": "c2"})).unwrap();
        assert_eq!(bare.cluster_arn, None);
    }
}
