//! Amazon SNS: the topic alerts are published to, its email subscriptions, the statements of
//! its access policy that let a service publish, and a marked test publication.
//!
//! sns-alert creates and finds these objects here; teardown deletes them with the same
//! functions ([`Sns::delete_topic`], [`Sns::unsubscribe`], [`Sns::remove_policy_statement`]),
//! each treating "already gone" as done. The topic policy is one document that other people
//! and services edit too, so it is always read, merged by statement id and written back:
//! never replaced, and on removal only our statement leaves.

use aws_sdk_sns::Client;
use aws_sdk_sns::types::{MessageAttributeValue, Tag};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::aws::sdk_error;
use crate::doc::{MANAGED_BY, Resource, tagged_ours};
use crate::error::{Error, Result};
use crate::ledger::{self, Removal, Run, Verdict};
use crate::preflight::{Need, Scope};
use crate::sts::arn_region;

/// SNS refuses a subject longer than this (and AMP truncates it); subjects are also ASCII only.
pub const SUBJECT_MAX: usize = 100;

/// A parsed SNS topic ARN: `arn:PARTITION:sns:REGION:ACCOUNT:NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicArn {
    pub partition: String,
    pub region: String,
    pub account: String,
    pub name: String,
}

impl TopicArn {
    pub fn parse(arn: &str) -> std::result::Result<TopicArn, String> {
        let parts: Vec<&str> = arn.split(':').collect();
        match parts.as_slice() {
            ["arn", partition, "sns", region, account, name]
                if !partition.is_empty()
                    && !region.is_empty()
                    && account.len() == 12
                    && account.bytes().all(|b| b.is_ascii_digit())
                    && valid_topic_name(name).is_ok() =>
            {
                Ok(TopicArn {
                    partition: (*partition).to_owned(),
                    region: (*region).to_owned(),
                    account: (*account).to_owned(),
                    name: (*name).to_owned(),
                })
            }
            _ => Err(format!(
                "`{arn}` is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"
            )),
        }
    }

    /// The topic for lib's one placement check (SNS, like AMP, answers "not found" for
    /// another region's or account's topic): named as the document's, or as `--topic-arn`'s.
    pub fn placed(&self, from_doc: bool) -> crate::aws::Placed<'static> {
        crate::aws::Placed {
            what: if from_doc {
                format!("the document's topic {}", self.name)
            } else {
                format!("the topic {} that --topic-arn names", self.name)
            },
            noun: "topic",
            flag: "--topic-arn",
        }
    }
}

/// The account of any ARN (`arn:aws:SERVICE:REGION:ACCOUNT:...`), if it has one.
pub fn arn_account(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// SNS's rule for topic names: 1 to 256 of `A-Z a-z 0-9 - _` (and a `.fifo` suffix, which
/// alerting cannot use: AMP and Grafana publish to Standard topics only).
pub fn valid_topic_name(name: &str) -> std::result::Result<(), String> {
    if name.ends_with(".fifo") {
        return Err(format!(
            "topic `{name}` is a FIFO topic; alerts need a Standard topic"
        ));
    }
    if name.is_empty()
        || name.len() > 256
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "`{name}` is not a valid topic name (1-256 of A-Z a-z 0-9 - _)"
        ));
    }
    Ok(())
}

/// A plausible email address for an `email` subscription: one `@`, a local part, a domain
/// with a dot, no spaces or control characters. SNS itself only checks when it mails.
pub fn valid_email(addr: &str) -> bool {
    let Some((local, domain)) = addr.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && addr
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '<' && c != '>' && c != ',')
}

/// A subject SNS takes: printable ASCII only, at most [`SUBJECT_MAX`] characters.
pub fn subject(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .filter(|c| (' '..='~').contains(c))
        .collect();
    let clean = clean.trim();
    let cut: String = clean.chars().take(SUBJECT_MAX).collect();
    if cut.is_empty() {
        "ampkit notification".to_owned()
    } else {
        cut
    }
}

/// One statement of a topic policy that lets `service` (e.g. `aps.amazonaws.com`) publish to
/// `topic_arn`, only on behalf of `source_arn` in `account` (the confused-deputy guard).
pub fn service_publish_statement(
    sid: &str,
    service: &str,
    topic_arn: &str,
    source_arn: &str,
    account: &str,
) -> Value {
    json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": ["sns:Publish", "sns:GetTopicAttributes"],
        "Resource": topic_arn,
        "Condition": {
            "ArnEquals": {"aws:SourceArn": source_arn},
            "StringEquals": {"AWS:SourceAccount": account}
        }
    })
}

