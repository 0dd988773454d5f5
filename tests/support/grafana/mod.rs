//! A strict Grafana fixture: the HTTP API's behaviours that the tools rely on, per version, as
//! Grafana's HTTP API documentation and source (pkg/api) show them (health, service-account token
//! checks with their CRC32 checksum, datasources with their 409 texts and version check,
//! folders with 10.4's name uniqueness and 12's 412 on a duplicate uid). Grafana cannot be
//! installed here; this is what its client is tested against. Calls a test expects and that
//! never arrive fail the test when the fixture is dropped.

mod deletes;

use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub mod alerting;

#[derive(Default)]
struct Db {
    version: String,
    calls: Vec<String>,
    datasources: Vec<Value>,
    folders: Vec<Value>,
    /// Stored dashboards: (folder uid, dashboard JSON with id, uid, version).
    dashboards: Vec<(String, Value)>,
    next_id: u64,
    alerting: alerting::Alerting,
    /// Tokens this Grafana answers other than as valid (see [`TokenState`]).
    token_states: Vec<(String, TokenState)>,
}

/// How Grafana takes a well-formed service-account token other than as valid: one made in
/// another Grafana (another AMG workspace) is unknown here, as is a deleted one; an expired or
/// revoked one is refused with its own messageId (Grafana's `pkg/services/apikey` errors:
/// `api-key.invalid`, `api-key.expired`, `api-key.revoked`); a Viewer's passes for reads but
/// every change meets access control's 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    Unknown,
    Expired,
    Revoked,
    Viewer,
}

type Shared = Arc<Mutex<Db>>;

fn lock(db: &Shared) -> std::sync::MutexGuard<'_, Db> {
    db.lock().unwrap_or_else(PoisonError::into_inner)
}

