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
use aws_sdk_amp::primitives::Blob;
use aws_sdk_amp::types::{AlertManagerDefinitionDescription, RuleGroupsNamespaceDescription};

use crate::aws::sdk_error;
use crate::doc::MANAGED_BY;
use crate::error::{Error, Result};
use crate::grafana::Outcome;
use crate::poll::{self, Attempt, Pace, Progress};
use crate::sns::Removal;
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

impl Rules {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Rules {
            client: Client::new(config),
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
        let (outcome, arn) = match self.describe_namespace(ws, name).await? {
            None => {
                let out = self
                    .client
                    .create_rule_groups_namespace()
                    .workspace_id(ws)
                    .name(name)
                    .data(Blob::new(yaml.as_bytes()))
                    .tags(MANAGED_BY.0, MANAGED_BY.1)
                    .send()
                    .await
                    .map_err(|e| sdk_error(e, format!("creating {what} in workspace {ws}")))?;
                (Outcome::Created, out.arn().to_owned())
            }
            Some((seen, arn)) if seen.data == yaml.as_bytes() && seen.status == ACTIVE => {
                return Ok((Outcome::Unchanged, arn));
            }
            Some((_, arn)) => {
                self.client
                    .put_rule_groups_namespace()
                    .workspace_id(ws)
                    .name(name)
                    .data(Blob::new(yaml.as_bytes()))
                    .send()
                    .await
                    .map_err(|e| sdk_error(e, format!("updating {what} in workspace {ws}")))?;
                (Outcome::Updated, arn)
            }
        };
        Ok((outcome, arn))
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
        let outcome = match self.describe_definition(ws).await? {
            None => {
                let yaml = render(None)?;
                self.client
                    .create_alert_manager_definition()
                    .workspace_id(ws)
                    .data(Blob::new(yaml.as_bytes()))
                    .send()
                    .await
                    .map_err(|e| sdk_error(e, format!("creating {what}")))?;
                Outcome::Created
            }
            Some(seen) => {
                let existing = String::from_utf8_lossy(&seen.data).into_owned();
                let yaml = render(Some(&existing))?;
                if yaml == existing && seen.status == ACTIVE {
                    return Ok(Outcome::Unchanged);
                }
                self.client
                    .put_alert_manager_definition()
                    .workspace_id(ws)
                    .data(Blob::new(yaml.as_bytes()))
                    .send()
                    .await
                    .map_err(|e| sdk_error(e, format!("updating {what}")))?;
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
        match self
            .client
            .delete_rule_groups_namespace()
            .workspace_id(ws)
            .name(name)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(Removal::Absent);
            }
            Err(e) => {
                return Err(sdk_error(
                    e,
                    format!("deleting rule groups namespace {name} of workspace {ws}"),
                ));
            }
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
        match self
            .client
            .delete_alert_manager_definition()
            .workspace_id(ws)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(Removal::Absent);
            }
            Err(e) => {
                return Err(sdk_error(
                    e,
                    format!("deleting the alert manager definition of workspace {ws}"),
                ));
            }
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
