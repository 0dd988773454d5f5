//! `amp-workspace`: find or create an Amazon Managed Service for Prometheus workspace, wait for
//! it, describe, list and delete it, and publish its endpoints in the document.
//!
//! The section `workspace` (`{workspaceId, alias, arn, status, region, prometheusEndpoint,
//! remoteWriteUrl, queryUrl}`) is what later tools read: the agent config writes to
//! `remoteWriteUrl`, `promql` and Grafana query `prometheusEndpoint`. `ensure` makes a pipeline
//! re-runnable: it finds the workspace by its exact alias and creates one only when there is
//! none, and only a workspace this run created goes into the ledger, so teardown never deletes
//! a workspace it merely found. Aliases are not unique in AMP, so two workspaces with the same
//! alias are an error to resolve by hand, never a silent pick. Workspaces we create are tagged
//! `managed-by=ampkit`.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use aws_sdk_amp::Client;
use aws_sdk_amp::types::{WorkspaceDescription, WorkspaceStatusCode};
use serde::{Deserialize, Serialize};

use crate::aws::{self, AwsArgs};
use crate::doc::{Resource, StateDoc};
use crate::error::{Error, Result};
use crate::promql::timespec::{format_duration, parse_duration};

/// The tool's name, as recorded in the ledger.
pub const TOOL: &str = "amp-workspace";
/// The ledger type of a workspace.
pub const RESOURCE_TYPE: &str = "amp-workspace";
/// The tag that marks workspaces ampkit created.
pub const MANAGED_BY: (&str, &str) = ("managed-by", "ampkit");
/// The pseudo-status `wait --status DELETED` waits for: the workspace is gone.
pub const DELETED: &str = "DELETED";

/// The `workspace` section of the document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceSection {
    pub workspace_id: String,
    #[serde(default)]
    pub alias: Option<String>,
    pub arn: String,
    pub status: String,
    pub region: String,
    pub prometheus_endpoint: String,
    pub remote_write_url: String,
    pub query_url: String,
}

/// One entry of the `workspaces` section written by `list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceListing {
    pub workspace_id: String,
    pub alias: Option<String>,
    pub arn: String,
    pub status: String,
    pub region: String,
    pub tags: HashMap<String, String>,
}

/// Flags shared by every subcommand.
#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    /// How long a wait for a status may take, e.g. 90s, 10m
    #[arg(long, global = true, default_value = "5m", value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Duration,
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

/// The AMP client and the region it talks to.
struct Amp {
    client: Client,
    region: String,
    timeout: Duration,
    progress: bool,
}

/// Run one `amp-workspace` subcommand against the document.
pub async fn run(
    command: Command,
    options: Options,
    aws_args: AwsArgs,
    progress: bool,
    doc: &mut StateDoc,
) -> Result<()> {
    let config = aws::load(&aws_args).await?;
    let amp = Amp {
        client: Client::new(&config),
        region: aws::region_of(&config),
        timeout: options.timeout,
        progress,
    };
    match command {
        Command::Ensure { alias, tags } => ensure(&amp, &alias, &tags, doc).await,
        Command::Create {
            alias,
            tags,
            no_wait,
        } => create(&amp, &alias, &tags, !no_wait, doc).await,
        Command::Describe { workspace_id } => {
            let id = workspace_id_from(workspace_id, doc)?;
            let ws = amp.describe(&id).await?;
            doc.set_section("workspace", amp.section(&ws))
        }
        Command::List { alias } => {
            let listed = amp.list(None).await?;
            let matching: Vec<WorkspaceListing> = listed
                .into_iter()
                .filter(|w| match &alias {
                    Some(prefix) => w
                        .alias
                        .as_deref()
                        .unwrap_or("")
                        .starts_with(prefix.as_str()),
                    None => true,
                })
                .collect();
            doc.set_section("workspaces", matching)
        }
        Command::Wait {
            workspace_id,
            status,
        } => {
            let id = workspace_id_from(workspace_id, doc)?;
            match amp.wait_for(&id, &status).await? {
                Some(ws) => doc.set_section("workspace", amp.section(&ws)),
                None => mark_status(doc, &id, DELETED),
            }
        }
        Command::Delete { workspace_id, wait } => {
            let id = workspace_id_from(workspace_id, doc)?;
            // Not every implementation reports an unknown id on delete (moto does not);
            // describing first makes "not there" exit 3 everywhere.
            amp.describe(&id).await?;
            amp.client
                .delete_workspace()
                .workspace_id(&id)
                .send()
                .await
                .map_err(|e| aws::sdk_error(e, format!("deleting workspace {id}")))?;
            mark_status(doc, &id, "DELETING")?;
            if wait {
                amp.wait_for(&id, DELETED).await?;
                mark_status(doc, &id, DELETED)?;
            }
            Ok(())
        }
    }
}

