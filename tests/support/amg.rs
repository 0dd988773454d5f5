//! An Amazon Managed Grafana API fixture (the four calls of the service-account path, as the
//! AWS API reference gives them: DescribeWorkspace, CreateWorkspaceServiceAccount,
//! CreateWorkspaceServiceAccountToken, DeleteWorkspaceServiceAccount). AMG is not in moto;
//! this answers the AWS SDK for Rust on 127.0.0.1 through `AWS_ENDPOINT_URL_GRAFANA`. Its
//! tokens are real-looking `glsa_` tokens that the Grafana fixture accepts. Calls a test
//! expects and that never arrive fail the test when it is dropped.

use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::grafana::mint_token;

#[derive(Default)]
struct Db {
    workspace_id: String,
    endpoint: String,
    calls: Vec<String>,
    /// Service accounts alive: (id, name, role).
    accounts: Vec<(String, String, String)>,
    tokens_seconds: Vec<i64>,
    next: u64,
    fail_deletes: bool,
}

type Shared = Arc<Mutex<Db>>;

fn lock(db: &Shared) -> std::sync::MutexGuard<'_, Db> {
    db.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct AmgFixture {
    pub url: String,
    db: Shared,
    expected: Vec<String>,
    task: tokio::task::JoinHandle<()>,
}

impl AmgFixture {
    /// One workspace `workspace_id` whose Grafana endpoint is `endpoint` (a host name, as AMG
    /// gives it).
    pub async fn start(workspace_id: &str, endpoint: &str) -> AmgFixture {
        let db: Shared = Arc::new(Mutex::new(Db {
            workspace_id: workspace_id.to_owned(),
            endpoint: endpoint.to_owned(),
            next: 1,
            ..Db::default()
        }));
        let app = Router::new().fallback(handle).with_state(db.clone());
        let (url, task) = crate::serve_on_loopback(app).await;
        AmgFixture {
            url,
            db,
            expected: Vec::new(),
            task,
        }
    }

    pub fn expect(&mut self, calls: &[&str]) {
        self.expected.extend(calls.iter().map(|c| (*c).to_owned()));
    }

    pub fn calls(&self) -> Vec<String> {
        lock(&self.db).calls.clone()
    }

    /// Service accounts that exist now: (id, name, role).
    pub fn accounts(&self) -> Vec<(String, String, String)> {
        lock(&self.db).accounts.clone()
    }

    /// `secondsToLive` of every token asked for.
    pub fn token_lifetimes(&self) -> Vec<i64> {
        lock(&self.db).tokens_seconds.clone()
    }

    /// Make DeleteWorkspaceServiceAccount fail (500) from now on.
    pub fn fail_deletes(&self, fail: bool) {
        lock(&self.db).fail_deletes = fail;
    }
}

impl Drop for AmgFixture {
    fn drop(&mut self) {
        self.task.abort();
        if std::thread::panicking() {
            return;
        }
        crate::assert_calls_came("AMG", &self.expected, &lock(&self.db).calls);
    }
}

/// An AWS JSON error: the type in `x-amzn-ErrorType`, the message in the body.
fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [
            ("x-amzn-errortype", kind),
            ("content-type", "application/json"),
        ],
        json!({"message": message}).to_string(),
    )
        .into_response()
}

fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn handle(State(db): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let method = parts.method.to_string();
    let path = parts.uri.path().to_owned();
    let mut db = lock(&db);
    db.calls.push(format!("{method} {path}"));
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let workspace = segments.get(1).copied().unwrap_or_default();
    if segments.first() != Some(&"workspaces") || workspace != db.workspace_id {
        return aws_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Workspace {workspace} not found"),
        );
    }
    match (method.as_str(), &segments[2..]) {
        ("GET", []) => ok(json!({"workspace": {
            "id": db.workspace_id,
            "endpoint": db.endpoint,
            "grafanaVersion": "10.4",
            "status": "ACTIVE",
            "accountAccessType": "CURRENT_ACCOUNT",
            "authentication": {"providers": ["AWS_SSO"]},
            "created": 1_700_000_000,
            "modified": 1_700_000_000,
            "dataSources": ["PROMETHEUS"],
            "permissionType": "SERVICE_MANAGED"
        }})),
        ("POST", ["serviceaccounts"]) => {
            let name = body["name"].as_str().unwrap_or_default().to_owned();
            let role = body["grafanaRole"].as_str().unwrap_or_default().to_owned();
            if name.is_empty() || !matches!(role.as_str(), "ADMIN" | "EDITOR" | "VIEWER") {
                return aws_error(
                    StatusCode::BAD_REQUEST,
                    "ValidationException",
                    "name and grafanaRole (ADMIN, EDITOR or VIEWER) are required",
                );
            }
            let id = db.next.to_string();
            db.next += 1;
            db.accounts.push((id.clone(), name.clone(), role.clone()));
            let workspace_id = db.workspace_id.clone();
            ok(json!({"id": id, "name": name, "grafanaRole": role, "workspaceId": workspace_id}))
        }
        ("POST", ["serviceaccounts", account, "tokens"]) => {
            let account = (*account).to_owned();
            if !db.accounts.iter().any(|(id, _, _)| *id == account) {
                return aws_error(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFoundException",
                    "Service account not found",
                );
            }
            let seconds = body["secondsToLive"].as_i64().unwrap_or(0);
            if !(1..=2_592_000).contains(&seconds) {
                return aws_error(
                    StatusCode::BAD_REQUEST,
                    "ValidationException",
                    "secondsToLive must be between 1 and 2592000",
                );
            }
            db.tokens_seconds.push(seconds);
            let seed = db.next;
            db.next += 1;
            let workspace_id = db.workspace_id.clone();
            ok(json!({
                "serviceAccountId": account,
                "workspaceId": workspace_id,
                "serviceAccountToken": {"id": seed.to_string(), "name": body["name"], "key": mint_token(seed)}
            }))
        }
        ("DELETE", ["serviceaccounts", account]) => {
            if db.fail_deletes {
                return aws_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerException",
                    "try again later",
                );
            }
            let account = (*account).to_owned();
            let before = db.accounts.len();
            db.accounts.retain(|(id, _, _)| *id != account);
            if db.accounts.len() == before {
                return aws_error(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFoundException",
                    "Service account not found",
                );
            }
            let workspace_id = db.workspace_id.clone();
            ok(json!({"serviceAccountId": account, "workspaceId": workspace_id}))
        }
        _ => aws_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            "no such route",
        ),
    }
}
