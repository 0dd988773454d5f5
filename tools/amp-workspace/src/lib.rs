//! `amp-workspace`: find or create an Amazon Managed Service for Prometheus workspace, wait for
//! it, describe, list and delete it, and publish its endpoints in the document.
//!
//! The section `workspace` ([`ampkit::amp::WorkspaceSection`]) is what later tools read: the
//! agent config writes to `remoteWriteUrl`, `promql` and Grafana query `prometheusEndpoint`.
//! `ensure` makes a pipeline re-runnable: it finds the workspace by its exact alias and
//! creates one only when there is none, and only a workspace this run created goes into the
//! ledger, so teardown never deletes a workspace it merely found. Aliases are not unique in
//! AMP, so two workspaces with the same alias are an error to resolve by hand, never a silent
//! pick. Workspaces we create are tagged `managed-by=ampkit`.

mod scraper;

use std::time::Duration;

use ampkit::amp::{self, DELETED, WorkspaceListing, WorkspaceSection, Workspaces};
use ampkit::aws::{self, AwsArgs};
use ampkit::cli::{Runtime, Tool};
use ampkit::doc::{Resource, ResourceKind, StateDoc};
use ampkit::error::{Error, Result};
use ampkit::poll::Progress;
use ampkit::preflight::{Need, Preflight, Scope};
use ampkit::timespec::parse_duration;

/// The program's name, as in the ledger and in error lines.
pub const NAME: &str = "amp-workspace";

/// What the frame needs to know of this tool besides its flags.
pub const TOOL: Tool = Tool {
    name: NAME,
    runtime: Runtime::CurrentThread,
    examples: &[
        "amp-workspace ensure --alias AMP-APPMESH > state.json",
        "amp-workspace list --alias AMP- | jq -r '.workspaces[].workspaceId'",
        "amp-workspace delete --wait < state.json",
        "render-agent-config --flavor managed-scraper --out out < state.json | amp-workspace scraper --cluster demo",
    ],
};

/// Amazon Managed Service for Prometheus workspaces. Reads the state document on stdin and
/// writes it on stdout with the `workspace` section (and the ledger entry when it creates one).
#[derive(clap::Parser, Debug)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// How long a wait for a status may take, e.g. 90s, 10m
    #[arg(long, global = true, default_value = "5m", value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Command {
    /// Find the workspace with exactly this alias, or create it; wait until ACTIVE
    Ensure {
        /// Workspace alias
        #[arg(long)]
        alias: String,
        /// Tag for a workspace this creates, KEY=VALUE (repeatable); managed-by=ampkit is always set
        #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
        /// Workspaces per region this account may have (AMP's default quota is 25): `--check`
        /// says when creating one more would pass it
        #[arg(long, value_name = "N", default_value_t = amp::DEFAULT_WORKSPACE_QUOTA)]
        workspace_quota: usize,
    },
    /// Create a workspace (always a new one); wait until ACTIVE
    Create {
        /// Workspace alias
        #[arg(long)]
        alias: String,
        /// Tag, KEY=VALUE (repeatable); managed-by=ampkit is always set
        #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
        /// Return at once instead of waiting until ACTIVE
        #[arg(long)]
        no_wait: bool,
        /// Workspaces per region this account may have (AMP's default quota is 25): `--check`
        /// says when creating one more would pass it
        #[arg(long, value_name = "N", default_value_t = amp::DEFAULT_WORKSPACE_QUOTA)]
        workspace_quota: usize,
    },
    /// Describe a workspace into the document
    Describe {
        /// Workspace id [default: workspace.workspaceId of the document]
        #[arg(long, value_name = "ID")]
        workspace_id: Option<String>,
    },
    /// List workspaces (into the `workspaces` section)
    List {
        /// Only workspaces whose alias starts with this
        #[arg(long, value_name = "PREFIX")]
        alias: Option<String>,
    },
    /// Wait until a workspace has a status
    Wait {
        /// Workspace id [default: workspace.workspaceId of the document]
        #[arg(long, value_name = "ID")]
        workspace_id: Option<String>,
        /// Status to wait for: ACTIVE, CREATING, UPDATING, DELETING, or DELETED (gone)
        #[arg(long, default_value = "ACTIVE", value_parser = parse_status)]
        status: String,
    },
    /// Create (or find) AMP's managed collector for an EKS cluster, writing to the workspace;
    /// wait until ACTIVE
    Scraper(scraper::ScraperArgs),
    /// Delete a workspace
    Delete {
        /// Workspace id [default: workspace.workspaceId of the document]
        #[arg(long, value_name = "ID")]
        workspace_id: Option<String>,
        /// Wait until it is gone
        #[arg(long)]
        wait: bool,
    },
}