/// CRC-32 (IEEE), as Grafana's token checksum uses it.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A service-account token as Grafana mints them: `glsa_` + 32 alphanumerics + `_` + the
/// CRC32 of `glsa_<secret>` as little-endian bytes in hex.
pub fn mint_token(seed: u64) -> String {
    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let secret: String = (0..32)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            alphabet[(state >> 33) as usize % alphabet.len()] as char
        })
        .collect();
    let sum = crc32(format!("glsa_{secret}").as_bytes()).to_le_bytes();
    format!(
        "glsa_{secret}_{}",
        sum.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Whether Grafana would take `token` as a service-account token (format and checksum).
pub fn token_valid(token: &str) -> bool {
    let Some(rest) = token.strip_prefix("glsa_") else {
        return false;
    };
    let Some((secret, sum)) = rest.rsplit_once('_') else {
        return false;
    };
    let expected = crc32(format!("glsa_{secret}").as_bytes()).to_le_bytes();
    secret.len() == 32
        && secret.bytes().all(|b| b.is_ascii_alphanumeric())
        && sum
            == expected
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn bad_request(body: Value) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// An object's `title`, trimmed as Grafana trims it before checking it.
fn title_of(object: &Value) -> String {
    object["title"]
        .as_str()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// A running fixture of one Grafana version.
pub struct GrafanaFixture {
    pub url: String,
    db: Shared,
    expected: Vec<String>,
    task: tokio::task::JoinHandle<()>,
}

impl GrafanaFixture {
    /// Serve Grafana `version` (e.g. `10.4.1`, `12.0.0`) on 127.0.0.1.
    pub async fn start(version: &str) -> GrafanaFixture {
        let db: Shared = Arc::new(Mutex::new(Db {
            version: version.to_owned(),
            next_id: 1,
            ..Db::default()
        }));
        let app = Router::new().fallback(handle).with_state(db.clone());
        let (url, task) = crate::serve_on_loopback(app).await;
        GrafanaFixture {
            url,
            db,
            expected: Vec::new(),
            task,
        }
    }

    /// Calls (`"POST /api/datasources"`) that must have arrived, in this order among the
    /// others, by the time the fixture is dropped.
    pub fn expect(&mut self, calls: &[&str]) {
        self.expected.extend(calls.iter().map(|c| (*c).to_owned()));
    }

    /// Every call so far, as `METHOD /path`.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.db).calls.clone()
    }

    /// Put an object in place as if someone had made it in Grafana.
    pub fn seed_datasource(&self, datasource: Value) {
        let mut db = lock(&self.db);
        let id = db.next_id;
        db.next_id += 1;
        let mut ds = datasource;
        ds["id"] = json!(id);
        ds["version"] = json!(1);
        db.datasources.push(ds);
    }

    pub fn seed_folder(&self, uid: &str, title: &str) {
        let mut db = lock(&self.db);
        let id = db.next_id;
        db.next_id += 1;
        db.folders
            .push(json!({"id": id, "uid": uid, "title": title, "version": 1}));
    }

    /// Change a stored dashboard as someone would in Grafana's UI (its version goes up).
    pub fn edit_dashboard(&self, uid: &str, title: &str) {
        let mut db = lock(&self.db);
        if let Some((_, d)) = db.dashboards.iter_mut().find(|(_, d)| d["uid"] == uid) {
            d["title"] = json!(title);
            d["version"] = json!(d["version"].as_u64().unwrap_or(0) + 1);
        }
    }

    /// The stored dashboard with `uid`, as Grafana saved it.
    pub fn dashboard(&self, uid: &str) -> Option<Value> {
        lock(&self.db)
            .dashboards
            .iter()
            .find(|(_, d)| d["uid"] == uid)
            .map(|(_, d)| d.clone())
    }

    /// From now on, answer `token` as `state` says.
    pub fn token_state(&self, token: &str, state: TokenState) {
        lock(&self.db).token_states.push((token.to_owned(), state));
    }

    /// The stored datasource with `uid`.
    pub fn datasource(&self, uid: &str) -> Option<Value> {
        lock(&self.db)
            .datasources
            .iter()
            .find(|d| d["uid"] == uid)
            .cloned()
    }
}

impl Drop for GrafanaFixture {
    fn drop(&mut self) {
        self.task.abort();
        if std::thread::panicking() {
            return;
        }
        crate::assert_calls_came("Grafana", &self.expected, &lock(&self.db).calls);
    }
}

/// Grafana's 401 for a request without a token it takes; `None` when it may pass.
fn refusal(headers: &HeaderMap) -> Option<Response> {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Some(answer(
            StatusCode::UNAUTHORIZED,
            json!({"message": "Unauthorized"}),
        ));
    };
    match value.strip_prefix("Bearer ") {
        Some(token) if token_valid(token) => None,
        _ => Some(answer(
            StatusCode::UNAUTHORIZED,
            json!({"message": "Invalid API key", "messageId": "api-key.invalid", "statusCode": 401}),
        )),
    }
}

/// The answer to a token in one of the [`TokenState`]s; `None` for one that may pass.
fn token_refusal(db: &Db, headers: &HeaderMap, method: &Method, path: &str) -> Option<Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())?
        .strip_prefix("Bearer ")?;
    let (_, state) = db.token_states.iter().find(|(t, _)| t == token)?;
    let unauthorized = |id: &str, message: &str| {
        answer(
            StatusCode::UNAUTHORIZED,
            json!({"message": message, "messageId": id, "statusCode": 401}),
        )
    };
    match state {
        TokenState::Unknown => Some(unauthorized("api-key.invalid", "Invalid API key")),
        TokenState::Expired => Some(unauthorized("api-key.expired", "Expired API key")),
        TokenState::Revoked => Some(unauthorized("api-key.revoked", "Revoked API key")),
        // Access control's refusal (`pkg/api/accesscontrol.go`, `deny`), for any change.
        TokenState::Viewer if *method != Method::GET => {
            let action = match path.split('/').nth(2) {
                Some("datasources") => "datasources:create",
                Some("folders") => "folders:create",
                Some("dashboards") => "dashboards:create",
                _ => "alert.provisioning:write",
            };
            Some(answer(
                StatusCode::FORBIDDEN,
                json!({
                    "accessErrorId": "ACE0000000001",
                    "message": format!("You'll need additional permissions to perform this action. Permissions needed: {action}"),
                    "title": "Access denied"
                }),
            ))
        }
        TokenState::Viewer => None,
    }
}

/// Grafana 13 moves core Prometheus datasources that sign with SigV4 to the Amazon Prometheus
/// plugin's type (its `prometheusTypeMigration`, on by default; Amazon Managed Grafana's
/// "Using Grafana version 13" page): a datasource created or updated as `prometheus` with
/// `sigV4Auth` is stored, and read back, as `grafana-amazonprometheus-datasource`.
fn migrate_prometheus_type(version: &str, ds: &mut Value) {
    let major = version
        .split('.')
        .next()
        .and_then(|p| p.parse::<u32>().ok())
        .unwrap_or(0);
    if major >= 13 && ds["type"] == "prometheus" && ds["jsonData"]["sigV4Auth"] == true {
        ds["type"] = json!("grafana-amazonprometheus-datasource");
    }
}

