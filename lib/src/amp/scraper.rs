//! AMP's managed collector (a scraper): Prometheus run by AWS, scraping an EKS cluster from
//! inside its VPC and writing to one workspace. Nothing runs in the cluster; the cluster only
//! has to let the scraper's service-linked role read pods (see render-agent-config's
//! `scraper-rbac`).
//!
//! amp-workspace creates it here (CreateScraper with the cluster's ARN, subnets and security
//! groups, the destination workspace and the scrape configuration blob) and waits until it is
//! ACTIVE; teardown deletes it here and waits until it is gone. Like a workspace it is tagged
//! ours, and its create and delete are asynchronous (CREATING, ACTIVE, DELETING).

use std::time::Duration;

use aws_sdk_amp::Client;
use aws_sdk_amp::operation::delete_scraper::DeleteScraperError;
use aws_sdk_amp::operation::describe_scraper::DescribeScraperError;
use aws_sdk_amp::primitives::Blob;
use aws_sdk_amp::types::{
    AmpConfiguration, Destination, EksConfiguration, ScrapeConfiguration, ScraperDescription,
    Source,
};
use serde::{Deserialize, Serialize};

use crate::aws::sdk_error;
use crate::doc::{MANAGED_BY, Resource, tagged_ours};
use crate::error::{Error, Result};
use crate::ledger::{self, Run, Verdict};
use crate::poll::{self, Attempt, Pace, Progress};
use crate::preflight::{Need, Scope};
use crate::sts::{arn_account, arn_region};
use crate::timespec::format_duration;

/// The document's key of [`ScraperSection`].
pub const SECTION: &str = "scraper";

/// The `scraper` section: the managed collector amp-workspace made or found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ScraperSection {
    pub scraper_id: String,
    pub arn: String,
    pub alias: Option<String>,
    pub status: String,
    /// The service-linked role the cluster must let read pods (its RBAC subject is
    /// `aps-collector-user`).
    pub role_arn: String,
    pub cluster_arn: String,
    pub workspace_arn: String,
    pub region: String,
}

/// A scraper's ledger details.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScraperDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// The workspace it writes to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub workspace_arn: String,
}

/// What CreateScraper is given.
#[derive(Debug, Clone, Default)]
pub struct ScraperSpec {
    pub alias: Option<String>,
    pub cluster_arn: String,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    pub workspace_arn: String,
    /// The Prometheus scrape configuration (YAML), sent as the configuration blob.
    pub configuration: String,
}

/// The scrape configuration a file holds, as YAML: the YAML itself, or the JSON shape of
/// CreateScraper's `scrapeConfiguration` (`{"configurationBlob": BASE64}`) that
/// `render-agent-config --flavor managed-scraper --format json` writes. It must be a
/// Prometheus configuration with scrape jobs; AMP refuses anything else, and that refusal
/// should come before anything is made.
pub fn configuration_from(text: &str, whence: &str) -> Result<String> {
    let yaml = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(json) if json.get("configurationBlob").is_some() => {
            let blob = json["configurationBlob"].as_str().unwrap_or_default();
            let bytes = aws_smithy_types::base64::decode(blob).map_err(|e| {
                Error::input(format!("{whence}: configurationBlob is not base64: {e}"))
            })?;
            String::from_utf8(bytes).map_err(|_| {
                Error::input(format!("{whence}: configurationBlob is not UTF-8 text"))
            })?
        }
        _ => text.to_owned(),
    };
    let parsed: serde_norway::Value = serde_norway::from_str(&yaml).map_err(|e| {
        Error::input(format!(
            "{whence} is not a Prometheus configuration (YAML): {e}"
        ))
    })?;
    let jobs = parsed
        .get("scrape_configs")
        .and_then(serde_norway::Value::as_sequence)
        .map_or(0, Vec::len);
    if jobs == 0 {
        return Err(Error::input(format!("{whence} has no scrape_configs"))
            .with_hint("render one with `render-agent-config --flavor managed-scraper`"));
    }
    if parsed.get("remote_write").is_some() {
        return Err(Error::input(format!(
            "{whence} has a remote_write section, which a managed collector refuses"
        ))
        .with_hint("the collector writes to the workspace it is created for: drop remote_write"));
    }
    Ok(yaml)
}