/// `policy` with `statement` in it (replacing one with the same `Sid`); `None` when it is
/// there already, as it is.
pub fn merge_statement(policy: &Value, statement: &Value) -> Option<Value> {
    let mut policy = if policy.is_object() {
        policy.clone()
    } else {
        json!({"Version": "2012-10-17"})
    };
    let sid = &statement["Sid"];
    let mut statements = match policy.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        // A policy may hold one statement as an object.
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => Vec::new(),
    };
    match statements.iter().position(|s| &s["Sid"] == sid) {
        Some(i) if &statements[i] == statement => return None,
        Some(i) => statements[i] = statement.clone(),
        None => statements.push(statement.clone()),
    }
    policy["Statement"] = Value::Array(statements);
    if policy.get("Version").is_none() {
        policy["Version"] = json!("2012-10-17");
    }
    Some(policy)
}

/// What `ensure_policy_statement` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementOutcome {
    Added,
    Replaced,
    Unchanged,
}

/// One email subscription as sns-alert reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub endpoint: String,
    pub protocol: String,
    /// The ARN (SNS gives one even while pending, with `ReturnSubscriptionArn`).
    pub subscription_arn: String,
    /// `pending confirmation` until the address owner clicks the link, else `confirmed`.
    pub status: String,
    /// Whether this run subscribed it (else it was there already).
    #[serde(skip)]
    pub created: bool,
}

/// SNS in one account and region.
#[derive(Debug, Clone)]
pub struct Sns {
    client: Client,
    pub region: String,
}

