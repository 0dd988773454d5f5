//! `amp-workspace scraper`: AMP's managed collector for an EKS cluster, writing to the
//! document's workspace. It lives here because it is AMP's control plane, made, waited for
//! and deleted like a workspace, and the workspace it writes to is this tool's section.
//!
//! Everything is read and checked before anything is made: the workspace (its ARN), the
//! cluster (its ARN, subnets and security groups, from DescribeCluster unless given; that it
//! can take access entries), and the scrape configuration (render-agent-config's
//! `managed-scraper` file). A scraper of ours with the same alias, cluster and workspace is
//! found rather than made again; only one this run made goes into the ledger.
//!
//! Once the scraper is ACTIVE, its role (DescribeScraper's `roleArn`) is mapped to the
//! Kubernetes user `aps-collector-user` with an EKS access entry, the user the RBAC that
//! render-agent-config renders binds: AWS's AMP guide, "Configuring your Amazon EKS cluster"
//! (https://docs.aws.amazon.com/prometheus/latest/userguide/AMP-collector-how-to.html), and the
//! EKS User Guide, "Create access entries"
//! (https://docs.aws.amazon.com/eks/latest/userguide/creating-access-entries.html). An entry
//! that exists for that role already (AMP makes one itself on a cluster whose authentication
//! mode includes the API) is found and left alone; one this run made is ledgered, and
//! teardown deletes it. `--no-access-entry` leaves the mapping to the user (aws-auth).

use std::path::PathBuf;

use ampkit::amp::scraper::{self, ScraperDetails, ScraperSpec, Scrapers};
use ampkit::amp::{self, WorkspaceSection};
use ampkit::doc::{Resource, ResourceKind, StateDoc};
use ampkit::eks::{self, AccessEntryDetails, COLLECTOR_USER, Eks};
use ampkit::error::{Error, Result};
use serde_json::json;

use crate::{NAME, Run};

/// Create (or find) the managed collector; wait until ACTIVE
#[derive(clap::Args, Debug, Clone)]
pub struct ScraperArgs {
    /// EKS cluster to scrape
    #[arg(long, value_name = "NAME")]
    pub cluster: String,
    /// Scraper alias [default: ampkit-<cluster>]
    #[arg(long)]
    pub alias: Option<String>,
    /// The scrape configuration: YAML, or the JSON `scrapeConfiguration` shape
    /// [default: the document's agent file rendered with --flavor managed-scraper]
    #[arg(long, value_name = "FILE")]
    pub scrape_configuration: Option<PathBuf>,
    /// Subnet for the collector's network interfaces (repeatable) [default: the cluster's]
    #[arg(long = "subnet-id", value_name = "ID")]
    pub subnet_ids: Vec<String>,
    /// Security group (repeatable) [default: the cluster's]
    #[arg(long = "security-group-id", value_name = "ID")]
    pub security_group_ids: Vec<String>,
    /// Destination workspace [default: workspace.arn of the document]
    #[arg(long, value_name = "ARN")]
    pub workspace_arn: Option<String>,
    /// Return once AMP took the request instead of waiting until ACTIVE
    #[arg(long)]
    pub no_wait: bool,
    /// Do not map the scraper's role to the Kubernetes user aps-collector-user with an EKS
    /// access entry (map it yourself, e.g. in the aws-auth ConfigMap)
    #[arg(long)]
    pub no_access_entry: bool,
}

