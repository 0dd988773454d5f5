//! An IAM policy simulator fixture: STS GetCallerIdentity, IAM GetRole and IAM
//! SimulatePrincipalPolicy, answered in the AWS query protocol's XML as the API references
//! document them (IAM API Reference, "SimulatePrincipalPolicy": `SimulatePrincipalPolicyResult`
//! with `EvaluationResults/member` of `EvalActionName`, `EvalResourceName`, `EvalDecision`
//! (`allowed`, `implicitDeny`, `explicitDeny`), `IsTruncated` and `Marker`;
//! <https://docs.aws.amazon.com/IAM/latest/APIReference/API_SimulatePrincipalPolicy.html>,
//! "GetRole": <https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetRole.html>; STS API
//! Reference, "GetCallerIdentity":
//! <https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html>).
//!
//! It exists because moto cannot simulate: moto 5's `iam/responses.py` has no
//! `simulate_principal_policy` (nor `simulate_custom_policy`), so a `--check` against moto
//! would only ever meet "not implemented". The tools reach it through `AWS_ENDPOINT_URL_IAM`
//! and `AWS_ENDPOINT_URL_STS`; every other service stays on the local stack.
//!
//! It decides from a policy it is given: the Allow statements of an IAM policy document (or a
//! plain allow-list), matched with IAM's `*` and `?` wildcards on action and resource; all
//! else is `implicitDeny`. The caller is an assumed role whose role has a path, so the check
//! must turn the session ARN into the role's IAM ARN (a simulation of any other principal is
//! refused as IAM refuses an unknown one). It pages its answers a few results at a time, so
//! that a client that does not follow `Marker` misses decisions. Calls a test expects and that
//! never came fail the test when the fixture is dropped.

use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// The account the fixture's caller is in (moto's, so ARNs match the local stack's).
pub const ACCOUNT: &str = "123456789012";
/// The caller's role, with its path: what `--check` must simulate.
pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/platform/ampkit-ci";
/// The caller as STS names it: a session of that role (no path).
pub const SESSION_ARN: &str = "arn:aws:sts::123456789012:assumed-role/ampkit-ci/preflight";

/// How many evaluation results one page holds: small, so that paging is exercised.
const PAGE: usize = 2;

#[derive(Default)]
struct Db {
    /// (action pattern, resource pattern) pairs the caller is allowed.
    allowed: Vec<(String, String)>,
    /// SimulatePrincipalPolicy answers AccessDenied.
    may_not_simulate: bool,
    calls: Vec<String>,
    /// Every (action, resource) simulated, in order.
    simulated: Vec<(String, String)>,
}

type Shared = Arc<Mutex<Db>>;

fn lock(db: &Shared) -> std::sync::MutexGuard<'_, Db> {
    db.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct IamSimulator {
    pub url: String,
    db: Shared,
    expected: Vec<String>,
    task: tokio::task::JoinHandle<()>,
}

impl IamSimulator {
    pub async fn start() -> IamSimulator {
        let db: Shared = Arc::new(Mutex::new(Db::default()));
        let app = Router::new().fallback(handle).with_state(db.clone());
        let (url, task) = crate::serve_on_loopback(app).await;
        IamSimulator {
            url,
            db,
            expected: Vec::new(),
            task,
        }
    }

    /// Allow what `policy`'s Allow statements allow (Action and Resource, string or list).
    pub fn allow_policy(&self, policy: &Value) {
        let statements = match &policy["Statement"] {
            Value::Array(list) => list.clone(),
            one => vec![one.clone()],
        };
        let strings = |v: &Value| -> Vec<String> {
            match v {
                Value::String(s) => vec![s.clone()],
                Value::Array(list) => list
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            }
        };
        let mut db = lock(&self.db);
        for statement in statements.iter().filter(|s| s["Effect"] == "Allow") {
            for action in strings(&statement["Action"]) {
                for resource in strings(&statement["Resource"]) {
                    db.allowed.push((action.clone(), resource));
                }
            }
        }
    }

    /// Allow `action` (a pattern) on every resource.
    pub fn allow(&self, action: &str) {
        lock(&self.db)
            .allowed
            .push((action.to_owned(), "*".to_owned()));
    }

    /// Answer SimulatePrincipalPolicy with AccessDenied, as IAM does for a caller without
    /// iam:SimulatePrincipalPolicy.
    pub fn refuse_simulation(&self) {
        lock(&self.db).may_not_simulate = true;
    }

    /// Calls that must come, in this order among the others: `Service Action`, e.g.
    /// `IAM SimulatePrincipalPolicy`.
    pub fn expect(&mut self, calls: &[&str]) {
        self.expected.extend(calls.iter().map(|c| (*c).to_owned()));
    }

    pub fn calls(&self) -> Vec<String> {
        lock(&self.db).calls.clone()
    }

    /// Every (action, resource) that was simulated.
    pub fn simulated(&self) -> Vec<(String, String)> {
        lock(&self.db).simulated.clone()
    }
}

impl Drop for IamSimulator {
    fn drop(&mut self) {
        self.task.abort();
        if std::thread::panicking() {
            return;
        }
        crate::assert_calls_came("IAM/STS", &self.expected, &lock(&self.db).calls);
    }
}

/// IAM's `*` (any run) and `?` (one character) wildcards, case-sensitive as for resources
/// (actions are compared lower-cased by the caller).
fn matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn xml(status: StatusCode, body: String) -> Response {
    (status, [("content-type", "text/xml")], body).into_response()
}