impl Sns {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Sns {
            client: crate::aws_client!(aws_sdk_sns, config),
            region: crate::aws::region_of(config),
        }
    }

    /// The ARN of the topic named `name` in this region, if there is one.
    pub async fn find_topic(&self, name: &str) -> Result<Option<String>> {
        let suffix = format!(":{name}");
        let mut pages = self.client.list_topics().into_paginator().items().send();
        while let Some(item) = pages.next().await {
            let topic = item.map_err(|e| sdk_error(e, "listing SNS topics"))?;
            if let Some(arn) = topic.topic_arn()
                && arn.ends_with(&suffix)
            {
                return Ok(Some(arn.to_owned()));
            }
        }
        Ok(None)
    }

    /// Find the topic `name` or create it (tagged `managed-by=ampkit`); the ARN and whether
    /// this call created it.
    pub async fn ensure_topic(&self, name: &str) -> Result<(String, bool)> {
        if let Some(arn) = self.find_topic(name).await? {
            return Ok((arn, false));
        }
        let tag = Tag::builder()
            .key(MANAGED_BY.0)
            .value(MANAGED_BY.1)
            .build()
            .map_err(|e| Error::internal(format!("building the topic tag: {e}")))?;
        let created = self
            .client
            .create_topic()
            .name(name)
            .tags(tag)
            .send()
            .await
            .map_err(|e| sdk_error(e, format!("creating SNS topic `{name}`")))?;
        let arn = created.topic_arn().map(str::to_owned).ok_or_else(|| {
            Error::remote(format!(
                "creating SNS topic `{name}`: the answer has no ARN"
            ))
        })?;
        Ok((arn, true))
    }

    /// Whether the topic exists (GetTopicAttributes answers).
    pub async fn topic_exists(&self, arn: &str) -> Result<bool> {
        match self
            .client
            .get_topic_attributes()
            .topic_arn(arn)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_not_found_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(sdk_error(e, format!("reading topic {arn}"))),
        }
    }

    /// Whether the topic carries ampkit's managed-by tag (what makes it ours to delete).
    pub async fn topic_is_ours(&self, arn: &str) -> Result<bool> {
        let tags = self
            .client
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .map_err(|e| sdk_error(e, format!("reading the tags of topic {arn}")))?;
        Ok(tagged_ours(
            tags.tags().iter().map(|t| (t.key(), t.value())),
        ))
    }

    /// A subscription's attributes (`TopicArn`, `Endpoint`, `PendingConfirmation`, ...), or
    /// `None` where SNS answers not found.
    pub async fn subscription_attributes(
        &self,
        arn: &str,
    ) -> Result<Option<std::collections::HashMap<String, String>>> {
        match self
            .client
            .get_subscription_attributes()
            .subscription_arn(arn)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.attributes().cloned().unwrap_or_default())),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error(e, format!("reading subscription {arn}"))),
        }
    }

    /// The topic's access policy (SNS always has one: the default owner statement).
    pub async fn topic_policy(&self, arn: &str) -> Result<Value> {
        let out = self
            .client
            .get_topic_attributes()
            .topic_arn(arn)
            .send()
            .await
            .map_err(|e| sdk_error(e, format!("reading the policy of topic {arn}")))?;
        let text = out
            .attributes()
            .and_then(|a| a.get("Policy"))
            .map(String::as_str)
            .unwrap_or("{}");
        serde_json::from_str(text)
            .map_err(|e| Error::remote(format!("the policy of topic {arn} is not JSON: {e}")))
    }

    async fn set_topic_policy(&self, arn: &str, policy: &Value) -> Result<()> {
        self.client
            .set_topic_attributes()
            .topic_arn(arn)
            .attribute_name("Policy")
            .attribute_value(policy.to_string())
            .send()
            .await
            .map_err(|e| sdk_error(e, format!("writing the policy of topic {arn}")))?;
        Ok(())
    }

    /// Put `statement` into the topic's policy by read-modify-write, keeping every other
    /// statement. (SetTopicAttributes replaces the whole document; there is no per-statement
    /// call, so a concurrent editor can still race us: the window is one round trip.)
    pub async fn ensure_policy_statement(
        &self,
        topic_arn: &str,
        statement: &Value,
    ) -> Result<StatementOutcome> {
        let policy = self.topic_policy(topic_arn).await?;
        let existed = policy["Statement"]
            .as_array()
            .is_some_and(|list| list.iter().any(|s| s["Sid"] == statement["Sid"]));
        match merge_statement(&policy, statement) {
            None => Ok(StatementOutcome::Unchanged),
            Some(merged) => {
                self.set_topic_policy(topic_arn, &merged).await?;
                Ok(if existed {
                    StatementOutcome::Replaced
                } else {
                    StatementOutcome::Added
                })
            }
        }
    }

    /// Take the statement `sid` out of the topic's policy, leaving the others. A topic that
    /// is gone, or a statement that is not there, is [`Removal::Absent`].
    pub async fn remove_policy_statement(&self, topic_arn: &str, sid: &str) -> Result<Removal> {
        if !self.topic_exists(topic_arn).await? {
            return Ok(Removal::Absent);
        }
        let mut policy = self.topic_policy(topic_arn).await?;
        let Some(list) = policy.get_mut("Statement").and_then(Value::as_array_mut) else {
            return Ok(Removal::Absent);
        };
        let before = list.len();
        list.retain(|s| s["Sid"] != sid);
        if list.len() == before {
            return Ok(Removal::Absent);
        }
        self.set_topic_policy(topic_arn, &policy).await?;
        Ok(Removal::Deleted)
    }

    /// Subscribe `email` unless it already is; pending confirmation is reported as such.
    pub async fn ensure_email_subscription(
        &self,
        topic_arn: &str,
        email: &str,
    ) -> Result<Subscription> {
        let mut pages = self
            .client
            .list_subscriptions_by_topic()
            .topic_arn(topic_arn)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let sub =
                item.map_err(|e| sdk_error(e, format!("listing subscriptions of {topic_arn}")))?;
            if sub.protocol() == Some("email")
                && sub
                    .endpoint()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
            {
                let arn = sub.subscription_arn().unwrap_or_default().to_owned();
                // Without ReturnSubscriptionArn, a pending one is listed as "PendingConfirmation".
                let pending = !arn.starts_with("arn:") || self.pending(&arn).await?;
                return Ok(Subscription {
                    endpoint: email.to_owned(),
                    protocol: "email".to_owned(),
                    subscription_arn: arn,
                    status: status_text(pending).to_owned(),
                    created: false,
                });
            }
        }
        let out = self
            .client
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("email")
            .endpoint(email)
            // Else a pending subscription answers "pending confirmation" instead of an ARN,
            // and teardown would have nothing to delete it by.
            .return_subscription_arn(true)
            .send()
            .await
            .map_err(|e| sdk_error(e, format!("subscribing {email} to {topic_arn}")))?;
        let arn = out.subscription_arn().unwrap_or_default().to_owned();
        let pending = self.pending(&arn).await?;
        Ok(Subscription {
            endpoint: email.to_owned(),
            protocol: "email".to_owned(),
            subscription_arn: arn,
            status: status_text(pending).to_owned(),
            created: true,
        })
    }

    /// Whether the subscription waits for its owner's confirmation.
    async fn pending(&self, subscription_arn: &str) -> Result<bool> {
        let out = self
            .client
            .get_subscription_attributes()
            .subscription_arn(subscription_arn)
            .send()
            .await
            .map_err(|e| sdk_error(e, format!("reading subscription {subscription_arn}")))?;
        Ok(out
            .attributes()
            .and_then(|a| a.get("PendingConfirmation"))
            .is_some_and(|v| v == "true"))
    }

    /// Unsubscribe. SNS cannot delete a subscription still pending confirmation (it expires
    /// it after 48 hours, and deleting the topic removes it): that is [`Removal::Skipped`].
    pub async fn unsubscribe(&self, subscription_arn: &str) -> Result<Removal> {
        let attributes = self
            .client
            .get_subscription_attributes()
            .subscription_arn(subscription_arn)
            .send()
            .await;
        match attributes {
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_not_found_exception()) =>
            {
                return Ok(Removal::Absent);
            }
            Err(e) => {
                return Err(sdk_error(
                    e,
                    format!("reading subscription {subscription_arn}"),
                ));
            }
            Ok(out)
                if out
                    .attributes()
                    .and_then(|a| a.get("PendingConfirmation"))
                    .is_some_and(|v| v == "true") =>
            {
                return Ok(Removal::Skipped(
                    "pending confirmation: SNS cannot delete it and expires it within 48 h \
                     (deleting the topic removes it too)"
                        .to_owned(),
                ));
            }
            Ok(_) => {}
        }
        match self
            .client
            .unsubscribe()
            .subscription_arn(subscription_arn)
            .send()
            .await
        {
            Ok(_) => Ok(Removal::Deleted),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_not_found_exception()) =>
            {
                Ok(Removal::Absent)
            }
            Err(e) => Err(sdk_error(e, format!("unsubscribing {subscription_arn}"))),
        }
    }

    /// Delete the topic (and so its subscriptions). DeleteTopic is idempotent; a topic that
    /// is gone is [`Removal::Absent`].
    pub async fn delete_topic(&self, topic_arn: &str) -> Result<Removal> {
        if !self.topic_exists(topic_arn).await? {
            return Ok(Removal::Absent);
        }
        match self.client.delete_topic().topic_arn(topic_arn).send().await {
            Ok(_) => Ok(Removal::Deleted),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_not_found_exception()) =>
            {
                Ok(Removal::Absent)
            }
            Err(e) => Err(sdk_error(e, format!("deleting topic {topic_arn}"))),
        }
    }

    /// Publish one message; its subject is made short and ASCII first. Returns the message id.
    pub async fn publish(
        &self,
        topic_arn: &str,
        subject_text: &str,
        message: &str,
        attributes: &[(&str, &str)],
    ) -> Result<String> {
        let mut request = self
            .client
            .publish()
            .topic_arn(topic_arn)
            .subject(subject(subject_text))
            .message(message);
        for (name, value) in attributes {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(*value)
                .build()
                .map_err(|e| Error::internal(format!("building attribute {name}: {e}")))?;
            request = request.message_attributes(*name, value);
        }
        let out = request
            .send()
            .await
            .map_err(|e| sdk_error(e, format!("publishing to {topic_arn}")))?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }
}

