//! Who signed a request, and what that identity may do on AMP.
//!
//! The fixed local keys (`--credentials`, the environment) are an identity with full access,
//! so every local flow works as before. With `--iam-from URL` (moto's URL) every other access
//! key is looked up in moto: an IAM user's key, or temporary credentials that moto's STS issued
//! (AssumeRoleWithWebIdentity, AssumeRole). Its secret verifies the signature, and its
//! identity-based policies (the user's inline, attached managed and groups' policies; for a
//! session, the role's inline and attached managed policies, limited by the role's permissions
//! boundary and the session policy) are evaluated ([`crate::iam_eval`]) for the request's AMP
//! action and resource.
//!
//! The one liberty: IAM has no API that returns a secret key (AWS checks signatures inside the
//! service), and moto none either, so amp-local reads moto's state, `GET /moto-api/data.json`
//! (moto server's own view of its backends: IAM access keys with their secrets, users, groups,
//! roles and their inline policies and attachments; STS's sessions with their secret and
//! session token). Managed policies' documents are not in it; they are read with IAM's own
//! GetPolicy and GetPolicyVersion (a version's document never changes, so each is read once).
//! The state is read at most once per [`CACHE_TTL`] while requests come (and again at once
//! for a key it does not know yet, after [`MISS_REFETCH`]), so a policy changed in moto
//! applies within about a second.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::Method;
use serde_json::Value;

use crate::iam_eval::{self, Decision, Policy};

/// How long moto's identities are used before they are read again.
pub const CACHE_TTL: Duration = Duration::from_secs(1);
/// How soon an access key not seen in moto's state makes amp-local read it again.
pub const MISS_REFETCH: Duration = Duration::from_millis(100);

/// An identity that signed a request.
#[derive(Debug)]
pub struct Caller {
    /// Its ARN as AWS names it in a denial (`arn:aws:iam::A:user/U`,
    /// `arn:aws:sts::A:assumed-role/R/S`).
    pub arn: String,
    pub account: String,
    pub secret: String,
    /// For temporary credentials: the session token the request must carry.
    pub session_token: Option<String>,
    /// Its identity-based policies.
    pub policies: Vec<Policy>,
    /// Policy sets that must each allow too (permissions boundary, session policy).
    pub limits: Vec<Vec<Policy>>,
    /// Condition keys of the principal (lower-cased names).
    pub context: BTreeMap<String, Vec<String>>,
}

impl Caller {
    /// The fixed local key: full access.
    pub fn local(access_key: &str, secret: &str, account: &str) -> Caller {
        let arn = format!("arn:aws:iam::{account}:user/ampkit-local");
        Caller {
            context: principal_context(&arn, account, Some("ampkit-local")),
            arn,
            account: account.to_owned(),
            secret: secret.to_owned(),
            session_token: None,
            policies: vec![Policy::full_access(format!(
                "amp-local's full access for the local key {access_key}"
            ))],
            limits: Vec::new(),
        }
    }

    /// Whether this caller may do `action` on `resource`, with `resource_tags` as the
    /// resource's `aws:ResourceTag/...` keys.
    pub fn decide(
        &self,
        action: &str,
        resource: &str,
        resource_tags: &BTreeMap<String, String>,
        region: &str,
    ) -> iam_eval::Outcome {
        let mut context = self.context.clone();
        context.insert("aws:requestedregion".into(), vec![region.to_owned()]);
        for (k, v) in resource_tags {
            context.insert(
                format!("aws:resourcetag/{}", k.to_ascii_lowercase()),
                vec![v.clone()],
            );
        }
        let req = iam_eval::Request {
            action,
            resource,
            context: &context,
        };
        let mut outcome = iam_eval::evaluate(&self.policies, &req);
        for limit in &self.limits {
            if outcome.decision != Decision::Allow {
                break;
            }
            let more = iam_eval::evaluate(limit, &req);
            outcome.unknown_operators.extend(more.unknown_operators);
            outcome.decision = more.decision;
        }
        outcome
    }

