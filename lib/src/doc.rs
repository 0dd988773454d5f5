//! The state document: one JSON object that flows from tool to tool through a pipe.
//!
//! Each tool reads it on stdin, keeps every key it does not own untouched, sets its own
//! section, appends what it created to the `resources` ledger, and writes it on stdout.
//! The ledger is what `teardown` deletes, so it must survive every failure: the document is
//! written even when the tool fails.

use std::io::{IsTerminal, Read};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The key of the ledger of created resources.
pub const RESOURCES_KEY: &str = "resources";

/// The tag (AWS) and label (Kubernetes, as `app.kubernetes.io/managed-by`) that marks what
/// ampkit created; teardown checks it again before deleting.
pub const MANAGED_BY: (&str, &str) = ("managed-by", "ampkit");
/// Whether tags (key, value) carry [`MANAGED_BY`]: what makes a cloud object ours to delete.
pub fn tagged_ours<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
    tags.into_iter()
        .any(|(k, v)| k == MANAGED_BY.0 && v == MANAGED_BY.1)
}

/// The Kubernetes label key for [`MANAGED_BY`], the well-known recommended label.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// What a ledger entry is. Serialised as the same strings every earlier version wrote, so
/// existing state files still read; a kind this version does not know is kept as written
/// (teardown reports it and never guesses what it is).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ResourceKind {
    AmpWorkspace,
    IamOidcProvider,
    IamRole,
    /// Our inline policy on a role someone else made.
    IamRolePolicy,
    EksPodIdentityAssociation,
    /// An EKS access entry mapping an IAM role (a managed collector's) to a Kubernetes user.
    EksAccessEntry,
    K8sNamespace,
    K8sServiceAccount,
    GrafanaDatasource,
    GrafanaFolder,
    GrafanaDashboard,
    /// An AMG workspace service account whose delete failed at the end of a run.
    GrafanaServiceAccount,
    GrafanaContactPoint,
    /// Our child route in Grafana's notification policy tree.
    GrafanaNotificationRoute,
    GrafanaAlertRule,
    SnsTopic,
    SnsSubscription,
    /// Our statement in a topic's access policy (the topic may be someone else's).
    SnsTopicPolicyStatement,
    AmpRuleGroupsNamespace,
    AmpAlertManagerDefinition,
    /// AMP's managed collector.
    AmpScraper,
    /// Written by a newer (or older) ampkit.
    Other(String),
}

impl ResourceKind {
    const KNOWN: [(ResourceKind, &'static str); 21] = [
        (ResourceKind::AmpWorkspace, "amp-workspace"),
        (ResourceKind::IamOidcProvider, "iam-oidc-provider"),
        (ResourceKind::IamRole, "iam-role"),
        (ResourceKind::IamRolePolicy, "iam-role-policy"),
        (
            ResourceKind::EksPodIdentityAssociation,
            "eks-pod-identity-association",
        ),
        (ResourceKind::K8sNamespace, "k8s-namespace"),
        (ResourceKind::K8sServiceAccount, "k8s-service-account"),
        (ResourceKind::GrafanaDatasource, "grafana-datasource"),
        (ResourceKind::GrafanaFolder, "grafana-folder"),
        (ResourceKind::GrafanaDashboard, "grafana-dashboard"),
        (
            ResourceKind::GrafanaServiceAccount,
            "grafana-service-account",
        ),
        (ResourceKind::GrafanaContactPoint, "grafana-contact-point"),
        (
            ResourceKind::GrafanaNotificationRoute,
            "grafana-notification-route",
        ),
        (ResourceKind::GrafanaAlertRule, "grafana-alert-rule"),
        (ResourceKind::SnsTopic, "sns-topic"),
        (ResourceKind::SnsSubscription, "sns-subscription"),
        (
            ResourceKind::SnsTopicPolicyStatement,
            "sns-topic-policy-statement",
        ),
        (
            ResourceKind::AmpRuleGroupsNamespace,
            "amp-rule-groups-namespace",
        ),
        (
            ResourceKind::AmpAlertManagerDefinition,
            "amp-alert-manager-definition",
        ),
        (ResourceKind::AmpScraper, "amp-scraper"),
        (ResourceKind::EksAccessEntry, "eks-access-entry"),
    ];

    /// Whether an entry of this kind must be deleted before a `newer` one, against the
    /// ledger's newest-first order. Our notification route leaves Grafana's policy tree before
    /// the alert rules created after it, so that alerts stop being routed before anything
    /// else of the alerting goes (route, then rules, then contact point).
    pub fn leaves_before(&self, newer: &ResourceKind) -> bool {
        matches!(
            (self, newer),
            (
                ResourceKind::GrafanaNotificationRoute,
                ResourceKind::GrafanaAlertRule
            )
        )
    }

    pub fn as_str(&self) -> &str {
        match self {
            ResourceKind::Other(name) => name,
            known => Self::KNOWN
                .iter()
                .find(|(kind, _)| kind == known)
                .map_or("", |(_, name)| name),
        }
    }
}

impl From<String> for ResourceKind {
    fn from(name: String) -> Self {
        Self::KNOWN
            .iter()
            .find(|(_, known)| *known == name)
            .map_or(ResourceKind::Other(name), |(kind, _)| kind.clone())
    }
}

impl From<ResourceKind> for String {
    fn from(kind: ResourceKind) -> Self {
        kind.as_str().to_owned()
    }
}

impl std::fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One object a tool created, as recorded in the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// What it is; serialised as `type`.
    #[serde(rename = "type")]
    pub kind: ResourceKind,
    /// The identifier teardown deletes it by (workspace id, role name, topic ARN, ...).
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The tool that created it.
    pub tool: String,
    /// Anything else teardown needs (e.g. the workspace of a rule groups namespace).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub details: Map<String, Value>,
}

