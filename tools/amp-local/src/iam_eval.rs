//! IAM policy evaluation for one identity's requests, as AWS documents it in the IAM User
//! Guide, "Policy evaluation logic" (identity-based policies within one account): every
//! policy that applies is read; an explicit `Deny` in any of them wins; otherwise an `Allow`
//! grants; otherwise the request is implicitly denied. A permissions boundary or a session
//! policy, when there is one, must allow the request as well (each is evaluated the same way
//! and intersected).
//!
//! A maintained crate was looked for first: `iam-rs` (crates.io) evaluates policies, but its
//! request resource must be a parsed ARN, so AWS's `"*"` resource of the actions that support
//! no resource-level permissions (aps:ListWorkspaces, aps:ListScrapers) cannot be expressed,
//! and a statement naming one workspace would then allow them; the evaluation AMP needs is
//! small enough to keep here, exactly as documented:
//! - `Action`/`NotAction`: `service:name` patterns, `*` and `?` wildcards, case-insensitive;
//! - `Resource`/`NotResource`: ARN patterns, `*` and `?` wildcards, case-sensitive; a request
//!   on `*` (no resource-level permissions) is matched only by a `Resource` of `*`;
//! - every element as a string or an array of strings; `Statement` as an object or an array;
//! - `Condition`: the operators below (with `IfExists`), blocks ANDed, values of one key ORed.
//!   An operator not known here never grants: an `Allow` whose condition cannot be evaluated
//!   does not apply, a `Deny` does (it denies), and the operator is reported.

use std::collections::BTreeMap;

use serde_json::Value;

/// The outcome, as the evaluation logic names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// A `Deny` statement applied.
    ExplicitDeny,
    /// Nothing allowed it.
    ImplicitDeny,
}

/// What is being asked: the action (`aps:RemoteWrite`), the resource's ARN (or `*`) and the
/// request's condition keys (lower-cased names, e.g. `aws:principalarn`).
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub action: &'a str,
    pub resource: &'a str,
    pub context: &'a BTreeMap<String, Vec<String>>,
}

/// A parsed identity-based policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Where it came from (for messages): `user alice inline policy p`, a managed policy's ARN.
    pub source: String,
    statements: Vec<Statement>,
}

#[derive(Debug, Clone, PartialEq)]
struct Statement {
    allow: bool,
    /// `Action` (false) or `NotAction` (true).
    not_action: bool,
    actions: Vec<String>,
    not_resource: bool,
    resources: Vec<String>,
    /// operator -> key -> values.
    conditions: Vec<(String, String, Vec<String>)>,
}

fn strings(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                Value::Bool(b) => Ok(b.to_string()),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(format!("expected a string, got {other}")),
            })
            .collect(),
        Value::Bool(b) => Ok(vec![b.to_string()]),
        Value::Number(n) => Ok(vec![n.to_string()]),
        other => Err(format!(
            "expected a string or an array of strings, got {other}"
        )),
    }
}

