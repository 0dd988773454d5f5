//! The fixture's deletes and the reads teardown makes before them, as Grafana answers them:
//! `DELETE` of a datasource, dashboard or folder by uid (404 when it is not there), a folder
//! delete taking its dashboards along (which is why teardown looks first), the dashboard search
//! by folder, and the folder list by parent (10.4 has no nested folders and ignores
//! `parentUid`, listing every folder, as Grafana without the feature does).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{Db, GrafanaFixture, answer, before_11_3, lock};

/// Answer the routes of this module; anything else is the fixture's 404.
pub(super) fn handle(db: &mut Db, method: &str, segments: &[&str], query: &str) -> Response {
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    };
    match (method, segments) {
        ("DELETE", ["api", "datasources", "uid", uid]) => {
            match db.datasources.iter().position(|d| d["uid"] == *uid) {
                Some(i) => {
                    let gone = db.datasources.remove(i);
                    answer(
                        StatusCode::OK,
                        json!({"message": "Data source deleted", "id": gone["id"]}),
                    )
                }
                None => answer(
                    StatusCode::NOT_FOUND,
                    json!({"message": "Data source not found"}),
                ),
            }
        }
        ("DELETE", ["api", "dashboards", "uid", uid]) => {
            match db.dashboards.iter().position(|(_, d)| d["uid"] == *uid) {
                Some(i) => {
                    let (_, gone) = db.dashboards.remove(i);
                    answer(
                        StatusCode::OK,
                        json!({"title": gone["title"], "message": format!("Dashboard {} deleted", gone["title"].as_str().unwrap_or_default()), "id": gone["id"]}),
                    )
                }
                None => answer(
                    StatusCode::NOT_FOUND,
                    json!({"status": "not-found", "message": "Dashboard not found"}),
                ),
            }
        }
        ("DELETE", ["api", "folders", uid]) => {
            match db.folders.iter().position(|f| f["uid"] == *uid) {
                Some(i) => {
                    let gone = db.folders.remove(i);
                    // Grafana deletes the folder's dashboards with it.
                    db.dashboards.retain(|(folder, _)| folder != uid);
                    answer(
                        StatusCode::OK,
                        json!({"message": "Folder deleted", "id": gone["id"], "title": gone["title"]}),
                    )
                }
                None => answer(
                    StatusCode::NOT_FOUND,
                    json!({"status": "not-found", "message": "folder not found"}),
                ),
            }
        }
        ("GET", ["api", "search"]) => {
            let folder = param("folderUIDs");
            let hits: Vec<Value> = db
                .dashboards
                .iter()
                .filter(|(f, _)| folder.as_deref().is_none_or(|want| want == f))
                .map(|(f, d)| json!({"uid": d["uid"], "title": d["title"], "type": "dash-db", "folderUid": f}))
                .collect();
            answer(StatusCode::OK, Value::Array(hits))
        }
        ("GET", ["api", "folders"]) => {
            let parent = param("parentUid");
            let nested = !before_11_3(&db.version);
            let listed: Vec<Value> = db
                .folders
                .iter()
                .filter(|f| {
                    !nested
                        || f["parentUid"].as_str().unwrap_or_default()
                            == parent.as_deref().unwrap_or_default()
                })
                .cloned()
                .collect();
            answer(StatusCode::OK, Value::Array(listed))
        }
        _ => answer(StatusCode::NOT_FOUND, json!({"message": "Not found"})),
    }
}

impl GrafanaFixture {
    /// Put a dashboard in place as if someone had made it in Grafana.
    pub fn seed_dashboard(&self, folder_uid: &str, uid: &str, title: &str) {
        let mut db = lock(&self.db);
        let id = db.next_id;
        db.next_id += 1;
        db.dashboards.push((
            folder_uid.to_owned(),
            json!({"id": id, "uid": uid, "title": title, "version": 1}),
        ));
    }

    /// Whether a dashboard, folder or datasource with `uid` is stored.
    pub fn has(&self, uid: &str) -> bool {
        let db = lock(&self.db);
        db.dashboards.iter().any(|(_, d)| d["uid"] == uid)
            || db.folders.iter().any(|f| f["uid"] == uid)
            || db.datasources.iter().any(|d| d["uid"] == uid)
    }

    /// Every call so far that was not a read (`GET`).
    pub fn mutating_calls(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| !c.starts_with("GET "))
            .collect()
    }
}
