//! Kubernetes, the thin part the tools share: name rules, metadata carrying our label, the
//! namespace object, the client from the usual kubeconfig, kube errors as ours, manifests as a
//! YAML stream, and (feature `test-support`) a scripted API server for tests.
//!
//! Kubernetes cannot run here, so the calls stay thin: get, create, patch, list. The rest of
//! a tool's Kubernetes work is building typed k8s-openapi objects, which tests check as data.

use std::collections::BTreeMap;
use std::fmt::Display;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde_json::Value;

use crate::doc::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::error::{Error, ErrorKind, Result};
use crate::poll::{self, Attempt, Pace, Progress};

/// Which of Kubernetes' name rules an object's name follows (the apimachinery validators of
/// the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 label: namespaces, container names. At most 63 of `a-z 0-9 -`, starting and
    /// ending with a letter or digit.
    Dns1123Label,
    /// RFC 1123 subdomain: service accounts, config maps, most objects. At most 253 of
    /// `a-z 0-9 - .`, starting and ending with a letter or digit.
    Dns1123Subdomain,
    /// RFC 1035 label: services. As an RFC 1123 label, but starting with a letter.
    Dns1035Label,
}

impl NameRule {
    fn describe(self) -> &'static str {
        match self {
            NameRule::Dns1123Label => {
                "at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
            }
            NameRule::Dns1123Subdomain => {
                "at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
            }
            NameRule::Dns1035Label => {
                "at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit"
            }
        }
    }

    pub fn allows(self, name: &str) -> bool {
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let bytes = name.as_bytes();
        let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
            return false;
        };
        let (max, dot) = match self {
            NameRule::Dns1123Subdomain => (253, true),
            NameRule::Dns1123Label | NameRule::Dns1035Label => (63, false),
        };
        let first_ok = match self {
            NameRule::Dns1035Label => first.is_ascii_lowercase(),
            _ => alnum(first),
        };
        bytes.len() <= max
            && first_ok
            && alnum(last)
            && bytes
                .iter()
                .all(|&b| alnum(b) || b == b'-' || (dot && b == b'.'))
            // In a subdomain every dot-separated part is itself a label.
            && (!dot || name.split('.').all(|part| {
                part.as_bytes().first().is_some_and(|&b| alnum(b))
                    && part.as_bytes().last().is_some_and(|&b| alnum(b))
            }))
    }

    /// For clap value parsers: the error names the value and the rule.
    pub fn check(self, what: &str, name: &str) -> std::result::Result<(), String> {
        if self.allows(name) {
            Ok(())
        } else {
            Err(format!(
                "`{name}` is not a valid {what} name: {}",
                self.describe()
            ))
        }
    }

    /// For flags checked after parsing: a usage error naming the flag.
    pub fn validate(self, flag: &str, name: &str) -> Result<()> {
        self.check("Kubernetes", name).map_err(|_| {
            Error::usage(format!("invalid {flag} `{name}`: not a Kubernetes name"))
                .with_hint(format!("use {}", self.describe()))
        })
    }
}

/// Metadata for an object ampkit makes: its name, namespace and `app.kubernetes.io/managed-by`.
pub fn metadata(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(BTreeMap::from([(
            MANAGED_BY_LABEL.to_owned(),
            MANAGED_BY.1.to_owned(),
        )])),
        ..ObjectMeta::default()
    }
}

pub fn namespace(name: &str) -> Namespace {
    Namespace {
        metadata: metadata(name, None),
        ..Namespace::default()
    }
}

/// A typed object as JSON.
pub fn to_value(object: &impl Serialize) -> Result<Value> {
    serde_json::to_value(object)
        .map_err(|e| Error::internal(format!("could not serialize a Kubernetes object: {e}")))
}

/// Several objects as one multi-document YAML stream, for `kubectl apply -f`.
pub fn to_yaml_stream(objects: &[Value]) -> Result<String> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(
            &serde_norway::to_string(object)
                .map_err(|e| Error::internal(format!("could not render YAML: {e}")))?,
        );
    }
    Ok(out)
}