async fn ensure(
    amp: &Amp,
    alias: &str,
    tags: &[(String, String)],
    doc: &mut StateDoc,
) -> Result<()> {
    let found: Vec<WorkspaceListing> = amp
        .list(Some(alias))
        .await?
        .into_iter()
        .filter(|w| w.alias.as_deref() == Some(alias) && w.status != "DELETING")
        .collect();
    match found.as_slice() {
        [] => create(amp, alias, tags, true, doc).await,
        [one] => {
            tracing::info!("found workspace {} with alias {alias}", one.workspace_id);
            let ws = amp.wait_for_active(&one.workspace_id).await?;
            doc.set_section("workspace", amp.section(&ws))
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
    amp: &Amp,
    alias: &str,
    tags: &[(String, String)],
    wait: bool,
    doc: &mut StateDoc,
) -> Result<()> {
    let mut request = amp.client.create_workspace().alias(alias);
    for (key, value) in tags.iter().filter(|(k, _)| k != MANAGED_BY.0) {
        request = request.tags(key, value);
    }
    let created = request
        .tags(MANAGED_BY.0, MANAGED_BY.1)
        .send()
        .await
        .map_err(|e| aws::sdk_error(e, format!("creating workspace `{alias}`")))?;
    let id = created.workspace_id().to_owned();
    // Into the ledger before anything else can fail, so teardown can always find it.
    doc.push_resource(
        Resource::new(RESOURCE_TYPE, &id, TOOL)
            .arn(created.arn())
            .region(&amp.region)
            .detail("alias", alias),
    );
    tracing::info!("created workspace {id} with alias {alias}");
    let ws = if wait {
        amp.wait_for_active(&id).await?
    } else {
        amp.describe(&id).await?
    };
    doc.set_section("workspace", amp.section(&ws))
}

fn workspace_id_from(flag: Option<String>, doc: &StateDoc) -> Result<String> {
    if let Some(id) = flag.filter(|id| !id.is_empty()) {
        return Ok(id);
    }
    doc.str_field("workspace", "workspaceId")
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::usage("no workspace id: --workspace-id is absent and the document has no workspace.workspaceId")
                .with_hint("pass --workspace-id ID, or pipe in the output of `amp-workspace ensure`")
        })
}

/// Update the status in the document's section if it describes this workspace.
fn mark_status(doc: &mut StateDoc, id: &str, status: &str) -> Result<()> {
    if let Some(serde_json::Value::Object(mut section)) = doc.section("workspace").cloned()
        && section.get("workspaceId").and_then(|v| v.as_str()) == Some(id)
    {
        section.insert("status".into(), status.into());
        doc.set_section("workspace", section)?;
    }
    Ok(())
}

fn status_of(ws: &WorkspaceDescription) -> String {
    ws.status()
        .map(|s| s.status_code().as_str().to_owned())
        .unwrap_or_else(|| "UNKNOWN".into())
}

impl Amp {
    async fn describe(&self, id: &str) -> Result<WorkspaceDescription> {
        let out = self
            .client
            .describe_workspace()
            .workspace_id(id)
            .send()
            .await
            .map_err(|e| {
                let not_found = aws::is_not_found(&e);
                let err = aws::sdk_error(e, format!("describing workspace {id}"));
                if not_found {
                    err.with_hint(format!(
                        "no workspace {id} in {}; list them with `amp-workspace list`",
                        self.region
                    ))
                } else {
                    err
                }
            })?;
        out.workspace.ok_or_else(|| {
            Error::remote(format!(
                "describing workspace {id}: the answer has no workspace"
            ))
        })
    }