impl Policy {
    /// Parse a policy document (JSON text, or URL-encoded JSON as IAM returns it).
    pub fn parse(source: impl Into<String>, text: &str) -> Result<Policy, String> {
        let source = source.into();
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(first) => {
                let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
                serde_json::from_str(&decoded)
                    .map_err(|_| format!("{source}: not a JSON policy document: {first}"))?
            }
        };
        Self::from_value(source, &value)
    }

    pub fn from_value(source: impl Into<String>, doc: &Value) -> Result<Policy, String> {
        let source = source.into();
        let bad = |why: String| format!("{source}: {why}");
        let statements = match doc.get("Statement") {
            Some(Value::Array(items)) => items.iter().collect::<Vec<_>>(),
            Some(one @ Value::Object(_)) => vec![one],
            _ => return Err(bad("no Statement".to_owned())),
        };
        let mut out = Vec::new();
        for s in statements {
            let allow = match s.get("Effect").and_then(Value::as_str) {
                Some("Allow") => true,
                Some("Deny") => false,
                other => return Err(bad(format!("Effect must be Allow or Deny, not {other:?}"))),
            };
            let (not_action, actions) = match (s.get("Action"), s.get("NotAction")) {
                (Some(a), None) => (false, strings(a).map_err(&bad)?),
                (None, Some(a)) => (true, strings(a).map_err(&bad)?),
                _ => {
                    return Err(bad(
                        "a statement needs exactly one of Action, NotAction".into()
                    ));
                }
            };
            let (not_resource, resources) = match (s.get("Resource"), s.get("NotResource")) {
                (Some(r), None) => (false, strings(r).map_err(&bad)?),
                (None, Some(r)) => (true, strings(r).map_err(&bad)?),
                _ => {
                    return Err(bad(
                        "an identity-based statement needs exactly one of Resource, NotResource"
                            .into(),
                    ));
                }
            };
            let mut conditions = Vec::new();
            if let Some(c) = s.get("Condition") {
                let Some(ops) = c.as_object() else {
                    return Err(bad("Condition must be an object".into()));
                };
                for (op, keys) in ops {
                    let Some(keys) = keys.as_object() else {
                        return Err(bad(format!("Condition {op} must be an object")));
                    };
                    for (key, values) in keys {
                        conditions.push((op.clone(), key.clone(), strings(values).map_err(&bad)?));
                    }
                }
            }
            out.push(Statement {
                allow,
                not_action,
                actions,
                not_resource,
                resources,
                conditions,
            });
        }
        Ok(Policy {
            source,
            statements: out,
        })
    }

    /// A policy allowing everything (`"Action": "*", "Resource": "*"`).
    pub fn full_access(source: impl Into<String>) -> Policy {
        Policy {
            source: source.into(),
            statements: vec![Statement {
                allow: true,
                not_action: false,
                actions: vec!["*".into()],
                not_resource: false,
                resources: vec!["*".into()],
                conditions: Vec::new(),
            }],
        }
    }
}

/// `*` matches any run of characters, `?` any one character.
pub fn wildcard_match(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let eq = |a: char, b: char| {
        if ignore_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && eq(p[pi], t[ti]))) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn action_matches(pattern: &str, action: &str) -> bool {
    pattern == "*" || wildcard_match(pattern, action, true)
}

/// A resource pattern against the request's resource: `*` matches all; a request on `*`
/// (an action without resource-level permissions) is matched by nothing else.
fn resource_matches(pattern: &str, resource: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if resource == "*" {
        return false;
    }
    // ARNs are compared part by part (partition, service, region, account, resource), so a
    // wildcard in one part does not reach into the next; the resource part may contain ':'.
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let r: Vec<&str> = resource.splitn(6, ':').collect();
    if p.len() != 6 || r.len() != 6 {
        // Not an ARN on one side: an ARN pattern of too few parts matches no ARN.
        return !(pattern.starts_with("arn:") && r.len() == 6)
            && wildcard_match(pattern, resource, false);
    }
    p.iter().zip(&r).all(|(p, r)| wildcard_match(p, r, false))
}

/// How one condition came out.
enum Cond {
    True,
    False,
    /// An operator this evaluator does not know.
    Unknown,
}

