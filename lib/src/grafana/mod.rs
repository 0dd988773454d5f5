//! Grafana's HTTP API, the part every Grafana-facing tool needs first: where Grafana is and
//! how to authenticate (a service-account token from an environment variable or a file, never
//! a flag value, never written out), which version answers (behaviours differ between 10.4 and
//! 12, reproduced by the Grafana fixture in tests/support/grafana), and the objects the tools ensure before
//! anything else: the Prometheus datasource of a workspace and a folder; and dashboard import.
//!
//! Ensure means: read by uid, create when absent, update only what differs, and say which of
//! the three happened, so that a re-run changes nothing and the ledger lists only creations.

pub mod delete;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::error::{Error, ErrorKind, Result};

pub mod alerting;
pub mod amg;
pub use amg::Session;

/// Where Grafana is and how to authenticate, as every Grafana-facing tool takes it.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct GrafanaArgs {
    /// Grafana's URL, e.g. https://g-abc123.grafana-workspace.eu-west-1.amazonaws.com
    #[arg(long, value_name = "URL")]
    pub grafana_url: Option<String>,
    /// Environment variable holding the service-account token
    #[arg(long, value_name = "VAR", default_value = "GRAFANA_TOKEN")]
    pub token_env: String,
    /// File holding the service-account token (instead of --token-env)
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Amazon Managed Grafana workspace (g-...): a service account and a short-lived token
    /// are made for this run and deleted at its end (no token to pass)
    #[arg(long, value_name = "ID", conflicts_with_all = ["token_file"])]
    pub amg_workspace_id: Option<String>,
}

/// A token that is never printed: `Debug` and `Display` show only that there is one.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub fn new(token: impl Into<String>) -> Self {
        Token(token.into())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl GrafanaArgs {
    /// The token: from `--token-file` when given, else from the variable `--token-env` names.
    pub fn token(&self) -> Result<Token> {
        let hint = "create a service-account token in Grafana (or let the tool make one on AMG), \
                    then export GRAFANA_TOKEN=..., or pass --token-env VAR or --token-file FILE";
        let text = match &self.token_file {
            Some(path) => std::fs::read_to_string(path).map_err(|e| {
                Error::usage(format!("--token-file {}: {e}", path.display())).with_hint(hint)
            })?,
            None => std::env::var(&self.token_env).map_err(|_| {
                Error::usage(format!(
                    "no Grafana token: the variable {} (--token-env) is not set",
                    self.token_env
                ))
                .with_hint(hint)
            })?,
        };
        let token = text.trim();
        if token.is_empty() {
            return Err(Error::usage("the Grafana token is empty").with_hint(hint));
        }
        Ok(Token::new(token))
    }
}

/// A Grafana version, as `/api/health` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
}

impl Version {
    /// `10.4.1`, `12.0.0-pre`, `11.3.0+security-01`.
    pub fn parse(text: &str) -> Option<Version> {
        let mut parts = text.trim().trim_start_matches('v').split(['.', '-', '+']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
        Some(Version { major, minor })
    }

    /// Whether titles must be unique (dashboards per folder, folders per parent): up to 11.2.
    pub fn unique_titles(self) -> bool {
        self < Version {
            major: 11,
            minor: 3,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A uid Grafana takes (at most 40 of `a-z 0-9 - _`), derived from `text`: the same text
/// gives the same uid on every run.
pub fn uid_from(prefix: &str, text: &str) -> String {
    let mut uid = format!("{prefix}-");
    for c in text.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            uid.push(c);
        } else if !uid.ends_with('-') {
            uid.push('-');
        }
    }
    let mut uid: String = uid.trim_end_matches('-').chars().take(40).collect();
    while uid.ends_with('-') {
        uid.pop();
    }
    uid
}

/// What an ensure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Created,
    Unchanged,
    Updated,
}

/// A Grafana instance, connected and authenticated.
#[derive(Debug, Clone)]
pub struct Grafana {
    http: reqwest::Client,
    base: String,
    token: Token,
    pub version: Version,
}

/// The datasource a tool wants: its uid is the identity, the rest is compared and updated.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasourceSpec {
    pub uid: String,
    pub name: String,
    /// `prometheus`, or `grafana-amazonprometheus-datasource` on AMG 12+.
    pub kind: String,
    pub url: String,
    pub json_data: Value,
}

