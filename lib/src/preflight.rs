//! Preflight: what a run will ask of AWS, said before anything is made.
//!
//! Every AWS-calling tool declares, from its parsed flags and the document, the IAM actions it
//! will call, on which resource ARNs (or the narrowest pattern, when the object is not known
//! yet), and which step needs each ([`Need`]). The actions are declared by the service modules
//! next to the calls that need them (`amp`, `amp::rules`, `amp::scraper`, `iam`, `eks`, `sns`,
//! `grafana::amg`, `prom`: each has a `CALLS` table of SDK method → IAM action, and a unit
//! test that finds every SDK call in the module's source in it), and the tools assemble them
//! (their `Preflight` impl). The frame (`cli::run_aws`) gives every such tool two flags:
//!
//! - `--print-policy`: the IAM policy document (one statement per resource, least privilege),
//!   merged into the document's `policy` section, so that a chain of tools prints the policy of
//!   the whole chain (`jq .policy` takes it out). Only STS GetCallerIdentity is called, for the
//!   account.
//! - `--check`: STS GetCallerIdentity for the caller, its role's IAM ARN (iam:GetRole) when it
//!   runs as an assumed role, then `iam:SimulatePrincipalPolicy` over the needs grouped by
//!   resource, plus the quotas that would refuse the run. Each missing permission is one line
//!   on stderr; nothing is created and the document passes on unchanged.
//!
//! The flags are in the frame rather than in each tool's Cli so that a tool only says what it
//! needs (one `impl Preflight`) and its `main` stays one call; the policy, the simulation and
//! the output are written once, here.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use serde_json::{Value, json};

use crate::aws::{self, AwsArgs, SdkConfig};
use crate::doc::StateDoc;
use crate::error::{Error, ErrorKind, Result};
use crate::iam::Simulation;

/// The document's section that `--print-policy` writes (an IAM policy document).
pub const SECTION: &str = "policy";

/// The flags the frame adds to every AWS-calling tool.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PreflightArgs {
    /// Print the IAM policy this run needs (merged into the document's `policy` section) and
    /// exit; calls nothing but STS GetCallerIdentity
    #[arg(long, global = true, conflicts_with = "check")]
    pub print_policy: bool,
    /// Ask IAM whether the caller may do what this run would do, create nothing, and list every
    /// missing permission on stderr (exit 2 when one is missing)
    #[arg(long, global = true)]
    pub check: bool,
}

/// One permission a run needs: an IAM action on a resource ARN (or pattern), for a step.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Need {
    pub action: String,
    pub resource: String,
    /// What needs it, e.g. "amp-workspace ensure: create the workspace".
    pub step: String,
}

impl Need {
    pub fn new(action: &str, resource: impl Into<String>, step: impl Into<String>) -> Need {
        Need {
            action: action.to_owned(),
            resource: resource.into(),
            step: step.into(),
        }
    }
}

/// Where the run's objects live: partition, region and account, each `*` when unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub partition: String,
    pub region: String,
    pub account: String,
}

impl Scope {
    pub fn new(region: &str, account: &str) -> Scope {
        // The partition follows from the region (China and GovCloud have their own).
        let partition = if region.starts_with("cn-") {
            "aws-cn"
        } else if region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        };
        Scope {
            partition: partition.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
        }
    }

    /// A regional ARN: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            self.partition, self.region, self.account
        )
    }

    /// A global service's ARN (IAM): no region.
    pub fn global_arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}::{}:{resource}",
            self.partition, self.account
        )
    }
}

/// What a tool declares of a run, from its parsed flags and the document.
pub trait Preflight {
    /// The AWS flags (region, profile) the run would use.
    fn aws_args(&self) -> &AwsArgs;
    /// Every permission the run needs. Must not call AWS: values the document does not hold
    /// yet (a workspace an earlier step would make) become the narrowest pattern.
    fn needs(&self, doc: &StateDoc, scope: &Scope) -> Result<Vec<Need>>;
    /// Quotas that would refuse the run, one line each (read-only calls only).
    fn quotas(
        &self,
        _config: &SdkConfig,
        _doc: &StateDoc,
    ) -> impl Future<Output = Result<Vec<String>>> {
        async { Ok(Vec::new()) }
    }
}

/// Actions per resource, each with the steps that need it (duplicates merged).
fn by_resource(needs: &[Need]) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut grouped: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for need in needs {
        grouped
            .entry(need.resource.clone())
            .or_default()
            .entry(need.action.clone())
            .or_default()
            .insert(need.step.clone());
    }
    grouped
}

