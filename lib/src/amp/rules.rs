//! A workspace's rule groups namespaces and its alert manager definition: ensured (created,
//! or updated in place when the content differs), waited for until AMP says ACTIVE, and
//! deleted with "already gone" as success.
//!
//! sns-alert ensures them; teardown deletes them with [`Rules::delete_namespace`] and
//! [`Rules::delete_alert_manager_definition`]. AMP answers Create/Put with 202 and works
//! asynchronously (CREATING, UPDATING, DELETING), so every change is followed by a bounded
//! poll, and a *_FAILED status is reported with AMP's own reason.

use std::time::Duration;

use aws_sdk_amp::Client;
use aws_sdk_amp::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_amp::primitives::Blob;
use aws_sdk_amp::types::{AlertManagerDefinitionDescription, RuleGroupsNamespaceDescription};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use serde::{Deserialize, Serialize};

use crate::amp::alerting;
use crate::aws::sdk_error;
use crate::doc::{MANAGED_BY, Resource, tagged_ours};
use crate::error::{Error, Result};
use crate::grafana::Outcome;
use crate::ledger::{self, Removal, Run, Verdict};
use crate::poll::{self, Attempt, Pace, Progress};
use crate::preflight::{Need, Scope};
use crate::sts::{arn_account, arn_region};
use crate::timespec::format_duration;

/// The rules and alert manager definition of the workspaces of one account and region.
#[derive(Debug, Clone)]
pub struct Rules {
    client: Client,
}

/// What a describe saw: the status code, AMP's reason for a failure, and the stored data.
struct Seen {
    status: String,
    reason: Option<String>,
    data: Vec<u8>,
}

const ACTIVE: &str = "ACTIVE";

fn pace(timeout: Duration) -> Pace {
    Pace::doubling(Duration::from_millis(250), Duration::from_secs(5), timeout)
}

/// How long a change waits for an earlier one to settle when its caller gave no timeout
/// (AMP applies rules and definitions in seconds to a few minutes).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Whether an SDK error is AMP's 409 ConflictException.
fn is_conflict<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    e.as_service_error()
        .is_some_and(|s| s.code() == Some("ConflictException"))
}

/// Send a change, again while AMP answers 409 ConflictException: AMP refuses a change to a
/// namespace or definition while an earlier one is being applied (CREATING, UPDATING,
/// DELETING), and the way on is to wait and try again. Bounded by `timeout`; any other error
/// ends it.
async fn retrying_conflicts<T, E, F, Fut>(
    what: &str,
    timeout: Duration,
    progress: &Progress,
    send: F,
) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = std::result::Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (out, _) = poll::until(
        &format!("{what} to take the change"),
        pace(timeout),
        progress,
        || async {
            match send().await {
                Ok(out) => Ok(Attempt::Done(out)),
                Err(e) if is_conflict(&e) => Ok(Attempt::Pending(
                    "ConflictException (an earlier change is being applied)".to_owned(),
                )),
                Err(e) => Err(sdk_error(e, what)),
            }
        },
        |t| {
            Error::remote(format!(
                "{what}: AMP still refuses the change after {} ({})",
                format_duration(timeout),
                t.last
            ))
            .with_hint("an earlier change is still being applied; run again later")
        },
    )
    .await?;
    Ok(out)
}

/// [`retrying_conflicts`] for a delete: `None` when AMP answers that the object is gone
/// (`gone`), which is an answer here, not an error to retry or report.
async fn deleting_through_conflicts<T, E, F, Fut>(
    what: &str,
    timeout: Duration,
    progress: &Progress,
    send: F,
    gone: impl Fn(&E) -> bool,
) -> Result<Option<T>>
where
    F: Fn() -> Fut,
    Fut: Future<Output = std::result::Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    retrying_conflicts(what, timeout, progress, || async {
        match send().await {
            Err(e) if e.as_service_error().is_some_and(&gone) => Ok(None),
            other => other.map(Some),
        }
    })
    .await
}