impl Resource {
    pub fn new(kind: ResourceKind, id: impl Into<String>, tool: impl Into<String>) -> Self {
        Resource {
            kind,
            id: id.into(),
            arn: None,
            region: None,
            tool: tool.into(),
            details: Map::new(),
        }
    }

    pub fn arn(mut self, arn: impl Into<String>) -> Self {
        self.arn = Some(arn.into());
        self
    }

    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The details as the kind's owner types them (serialised as the ledger has always had
    /// them, so that a ledger written by an older ampkit still reads).
    pub fn with_details<T: serde::Serialize>(mut self, details: &T) -> Self {
        if let Ok(Value::Object(map)) = serde_json::to_value(details) {
            self.details = map;
        }
        self
    }

    /// The details read back as their owner's type; the message names what was wrong.
    pub fn details_as<T: serde::de::DeserializeOwned>(&self) -> std::result::Result<T, String> {
        serde_json::from_value(Value::Object(self.details.clone()))
            .map_err(|e| format!("its `details` do not read as a {} entry's: {e}", self.kind))
    }
}

/// The state document. Key order is preserved, so a tool's output differs from its input
/// only where the tool wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDoc {
    root: Map<String, Value>,
}

impl StateDoc {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse a document from text. Empty (or all-whitespace) text is the empty document.
    pub fn parse(text: &str) -> Result<Self> {
        if text.trim().is_empty() {
            return Ok(Self::new());
        }
        let value: Value = serde_json::from_str(text).map_err(|e| {
            Error::input(format!(
                "the state document on stdin is not valid JSON: {e}"
            ))
            .with_hint(
                "pipe in the output of another ampkit tool, a JSON object such as {}, or nothing",
            )
        })?;
        match value {
            Value::Object(root) => Self::from_map(root),
            other => Err(Error::input(format!(
                "the state document on stdin must be a JSON object, got {}",
                json_type_name(&other)
            ))
            .with_hint("wrap it in an object, e.g. {\"workspace\": ...}, or pipe in nothing")),
        }
    }

    fn from_map(root: Map<String, Value>) -> Result<Self> {
        match root.get(RESOURCES_KEY) {
            None | Some(Value::Array(_)) => Ok(StateDoc { root }),
            Some(other) => Err(Error::input(format!(
                "field `{RESOURCES_KEY}` of the state document must be an array (the ledger), got {}",
                json_type_name(other)
            ))
            .with_hint("remove it, or restore the ledger written by the ampkit tools")),
        }
    }

