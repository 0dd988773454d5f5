//! Amazon Managed Service for Prometheus: the `workspace` section that later tools read, and
//! every workspace call (create, find by alias, describe, list, wait, delete).
//!
//! amp-workspace creates and finds workspaces here; teardown deletes them with the same calls;
//! render-agent-config, irsa-role and promql read the section through [`WorkspaceSection`].
//! Waits use the SDK's own waiters (`WorkspaceActive`, `WorkspaceDeleted`), whose acceptors
//! are AMP's published ones; only the statuses they do not cover are polled by hand.

pub mod alerting;
pub mod rules;
pub mod scraper;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_amp::Client;
use aws_sdk_amp::client::Waiters;
use aws_sdk_amp::error::SdkError;
use aws_sdk_amp::operation::describe_workspace::DescribeWorkspaceError;
use aws_sdk_amp::types::{WorkspaceDescription, WorkspaceStatusCode};
use aws_smithy_runtime_api::client::waiters::error::WaiterError;
use serde::{Deserialize, Serialize};

use crate::aws::sdk_error;
use crate::doc::{MANAGED_BY, Resource, StateDoc, tagged_ours};
use crate::error::{Error, Result};
use crate::ledger::{self, Run, Verdict};
use crate::poll::{self, Attempt, Pace, Progress};
use crate::preflight::{Need, Scope};
use crate::sts::{arn_account, arn_region};

/// What [`Workspaces::delete_and_wait`] found: it deleted the workspace, or it was gone already.
pub use crate::aws::Deleted;
use crate::timespec::format_duration;

/// The document's key of [`WorkspaceSection`].
pub const SECTION: &str = "workspace";
/// The pseudo-status of a workspace that is gone (`wait --status DELETED`).
pub const DELETED: &str = "DELETED";

/// The `workspace` section, written by amp-workspace. Every field defaults to empty when
/// reading, since a user may hand-write only the one a tool needs (`remoteWriteUrl`, say);
/// [`WorkspaceSection::get`] treats empty as absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WorkspaceSection {
    pub workspace_id: String,
    pub alias: Option<String>,
    pub arn: String,
    pub status: String,
    pub region: String,
    pub prometheus_endpoint: String,
    pub remote_write_url: String,
    pub query_url: String,
}

impl WorkspaceSection {
    /// The section of `doc`, if it has one (malformed is an input error naming it).
    pub fn from_doc(doc: &StateDoc) -> Result<Option<Self>> {
        doc.section_as(SECTION)
    }

    /// The section of `doc` for a tool about to call AMP in `region`: a workspace the document
    /// places in another region is an error naming both (AMP would answer "not found", which
    /// sends a user looking for a deleted workspace rather than at their AWS_REGION).
    pub fn from_doc_in(doc: &StateDoc, region: &str) -> Result<Option<Self>> {
        let Some(section) = Self::from_doc(doc)? else {
            return Ok(None);
        };
        let placed =
            Self::get(&section.region).or_else(|| Self::get(&section.arn).and_then(arn_region));
        section.placed().in_region(placed, region)?;
        Ok(Some(section))
    }

    /// Whether the caller's credentials are of the account the section's ARN names: AMP would
    /// answer "not found" for another account's workspace, as for a deleted one. One STS call,
    /// made only when the ARN names an account.
    pub async fn check_account(&self, config: &aws_config::SdkConfig) -> Result<()> {
        let Some(account) = Self::get(&self.arn).and_then(arn_account) else {
            return Ok(());
        };
        self.placed()
            .of_account(Some(account), &crate::sts::caller(config).await?)
    }

    /// The section's workspace for lib's one placement check.
    fn placed(&self) -> crate::aws::Placed<'static> {
        crate::aws::Placed {
            what: format!("the document's workspace {}", self.workspace_id),
            noun: "workspace",
            flag: "--workspace-id",
        }
    }

    /// A field that is set: `Some` only when not empty.
    pub fn get(field: &str) -> Option<&str> {
        Some(field).filter(|f| !f.is_empty())
    }
}

/// AMP's data-plane root of a workspace (`.../workspaces/ID/`): on `endpoint` when one is
/// configured (AWS_ENDPOINT_URL_AMP, as the SDK reads it), else the region's public one.
pub fn workspace_endpoint(id: &str, region: &str, endpoint: Option<&str>) -> String {
    let base = endpoint
        .map(str::to_owned)
        .unwrap_or_else(|| format!("https://aps-workspaces.{region}.amazonaws.com"));
    format!("{}/workspaces/{id}/", base.trim().trim_end_matches('/'))
}

