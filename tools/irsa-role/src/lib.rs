//! irsa-role: the collector's AWS identity, scoped to one Kubernetes service account.
//!
//! Reads the cluster's OIDC issuer (EKS DescribeCluster), ensures the IAM OIDC provider, the
//! role (trust: that service account's `sub` and the `sts.amazonaws.com` `aud`) and an inline
//! policy allowing only `aps:RemoteWrite` (plus queries with `--query`) on the workspace ARN,
//! then the namespace and annotated service account. `--pod-identity` swaps the OIDC trust for
//! EKS Pod Identity. Re-running converges; the ledger lists only what a run created.

use std::path::PathBuf;

use ampkit::amp::WorkspaceSection;
use ampkit::aws::{self, AwsArgs};
use ampkit::cli::{Runtime, Tool};
use ampkit::doc::{Resource, ResourceKind, StateDoc};
use ampkit::eks::{AssociationDetails, Eks};
use ampkit::error::{Error, Result};
use ampkit::iam::{self, Iam, IdentityMode, IrsaSection, RoleDetails, RolePolicyDetails, Trust};
use ampkit::kube::{NameRule, service_account};

/// The program's name, as in the ledger and in error lines.
pub const NAME: &str = "irsa-role";

/// What the frame needs to know of this tool besides its flags.
pub const TOOL: Tool = Tool {
    name: NAME,
    runtime: Runtime::CurrentThread,
    examples: &[
        "amp-workspace ensure --alias AMP-APPMESH | irsa-role create --cluster AMP-EKS-CLUSTER",
        "irsa-role create --cluster demo --workspace-arn arn:aws:aps:eu-west-1:123456789012:workspace/ws-1 --no-kube",
        "irsa-role create --cluster demo --pod-identity --manifest-out out/sa.yaml < state.json",
    ],
};

/// IAM role for the collector, trusted only by one Kubernetes service account (IRSA) or by
/// EKS Pod Identity, allowed only to remote-write (and with --query, query) one workspace.
#[derive(clap::Parser, Debug)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Create or update the OIDC provider, role, policy and service account (converges)
    Create(CreateOptions),
}

#[derive(clap::Args, Debug, Clone)]
pub struct CreateOptions {
    /// EKS cluster name
    #[arg(long, value_name = "NAME")]
    pub cluster: String,
    /// Namespace of the collector's service account
    #[arg(long, value_name = "NAME", default_value = "grafana-agent")]
    pub namespace: String,
    /// The collector's service account
    #[arg(long, value_name = "NAME", default_value = "grafana-agent")]
    pub service_account: String,
    /// IAM role name [default: ampkit-CLUSTER-NAMESPACE-SERVICEACCOUNT]
    #[arg(long, value_name = "NAME")]
    pub role_name: Option<String>,
    /// Workspace ARN the policy is scoped to [default: the document's workspace.arn]
    #[arg(long, value_name = "ARN")]
    pub workspace_arn: Option<String>,
    /// Also allow queries (aps:QueryMetrics, GetSeries, GetLabels, GetMetricMetadata)
    #[arg(long)]
    pub query: bool,
    /// Do not touch Kubernetes (no namespace, no service account)
    #[arg(long)]
    pub no_kube: bool,
    /// Write the namespace and service account manifest to FILE instead of applying it
    #[arg(long, value_name = "FILE", conflicts_with = "no_kube")]
    pub manifest_out: Option<PathBuf>,
    /// Use EKS Pod Identity (trust pods.eks.amazonaws.com + an association) instead of IRSA
    #[arg(long)]
    pub pod_identity: bool,
    /// SHA-1 thumbprint of the issuer's CA for a new OIDC provider [default: IAM derives it]
    #[arg(long = "thumbprint", value_name = "HEX")]
    pub thumbprints: Vec<String>,
}

/// What `create` calls, for `--print-policy` and `--check` (the actions are declared by lib's
/// `eks` and `iam`, next to the calls). The cluster's issuer is known only from EKS, so the
/// provider is every EKS issuer's of the region.
impl ampkit::preflight::Preflight for Cli {
    fn aws_args(&self) -> &AwsArgs {
        &self.aws
    }

