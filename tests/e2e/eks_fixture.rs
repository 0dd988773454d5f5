//! A fixture for the EKS API calls moto 5.2 does not implement (Pod Identity associations,
//! access entries, and DescribeCluster's `accessConfig`).
//!
//! It speaks EKS REST-JSON the way the AWS SDK for Rust sends it (aws-sdk-eks's serializers:
//! method, path, query, body members) for one cluster, keeps the associations and access
//! entries it holds in memory and answers in the documented shapes (EKS API Reference:
//! DescribeCluster, CreateAccessEntry, DescribeAccessEntry, DeleteAccessEntry,
//! ListAccessEntries), with `ResourceNotFoundException` for any other cluster, association or
//! entry. The test names the operations it expects, in order; a call that was not expected,
//! or that breaks the request shape, is answered with an error and fails the test, as does an
//! expected call that never came (checked on drop).

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// One request the fixture accepted.
#[derive(Debug, Clone)]
pub struct Call {
    pub operation: &'static str,
    pub body: Value,
}

struct Fixture {
    cluster: String,
    cluster_arn: String,
    region: String,
    expected: VecDeque<&'static str>,
    violations: Vec<String>,
    calls: Vec<Call>,
    associations: Vec<Value>,
    /// Access entries, in the order they were made (EKS identifies one by its principal).
    access_entries: Vec<Value>,
    /// DescribeCluster's `accessConfig.authenticationMode`.
    authentication_mode: String,
    next_id: u64,
}

type Shared = Arc<Mutex<Fixture>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Fixture> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub struct EksFixture {
    pub url: String,
    pub cluster_arn: String,
    shared: Shared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

const ACCOUNT: &str = "123456789012";

impl EksFixture {
    /// Serve EKS for one cluster, in `region`, on 127.0.0.1.
    pub fn start(cluster: &str, region: &str) -> EksFixture {
        let cluster_arn = format!("arn:aws:eks:{region}:{ACCOUNT}:cluster/{cluster}");
        let shared: Shared = Arc::new(Mutex::new(Fixture {
            cluster: cluster.to_owned(),
            cluster_arn: cluster_arn.clone(),
            region: region.to_owned(),
            expected: VecDeque::new(),
            violations: Vec::new(),
            calls: Vec::new(),
            associations: Vec::new(),
            access_entries: Vec::new(),
            // What a cluster made in the console has; the API's default is CONFIG_MAP.
            authentication_mode: "API_AND_CONFIG_MAP".to_owned(),
            next_id: u64::from(std::process::id()) << 20,
        }));
        let listener = TcpListener::bind("127.0.0.1:0").expect("the EKS fixture binds");
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        EksFixture {
            url,
            cluster_arn,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The operations the next run must call, in this order.
    pub fn expect(&self, operations: &[&'static str]) {
        lock(&self.shared).expected.extend(operations);
    }

    /// Every expected call came and nothing else did.
    pub fn assert_satisfied(&self) {
        let fixture = lock(&self.shared);
        assert!(
            fixture.violations.is_empty(),
            "the EKS fixture got calls it should not have:\n{}",
            fixture.violations.join("\n")
        );
        assert!(
            fixture.expected.is_empty(),
            "expected EKS calls never arrived: {:?}",
            fixture.expected
        );
    }

    /// The accepted requests of one operation, in order.
    pub fn received(&self, operation: &str) -> Vec<Value> {
        lock(&self.shared)
            .calls
            .iter()
            .filter(|c| c.operation == operation)
            .map(|c| c.body.clone())
            .collect()
    }

    /// The associations the fixture holds.
    pub fn associations(&self) -> Vec<Value> {
        lock(&self.shared).associations.clone()
    }

    /// The access entries the fixture holds.
    pub fn access_entries(&self) -> Vec<Value> {
        lock(&self.shared).access_entries.clone()
    }

    /// Set the cluster's authentication mode (API, API_AND_CONFIG_MAP, CONFIG_MAP).
    pub fn set_authentication_mode(&self, mode: &str) {
        lock(&self.shared).authentication_mode = mode.to_owned();
    }

    /// An access entry someone else made (not tagged ours), as AMP makes one for its scrapers.
    pub fn add_foreign_access_entry(&self, principal_arn: &str, username: &str) {
        let mut fixture = lock(&self.shared);
        let entry = access_entry(&mut fixture, principal_arn, Some(username), &json!({}), 1.0);
        fixture.access_entries.push(entry);
    }

    /// Point an association at another role, as someone else would.
    pub fn repoint(&self, association_id: &str, role_arn: &str) {
        let mut fixture = lock(&self.shared);
        let association = fixture
            .associations
            .iter_mut()
            .find(|a| a["associationId"] == association_id)
            .expect("the association exists in the fixture");
        association["roleArn"] = json!(role_arn);
    }
}

impl EksFixture {
    /// An association someone else made (not tagged ours), held as if EKS had it; its id.
    pub fn add_foreign(&self, namespace: &str, service_account: &str, role_arn: &str) -> String {
        let mut fixture = lock(&self.shared);
        fixture.next_id += 1;
        let id = format!("a-{:017x}", fixture.next_id);
        let association = json!({
            "clusterName": fixture.cluster,
            "namespace": namespace,
            "serviceAccount": service_account,
            "roleArn": role_arn,
            "associationArn": format!(
                "arn:aws:eks:{}:{ACCOUNT}:podidentityassociation/{}/{id}",
                fixture.region, fixture.cluster),
            "associationId": id,
            "tags": {"team": "payments"},
            "createdAt": 1_700_000_000.0,
            "modifiedAt": 1_700_000_000.0,
            "disableSessionTags": false,
        });
        fixture.associations.push(association);
        id
    }
}

impl Drop for EksFixture {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if !std::thread::panicking() {
            self.assert_satisfied();
        }
    }
}

fn error(status: StatusCode, code: &str, message: String, cluster: Option<&str>) -> Response {
    let mut body = json!({"message": message});
    if let Some(cluster) = cluster {
        body["clusterName"] = json!(cluster);
    }
    (
        status,
        [
            ("x-amzn-errortype", code),
            (header::CONTENT_TYPE.as_str(), "application/json"),
        ],
        body.to_string(),
    )
        .into_response()
}

fn association_not_found(id: &str, cluster: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        format!("Pod identity association {id} not found"),
        Some(cluster),
    )
}

fn access_entry_not_found(principal: &str, cluster: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        format!("The specified access entry resource is not found: {principal}"),
        Some(cluster),
    )
}

/// What EKS answers an access-entry call on a cluster whose authentication mode is
/// CONFIG_MAP (it has no access entries until the mode includes the API).
fn config_map_only(cluster: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "InvalidRequestException",
        "The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to perform this operation.".to_owned(),
        Some(cluster),
    )
}