fn status_text(pending: bool) -> &'static str {
    if pending {
        "pending confirmation"
    } else {
        "confirmed"
    }
}

// ---- The ledger's SNS entries, and their deletes (teardown) ----------------------------------

/// A topic's ledger details.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicDetails {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// A subscription's ledger details: untaggable, it is ours while it is still on the topic and
/// to the endpoint recorded here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionDetails {
    pub topic_arn: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub pending_confirmation: bool,
}

/// The ledger details of our statement in a topic's policy (the topic may be someone else's).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatementDetails {
    pub topic_arn: String,
    /// The workspace the statement lets publish.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub workspace_id: String,
}

fn region_of(r: &Resource, arn: &str) -> Option<String> {
    r.region
        .clone()
        .or_else(|| arn_region(arn).map(str::to_owned))
}

/// teardown's `sns-topic` entry: the topic, with its subscriptions, if it carries our tag.
pub async fn take_down_topic(run: &mut impl Run, r: &Resource) -> Result<Verdict> {
    let _: TopicDetails = crate::verdict!(ledger::details(r));
    let arn = r.arn.clone().unwrap_or_else(|| r.id.clone());
    let region = region_of(r, &arn);
    let account = arn_account(&arn);
    let sns = Sns::new(&run.config(region.as_deref()).await?);
    let what = format!("topic {arn}");
    if !sns.topic_exists(&arn).await? {
        return Ok(ledger::confirm_absent(run, &what, account, region.as_deref(), true).await);
    }
    if !sns.topic_is_ours(&arn).await? {
        return Ok(Verdict::Skipped(ledger::NOT_TAGGED.into()));
    }
    if run.dry_run() {
        return Ok(Verdict::WouldDelete(
            "the topic and with it its subscriptions".into(),
        ));
    }
    let removal = sns.delete_topic(&arn).await?;
    Ok(ledger::removed(run, removal, &what, account, region.as_deref()).await)
}