impl DatasourceSpec {
    fn body(&self) -> Value {
        json!({
            "uid": self.uid,
            "name": self.name,
            "type": self.kind,
            "access": "proxy",
            "url": self.url,
            "jsonData": self.json_data,
        })
    }

    /// Whether an existing datasource already is this one (fields Grafana adds are ignored).
    /// A SigV4 Prometheus datasource is the same whether its type is core `prometheus` or the
    /// Amazon Prometheus plugin's: Grafana 13 migrates the one to the other by itself, and
    /// putting the old type back on every run would only be undone again.
    fn matches(&self, existing: &Value) -> bool {
        const SIGV4_PROMETHEUS: [&str; 2] = ["prometheus", "grafana-amazonprometheus-datasource"];
        let same_type = existing["type"] == self.kind.as_str()
            || (self.json_data["sigV4Auth"] == true
                && SIGV4_PROMETHEUS.contains(&self.kind.as_str())
                && existing["type"]
                    .as_str()
                    .is_some_and(|t| SIGV4_PROMETHEUS.contains(&t)));
        existing["name"] == self.name.as_str()
            && same_type
            && existing["url"] == self.url.as_str()
            && existing["access"] == "proxy"
            && self
                .json_data
                .as_object()
                .into_iter()
                .flatten()
                .all(|(k, v)| existing["jsonData"][k] == *v)
    }
}