    /// All workspaces (the service filters by alias prefix, moto by exact alias; callers
    /// filter again themselves so both behave the same).
    async fn list(&self, alias: Option<&str>) -> Result<Vec<WorkspaceListing>> {
        let mut pages = self
            .client
            .list_workspaces()
            .set_alias(alias.map(str::to_owned))
            .into_paginator()
            .items()
            .send();
        let mut out = Vec::new();
        while let Some(item) = pages.next().await {
            let w = item.map_err(|e| aws::sdk_error(e, "listing workspaces"))?;
            out.push(WorkspaceListing {
                workspace_id: w.workspace_id().to_owned(),
                alias: w.alias().map(str::to_owned),
                arn: w.arn().to_owned(),
                status: w
                    .status()
                    .map(|s| s.status_code().as_str().to_owned())
                    .unwrap_or_else(|| "UNKNOWN".into()),
                region: self.region.clone(),
                tags: w.tags().cloned().unwrap_or_default(),
            });
        }
        Ok(out)
    }

    async fn wait_for_active(&self, id: &str) -> Result<WorkspaceDescription> {
        self.wait_for(id, WorkspaceStatusCode::Active.as_str())
            .await?
            .ok_or_else(|| {
                Error::not_found(format!("workspace {id} disappeared while waiting for it"))
            })
    }

    /// Poll until the workspace has `want` (or is gone, for DELETED), bounded by the timeout.
    /// Returns the last description (`None` once gone).
    async fn wait_for(&self, id: &str, want: &str) -> Result<Option<WorkspaceDescription>> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(500);
        let outcome = loop {
            let current = match self.describe(id).await {
                Ok(ws) => Some(ws),
                Err(e) if e.kind == crate::error::ErrorKind::NotFound && want == DELETED => None,
                Err(e) => break Err(e),
            };
            let status = current
                .as_ref()
                .map(status_of)
                .unwrap_or_else(|| DELETED.into());
            if status == want {
                break Ok(current);
            }
            if status == WorkspaceStatusCode::CreationFailed.as_str() && want != status {
                break Err(Error::remote(format!("workspace {id} failed to create (CREATION_FAILED)"))
                    .with_hint("delete it with `amp-workspace delete` and create it again; check the account's AMP quotas"));
            }
            let elapsed = started.elapsed();
            if elapsed >= self.timeout {
                break Err(Error::remote(format!(
                    "workspace {id} is still {status} after {} (waiting for {want})",
                    format_duration(self.timeout)
                ))
                .with_hint("wait longer with `amp-workspace wait --timeout 10m`"));
            }
            self.show_progress(id, &status, want, elapsed);
            tokio::time::sleep(delay.min(self.timeout - elapsed)).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        };
        if self.progress && started.elapsed() > Duration::from_millis(100) {
            // Erase the progress line; the document and errors say how it ended.
            eprint!("\r\x1b[K");
        }
        outcome
    }

    fn show_progress(&self, id: &str, status: &str, want: &str, elapsed: Duration) {
        let secs = elapsed.as_secs();
        if self.progress {
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\ramp-workspace: {id} is {status}, waiting for {want} ({secs}s)\x1b[K"
            );
            let _ = err.flush();
        } else {
            tracing::info!("{id} is {status}, waiting for {want} ({secs}s)");
        }
    }

    fn section(&self, ws: &WorkspaceDescription) -> WorkspaceSection {
        let id = ws.workspace_id();
        let mut endpoint = ws
            .prometheus_endpoint()
            .map(str::to_owned)
            .unwrap_or_else(|| {
                format!(
                    "https://aps-workspaces.{}.amazonaws.com/workspaces/{id}/",
                    self.region
                )
            });
        if !endpoint.ends_with('/') {
            endpoint.push('/');
        }
        WorkspaceSection {
            workspace_id: id.to_owned(),
            alias: ws.alias().map(str::to_owned),
            arn: ws.arn().to_owned(),
            status: status_of(ws),
            region: self.region.clone(),
            remote_write_url: format!("{endpoint}api/v1/remote_write"),
            query_url: format!("{endpoint}api/v1/query"),
            prometheus_endpoint: endpoint,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
            workspace_id_from(Some("ws-flag".into()), &doc).unwrap(),
            "ws-flag"
        );
        assert_eq!(workspace_id_from(None, &doc).unwrap(), "ws-doc");
        let err = workspace_id_from(None, &StateDoc::new()).unwrap_err();
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