fn parse_tag(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

fn parse_status(text: &str) -> std::result::Result<String, String> {
    let status = text.trim().to_ascii_uppercase();
    match status.as_str() {
        "ACTIVE" | "CREATING" | "UPDATING" | "DELETING" | DELETED => Ok(status),
        _ => Err(format!(
            "`{text}` is not a status to wait for (ACTIVE, CREATING, UPDATING, DELETING, DELETED)"
        )),
    }
}

/// The workspaces client and how this run waits.
pub(crate) struct Run {
    workspaces: Workspaces,
    timeout: Duration,
    progress: Progress,
}

/// Run one `amp-workspace` subcommand against the document.
pub async fn run(cli: Cli, doc: &mut StateDoc) -> Result<()> {
    let config = aws::load(&cli.aws).await?;
    let run = Run {
        workspaces: Workspaces::new(&config),
        timeout: cli.timeout,
        progress: Progress::new(NAME, ampkit::cli::progress()),
    };
    let ws = &run.workspaces;
    match cli.command {
        Command::Ensure { alias, tags, .. } => ensure(&run, &alias, &tags, doc).await,
        Command::Scraper(args) => scraper::ensure(&run, &args, &config, doc).await,
        Command::Create {
            alias,
            tags,
            no_wait,
            ..
        } => create(&run, &alias, &tags, !no_wait, doc).await,
        Command::Describe { workspace_id } => {
            let id = doc_workspace_id(workspace_id, doc, &config).await?;
            let found = ws.describe(&id).await?;
            doc.set_section(amp::SECTION, ws.section(&found))
        }
        Command::List { alias } => {
            let matching: Vec<WorkspaceListing> = ws
                .list(None)
                .await?
                .into_iter()
                .filter(|w| {
                    alias
                        .as_deref()
                        .is_none_or(|prefix| w.alias.as_deref().unwrap_or("").starts_with(prefix))
                })
                .collect();
            doc.set_section("workspaces", matching)
        }
        Command::Wait {
            workspace_id,
            status,
        } => {
            let id = doc_workspace_id(workspace_id, doc, &config).await?;
            match ws
                .wait_for(&id, &status, run.timeout, &run.progress)
                .await?
            {
                Some(found) => doc.set_section(amp::SECTION, ws.section(&found)),
                None => mark_status(doc, &id, DELETED),
            }
        }
        Command::Delete { workspace_id, wait } => {
            let id = doc_workspace_id(workspace_id, doc, &config).await?;
            // Not every implementation reports an unknown id on delete (moto does not);
            // describing first makes "not there" exit 3 everywhere.
            ws.describe(&id).await?;
            ws.delete(&id).await?;
            mark_status(doc, &id, "DELETING")?;
            if wait {
                ws.wait_until_deleted(&id, run.timeout, &run.progress)
                    .await?;
                mark_status(doc, &id, DELETED)?;
            }
            Ok(())
        }
    }
}

async fn ensure(
    run: &Run,
    alias: &str,
    tags: &[(String, String)],
    doc: &mut StateDoc,
) -> Result<()> {
    let ws = &run.workspaces;
    let found: Vec<WorkspaceListing> = ws
        .list(Some(alias))
        .await?
        .into_iter()
        .filter(|w| w.alias.as_deref() == Some(alias) && w.status != "DELETING")
        .collect();
    match found.as_slice() {
        [] => create(run, alias, tags, true, doc).await,
        [one] => {
            tracing::info!("found workspace {} with alias {alias}", one.workspace_id);
            let active = ws
                .wait_until_active(&one.workspace_id, run.timeout, &run.progress)
                .await?;
            doc.set_section(amp::SECTION, ws.section(&active))
        }
        many => {
            let listed: Vec<String> = many
                .iter()
                .map(|w| format!("{} ({})", w.workspace_id, w.status))
                .collect();
            Err(Error::input(format!(
                "{} workspaces have the alias `{alias}`: {}",
                many.len(),
                listed.join(", ")
            ))
            .with_hint(
                "delete the extra ones (amp-workspace delete --workspace-id ID), or use one with amp-workspace describe --workspace-id ID",
            ))
        }
    }
}

async fn create(
    run: &Run,
    alias: &str,
    tags: &[(String, String)],
    wait: bool,
    doc: &mut StateDoc,
) -> Result<()> {
    let ws = &run.workspaces;
    let (id, arn) = ws.create(alias, tags).await?;
    // Into the ledger before anything else can fail, so teardown can always find it.
    doc.push_resource(
        Resource::new(ResourceKind::AmpWorkspace, &id, NAME)
            .arn(arn)
            .region(&ws.region)
            .with_details(&amp::WorkspaceDetails {
                alias: Some(alias.to_owned()),
            }),
    );
    tracing::info!("created workspace {id} with alias {alias}");
    let described = if wait {
        ws.wait_until_active(&id, run.timeout, &run.progress)
            .await?
    } else {
        ws.describe(&id).await?
    };
    doc.set_section(amp::SECTION, ws.section(&described))
}

/// What each subcommand calls, for `--print-policy` and `--check` (the actions are declared
/// by lib's `amp`, `amp::scraper` and `eks`, next to the calls).
impl Preflight for Cli {
    fn aws_args(&self) -> &AwsArgs {
        &self.aws
    }

    fn needs(&self, doc: &StateDoc, scope: &Scope) -> Result<Vec<Need>> {
        // The workspace a subcommand names, when the flag or the document gives it.
        let known = |flag: &Option<String>| -> Result<String> {
            if let Some(id) = flag.as_deref().filter(|id| !id.is_empty()) {
                return Ok(amp::workspace_arn_in(scope, Some(id)));
            }
            Ok(WorkspaceSection::from_doc(doc)?
                .map(|ws| ws.arn)
                .filter(|arn| !arn.is_empty())
                .unwrap_or_else(|| amp::workspace_arn_in(scope, None)))
        };
        Ok(match &self.command {
            Command::Ensure { .. } => amp::needs_to_ensure(scope, "amp-workspace ensure"),
            Command::Create { .. } => amp::needs_to_create(scope, "amp-workspace create"),
            Command::List { .. } => amp::needs_to_list("amp-workspace list"),
            Command::Describe { workspace_id } => {
                amp::needs_to_describe(&known(workspace_id)?, "amp-workspace describe")
            }
            Command::Wait { workspace_id, .. } => {
                amp::needs_to_describe(&known(workspace_id)?, "amp-workspace wait")
            }
            Command::Delete { workspace_id, .. } => {
                amp::needs_to_delete(&known(workspace_id)?, "amp-workspace delete")
            }
            Command::Scraper(args) => {
                let step = "amp-workspace scraper";
                let mut needs = ampkit::amp::scraper::needs_to_ensure(scope, step);
                needs.extend(ampkit::eks::needs_to_describe_cluster(
                    scope,
                    &args.cluster,
                    step,
                ));
                if !args.no_access_entry {
                    needs.extend(ampkit::eks::needs_for_access_entry(
                        scope,
                        &args.cluster,
                        step,
                    ));
                }
                needs
            }
        })
    }

    /// Creating one more workspace where the region holds the quota's worth already fails
    /// with AMP's ServiceQuotaExceededException: said before, with the count.
    async fn quotas(&self, config: &aws::SdkConfig, _doc: &StateDoc) -> Result<Vec<String>> {
        let (alias, quota) = match &self.command {
            Command::Ensure {
                alias,
                workspace_quota,
                ..
            } => (Some(alias), *workspace_quota),
            Command::Create {
                workspace_quota, ..
            } => (None, *workspace_quota),
            _ => return Ok(Vec::new()),
        };
        let ws = Workspaces::new(config);
        let listed = match ws.list(None).await {
            Ok(listed) => listed,
            // A caller who may not list has that said as a missing permission already.
            Err(e) if e.kind == ampkit::error::ErrorKind::Denied => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let live: Vec<&WorkspaceListing> =
            listed.iter().filter(|w| w.status != "DELETING").collect();
        if alias.is_some_and(|a| live.iter().any(|w| w.alias.as_deref() == Some(a.as_str()))) {
            return Ok(Vec::new());
        }
        if live.len() >= quota {
            return Ok(vec![format!(
                "region {} holds {} workspaces, and the quota is {quota} (--workspace-quota; AMP's default is {}): creating one more would be refused; delete one or ask Service Quotas for more",
                ws.region,
                live.len(),
                amp::DEFAULT_WORKSPACE_QUOTA
            )]);
        }
        Ok(Vec::new())
    }
}

/// The workspace a subcommand acts on: the flag's, else the document's once its region and
/// account are the run's (AMP would answer "not found" for either, sending a user looking for
/// a deleted workspace).
async fn doc_workspace_id(
    flag: Option<String>,
    doc: &StateDoc,
    config: &aws::SdkConfig,
) -> Result<String> {
    let from_doc = flag.as_deref().is_none_or(str::is_empty);
    let id = workspace_id_from(flag, doc, &aws::region_of(config))?;
    if from_doc && let Some(section) = WorkspaceSection::from_doc(doc)? {
        section.check_account(config).await?;
    }
    Ok(id)
}

fn workspace_id_from(flag: Option<String>, doc: &StateDoc, region: &str) -> Result<String> {
    if let Some(id) = flag.filter(|id| !id.is_empty()) {
        return Ok(id);
    }
    WorkspaceSection::from_doc_in(doc, region)?
        .map(|ws| ws.workspace_id)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            Error::usage("no workspace id: --workspace-id is absent and the document has no workspace.workspaceId")
                .with_hint("pass --workspace-id ID, or pipe in the output of `amp-workspace ensure`")
        })
}