/// The account and name of an IAM role or user ARN, whatever its path (`role` or `user`).
fn principal_parts(arn: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", partition, "iam", "", account, resource] = parts.as_slice() else {
        return None;
    };
    if !partition.starts_with("aws") || account.len() != 12 {
        return None;
    }
    let (kind, path_and_name) = resource.split_once('/')?;
    let name = path_and_name.rsplit('/').next()?;
    (matches!(kind, "role" | "user") && !name.is_empty()).then_some((kind, account, name))
}

/// An access entry in the documented `AccessEntry` shape. Without a username EKS uses the
/// role's assumed-role ARN with the session name (EKS User Guide, "Create access entries").
fn access_entry(
    fixture: &mut Fixture,
    principal: &str,
    username: Option<&str>,
    tags: &Value,
    now: f64,
) -> Value {
    let (kind, account, name) = principal_parts(principal).unwrap_or(("role", ACCOUNT, "?"));
    fixture.next_id += 1;
    let uuid = format!(
        "{:08x}-fe11-4e5e-a1c0-{:012x}",
        fixture.next_id >> 20,
        fixture.next_id
    );
    let username = username.map_or_else(
        || format!("arn:aws:sts::{account}:assumed-role/{name}/{{{{SessionName}}}}"),
        str::to_owned,
    );
    json!({
        "clusterName": fixture.cluster,
        "principalArn": principal,
        "kubernetesGroups": [],
        "accessEntryArn": format!(
            "arn:aws:eks:{}:{ACCOUNT}:access-entry/{}/{kind}/{account}/{name}/{uuid}",
            fixture.region, fixture.cluster),
        "createdAt": now,
        "modifiedAt": now,
        "tags": tags,
        "username": username,
        "type": "STANDARD",
    })
}

/// Whether the entry `entry` is for the same IAM principal as `principal`: EKS keeps the
/// principal's id, so a role named with or without its path is the same one.
fn same_principal(entry: &Value, principal: &str) -> bool {
    let held = entry["principalArn"].as_str().unwrap_or_default();
    held == principal
        || principal_parts(held).is_some_and(|p| principal_parts(principal) == Some(p))
}

