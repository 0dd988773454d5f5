//! Deleting what grafana-import (and sns-alert) made in Grafana, by uid: the ledger details of
//! datasources, folders and dashboards, and teardown's deletes of them.
//!
//! Grafana objects carry no tags, so teardown matches them by what the ledger recorded (the
//! uid, and a dashboard's folder); these calls only read and delete by uid. A 404 is "already
//! gone". A folder is special: Grafana deletes a folder together with every dashboard (and,
//! on 11+, every subfolder) in it, so [`Grafana::folder_contents`] lets the caller refuse to
//! delete a folder that still holds anything it did not create.

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Grafana;
use crate::doc::Resource;
use crate::error::Result;
use crate::ledger::{self, Run, Verdict};

/// Whether a delete removed the object or found it gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    Deleted,
    AlreadyGone,
}

impl Grafana {
    /// `DELETE path`: deleted on 200/202/204, already gone on 404.
    async fn delete_path(&self, path: &str, what: &str) -> Result<Gone> {
        let (status, body) = self.call(Method::DELETE, path, None).await?;
        match status {
            StatusCode::OK | StatusCode::ACCEPTED | StatusCode::NO_CONTENT => Ok(Gone::Deleted),
            StatusCode::NOT_FOUND => Ok(Gone::AlreadyGone),
            _ => Err(self.failed(&format!("deleting {what}"), status, &body)),
        }
    }

    pub async fn delete_datasource(&self, uid: &str) -> Result<Gone> {
        self.delete_path(
            &format!("/api/datasources/uid/{uid}"),
            &format!("datasource {uid}"),
        )
        .await
    }

    pub async fn delete_dashboard(&self, uid: &str) -> Result<Gone> {
        self.delete_path(
            &format!("/api/dashboards/uid/{uid}"),
            &format!("dashboard {uid}"),
        )
        .await
    }

    /// Delete a folder. `forceDeleteRules=false`: a folder that still holds alert rules is
    /// refused by Grafana rather than emptied (grafana#78258).
    pub async fn delete_folder(&self, uid: &str) -> Result<Gone> {
        self.delete_path(
            &format!("/api/folders/{uid}?forceDeleteRules=false"),
            &format!("folder {uid}"),
        )
        .await
    }

    /// The uids of the dashboards and subfolders in folder `uid` (what deleting it would take
    /// along).
    pub async fn folder_contents(&self, uid: &str) -> Result<Vec<String>> {
        let mut uids = Vec::new();
        for path in [
            format!("/api/search?folderUIDs={uid}&type=dash-db"),
            format!("/api/folders?parentUid={uid}"),
        ] {
            let (status, body) = self.call(Method::GET, &path, None).await?;
            let subfolders = path.contains("parentUid");
            match status {
                StatusCode::OK => uids.extend(
                    body.as_array()
                        .into_iter()
                        .flatten()
                        // Without nested folders (AMG 10) `parentUid` is ignored and every
                        // top-level folder is listed: only items that name it as parent count.
                        .filter(|item| !subfolders || item["parentUid"] == uid)
                        .filter_map(|item| item["uid"].as_str().map(str::to_owned)),
                ),
                StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST if subfolders => {}
                _ => {
                    return Err(self.failed(
                        &format!("listing what folder {uid} holds"),
                        status,
                        &body,
                    ));
                }
            }
        }
        uids.sort();
        uids.dedup();
        Ok(uids)
    }

    /// The folder uid a stored dashboard is in (`""` for General), or `None` when it is gone.
    pub async fn dashboard_folder(&self, uid: &str) -> Result<Option<String>> {
        Ok(self.dashboard(uid).await?.map(|d: Value| {
            d["meta"]["folderUid"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }))
    }
}

// ---- The ledger's Grafana entries and their deletes (teardown) -----------------------------

/// The ledger details of a datasource or folder: the Grafana it is in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDetails {
    pub grafana_url: String,
}

/// The ledger details of a dashboard: its Grafana, and the folder it was imported into.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DashboardDetails {
    pub grafana_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder_uid: Option<String>,
}