fn condition(op: &str, key: &str, values: &[String], ctx: &BTreeMap<String, Vec<String>>) -> Cond {
    let (op, if_exists) = match op.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (op, false),
    };
    let (set_op, op) = if let Some(rest) = op.strip_prefix("ForAnyValue:") {
        (Some(false), rest)
    } else if let Some(rest) = op.strip_prefix("ForAllValues:") {
        (Some(true), rest)
    } else {
        (None, op)
    };
    let present = ctx.get(&key.to_ascii_lowercase());
    if op == "Null" {
        // "Null": true means the key must be absent.
        let want_absent = values.iter().any(|v| v.eq_ignore_ascii_case("true"));
        return if want_absent == present.is_none() {
            Cond::True
        } else {
            Cond::False
        };
    }
    let negated = matches!(
        op,
        "StringNotEquals"
            | "StringNotEqualsIgnoreCase"
            | "StringNotLike"
            | "ArnNotEquals"
            | "ArnNotLike"
    );
    let one: fn(&str, &str) -> bool = match op {
        "StringEquals" | "StringNotEquals" | "ArnEquals" | "ArnNotEquals" => |v, c| v == c,
        "StringEqualsIgnoreCase" | "StringNotEqualsIgnoreCase" => |v, c| v.eq_ignore_ascii_case(c),
        "StringLike" | "StringNotLike" | "ArnLike" | "ArnNotLike" => {
            |v, c| wildcard_match(v, c, false)
        }
        "Bool" => |v, c| v.eq_ignore_ascii_case(c),
        _ => return Cond::Unknown,
    };
    let Some(present) = present else {
        // A missing key: IfExists makes the condition true; a negated operator is true (the
        // value is not equal to anything); a set operator ForAllValues is true on an empty set.
        return if if_exists || negated || set_op == Some(true) {
            Cond::True
        } else {
            Cond::False
        };
    };
    let matches_any = |c: &str| values.iter().any(|v| one(v, c));
    let hit = match set_op {
        Some(true) => present.iter().all(|c| matches_any(c)),
        _ => present.iter().any(|c| matches_any(c)),
    };
    if hit != negated {
        Cond::True
    } else {
        Cond::False
    }
}

/// What [`evaluate`] found, with the operators it could not evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Decision,
    /// `policy: operator` for each unknown condition operator met on the way.
    pub unknown_operators: Vec<String>,
}