impl Rules {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Rules {
            client: crate::aws_client!(aws_sdk_amp, config),
        }
    }

    /// The namespace as AMP describes it (status, data, tags); `None` when it does not exist.
    pub async fn find_namespace(
        &self,
        ws: &str,
        name: &str,
    ) -> Result<Option<RuleGroupsNamespaceDescription>> {
        match self
            .client
            .describe_rule_groups_namespace()
            .workspace_id(ws)
            .name(name)
            .send()
            .await
        {
            Ok(out) => Ok(out.rule_groups_namespace),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error(
                e,
                format!("describing rule groups namespace {name} of workspace {ws}"),
            )),
        }
    }

    /// The workspace's alert manager definition as AMP describes it; `None` when it has none.
    pub async fn find_definition(
        &self,
        ws: &str,
    ) -> Result<Option<AlertManagerDefinitionDescription>> {
        match self
            .client
            .describe_alert_manager_definition()
            .workspace_id(ws)
            .send()
            .await
        {
            Ok(out) => Ok(out.alert_manager_definition),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error(
                e,
                format!("describing the alert manager definition of workspace {ws}"),
            )),
        }
    }

    async fn describe_namespace(&self, ws: &str, name: &str) -> Result<Option<(Seen, String)>> {
        Ok(self.find_namespace(ws, name).await?.map(|ns| {
            (
                Seen {
                    status: ns
                        .status()
                        .map(|s| s.status_code().as_str().to_owned())
                        .unwrap_or_default(),
                    reason: ns
                        .status()
                        .and_then(|s| s.status_reason())
                        .map(str::to_owned),
                    data: ns.data().as_ref().to_vec(),
                },
                ns.arn().to_owned(),
            )
        }))
    }

    async fn describe_definition(&self, ws: &str) -> Result<Option<Seen>> {
        Ok(self.find_definition(ws).await?.map(|d| Seen {
            status: d
                .status()
                .map(|s| s.status_code().as_str().to_owned())
                .unwrap_or_default(),
            reason: d
                .status()
                .and_then(|s| s.status_reason())
                .map(str::to_owned),
            data: d.data().as_ref().to_vec(),
        }))
    }

    /// Create the namespace `name` with `yaml` (tagged `managed-by=ampkit`), or put `yaml`
    /// when it differs (then [`Self::wait_namespace_active`]). Returns what was done and the
    /// namespace ARN.
    pub async fn ensure_namespace(
        &self,
        ws: &str,
        name: &str,
        yaml: &str,
    ) -> Result<(Outcome, String)> {
        let what = format!("rule groups namespace {name}");
        let progress = Progress::new("ampkit", false);
        // A namespace still applying an earlier change is waited for first: AMP would refuse
        // the put (409), and the same data may be what it is applying.
        let seen = self
            .settle(&what, &progress, || async {
                self.describe_namespace(ws, name).await
            })
            .await?;
        let (outcome, arn) = match seen {
            None => {
                let out = retrying_conflicts(
                    &format!("creating {what} in workspace {ws}"),
                    SETTLE_TIMEOUT,
                    &progress,
                    || {
                        self.client
                            .create_rule_groups_namespace()
                            .workspace_id(ws)
                            .name(name)
                            .data(Blob::new(yaml.as_bytes()))
                            .tags(MANAGED_BY.0, MANAGED_BY.1)
                            .send()
                    },
                )
                .await?;
                (Outcome::Created, out.arn().to_owned())
            }
            Some((seen, arn)) if seen.data == yaml.as_bytes() && seen.status == ACTIVE => {
                return Ok((Outcome::Unchanged, arn));
            }
            Some((_, arn)) => {
                retrying_conflicts(
                    &format!("updating {what} in workspace {ws}"),
                    SETTLE_TIMEOUT,
                    &progress,
                    || {
                        self.client
                            .put_rule_groups_namespace()
                            .workspace_id(ws)
                            .name(name)
                            .data(Blob::new(yaml.as_bytes()))
                            .send()
                    },
                )
                .await?;
                (Outcome::Updated, arn)
            }
        };
        Ok((outcome, arn))
    }

    /// What `describe` sees once it is no longer CREATING, UPDATING or DELETING (a failed
    /// status counts as settled: a put may fix it), within [`SETTLE_TIMEOUT`].
    async fn settle<T, F, Fut>(
        &self,
        what: &str,
        progress: &Progress,
        describe: F,
    ) -> Result<Option<(Seen, T)>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Option<(Seen, T)>>>,
    {
        let (seen, _) = poll::until(
            &format!("{what} to settle"),
            pace(SETTLE_TIMEOUT),
            progress,
            || async {
                Ok(match describe().await? {
                    Some((seen, _)) if TRANSITIONAL.contains(&seen.status.as_str()) => {
                        Attempt::Pending(seen.status)
                    }
                    other => Attempt::Done(other),
                })
            },
            |t| {
                Error::remote(format!(
                    "{what} is still {} after {}",
                    t.last,
                    format_duration(SETTLE_TIMEOUT)
                ))
                .with_hint("AMP is slow to apply an earlier change; run again later")
            },
        )
        .await?;
        Ok(seen)
    }

    /// Wait until the namespace is ACTIVE (separate from the change, so that the caller can
    /// ledger a created namespace before a wait that may fail).
    pub async fn wait_namespace_active(
        &self,
        ws: &str,
        name: &str,
        timeout: Duration,
        progress: &Progress,
    ) -> Result<()> {
        let what = format!("rule groups namespace {name}");
        self.wait_active(&what, timeout, progress, || async {
            Ok(self.describe_namespace(ws, name).await?.map(|(s, _)| s))
        })
        .await
    }

    /// Create the workspace's alert manager definition, or update the one there (then
    /// [`Self::wait_definition_active`]). `render` makes the wanted text from what is there
    /// (`None`: nothing yet), so a caller can merge into someone else's definition rather
    /// than replace it; the same text as stored is [`Outcome::Unchanged`].
    pub async fn ensure_alert_manager_definition(
        &self,
        ws: &str,
        render: impl FnOnce(Option<&str>) -> Result<String>,
    ) -> Result<Outcome> {
        let what = format!("the alert manager definition of workspace {ws}");
        let progress = Progress::new("ampkit", false);
        // As for namespaces: one still applying an earlier change is waited for first.
        let seen = self
            .settle(&what, &progress, || async {
                Ok(self.describe_definition(ws).await?.map(|seen| (seen, ())))
            })
            .await?;
        let outcome = match seen {
            None => {
                let yaml = render(None)?;
                retrying_conflicts(
                    &format!("creating {what}"),
                    SETTLE_TIMEOUT,
                    &progress,
                    || {
                        self.client
                            .create_alert_manager_definition()
                            .workspace_id(ws)
                            .data(Blob::new(yaml.as_bytes()))
                            .send()
                    },
                )
                .await?;
                Outcome::Created
            }
            Some((seen, ())) => {
                let existing = String::from_utf8_lossy(&seen.data).into_owned();
                let yaml = render(Some(&existing))?;
                if yaml == existing && seen.status == ACTIVE {
                    return Ok(Outcome::Unchanged);
                }
                retrying_conflicts(
                    &format!("updating {what}"),
                    SETTLE_TIMEOUT,
                    &progress,
                    || {
                        self.client
                            .put_alert_manager_definition()
                            .workspace_id(ws)
                            .data(Blob::new(yaml.as_bytes()))
                            .send()
                    },
                )
                .await?;
                Outcome::Updated
            }
        };
        Ok(outcome)
    }

    /// Wait until the alert manager definition is ACTIVE.
    pub async fn wait_definition_active(
        &self,
        ws: &str,
        timeout: Duration,
        progress: &Progress,
    ) -> Result<()> {
        let what = format!("the alert manager definition of workspace {ws}");
        self.wait_active(&what, timeout, progress, || self.describe_definition(ws))
            .await
    }

    /// Poll `describe` until ACTIVE; CREATION_FAILED / UPDATE_FAILED end it with AMP's reason.
    async fn wait_active<F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        progress: &Progress,
        describe: F,
    ) -> Result<()>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Option<Seen>>>,
    {
        poll::until(
            &format!("{what} to be ACTIVE"),
            pace(timeout),
            progress,
            || async {
                match describe().await? {
                    None => Err(Error::remote(format!(
                        "{what} disappeared while waiting for it"
                    ))),
                    Some(seen) if seen.status == ACTIVE => Ok(Attempt::Done(())),
                    Some(seen) if seen.status.ends_with("_FAILED") => Err(Error::input(format!(
                        "AMP refused {what} ({}): {}",
                        seen.status,
                        seen.reason.as_deref().unwrap_or("no reason given")
                    ))
                    .with_hint("fix the rules or the definition and run again")),
                    Some(seen) => Ok(Attempt::Pending(seen.status)),
                }
            },
            |t| {
                Error::remote(format!(
                    "{what} is still {} after {}",
                    t.last,
                    format_duration(timeout)
                ))
                .with_hint("AMP is slow to apply it; run again later (the run resumes)")
            },
        )
        .await
        .map(|_| ())
    }

    /// Delete the namespace and wait until it is gone. A namespace or workspace that is gone
    /// is [`Removal::Absent`].
    pub async fn delete_namespace(
        &self,
        ws: &str,
        name: &str,
        timeout: Duration,
        progress: &Progress,
    ) -> Result<Removal> {
        let what = format!("deleting rule groups namespace {name} of workspace {ws}");
        let deleted = deleting_through_conflicts(
            &what,
            timeout,
            progress,
            || {
                self.client
                    .delete_rule_groups_namespace()
                    .workspace_id(ws)
                    .name(name)
                    .send()
            },
            |e| e.is_resource_not_found_exception(),
        )
        .await?;
        if deleted.is_none() {
            return Ok(Removal::Absent);
        }
        let what = format!("rule groups namespace {name}");
        self.wait_gone(&what, timeout, progress, || async {
            Ok(self.describe_namespace(ws, name).await?.map(|(s, _)| s))
        })
        .await?;
        Ok(Removal::Deleted)
    }

    /// Delete the workspace's alert manager definition and wait until it is gone.
    pub async fn delete_alert_manager_definition(
        &self,
        ws: &str,
        timeout: Duration,
        progress: &Progress,
    ) -> Result<Removal> {
        let what = format!("deleting the alert manager definition of workspace {ws}");
        let deleted = deleting_through_conflicts(
            &what,
            timeout,
            progress,
            || {
                self.client
                    .delete_alert_manager_definition()
                    .workspace_id(ws)
                    .send()
            },
            |e| e.is_resource_not_found_exception(),
        )
        .await?;
        if deleted.is_none() {
            return Ok(Removal::Absent);
        }
        let what = format!("the alert manager definition of workspace {ws}");
        self.wait_gone(&what, timeout, progress, || self.describe_definition(ws))
            .await?;
        Ok(Removal::Deleted)
    }

    async fn wait_gone<F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        progress: &Progress,
        describe: F,
    ) -> Result<()>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Option<Seen>>>,
    {
        poll::until(
            &format!("{what} to be deleted"),
            pace(timeout),
            progress,
            || async {
                Ok(match describe().await? {
                    None => Attempt::Done(()),
                    Some(seen) => Attempt::Pending(seen.status),
                })
            },
            |t| {
                Error::remote(format!(
                    "{what} is still {} after {}",
                    t.last,
                    format_duration(timeout)
                ))
                .with_hint("run the delete again later")
            },
        )
        .await
        .map(|_| ())
    }
}