/// Update the status in the document's section if it describes this workspace.
fn mark_status(doc: &mut StateDoc, id: &str, status: &str) -> Result<()> {
    if let Some(mut section) = WorkspaceSection::from_doc(doc)?
        && section.workspace_id == id
    {
        section.status = status.to_owned();
        doc.set_section(amp::SECTION, section)?;
    }
    Ok(())
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
    fn each_subcommand_declares_the_calls_it_makes() {
        // ensure: list (find by alias), create, wait (describe); lib amp's calls.
        let ensure = actions_of(&["amp-workspace", "ensure", "--alias", "a"], "{}");
        assert_has(
            &ensure,
            &[
                "aps:ListWorkspaces *",
                "aps:CreateWorkspace arn:aws:aps:eu-west-1:123456789012:workspace/*",
                "aps:TagResource",
                "aps:DescribeWorkspace",
            ],
        );
        // describe/delete name the workspace from the flag, else the document: never a pattern.
        let delete = actions_of(
            &["amp-workspace", "delete", "--wait"],
            r#"{"workspace":{"workspaceId":"ws-1","arn":"arn:aws:aps:eu-west-1:123456789012:workspace/ws-1"}}"#,
        );
        assert_eq!(
            delete,
            vec![
                "aps:DescribeWorkspace arn:aws:aps:eu-west-1:123456789012:workspace/ws-1",
                "aps:DeleteWorkspace arn:aws:aps:eu-west-1:123456789012:workspace/ws-1",
            ]
        );
        let scraper = actions_of(&["amp-workspace", "scraper", "--cluster", "c"], "{}");
        assert_has(
            &scraper,
            &[
                "eks:DescribeCluster arn:aws:eks:eu-west-1:123456789012:cluster/c",
                "aps:ListScrapers",
                "aps:CreateScraper",
                "aps:DescribeScraper",
                "eks:ListAccessEntries arn:aws:eks:eu-west-1:123456789012:cluster/c",
                "eks:CreateAccessEntry arn:aws:eks:eu-west-1:123456789012:cluster/c",
                "eks:DescribeAccessEntry arn:aws:eks:eu-west-1:123456789012:access-entry/c/*",
            ],
        );
        let opted_out = actions_of(
            &[
                "amp-workspace",
                "scraper",
                "--cluster",
                "c",
                "--no-access-entry",
            ],
            "{}",
        );
        assert!(
            !opted_out.iter().any(|a| a.contains("AccessEntry")),
            "{opted_out:?}"
        );
        assert_eq!(
            actions_of(&["amp-workspace", "list"], "{}"),
            vec!["aps:ListWorkspaces *"]
        );
    }

    #[test]
    fn tags_and_statuses_parse() {
        assert_eq!(parse_tag("team=obs"), Ok(("team".into(), "obs".into())));
        assert_eq!(parse_tag("k="), Ok(("k".into(), String::new())));
        assert!(parse_tag("=v").is_err());
        assert!(parse_tag("novalue").is_err());
        assert_eq!(parse_status("active"), Ok("ACTIVE".into()));
        assert!(parse_status("GONE").is_err());
    }

    #[test]
    fn the_id_flag_wins_over_the_document() {
        let doc = StateDoc::parse(r#"{"workspace":{"workspaceId":"ws-doc"}}"#).unwrap();
        assert_eq!(
            workspace_id_from(Some("ws-flag".into()), &doc, "eu-west-1").unwrap(),
            "ws-flag"
        );
        assert_eq!(
            workspace_id_from(None, &doc, "eu-west-1").unwrap(),
            "ws-doc"
        );
        let err = workspace_id_from(None, &StateDoc::new(), "eu-west-1").unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn delete_marks_only_the_same_workspace() {
        let mut doc =
            StateDoc::parse(r#"{"workspace":{"workspaceId":"ws-1","status":"ACTIVE"}}"#).unwrap();
        mark_status(&mut doc, "ws-2", "DELETING").unwrap();
        assert_eq!(doc.str_field("workspace", "status"), Some("ACTIVE"));
        mark_status(&mut doc, "ws-1", "DELETING").unwrap();
        assert_eq!(doc.str_field("workspace", "status"), Some("DELETING"));
    }
}
