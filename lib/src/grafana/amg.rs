//! Amazon Managed Grafana: instead of a token someone made by hand, a service account made for
//! this run (`CreateWorkspaceServiceAccount`) with a short-lived token, deleted when the run
//! ends. Nothing long-lived is left behind; only a delete that fails is handed to the ledger
//! so that teardown can finish it.

use aws_sdk_grafana::Client;
use aws_sdk_grafana::types::Role;

use serde::{Deserialize, Serialize};

use crate::aws::{AwsArgs, sdk_error};
use crate::doc::{Resource, ResourceKind};
use crate::error::{Error, Result};
use crate::ledger::{self, Run, Verdict};
use crate::preflight::{Need, Scope};

use super::{Grafana, GrafanaArgs, Token};

/// A token lives this long: enough for one run of a tool, useless to anyone who finds it
/// later.
pub const TOKEN_SECONDS: i32 = 900;

/// A connected Grafana, and what to clean up when the run is over.
pub struct Session {
    pub grafana: Grafana,
    /// The target is an AMG workspace (its datasources sign with the workspace's IAM role).
    pub is_amg: bool,
    service_account: Option<ServiceAccount>,
}

struct ServiceAccount {
    client: Client,
    workspace_id: String,
    id: String,
    region: String,
    tool: &'static str,
}

/// `g-` and ten lower-case hex digits, as AMG's API requires.
pub fn check_workspace_id(id: &str) -> Result<()> {
    let hex = id.strip_prefix("g-").unwrap_or_default();
    if hex.len() == 10
        && hex
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "--amg-workspace-id `{id}` is not an AMG workspace id"
        ))
        .with_hint("it looks like g-0123456789 (aws grafana list-workspaces shows them)"))
    }
}

/// The AMG workspace id and region of an AMG workspace's URL
/// (`https://g-0123456789.grafana-workspace.eu-west-1.amazonaws.com/...`, the endpoint
/// DescribeWorkspace gives), `None` for any other URL (a VPC endpoint, a Grafana of one's own).
pub fn workspace_in_url(url: &str) -> Option<(&str, &str)> {
    let host = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = host.split(['/', ':', '?']).next()?;
    let (id, rest) = host.split_once(".grafana-workspace.")?;
    let region = rest.strip_suffix(".amazonaws.com")?;
    (check_workspace_id(id).is_ok() && !region.is_empty() && !region.contains('.'))
        .then_some((id, region))
}

impl GrafanaArgs {
    /// Connect to the Grafana these flags name: `--grafana-url` with a token from the
    /// environment or a file, or `--amg-workspace-id` with a service account made for this
    /// run (its endpoint from DescribeWorkspace, unless `--grafana-url` overrides it, e.g. a
    /// VPC endpoint).
    pub async fn open(&self, aws: &AwsArgs, tool: &'static str) -> Result<Session> {
        self.open_with_record(aws, tool, None).await
    }