// ---- The ledger's entries of a workspace's alerting, and their deletes (teardown) ----------

/// A rule groups namespace's ledger details.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceDetails {
    pub workspace_id: String,
}

/// An alert manager definition's ledger details. A definition that was someone else's when
/// sns-alert merged into it is `merged`, with what we put in (our receiver and templates):
/// teardown takes exactly that back out and leaves the rest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DefinitionDetails {
    pub workspace_id: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub merged: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<String>,
}

/// Statuses in which AMP refuses a delete (409) of a namespace or definition, or in which one
/// is on its way out already (an earlier, interrupted run).
const TRANSITIONAL: [&str; 3] = ["CREATING", "UPDATING", "DELETING"];

/// teardown's `amp-rule-groups-namespace` entry: deleted (once settled) if it carries our tag.
pub async fn take_down_namespace(run: &mut impl Run, r: &Resource) -> Result<Verdict> {
    let details: NamespaceDetails = crate::verdict!(ledger::details(r));
    let workspace = crate::verdict!(ledger::required(&details.workspace_id, "workspaceId"));
    let region = r
        .region
        .as_deref()
        .or_else(|| r.arn.as_deref().and_then(arn_region));
    let account = r.arn.as_deref().and_then(arn_account);
    let rules = Rules::new(&run.config(region).await?);
    let name = r.id.as_str();
    let what = format!("rule groups namespace {name} of workspace {workspace}");
    let Some(found) = rules.find_namespace(workspace, name).await? else {
        return Ok(ledger::confirm_absent(run, &what, account, region, true).await);
    };
    let tags = found.tags().cloned().unwrap_or_default();
    if !tagged_ours(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        return Ok(Verdict::Skipped(ledger::NOT_TAGGED.into()));
    }
    if run.dry_run() {
        return Ok(Verdict::WouldDelete(
            "deleted, then waited for until gone".into(),
        ));
    }
    let status = settled(run, &what, || async {
        Ok(rules
            .describe_namespace(workspace, name)
            .await
            .ok()
            .flatten()
            .map(|(seen, _)| seen.status))
    })
    .await;
    if let Some(verdict) = unsettled(status, &what, run.timeout()) {
        return Ok(verdict);
    }
    let removal = rules
        .delete_namespace(workspace, name, run.timeout(), run.progress())
        .await?;
    Ok(ledger::removed(run, removal, &what, account, region).await)
}