/// teardown's `sns-subscription` entry. A subscription still pending confirmation cannot be
/// deleted: it goes with its topic when the ledger deletes that, else SNS expires it.
pub async fn take_down_subscription(run: &mut impl Run, r: &Resource) -> Result<Verdict> {
    let details: SubscriptionDetails = crate::verdict!(ledger::details(r));
    let topic_arn = crate::verdict!(ledger::required(&details.topic_arn, "topicArn"));
    let arn = r.arn.clone().unwrap_or_else(|| r.id.clone());
    let region = region_of(r, topic_arn);
    let account = arn_account(topic_arn);
    let sns = Sns::new(&run.config(region.as_deref()).await?);
    let what = format!("subscription {arn}");
    let Some(attributes) = sns.subscription_attributes(&arn).await? else {
        return Ok(ledger::confirm_absent(run, &what, account, region.as_deref(), true).await);
    };
    let attribute = |key: &str| attributes.get(key).map(String::as_str).unwrap_or_default();
    if attribute("TopicArn") != topic_arn
        || details
            .endpoint
            .as_deref()
            .is_some_and(|e| attribute("Endpoint") != e)
    {
        return Ok(Verdict::Skipped(format!(
            "it is now {} -> {}, not what the ledger recorded",
            attribute("TopicArn"),
            attribute("Endpoint")
        )));
    }
    if attribute("PendingConfirmation") == "true" {
        return Ok(if run.seen().ledger_topics.contains(topic_arn) {
            Verdict::Absent(format!(
                "pending confirmation: it goes with topic {topic_arn}, which this ledger deletes"
            ))
        } else {
            Verdict::Skipped(
                "pending confirmation: SNS cannot delete it and expires it within 48 h".into(),
            )
        });
    }
    if run.dry_run() {
        return Ok(Verdict::WouldDelete(format!(
            "unsubscribe {}",
            attribute("Endpoint")
        )));
    }
    let removal = sns.unsubscribe(&arn).await?;
    Ok(ledger::removed(run, removal, &what, account, region.as_deref()).await)
}

/// teardown's `sns-topic-policy-statement` entry: only our statement leaves the policy.
pub async fn take_down_statement(run: &mut impl Run, r: &Resource) -> Result<Verdict> {
    let details: StatementDetails = crate::verdict!(ledger::details(r));
    let topic_arn = crate::verdict!(ledger::required(&details.topic_arn, "topicArn"));
    let sid = r.id.as_str();
    let region = region_of(r, topic_arn);
    let account = arn_account(topic_arn);
    let sns = Sns::new(&run.config(region.as_deref()).await?);
    let what = format!("statement {sid} of topic {topic_arn}");
    let present = sns.topic_exists(topic_arn).await?
        && sns.topic_policy(topic_arn).await?["Statement"]
            .as_array()
            .is_some_and(|list| list.iter().any(|s| s["Sid"] == sid));
    if !present {
        return Ok(ledger::confirm_absent(run, &what, account, region.as_deref(), true).await);
    }
    if run.dry_run() {
        return Ok(Verdict::WouldDelete(
            "only our statement; the topic's others stay".into(),
        ));
    }
    let removal = sns.remove_policy_statement(topic_arn, sid).await?;
    Ok(ledger::removed(run, removal, &what, account, region.as_deref()).await)
}