    /// AWS's message for a denial.
    pub fn denial_message(&self, action: &str, resource: &str, decision: Decision) -> String {
        let why = match decision {
            Decision::ExplicitDeny => {
                "with an explicit deny in an identity-based policy".to_owned()
            }
            _ => format!("because no identity-based policy allows the {action} action"),
        };
        format!(
            "User: {} is not authorized to perform: {action} on resource: {resource} {why}",
            self.arn
        )
    }
}

fn principal_context(
    arn: &str,
    account: &str,
    user: Option<&str>,
) -> BTreeMap<String, Vec<String>> {
    let mut c = BTreeMap::new();
    c.insert("aws:principalarn".to_owned(), vec![arn.to_owned()]);
    c.insert("aws:principalaccount".to_owned(), vec![account.to_owned()]);
    c.insert("aws:securetransport".to_owned(), vec!["false".to_owned()]);
    if let Some(user) = user {
        c.insert("aws:username".to_owned(), vec![user.to_owned()]);
        c.insert("aws:principaltype".to_owned(), vec!["User".to_owned()]);
    } else {
        c.insert(
            "aws:principaltype".to_owned(),
            vec!["AssumedRole".to_owned()],
        );
    }
    c
}

/// The AMP action and resource ARN a request is authorized for, from its method and path;
/// `None` for what is no AMP operation (the router answers those). `body` is read for the
/// name of a new rule groups namespace.
pub fn action_for(
    region: &str,
    account: &str,
    method: &Method,
    segs: &[String],
    body: &[u8],
) -> Option<(&'static str, String)> {
    let arn = |rest: &str| format!("arn:aws:aps:{region}:{account}:{rest}");
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = method.as_str();
    let ws = |id: &str| arn(&format!("workspace/{id}"));
    let ns = |id: &str, name: &str| arn(&format!("rulegroupsnamespace/{id}/{name}"));
    let (action, resource) = match (m, segs.as_slice()) {
        // Data plane.
        ("POST", ["workspaces", id, "api", "v1", "remote_write"]) => ("aps:RemoteWrite", ws(id)),
        (
            "GET" | "POST",
            [
                "workspaces",
                id,
                "api",
                "v1",
                "query" | "query_range" | "query_exemplars",
            ],
        ) => ("aps:QueryMetrics", ws(id)),
        ("GET" | "POST", ["workspaces", id, "api", "v1", "series"]) => ("aps:GetSeries", ws(id)),
        ("GET" | "POST", ["workspaces", id, "api", "v1", "labels"])
        | ("GET" | "POST", ["workspaces", id, "api", "v1", "label", _, "values"]) => {
            ("aps:GetLabels", ws(id))
        }
        ("GET" | "POST", ["workspaces", id, "api", "v1", "metadata"]) => {
            ("aps:GetMetricMetadata", ws(id))
        }
        ("GET", ["workspaces", id, "api", "v1", "rules"]) => ("aps:ListRules", ws(id)),
        ("GET", ["workspaces", id, "api", "v1", "alerts"]) => ("aps:ListAlerts", ws(id)),
        ("GET", ["workspaces", id, "alertmanager", "api", "v2", "alerts"]) => {
            ("aps:ListAlertManagerAlerts", ws(id))
        }
        ("POST", ["workspaces", id, "alertmanager", "api", "v2", "alerts"]) => {
            ("aps:CreateAlertManagerAlerts", ws(id))
        }
        (
            "GET",
            [
                "workspaces",
                id,
                "alertmanager",
                "api",
                "v2",
                "alerts",
                "groups",
            ],
        ) => ("aps:ListAlertManagerAlertGroups", ws(id)),
        ("GET", ["workspaces", id, "alertmanager", "api", "v2", "silences"]) => {
            ("aps:ListAlertManagerSilences", ws(id))
        }
        ("POST", ["workspaces", id, "alertmanager", "api", "v2", "silences"]) => {
            ("aps:PutAlertManagerSilences", ws(id))
        }
        ("GET", ["workspaces", id, "alertmanager", "api", "v2", "silence", _]) => {
            ("aps:GetAlertManagerSilence", ws(id))
        }
        ("DELETE", ["workspaces", id, "alertmanager", "api", "v2", "silence", _]) => {
            ("aps:DeleteAlertManagerSilence", ws(id))
        }
        ("GET", ["workspaces", id, "alertmanager", "api", "v2", "receivers"]) => {
            ("aps:ListAlertManagerReceivers", ws(id))
        }
        ("GET", ["workspaces", id, "alertmanager", "api", "v2", "status"]) => {
            ("aps:GetAlertManagerStatus", ws(id))
        }
        // Control plane. A new workspace's or scraper's id is not known before it is made:
        // the resource is every one of its kind.
        ("POST", ["workspaces"]) => ("aps:CreateWorkspace", ws("*")),
        ("GET", ["workspaces"]) => ("aps:ListWorkspaces", "*".to_owned()),
        ("GET", ["workspaces", id]) => ("aps:DescribeWorkspace", ws(id)),
        ("DELETE", ["workspaces", id]) => ("aps:DeleteWorkspace", ws(id)),
        ("POST", ["workspaces", id, "alias"]) => ("aps:UpdateWorkspaceAlias", ws(id)),
        ("POST", ["workspaces", id, "rulegroupsnamespaces"]) => {
            let name = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|b| b.get("name").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| "*".to_owned());
            ("aps:CreateRuleGroupsNamespace", ns(id, &name))
        }
        ("GET", ["workspaces", id, "rulegroupsnamespaces"]) => {
            ("aps:ListRuleGroupsNamespaces", ws(id))
        }
        ("GET", ["workspaces", id, "rulegroupsnamespaces", name]) => {
            ("aps:DescribeRuleGroupsNamespace", ns(id, name))
        }
        ("PUT", ["workspaces", id, "rulegroupsnamespaces", name]) => {
            ("aps:PutRuleGroupsNamespace", ns(id, name))
        }
        ("DELETE", ["workspaces", id, "rulegroupsnamespaces", name]) => {
            ("aps:DeleteRuleGroupsNamespace", ns(id, name))
        }
        ("POST", ["workspaces", id, "alertmanager", "definition"]) => {
            ("aps:CreateAlertManagerDefinition", ws(id))
        }
        ("PUT", ["workspaces", id, "alertmanager", "definition"]) => {
            ("aps:PutAlertManagerDefinition", ws(id))
        }
        ("GET", ["workspaces", id, "alertmanager", "definition"]) => {
            ("aps:DescribeAlertManagerDefinition", ws(id))
        }
        ("DELETE", ["workspaces", id, "alertmanager", "definition"]) => {
            ("aps:DeleteAlertManagerDefinition", ws(id))
        }
        ("POST", ["scrapers"]) => ("aps:CreateScraper", arn("scraper/*")),
        ("GET", ["scrapers"]) => ("aps:ListScrapers", "*".to_owned()),
        ("GET", ["scrapers", id]) => ("aps:DescribeScraper", arn(&format!("scraper/{id}"))),
        ("DELETE", ["scrapers", id]) => ("aps:DeleteScraper", arn(&format!("scraper/{id}"))),
        ("POST", ["tags", target]) => ("aps:TagResource", (*target).to_owned()),
        ("DELETE", ["tags", target]) => ("aps:UntagResource", (*target).to_owned()),
        ("GET", ["tags", target]) => ("aps:ListTagsForResource", (*target).to_owned()),
        _ => return None,
    };
    Some((action, resource))
}