    /// Read the document from stdin. A terminal on stdin means "no document": `{}`.
    pub fn read_stdin() -> Result<Self> {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            return Ok(Self::new());
        }
        let mut text = String::new();
        stdin.lock().read_to_string(&mut text).map_err(|e| {
            Error::input(format!("could not read the state document from stdin: {e}"))
                .with_hint("pipe in UTF-8 JSON")
        })?;
        Self::parse(&text)
    }

    /// The whole document as a JSON object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.root
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.root)
    }

    /// A tool's (or an earlier tool's) section.
    pub fn section(&self, name: &str) -> Option<&Value> {
        self.root.get(name)
    }

    /// A string field of a section, e.g. `("workspace", "workspaceId")`.
    pub fn str_field(&self, section: &str, field: &str) -> Option<&str> {
        self.root.get(section)?.get(field)?.as_str()
    }

    /// A section deserialized into a type; absent is `Ok(None)`, malformed is an input error
    /// naming the section.
    pub fn section_as<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        match self.root.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value.clone())
                .map(Some)
                .map_err(|e| {
                    Error::input(format!(
                        "section `{name}` of the state document is malformed: {e}"
                    ))
                    .with_hint(format!(
                        "remove `{name}` from the document, or re-run the tool that writes it"
                    ))
                }),
        }
    }

    /// Set (replace) a section. Only the owning tool does this.
    pub fn set_section(&mut self, name: &str, value: impl Serialize) -> Result<()> {
        let value = serde_json::to_value(value)
            .map_err(|e| Error::internal(format!("could not serialize section `{name}`: {e}")))?;
        self.root.insert(name.to_owned(), value);
        Ok(())
    }

    /// The ledger, oldest first.
    pub fn resources(&self) -> Vec<Resource> {
        match self.root.get(RESOURCES_KEY) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|item| serde_json::from_value(item.clone()).ok())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The ledger entries as raw JSON (teardown needs entries of kinds it may not know).
    pub fn resource_values(&self) -> &[Value] {
        match self.root.get(RESOURCES_KEY) {
            Some(Value::Array(items)) => items,
            _ => &[],
        }
    }

    /// Append one created object to the ledger.
    pub fn push_resource(&mut self, resource: Resource) {
        let value = serde_json::to_value(resource).unwrap_or(Value::Null);
        match self.root.get_mut(RESOURCES_KEY) {
            Some(Value::Array(items)) => items.push(value),
            // `from_map` guarantees an array; anything else is replaced only when absent.
            _ => {
                self.root
                    .insert(RESOURCES_KEY.to_owned(), Value::Array(vec![value]));
            }
        }
    }

    /// Replace the whole ledger (teardown removes what it deleted).
    pub fn set_resources(&mut self, items: Vec<Value>) {
        self.root
            .insert(RESOURCES_KEY.to_owned(), Value::Array(items));
    }

    /// Serialize: pretty for a person, one compact line for a pipe.
    pub fn render(&self, pretty: bool) -> String {
        let value = Value::Object(self.root.clone());
        let text = if pretty {
            serde_json::to_string_pretty(&value)
        } else {
            serde_json::to_string(&value)
        };
        text.unwrap_or_else(|_| "{}".to_owned())
    }
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ours_is_the_managed_by_tag_with_our_value() {
        assert!(tagged_ours([("team", "x"), ("managed-by", "ampkit")]));
        assert!(!tagged_ours([("managed-by", "terraform")]));
        assert!(!tagged_ours([("ampkit", "managed-by")]));
        assert!(!tagged_ours(std::iter::empty()));
    }

    #[test]
    fn empty_input_is_the_empty_document() {
        assert_eq!(StateDoc::parse("").unwrap(), StateDoc::new());
        assert_eq!(StateDoc::parse(" \n\t").unwrap(), StateDoc::new());
    }

    #[test]
    fn unknown_keys_pass_through_untouched_and_in_order() {
        let input = r#"{"zeta":{"deep":[1,{"x":null}],"n":1.5e-7},"alpha":"a","workspace":{"workspaceId":"ws-1"},"big":18446744073709551615}"#;
        let mut doc = StateDoc::parse(input).unwrap();
        doc.set_section("traffic", json!({"sent": 3})).unwrap();
        let out: Value = serde_json::from_str(&doc.render(false)).unwrap();
        let original: Value = serde_json::from_str(input).unwrap();
        for (key, value) in original.as_object().unwrap() {
            assert_eq!(&out[key], value, "key {key} changed");
        }
        let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["zeta", "alpha", "workspace", "big", "traffic"]);
    }

    #[test]
    fn setting_a_section_replaces_only_that_section() {
        let mut doc = StateDoc::parse(r#"{"query":{"old":true},"other":1}"#).unwrap();
        doc.set_section("query", json!({"expr": "up"})).unwrap();
        assert_eq!(doc.section("query"), Some(&json!({"expr": "up"})));
        assert_eq!(doc.section("other"), Some(&json!(1)));
    }

    #[test]
    fn ledger_appends_keep_earlier_entries() {
        let mut doc = StateDoc::parse(
            r#"{"resources":[{"type":"amp-workspace","id":"ws-1","tool":"amp-workspace","future":"kept"}]}"#,
        )
        .unwrap();
        doc.push_resource(
            Resource::new(ResourceKind::IamRole, "ampkit-agent", "irsa-role")
                .arn("arn:aws:iam::123456789012:role/ampkit-agent"),
        );
        let ledger = doc.resource_values();
        assert_eq!(ledger.len(), 2);
        // An entry written by a newer tool keeps fields this version does not know.
        assert_eq!(ledger[0]["future"], "kept");
        assert_eq!(ledger[1]["type"], "iam-role");
        assert_eq!(ledger[1]["tool"], "irsa-role");
        assert_eq!(doc.resources()[1].id, "ampkit-agent");
    }

    #[test]
    fn resource_kinds_keep_the_strings_earlier_versions_wrote() {
        for (kind, name) in ResourceKind::KNOWN {
            assert_eq!(serde_json::to_value(&kind).unwrap(), json!(name));
            assert_eq!(
                serde_json::from_value::<ResourceKind>(json!(name)).unwrap(),
                kind
            );
        }
        let future: ResourceKind = serde_json::from_value(json!("gcp-bucket")).unwrap();
        assert_eq!(future, ResourceKind::Other("gcp-bucket".into()));
        assert_eq!(serde_json::to_value(&future).unwrap(), json!("gcp-bucket"));
    }

    #[test]
    fn ledger_is_created_on_first_append() {
        let mut doc = StateDoc::new();
        doc.push_resource(
            Resource::new(ResourceKind::SnsTopic, "arn:t", "sns-alert").region("eu-west-1"),
        );
        assert_eq!(
            doc.section(RESOURCES_KEY),
            Some(
                &json!([{"type":"sns-topic","id":"arn:t","region":"eu-west-1","tool":"sns-alert"}])
            )
        );
    }

    #[test]
    fn malformed_json_is_an_input_error_with_position() {
        let err = StateDoc::parse("{\"a\": 1,\n  \"b\": }").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.message.contains("not valid JSON"), "{}", err.message);
        assert!(err.message.contains("line 2 column"), "{}", err.message);
        assert!(err.hint.is_some());
    }

    #[test]
    fn non_object_input_is_an_input_error_naming_the_type() {
        for (text, name) in [
            ("[1,2]", "an array"),
            ("\"x\"", "a string"),
            ("42", "a number"),
            ("null", "null"),
        ] {
            let err = StateDoc::parse(text).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(
                err.message.contains("must be a JSON object"),
                "{}",
                err.message
            );
            assert!(err.message.contains(name), "{}: {}", text, err.message);
        }
    }

    #[test]
    fn a_ledger_that_is_not_an_array_is_refused() {
        let err = StateDoc::parse(r#"{"resources":{"a":1}}"#).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.message.contains("`resources`"), "{}", err.message);
    }

    #[test]
    fn compact_output_is_one_line_pretty_is_many() {
        let doc = StateDoc::parse(r#"{"a":{"b":[1,2]}}"#).unwrap();
        assert!(!doc.render(false).contains('\n'));
        assert!(doc.render(true).lines().count() > 1);
    }

    #[test]
    fn malformed_section_names_itself() {
        let doc = StateDoc::parse(r#"{"workspace":"oops"}"#).unwrap();
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Ws {
            #[serde(rename = "workspaceId")]
            workspace_id: String,
        }
        let err = doc.section_as::<Ws>("workspace").unwrap_err();
        assert!(err.message.contains("`workspace`"), "{}", err.message);
    }
}