/// The scrapers of one account and region.
#[derive(Debug, Clone)]
pub struct Scrapers {
    client: Client,
    pub region: String,
}

pub fn status_of(scraper: &ScraperDescription) -> String {
    scraper
        .status()
        .map(|s| s.status_code().as_str().to_owned())
        .unwrap_or_else(|| "UNKNOWN".into())
}

impl Scrapers {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Scrapers {
            client: crate::aws_client!(aws_sdk_amp, config),
            region: crate::aws::region_of(config),
        }
    }

    /// CreateScraper, tagged ours; returns its id and ARN. AMP answers at once (CREATING).
    pub async fn create(&self, spec: &ScraperSpec) -> Result<(String, String)> {
        let source = EksConfiguration::builder()
            .cluster_arn(&spec.cluster_arn)
            .set_subnet_ids(Some(spec.subnet_ids.clone()))
            .set_security_group_ids(
                Some(spec.security_group_ids.clone()).filter(|ids| !ids.is_empty()),
            )
            .build()
            .map_err(|e| Error::internal(format!("the scraper's EKS source: {e}")))?;
        let destination = AmpConfiguration::builder()
            .workspace_arn(&spec.workspace_arn)
            .build()
            .map_err(|e| Error::internal(format!("the scraper's destination: {e}")))?;
        let created = self
            .client
            .create_scraper()
            .set_alias(spec.alias.clone())
            .source(Source::EksConfiguration(source))
            .destination(Destination::AmpConfiguration(destination))
            .scrape_configuration(ScrapeConfiguration::ConfigurationBlob(Blob::new(
                spec.configuration.as_bytes(),
            )))
            .tags(MANAGED_BY.0, MANAGED_BY.1)
            .send()
            .await
            .map_err(|e| sdk_error(e, "creating the managed collector (CreateScraper)"))?;
        Ok((created.scraper_id().to_owned(), created.arn().to_owned()))
    }

    /// The scraper, or `None` when AMP says there is no such scraper.
    pub async fn find(&self, id: &str) -> Result<Option<ScraperDescription>> {
        match self.client.describe_scraper().scraper_id(id).send().await {
            Ok(out) => Ok(out.scraper),
            Err(e)
                if e.as_service_error()
                    .is_some_and(DescribeScraperError::is_resource_not_found_exception) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error(e, format!("describing scraper {id}"))),
        }
    }

    /// Our scraper for `cluster_arn` -> `workspace_arn` with `alias`, if one exists already
    /// (so that a second run converges instead of making another).
    pub async fn find_existing(
        &self,
        alias: Option<&str>,
        cluster_arn: &str,
        workspace_arn: &str,
    ) -> Result<Option<ScraperDescription>> {
        let listed = self
            .client
            .list_scrapers()
            .send()
            .await
            .map_err(|e| sdk_error(e, "listing scrapers"))?;
        for summary in listed.scrapers() {
            let same = summary.alias() == alias
                && summary
                    .source()
                    .and_then(|s| s.as_eks_configuration().ok())
                    .is_some_and(|eks| eks.cluster_arn() == cluster_arn)
                && summary
                    .destination()
                    .and_then(|d| d.as_amp_configuration().ok())
                    .is_some_and(|amp| amp.workspace_arn() == workspace_arn);
            let status = summary.status().map(|s| s.status_code().as_str());
            if same && !matches!(status, Some("DELETING" | "DELETION_FAILED")) {
                return self.find(summary.scraper_id()).await;
            }
        }
        Ok(None)
    }

    /// Wait, with progress, until the scraper is ACTIVE; CREATION_FAILED is an error with
    /// AMP's reason. AMP takes minutes to set a scraper up in the cluster's VPC.
    pub async fn wait_until_active(
        &self,
        id: &str,
        timeout: Duration,
        progress: &Progress,
    ) -> Result<ScraperDescription> {
        let pace = Pace::doubling(Duration::from_millis(500), Duration::from_secs(15), timeout);
        let (scraper, _) = poll::until(
            &format!("scraper {id} to be ACTIVE"),
            pace,
            progress,
            || async move {
                let Some(scraper) = self.find(id).await? else {
                    return Err(Error::not_found(format!(
                        "scraper {id} disappeared while waiting for it"
                    )));
                };
                match status_of(&scraper).as_str() {
                    "ACTIVE" => Ok(Attempt::Done(scraper)),
                    "CREATION_FAILED" => Err(Error::remote(format!(
                        "scraper {id} failed to create: {}",
                        scraper.status_reason().unwrap_or("AMP gave no reason")
                    ))
                    .with_hint(
                        "check the cluster's subnets and security groups, and that the \
                         workspace exists; then delete it (teardown) and create it again",
                    )),
                    other => Ok(Attempt::Pending(other.to_owned())),
                }
            },
            |t| {
                Error::remote(format!(
                    "scraper {id} is still {} after {}",
                    t.last,
                    format_duration(timeout)
                ))
                .with_hint("wait longer (--timeout); AMP sets a scraper up in minutes")
            },
        )
        .await?;
        Ok(scraper)
    }

    /// Delete the scraper and wait until AMP no longer describes it; `false` when it was gone
    /// already.
    pub async fn delete_and_wait(
        &self,
        id: &str,
        timeout: Duration,
        progress: &Progress,
    ) -> Result<bool> {
        match self.client.delete_scraper().scraper_id(id).send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(DeleteScraperError::is_resource_not_found_exception) =>
            {
                return Ok(false);
            }
            Err(e) => return Err(sdk_error(e, format!("deleting scraper {id}"))),
        }
        let pace = Pace::doubling(Duration::from_millis(500), Duration::from_secs(15), timeout);
        poll::until(
            &format!("scraper {id} to be deleted"),
            pace,
            progress,
            || async move {
                Ok(match self.find(id).await? {
                    None => Attempt::Done(()),
                    Some(scraper) => Attempt::Pending(status_of(&scraper)),
                })
            },
            |t| {
                Error::remote(format!(
                    "scraper {id} is still {} after {}",
                    t.last,
                    format_duration(timeout)
                ))
                .with_hint("run teardown again later")
            },
        )
        .await?;
        Ok(true)
    }

    /// The section for a scraper as AMP describes it.
    pub fn section(&self, scraper: &ScraperDescription) -> ScraperSection {
        ScraperSection {
            scraper_id: scraper.scraper_id().to_owned(),
            arn: scraper.arn().to_owned(),
            alias: scraper.alias().map(str::to_owned),
            status: status_of(scraper),
            role_arn: scraper.role_arn().to_owned(),
            cluster_arn: scraper
                .source()
                .and_then(|s| s.as_eks_configuration().ok())
                .map(|eks| eks.cluster_arn().to_owned())
                .unwrap_or_default(),
            workspace_arn: scraper
                .destination()
                .and_then(|d| d.as_amp_configuration().ok())
                .map(|amp| amp.workspace_arn().to_owned())
                .unwrap_or_default(),
            region: self.region.clone(),
        }
    }
}