/// Grafana's `message` of an error answer, or the status.
fn message_of(status: StatusCode, body: &Value) -> String {
    body["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| status.to_string())
}

impl Grafana {
    /// Connect: `GET /api/health` for the version, then one authenticated call, so that an
    /// unreachable Grafana (exit 1) or a refused token (exit 2) fails here, before any change.
    pub async fn connect(url: &str, token: Token) -> Result<Grafana> {
        let base = url.trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(
                Error::usage(format!("--grafana-url `{url}` is not an http(s) URL"))
                    .with_hint("e.g. https://g-abc123.grafana-workspace.eu-west-1.amazonaws.com"),
            );
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::internal(format!("could not build the HTTP client: {e}")))?;
        let health: Value = http
            .get(format!("{base}/api/health"))
            .send()
            .await
            .map_err(|e| {
                Error::remote(format!("Grafana at {base} cannot be reached: {e}"))
                    .with_hint("check --grafana-url and the network")
            })?
            .json()
            .await
            .map_err(|e| Error::remote(format!("{base}/api/health is not Grafana's: {e}")))?;
        let version = health["version"]
            .as_str()
            .and_then(Version::parse)
            .ok_or_else(|| {
                Error::remote(format!("{base}/api/health gives no version: {health}"))
                    .with_hint("check that --grafana-url points at Grafana itself")
            })?;
        let grafana = Grafana {
            http,
            base,
            token,
            version,
        };
        grafana.call(Method::GET, "/api/org", None).await?;
        Ok(grafana)
    }

    /// One API call: `(status, JSON body)` for any answer Grafana gives; an unreachable
    /// Grafana is an error, and so are 401 and 403, which no caller can act on.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token.0);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Error::remote(format!("{method} {path}: Grafana did not answer: {e}")))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match status {
            StatusCode::UNAUTHORIZED => Err(self.refused_token(&value)),
            StatusCode::FORBIDDEN => Err(Error::new(
                ErrorKind::Denied,
                format!(
                    "{method} {path}: Grafana at {} refused: {}",
                    self.base,
                    message_of(status, &value)
                ),
            )
            .with_hint(
                "the token's service account lacks the role for this: give it the Admin role \
                 (AMG: CreateWorkspaceServiceAccount with grafanaRole ADMIN; datasources and \
                 folders need it)",
            )),
            _ => Ok((status, value)),
        }
    }

    /// Grafana's 401, by its messageId: what is wrong with the token, and what to do.
    fn refused_token(&self, body: &Value) -> Error {
        let base = &self.base;
        let (what, hint) = match body["messageId"].as_str() {
            Some("api-key.expired") => (
                "the token has expired".to_owned(),
                "make a new service-account token (AMG's live at most 30 days), or let \
                 grafana-import make one for the run with --amg-workspace-id",
            ),
            Some("api-key.revoked") => (
                "the token has been revoked".to_owned(),
                "make a new service-account token (glsa_...)",
            ),
            Some("api-key.invalid") => (
                "this Grafana does not know the token: it was made in another Grafana (another \
                 AMG workspace) or deleted"
                    .to_owned(),
                "check that --grafana-url is the workspace the token was made in, or make a \
                 token there (glsa_...)",
            ),
            _ => (
                "the token was not accepted".to_owned(),
                "the token is wrong, expired or revoked: make a new service-account token (glsa_...)",
            ),
        };
        Error::usage(format!(
            "Grafana at {base} refused the token: {what} ({})",
            message_of(StatusCode::UNAUTHORIZED, body)
        ))
        .with_hint(hint)
    }

    fn failed(&self, doing: &str, status: StatusCode, body: &Value) -> Error {
        let kind = match status.as_u16() {
            400 | 409 | 412 | 422 => ErrorKind::Input,
            404 => ErrorKind::NotFound,
            _ => ErrorKind::Remote,
        };
        Error::new(
            kind,
            format!(
                "{doing}: Grafana answered {status}: {}",
                message_of(status, body)
            ),
        )
    }

    /// `GET path`: the object, or `None` when Grafana says 404; `what` names it in errors.
    async fn get_optional(&self, path: &str, what: &str) -> Result<Option<Value>> {
        let (status, body) = self.call(Method::GET, path, None).await?;
        match status {
            StatusCode::OK => Ok(Some(body)),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.failed(&format!("reading {what}"), status, &body)),
        }
    }

    /// Grafana's base URL, as given.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The datasource named `name` (legacy dashboards refer to datasources by name), if any.
    pub async fn datasource_by_name(&self, name: &str) -> Result<Option<Value>> {
        let encoded: String =
            percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        self.get_optional(
            &format!("/api/datasources/name/{encoded}"),
            &format!("datasource `{name}`"),
        )
        .await
    }

    /// The datasource with `uid`, if there is one.
    pub async fn datasource(&self, uid: &str) -> Result<Option<Value>> {
        self.get_optional(
            &format!("/api/datasources/uid/{uid}"),
            &format!("datasource {uid}"),
        )
        .await
    }

    /// Create the datasource, or update it by uid when it differs.
    pub async fn ensure_datasource(&self, spec: &DatasourceSpec) -> Result<Outcome> {
        let name_clash = |body: &Value| {
            Error::input(format!(
                "Grafana has another datasource named `{}` (not uid {}): {}",
                spec.name,
                spec.uid,
                message_of(StatusCode::CONFLICT, body)
            ))
            .with_hint("rename or delete that datasource in Grafana, or choose another name")
        };
        match self.datasource(&spec.uid).await? {
            None => {
                let (status, body) = self
                    .call(Method::POST, "/api/datasources", Some(&spec.body()))
                    .await?;
                match status {
                    StatusCode::OK => Ok(Outcome::Created),
                    StatusCode::CONFLICT => Err(name_clash(&body)),
                    _ => Err(self.failed("creating the datasource", status, &body)),
                }
            }
            Some(existing) if spec.matches(&existing) => Ok(Outcome::Unchanged),
            Some(existing) => {
                let mut body = spec.body();
                // Keep whatever else is set (secure fields are merged by Grafana itself) and
                // say which version we read, so that a concurrent edit is not overwritten.
                if let (Some(out), Some(old)) = (
                    body["jsonData"].as_object_mut(),
                    existing["jsonData"].as_object(),
                ) {
                    for (k, v) in old {
                        out.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                body["version"] = existing["version"].clone();
                let (status, answer) = self
                    .call(
                        Method::PUT,
                        &format!("/api/datasources/uid/{}", spec.uid),
                        Some(&body),
                    )
                    .await?;
                match status {
                    StatusCode::OK => Ok(Outcome::Updated),
                    StatusCode::CONFLICT if message_of(status, &answer).contains("same name") => {
                        Err(name_clash(&answer))
                    }
                    _ => Err(self.failed("updating the datasource", status, &answer)),
                }
            }
        }
    }

    /// The folder with `uid`, if there is one.
    pub async fn folder(&self, uid: &str) -> Result<Option<Value>> {
        self.get_optional(&format!("/api/folders/{uid}"), &format!("folder {uid}"))
            .await
    }

    /// Create the folder `uid` titled `title`, or keep it (a folder someone renamed keeps its
    /// title: its uid is what the tools rely on).
    pub async fn ensure_folder(&self, uid: &str, title: &str) -> Result<Outcome> {
        if self.folder(uid).await?.is_some() {
            return Ok(Outcome::Unchanged);
        }
        let (status, body) = self
            .call(
                Method::POST,
                "/api/folders",
                Some(&json!({"uid": uid, "title": title})),
            )
            .await?;
        match status {
            StatusCode::OK => Ok(Outcome::Created),
            StatusCode::CONFLICT if self.version.unique_titles() => Err(Error::input(format!(
                "Grafana {} has another folder titled `{title}`: {}",
                self.version,
                message_of(status, &body)
            ))
            .with_hint(
                "titles are unique per parent before Grafana 11.3: pass another --folder title",
            )),
            _ => Err(self.failed(&format!("creating folder `{title}`"), status, &body)),
        }
    }
}

/// One `inputs[]` entry of an import: satisfies the dashboard's `__inputs` entry of the same
/// `type` whose `name` is `name` (or any name, with `*`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportInput {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub plugin_id: String,
    pub value: String,
}