/// A path segment as the SDK label-encodes it (`:` and `/` of an ARN percent-encoded).
fn percent_decoded(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The operation a request is, from its method and path (the SDK's `uri_base`s).
fn operation(method: &Method, segments: &[&str]) -> Option<&'static str> {
    match (method.as_str(), segments) {
        ("GET", ["clusters", _]) => Some("DescribeCluster"),
        ("GET", ["clusters", _, "pod-identity-associations"]) => {
            Some("ListPodIdentityAssociations")
        }
        ("POST", ["clusters", _, "pod-identity-associations"]) => {
            Some("CreatePodIdentityAssociation")
        }
        ("GET", ["clusters", _, "pod-identity-associations", _]) => {
            Some("DescribePodIdentityAssociation")
        }
        ("POST", ["clusters", _, "pod-identity-associations", _]) => {
            Some("UpdatePodIdentityAssociation")
        }
        ("DELETE", ["clusters", _, "pod-identity-associations", _]) => {
            Some("DeletePodIdentityAssociation")
        }
        ("GET", ["clusters", _, "access-entries"]) => Some("ListAccessEntries"),
        ("POST", ["clusters", _, "access-entries"]) => Some("CreateAccessEntry"),
        ("GET", ["clusters", _, "access-entries", _]) => Some("DescribeAccessEntry"),
        ("DELETE", ["clusters", _, "access-entries", _]) => Some("DeleteAccessEntry"),
        _ => None,
    }
}

/// The JSON object body of a POST, with only `allowed` members and all of `required` as
/// strings; `Err` says what is wrong.
fn object_body(
    headers: &HeaderMap,
    body: &[u8],
    allowed: &[&str],
    required: &[&str],
) -> Result<Map<String, Value>, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type != "application/json" {
        return Err(format!(
            "Content-Type is `{content_type}`, not application/json"
        ));
    }
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return Err(format!(
            "the body is not a JSON object: {}",
            String::from_utf8_lossy(body)
        ));
    };
    if let Some(unknown) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!("unknown body member `{unknown}`"));
    }
    for name in required {
        if !object.get(*name).is_some_and(Value::is_string) {
            return Err(format!("body member `{name}` is missing or not a string"));
        }
    }
    for name in ["roleArn", "targetRoleArn", "clientRequestToken", "policy"] {
        if object.get(name).is_some_and(|v| !v.is_string()) {
            return Err(format!("body member `{name}` is not a string"));
        }
    }
    if let Some(tags) = object.get("tags")
        && !tags
            .as_object()
            .is_some_and(|t| t.values().all(Value::is_string))
    {
        return Err(format!("`tags` is not a map of strings: {tags}"));
    }
    Ok(object)
}