/// Connect with the usual kubeconfig inference (KUBECONFIG, ~/.kube/config, in-cluster).
/// `instead` says what the user may do rather than configure a cluster (`pass --no-kube`).
pub async fn client(instead: &str) -> Result<kube::Client> {
    kube::Client::try_default().await.map_err(|e| {
        Error::usage(format!("no usable Kubernetes configuration: {e}")).with_hint(format!(
            "set KUBECONFIG (e.g. `aws eks update-kubeconfig --name CLUSTER`), or {instead}"
        ))
    })
}

/// A kube error as ours, prefixed with what was being done: a 404 is "not found" (exit 3),
/// anything else a remote failure with a hint to check the cluster (or do `instead`).
pub fn error(doing: impl Display, instead: &str) -> impl FnOnce(kube::Error) -> Error {
    move |e| {
        let kind = match &e {
            kube::Error::Api(status) if status.code == 404 => ErrorKind::NotFound,
            _ => ErrorKind::Remote,
        };
        Error::new(kind, format!("{doing}: {e}")).with_hint(format!(
            "check the cluster is reachable with the current kubeconfig, or {instead}"
        ))
    }
}

/// A scripted Kubernetes API server for tests (kube-rs's documented approach: the client is a
/// tower `Service`, and `tower_test::mock::pair` hands each request to the script). The
/// script lists the exact calls expected, in order; a missing, different or extra call fails
/// the test.
pub mod service_account;

#[cfg(any(test, feature = "test-support"))]
pub mod testing {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::{Value, json};

    /// One expected call and its reply.
    pub struct Call {
        method: Method,
        path: String,
        query: Option<String>,
        body: Option<Value>,
        status: StatusCode,
        reply: Value,
    }

    impl Call {
        pub fn new(method: Method, path: impl Into<String>) -> Self {
            Call {
                method,
                path: path.into(),
                query: None,
                body: None,
                status: StatusCode::OK,
                reply: json!({}),
            }
        }

        pub fn get(path: impl Into<String>) -> Self {
            Self::new(Method::GET, path)
        }

        /// The query string must contain this.
        pub fn query(mut self, fragment: impl Into<String>) -> Self {
            self.query = Some(fragment.into());
            self
        }

        /// The body the client must send, compared as JSON.
        pub fn body(mut self, body: Value) -> Self {
            self.body = Some(body);
            self
        }

        pub fn reply(mut self, status: StatusCode, reply: Value) -> Self {
            self.status = status;
            self.reply = reply;
            self
        }
    }