/// teardown's `amp-scraper` entry: the recorded scraper, if it still carries our tag, deleted
/// and waited for until gone.
pub async fn take_down_scraper(run: &mut impl Run, r: &Resource) -> Result<Verdict> {
    let _: ScraperDetails = crate::verdict!(ledger::details(r));
    let region = r
        .region
        .as_deref()
        .or_else(|| r.arn.as_deref().and_then(arn_region));
    let account = r.arn.as_deref().and_then(arn_account);
    let scrapers = Scrapers::new(&run.config(region).await?);
    let what = format!("scraper {}", r.id);
    let Some(found) = scrapers.find(&r.id).await? else {
        return Ok(ledger::confirm_absent(run, &what, account, region, true).await);
    };
    let tags = found.tags().cloned().unwrap_or_default();
    if !tagged_ours(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        return Ok(Verdict::Skipped(ledger::NOT_TAGGED.into()));
    }
    if run.dry_run() {
        return Ok(Verdict::WouldDelete(format!(
            "scraper is {}; deleted, then waited for until gone",
            status_of(&found)
        )));
    }
    if scrapers
        .delete_and_wait(&r.id, run.timeout(), run.progress())
        .await?
    {
        Ok(Verdict::Deleted)
    } else {
        Ok(ledger::confirm_absent(run, &what, account, region, true).await)
    }
}

