//! `amp-workspace scraper`: AMP's managed collector for an EKS cluster, writing to the
//! document's workspace. It lives here because it is AMP's control plane, made, waited for
//! and deleted like a workspace, and the workspace it writes to is this tool's section.
//!
//! Everything is read and checked before anything is made: the workspace (its ARN), the
//! cluster (its ARN, subnets and security groups, from DescribeCluster unless given) and the
//! scrape configuration (render-agent-config's `managed-scraper` file). A scraper of ours
//! with the same alias, cluster and workspace is found rather than made again; only one this
//! run made goes into the ledger.

use std::path::PathBuf;

use ampkit::amp::scraper::{self, ScraperDetails, ScraperSpec, Scrapers};
use ampkit::amp::{self, WorkspaceSection};
use ampkit::doc::{Resource, ResourceKind, StateDoc};
use ampkit::eks::Eks;
use ampkit::error::{Error, Result};

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
    let cluster = Eks::new(config).cluster(&args.cluster, &region).await?;
    let cluster_arn = cluster.arn.clone().ok_or_else(|| {
        Error::remote(format!(
            "EKS describes cluster {} without an ARN",
            args.cluster
        ))
    })?;
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
                cluster_arn,
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
    doc.set_section(scraper::SECTION, scrapers.section(&described))
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