fn before_11_3(version: &str) -> bool {
    let mut parts = version.split('.').filter_map(|p| p.parse::<u32>().ok());
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) < (11, 3)
}

async fn handle(State(db): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let method = parts.method.clone();
    lock(&db).calls.push(format!("{method} {path}"));
    if method == Method::GET && path == "/api/health" {
        let version = lock(&db).version.clone();
        return answer(
            StatusCode::OK,
            json!({"commit": "fixture", "database": "ok", "version": version}),
        );
    }
    if let Some(refused) = refusal(&parts.headers) {
        return refused;
    }
    if let Some(refused) = token_refusal(&lock(&db), &parts.headers, &method, &path) {
        return refused;
    }
    let json_body = || serde_json::from_slice::<Value>(&body).ok();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut db = lock(&db);
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["api", "org"]) => answer(StatusCode::OK, json!({"id": 1, "name": "Main Org."})),
        ("GET", ["api", "datasources", "uid", uid]) => {
            match db.datasources.iter().find(|d| d["uid"] == *uid) {
                Some(ds) => answer(StatusCode::OK, ds.clone()),
                None => answer(
                    StatusCode::NOT_FOUND,
                    json!({"message": "Data source not found"}),
                ),
            }
        }
        ("GET", ["api", "datasources", "name", name]) => {
            let name = percent_decode(name);
            match db.datasources.iter().find(|d| d["name"] == name.as_str()) {
                Some(ds) => answer(StatusCode::OK, ds.clone()),
                None => answer(
                    StatusCode::NOT_FOUND,
                    json!({"message": "Data source not found"}),
                ),
            }
        }
        ("POST", ["api", "datasources"]) => {
            let Some(mut ds) = json_body() else {
                return bad_request(json!({"message": "bad request data"}));
            };
            if ds["type"].as_str().is_none_or(str::is_empty)
                || ds["access"].as_str().is_none_or(str::is_empty)
            {
                return bad_request(json!({"message": "bad request data"}));
            }
            if db.datasources.iter().any(|d| d["name"] == ds["name"]) {
                return answer(
                    StatusCode::CONFLICT,
                    json!({"message": "data source with the same name already exists"}),
                );
            }
            if db.datasources.iter().any(|d| d["uid"] == ds["uid"]) {
                return answer(
                    StatusCode::CONFLICT,
                    json!({"message": "data source with the same uid already exists"}),
                );
            }
            let id = db.next_id;
            db.next_id += 1;
            ds["id"] = json!(id);
            ds["version"] = json!(1);
            ds["readOnly"] = json!(false);
            secure_fields(&mut ds, None);
            migrate_prometheus_type(&db.version, &mut ds);
            db.datasources.push(ds.clone());
            answer(
                StatusCode::OK,
                json!({"message": "Datasource added", "id": id, "name": ds["name"], "datasource": ds}),
            )
        }
        ("PUT", ["api", "datasources", "uid", uid]) => {
            let Some(mut update) = json_body() else {
                return bad_request(json!({"message": "bad request data"}));
            };
            let Some(index) = db.datasources.iter().position(|d| d["uid"] == *uid) else {
                return answer(
                    StatusCode::NOT_FOUND,
                    json!({"message": "Data source not found"}),
                );
            };
            if db
                .datasources
                .iter()
                .any(|d| d["name"] == update["name"] && d["uid"] != *uid)
            {
                return answer(
                    StatusCode::CONFLICT,
                    json!({"message": "Failed to update datasource: data source with the same name already exists"}),
                );
            }
            let stored = db.datasources[index].clone();
            let stored_version = stored["version"].as_u64().unwrap_or(0);
            if update["version"]
                .as_u64()
                .is_some_and(|v| v < stored_version)
            {
                return answer(
                    StatusCode::CONFLICT,
                    json!({"message": "Datasource has already been updated by someone else. Please reload and try again"}),
                );
            }
            update["id"] = stored["id"].clone();
            update["uid"] = json!(uid);
            update["version"] = json!(stored_version + 1);
            update["readOnly"] = json!(false);
            secure_fields(&mut update, Some(&stored));
            migrate_prometheus_type(&db.version, &mut update);
            db.datasources[index] = update.clone();
            answer(
                StatusCode::OK,
                json!({"message": "Datasource updated", "id": update["id"], "name": update["name"], "datasource": update}),
            )
        }
        ("GET", ["api", "folders", uid]) => match db.folders.iter().find(|f| f["uid"] == *uid) {
            Some(folder) => answer(StatusCode::OK, folder.clone()),
            None => answer(
                StatusCode::NOT_FOUND,
                json!({"status": "not-found", "message": "folder not found"}),
            ),
        },
        ("POST", ["api", "folders"]) => {
            let Some(folder) = json_body() else {
                return bad_request(json!({"message": "bad request data"}));
            };
            let title = title_of(&folder);
            if title.is_empty() {
                return bad_request(json!({"message": "folder title cannot be empty"}));
            }
            if db.folders.iter().any(|f| f["uid"] == folder["uid"]) {
                return if before_11_3(&db.version) {
                    answer(
                        StatusCode::CONFLICT,
                        json!({"message": "a folder/dashboard with the same uid already exists"}),
                    )
                } else {
                    // Grafana 12 (k8s folders) maps AlreadyExists to a version mismatch.
                    answer(
                        StatusCode::PRECONDITION_FAILED,
                        json!({"status": "version-mismatch", "message": "the folder has been changed by someone else"}),
                    )
                };
            }
            if before_11_3(&db.version) && db.folders.iter().any(|f| f["title"] == title.as_str()) {
                return answer(
                    StatusCode::CONFLICT,
                    json!({"message": "a folder or dashboard in the general folder with the same name already exists"}),
                );
            }
            let id = db.next_id;
            db.next_id += 1;
            let stored = json!({"id": id, "uid": folder["uid"], "title": title, "version": 1});
            db.folders.push(stored.clone());
            answer(StatusCode::OK, stored)
        }
        ("POST", ["api", "dashboards", "import"]) => match json_body() {
            Some(request) => import(&mut db, &request),
            None => bad_request(json!({"message": "bad request data"})),
        },
        ("GET", ["api", "dashboards", "uid", uid]) => {
            match db.dashboards.iter().find(|(_, d)| d["uid"] == *uid) {
                Some((folder, d)) => answer(
                    StatusCode::OK,
                    json!({"dashboard": d, "meta": {"folderUid": folder, "version": d["version"], "slug": slug(d["title"].as_str().unwrap_or_default())}}),
                ),
                None => answer(
                    StatusCode::NOT_FOUND,
                    json!({"status": "not-found", "message": "Dashboard not found"}),
                ),
            }
        }
        (m, rest) => match alerting::route(&mut db, m, rest, &parts.headers, json_body()) {
            Some(response) => response,
            None => deletes::handle(&mut db, m, rest, parts.uri.query().unwrap_or_default()),
        },
    }
}

