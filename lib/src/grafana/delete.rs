//! Deleting what grafana-import (and sns-alert) made in Grafana, by uid; teardown's side of
//! the Grafana client.
//!
//! Grafana objects carry no tags, so teardown matches them by what the ledger recorded (the
//! uid, and a dashboard's folder); these calls only read and delete by uid. A 404 is "already
//! gone". A folder is special: Grafana deletes a folder together with every dashboard (and,
//! on 11+, every subfolder) in it, so [`Grafana::folder_contents`] lets the caller refuse to
//! delete a folder that still holds anything it did not create.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::Grafana;
use crate::error::Result;

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