// ---- What these calls need (preflight) --------------------------------------------------------

/// The IAM action of every SNS call this module makes (SDK method → action); a unit test
/// finds every SDK call of this file here.
pub const CALLS: &[(&str, &str)] = &[
    ("create_topic", "sns:CreateTopic"),
    ("delete_topic", "sns:DeleteTopic"),
    (
        "get_subscription_attributes",
        "sns:GetSubscriptionAttributes",
    ),
    ("get_topic_attributes", "sns:GetTopicAttributes"),
    (
        "list_subscriptions_by_topic",
        "sns:ListSubscriptionsByTopic",
    ),
    ("list_tags_for_resource", "sns:ListTagsForResource"),
    ("list_topics", "sns:ListTopics"),
    ("publish", "sns:Publish"),
    ("set_topic_attributes", "sns:SetTopicAttributes"),
    ("subscribe", "sns:Subscribe"),
    ("unsubscribe", "sns:Unsubscribe"),
];

/// A topic's ARN from its name.
pub fn topic_arn_in(scope: &Scope, name: &str) -> String {
    scope.arn("sns", name)
}

/// What [`Sns::ensure_topic`] (or a topic given by ARN), the publish statement merged into
/// its policy and, with `emails`, the subscriptions need.
pub fn needs_for_topic(
    scope: &Scope,
    topic_arn: &str,
    by_name: bool,
    emails: bool,
    step: &str,
) -> Vec<Need> {
    let mut needs = Vec::new();
    if by_name {
        needs.push(Need::new(
            "sns:ListTopics",
            "*",
            format!("{step}: find the topic"),
        ));
        needs.push(Need::new(
            "sns:CreateTopic",
            topic_arn,
            format!("{step}: create the topic"),
        ));
        needs.push(Need::new(
            "sns:TagResource",
            topic_arn,
            format!("{step}: tag the topic managed-by=ampkit"),
        ));
    }
    needs.push(Need::new(
        "sns:GetTopicAttributes",
        topic_arn,
        format!("{step}: read the topic's policy"),
    ));
    needs.push(Need::new(
        "sns:SetTopicAttributes",
        topic_arn,
        format!("{step}: merge the publish statement into the topic's policy"),
    ));
    if emails {
        needs.push(Need::new(
            "sns:ListSubscriptionsByTopic",
            topic_arn,
            format!("{step}: find the subscriptions"),
        ));
        needs.push(Need::new(
            "sns:Subscribe",
            topic_arn,
            format!("{step}: subscribe the addresses"),
        ));
        needs.push(Need::new(
            "sns:GetSubscriptionAttributes",
            topic_arn,
            format!("{step}: read the subscriptions"),
        ));
    }
    let _ = scope;
    needs
}

/// What [`Sns::publish`] needs.
pub fn needs_to_publish(topic_arn: &str, step: &str) -> Vec<Need> {
    vec![Need::new(
        "sns:Publish",
        topic_arn,
        format!("{step}: publish to the topic"),
    )]
}