/// teardown's `amp-alert-manager-definition` entry: ours is deleted (once settled) while it
/// still routes to ampkit's receiver; a merged one keeps everything but what we put in.
pub async fn take_down_definition(run: &mut impl Run, r: &Resource) -> Result<Verdict> {
    let details: DefinitionDetails = crate::verdict!(ledger::details(r));
    let workspace = crate::verdict!(ledger::required(&details.workspace_id, "workspaceId"));
    let workspace_arn = run.seen().workspace_arns.get(workspace).cloned();
    let region = r.region.clone().or_else(|| {
        workspace_arn
            .as_deref()
            .and_then(arn_region)
            .map(str::to_owned)
    });
    let account = workspace_arn.as_deref().and_then(arn_account);
    let rules = Rules::new(&run.config(region.as_deref()).await?);
    let what = format!("the alert manager definition of workspace {workspace}");
    let Some(found) = rules.find_definition(workspace).await? else {
        return Ok(ledger::confirm_absent(run, &what, account, region.as_deref(), true).await);
    };
    let current = String::from_utf8_lossy(found.data().as_ref()).into_owned();
    if details.merged {
        return take_merged_out(run, &details, &rules, &current).await;
    }
    // Untaggable, one per workspace: ours while it still routes to ampkit's receiver.
    if !current.contains("ampkit") {
        return Ok(Verdict::Skipped(
            "it no longer names ampkit's receiver: someone replaced it".into(),
        ));
    }
    if run.dry_run() {
        return Ok(Verdict::WouldDelete(
            "deleted, then waited for until gone".into(),
        ));
    }
    let status = settled(run, &what, || async {
        Ok(rules
            .describe_definition(workspace)
            .await
            .ok()
            .flatten()
            .map(|seen| seen.status))
    })
    .await;
    if let Some(verdict) = unsettled(status, &what, run.timeout()) {
        return Ok(verdict);
    }
    let removal = rules
        .delete_alert_manager_definition(workspace, run.timeout(), run.progress())
        .await?;
    Ok(ledger::removed(run, removal, &what, account, region.as_deref()).await)
}