/// Actions granted per resource.
type Grants = BTreeMap<String, BTreeSet<String>>;

/// The statements of an IAM policy as (resource → actions), for those ampkit writes (Allow,
/// one resource, actions only); the others are returned as they are.
fn split_statements(policy: Option<&Value>) -> Result<(Grants, Vec<Value>)> {
    let mut ours = Grants::new();
    let mut others = Vec::new();
    let Some(policy) = policy else {
        return Ok((ours, others));
    };
    let statements = match policy.get("Statement") {
        None => return Ok((ours, others)),
        Some(Value::Array(list)) => list.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        Some(_) => {
            return Err(Error::input(
                "the document's `policy.Statement` is neither a statement nor a list of them",
            ));
        }
    };
    for statement in statements {
        let simple = statement.as_object().is_some_and(|s| {
            s.keys()
                .all(|k| ["Sid", "Effect", "Action", "Resource"].contains(&k.as_str()))
        }) && statement["Effect"] == "Allow";
        let actions: Option<Vec<String>> = match &statement["Action"] {
            Value::String(a) => Some(vec![a.clone()]),
            Value::Array(list) => list.iter().map(|a| a.as_str().map(str::to_owned)).collect(),
            _ => None,
        };
        let resources: Option<Vec<String>> = match &statement["Resource"] {
            Value::String(r) => Some(vec![r.clone()]),
            Value::Array(list) => list.iter().map(|r| r.as_str().map(str::to_owned)).collect(),
            _ => None,
        };
        match (simple, actions, resources) {
            (true, Some(actions), Some(resources)) => {
                for resource in resources {
                    ours.entry(resource)
                        .or_default()
                        .extend(actions.iter().cloned());
                }
            }
            _ => others.push(statement),
        }
    }
    Ok((ours, others))
}

/// The IAM policy document granting `needs`, merged into `existing` (another tool's, earlier
/// in the chain): one statement per resource, actions sorted, `*` last; statements it did not
/// write are kept as they are.
pub fn merged_policy(existing: Option<&Value>, needs: &[Need]) -> Result<Value> {
    let (mut ours, others) = split_statements(existing)?;
    for (resource, actions) in by_resource(needs) {
        ours.entry(resource)
            .or_default()
            .extend(actions.into_keys());
    }
    let mut resources: Vec<&String> = ours.keys().collect();
    // Scoped statements first: the wildcard ones are what a reviewer looks at last.
    resources.sort_by_key(|r| (r.as_str() == "*", r.contains('*'), (*r).clone()));
    let mut statements = others;
    for resource in resources {
        let actions: Vec<&String> = ours[resource].iter().collect();
        statements.push(json!({
            "Effect": "Allow",
            "Action": actions,
            "Resource": resource,
        }));
    }
    Ok(json!({"Version": "2012-10-17", "Statement": statements}))
}

/// The scope a run's ARNs are built in: the configured region and the caller's account from
/// STS. Without either, `*` in its place, said on stderr (a policy is still printed: a
/// platform team may print it where no credentials are configured).
async fn scope_for_policy(tool: &str, args: &AwsArgs) -> Scope {
    let Some(region) = aws::resolve_region(args).await.map(|r| r.to_string()) else {
        eprintln!(
            "{tool}: no AWS region is configured: the policy uses `*` for the region and the account"
        );
        return Scope::new("*", "*");
    };
    let account = match aws::load(args).await {
        Ok(config) => crate::sts::caller(&config).await.map(|c| c.account),
        Err(e) => Err(e),
    };
    match account {
        Ok(account) => Scope::new(&region, &account),
        Err(e) => {
            eprintln!(
                "{tool}: the account is not known ({}): the policy uses `*` for the account",
                e.message
            );
            Scope::new(&region, "*")
        }
    }
}

/// `--print-policy`: the run's policy merged into the document's `policy` section.
pub async fn print_policy<C: Preflight>(tool: &str, cli: &C, doc: &mut StateDoc) -> Result<()> {
    let scope = scope_for_policy(tool, cli.aws_args()).await;
    let needs = cli.needs(doc, &scope)?;
    let policy = merged_policy(doc.section(SECTION), &needs)?;
    doc.set_section(SECTION, policy)
}

/// What IAM's simulation said of one action on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub action: String,
    pub resource: String,
    /// `allowed`, `implicitDeny` or `explicitDeny`.
    pub decision: String,
}