    /// The API's 404 answer.
    pub fn not_found(kind: &str, name: &str) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("{kind} \"{name}\" not found"), "reason": "NotFound", "code": 404})
    }

    /// The running script; [`ApiServer::verify`] fails the test unless every call came.
    pub struct ApiServer(tokio::task::JoinHandle<()>);

    impl ApiServer {
        pub async fn verify(self) {
            if let Err(e) = self.0.await {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }

    /// A client whose every request is checked against `calls`.
    pub fn serve(calls: Vec<Call>) -> (kube::Client, ApiServer) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            for call in calls {
                let (request, send) = handle.next_request().await.unwrap_or_else(|| {
                    panic!("the client never sent {} {}", call.method, call.path)
                });
                assert_eq!(request.method(), call.method, "method of {}", call.path);
                assert_eq!(request.uri().path(), call.path);
                if let Some(fragment) = &call.query {
                    let query = request.uri().query().unwrap_or_default().to_owned();
                    assert!(
                        query.contains(fragment.as_str()),
                        "query `{query}` lacks `{fragment}`"
                    );
                }
                let bytes = request.into_body().collect_bytes().await.unwrap();
                if let Some(body) = call.body {
                    let sent: Value = serde_json::from_slice(&bytes).unwrap();
                    assert_eq!(sent, body, "body of {} {}", call.method, call.path);
                }
                send.send_response(
                    Response::builder()
                        .status(call.status)
                        .body(Body::from(call.reply.to_string().into_bytes()))
                        .unwrap(),
                );
            }
            assert!(
                handle.next_request().await.is_none(),
                "an unexpected extra call arrived"
            );
        });
        (kube::Client::new(service, "default"), ApiServer(server))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_kubernetes_rules() {
        use NameRule::*;
        let long_label = "a".repeat(63);
        let too_long_label = "a".repeat(64);
        let long_subdomain = format!(
            "{}.{}.{}.{}",
            long_label,
            long_label,
            long_label,
            "a".repeat(61)
        );
        assert_eq!(long_subdomain.len(), 253);
        for (rule, name, ok) in [
            (Dns1123Label, "grafana-agent", true),
            (Dns1123Label, "0abc", true),
            (Dns1123Label, long_label.as_str(), true),
            (Dns1123Label, too_long_label.as_str(), false),
            (Dns1123Label, "", false),
            (Dns1123Label, "Agent", false),
            (Dns1123Label, "-agent", false),
            (Dns1123Label, "agent-", false),
            (Dns1123Label, "a.b", false),
            (Dns1123Label, "a_b", false),
            (Dns1123Subdomain, "my.service-account", true),
            (Dns1123Subdomain, long_subdomain.as_str(), true),
            (Dns1123Subdomain, &format!("{long_subdomain}a"), false),
            (Dns1123Subdomain, "a..b", false),
            (Dns1123Subdomain, "a.-b", false),
            (Dns1123Subdomain, ".a", false),
            (Dns1123Subdomain, "A.b", false),
            (Dns1035Label, "dj", true),
            (Dns1035Label, "0dj", false),
            (Dns1035Label, "dj-", false),
        ] {
            assert_eq!(rule.allows(name), ok, "{rule:?} {name:?}");
        }
    }

    #[test]
    fn refusals_name_the_flag_and_the_rule() {
        let err = NameRule::Dns1123Label
            .validate("--namespace", "Prod")
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.message.contains("--namespace"), "{}", err.message);
        assert!(err.hint.unwrap().contains("lowercase"));
        let text = NameRule::Dns1035Label.check("service", "9dj").unwrap_err();
        assert!(
            text.contains("`9dj`") && text.contains("starting with a letter"),
            "{text}"
        );
    }

    #[test]
    fn our_objects_carry_the_managed_by_label() {
        let ns = to_value(&namespace("grafana-agent")).unwrap();
        assert_eq!(ns["metadata"]["name"], "grafana-agent");
        assert_eq!(ns["metadata"]["labels"][MANAGED_BY_LABEL], "ampkit");
        let stream = to_yaml_stream(&[ns.clone(), ns]).unwrap();
        assert_eq!(stream.matches("---\n").count(), 2);
    }
}

// ---- Deleting what irsa-role created (teardown) ---------------------------------------------

/// What is at a name teardown was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Absent,
    /// There, but without our `app.kubernetes.io/managed-by` label: someone else's.
    NotOurs,
    Ours,
}

/// Look up `name` and check our label.
pub async fn find_ours<K>(api: &kube::Api<K>, name: &str) -> Result<Found>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let found = api
        .get_opt(name)
        .await
        .map_err(error(format!("reading {name}"), "pass --no-kube"))?;
    Ok(match found {
        None => Found::Absent,
        Some(object) => {
            let ours = object
                .meta()
                .labels
                .as_ref()
                .and_then(|l| l.get(MANAGED_BY_LABEL))
                .is_some_and(|v| v == MANAGED_BY.1);
            if ours { Found::Ours } else { Found::NotOurs }
        }
    })
}

/// Delete `name` and wait (bounded) until the API no longer has it: a namespace is first
/// Terminating while its contents go. `false` when it was already gone.
pub async fn delete_and_wait<K>(
    api: &kube::Api<K>,
    name: &str,
    timeout: std::time::Duration,
) -> Result<bool>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &kube::api::DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(false),
        Err(e) => {
            return Err(error(format!("deleting {name}"), "delete it with kubectl")(
                e,
            ));
        }
    }
    // No progress line: the callers show their own ("deleting namespace ...").
    let quiet = Progress::new("ampkit", false);
    let pace = Pace::doubling(
        std::time::Duration::from_millis(200),
        std::time::Duration::from_secs(5),
        timeout,
    );
    poll::until(
        &format!("{name} to go"),
        pace,
        &quiet,
        move || async move {
            let still = api
                .get_opt(name)
                .await
                .map_err(error(format!("reading {name}"), "check with kubectl"))?;
            Ok(match still {
                None => Attempt::Done(()),
                Some(_) => Attempt::Pending("still there".to_owned()),
            })
        },
        |_| {
            Error::remote(format!(
                "{name} is still there {}s after its delete",
                timeout.as_secs()
            ))
            .with_hint("check what holds it up with `kubectl describe`, then run teardown again")
        },
    )
    .await?;
    Ok(true)
}