/// A definition that was someone else's when sns-alert merged into it: it stays, and only
/// what the ledger says we put in (our receiver, the routes to it, our templates) is taken
/// back out and the rest put back as it was.
async fn take_merged_out(
    run: &mut impl Run,
    details: &DefinitionDetails,
    rules: &Rules,
    current: &str,
) -> Result<Verdict> {
    let workspace = details.workspace_id.as_str();
    let receiver = crate::verdict!(ledger::required(
        details.receiver.as_deref().unwrap_or_default(),
        "receiver"
    ));
    let remaining = match alerting::remove_merged(current, receiver, &details.templates) {
        Ok(Some(remaining)) => remaining,
        Ok(None) => {
            return Ok(Verdict::Absent(format!(
                "the definition of workspace {workspace} no longer holds our receiver `{receiver}`"
            )));
        }
        Err(e) => return Ok(Verdict::Skipped(format!("not taken out of it: {e}"))),
    };
    if run.dry_run() {
        return Ok(Verdict::WouldDelete(format!(
            "our receiver `{receiver}`, its routes and templates taken out; the rest of the definition kept"
        )));
    }
    rules
        .ensure_alert_manager_definition(workspace, |_| Ok(remaining.clone()))
        .await?;
    rules
        .wait_definition_active(workspace, run.timeout(), run.progress())
        .await?;
    Ok(Verdict::Deleted)
}