    /// [`Self::open`], for a tool whose document records a Grafana (`recorded`, its URL): an
    /// AMG workspace that `--grafana-url` or the document places in another region than the
    /// run's is refused, naming both, before any AMG call (AMG would answer "not found" and
    /// the run would look like one for a deleted workspace).
    pub async fn open_with_record(
        &self,
        aws: &AwsArgs,
        tool: &'static str,
        recorded: Option<&str>,
    ) -> Result<Session> {
        let Some(workspace_id) = &self.amg_workspace_id else {
            let url = self.grafana_url.clone().ok_or_else(|| {
                Error::usage("no Grafana: give --grafana-url URL or --amg-workspace-id g-...")
                    .with_hint("e.g. --grafana-url https://g-abc1234567.grafana-workspace.eu-west-1.amazonaws.com")
            })?;
            let grafana = Grafana::connect(&url, self.token()?).await?;
            return Ok(Session {
                is_amg: url.contains(".grafana-workspace."),
                grafana,
                service_account: None,
            });
        };
        check_workspace_id(workspace_id)?;
        let config = crate::aws::load(aws).await?;
        let region = crate::aws::region_of(&config);
        let named = [
            (
                self.grafana_url.as_deref(),
                "the Grafana workspace {} that --grafana-url names",
            ),
            (recorded, "the document's Grafana workspace {}"),
        ];
        for (url, what) in named {
            if let Some((id, placed)) = url.and_then(workspace_in_url)
                && id == workspace_id
            {
                crate::aws::Placed {
                    what: what.replace("{}", id),
                    noun: "Grafana workspace",
                    flag: "--amg-workspace-id",
                }
                .in_region(Some(placed), &region)?;
            }
        }
        let client = crate::aws_client!(aws_sdk_grafana, &config);
        let described = client
            .describe_workspace()
            .workspace_id(workspace_id)
            .send()
            .await
            .map_err(|e| {
                let not_found = e
                    .as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception());
                let err = sdk_error(e, format!("describing AMG workspace {workspace_id}"));
                if not_found {
                    Error::not_found(err.message).with_hint(format!(
                        "no such workspace in {region}: check --amg-workspace-id and --region"
                    ))
                } else {
                    err
                }
            })?;
        let endpoint = described
            .workspace()
            .map(|w| w.endpoint().to_owned())
            .filter(|e| !e.is_empty())
            .ok_or_else(|| {
                Error::remote(format!("AMG workspace {workspace_id} has no endpoint yet"))
                    .with_hint("wait until it is ACTIVE")
            })?;
        let url = self
            .grafana_url
            .clone()
            .unwrap_or_else(|| format!("https://{endpoint}"));
        // A name that says who made it and when, so that a leftover is recognisable.
        let name = format!(
            "ampkit-{tool}-{}",
            time::OffsetDateTime::now_utc().unix_timestamp()
        );
        let created = client
            .create_workspace_service_account()
            .workspace_id(workspace_id)
            .name(&name)
            .grafana_role(Role::Admin)
            .send()
            .await
            .map_err(|e| {
                sdk_error(
                    e,
                    format!("creating a service account in AMG workspace {workspace_id}"),
                )
            })?;
        let account = ServiceAccount {
            client: client.clone(),
            workspace_id: workspace_id.clone(),
            id: created.id().to_owned(),
            region,
            tool,
        };
        let token = client
            .create_workspace_service_account_token()
            .workspace_id(workspace_id)
            .service_account_id(&account.id)
            .name(&name)
            .seconds_to_live(TOKEN_SECONDS)
            .send()
            .await
            .map_err(|e| sdk_error(e, format!("creating a token for service account {name}")))
            .and_then(|out| {
                out.service_account_token()
                    .map(|t| Token::new(t.key()))
                    .ok_or_else(|| Error::remote("AMG answered without the token's key"))
            });
        let connected = match token {
            Ok(token) => Grafana::connect(&url, token).await,
            Err(e) => Err(e),
        };
        match connected {
            Ok(grafana) => Ok(Session {
                grafana,
                is_amg: true,
                service_account: Some(account),
            }),
            Err(e) => {
                // Nothing will use the account: it goes now, and a failed delete is said.
                if let Err(left) = account.delete().await {
                    return Err(Error::new(
                        e.kind,
                        format!(
                            "{}; and the service account could not be deleted: {}",
                            e.message, left.message
                        ),
                    ));
                }
                Err(e)
            }
        }
    }
}

impl ServiceAccount {
    async fn delete(&self) -> Result<()> {
        match self
            .client
            .delete_workspace_service_account()
            .workspace_id(&self.workspace_id)
            .service_account_id(&self.id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error(
                e,
                format!(
                    "deleting service account {} of {}",
                    self.id, self.workspace_id
                ),
            )),
        }
    }
}

impl Session {
    /// End the run: delete the service account made for it. `Some(entry)` for the ledger
    /// when that delete failed (the error is also said on stderr), `None` otherwise.
    pub async fn close(self) -> Option<Resource> {
        let account = self.service_account?;
        match account.delete().await {
            Ok(()) => None,
            Err(e) => {
                eprintln!(
                    "{}: could not delete the run's service account (teardown will): {}",
                    account.tool, e.message
                );
                Some(
                    Resource::new(
                        ResourceKind::GrafanaServiceAccount,
                        account.id.clone(),
                        account.tool,
                    )
                    .region(account.region.clone())
                    .with_details(&ServiceAccountDetails {
                        workspace_id: account.workspace_id.clone(),
                    }),
                )
            }
        }
    }
}

/// The ledger details of an AMG service account a run could not delete.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountDetails {
    pub workspace_id: String,
}