/// `amp-workspace scraper`.
pub async fn ensure(
    run: &Run,
    args: &ScraperArgs,
    config: &ampkit::aws::SdkConfig,
    doc: &mut StateDoc,
) -> Result<()> {
    if args.cluster.is_empty() {
        return Err(Error::usage("--cluster is empty").with_hint("pass the EKS cluster name"));
    }
    let configuration = configuration(args, doc)?;
    let workspace_arn = workspace_arn(args, doc)?;
    let region = ampkit::aws::region_of(config);
    let eks = Eks::new(config);
    let cluster = eks.cluster(&args.cluster, &region).await?;
    let cluster_arn = cluster.arn.clone().ok_or_else(|| {
        Error::remote(format!(
            "EKS describes cluster {} without an ARN",
            args.cluster
        ))
    })?;
    if !args.no_access_entry {
        // Whether the access entry can be made is asked before the scraper is: a scraper that
        // cannot read the cluster is no use, and nothing should be left to tear down.
        cluster
            .check_takes_access_entries(&args.cluster)
            .map_err(|e| {
                e.with_hint(format!(
                    "switch it with `aws eks update-cluster-config --name {} --access-config \
                     authenticationMode=API_AND_CONFIG_MAP`, or pass --no-access-entry and map \
                     the scraper's role to {COLLECTOR_USER} in the aws-auth ConfigMap",
                    args.cluster
                ))
            })?;
        eks.access_entries(&args.cluster).await.map_err(|e| {
            if e.kind == ampkit::error::ErrorKind::Usage {
                e.with_hint(format!(
                    "pass --no-access-entry and map the scraper's role to {COLLECTOR_USER} \
                     another way (the aws-auth ConfigMap); nothing was made"
                ))
            } else {
                e
            }
        })?;
    }
    let subnet_ids = given_or(&args.subnet_ids, cluster.subnet_ids);
    if subnet_ids.is_empty() {
        return Err(Error::input(format!(
            "EKS cluster {} has no subnets to put the collector in",
            args.cluster
        ))
        .with_hint("pass --subnet-id (two, in two availability zones)"));
    }
    let alias = args
        .alias
        .clone()
        .unwrap_or_else(|| format!("ampkit-{}", args.cluster));
    let scrapers = Scrapers::new(config);
    let found = scrapers
        .find_existing(Some(&alias), &cluster_arn, &workspace_arn)
        .await?;
    let id = match found {
        Some(existing) => {
            tracing::info!("found scraper {} ({alias})", existing.scraper_id());
            existing.scraper_id().to_owned()
        }
        None => {
            let spec = ScraperSpec {
                alias: Some(alias.clone()),
                cluster_arn: cluster_arn.clone(),
                subnet_ids,
                security_group_ids: given_or(&args.security_group_ids, cluster.security_group_ids),
                workspace_arn: workspace_arn.clone(),
                configuration,
            };
            let (id, arn) = scrapers.create(&spec).await?;
            // Into the ledger before the wait, which may still fail.
            doc.push_resource(
                Resource::new(ResourceKind::AmpScraper, &id, NAME)
                    .arn(arn)
                    .region(&scrapers.region)
                    .with_details(&ScraperDetails {
                        alias: Some(alias),
                        workspace_arn,
                    }),
            );
            id
        }
    };
    let described = if args.no_wait {
        scrapers.find(&id).await?.ok_or_else(|| {
            Error::not_found(format!("scraper {id} disappeared right after it was made"))
        })?
    } else {
        scrapers
            .wait_until_active(&id, run.timeout, &run.progress)
            .await?
    };
    let section = scrapers.section(&described);
    // The section first: should the access entry fail, the document still says which
    // scraper was made.
    doc.set_section(scraper::SECTION, &section)?;
    if args.no_access_entry {
        return Ok(());
    }
    if section.role_arn.is_empty() {
        return Err(Error::remote(format!(
            "AMP describes scraper {id} without its roleArn, so its access entry cannot be made yet"
        ))
        .with_hint("run `amp-workspace scraper` again once the scraper is ACTIVE"));
    }
    let principal = eks::principal_for_role(&section.role_arn);
    let (entry, created) = eks
        .ensure_access_entry(&args.cluster, &principal, COLLECTOR_USER)
        .await?;
    if created {
        let mut resource = Resource::new(ResourceKind::EksAccessEntry, &principal, NAME)
            .region(&region)
            .with_details(&AccessEntryDetails {
                cluster_name: args.cluster.clone(),
                cluster_arn: Some(cluster_arn),
            });
        if let Some(arn) = &entry.arn {
            resource = resource.arn(arn);
        }
        doc.push_resource(resource);
        tracing::info!(
            "mapped {principal} to Kubernetes user {COLLECTOR_USER} in cluster {}",
            args.cluster
        );
    } else if entry.username.as_deref() == Some(COLLECTOR_USER) {
        tracing::info!("found the access entry for {}", entry.principal_arn);
    } else {
        // AMP's own entry carries an access policy instead; someone else's may not.
        tracing::warn!(
            "found the access entry for {} mapping it to {}, not {COLLECTOR_USER}: left as \
             it is, so the rendered ClusterRoleBinding does not apply to it",
            entry.principal_arn,
            entry.username.as_deref().unwrap_or("EKS's default user")
        );
    }
    let mut value = serde_json::to_value(&section)
        .map_err(|e| Error::internal(format!("the scraper section: {e}")))?;
    value["accessEntry"] = json!({
        "principalArn": entry.principal_arn,
        "username": entry.username,
        "arn": entry.arn,
    });
    doc.set_section(scraper::SECTION, value)
}

fn given_or(given: &[String], discovered: Vec<String>) -> Vec<String> {
    if given.is_empty() {
        discovered
    } else {
        given.to_vec()
    }
}

/// The scrape configuration from `--scrape-configuration`, or from the file
/// render-agent-config wrote for the managed collector (the document's `agent` section).
fn configuration(args: &ScraperArgs, doc: &StateDoc) -> Result<String> {
    let path = match &args.scrape_configuration {
        Some(path) => path.clone(),
        None => {
            let flavor = doc.str_field("agent", "flavor");
            let file = doc
                .as_map()
                .get("agent")
                .and_then(|agent| agent["files"][0].as_str());
            match (flavor, file) {
                (Some("managed-scraper"), Some(file)) => PathBuf::from(file),
                _ => {
                    return Err(Error::usage(
                        "no scrape configuration: --scrape-configuration is absent and the \
                         document's agent section is not a managed-scraper rendering",
                    )
                    .with_hint(
                        "render-agent-config --flavor managed-scraper --out DIR | amp-workspace scraper --cluster NAME",
                    ));
                }
            }
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::input(format!(
            "cannot read the scrape configuration {}: {e}",
            path.display()
        ))
    })?;
    scraper::configuration_from(&text, &path.display().to_string())
}

fn workspace_arn(args: &ScraperArgs, doc: &StateDoc) -> Result<String> {
    if let Some(arn) = args.workspace_arn.clone().filter(|a| !a.is_empty()) {
        return Ok(arn);
    }
    WorkspaceSection::from_doc(doc)?
        .map(|ws| ws.arn)
        .filter(|arn| !arn.is_empty())
        .ok_or_else(|| {
            Error::usage(format!(
                "no destination workspace: --workspace-arn is absent and the document has no {}.arn",
                amp::SECTION
            ))
            .with_hint("pass --workspace-arn, or pipe in the output of `amp-workspace ensure`")
        })
}