/// Wait, bounded by the run's timeout and with progress, while the object is in a
/// transitional status; the last status seen (`None` when it could not be read, e.g. gone).
async fn settled<F, Fut>(run: &impl Run, what: &str, status: F) -> Option<String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Option<String>>>,
{
    let waited = poll::until(
        &format!("{what} to settle"),
        pace(run.timeout()),
        run.progress(),
        || async {
            Ok(match status().await.ok().flatten() {
                Some(s) if TRANSITIONAL.contains(&s.as_str()) => Attempt::Pending(s),
                other => Attempt::Done(other),
            })
        },
        // The time-out is not an error here: the caller judges the last status seen.
        |t| Error::remote(t.last),
    )
    .await;
    match waited {
        Ok((now, _)) => now,
        Err(still) => Some(still.message),
    }
}

/// The verdict when waiting did not help: still transitional after the timeout. A DELETING
/// object that is gone by now falls through to the delete, whose "not found" is absent.
fn unsettled(status: Option<String>, what: &str, timeout: Duration) -> Option<Verdict> {
    status
        .filter(|s| TRANSITIONAL.contains(&s.as_str()))
        .map(|s| {
            Verdict::Failed(format!(
                "{what} is still {s} after {}s: kept, run teardown again later",
                timeout.as_secs()
            ))
        })
}

// ---- What these calls need (preflight) --------------------------------------------------------

/// The IAM action of every AMP rules and alert-manager call this module makes (SDK method →
/// action); a unit test finds every SDK call of this file here.
pub const CALLS: &[(&str, &str)] = &[
    (
        "create_alert_manager_definition",
        "aps:CreateAlertManagerDefinition",
    ),
    (
        "create_rule_groups_namespace",
        "aps:CreateRuleGroupsNamespace",
    ),
    (
        "delete_alert_manager_definition",
        "aps:DeleteAlertManagerDefinition",
    ),
    (
        "delete_rule_groups_namespace",
        "aps:DeleteRuleGroupsNamespace",
    ),
    (
        "describe_alert_manager_definition",
        "aps:DescribeAlertManagerDefinition",
    ),
    (
        "describe_rule_groups_namespace",
        "aps:DescribeRuleGroupsNamespace",
    ),
    (
        "put_alert_manager_definition",
        "aps:PutAlertManagerDefinition",
    ),
    ("put_rule_groups_namespace", "aps:PutRuleGroupsNamespace"),
];

