//! amp-local's state: workspaces, their rule groups namespaces and alert manager definitions,
//! and scrapers (managed collectors), kept as one JSON file in the data directory.
//!
//! The file is the source of truth; the Prometheus rule files and the Alertmanager
//! configuration are derived from it (and regenerated at start). It is written atomically
//! (a temporary file in the same directory, fsync, rename), so a crash leaves either the old
//! state or the new one, never half of each, and a restart loses nothing.
//!
//! Status transitions (CREATING -> ACTIVE, DELETING -> gone) are computed from timestamps
//! rather than driven by timers: they survive restarts and need no background task. Scrapers
//! are the exception: their status is stored, because it follows a real process (the agent
//! amp-local runs for each one, see [`crate::scrapers`]) that can fail to start.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use ampkit::error::{Error, Result};

/// Seconds since the epoch, as AMP's JSON carries timestamps.
pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub workspaces: BTreeMap<String, Workspace>,
    /// Absent from state files written before scrapers existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scrapers: BTreeMap<String, Scraper>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    pub arn: String,
    pub created_at: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Set when DeleteWorkspace was called; the workspace is gone one delay later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleting_since: Option<f64>,
    #[serde(default)]
    pub rule_groups_namespaces: BTreeMap<String, RuleGroupsNamespace>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_manager: Option<AlertManagerDefinition>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RuleGroupsNamespace {
    pub name: String,
    pub arn: String,
    /// The rules YAML exactly as the caller sent it (Describe gives it back unchanged).
    pub data: String,
    pub created_at: f64,
    pub modified_at: f64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertManagerDefinition {
    /// The definition YAML exactly as the caller sent it.
    pub data: String,
    pub created_at: f64,
    pub modified_at: f64,
}

/// A managed collector (CreateScraper). Its status is stored, not computed: CREATING turns
/// ACTIVE only once its agent runs, or CREATION_FAILED when it cannot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Scraper {
    pub id: String,
    pub arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    pub role_arn: String,
    /// CREATING, ACTIVE, CREATION_FAILED, DELETING or DELETION_FAILED.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    pub created_at: f64,
    pub last_modified_at: f64,
    /// Set when DeleteScraper was called; it is gone one delay later, once its agent stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleting_since: Option<f64>,
    /// The `source` union exactly as the caller sent it (DescribeScraper gives it back).
    pub source: serde_json::Value,
    /// `destination.ampConfiguration.workspaceArn`, and the workspace id it names.
    pub workspace_arn: String,
    pub workspace_id: String,
    /// The scrape configuration (YAML) exactly as the caller sent it, decoded from base64.
    pub configuration: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_configuration: Option<serde_json::Value>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// CreateScraper's idempotency token: a retry with the same token gets this scraper back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// A phase that ends one delay after it began (CREATING -> ACTIVE, UPDATING -> ACTIVE).
pub fn settled(since: f64, delay: Duration, now: f64) -> bool {
    now >= since + delay.as_secs_f64()
}

impl Workspace {
    /// AMP's `statusCode` for the workspace at `now`.
    pub fn status(&self, delay: Duration, now: f64) -> &'static str {
        if self.deleting_since.is_some() {
            "DELETING"
        } else if settled(self.created_at, delay, now) {
            "ACTIVE"
        } else {
            "CREATING"
        }
    }

    pub fn is_active(&self, delay: Duration, now: f64) -> bool {
        self.status(delay, now) == "ACTIVE"
    }
}

/// The status of an object that is created and then put (rule groups namespaces, alert manager
/// definitions): CREATING or UPDATING until the change has settled, then ACTIVE.
fn change_status(created_at: f64, modified_at: f64, delay: Duration, now: f64) -> &'static str {
    if settled(modified_at, delay, now) {
        "ACTIVE"
    } else if modified_at > created_at {
        "UPDATING"
    } else {
        "CREATING"
    }
}

impl RuleGroupsNamespace {
    pub fn status(&self, delay: Duration, now: f64) -> &'static str {
        change_status(self.created_at, self.modified_at, delay, now)
    }
}

impl AlertManagerDefinition {
    pub fn status(&self, delay: Duration, now: f64) -> &'static str {
        change_status(self.created_at, self.modified_at, delay, now)
    }
}

impl State {
    /// Drop workspaces whose deletion has run its course; true if any was dropped.
    pub fn purge_deleted(&mut self, delay: Duration, now: f64) -> bool {
        let before = self.workspaces.len();
        self.workspaces
            .retain(|_, ws| ws.deleting_since.is_none_or(|t| !settled(t, delay, now)));
        before != self.workspaces.len()
    }
}

/// Where the state lives on disk.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            Error::usage(format!(
                "cannot create --data-dir {}: {e}",
                data_dir.display()
            ))
            .with_hint("give a directory amp-local may write to")
        })?;
        Ok(StateFile {
            path: data_dir.join("state.json"),
        })
    }

    pub fn load(&self) -> Result<State> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::input(format!(
                    "{} is not amp-local state: {e}",
                    self.path.display()
                ))
                .with_hint("move the file away to start with no workspaces")
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(Error::input(format!(
                "cannot read {}: {e}",
                self.path.display()
            ))),
        }
    }

    pub fn save(&self, state: &State) -> Result<()> {
        let json = serde_json::to_vec_pretty(state)
            .map_err(|e| Error::internal(format!("serializing the state: {e}")))?;
        write_atomically(&self.path, &json)
    }
}

/// Write `contents` to `path` so that readers see the old file or the new one, never a mix.
/// The temporary name starts with a dot and has no `.yml` ending, so Prometheus's
/// `rules/*.yml` glob never picks it up half-written.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fail = |e: std::io::Error| Error::remote(format!("writing {}: {e}", path.display()));
    let mut tmp = tempfile::Builder::new()
        .prefix(".amp-local-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(fail)?;
    tmp.write_all(contents).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_a_save_and_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = StateFile::new(dir.path()).expect("dir");
        assert_eq!(file.load().expect("empty"), State::default());
        let mut state = State::default();
        state.workspaces.insert(
            "ws-1".into(),
            Workspace {
                id: "ws-1".into(),
                alias: Some("a".into()),
                arn: "arn".into(),
                created_at: 1.5,
                kms_key_arn: None,
                tags: BTreeMap::new(),
                deleting_since: None,
                rule_groups_namespaces: BTreeMap::new(),
                alert_manager: None,
            },
        );
        file.save(&state).expect("save");
        assert_eq!(file.load().expect("load"), state);
    }

    #[test]
    fn statuses_follow_the_clock() {
        let d = Duration::from_secs(2);
        let mut ws = Workspace {
            id: "ws-1".into(),
            alias: None,
            arn: "arn".into(),
            created_at: 100.0,
            kms_key_arn: None,
            tags: BTreeMap::new(),
            deleting_since: None,
            rule_groups_namespaces: BTreeMap::new(),
            alert_manager: None,
        };
        assert_eq!(ws.status(d, 101.0), "CREATING");
        assert_eq!(ws.status(d, 102.5), "ACTIVE");
        ws.deleting_since = Some(103.0);
        assert_eq!(ws.status(d, 104.0), "DELETING");
        let mut state = State::default();
        state.workspaces.insert("ws-1".into(), ws);
        assert!(!state.purge_deleted(d, 104.0));
        assert!(state.purge_deleted(d, 105.5));
        assert!(state.workspaces.is_empty());
    }
}