/// `--check`: simulate the caller's policies over every need, check the quotas, and list what
/// would refuse the run. Never creates anything; the document is not changed.
pub async fn check<C: Preflight>(tool: &str, cli: &C, doc: &StateDoc) -> Result<()> {
    let config = aws::load(cli.aws_args()).await?;
    let region = aws::region_of(&config);
    let caller = crate::sts::caller(&config).await?;
    let scope = Scope::new(&region, &caller.account);
    let needs = cli.needs(doc, &scope)?;
    let mut problems: Vec<String> = Vec::new();
    let iam = crate::iam::Iam::new(&config);
    match principal(&iam, &caller).await {
        Principal::Root => eprintln!(
            "{tool}: the caller is the account's root user, which IAM does not restrict: permissions not checked"
        ),
        Principal::Unknown(why) => eprintln!("{tool}: permissions not checked: {why}; going on"),
        Principal::Arn(arn) => {
            let grouped = by_resource(&needs);
            let mut decisions = Vec::new();
            let mut refused = None;
            for (resource, actions) in &grouped {
                let names: Vec<String> = actions.keys().cloned().collect();
                match iam.simulate(&arn, &names, resource).await {
                    Ok(Simulation::Decisions(found)) => decisions.extend(found),
                    Ok(Simulation::Unavailable(why)) => {
                        refused = Some(why);
                        break;
                    }
                    Err(e) if e.kind == ErrorKind::Denied => {
                        refused = Some(format!(
                            "the caller ({arn}) may not iam:SimulatePrincipalPolicy"
                        ));
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if let Some(why) = refused {
                // Going on is the user's call: the run itself will say what it lacks.
                eprintln!("{tool}: permissions not checked: {why}; going on");
            } else {
                for d in decisions.iter().filter(|d| d.decision != "allowed") {
                    let steps = grouped
                        .get(&d.resource)
                        .and_then(|a| a.get(&d.action))
                        .map(|s| s.iter().cloned().collect::<Vec<_>>().join("; "))
                        .unwrap_or_default();
                    problems.push(format!(
                        "missing permission: {} on {} ({steps}) [{}]",
                        d.action, d.resource, d.decision
                    ));
                }
            }
        }
    }
    problems.extend(
        cli.quotas(&config, doc)
            .await?
            .into_iter()
            .map(|q| format!("quota: {q}")),
    );
    for line in &problems {
        eprintln!("{tool}: {line}");
    }
    if problems.is_empty() {
        if !crate::cli::quiet() {
            eprintln!(
                "{tool}: check passed: {} permissions on {} resources allowed",
                needs.len(),
                by_resource(&needs).len()
            );
        }
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Denied,
        format!(
            "{} problems would stop this run (listed above); nothing was made",
            problems.len()
        ),
    )
    .with_hint(format!(
        "grant what is missing (`{tool} ... --print-policy` prints the whole policy), or raise the quota"
    )))
}

/// Who IAM should simulate.
enum Principal {
    Arn(String),
    Root,
    Unknown(String),
}

/// The caller as IAM names it: a user's ARN as it is; an assumed role's session becomes the
/// role's ARN, path included (which only iam:GetRole knows).
async fn principal(iam: &crate::iam::Iam, caller: &crate::sts::Caller) -> Principal {
    if caller.arn.ends_with(":root") {
        return Principal::Root;
    }
    if !caller.arn.contains(":assumed-role/") {
        return Principal::Arn(caller.arn.clone());
    }
    let Some(role) = caller.role_name() else {
        return Principal::Unknown(format!("cannot read a role from {}", caller.arn));
    };
    match iam.role_arn(role).await {
        Ok(arn) => Principal::Arn(arn),
        Err(e) => Principal::Unknown(format!(
            "the ARN of the caller's role {role} could not be read ({})",
            e.message
        )),
    }
}

/// What the tools' tests ask of their `Preflight`: the needs of a command line, as
/// `"ACTION RESOURCE"` lines, and that some are among them.
#[cfg(any(test, feature = "test-support"))]
#[allow(clippy::unwrap_used)]
pub mod testing {
    use super::{Preflight, Scope};
    use crate::doc::StateDoc;

    /// The needs `args` (program name first) declare with `doc` on stdin, in eu-west-1 of
    /// account 123456789012, as `"ACTION RESOURCE"`.
    pub fn actions_of<C: clap::Parser + Preflight>(args: &[&str], doc: &str) -> Vec<String> {
        let cli = C::try_parse_from(args).unwrap();
        let scope = Scope::new("eu-west-1", "123456789012");
        let doc = StateDoc::parse(doc).unwrap();
        cli.needs(&doc, &scope)
            .unwrap()
            .into_iter()
            .map(|n| format!("{} {}", n.action, n.resource))
            .collect()
    }

    /// Every `want` is among `have` (an action, optionally with its resource).
    pub fn assert_has(have: &[String], want: &[&str]) {
        for w in want {
            assert!(
                have.iter()
                    .any(|h| h == w || h.split(' ').next() == Some(w)),
                "{w} not in {have:#?}"
            );
        }
    }
}

/// The SDK methods a module's source calls on its client (`client.x()`, `iam.x()`, chained
/// on the next line too): what its `CALLS` table must cover. Calls with arguments are the
/// module's own wrappers, not SDK operations.
#[cfg(test)]
pub(crate) fn sdk_calls(source: &str) -> BTreeSet<String> {
    let source = source.split("#[cfg(test)]").next().unwrap_or(source);
    let bytes = source.as_bytes();
    let mut found = BTreeSet::new();
    for receiver in ["client", "iam"] {
        let mut from = 0;
        while let Some(at) = source[from..].find(receiver) {
            let start = from + at;
            from = start + receiver.len();
            let before_ok = start == 0
                || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
            let rest = source[from..].trim_start();
            let Some(rest) = rest.strip_prefix('.').filter(|_| before_ok) else {
                continue;
            };
            let rest = rest.trim_start();
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() && rest[name.len()..].starts_with("()") && name != "clone" {
                found.insert(name);
            }
        }
    }
    found
}

/// The check every service module's test makes: every SDK call in its source has its IAM
/// action in `calls`, and every action there is declared by one of its need builders.
#[cfg(test)]
pub(crate) fn assert_calls_declared(source: &str, calls: &[(&str, &str)], declared: &[Need]) {
    let found = sdk_calls(source);
    assert!(
        !found.is_empty(),
        "no SDK call found: the scanner no longer reads this module"
    );
    for call in found {
        assert!(
            calls.iter().any(|(method, _)| *method == call),
            "the SDK call `{call}` has no IAM action in the module's CALLS table"
        );
    }
    for (method, action) in calls {
        assert!(
            declared.iter().any(|n| n.action == *action),
            "`{method}` calls {action}, which no need builder of the module declares"
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_groups_by_resource_and_merges_into_an_earlier_one() {
        let scope = Scope::new("eu-west-1", "123456789012");
        let ws = scope.arn("aps", "workspace/ws-1");
        let needs = vec![
            Need::new("aps:QueryMetrics", &ws, "promql query"),
            Need::new("aps:GetLabels", &ws, "promql labels"),
            Need::new("aps:ListWorkspaces", "*", "amp-workspace ensure"),
        ];
        let policy = merged_policy(None, &needs).unwrap();
        assert_eq!(policy["Version"], "2012-10-17");
        assert_eq!(
            policy["Statement"][0],
            json!({"Effect": "Allow", "Action": ["aps:GetLabels", "aps:QueryMetrics"], "Resource": ws})
        );
        assert_eq!(policy["Statement"][1]["Resource"], "*");
        let more = vec![Need::new("aps:RemoteWrite", &ws, "collector")];
        let merged = merged_policy(Some(&policy), &more).unwrap();
        assert_eq!(
            merged["Statement"][0]["Action"],
            json!(["aps:GetLabels", "aps:QueryMetrics", "aps:RemoteWrite"])
        );
        assert_eq!(merged["Statement"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn statements_it_did_not_write_are_kept() {
        let foreign = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Action": "iam:*", "Resource": "*"}
        ]});
        let merged = merged_policy(Some(&foreign), &[Need::new("sns:Publish", "*", "x")]).unwrap();
        assert_eq!(merged["Statement"][0]["Effect"], "Deny");
        assert_eq!(merged["Statement"][1]["Action"], json!(["sns:Publish"]));
    }

    #[test]
    fn scopes_give_the_partition_of_their_region() {
        assert_eq!(
            Scope::new("cn-north-1", "1").arn("aps", "workspace/*"),
            "arn:aws-cn:aps:cn-north-1:1:workspace/*"
        );
        assert_eq!(
            Scope::new("eu-west-1", "1").global_arn("iam", "role/x"),
            "arn:aws:iam::1:role/x"
        );
    }

    #[test]
    fn sdk_calls_are_found_chained_or_not() {
        let source = "let a = self.client.list_topics().send();\n let b = iam\n  .create_role()\n; iam.delete_role(name); client.clone();";
        assert_eq!(
            sdk_calls(source).into_iter().collect::<Vec<_>>(),
            vec!["create_role", "list_topics"]
        );
    }
}
