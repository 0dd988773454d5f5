//! EKS: the cluster the collector runs in (its ARN and OIDC issuer, which irsa-role trusts) and
//! the one EKS object ampkit makes, a pod identity association (`irsa-role --pod-identity`).
//! irsa-role ensures the association and teardown deletes it, both through [`Eks`], so what
//! "ours" means (the managed-by tag) and what "gone" means are written once.

use aws_sdk_eks::operation::describe_cluster::DescribeClusterError;
use aws_sdk_eks::operation::describe_pod_identity_association::DescribePodIdentityAssociationError;
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
}

/// teardown's `eks-pod-identity-association` entry: the recorded association of the recorded
/// cluster, if it still carries our tag.
pub async fn take_down_association(run: &mut impl Run, r: &Resource) -> Result<Verdict> {
    let details: AssociationDetails = crate::verdict!(ledger::details(r));
    let cluster = crate::verdict!(ledger::required(&details.cluster_name, "clusterName"));
    let cluster_arn = details.cluster_arn.as_deref();
    let region = r
        .region
        .as_deref()
        .or_else(|| cluster_arn.and_then(arn_region));
    let account = cluster_arn.and_then(arn_account);
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

/// What teardown needs for an `eks-pod-identity-association` entry.
pub fn needs_to_take_down(scope: &Scope, r: &Resource) -> Vec<Need> {
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
        crate::preflight::assert_calls_declared(include_str!("eks.rs"), CALLS, &declared);
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
