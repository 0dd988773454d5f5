//! irsa-role: the collector's AWS identity, scoped to one Kubernetes service account.
//!
//! Reads the cluster's OIDC issuer (EKS DescribeCluster), ensures the IAM OIDC provider, the
//! role (trust: that service account's `sub` and the `sts.amazonaws.com` `aud`) and an inline
//! policy allowing only `aps:RemoteWrite` (plus queries with `--query`) on the workspace ARN,
//! then the namespace and annotated service account. `--pod-identity` swaps the OIDC trust for
//! EKS Pod Identity. Re-running converges; the ledger lists only what a run created.

pub mod iam;
pub mod kube;

use std::path::PathBuf;

use aws_sdk_eks::Client as EksClient;
use serde::{Deserialize, Serialize};

use crate::aws::{self, AwsArgs, is_not_found, sdk_error};
use crate::doc::{Resource, StateDoc};
use crate::error::{Error, Result};
use iam::Trust;

const TOOL: &str = "irsa-role";

#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub cluster: String,
    pub namespace: String,
    pub service_account: String,
    pub role_name: Option<String>,
    pub workspace_arn: Option<String>,
    pub query: bool,
    pub no_kube: bool,
    pub manifest_out: Option<PathBuf>,
    pub pod_identity: bool,
    pub thumbprints: Vec<String>,
}

/// The `irsa` section.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IrsaSection {
    pub mode: &'static str,
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

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkspaceRef {
    arn: Option<String>,
}

fn validate_k8s_name(flag: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(
            Error::usage(format!("invalid {flag} `{value}`: not a Kubernetes name"))
                .with_hint("use lowercase letters, digits and '-' (at most 63, not at either end)"),
        )
    }
}

/// The default role name, `ampkit-CLUSTER-NAMESPACE-SA`; past IAM's 64 characters it is cut
/// and suffixed with a hash of the whole, so it stays the same on every run and unique.
fn default_role_name(opts: &CreateOptions) -> String {
    let full = format!(
        "ampkit-{}-{}-{}",
        opts.cluster, opts.namespace, opts.service_account
    );
    if full.len() <= 64 {
        return full;
    }
    // FNV-1a: stable across runs and platforms, unlike std's hasher.
    let hash = full.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let cut: String = full.chars().take(55).collect();
    format!("{}-{hash:08x}", cut.trim_end_matches('-'))
}

fn role_name(opts: &CreateOptions) -> Result<String> {
    let name = opts
        .role_name
        .clone()
        .unwrap_or_else(|| default_role_name(opts));
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if ok {
        Ok(name)
    } else {
        Err(Error::usage(format!(
            "invalid IAM role name `{name}` (at most 64 of A-Z a-z 0-9 +=,.@_-)"
        ))
        .with_hint("pass --role-name NAME"))
    }
}

fn workspace_arn(opts: &CreateOptions, doc: &StateDoc) -> Result<String> {
    let from_doc = doc
        .section_as::<WorkspaceRef>("workspace")?
        .and_then(|w| w.arn);
    let arn = opts.workspace_arn.clone().or(from_doc).ok_or_else(|| {
        Error::usage("no workspace ARN: neither --workspace-arn nor the document's `workspace.arn` gives one")
            .with_hint("pipe in the output of `amp-workspace ensure --alias NAME`, or pass --workspace-arn ARN")
    })?;
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6
        || parts[0] != "arn"
        || parts[2] != "aps"
        || !parts[5].starts_with("workspace/")
        || parts[5].contains('*')
    {
        return Err(Error::usage(format!("invalid workspace ARN `{arn}`"))
            .with_hint("expected arn:aws:aps:REGION:ACCOUNT:workspace/ws-ID (no wildcards)"));
    }
    Ok(arn)
}

struct Cluster {
    arn: Option<String>,
    issuer: Option<String>,
}