/// The query protocol's error shape (IAM's namespace; STS answers the same way).
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    xml(
        status,
        format!(
            "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>ampkit-fixture</RequestId></ErrorResponse>",
            escape(message)
        ),
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `Name.member.N` values of a form, in N's order.
fn members(form: &[(String, String)], name: &str) -> Vec<String> {
    let prefix = format!("{name}.member.");
    let mut found: Vec<(usize, String)> = form
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.parse().ok()?, v.clone())))
        .collect();
    found.sort();
    found.into_iter().map(|(_, v)| v).collect()
}

async fn handle(State(db): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let form: Vec<(String, String)> = form_urlencoded::parse(&body)
        .chain(form_urlencoded::parse(
            parts.uri.query().unwrap_or_default().as_bytes(),
        ))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let action = get("Action").unwrap_or_default();
    let version = get("Version").unwrap_or_default();
    // STS and IAM share the protocol; the API version says which service was meant.
    let service = if version == "2011-06-15" {
        "STS"
    } else {
        "IAM"
    };
    let mut db = lock(&db);
    db.calls.push(format!("{service} {action}"));
    match (service, action.as_str()) {
        ("STS", "GetCallerIdentity") => xml(
            StatusCode::OK,
            format!(
                "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><Arn>{SESSION_ARN}</Arn><UserId>AROAFIXTURE:preflight</UserId><Account>{ACCOUNT}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>ampkit-fixture</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
            ),
        ),
        ("IAM", "GetRole") => {
            let name = get("RoleName").unwrap_or_default();
            if name != "ampkit-ci" {
                return error(
                    StatusCode::NOT_FOUND,
                    "NoSuchEntity",
                    &format!("The role with name {name} cannot be found."),
                );
            }
            xml(
                StatusCode::OK,
                format!(
                    "<GetRoleResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><GetRoleResult><Role><Path>/platform/</Path><AssumeRolePolicyDocument>%7B%7D</AssumeRolePolicyDocument><MaxSessionDuration>3600</MaxSessionDuration><RoleId>AROAFIXTURE</RoleId><RoleName>ampkit-ci</RoleName><Arn>{ROLE_ARN}</Arn><CreateDate>2024-01-01T00:00:00Z</CreateDate></Role></GetRoleResult><ResponseMetadata><RequestId>ampkit-fixture</RequestId></ResponseMetadata></GetRoleResponse>"
                ),
            )
        }
        ("IAM", "SimulatePrincipalPolicy") => {
            let source = get("PolicySourceArn").unwrap_or_default();
            if db.may_not_simulate {
                return error(
                    StatusCode::FORBIDDEN,
                    "AccessDenied",
                    &format!(
                        "User: {SESSION_ARN} is not authorized to perform: iam:SimulatePrincipalPolicy on resource: {source}"
                    ),
                );
            }
            if source != ROLE_ARN {
                // IAM knows roles by their ARN with its path; a session ARN is no principal.
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidInput",
                    &format!(
                        "Invalid Entity Arn: {source} does not clearly define entity type and name."
                    ),
                );
            }
            let actions = members(&form, "ActionNames");
            let resources = {
                let given = members(&form, "ResourceArns");
                if given.is_empty() {
                    vec!["*".to_owned()]
                } else {
                    given
                }
            };
            let mut results: Vec<(String, String, &str)> = Vec::new();
            for action in &actions {
                for resource in &resources {
                    let allowed = db.allowed.iter().any(|(a, r)| {
                        matches(&a.to_ascii_lowercase(), &action.to_ascii_lowercase())
                            && matches(r, resource)
                    });
                    let decision = if allowed { "allowed" } else { "implicitDeny" };
                    results.push((action.clone(), resource.clone(), decision));
                }
            }
            let start: usize = get("Marker").and_then(|m| m.parse().ok()).unwrap_or(0);
            let max: usize = get("MaxItems")
                .and_then(|m| m.parse().ok())
                .unwrap_or(PAGE)
                .min(PAGE);
            let end = (start + max).min(results.len());
            let page = &results[start.min(end)..end];
            for (action, resource, _) in page {
                db.simulated.push((action.clone(), resource.clone()));
            }
            let members: String = page
                .iter()
                .map(|(action, resource, decision)| {
                    format!(
                        "<member><EvalResourceName>{}</EvalResourceName><EvalActionName>{action}</EvalActionName><EvalDecision>{decision}</EvalDecision><MatchedStatements/><MissingContextValues/></member>",
                        escape(resource)
                    )
                })
                .collect();
            let truncated = end < results.len();
            let marker = if truncated {
                format!("<Marker>{end}</Marker>")
            } else {
                String::new()
            };
            xml(
                StatusCode::OK,
                format!(
                    "<SimulatePrincipalPolicyResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><SimulatePrincipalPolicyResult><IsTruncated>{truncated}</IsTruncated>{marker}<EvaluationResults>{members}</EvaluationResults></SimulatePrincipalPolicyResult><ResponseMetadata><RequestId>ampkit-fixture</RequestId></ResponseMetadata></SimulatePrincipalPolicyResponse>"
                ),
            )
        }
        _ => error(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            &format!("the fixture does not serve {service} {action}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards_match_as_iam_does() {
        assert!(matches("aps:*", "aps:CreateWorkspace"));
        assert!(matches(
            "arn:aws:aps:eu-west-1:1:workspace/*",
            "arn:aws:aps:eu-west-1:1:workspace/*"
        ));
        assert!(matches(
            "arn:aws:aps:eu-west-1:1:workspace/ws-?",
            "arn:aws:aps:eu-west-1:1:workspace/ws-1"
        ));
        assert!(!matches(
            "arn:aws:aps:eu-west-1:1:workspace/ws-1",
            "arn:aws:aps:eu-west-1:1:workspace/*"
        ));
        assert!(!matches("sns:*", "aps:CreateWorkspace"));
    }
}