/// Everything in moto's state that amp-local reads, per access key.
struct Snapshot {
    at: Instant,
    keys: HashMap<String, Arc<Caller>>,
}

/// moto, read for identities.
struct Moto {
    url: String,
    http: reqwest::Client,
    /// A key to sign IAM's API calls with (moto checks none unless it enforces IAM).
    signing: (String, String),
    snapshot: Mutex<Option<Arc<Snapshot>>>,
    refresh: tokio::sync::Mutex<()>,
    /// Managed policies' documents by (ARN, version id): a version never changes.
    documents: Mutex<HashMap<(String, String), Policy>>,
}

/// Resolves access keys to callers.
pub struct Identities {
    local: HashMap<String, Arc<Caller>>,
    moto: Option<Moto>,
}

/// Why a key could not be resolved at all (moto did not answer as expected).
#[derive(Debug)]
pub struct Unavailable(pub String);

impl Identities {
    pub fn new(
        local: &BTreeMap<String, String>,
        account: &str,
        iam_from: Option<String>,
        http: reqwest::Client,
    ) -> Identities {
        let signing = local
            .iter()
            .next()
            .map(|(k, s)| (k.clone(), s.clone()))
            .unwrap_or_default();
        Identities {
            local: local
                .iter()
                .map(|(k, s)| (k.clone(), Arc::new(Caller::local(k, s, account))))
                .collect(),
            moto: iam_from.map(|url| Moto {
                url: url.trim_end_matches('/').to_owned(),
                http,
                signing,
                snapshot: Mutex::new(None),
                refresh: tokio::sync::Mutex::new(()),
                documents: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Whether keys are looked up in moto.
    pub fn enforcing(&self) -> bool {
        self.moto.is_some()
    }

    /// The caller behind `access_key`, if any identity has it.
    pub async fn resolve(&self, access_key: &str) -> Result<Option<Arc<Caller>>, Unavailable> {
        if let Some(c) = self.local.get(access_key) {
            return Ok(Some(Arc::clone(c)));
        }
        let Some(moto) = &self.moto else {
            return Ok(None);
        };
        let fresh_enough = |s: &Snapshot| {
            let age = s.at.elapsed();
            match s.keys.get(access_key) {
                Some(c) if age < CACHE_TTL => Some(Some(Arc::clone(c))),
                None if age < MISS_REFETCH => Some(None),
                _ => None,
            }
        };
        let current = moto.current();
        if let Some(s) = &current
            && let Some(answer) = fresh_enough(s)
        {
            return Ok(answer);
        }
        let _one_at_a_time = moto.refresh.lock().await;
        // Another request may have read moto while this one waited.
        if let Some(s) = moto.current()
            && current.as_ref().is_none_or(|c| !Arc::ptr_eq(c, &s))
            && let Some(answer) = fresh_enough(&s)
        {
            return Ok(answer);
        }
        let snapshot = Arc::new(moto.read().await?);
        let answer = snapshot.keys.get(access_key).cloned();
        *moto.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Some(snapshot);
        Ok(answer)
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn instances<'a>(data: &'a Value, service: &str, model: &str) -> impl Iterator<Item = &'a Value> {
    data.get(service)
        .and_then(|s| s.get(model))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Inline policies (`policies`: name -> document) and attached managed policies' ARNs of a
/// user, group or role in moto's state.
fn inline_and_attached(who: &str, v: &Value) -> (Vec<Policy>, Vec<String>) {
    let mut inline = Vec::new();
    if let Some(map) = v.get("policies").and_then(Value::as_object) {
        for (name, doc) in map {
            let Some(text) = doc.as_str() else { continue };
            match Policy::parse(format!("{who} inline policy {name}"), text) {
                Ok(p) => inline.push(p),
                Err(e) => tracing::warn!("ignoring a policy amp-local cannot read: {e}"),
            }
        }
    }
    let attached = v
        .get("attached_managed_policies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| str_of(a, "PolicyArn").map(str::to_owned))
        .collect();
    (inline, attached)
}

/// Text between `<tag>` and `</tag>`, XML entities decoded.
fn xml_text(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(
        body[start..end]
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

impl Moto {
    fn current(&self) -> Option<Arc<Snapshot>> {
        self.snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn unavailable(&self, what: impl std::fmt::Display) -> Unavailable {
        Unavailable(format!(
            "amp-local could not read the identities in moto at {} (--iam-from): {what}",
            self.url
        ))
    }

    /// One IAM query API call to moto, signed as the SDK signs it; the answer's XML.
    async fn iam_call(&self, params: &[(&str, &str)]) -> Result<String, Unavailable> {
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("Version", "2010-05-08");
            for (k, v) in params {
                form.append_pair(k, v);
            }
            form.finish()
        };
        let url = format!("{}/", self.url);
        let host = url
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or_default()
            .to_owned();
        let identity: Identity =
            Credentials::new(&self.signing.0, &self.signing.1, None, None, "amp-local").into();
        let params_v4 = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("iam")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| self.unavailable(e))?
            .into();
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            [("host", host.as_str()), ("content-type", content_type)].into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| self.unavailable(e))?;
        let (instructions, _) = sign(signable, &params_v4)
            .map_err(|e| self.unavailable(e))?
            .into_parts();
        let mut request = self
            .http
            .post(&url)
            .header("content-type", content_type)
            .timeout(Duration::from_secs(10))
            .body(body);
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| self.unavailable(e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| self.unavailable(e))?;
        if !status.is_success() {
            return Err(self.unavailable(format!(
                "IAM {} answered {status}: {}",
                params.first().map(|p| p.1).unwrap_or_default(),
                text.chars().take(300).collect::<String>()
            )));
        }
        Ok(text)
    }

    /// A managed policy's default version's document.
    async fn managed_policy(
        &self,
        arn: &str,
        versions: &HashMap<String, String>,
    ) -> Result<Policy, Unavailable> {
        let version = match versions.get(arn) {
            Some(v) => v.clone(),
            None => {
                // Not in moto's state (an AWS managed policy): ask IAM.
                let xml = self
                    .iam_call(&[("Action", "GetPolicy"), ("PolicyArn", arn)])
                    .await?;
                xml_text(&xml, "DefaultVersionId").ok_or_else(|| {
                    self.unavailable(format!("GetPolicy {arn}: no DefaultVersionId"))
                })?
            }
        };
        let key = (arn.to_owned(), version.clone());
        if let Some(p) = self
            .documents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(p.clone());
        }
        let xml = self
            .iam_call(&[
                ("Action", "GetPolicyVersion"),
                ("PolicyArn", arn),
                ("VersionId", &version),
            ])
            .await?;
        let doc = xml_text(&xml, "Document")
            .ok_or_else(|| self.unavailable(format!("GetPolicyVersion {arn}: no Document")))?;
        let policy = Policy::parse(format!("managed policy {arn} ({version})"), &doc)
            .map_err(|e| self.unavailable(e))?;
        self.documents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, policy.clone());
        Ok(policy)
    }

    /// `inline` and the documents of the `attached` managed policies.
    async fn with_managed(
        &self,
        inline: Vec<Policy>,
        attached: Vec<String>,
        versions: &HashMap<String, String>,
        managed: &mut HashMap<String, Policy>,
    ) -> Result<Vec<Policy>, Unavailable> {
        let mut out = inline;
        for arn in attached {
            if let Some(p) = managed.get(&arn) {
                out.push(p.clone());
                continue;
            }
            let p = self.managed_policy(&arn, versions).await?;
            managed.insert(arn, p.clone());
            out.push(p);
        }
        Ok(out)
    }

    /// Read moto's state: every access key with its caller.
    async fn read(&self) -> Result<Snapshot, Unavailable> {
        let started = Instant::now();
        let url = format!("{}/moto-api/data.json", self.url);
        let response = self
            .http
            .get(&url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| self.unavailable(e))?;
        if !response.status().is_success() {
            return Err(self.unavailable(format!("GET {url}: {}", response.status())));
        }
        let data: Value = response.json().await.map_err(|e| self.unavailable(e))?;
        let versions: HashMap<String, String> = instances(&data, "iam", "ManagedPolicy")
            .chain(instances(&data, "iam", "AWSManagedPolicy"))
            .filter_map(|p| {
                Some((
                    str_of(p, "arn")?.to_owned(),
                    str_of(p, "default_version_id")?.to_owned(),
                ))
            })
            .collect();
        let mut managed: HashMap<String, Policy> = HashMap::new();
        let mut groups: HashMap<(String, String), (Vec<Policy>, Vec<String>)> = HashMap::new();
        for g in instances(&data, "iam", "Group") {
            let (Some(account), Some(name)) = (str_of(g, "account_id"), str_of(g, "name")) else {
                continue;
            };
            groups.insert(
                (account.to_owned(), name.to_owned()),
                inline_and_attached(&format!("group {name}"), g),
            );
        }
        let mut keys = HashMap::new();
        // IAM users' access keys.
        let users: HashMap<(String, String), &Value> = instances(&data, "iam", "User")
            .filter_map(|u| {
                Some((
                    (
                        str_of(u, "account_id")?.to_owned(),
                        str_of(u, "name")?.to_owned(),
                    ),
                    u,
                ))
            })
            .collect();
        for k in instances(&data, "iam", "AccessKey") {
            let (Some(id), Some(secret), Some(user)) = (
                str_of(k, "access_key_id"),
                str_of(k, "secret_access_key"),
                str_of(k, "user_name"),
            ) else {
                continue;
            };
            if str_of(k, "status") != Some("Active") {
                continue;
            }
            // The key's account is the user's; moto keeps one account per backend.
            let Some(((account, _), u)) = users.iter().find(|((_, n), _)| n == user) else {
                continue;
            };
            let arn = str_of(u, "arn").unwrap_or_default().to_owned();
            let (inline, attached) = inline_and_attached(&format!("user {user}"), u);
            let mut policies = self
                .with_managed(inline, attached, &versions, &mut managed)
                .await?;
            for g in u
                .get("group_list")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if let Some((inline, attached)) = groups.get(&(account.clone(), g.to_owned())) {
                    policies.extend(
                        self.with_managed(
                            inline.clone(),
                            attached.clone(),
                            &versions,
                            &mut managed,
                        )
                        .await?,
                    );
                }
            }
            keys.insert(
                id.to_owned(),
                Arc::new(Caller {
                    context: principal_context(&arn, account, Some(user)),
                    arn,
                    account: account.clone(),
                    secret: secret.to_owned(),
                    session_token: None,
                    policies,
                    limits: Vec::new(),
                }),
            );
        }
        // STS sessions: the role's policies, limited by its boundary and the session policy.
        let roles: HashMap<&str, &Value> = instances(&data, "iam", "Role")
            .filter_map(|r| Some((str_of(r, "arn")?, r)))
            .collect();
        for s in instances(&data, "sts", "AssumedRole") {
            let (Some(id), Some(secret), Some(role_arn), Some(arn)) = (
                str_of(s, "access_key_id"),
                str_of(s, "secret_access_key"),
                str_of(s, "role_arn"),
                str_of(s, "arn"),
            ) else {
                continue;
            };
            let account = str_of(s, "account_id").unwrap_or_default().to_owned();
            // A session of a role deleted since has no policies: everything is denied.
            let (policies, mut limits) = match roles.get(role_arn) {
                Some(r) => {
                    let (inline, attached) = inline_and_attached(&format!("role {role_arn}"), r);
                    let policies = self
                        .with_managed(inline, attached, &versions, &mut managed)
                        .await?;
                    let mut limits = Vec::new();
                    if let Some(boundary) = str_of(r, "permissions_boundary_arn") {
                        limits.push(
                            self.with_managed(
                                Vec::new(),
                                vec![boundary.to_owned()],
                                &versions,
                                &mut managed,
                            )
                            .await?,
                        );
                    }
                    (policies, limits)
                }
                None => (Vec::new(), Vec::new()),
            };
            if let Some(session) = str_of(s, "policy") {
                match Policy::parse(format!("session policy of {arn}"), session) {
                    Ok(p) => limits.push(vec![p]),
                    // A session policy not understood allows nothing.
                    Err(_) => limits.push(Vec::new()),
                }
            }
            let mut context = principal_context(role_arn, &account, None);
            context.insert(
                "aws:userid".into(),
                str_of(s, "user_id")
                    .map(|u| vec![u.to_owned()])
                    .unwrap_or_default(),
            );
            keys.insert(
                id.to_owned(),
                Arc::new(Caller {
                    arn: arn.to_owned(),
                    account,
                    secret: secret.to_owned(),
                    session_token: str_of(s, "session_token").map(str::to_owned),
                    policies,
                    limits,
                    context,
                }),
            );
        }
        tracing::debug!(
            "read {} access keys from moto in {:?}",
            keys.len(),
            started.elapsed()
        );
        Ok(Snapshot {
            at: Instant::now(),
            keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(path: &str) -> Vec<String> {
        path.trim_start_matches('/')
            .split('/')
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn requests_map_to_amps_actions_and_resources() {
        let a = |m: Method, p: &str| {
            action_for(
                "eu-west-1",
                "123456789012",
                &m,
                &segs(p),
                b"{\"name\":\"n1\"}",
            )
        };
        let ws = "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1";
        assert_eq!(
            a(Method::POST, "/workspaces/ws-1/api/v1/remote_write"),
            Some(("aps:RemoteWrite", ws.to_owned()))
        );
        assert_eq!(
            a(Method::GET, "/workspaces/ws-1/api/v1/query"),
            Some(("aps:QueryMetrics", ws.to_owned()))
        );
        assert_eq!(
            a(Method::POST, "/workspaces/ws-1/api/v1/query_range"),
            Some(("aps:QueryMetrics", ws.to_owned()))
        );
        assert_eq!(
            a(Method::GET, "/workspaces/ws-1/api/v1/series"),
            Some(("aps:GetSeries", ws.to_owned()))
        );
        assert_eq!(
            a(Method::GET, "/workspaces/ws-1/api/v1/label/job/values"),
            Some(("aps:GetLabels", ws.to_owned()))
        );
        assert_eq!(
            a(Method::GET, "/workspaces/ws-1/api/v1/metadata"),
            Some(("aps:GetMetricMetadata", ws.to_owned()))
        );
        assert_eq!(
            a(Method::GET, "/workspaces"),
            Some(("aps:ListWorkspaces", "*".to_owned()))
        );
        assert_eq!(
            a(Method::DELETE, "/workspaces/ws-1"),
            Some(("aps:DeleteWorkspace", ws.to_owned()))
        );
        assert_eq!(
            a(Method::POST, "/workspaces/ws-1/rulegroupsnamespaces"),
            Some((
                "aps:CreateRuleGroupsNamespace",
                "arn:aws:aps:eu-west-1:123456789012:rulegroupsnamespace/ws-1/n1".to_owned()
            ))
        );
        assert_eq!(
            a(Method::GET, "/scrapers/s-1"),
            Some((
                "aps:DescribeScraper",
                "arn:aws:aps:eu-west-1:123456789012:scraper/s-1".to_owned()
            ))
        );
        // The ARN arrives percent-encoded: one segment.
        let tags = vec!["tags".to_owned(), ws.to_owned()];
        assert_eq!(
            action_for("eu-west-1", "123456789012", &Method::POST, &tags, b""),
            Some(("aps:TagResource", ws.to_owned()))
        );
        assert_eq!(a(Method::PUT, "/workspaces/ws-1/api/v1/remote_write"), None);
    }

    #[test]
    fn the_local_key_has_full_access_and_denials_read_as_aws_writes_them() {
        let c = Caller::local("AKID", "s", "123456789012");
        let ws = "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1";
        for action in [
            "aps:RemoteWrite",
            "aps:QueryMetrics",
            "aps:CreateWorkspace",
            "aps:ListWorkspaces",
        ] {
            assert_eq!(
                c.decide(action, ws, &BTreeMap::new(), "eu-west-1").decision,
                Decision::Allow
            );
        }
        assert_eq!(
            c.denial_message("aps:QueryMetrics", ws, Decision::ImplicitDeny),
            "User: arn:aws:iam::123456789012:user/ampkit-local is not authorized to perform: \
             aps:QueryMetrics on resource: arn:aws:aps:eu-west-1:123456789012:workspace/ws-1 \
             because no identity-based policy allows the aps:QueryMetrics action"
        );
    }

    #[test]
    fn xml_text_decodes_entities() {
        assert_eq!(
            xml_text(
                "<a><Document>%7B&quot;x&quot;&amp;</Document></a>",
                "Document"
            )
            .as_deref(),
            Some("%7B\"x\"&")
        );
        assert_eq!(xml_text("<a/>", "Document"), None);
    }
}