/// `%XX` escapes of a path segment decoded (datasource names hold spaces).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn slug(title: &str) -> String {
    let lower = title.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    words.join("-")
}

/// `${NAME}` replaced, for the names in `values`, in every string value (keys untouched).
fn substitute(value: &mut Value, values: &[(String, String)]) {
    match value {
        Value::String(text) => {
            let mut out = String::with_capacity(text.len());
            let mut rest = text.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                match after.find('}') {
                    Some(end) if end > 0 => {
                        let name = &after[..end];
                        match values.iter().find(|(n, _)| n == name) {
                            Some((_, v)) => out.push_str(v),
                            None => out.push_str(&rest[start..start + 2 + end + 1]),
                        }
                        rest = &after[end + 1..];
                    }
                    _ => {
                        out.push_str(&rest[start..]);
                        rest = "";
                    }
                }
            }
            out.push_str(rest);
            *text = out;
        }
        Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, values)),
        Value::Object(map) => map.values_mut().for_each(|v| substitute(v, values)),
        _ => {}
    }
}

/// `POST /api/dashboards/import`, as `pkg/services/dashboardimport` behaves.
fn import(db: &mut Db, request: &Value) -> Response {
    let Some(mut dashboard) = request.get("dashboard").filter(|d| d.is_object()).cloned() else {
        return answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": "Dashboard must be set"}),
        );
    };
    let inputs = request["inputs"].as_array().cloned().unwrap_or_default();
    let mut values = Vec::new();
    for wanted in dashboard["__inputs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let name = wanted["name"].as_str().unwrap_or_default().to_owned();
        if wanted["pluginId"] == "__expr__" {
            values.push((name, "__expr__".to_owned()));
            continue;
        }
        let given = inputs.iter().find(|i| {
            i["type"] == wanted["type"] && (i["name"] == name.as_str() || i["name"] == "*")
        });
        match given.and_then(|i| i["value"].as_str()) {
            Some(value) => values.push((name, value.to_owned())),
            // "Dashboard input variable: NAME missing from import command" is only logged.
            None => {
                return answer(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"message": "Failed to save dashboard"}),
                );
            }
        }
    }
    if let Some(map) = dashboard.as_object_mut() {
        map.remove("__inputs");
        map.remove("__requires");
        map.remove("__elements");
    }
    substitute(&mut dashboard, &values);
    let folder = request["folderUid"].as_str().unwrap_or_default().to_owned();
    if !folder.is_empty() && !db.folders.iter().any(|f| f["uid"] == folder.as_str()) {
        return bad_request(json!({"message": "folder not found"}));
    }
    let title = title_of(&dashboard);
    if title.is_empty() {
        return bad_request(
            json!({"status": "empty-name", "message": "Dashboard title cannot be empty"}),
        );
    }
    let uid = match dashboard["uid"].as_str() {
        Some(uid) if !uid.is_empty() => uid.to_owned(),
        _ => format!("gen{:08}", db.next_id),
    };
    if uid.len() > 40 {
        return bad_request(json!({"message": "uid too long, max 40 characters"}));
    }
    if !uid
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return bad_request(json!({"message": "uid contains illegal characters"}));
    }
    let overwrite = request["overwrite"].as_bool().unwrap_or(false);
    let existing = db
        .dashboards
        .iter()
        .position(|(_, d)| d["uid"] == uid.as_str());
    let version = match existing {
        Some(i) => {
            let stored = db.dashboards[i].1["version"].as_u64().unwrap_or(0);
            if !overwrite && dashboard["version"].as_u64() != Some(stored) {
                return answer(
                    StatusCode::PRECONDITION_FAILED,
                    json!({"status": "version-mismatch", "message": "The dashboard has been changed by someone else"}),
                );
            }
            stored + 1
        }
        None => 1,
    };
    if before_11_3(&db.version)
        && !overwrite
        && db
            .dashboards
            .iter()
            .any(|(f, d)| *f == folder && d["title"] == title.as_str() && d["uid"] != uid.as_str())
    {
        return answer(
            StatusCode::PRECONDITION_FAILED,
            json!({"status": "name-exists", "message": "A dashboard with the same name in the folder already exists"}),
        );
    }
    let id = match existing {
        Some(i) => db.dashboards[i].1["id"].as_u64().unwrap_or(0),
        None => {
            db.next_id += 1;
            db.next_id - 1
        }
    };
    dashboard["id"] = json!(id);
    dashboard["uid"] = json!(uid);
    dashboard["version"] = json!(version);
    dashboard["title"] = json!(title);
    match existing {
        Some(i) => db.dashboards[i] = (folder.clone(), dashboard),
        None => db.dashboards.push((folder.clone(), dashboard)),
    }
    let slug = slug(&title);
    answer(
        StatusCode::OK,
        json!({"uid": uid, "pluginId": "", "title": title, "imported": true,
               "importedUri": format!("db/{slug}"), "importedUrl": format!("/d/{uid}/{slug}"),
               "slug": slug, "dashboardId": id, "folderUid": folder, "removed": false}),
    )
}

/// Secrets are never echoed: `secureJsonData` becomes `secureJsonFields` (merged with those
/// already stored, as Grafana keeps old secrets that an update omits).
fn secure_fields(ds: &mut Value, stored: Option<&Value>) {
    let mut fields = stored
        .and_then(|s| s["secureJsonFields"].as_object().cloned())
        .unwrap_or_default();
    if let Some(secure) = ds.as_object_mut().and_then(|o| o.remove("secureJsonData")) {
        for key in secure.as_object().into_iter().flatten().map(|(k, _)| k) {
            fields.insert(key.clone(), json!(true));
        }
    }
    ds["secureJsonFields"] = Value::Object(fields);
}