// ---- What these calls need (preflight) --------------------------------------------------------

/// The IAM action of every scraper call this module makes (SDK method → action); a unit test
/// finds every SDK call of this file here.
pub const CALLS: &[(&str, &str)] = &[
    ("create_scraper", "aps:CreateScraper"),
    ("delete_scraper", "aps:DeleteScraper"),
    ("describe_scraper", "aps:DescribeScraper"),
    ("list_scrapers", "aps:ListScrapers"),
];

/// What [`Scrapers::find_existing`], [`Scrapers::create`] and the wait need. CreateScraper
/// also reads the cluster's network and makes AMP's service-linked role (AMP user guide,
/// "Using an AWS managed collector": the permissions to create a scraper).
pub fn needs_to_ensure(scope: &Scope, step: &str) -> Vec<Need> {
    let any = scope.arn("aps", "scraper/*");
    let role = scope.global_arn(
        "iam",
        "role/aws-service-role/scraper.aps.amazonaws.com/AWSServiceRoleForAmazonPrometheusScraper",
    );
    vec![
        Need::new("aps:ListScrapers", "*", format!("{step}: find the scraper")),
        Need::new(
            "aps:CreateScraper",
            &any,
            format!("{step}: create the scraper"),
        ),
        Need::new(
            "aps:TagResource",
            &any,
            format!("{step}: tag the scraper managed-by=ampkit"),
        ),
        Need::new(
            "aps:DescribeScraper",
            &any,
            format!("{step}: wait until the scraper is ACTIVE"),
        ),
        Need::new(
            "ec2:DescribeSubnets",
            "*",
            format!("{step}: the scraper's subnets"),
        ),
        Need::new(
            "ec2:DescribeSecurityGroups",
            "*",
            format!("{step}: the scraper's security groups"),
        ),
        Need::new(
            "iam:CreateServiceLinkedRole",
            role,
            format!("{step}: AMP's scraper service-linked role"),
        ),
    ]
}

/// What teardown needs for an `amp-scraper` entry.
pub fn needs_to_take_down(scope: &Scope, r: &Resource) -> Vec<Need> {
    let arn = r
        .arn
        .clone()
        .unwrap_or_else(|| scope.arn("aps", &format!("scraper/{}", r.id)));
    let step = format!("teardown: delete amp-scraper {}", r.id);
    vec![
        Need::new("aps:DescribeScraper", &arn, &step),
        Need::new("aps:DeleteScraper", &arn, &step),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_scraper_call_has_its_action_declared() {
        let scope = Scope::new("eu-west-1", "1");
        let mut declared = needs_to_ensure(&scope, "t");
        declared.extend(needs_to_take_down(
            &scope,
            &Resource::new(crate::doc::ResourceKind::AmpScraper, "s-1", "t"),
        ));
        crate::preflight::assert_calls_declared(include_str!("scraper.rs"), CALLS, &declared);
    }

    const YAML: &str = "global:\n  scrape_interval: 30s\nscrape_configs:\n- job_name: envoy\n";

    #[test]
    fn a_configuration_reads_as_yaml_or_as_the_api_shape() {
        assert_eq!(configuration_from(YAML, "f").unwrap(), YAML);
        let json = format!(
            "{{\"configurationBlob\": \"{}\"}}",
            aws_smithy_types::base64::encode(YAML)
        );
        assert_eq!(configuration_from(&json, "f").unwrap(), YAML);
    }

    #[test]
    fn what_amp_would_refuse_is_refused_first() {
        let none = configuration_from("global: {}\n", "f").unwrap_err();
        assert!(none.message.contains("no scrape_configs"), "{none}");
        let writes = configuration_from(&format!("{YAML}remote_write:\n- url: x\n"), "f");
        assert!(writes.unwrap_err().message.contains("remote_write"));
        let bad = configuration_from("{\"configurationBlob\": \"%%%\"}", "f").unwrap_err();
        assert_eq!(bad.exit_code(), 2);
    }
}