/// What teardown needs for an SNS entry (`take_down_*` below): all on the topic.
pub fn needs_to_take_down(scope: &Scope, r: &Resource) -> Vec<Need> {
    let step = format!("teardown: delete {} {}", r.kind.as_str(), r.id);
    let any = topic_arn_in(scope, "*");
    let arn = r.arn.clone().unwrap_or_else(|| r.id.clone());
    // A subscription's ARN is its topic's with `:ID` appended.
    let topic = |arn: &str| {
        if TopicArn::parse(arn).is_ok() {
            arn.to_owned()
        } else {
            arn.rsplit_once(':')
                .map_or(any.clone(), |(t, _)| t.to_owned())
        }
    };
    let on = |actions: &[&str], arn: &str| -> Vec<Need> {
        actions.iter().map(|a| Need::new(a, arn, &step)).collect()
    };
    match &r.kind {
        crate::doc::ResourceKind::SnsTopic => on(
            &[
                "sns:GetTopicAttributes",
                "sns:ListTagsForResource",
                "sns:DeleteTopic",
            ],
            &topic(&arn),
        ),
        crate::doc::ResourceKind::SnsSubscription => on(
            &["sns:GetSubscriptionAttributes", "sns:Unsubscribe"],
            &topic(&arn),
        ),
        crate::doc::ResourceKind::SnsTopicPolicyStatement => on(
            &["sns:GetTopicAttributes", "sns:SetTopicAttributes"],
            &topic(&arn),
        ),
        _ => Vec::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_sns_call_has_its_action_declared() {
        let scope = Scope::new("eu-west-1", "1");
        let topic = topic_arn_in(&scope, "grafana-x");
        let mut declared = needs_for_topic(&scope, &topic, true, true, "t");
        declared.extend(needs_to_publish(&topic, "t"));
        for kind in [
            crate::doc::ResourceKind::SnsTopic,
            crate::doc::ResourceKind::SnsSubscription,
            crate::doc::ResourceKind::SnsTopicPolicyStatement,
        ] {
            declared.extend(needs_to_take_down(
                &scope,
                &Resource::new(kind, &topic, "t"),
            ));
        }
        crate::preflight::assert_calls_declared(include_str!("sns.rs"), CALLS, &declared);
    }

    #[test]
    fn topic_arns_parse_and_refuse_what_is_not_one() {
        let arn = TopicArn::parse("arn:aws:sns:eu-west-1:123456789012:grafana-x").unwrap();
        assert_eq!(
            (arn.region.as_str(), arn.account.as_str(), arn.name.as_str()),
            ("eu-west-1", "123456789012", "grafana-x")
        );
        for bad in [
            "grafana-x",
            "arn:aws:sqs:eu-west-1:123456789012:q",
            "arn:aws:sns:eu-west-1:1234:t",
            "arn:aws:sns:eu-west-1:123456789012:t.fifo",
            "arn:aws:sns::123456789012:t",
        ] {
            assert!(TopicArn::parse(bad).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn emails_are_checked_for_shape() {
        assert!(valid_email("ops@example.com"));
        assert!(valid_email("a.b+alerts@sub.example.org"));
        for bad in [
            "ops",
            "ops@",
            "@example.com",
            "ops@example",
            "o ps@x.com",
            "a@b@c.com",
            "ops@.com",
        ] {
            assert!(!valid_email(bad), "accepted {bad}");
        }
    }

    #[test]
    fn subjects_are_short_printable_ascii() {
        let long = format!("[FIRING] Ünïcødé\n{}", "x".repeat(200));
        let s = subject(&long);
        assert_eq!(s.len(), SUBJECT_MAX);
        assert!(s.bytes().all(|b| (b' '..=b'~').contains(&b)), "{s}");
        assert!(s.starts_with("[FIRING] ncd x"), "{s}");
        assert_eq!(subject("\u{1F525}"), "ampkit notification");
    }

    #[test]
    fn a_statement_is_merged_into_the_policy_never_replacing_it() {
        let others = json!({"Version": "2012-10-17", "Id": "__default_policy_ID", "Statement": [
            {"Sid": "__default_statement_ID", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "SNS:Publish"}
        ]});
        let ours = service_publish_statement(
            "AmpkitAps",
            "aps.amazonaws.com",
            "arn:aws:sns:eu-west-1:123456789012:t",
            "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1",
            "123456789012",
        );
        let merged = merge_statement(&others, &ours).unwrap();
        let list = merged["Statement"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0], others["Statement"][0]);
        assert_eq!(list[1], ours);
        assert_eq!(merged["Id"], "__default_policy_ID");
        // Again: nothing to do.
        assert!(merge_statement(&merged, &ours).is_none());
        // A changed statement of ours replaces the old one, in place.
        let mut changed = ours.clone();
        changed["Condition"]["StringEquals"]["AWS:SourceAccount"] = json!("210987654321");
        let again = merge_statement(&merged, &changed).unwrap();
        assert_eq!(again["Statement"].as_array().unwrap().len(), 2);
        assert_eq!(again["Statement"][1], changed);
        // A policy with one statement as an object keeps it.
        let single = json!({"Statement": {"Sid": "x"}});
        let merged = merge_statement(&single, &ours).unwrap();
        assert_eq!(merged["Statement"][0]["Sid"], "x");
        assert_eq!(merged["Version"], "2012-10-17");
    }
}