/// What Grafana says of an imported dashboard.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub uid: String,
    pub title: String,
    /// Grafana's path of it, `/d/<uid>/<slug>`.
    pub url: String,
    pub folder_uid: String,
}

impl Grafana {
    /// `POST /api/dashboards/import`: Grafana maps `__inputs` to `inputs`, substitutes `${NAME}`
    /// in string values and saves. `overwrite: false` refuses to replace a dashboard whose
    /// version someone else changed (412), which is reported with the way out.
    pub async fn import_dashboard(
        &self,
        dashboard: &Value,
        folder_uid: &str,
        inputs: &[ImportInput],
        overwrite: bool,
    ) -> Result<Imported> {
        let title = dashboard["title"]
            .as_str()
            .unwrap_or("(untitled)")
            .to_owned();
        let body = json!({
            "dashboard": dashboard,
            "folderUid": folder_uid,
            "inputs": inputs,
            "overwrite": overwrite,
        });
        let (status, answer) = self
            .call(Method::POST, "/api/dashboards/import", Some(&body))
            .await?;
        match status {
            StatusCode::OK => Ok(Imported {
                uid: answer["uid"].as_str().unwrap_or_default().to_owned(),
                title: answer["title"].as_str().unwrap_or(&title).to_owned(),
                url: answer["importedUrl"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                folder_uid: answer["folderUid"]
                    .as_str()
                    .unwrap_or(folder_uid)
                    .to_owned(),
            }),
            StatusCode::PRECONDITION_FAILED if answer["status"] == "name-exists" => {
                Err(Error::input(format!(
                    "another dashboard is titled `{title}` in that folder, and Grafana {} wants titles unique: {}",
                    self.version,
                    message_of(status, &answer)
                ))
                .with_hint("import it into another folder, or pass --overwrite to replace the other one"))
            }
            StatusCode::PRECONDITION_FAILED => Err(Error::input(format!(
                "dashboard `{title}` was changed in Grafana since it was imported: {}",
                message_of(status, &answer)
            ))
            .with_hint("pass --overwrite to replace it with this version")),
            // An unmatched `__inputs` entry ends as a bare 500 "Failed to save dashboard".
            StatusCode::INTERNAL_SERVER_ERROR => Err(Error::remote(format!(
                "importing dashboard `{title}`: Grafana answered 500: {}",
                message_of(status, &answer)
            ))
            .with_hint(
                "Grafana gives this when an `__inputs` entry has no input of its type and name; \
                 check the dashboard's __inputs",
            )),
            _ => Err(self.failed(&format!("importing dashboard `{title}`"), status, &answer)),
        }
    }

    /// The dashboard with `uid` as Grafana stores it (`dashboard` and `meta`), if any.
    pub async fn dashboard(&self, uid: &str) -> Result<Option<Value>> {
        self.get_optional(
            &format!("/api/dashboards/uid/{uid}"),
            &format!("dashboard {uid}"),
        )
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_stable_and_fit_grafana() {
        assert_eq!(uid_from("ampkit", "Service mesh"), "ampkit-service-mesh");
        assert_eq!(uid_from("ampkit", "ws-1234"), "ampkit-ws-1234");
        let long = uid_from("ampkit", &"x".repeat(100));
        assert_eq!(long.len(), 40);
        assert_eq!(uid_from("ampkit", "  Ünï  Mesh!! "), "ampkit-n-mesh");
    }

    #[test]
    fn versions_parse_and_order() {
        let v = |s| Version::parse(s).unwrap();
        assert_eq!(
            v("10.4.1"),
            Version {
                major: 10,
                minor: 4
            }
        );
        assert_eq!(
            v("12.0.0-pre"),
            Version {
                major: 12,
                minor: 0
            }
        );
        assert_eq!(
            v("11.3.0+security-01"),
            Version {
                major: 11,
                minor: 3
            }
        );
        assert!(v("10.4.1").unique_titles() && v("11.2.9").unique_titles());
        assert!(!v("11.3.0").unique_titles() && !v("12.0.0").unique_titles());
        assert!(Version::parse("grafana").is_none());
    }

    #[test]
    fn the_token_comes_from_a_file_or_a_variable_and_never_prints() {
        let file = tempfile_with("  glsa_abc_12345678\n");
        let args = GrafanaArgs {
            token_file: Some(file.clone()),
            ..GrafanaArgs::default()
        };
        let token = args.token().unwrap();
        assert_eq!(token.0, "glsa_abc_12345678");
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");
        let missing = GrafanaArgs {
            token_env: "AMPKIT_TEST_NO_SUCH_TOKEN_VARIABLE".into(),
            ..GrafanaArgs::default()
        };
        let err = missing.token().unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.message.contains("AMPKIT_TEST_NO_SUCH_TOKEN_VARIABLE"),
            "{}",
            err.message
        );
        let _ = std::fs::remove_file(file);
    }

    fn tempfile_with(text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("ampkit-token-{}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_datasource_matches_when_the_fields_we_set_are_the_same() {
        let spec = DatasourceSpec {
            uid: "amp-ws-1".into(),
            name: "AMP ws-1".into(),
            kind: "prometheus".into(),
            url: "https://x/workspaces/ws-1/".into(),
            json_data: json!({"sigV4Auth": true, "sigV4Region": "eu-west-1"}),
        };
        let mut existing = spec.body();
        existing["id"] = json!(7);
        existing["jsonData"]["timeInterval"] = json!("15s");
        assert!(spec.matches(&existing));
        existing["jsonData"]["sigV4Region"] = json!("us-east-1");
        assert!(!spec.matches(&existing));
    }
}