/// The Grafana an entry was recorded in, connected; `Err` with the verdict when the entry
/// records none, or the user named another one (`--grafana-url`).
pub(crate) async fn recorded_grafana(
    run: &mut impl Run,
    url: &str,
) -> Result<std::result::Result<(Grafana, String), Verdict>> {
    let url = match ledger::required(url, "grafanaUrl") {
        Ok(url) => url.trim_end_matches('/').to_owned(),
        Err(verdict) => return Ok(Err(verdict)),
    };
    if let Some(given) = run.grafana_url()
        && given.trim_end_matches('/') != url
    {
        return Ok(Err(Verdict::Skipped(format!(
            "recorded in Grafana {url}, not the --grafana-url {given}"
        ))));
    }
    Ok(Ok((run.grafana(&url).await?, url)))
}

fn absent_from(url: &str) -> Verdict {
    Verdict::Absent(format!("no such uid in Grafana {url}"))
}

fn gone(gone: Gone, url: &str) -> Verdict {
    match gone {
        Gone::Deleted => Verdict::Deleted,
        Gone::AlreadyGone => absent_from(url),
    }
}

/// teardown's `grafana-datasource` entry. Grafana objects carry no tags: they are ours by the
/// uid the ledger recorded, in the Grafana it recorded.
pub async fn take_down_datasource(run: &mut impl Run, r: &Resource) -> Result<Verdict> {
    let details: ObjectDetails = crate::verdict!(ledger::details(r));
    let (grafana, url) = crate::verdict!(recorded_grafana(run, &details.grafana_url).await?);
    let uid = r.id.as_str();
    let Some(found) = grafana.datasource(uid).await? else {
        return Ok(absent_from(&url));
    };
    if run.dry_run() {
        return Ok(Verdict::WouldDelete(format!(
            "datasource `{}`",
            found["name"].as_str().unwrap_or(uid)
        )));
    }
    Ok(gone(grafana.delete_datasource(uid).await?, &url))
}

/// teardown's `grafana-dashboard` entry: deleted unless someone moved it to another folder.
pub async fn take_down_dashboard(run: &mut impl Run, r: &Resource) -> Result<Verdict> {
    let details: DashboardDetails = crate::verdict!(ledger::details(r));
    let (grafana, url) = crate::verdict!(recorded_grafana(run, &details.grafana_url).await?);
    let uid = r.id.as_str();
    let Some(folder) = grafana.dashboard_folder(uid).await? else {
        return Ok(absent_from(&url));
    };
    if let Some(recorded) = details.folder_uid.filter(|recorded| *recorded != folder) {
        return Ok(Verdict::Skipped(format!(
            "it was moved from folder {recorded} to {folder} since it was imported"
        )));
    }
    // Only once it is gone (or, dry, planned to go) does it stop counting against its folder.
    if run.dry_run() {
        run.seen().gone_grafana.insert(uid.to_owned());
        return Ok(Verdict::WouldDelete(format!(
            "dashboard in folder {folder}"
        )));
    }
    let verdict = gone(grafana.delete_dashboard(uid).await?, &url);
    run.seen().gone_grafana.insert(uid.to_owned());
    Ok(verdict)
}

/// teardown's `grafana-folder` entry: Grafana deletes a folder with everything in it, so only
/// a folder that holds nothing but what this run deletes goes.
pub async fn take_down_folder(run: &mut impl Run, r: &Resource) -> Result<Verdict> {
    let details: ObjectDetails = crate::verdict!(ledger::details(r));
    let (grafana, url) = crate::verdict!(recorded_grafana(run, &details.grafana_url).await?);
    let uid = r.id.as_str();
    if grafana.folder(uid).await?.is_none() {
        return Ok(absent_from(&url));
    }
    let gone_grafana = &run.seen().gone_grafana;
    let foreign: Vec<String> = grafana
        .folder_contents(uid)
        .await?
        .into_iter()
        .filter(|u| !gone_grafana.contains(u))
        .collect();
    if !foreign.is_empty() {
        return Ok(Verdict::Skipped(format!(
            "it holds {foreign:?}, which ampkit did not create (or could not delete); \
             deleting the folder would delete them"
        )));
    }
    if run.dry_run() {
        return Ok(Verdict::WouldDelete(
            "the folder is empty of others' objects".into(),
        ));
    }
    Ok(gone(grafana.delete_folder(uid).await?, &url))
}
