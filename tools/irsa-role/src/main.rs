//! irsa-role: the collector's IAM role and service account (see ampkit::irsa).

use std::path::PathBuf;
use std::process::ExitCode;

use ampkit::aws::AwsArgs;
use ampkit::cli::{LogArgs, Runtime, ToolArgs};
use ampkit::irsa::{self, CreateOptions};
use clap::{Parser, Subcommand};

/// IAM role for the collector, trusted only by one Kubernetes service account (IRSA) or by
/// EKS Pod Identity, allowed only to remote-write (and with --query, query) one workspace.
#[derive(Parser, Debug)]
#[command(name = "irsa-role", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    aws: AwsArgs,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create or update the OIDC provider, role, policy and service account (converges)
    Create(CreateArgs),
}

#[derive(clap::Args, Debug)]
struct CreateArgs {
    /// EKS cluster name
    #[arg(long, value_name = "NAME")]
    cluster: String,
    /// Namespace of the collector's service account
    #[arg(long, value_name = "NAME", default_value = "grafana-agent")]
    namespace: String,
    /// The collector's service account
    #[arg(long, value_name = "NAME", default_value = "grafana-agent")]
    service_account: String,
    /// IAM role name [default: ampkit-CLUSTER-NAMESPACE-SERVICEACCOUNT]
    #[arg(long, value_name = "NAME")]
    role_name: Option<String>,
    /// Workspace ARN the policy is scoped to [default: the document's workspace.arn]
    #[arg(long, value_name = "ARN")]
    workspace_arn: Option<String>,
    /// Also allow queries (aps:QueryMetrics, GetSeries, GetLabels, GetMetricMetadata)
    #[arg(long)]
    query: bool,
    /// Do not touch Kubernetes (no namespace, no service account)
    #[arg(long)]
    no_kube: bool,
    /// Write the namespace and service account manifest to FILE instead of applying it
    #[arg(long, value_name = "FILE", conflicts_with = "no_kube")]
    manifest_out: Option<PathBuf>,
    /// Use EKS Pod Identity (trust pods.eks.amazonaws.com + an association) instead of IRSA
    #[arg(long)]
    pod_identity: bool,
    /// SHA-1 thumbprint of the issuer's CA for a new OIDC provider [default: IAM derives it]
    #[arg(long = "thumbprint", value_name = "HEX")]
    thumbprints: Vec<String>,
}

impl ToolArgs for Cli {
    fn log_args(&self) -> &LogArgs {
        &self.log
    }
}

impl From<CreateArgs> for CreateOptions {
    fn from(a: CreateArgs) -> Self {
        CreateOptions {
            cluster: a.cluster,
            namespace: a.namespace,
            service_account: a.service_account,
            role_name: a.role_name,
            workspace_arn: a.workspace_arn,
            query: a.query,
            no_kube: a.no_kube,
            manifest_out: a.manifest_out,
            pod_identity: a.pod_identity,
            thumbprints: a.thumbprints,
        }
    }
}

fn main() -> ExitCode {
    ampkit::cli::run::<Cli, _>(
        "irsa-role",
        Runtime::CurrentThread,
        async |cli, doc| match cli.command {
            Command::Create(args) => irsa::create(&args.into(), &cli.aws, doc).await,
        },
    )
}