/// The AMP endpoint the environment configures: `AWS_ENDPOINT_URL_AMP`, else
/// `AWS_ENDPOINT_URL`, as the SDK resolves them.
pub fn endpoint_from_env() -> Option<String> {
    ["AWS_ENDPOINT_URL_AMP", "AWS_ENDPOINT_URL"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|v| !v.trim().is_empty())
}

/// One entry of the `workspaces` section written by `amp-workspace list`.
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

/// The workspaces of one account and region.
pub struct Workspaces {
    client: Client,
    pub region: String,
}

fn status_of(ws: &WorkspaceDescription) -> String {
    ws.status()
        .map(|s| s.status_code().as_str().to_owned())
        .unwrap_or_else(|| "UNKNOWN".into())
}

fn describe_error(e: SdkError<DescribeWorkspaceError>, id: &str, region: &str) -> Error {
    let not_found = e
        .as_service_error()
        .is_some_and(DescribeWorkspaceError::is_resource_not_found_exception);
    let err = sdk_error(e, format!("describing workspace {id}"));
    if not_found {
        err.with_hint(format!(
            "no workspace {id} in {region}; list them with `amp-workspace list`"
        ))
    } else {
        err
    }
}

impl Workspaces {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Workspaces {
            client: crate::aws_client!(aws_sdk_amp, config),
            region: crate::aws::region_of(config),
        }
    }

    /// Create a workspace tagged `managed-by=ampkit` (plus `tags`); returns its id and ARN.
    pub async fn create(&self, alias: &str, tags: &[(String, String)]) -> Result<(String, String)> {
        let mut request = self.client.create_workspace().alias(alias);
        for (key, value) in tags.iter().filter(|(k, _)| k != MANAGED_BY.0) {
            request = request.tags(key, value);
        }
        let created = request
            .tags(MANAGED_BY.0, MANAGED_BY.1)
            .send()
            .await
            .map_err(|e| sdk_error(e, format!("creating workspace `{alias}`")))?;
        Ok((created.workspace_id().to_owned(), created.arn().to_owned()))
    }

    /// DescribeWorkspace, the one call behind [`Self::describe`] and [`Self::find`].
    async fn describe_call(
        &self,
        id: &str,
    ) -> std::result::Result<Option<WorkspaceDescription>, SdkError<DescribeWorkspaceError>> {
        let out = self
            .client
            .describe_workspace()
            .workspace_id(id)
            .send()
            .await?;
        Ok(out.workspace)
    }

    pub async fn describe(&self, id: &str) -> Result<WorkspaceDescription> {
        self.describe_call(id)
            .await
            .map_err(|e| describe_error(e, id, &self.region))?
            .ok_or_else(|| {
                Error::remote(format!(
                    "describing workspace {id}: the answer has no workspace"
                ))
            })
    }

    /// The workspace, or `None` when the service says it does not exist.
    pub async fn find(&self, id: &str) -> Result<Option<WorkspaceDescription>> {
        match self.describe_call(id).await {
            Err(e)
                if e.as_service_error()
                    .is_some_and(DescribeWorkspaceError::is_resource_not_found_exception) =>
            {
                Ok(None)
            }
            other => other.map_err(|e| describe_error(e, id, &self.region)),
        }
    }

    /// All workspaces (the service filters by alias prefix, moto by exact alias; callers
    /// filter again themselves so both behave the same).
    pub async fn list(&self, alias: Option<&str>) -> Result<Vec<WorkspaceListing>> {
        let mut pages = self
            .client
            .list_workspaces()
            .set_alias(alias.map(str::to_owned))
            .into_paginator()
            .items()
            .send();
        let mut out = Vec::new();
        while let Some(item) = pages.next().await {
            let w = item.map_err(|e| sdk_error(e, "listing workspaces"))?;
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

    /// Start deleting a workspace (AMP deletes asynchronously: DELETING, then gone). AMP
    /// refuses it (409) while the workspace is CREATING or UPDATING: that waits (up to five
    /// minutes) and tries again; one DELETING already is taken as deleted.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let timeout = Duration::from_secs(300);
        if self
            .start_deleting(id, timeout, &Progress::new("ampkit", false))
            .await?
        {
            return Ok(());
        }
        Err(
            Error::not_found(format!("deleting workspace {id}: it does not exist"))
                .with_hint("check the workspace id and the region (--region, AWS_REGION)"),
        )
    }

    /// DeleteWorkspace, again while AMP answers 409 (the workspace is CREATING or UPDATING):
    /// `true` once the delete is taken or the workspace is DELETING already, `false` when it
    /// is gone. Bounded by `timeout`.
    async fn start_deleting(
        &self,
        id: &str,
        timeout: Duration,
        progress: &Progress,
    ) -> Result<bool> {
        use aws_sdk_amp::operation::delete_workspace::DeleteWorkspaceError;
        let pace = Pace::doubling(Duration::from_millis(500), Duration::from_secs(5), timeout);
        let (taken, _) = poll::until(
            &format!("workspace {id} to be deletable"),
            pace,
            progress,
            || async {
                match self.client.delete_workspace().workspace_id(id).send().await {
                    Ok(_) => Ok(Attempt::Done(true)),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(DeleteWorkspaceError::is_resource_not_found_exception) =>
                    {
                        Ok(Attempt::Done(false))
                    }
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(DeleteWorkspaceError::is_conflict_exception) =>
                    {
                        match self.find(id).await? {
                            None => Ok(Attempt::Done(false)),
                            Some(ws)
                                if status_of(&ws) == WorkspaceStatusCode::Deleting.as_str() =>
                            {
                                Ok(Attempt::Done(true))
                            }
                            Some(ws) => Ok(Attempt::Pending(status_of(&ws).to_owned())),
                        }
                    }
                    Err(e) => Err(sdk_error(e, format!("deleting workspace {id}"))),
                }
            },
            |t| self.timed_out(id, "deletable", timeout, &t.last),
        )
        .await?;
        Ok(taken)
    }

    /// Wait until the workspace has status `want` (or is gone, for [`DELETED`]); the last
    /// description, `None` once gone.
    pub async fn wait_for(
        &self,
        id: &str,
        want: &str,
        timeout: Duration,
        progress: &Progress,
    ) -> Result<Option<WorkspaceDescription>> {
        if want == WorkspaceStatusCode::Active.as_str() {
            return self
                .wait_until_active(id, timeout, progress)
                .await
                .map(Some);
        }
        if want == DELETED {
            return self
                .wait_until_deleted(id, timeout, progress)
                .await
                .map(|()| None);
        }
        // No SDK waiter for the transitional statuses: poll.
        let (found, _) = poll::until(
            &format!("{id} to be {want}"),
            Pace::doubling(Duration::from_millis(500), Duration::from_secs(5), timeout),
            progress,
            || async move {
                let ws = self.describe(id).await?;
                let status = status_of(&ws);
                Ok(if status == want {
                    Attempt::Done(ws)
                } else {
                    Attempt::Pending(status)
                })
            },
            |t| self.timed_out(id, want, timeout, &t.last),
        )
        .await?;
        Ok(Some(found))
    }

    fn timed_out(&self, id: &str, want: &str, timeout: Duration, status: &str) -> Error {
        Error::remote(format!(
            "workspace {id} is still {status} after {} (waiting for {want})",
            format_duration(timeout)
        ))
        .with_hint("wait longer with `amp-workspace wait --timeout 10m`")
    }

    /// The SDK's `WorkspaceActive` waiter. Its acceptors retry on CREATING and UPDATING only,
    /// so a workspace that failed to create is caught first, and again when the wait ends.
    pub async fn wait_until_active(
        &self,
        id: &str,
        timeout: Duration,
        progress: &Progress,
    ) -> Result<WorkspaceDescription> {
        let ws = self.describe(id).await?;
        let status = status_of(&ws);
        if status == WorkspaceStatusCode::Active.as_str() {
            return Ok(ws);
        }
        if status == WorkspaceStatusCode::CreationFailed.as_str() {
            return Err(creation_failed(id));
        }
        let waited = poll::while_showing(
            &format!("{id} to be ACTIVE (now {status})"),
            progress,
            self.client
                .wait_until_workspace_active()
                .workspace_id(id)
                .wait(timeout),
        )
        .await;
        match waited {
            Ok(done) => match done.into_result() {
                Ok(out) => out.workspace.ok_or_else(|| {
                    Error::remote(format!("workspace {id}: the answer has no workspace"))
                }),
                Err(e) => Err(describe_error(e, id, &self.region)),
            },
            Err(WaiterError::ExceededMaxWait(_) | WaiterError::FailureState(_)) => {
                let now = self.find(id).await?;
                match now.as_ref().map(status_of) {
                    None => Err(Error::not_found(format!(
                        "workspace {id} disappeared while waiting for it"
                    ))),
                    Some(s) if s == WorkspaceStatusCode::CreationFailed.as_str() => {
                        Err(creation_failed(id))
                    }
                    Some(s) => Err(self.timed_out(id, "ACTIVE", timeout, &s)),
                }
            }
            Err(WaiterError::OperationFailed(failed)) => {
                Err(describe_error(failed.into_error(), id, &self.region))
            }
            Err(other) => Err(Error::remote(format!(
                "waiting for workspace {id}: {other}"
            ))),
        }
    }

    /// The SDK's `WorkspaceDeleted` waiter: done when DescribeWorkspace says not found.
    pub async fn wait_until_deleted(
        &self,
        id: &str,
        timeout: Duration,
        progress: &Progress,
    ) -> Result<()> {
        let waited = poll::while_showing(
            &format!("{id} to be deleted"),
            progress,
            self.client
                .wait_until_workspace_deleted()
                .workspace_id(id)
                .wait(timeout),
        )
        .await;
        match waited {
            Ok(_) => Ok(()),
            Err(WaiterError::ExceededMaxWait(_) | WaiterError::FailureState(_)) => {
                let status = self
                    .find(id)
                    .await?
                    .map_or_else(|| DELETED.to_owned(), |ws| status_of(&ws));
                if status == DELETED {
                    return Ok(());
                }
                Err(self.timed_out(id, DELETED, timeout, &status))
            }
            Err(WaiterError::OperationFailed(failed)) => {
                Err(describe_error(failed.into_error(), id, &self.region))
            }
            Err(other) => Err(Error::remote(format!(
                "waiting for workspace {id} to be deleted: {other}"
            ))),
        }
    }

    /// The section for a described workspace; the endpoint always ends in `/`.
    pub fn section(&self, ws: &WorkspaceDescription) -> WorkspaceSection {
        let id = ws.workspace_id();
        let mut endpoint = ws
            .prometheus_endpoint()
            .map(str::to_owned)
            .unwrap_or_else(|| workspace_endpoint(id, &self.region, None));
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

fn creation_failed(id: &str) -> Error {
    Error::remote(format!("workspace {id} failed to create (CREATION_FAILED)")).with_hint(
        "delete it with `amp-workspace delete` and create it again; check the account's AMP quotas",
    )
}

impl Workspaces {
    /// Delete a workspace and wait until AMP no longer describes it. AMP refuses a delete
    /// (409) while the workspace is CREATING or UPDATING: that waits and retries; one already
    /// DELETING (an earlier, interrupted run) is waited for. Bounded by `timeout` overall.
    pub async fn delete_and_wait(
        &self,
        id: &str,
        timeout: Duration,
        progress: &Progress,
    ) -> Result<Deleted> {
        let deadline = tokio::time::Instant::now() + timeout;
        let taken = self.start_deleting(id, timeout, progress).await?;
        if !taken {
            return Ok(Deleted::AlreadyGone);
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.wait_until_deleted(id, left.max(Duration::from_secs(1)), progress)
            .await?;
        Ok(Deleted::Now)
    }
}

/// A workspace's ledger details (as the ledger has always had them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

/// teardown's `amp-workspace` entry: the recorded workspace, if its ARN is the recorded one
/// and it still carries our tag, deleted and waited for until gone.
pub async fn take_down_workspace(run: &mut impl Run, r: &Resource) -> Result<Verdict> {
    let _: WorkspaceDetails = crate::verdict!(ledger::details(r));
    let region = r
        .region
        .as_deref()
        .or_else(|| r.arn.as_deref().and_then(arn_region));
    let account = r.arn.as_deref().and_then(arn_account);
    let workspaces = Workspaces::new(&run.config(region).await?);
    let what = format!("workspace {}", r.id);
    let Some(found) = workspaces.find(&r.id).await? else {
        return Ok(ledger::confirm_absent(run, &what, account, region, true).await);
    };
    if let Some(arn) = r.arn.as_deref().filter(|a| *a != found.arn()) {
        return Ok(Verdict::Skipped(format!(
            "its ARN is {}, not the recorded {arn}",
            found.arn()
        )));
    }
    let tags = found.tags().cloned().unwrap_or_default();
    if !tagged_ours(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        return Ok(Verdict::Skipped(ledger::NOT_TAGGED.into()));
    }
    if run.dry_run() {
        return Ok(Verdict::WouldDelete(format!(
            "workspace is {}; deleted, then waited for until gone",
            status_of(&found)
        )));
    }
    match workspaces
        .delete_and_wait(&r.id, run.timeout(), run.progress())
        .await?
    {
        Deleted::Now => Ok(Verdict::Deleted),
        Deleted::AlreadyGone => Ok(ledger::confirm_absent(run, &what, account, region, true).await),
    }
}

// ---- What these calls need (preflight) --------------------------------------------------------

/// The IAM action of every AMP workspace call this module makes (SDK method → action; the
/// waiters describe). `crate::preflight` builds policies and checks from the builders below;
/// a unit test finds every SDK call of this file here.
pub const CALLS: &[(&str, &str)] = &[
    ("create_workspace", "aps:CreateWorkspace"),
    ("delete_workspace", "aps:DeleteWorkspace"),
    ("describe_workspace", "aps:DescribeWorkspace"),
    ("list_workspaces", "aps:ListWorkspaces"),
    ("wait_until_workspace_active", "aps:DescribeWorkspace"),
    ("wait_until_workspace_deleted", "aps:DescribeWorkspace"),
];

/// AMP's default quota of workspaces per region (Service Quotas, "Workspaces per region").
pub const DEFAULT_WORKSPACE_QUOTA: usize = 25;

/// A workspace's ARN, or every workspace's (`workspace/*`) when the id is not known yet.
pub fn workspace_arn_in(scope: &Scope, id: Option<&str>) -> String {
    scope.arn("aps", &format!("workspace/{}", id.unwrap_or("*")))
}

/// What `ensure` needs: find by alias, else create (tagged) and wait until ACTIVE.
pub fn needs_to_ensure(scope: &Scope, step: &str) -> Vec<Need> {
    let mut needs = vec![Need::new(
        "aps:ListWorkspaces",
        "*",
        format!("{step}: find the workspace by alias"),
    )];
    needs.extend(needs_to_create(scope, step));
    needs
}

/// What a create (tagged, then described until ACTIVE) needs.
pub fn needs_to_create(scope: &Scope, step: &str) -> Vec<Need> {
    let any = workspace_arn_in(scope, None);
    vec![
        Need::new(
            "aps:CreateWorkspace",
            &any,
            format!("{step}: create the workspace"),
        ),
        Need::new(
            "aps:TagResource",
            &any,
            format!("{step}: tag the workspace managed-by=ampkit"),
        ),
        Need::new(
            "aps:DescribeWorkspace",
            &any,
            format!("{step}: wait until the workspace is ACTIVE"),
        ),
    ]
}

/// What a list needs (ListWorkspaces names no resource).
pub fn needs_to_list(step: &str) -> Vec<Need> {
    vec![Need::new(
        "aps:ListWorkspaces",
        "*",
        format!("{step}: list the workspaces"),
    )]
}

/// What describing (or waiting for) a workspace needs.
pub fn needs_to_describe(workspace_arn: &str, step: &str) -> Vec<Need> {
    vec![Need::new(
        "aps:DescribeWorkspace",
        workspace_arn,
        format!("{step}: describe the workspace"),
    )]
}

/// What deleting a workspace needs (described first, so that "not there" is exit 3).
pub fn needs_to_delete(workspace_arn: &str, step: &str) -> Vec<Need> {
    vec![
        Need::new(
            "aps:DescribeWorkspace",
            workspace_arn,
            format!("{step}: describe the workspace"),
        ),
        Need::new(
            "aps:DeleteWorkspace",
            workspace_arn,
            format!("{step}: delete the workspace"),
        ),
    ]
}

/// The workspace's data plane, which `http::SignedClient` calls (not the SDK): the IAM
/// action of each Prometheus API path AMP serves.
pub const DATA_PLANE: &[(&str, &str)] = &[
    ("api/v1/remote_write", "aps:RemoteWrite"),
    ("api/v1/query", "aps:QueryMetrics"),
    ("api/v1/query_range", "aps:QueryMetrics"),
    ("api/v1/series", "aps:GetSeries"),
    ("api/v1/labels", "aps:GetLabels"),
    ("api/v1/label/<name>/values", "aps:GetLabels"),
    ("api/v1/metadata", "aps:GetMetricMetadata"),
];

/// What querying a workspace's data plane at `path` (a [`DATA_PLANE`] path) needs.
pub fn needs_to_query(workspace_arn: &str, path: &str, step: &str) -> Vec<Need> {
    DATA_PLANE
        .iter()
        .filter(|(p, _)| *p == path)
        .map(|(_, action)| Need::new(action, workspace_arn, format!("{step}: {path}")))
        .collect()
}

/// What teardown needs for an `amp-workspace` entry (`take_down_workspace`).
pub fn needs_to_take_down(scope: &Scope, r: &Resource) -> Vec<Need> {
    let arn = r
        .arn
        .clone()
        .unwrap_or_else(|| workspace_arn_in(scope, Some(&r.id)));
    needs_to_delete(&arn, &format!("teardown: delete amp-workspace {}", r.id))
}

impl Workspaces {
    /// How many workspaces the region holds (not counting those being deleted): what AMP's
    /// per-region quota counts.
    pub async fn count(&self) -> Result<usize> {
        Ok(self
            .list(None)
            .await?
            .iter()
            .filter(|w| w.status != "DELETING")
            .count())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_workspace_call_has_its_action_declared() {
        let scope = Scope::new("eu-west-1", "1");
        let mut declared = needs_to_ensure(&scope, "t");
        declared.extend(needs_to_take_down(
            &scope,
            &Resource::new(crate::doc::ResourceKind::AmpWorkspace, "ws-1", "t"),
        ));
        declared.extend(needs_to_list("t"));
        crate::preflight::assert_calls_declared(include_str!("mod.rs"), CALLS, &declared);
        assert_eq!(
            needs_to_query("arn:w", "api/v1/query_range", "t")[0].action,
            "aps:QueryMetrics"
        );
    }

    #[test]
    fn workspace_endpoints_follow_the_region_or_the_configured_endpoint() {
        assert_eq!(
            workspace_endpoint("ws-1", "eu-west-1", None),
            "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1/"
        );
        assert_eq!(
            workspace_endpoint("ws-1", "eu-west-1", Some(" http://127.0.0.1:18501/ ")),
            "http://127.0.0.1:18501/workspaces/ws-1/"
        );
    }

    #[test]
    fn a_partial_section_reads_and_empty_fields_are_absent() {
        let doc =
            StateDoc::parse(r#"{"workspace":{"remoteWriteUrl":"https://x/api/v1/remote_write"}}"#)
                .unwrap();
        let ws = WorkspaceSection::from_doc(&doc).unwrap().unwrap();
        assert_eq!(
            WorkspaceSection::get(&ws.remote_write_url),
            Some("https://x/api/v1/remote_write")
        );
        assert_eq!(WorkspaceSection::get(&ws.arn), None);
        assert!(
            WorkspaceSection::from_doc(&StateDoc::new())
                .unwrap()
                .is_none()
        );
        let bad = StateDoc::parse(r#"{"workspace":{"arn":7}}"#).unwrap();
        assert_eq!(WorkspaceSection::from_doc(&bad).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn a_full_section_round_trips_with_the_keys_readers_use() {
        let ws = WorkspaceSection {
            workspace_id: "ws-1".into(),
            alias: Some("a".into()),
            arn: "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1".into(),
            status: "ACTIVE".into(),
            region: "eu-west-1".into(),
            prometheus_endpoint: "http://h/workspaces/ws-1/".into(),
            remote_write_url: "http://h/workspaces/ws-1/api/v1/remote_write".into(),
            query_url: "http://h/workspaces/ws-1/api/v1/query".into(),
        };
        let value = serde_json::to_value(&ws).unwrap();
        for key in [
            "workspaceId",
            "alias",
            "arn",
            "status",
            "region",
            "prometheusEndpoint",
            "remoteWriteUrl",
            "queryUrl",
        ] {
            assert!(value.get(key).is_some(), "{key} missing from {value}");
        }
        assert_eq!(
            serde_json::from_value::<WorkspaceSection>(value).unwrap(),
            ws
        );
    }
}