fn summary(association: &Value) -> Value {
    let mut summary = Map::new();
    for key in [
        "clusterName",
        "namespace",
        "serviceAccount",
        "associationArn",
        "associationId",
        "ownerArn",
    ] {
        if let Some(v) = association.get(key) {
            summary.insert(key.to_owned(), v.clone());
        }
    }
    Value::Object(summary)
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut fixture = lock(&shared);
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let Some(op) = operation(&method, &segments) else {
        fixture
            .violations
            .push(format!("unknown EKS request {method} {uri}"));
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestException",
            format!("the fixture does not serve {method} {uri}"),
            None,
        );
    };
    let reject = |fixture: &mut Fixture, why: String| {
        fixture
            .violations
            .push(format!("{op} ({method} {uri}): {why}"));
        error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterException",
            format!("fixture: {why}"),
            None,
        )
    };
    match fixture.expected.pop_front() {
        Some(next) if next == op => {}
        next => {
            let why = format!("unexpected call (expected {next:?})");
            return reject(&mut fixture, why);
        }
    }
    // Signed by the SDK for EKS in the configured region.
    let scope = format!("/{}/eks/aws4_request", fixture.region);
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !authorization.starts_with("AWS4-HMAC-SHA256 ") || !authorization.contains(&scope) {
        let why = format!("not SigV4-signed for {scope}: `{authorization}`");
        return reject(&mut fixture, why);
    }
    if method == Method::GET && !body.is_empty() {
        return reject(&mut fixture, "a GET with a body".to_owned());
    }
    let allowed_query: &[&str] = match op {
        "ListPodIdentityAssociations" => {
            &["namespace", "serviceAccount", "maxResults", "nextToken"]
        }
        "ListAccessEntries" => &["associatedPolicyArn", "maxResults", "nextToken"],
        _ => &[],
    };
    if let Some((key, _)) = query
        .iter()
        .find(|(k, _)| !allowed_query.contains(&k.as_str()))
    {
        let why = format!("unknown query parameter `{key}`");
        return reject(&mut fixture, why);
    }

    let cluster = segments[1];
    if cluster != fixture.cluster {
        fixture.calls.push(Call {
            operation: op,
            body: Value::Null,
        });
        return error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!("No cluster found for name: {cluster}."),
            Some(cluster),
        );
    }
    let now = 1_750_000_000.0;
    match op {
        "DescribeCluster" => {
            fixture.calls.push(Call {
                operation: op,
                body: Value::Null,
            });
            ok(json!({"cluster": {
                "name": fixture.cluster,
                "arn": fixture.cluster_arn,
                "createdAt": now,
                "version": "1.33",
                "status": "ACTIVE",
                "roleArn": format!("arn:aws:iam::{ACCOUNT}:role/eks-cluster"),
                "resourcesVpcConfig": {
                    "subnetIds": ["subnet-0fa1", "subnet-0fa2"],
                    "securityGroupIds": [],
                    "clusterSecurityGroupId": "sg-0fa1",
                    "vpcId": "vpc-0fa1",
                    "endpointPublicAccess": true,
                    "endpointPrivateAccess": true,
                },
                "identity": {"oidc": {"issuer": format!(
                    "https://oidc.eks.{}.amazonaws.com/id/FIXTURE", fixture.region)}},
                "accessConfig": {
                    "authenticationMode": fixture.authentication_mode,
                    "bootstrapClusterCreatorAdminPermissions": true,
                },
            }}))
        }
        "ListAccessEntries" => {
            fixture.calls.push(Call {
                operation: op,
                body: Value::Null,
            });
            if fixture.authentication_mode == "CONFIG_MAP" {
                return config_map_only(cluster);
            }
            let principals: Vec<Value> = fixture
                .access_entries
                .iter()
                .map(|e| e["principalArn"].clone())
                .collect();
            ok(json!({"accessEntries": principals}))
        }
        "CreateAccessEntry" => {
            let allowed = [
                "clientRequestToken",
                "kubernetesGroups",
                "principalArn",
                "tags",
                "type",
                "username",
            ];
            let request = match object_body(&headers, &body, &allowed, &["principalArn"]) {
                Ok(request) => request,
                Err(why) => return reject(&mut fixture, why),
            };
            if let Some(name) = ["username", "type"]
                .into_iter()
                .find(|k| request.get(*k).is_some_and(|v| !v.is_string()))
            {
                let why = format!("body member `{name}` is not a string");
                return reject(&mut fixture, why);
            }
            let principal = request["principalArn"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if principal_parts(&principal).is_none() {
                let why = format!("principalArn `{principal}` is not an IAM role or user ARN");
                return reject(&mut fixture, why);
            }
            fixture.calls.push(Call {
                operation: op,
                body: Value::Object(request.clone()),
            });
            if fixture.authentication_mode == "CONFIG_MAP" {
                return config_map_only(cluster);
            }
            if fixture
                .access_entries
                .iter()
                .any(|e| same_principal(e, &principal))
            {
                return error(
                    StatusCode::CONFLICT,
                    "ResourceInUseException",
                    format!(
                        "The specified access entry resource is already in use on this cluster: {principal}"
                    ),
                    Some(cluster),
                );
            }
            let tags = request.get("tags").cloned().unwrap_or_else(|| json!({}));
            let username = request.get("username").and_then(Value::as_str);
            let entry = access_entry(&mut fixture, &principal, username, &tags, now);
            fixture.access_entries.push(entry.clone());
            ok(json!({"accessEntry": entry}))
        }
        "DescribeAccessEntry" | "DeleteAccessEntry" => {
            let Some(principal) = percent_decoded(segments[3]) else {
                let why = format!("the principal segment `{}` does not decode", segments[3]);
                return reject(&mut fixture, why);
            };
            fixture.calls.push(Call {
                operation: op,
                body: json!({"principalArn": principal}),
            });
            let Some(at) = fixture
                .access_entries
                .iter()
                .position(|e| e["principalArn"] == principal.as_str())
            else {
                return access_entry_not_found(&principal, cluster);
            };
            if op == "DescribeAccessEntry" {
                ok(json!({"accessEntry": fixture.access_entries[at]}))
            } else {
                fixture.access_entries.remove(at);
                ok(json!({}))
            }
        }
        "ListPodIdentityAssociations" => {
            let wanted = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v);
            let (namespace, service_account) = (wanted("namespace"), wanted("serviceAccount"));
            fixture.calls.push(Call {
                operation: op,
                body: json!({"namespace": namespace, "serviceAccount": service_account}),
            });
            let associations: Vec<Value> = fixture
                .associations
                .iter()
                .filter(|a| namespace.is_none_or(|n| a["namespace"] == n.as_str()))
                .filter(|a| service_account.is_none_or(|s| a["serviceAccount"] == s.as_str()))
                .map(summary)
                .collect();
            ok(json!({"associations": associations}))
        }
        "CreatePodIdentityAssociation" => {
            let allowed = [
                "clientRequestToken",
                "disableSessionTags",
                "namespace",
                "policy",
                "roleArn",
                "serviceAccount",
                "tags",
                "targetRoleArn",
            ];
            let required = ["namespace", "serviceAccount", "roleArn"];
            let request = match object_body(&headers, &body, &allowed, &required) {
                Ok(request) => request,
                Err(why) => return reject(&mut fixture, why),
            };
            fixture.calls.push(Call {
                operation: op,
                body: Value::Object(request.clone()),
            });
            if fixture.associations.iter().any(|a| {
                a["namespace"] == request["namespace"]
                    && a["serviceAccount"] == request["serviceAccount"]
            }) {
                return error(
                    StatusCode::CONFLICT,
                    "ResourceInUseException",
                    "Association already exists".to_owned(),
                    Some(cluster),
                );
            }
            fixture.next_id += 1;
            let id = format!("a-{:017x}", fixture.next_id);
            let association = json!({
                "clusterName": fixture.cluster,
                "namespace": request["namespace"],
                "serviceAccount": request["serviceAccount"],
                "roleArn": request["roleArn"],
                "associationArn": format!(
                    "arn:aws:eks:{}:{ACCOUNT}:podidentityassociation/{}/{id}",
                    fixture.region, fixture.cluster),
                "associationId": id,
                "tags": request.get("tags").cloned().unwrap_or_else(|| json!({})),
                "createdAt": now,
                "modifiedAt": now,
                "disableSessionTags": request.get("disableSessionTags").cloned().unwrap_or(json!(false)),
            });
            fixture.associations.push(association.clone());
            ok(json!({"association": association}))
        }
        "DescribePodIdentityAssociation" | "UpdatePodIdentityAssociation" => {
            let request = if op == "UpdatePodIdentityAssociation" {
                let allowed = [
                    "clientRequestToken",
                    "disableSessionTags",
                    "policy",
                    "roleArn",
                    "targetRoleArn",
                ];
                match object_body(&headers, &body, &allowed, &[]) {
                    Ok(request) => Value::Object(request),
                    Err(why) => return reject(&mut fixture, why),
                }
            } else {
                Value::Null
            };
            let id = segments[3];
            fixture.calls.push(Call {
                operation: op,
                body: json!({"associationId": id, "request": request}),
            });
            let Some(association) = fixture
                .associations
                .iter_mut()
                .find(|a| a["associationId"] == id)
            else {
                return association_not_found(id, cluster);
            };
            if let Some(role_arn) = request.get("roleArn") {
                association["roleArn"] = role_arn.clone();
                association["modifiedAt"] = json!(now + 1.0);
            }
            ok(json!({"association": association}))
        }
        "DeletePodIdentityAssociation" => {
            let id = segments[3];
            fixture.calls.push(Call {
                operation: op,
                body: json!({"associationId": id}),
            });
            let Some(at) = fixture
                .associations
                .iter()
                .position(|a| a["associationId"] == id)
            else {
                return association_not_found(id, cluster);
            };
            let association = fixture.associations.remove(at);
            ok(json!({"association": association}))
        }
        // Known to EKS, but no step of irsa-role, amp-workspace or teardown calls it.
        _ => reject(
            &mut fixture,
            "an operation no step of irsa-role, amp-workspace or teardown calls".to_owned(),
        ),
    }
}