/// A rule groups namespace's ARN (`*` for what is not known yet).
pub fn namespace_arn_in(scope: &Scope, workspace_id: Option<&str>, name: &str) -> String {
    scope.arn(
        "aps",
        &format!("rulegroupsnamespace/{}/{name}", workspace_id.unwrap_or("*")),
    )
}

/// What [`Rules::ensure_namespace`] and [`Rules::ensure_alert_manager_definition`] need:
/// the namespace (found, created tagged, or put) and the workspace's definition.
pub fn needs_for_alerting(
    scope: &Scope,
    workspace_id: Option<&str>,
    namespace: &str,
    step: &str,
) -> Vec<Need> {
    let ns = namespace_arn_in(scope, workspace_id, namespace);
    let ws = crate::amp::workspace_arn_in(scope, workspace_id);
    vec![
        Need::new(
            "aps:DescribeRuleGroupsNamespace",
            &ns,
            format!("{step}: find the rule groups namespace"),
        ),
        Need::new(
            "aps:CreateRuleGroupsNamespace",
            &ns,
            format!("{step}: create the rule groups namespace"),
        ),
        Need::new(
            "aps:TagResource",
            &ns,
            format!("{step}: tag the rule groups namespace managed-by=ampkit"),
        ),
        Need::new(
            "aps:PutRuleGroupsNamespace",
            &ns,
            format!("{step}: update the rules"),
        ),
        Need::new(
            "aps:DescribeAlertManagerDefinition",
            &ws,
            format!("{step}: read the alert manager definition"),
        ),
        Need::new(
            "aps:CreateAlertManagerDefinition",
            &ws,
            format!("{step}: create the alert manager definition"),
        ),
        Need::new(
            "aps:PutAlertManagerDefinition",
            &ws,
            format!("{step}: merge the SNS receiver into the definition"),
        ),
    ]
}

/// What teardown needs for a namespace or definition entry (`take_down_*` below).
pub fn needs_to_take_down(scope: &Scope, r: &Resource) -> Vec<Need> {
    let step = format!("teardown: delete {} {}", r.kind.as_str(), r.id);
    match &r.kind {
        crate::doc::ResourceKind::AmpRuleGroupsNamespace => {
            let arn = r
                .arn
                .clone()
                .unwrap_or_else(|| namespace_arn_in(scope, None, "*"));
            vec![
                Need::new("aps:DescribeRuleGroupsNamespace", &arn, &step),
                Need::new("aps:DeleteRuleGroupsNamespace", &arn, &step),
            ]
        }
        crate::doc::ResourceKind::AmpAlertManagerDefinition => {
            let arn = crate::amp::workspace_arn_in(scope, Some(&r.id));
            vec![
                Need::new("aps:DescribeAlertManagerDefinition", &arn, &step),
                Need::new("aps:PutAlertManagerDefinition", &arn, &step),
                Need::new("aps:DeleteAlertManagerDefinition", &arn, &step),
            ]
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rules_call_has_its_action_declared() {
        let scope = Scope::new("eu-west-1", "1");
        let mut declared = needs_for_alerting(&scope, Some("ws-1"), "ns", "t");
        for kind in [
            crate::doc::ResourceKind::AmpRuleGroupsNamespace,
            crate::doc::ResourceKind::AmpAlertManagerDefinition,
        ] {
            declared.extend(needs_to_take_down(
                &scope,
                &Resource::new(kind, "ws-1", "t"),
            ));
        }
        crate::preflight::assert_calls_declared(include_str!("rules.rs"), CALLS, &declared);
    }
}