/// teardown's `grafana-service-account` entry: an AMG workspace service account that a tool
/// could not delete at the end of its run (it makes one per run). AMG has no read of a single
/// one, and its delete is "gone is done", so the plan cannot tell present from absent; the
/// delete goes to the region and workspace the entry names.
pub async fn take_down_service_account(run: &mut impl Run, r: &Resource) -> Result<Verdict> {
    let details: ServiceAccountDetails = crate::verdict!(ledger::details(r));
    let workspace = crate::verdict!(ledger::required(&details.workspace_id, "workspaceId"));
    let Some(region) = r.region.as_deref() else {
        return Ok(Verdict::Failed(
            "the entry records no region: kept, never guessed at".into(),
        ));
    };
    if run.dry_run() {
        return Ok(Verdict::WouldDelete(format!(
            "service account of AMG workspace {workspace} in {region} (and its tokens)"
        )));
    }
    let config = run.config(Some(region)).await?;
    let account = ServiceAccount {
        client: crate::aws_client!(aws_sdk_grafana, &config),
        workspace_id: workspace.to_owned(),
        id: r.id.clone(),
        region: region.to_owned(),
        tool: "teardown",
    };
    account.delete().await?;
    Ok(Verdict::Deleted)
}

// ---- What these calls need (preflight) --------------------------------------------------------

/// The IAM action of every AMG call this module makes (SDK method → action); a unit test
/// finds every SDK call of this file here.
pub const CALLS: &[(&str, &str)] = &[
    ("describe_workspace", "grafana:DescribeWorkspace"),
    (
        "create_workspace_service_account",
        "grafana:CreateWorkspaceServiceAccount",
    ),
    (
        "create_workspace_service_account_token",
        "grafana:CreateWorkspaceServiceAccountToken",
    ),
    (
        "delete_workspace_service_account",
        "grafana:DeleteWorkspaceServiceAccount",
    ),
];

/// An AMG workspace's ARN.
pub fn workspace_arn_in(scope: &Scope, id: &str) -> String {
    scope.arn("grafana", &format!("/workspaces/{id}"))
}

/// What a run's session (opened and closed by this module) needs on AMG workspace `id`.
pub fn needs_for_session(scope: &Scope, id: &str, step: &str) -> Vec<Need> {
    let arn = workspace_arn_in(scope, id);
    vec![
        Need::new(
            "grafana:DescribeWorkspace",
            &arn,
            format!("{step}: find the Grafana workspace's endpoint"),
        ),
        Need::new(
            "grafana:CreateWorkspaceServiceAccount",
            &arn,
            format!("{step}: a service account for the run"),
        ),
        Need::new(
            "grafana:CreateWorkspaceServiceAccountToken",
            &arn,
            format!("{step}: its token"),
        ),
        Need::new(
            "grafana:DeleteWorkspaceServiceAccount",
            &arn,
            format!("{step}: delete the service account at the end"),
        ),
    ]
}

/// What teardown needs for a `grafana-service-account` entry.
pub fn needs_to_take_down(scope: &Scope, r: &Resource) -> Vec<Need> {
    let workspace = r
        .details_as::<ServiceAccountDetails>()
        .map(|d| d.workspace_id)
        .unwrap_or_else(|_| "*".to_owned());
    vec![Need::new(
        "grafana:DeleteWorkspaceServiceAccount",
        workspace_arn_in(scope, &workspace),
        format!("teardown: delete grafana-service-account {}", r.id),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_amg_call_has_its_action_declared() {
        let scope = Scope::new("eu-west-1", "1");
        let declared = needs_for_session(&scope, "g-1", "t");
        crate::preflight::assert_calls_declared(include_str!("amg.rs"), CALLS, &declared);
    }

    #[test]
    fn an_amg_url_names_its_workspace_and_region() {
        assert_eq!(
            workspace_in_url("https://g-0123456789.grafana-workspace.us-east-2.amazonaws.com/d/x"),
            Some(("g-0123456789", "us-east-2"))
        );
        assert_eq!(
            workspace_in_url("g-abcdef0123.grafana-workspace.eu-west-1.amazonaws.com"),
            Some(("g-abcdef0123", "eu-west-1"))
        );
        for other in [
            "http://127.0.0.1:3000",
            "https://grafana.example.com",
            "https://vpce-1.grafana-workspace.eu-west-1.vpce.amazonaws.com",
            "https://g-0123456789.grafana-workspace.amazonaws.com",
        ] {
            assert_eq!(workspace_in_url(other), None, "{other}");
        }
    }

    #[test]
    fn workspace_ids_are_checked() {
        assert!(check_workspace_id("g-0123456789").is_ok());
        for bad in [
            "g-012345678",
            "0123456789",
            "g-0123456789a",
            "g-ABCDEF0123",
            "",
        ] {
            assert_eq!(check_workspace_id(bad).unwrap_err().exit_code(), 2, "{bad}");
        }
    }
}