async fn describe_cluster(eks: &EksClient, name: &str, region: &str) -> Result<Cluster> {
    match eks.describe_cluster().name(name).send().await {
        Ok(out) => {
            let cluster = out
                .cluster()
                .ok_or_else(|| Error::remote(format!("EKS returned no cluster for {name}")))?;
            Ok(Cluster {
                arn: cluster.arn().map(str::to_owned),
                issuer: cluster
                    .identity()
                    .and_then(|i| i.oidc())
                    .and_then(|o| o.issuer())
                    .map(str::to_owned),
            })
        }
        Err(err) if is_not_found(&err) => Err(Error::not_found(format!(
            "EKS cluster `{name}` not found in region {region}"
        ))
        .with_hint("check --cluster and --region (`aws eks list-clusters`)")),
        Err(err) => Err(sdk_error(err, format!("describing EKS cluster {name}"))),
    }
}

/// Find the association of this service account, create or repoint it. Returns its id and
/// whether it was created.
async fn ensure_pod_identity_association(
    eks: &EksClient,
    opts: &CreateOptions,
    role_arn: &str,
) -> Result<(String, bool)> {
    let listed = eks
        .list_pod_identity_associations()
        .cluster_name(&opts.cluster)
        .namespace(&opts.namespace)
        .service_account(&opts.service_account)
        .send()
        .await
        .map_err(|e| {
            sdk_error(
                e,
                format!("listing pod identity associations of {}", opts.cluster),
            )
        })?;
    if let Some(id) = listed
        .associations()
        .iter()
        .find_map(|a| a.association_id())
    {
        let current = eks
            .describe_pod_identity_association()
            .cluster_name(&opts.cluster)
            .association_id(id)
            .send()
            .await
            .map_err(|e| sdk_error(e, format!("describing pod identity association {id}")))?;
        if current.association().and_then(|a| a.role_arn()) != Some(role_arn) {
            eks.update_pod_identity_association()
                .cluster_name(&opts.cluster)
                .association_id(id)
                .role_arn(role_arn)
                .send()
                .await
                .map_err(|e| sdk_error(e, format!("updating pod identity association {id}")))?;
        }
        return Ok((id.to_owned(), false));
    }
    let created = eks
        .create_pod_identity_association()
        .cluster_name(&opts.cluster)
        .namespace(&opts.namespace)
        .service_account(&opts.service_account)
        .role_arn(role_arn)
        .tags("managed-by", "ampkit")
        .send()
        .await
        .map_err(|e| {
            sdk_error(
                e,
                format!("creating the pod identity association in {}", opts.cluster),
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

/// `irsa-role create`.
pub async fn create(opts: &CreateOptions, aws_args: &AwsArgs, doc: &mut StateDoc) -> Result<()> {
    validate_k8s_name("--namespace", &opts.namespace)?;
    validate_k8s_name("--service-account", &opts.service_account)?;
    if opts.cluster.is_empty() {
        return Err(Error::usage("--cluster is empty").with_hint("pass the EKS cluster name"));
    }
    for thumbprint in &opts.thumbprints {
        if thumbprint.len() != 40 || !thumbprint.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::usage(format!("invalid --thumbprint `{thumbprint}`"))
                .with_hint("a thumbprint is the 40 hex digits of a certificate's SHA-1"));
        }
    }
    let role = role_name(opts)?;
    let workspace_arn = workspace_arn(opts, doc)?;

    // Kubernetes configuration is read before anything is created: a missing kubeconfig
    // should stop the run while there is nothing to clean up.
    let kube_client = if opts.manifest_out.is_none() && !opts.no_kube {
        Some(kube::client().await?)
    } else {
        None
    };

    let config = aws::load(aws_args).await?;
    let region = aws::region_of(&config);
    let eks = EksClient::new(&config);
    let iam_client = aws_sdk_iam::Client::new(&config);

    let cluster = describe_cluster(&eks, &opts.cluster, &region).await?;
    let (trust, provider_arn) = if opts.pod_identity {
        (Trust::PodIdentity, None)
    } else {
        let issuer = cluster.issuer.ok_or_else(|| {
            Error::input(format!("EKS cluster `{}` has no OIDC issuer", opts.cluster))
                .with_hint("use --pod-identity, or a cluster with an OIDC issuer")
        })?;
        let (provider_arn, created) =
            iam::ensure_oidc_provider(&iam_client, &issuer, &opts.thumbprints).await?;
        if created {
            doc.push_resource(
                Resource::new("iam-oidc-provider", &provider_arn, TOOL).arn(&provider_arn),
            );
        }
        let trust = Trust::ServiceAccount {
            provider_arn: provider_arn.clone(),
            issuer,
            namespace: opts.namespace.clone(),
            service_account: opts.service_account.clone(),
        };
        (trust, Some(provider_arn))
    };

    let description = format!(
        "ampkit: {} for system:serviceaccount:{}:{} in EKS cluster {}",
        if opts.query {
            "remote write and query"
        } else {
            "remote write"
        },
        opts.namespace,
        opts.service_account,
        opts.cluster
    );
    let outcome = iam::ensure_role(&iam_client, &role, &trust, &description).await?;
    if outcome.created {
        doc.push_resource(
            Resource::new("iam-role", &role, TOOL)
                .arn(&outcome.arn)
                .detail("inlinePolicies", serde_json::json!([iam::POLICY_NAME])),
        );
    }
    let policy = iam::access_policy(&workspace_arn, opts.query);
    let policy_added = iam::ensure_inline_policy(&iam_client, &role, &policy).await?;
    if policy_added && !outcome.created {
        // The role was someone else's: teardown removes our policy and leaves the role.
        doc.push_resource(
            Resource::new(
                "iam-role-policy",
                format!("{role}/{}", iam::POLICY_NAME),
                TOOL,
            )
            .detail("roleName", role.as_str())
            .detail("policyName", iam::POLICY_NAME),
        );
    }

    let association_id = if opts.pod_identity {
        let (id, created) = ensure_pod_identity_association(&eks, opts, &outcome.arn).await?;
        if created {
            let mut resource = Resource::new("eks-pod-identity-association", &id, TOOL)
                .region(&region)
                .detail("clusterName", opts.cluster.as_str());
            if let Some(arn) = &cluster.arn {
                resource = resource.detail("clusterArn", arn.as_str());
            }
            doc.push_resource(resource);
        }
        Some(id)
    } else {
        None
    };

    // Pod Identity finds the role through the association, so the account needs no annotation.
    let annotation = (!opts.pod_identity).then_some(outcome.arn.as_str());
    let manifest = if let Some(path) = &opts.manifest_out {
        let text = kube::manifest(&opts.namespace, &opts.service_account, annotation)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::input(format!("could not create {}: {e}", dir.display())))?;
        }
        std::fs::write(path, text).map_err(|e| {
            Error::input(format!(
                "could not write --manifest-out {}: {e}",
                path.display()
            ))
            .with_hint("pass a path you can write to")
        })?;
        Some(path.display().to_string())
    } else {
        if let Some(client) = kube_client {
            kube::ensure(
                client,
                &opts.namespace,
                &opts.service_account,
                annotation,
                doc,
            )
            .await?;
        }
        None
    };

    doc.set_section(
        "irsa",
        IrsaSection {
            mode: if opts.pod_identity {
                "pod-identity"
            } else {
                "irsa"
            },
            cluster: opts.cluster.clone(),
            role_name: role,
            role_arn: outcome.arn,
            inline_policy: iam::POLICY_NAME.to_owned(),
            oidc_provider_arn: provider_arn,
            pod_identity_association_id: association_id,
            namespace: opts.namespace.clone(),
            service_account: opts.service_account.clone(),
            workspace_arn,
            manifest,
        },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn opts(cluster: &str) -> CreateOptions {
        CreateOptions {
            cluster: cluster.into(),
            namespace: "grafana-agent".into(),
            service_account: "grafana-agent".into(),
            role_name: None,
            workspace_arn: None,
            query: false,
            no_kube: true,
            manifest_out: None,
            pod_identity: false,
            thumbprints: Vec::new(),
        }
    }

    #[test]
    fn default_role_names_fit_iam_and_are_stable() {
        assert_eq!(
            role_name(&opts("demo")).unwrap(),
            "ampkit-demo-grafana-agent-grafana-agent"
        );
        let long = opts("a-very-long-cluster-name-that-goes-on-and-on-for-a-while");
        let name = role_name(&long).unwrap();
        assert!(name.len() <= 64, "{name}");
        assert_eq!(name, role_name(&long).unwrap());
        assert_ne!(
            name,
            role_name(&opts(
                "a-very-long-cluster-name-that-goes-on-and-on-for-a-whilf"
            ))
            .unwrap()
        );
    }
}