    fn needs(
        &self,
        _doc: &StateDoc,
        scope: &ampkit::preflight::Scope,
    ) -> Result<Vec<ampkit::preflight::Need>> {
        let Command::Create(opts) = &self.command;
        let step = "irsa-role create";
        let role = role_name(opts)?;
        let mut needs = ampkit::eks::needs_to_describe_cluster(scope, &opts.cluster, step);
        if opts.pod_identity {
            needs.extend(iam::needs_for_role(scope, &role, step));
            needs.extend(ampkit::eks::needs_for_pod_identity(
                scope,
                &opts.cluster,
                &iam::role_arn_in(scope, Some(&role)),
                step,
            ));
        } else {
            let issuers = format!("https://oidc.eks.{}.amazonaws.com/id/*", scope.region);
            needs.extend(iam::needs_for_oidc_provider(scope, Some(&issuers), step));
            needs.extend(iam::needs_for_role(scope, &role, step));
        }
        Ok(needs)
    }
}

/// Run one `irsa-role` subcommand against the document.
pub async fn run(cli: Cli, doc: &mut StateDoc) -> Result<()> {
    match cli.command {
        Command::Create(opts) => create(&opts, &cli.aws, doc).await,
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
    let from_doc = WorkspaceSection::from_doc(doc)?
        .map(|w| w.arn)
        .filter(|arn| !arn.is_empty());
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

/// `irsa-role create`: everything is checked before anything is made, then the trust, the
/// role and its policy, the association or the service account, each ledgered as it is made.
pub async fn create(opts: &CreateOptions, aws_args: &AwsArgs, doc: &mut StateDoc) -> Result<()> {
    check(opts)?;
    let role = role_name(opts)?;
    let workspace_arn = workspace_arn(opts, doc)?;

    // Kubernetes configuration is read before anything is created: a missing kubeconfig
    // should stop the run while there is nothing to clean up.
    let kube_client = if opts.manifest_out.is_none() && !opts.no_kube {
        Some(ampkit::kube::client(service_account::INSTEAD).await?)
    } else {
        None
    };

    let config = aws::load(aws_args).await?;
    check_recorded_role(doc, &role, &config).await?;
    let region = aws::region_of(&config);
    let eks = Eks::new(&config);
    let iam = Iam::new(&config);

    let cluster = eks.cluster(&opts.cluster, &region).await?;
    let (trust, provider_arn) = if opts.pod_identity {
        (Trust::PodIdentity, None)
    } else {
        let (trust, provider_arn) = oidc_trust(opts, &iam, cluster.issuer.clone(), doc).await?;
        (trust, Some(provider_arn))
    };
    let role_arn = role_and_policy(opts, &iam, &role, &trust, &workspace_arn, doc).await?;

    let association_id = if opts.pod_identity {
        let (id, created) = eks
            .ensure_pod_identity_association(
                &opts.cluster,
                &opts.namespace,
                &opts.service_account,
                &role_arn,
            )
            .await?;
        if created {
            let details = AssociationDetails {
                cluster_name: opts.cluster.clone(),
                cluster_arn: cluster.arn.clone(),
            };
            doc.push_resource(
                Resource::new(ResourceKind::EksPodIdentityAssociation, &id, NAME)
                    .region(&region)
                    .with_details(&details),
            );
        }
        Some(id)
    } else {
        None
    };

    // Pod Identity finds the role through the association, so the account needs no annotation.
    let annotation = (!opts.pod_identity).then_some(role_arn.as_str());
    let manifest = if let Some(path) = &opts.manifest_out {
        write_manifest(opts, path, annotation)?;
        Some(path.display().to_string())
    } else {
        if let Some(client) = kube_client {
            service_account::ensure(
                NAME,
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
        iam::SECTION,
        IrsaSection {
            mode: if opts.pod_identity {
                IdentityMode::PodIdentity
            } else {
                IdentityMode::Irsa
            },
            cluster: opts.cluster.clone(),
            role_name: role,
            role_arn,
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

/// The role a re-run converges on is the one the document records: of another account than
/// the credentials', this run would make a second role there rather than find it. IAM is
/// global, so only the account matters; one STS call, made only when the document records
/// this run's role with an ARN.
async fn check_recorded_role(doc: &StateDoc, role: &str, config: &aws::SdkConfig) -> Result<()> {
    let (Some(name), Some(arn)) = (
        doc.str_field(iam::SECTION, "roleName"),
        doc.str_field(iam::SECTION, "roleArn"),
    ) else {
        return Ok(());
    };
    if name != role {
        return Ok(());
    }
    aws::Placed {
        what: format!("the document's role {name}"),
        noun: "role",
        flag: "--role-name",
    }
    .check_arn(arn, config)
    .await
}

/// The flags' values that no service needs to be asked about.
fn check(opts: &CreateOptions) -> Result<()> {
    NameRule::Dns1123Label.validate("--namespace", &opts.namespace)?;
    NameRule::Dns1123Subdomain.validate("--service-account", &opts.service_account)?;
    if opts.cluster.is_empty() {
        return Err(Error::usage("--cluster is empty").with_hint("pass the EKS cluster name"));
    }
    for thumbprint in &opts.thumbprints {
        if thumbprint.len() != 40 || !thumbprint.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::usage(format!("invalid --thumbprint `{thumbprint}`"))
                .with_hint("a thumbprint is the 40 hex digits of a certificate's SHA-1"));
        }
    }
    Ok(())
}

/// IRSA's trust: the cluster's OIDC provider (ensured, ledgered when made), and the one
/// service account's `sub` on it. Returns the trust and the provider's ARN.
async fn oidc_trust(
    opts: &CreateOptions,
    iam: &Iam,
    issuer: Option<String>,
    doc: &mut StateDoc,
) -> Result<(Trust, String)> {
    let issuer = issuer.ok_or_else(|| {
        Error::input(format!("EKS cluster `{}` has no OIDC issuer", opts.cluster))
            .with_hint("use --pod-identity, or a cluster with an OIDC issuer")
    })?;
    let (provider_arn, created) = iam.ensure_oidc_provider(&issuer, &opts.thumbprints).await?;
    if created {
        doc.push_resource(
            Resource::new(ResourceKind::IamOidcProvider, &provider_arn, NAME).arn(&provider_arn),
        );
    }
    let trust = Trust::ServiceAccount {
        provider_arn: provider_arn.clone(),
        issuer,
        namespace: opts.namespace.clone(),
        service_account: opts.service_account.clone(),
    };
    Ok((trust, provider_arn))
}

/// The role with `trust` and the workspace policy on it. A role this run made is ledgered
/// with our policy as its own; on someone else's role only our policy is ledgered, so that
/// teardown removes it and leaves the role. Returns the role's ARN.
async fn role_and_policy(
    opts: &CreateOptions,
    iam: &Iam,
    role: &str,
    trust: &Trust,
    workspace_arn: &str,
    doc: &mut StateDoc,
) -> Result<String> {
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
    let outcome = iam.ensure_role(role, trust, &description).await?;
    if outcome.created {
        let details = RoleDetails {
            inline_policies: vec![iam::POLICY_NAME.to_owned()],
        };
        doc.push_resource(
            Resource::new(ResourceKind::IamRole, role, NAME)
                .arn(&outcome.arn)
                .with_details(&details),
        );
    }
    let policy = iam::access_policy(workspace_arn, opts.query);
    let policy_added = iam.ensure_inline_policy(role, &policy).await?;
    if policy_added && !outcome.created {
        let details = RolePolicyDetails {
            role_name: role.to_owned(),
            policy_name: iam::POLICY_NAME.to_owned(),
        };
        doc.push_resource(
            Resource::new(ResourceKind::IamRolePolicy, details.id(), NAME).with_details(&details),
        );
    }
    Ok(outcome.arn)
}

/// `--manifest-out FILE`: the namespace and service account for `kubectl apply -f`.
fn write_manifest(
    opts: &CreateOptions,
    path: &std::path::Path,
    annotation: Option<&str>,
) -> Result<()> {
    let text = service_account::manifest(&opts.namespace, &opts.service_account, annotation)?;
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
    })
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
    fn create_declares_the_cluster_the_provider_the_role_and_its_policy() {
        let irsa = actions_of(
            &["irsa-role", "create", "--cluster", "c", "--role-name", "r"],
            "{}",
        );
        assert_has(
            &irsa,
            &[
                "eks:DescribeCluster arn:aws:eks:eu-west-1:123456789012:cluster/c",
                "iam:ListOpenIDConnectProviders *",
                "iam:CreateOpenIDConnectProvider arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/*",
                "iam:CreateRole arn:aws:iam::123456789012:role/r",
                "iam:PutRolePolicy arn:aws:iam::123456789012:role/r",
            ],
        );
        let pod = actions_of(
            &[
                "irsa-role",
                "create",
                "--cluster",
                "c",
                "--role-name",
                "r",
                "--pod-identity",
            ],
            "{}",
        );
        assert_has(
            &pod,
            &[
                "eks:CreatePodIdentityAssociation",
                "iam:PassRole arn:aws:iam::123456789012:role/r",
            ],
        );
        assert!(!pod.iter().any(|a| a.contains("OpenIDConnect")), "{pod:#?}");
    }

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