/// Evaluate `policies` (all identity-based policies of the caller) for `req`.
pub fn evaluate(policies: &[Policy], req: &Request<'_>) -> Outcome {
    let mut allowed = false;
    let mut unknown = Vec::new();
    for policy in policies {
        for s in &policy.statements {
            let action_hit = s.actions.iter().any(|a| action_matches(a, req.action));
            if action_hit == s.not_action {
                continue;
            }
            let resource_hit = s
                .resources
                .iter()
                .any(|r| resource_matches(r, req.resource));
            if resource_hit == s.not_resource {
                continue;
            }
            let mut applies = true;
            for (op, key, values) in &s.conditions {
                match condition(op, key, values, req.context) {
                    Cond::True => {}
                    Cond::False => {
                        applies = false;
                        break;
                    }
                    Cond::Unknown => {
                        unknown.push(format!("{}: {op}", policy.source));
                        // Safe either way: an Allow does not apply, a Deny does.
                        applies = !s.allow;
                        break;
                    }
                }
            }
            if !applies {
                continue;
            }
            if !s.allow {
                return Outcome {
                    decision: Decision::ExplicitDeny,
                    unknown_operators: unknown,
                };
            }
            allowed = true;
        }
    }
    Outcome {
        decision: if allowed {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        },
        unknown_operators: unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const WS: &str = "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1";
    const WS2: &str = "arn:aws:aps:eu-west-1:123456789012:workspace/ws-2";

    fn policy(doc: Value) -> Policy {
        Policy::from_value("test", &doc).expect("parses")
    }

    fn stmt(effect: &str, action: Value, resource: Value) -> Value {
        json!({"Effect": effect, "Action": action, "Resource": resource})
    }

    fn decide(policies: &[Policy], action: &str, resource: &str) -> Decision {
        decide_in(policies, action, resource, &BTreeMap::new())
    }

    fn decide_in(
        policies: &[Policy],
        action: &str,
        resource: &str,
        ctx: &BTreeMap<String, Vec<String>>,
    ) -> Decision {
        evaluate(
            policies,
            &Request {
                action,
                resource,
                context: ctx,
            },
        )
        .decision
    }

    /// The cases of the IAM User Guide's "Policy evaluation logic" (identity-based policies,
    /// one account) and of its policy grammar, as a table: policies, action, resource, outcome.
    #[test]
    fn the_documented_evaluation_logic_as_a_table() {
        use Decision::*;
        let ours = json!({"Version": "2012-10-17", "Statement": [{"Sid": "AmpWorkspaceAccess",
            "Effect": "Allow", "Action": ["aps:RemoteWrite"], "Resource": WS}]});
        let recipe = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": ["aps:RemoteWrite", "aps:QueryMetrics", "aps:GetSeries", "aps:GetLabels",
            "aps:GetMetricMetadata"], "Resource": "*"}]});
        let cases: Vec<(&str, Vec<Value>, &str, &str, Decision)> = vec![
            // By default every request is denied (implicit deny).
            (
                "no policy at all",
                vec![],
                "aps:RemoteWrite",
                WS,
                ImplicitDeny,
            ),
            (
                "irsa-role's policy: write to its workspace",
                vec![ours.clone()],
                "aps:RemoteWrite",
                WS,
                Allow,
            ),
            (
                "irsa-role's policy: query",
                vec![ours.clone()],
                "aps:QueryMetrics",
                WS,
                ImplicitDeny,
            ),
            (
                "irsa-role's policy: another workspace",
                vec![ours.clone()],
                "aps:RemoteWrite",
                WS2,
                ImplicitDeny,
            ),
            (
                "the recipe's policy: query",
                vec![recipe.clone()],
                "aps:QueryMetrics",
                WS,
                Allow,
            ),
            (
                "the recipe's policy: another workspace",
                vec![recipe.clone()],
                "aps:RemoteWrite",
                WS2,
                Allow,
            ),
            (
                "the recipe's policy: control plane",
                vec![recipe],
                "aps:DeleteWorkspace",
                WS,
                ImplicitDeny,
            ),
            // An explicit deny in any policy overrides any allow.
            (
                "deny overrides allow in another policy",
                vec![
                    json!({"Statement": stmt("Allow", json!("aps:*"), json!("*"))}),
                    json!({"Statement": stmt("Deny", json!("aps:QueryMetrics"), json!(WS))}),
                ],
                "aps:QueryMetrics",
                WS,
                ExplicitDeny,
            ),
            (
                "deny overrides allow in the same policy",
                vec![
                    json!({"Statement": [stmt("Deny", json!("aps:*"), json!("*")),
                                          stmt("Allow", json!("aps:RemoteWrite"), json!(WS))]}),
                ],
                "aps:RemoteWrite",
                WS,
                ExplicitDeny,
            ),
            (
                "a deny elsewhere does not affect this request",
                vec![
                    json!({"Statement": [stmt("Allow", json!("aps:*"), json!("*")),
                                          stmt("Deny", json!("aps:*"), json!(WS2))]}),
                ],
                "aps:RemoteWrite",
                WS,
                Allow,
            ),
            // Wildcards: actions are case-insensitive, * and ? both work.
            (
                "action wildcard",
                vec![json!({"Statement": stmt("Allow", json!("aps:Get*"), json!("*"))})],
                "aps:GetSeries",
                WS,
                Allow,
            ),
            (
                "action wildcard not matching",
                vec![json!({"Statement": stmt("Allow", json!("aps:Get*"), json!("*"))})],
                "aps:QueryMetrics",
                WS,
                ImplicitDeny,
            ),
            (
                "action case-insensitive",
                vec![json!({"Statement": stmt("Allow", json!("APS:remotewrite"), json!("*"))})],
                "aps:RemoteWrite",
                WS,
                Allow,
            ),
            (
                "action ?",
                vec![json!({"Statement": stmt("Allow", json!("aps:GetLabel?"), json!("*"))})],
                "aps:GetLabels",
                WS,
                Allow,
            ),
            (
                "action *",
                vec![json!({"Statement": stmt("Allow", json!("*"), json!("*"))})],
                "aps:CreateWorkspace",
                WS,
                Allow,
            ),
            (
                "another service's action",
                vec![json!({"Statement": stmt("Allow", json!("s3:*"), json!("*"))})],
                "aps:RemoteWrite",
                WS,
                ImplicitDeny,
            ),
            // Resources: case-sensitive, wildcards per part.
            (
                "resource wildcard",
                vec![
                    json!({"Statement": stmt("Allow", json!("aps:RemoteWrite"), json!("arn:aws:aps:*:123456789012:workspace/ws-*"))}),
                ],
                "aps:RemoteWrite",
                WS,
                Allow,
            ),
            (
                "resource ?",
                vec![
                    json!({"Statement": stmt("Allow", json!("aps:RemoteWrite"), json!("arn:aws:aps:eu-west-1:123456789012:workspace/ws-?"))}),
                ],
                "aps:RemoteWrite",
                WS2,
                Allow,
            ),
            (
                "resource case-sensitive",
                vec![
                    json!({"Statement": stmt("Allow", json!("aps:RemoteWrite"), json!("arn:aws:aps:eu-west-1:123456789012:workspace/WS-1"))}),
                ],
                "aps:RemoteWrite",
                WS,
                ImplicitDeny,
            ),
            (
                "resource of another account",
                vec![
                    json!({"Statement": stmt("Allow", json!("aps:RemoteWrite"), json!("arn:aws:aps:eu-west-1:210987654321:workspace/ws-1"))}),
                ],
                "aps:RemoteWrite",
                WS,
                ImplicitDeny,
            ),
            (
                "a wildcard does not cross an ARN part",
                vec![
                    json!({"Statement": stmt("Allow", json!("aps:RemoteWrite"), json!("arn:aws:aps:eu-*:workspace/ws-1"))}),
                ],
                "aps:RemoteWrite",
                WS,
                ImplicitDeny,
            ),
            (
                "resource array",
                vec![
                    json!({"Statement": stmt("Allow", json!(["aps:RemoteWrite"]), json!([WS2, WS]))}),
                ],
                "aps:RemoteWrite",
                WS,
                Allow,
            ),
            // Actions without resource-level permissions are on "*": only "*" grants them.
            (
                "list on * with a workspace ARN",
                vec![
                    json!({"Statement": stmt("Allow", json!("aps:*"), json!("arn:aws:aps:*:*:*"))}),
                ],
                "aps:ListWorkspaces",
                "*",
                ImplicitDeny,
            ),
            (
                "list on * with *",
                vec![json!({"Statement": stmt("Allow", json!("aps:ListWorkspaces"), json!("*"))})],
                "aps:ListWorkspaces",
                "*",
                Allow,
            ),
            // NotAction / NotResource.
            (
                "NotAction allows the others",
                vec![
                    json!({"Statement": {"Effect": "Allow", "NotAction": "aps:Delete*", "Resource": "*"}}),
                ],
                "aps:RemoteWrite",
                WS,
                Allow,
            ),
            (
                "NotAction excludes its own",
                vec![
                    json!({"Statement": {"Effect": "Allow", "NotAction": "aps:Delete*", "Resource": "*"}}),
                ],
                "aps:DeleteWorkspace",
                WS,
                ImplicitDeny,
            ),
            (
                "NotResource",
                vec![
                    json!({"Statement": {"Effect": "Allow", "Action": "aps:*", "NotResource": WS2}}),
                ],
                "aps:RemoteWrite",
                WS,
                Allow,
            ),
            (
                "NotResource excludes its own",
                vec![
                    json!({"Statement": {"Effect": "Allow", "Action": "aps:*", "NotResource": WS2}}),
                ],
                "aps:RemoteWrite",
                WS2,
                ImplicitDeny,
            ),
            (
                "Deny with NotResource",
                vec![
                    json!({"Statement": [stmt("Allow", json!("aps:*"), json!("*")), {"Effect": "Deny", "Action": "aps:*", "NotResource": WS}]}),
                ],
                "aps:RemoteWrite",
                WS2,
                ExplicitDeny,
            ),
        ];
        for (name, docs, action, resource, want) in cases {
            let policies: Vec<Policy> = docs.into_iter().map(policy).collect();
            assert_eq!(decide(&policies, action, resource), want, "{name}");
        }
    }

    #[test]
    fn conditions_the_projects_policies_use_and_unknown_operators() {
        let ctx = BTreeMap::from([
            ("aws:resourcetag/team".to_owned(), vec!["mesh".to_owned()]),
            (
                "aws:principalarn".to_owned(),
                vec!["arn:aws:iam::123456789012:role/collector".to_owned()],
            ),
        ]);
        let with = |cond: Value| {
            vec![policy(
                json!({"Statement": {"Effect": "Allow", "Action": "aps:RemoteWrite",
                "Resource": "*", "Condition": cond}}),
            )]
        };
        let d = |cond: Value| decide_in(&with(cond), "aps:RemoteWrite", WS, &ctx);
        assert_eq!(
            d(json!({"StringEquals": {"aws:ResourceTag/team": "mesh"}})),
            Decision::Allow
        );
        assert_eq!(
            d(json!({"StringEquals": {"aws:ResourceTag/team": ["ops", "mesh"]}})),
            Decision::Allow,
            "values of one key are ORed"
        );
        assert_eq!(
            d(json!({"StringEquals": {"aws:ResourceTag/team": "ops"}})),
            Decision::ImplicitDeny
        );
        assert_eq!(
            d(json!({"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/coll*"}})),
            Decision::Allow
        );
        assert_eq!(
            d(json!({"StringNotEquals": {"aws:ResourceTag/team": "mesh"}})),
            Decision::ImplicitDeny
        );
        assert_eq!(
            d(json!({"StringEquals": {"aws:ResourceTag/team": "mesh", "aws:PrincipalArn": "x"}})),
            Decision::ImplicitDeny,
            "keys are ANDed"
        );
        assert_eq!(
            d(json!({"StringEquals": {"aws:ResourceTag/absent": "x"}})),
            Decision::ImplicitDeny
        );
        assert_eq!(
            d(json!({"StringEqualsIfExists": {"aws:ResourceTag/absent": "x"}})),
            Decision::Allow
        );
        assert_eq!(
            d(json!({"Null": {"aws:ResourceTag/absent": "true"}})),
            Decision::Allow
        );
        assert_eq!(
            d(json!({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/*"}})),
            Decision::Allow
        );

        // An operator unknown here: an Allow does not apply, a Deny does; both are reported.
        let out = evaluate(
            &with(json!({"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}})),
            &Request {
                action: "aps:RemoteWrite",
                resource: WS,
                context: &ctx,
            },
        );
        assert_eq!(out.decision, Decision::ImplicitDeny);
        assert_eq!(
            out.unknown_operators,
            vec!["test: NumericLessThan".to_owned()]
        );
        let deny = vec![
            Policy::full_access("all"),
            policy(
                json!({"Statement": {"Effect": "Deny", "Action": "*", "Resource": "*",
                "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}}}),
            ),
        ];
        assert_eq!(
            decide_in(&deny, "aps:RemoteWrite", WS, &ctx),
            Decision::ExplicitDeny
        );
    }

    #[test]
    fn documents_parse_as_iam_returns_them_and_bad_ones_are_refused() {
        let encoded = "%7B%22Version%22%3A%20%222012-10-17%22%2C%20%22Statement%22%3A%20%5B%7B%22Effect%22%3A%20%22Allow%22%2C%20%22Action%22%3A%20%22aps%3AGetLabels%22%2C%20%22Resource%22%3A%20%22%2A%22%7D%5D%7D";
        let p = Policy::parse("g", encoded).expect("URL-encoded");
        assert_eq!(decide(&[p], "aps:GetLabels", WS), Decision::Allow);
        assert!(
            Policy::parse(
                "x",
                r#"{"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]}"#
            )
            .is_err()
        );
        assert!(
            Policy::parse(
                "x",
                r#"{"Statement": [{"Effect": "Allow", "Resource": "*"}]}"#
            )
            .is_err()
        );
        assert!(Policy::parse("x", "not json").is_err());
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("a*c", "abbbc", false));
        assert!(wildcard_match("a*", "a", false));
        assert!(wildcard_match("*b*", "abc", false));
        assert!(!wildcard_match("a?c", "ac", false));
        assert!(wildcard_match("a?c", "abc", false));
        assert!(!wildcard_match("abc", "ABC", false));
        assert!(wildcard_match("abc", "ABC", true));
        assert!(wildcard_match("*a*a*a*b", "aaaaaaaaaaaaaaab", false));
        assert!(!wildcard_match("*a*a*a*b", "aaaaaaaaaaaaaaaa", false));
    }
}
