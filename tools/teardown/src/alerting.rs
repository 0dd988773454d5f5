//! What sns-alert ledgers: the SNS topic, its subscriptions and our statement in its policy,
//! and the workspace's rule groups namespace and alert manager definition.
//!
//! The plan reads (topic tags, subscription attributes, the policy, the namespace's tags, the
//! definition's data); the deletes are lib's (`ampkit::sns`, `ampkit::amp::rules`), the same
//! code sns-alert's module owns. A topic ampkit merely found is never in the ledger; only our
//! statement and subscriptions on it are, so it keeps everything else.

use serde_json::Value;

use ampkit::amp::rules::Rules;
use ampkit::doc::{Resource, tagged_ours};
use ampkit::error::{Error, Result};
use ampkit::poll::{self, Attempt, Pace};
use ampkit::sns::{Removal, Sns};
use ampkit::sts::{arn_account, arn_region};

use crate::ownership::{NOT_TAGGED, detail};
use crate::{Context, Verdict};

fn region_of(r: &Resource, arn: Option<&str>) -> Option<String> {
    r.region
        .clone()
        .or_else(|| arn.and_then(arn_region).map(str::to_owned))
}

async fn sns(ctx: &mut Context, region: Option<&str>) -> Result<Sns> {
    Ok(Sns::new(&ctx.config(region).await?))
}

/// A lib removal as a verdict; `Absent` is confirmed like every other "not found".
async fn removed(
    ctx: &mut Context,
    removal: Removal,
    what: &str,
    account: Option<&str>,
    region: Option<&str>,
) -> Verdict {
    match removal {
        Removal::Deleted => Verdict::Deleted,
        Removal::Absent => ctx.confirm_absent(what, account, region, true).await,
        Removal::Skipped(why) => Verdict::Skipped(why),
    }
}

pub async fn topic(ctx: &mut Context, r: &Resource) -> Result<Verdict> {
    let arn = r.arn.clone().unwrap_or_else(|| r.id.clone());
    let region = region_of(r, Some(&arn));
    let account = arn_account(&arn).map(str::to_owned);
    let sns = sns(ctx, region.as_deref()).await?;
    let what = format!("topic {arn}");
    if !sns.topic_exists(&arn).await? {
        return Ok(ctx
            .confirm_absent(&what, account.as_deref(), region.as_deref(), true)
            .await);
    }
    if !sns.topic_is_ours(&arn).await? {
        return Ok(Verdict::Skipped(NOT_TAGGED.into()));
    }
    if ctx.dry_run {
        return Ok(Verdict::WouldDelete(
            "the topic and with it its subscriptions".into(),
        ));
    }
    let removal = sns.delete_topic(&arn).await?;
    Ok(removed(ctx, removal, &what, account.as_deref(), region.as_deref()).await)
}

pub async fn subscription(ctx: &mut Context, r: &Resource) -> Result<Verdict> {
    let topic_arn = match detail(r, "topicArn") {
        Ok(t) => t.to_owned(),
        Err(v) => return Ok(v),
    };
    let arn = r.arn.clone().unwrap_or_else(|| r.id.clone());
    let region = region_of(r, Some(&topic_arn));
    let account = arn_account(&topic_arn).map(str::to_owned);
    let sns = sns(ctx, region.as_deref()).await?;
    let what = format!("subscription {arn}");
    let Some(attributes) = sns.subscription_attributes(&arn).await? else {
        return Ok(ctx
            .confirm_absent(&what, account.as_deref(), region.as_deref(), true)
            .await);
    };
    // Untaggable: ours when it is still on the topic and to the endpoint the ledger recorded.
    let attribute = |key: &str| attributes.get(key).map(String::as_str).unwrap_or_default();
    let recorded_endpoint = r.details.get("endpoint").and_then(Value::as_str);
    if attribute("TopicArn") != topic_arn
        || recorded_endpoint.is_some_and(|e| attribute("Endpoint") != e)
    {
        return Ok(Verdict::Skipped(format!(
            "it is now {} -> {}, not what the ledger recorded",
            attribute("TopicArn"),
            attribute("Endpoint")
        )));
    }
    if attribute("PendingConfirmation") == "true" {
        // SNS cannot delete a pending subscription; deleting its topic removes it.
        return Ok(if ctx.ledger_topics.contains(&topic_arn) {
            Verdict::Absent(format!(
                "pending confirmation: it goes with topic {topic_arn}, which this ledger deletes"
            ))
        } else {
            Verdict::Skipped(
                "pending confirmation: SNS cannot delete it and expires it within 48 h".into(),
            )
        });
    }
    if ctx.dry_run {
        return Ok(Verdict::WouldDelete(format!(
            "unsubscribe {}",
            attribute("Endpoint")
        )));
    }
    let removal = sns.unsubscribe(&arn).await?;
    Ok(removed(ctx, removal, &what, account.as_deref(), region.as_deref()).await)
}

pub async fn statement(ctx: &mut Context, r: &Resource) -> Result<Verdict> {
    let topic_arn = match detail(r, "topicArn") {
        Ok(t) => t.to_owned(),
        Err(v) => return Ok(v),
    };
    let sid = r.id.as_str();
    let region = region_of(r, Some(&topic_arn));
    let account = arn_account(&topic_arn).map(str::to_owned);
    let sns = sns(ctx, region.as_deref()).await?;
    let what = format!("statement {sid} of topic {topic_arn}");
    let present = sns.topic_exists(&topic_arn).await?
        && sns.topic_policy(&topic_arn).await?["Statement"]
            .as_array()
            .is_some_and(|list| list.iter().any(|s| s["Sid"] == sid));
    if !present {
        return Ok(ctx
            .confirm_absent(&what, account.as_deref(), region.as_deref(), true)
            .await);
    }
    if ctx.dry_run {
        return Ok(Verdict::WouldDelete(
            "only our statement; the topic's others stay".into(),
        ));
    }
    let removal = sns.remove_policy_statement(&topic_arn, sid).await?;
    Ok(removed(ctx, removal, &what, account.as_deref(), region.as_deref()).await)
}

pub async fn namespace(ctx: &mut Context, r: &Resource) -> Result<Verdict> {
    let workspace = match detail(r, "workspaceId") {
        Ok(w) => w.to_owned(),
        Err(v) => return Ok(v),
    };
    let region = region_of(r, r.arn.as_deref());
    let account = r.arn.as_deref().and_then(arn_account).map(str::to_owned);
    let rules = Rules::new(&ctx.config(region.as_deref()).await?);
    let name = r.id.as_str();
    let what = format!("rule groups namespace {name} of workspace {workspace}");
    let Some(found) = rules.find_namespace(&workspace, name).await? else {
        return Ok(ctx
            .confirm_absent(&what, account.as_deref(), region.as_deref(), true)
            .await);
    };
    let tags = found.tags().cloned().unwrap_or_default();
    if !tagged_ours(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        return Ok(Verdict::Skipped(NOT_TAGGED.into()));
    }
    if ctx.dry_run {
        return Ok(Verdict::WouldDelete(
            "deleted, then waited for until gone".into(),
        ));
    }
    let status = settled(ctx, &what, || async {
        Ok(rules
            .find_namespace(&workspace, name)
            .await
            .ok()
            .flatten()
            .and_then(|ns| ns.status().map(|s| s.status_code().as_str().to_owned())))
    })
    .await;
    if let Some(verdict) = unsettled(status, &what, ctx.timeout) {
        return Ok(verdict);
    }
    let removal = rules
        .delete_namespace(&workspace, name, ctx.timeout, &ctx.progress)
        .await?;
    Ok(removed(ctx, removal, &what, account.as_deref(), region.as_deref()).await)
}

pub async fn definition(ctx: &mut Context, r: &Resource) -> Result<Verdict> {
    let workspace = match detail(r, "workspaceId") {
        Ok(w) => w.to_owned(),
        Err(v) => return Ok(v),
    };
    let workspace_arn = ctx.workspace_arns.get(&workspace).cloned();
    let region = region_of(r, workspace_arn.as_deref());
    let account = workspace_arn
        .as_deref()
        .and_then(arn_account)
        .map(str::to_owned);
    let rules = Rules::new(&ctx.config(region.as_deref()).await?);
    let what = format!("the alert manager definition of workspace {workspace}");
    let Some(found) = rules.find_definition(&workspace).await? else {
        return Ok(ctx
            .confirm_absent(&what, account.as_deref(), region.as_deref(), true)
            .await);
    };
    if r.details.get("merged").and_then(Value::as_bool) == Some(true) {
        return take_merged_out(ctx, r, &rules, &workspace, &found).await;
    }
    // Untaggable, one per workspace: ours while it still routes to ampkit's receiver.
    if !String::from_utf8_lossy(found.data().as_ref()).contains("ampkit") {
        return Ok(Verdict::Skipped(
            "it no longer names ampkit's receiver: someone replaced it".into(),
        ));
    }
    if ctx.dry_run {
        return Ok(Verdict::WouldDelete(
            "deleted, then waited for until gone".into(),
        ));
    }
    let status = settled(ctx, &what, || async {
        Ok(rules
            .find_definition(&workspace)
            .await
            .ok()
            .flatten()
            .and_then(|d| d.status().map(|s| s.status_code().as_str().to_owned())))
    })
    .await;
    if let Some(verdict) = unsettled(status, &what, ctx.timeout) {
        return Ok(verdict);
    }
    let removal = rules
        .delete_alert_manager_definition(&workspace, ctx.timeout, &ctx.progress)
        .await?;
    Ok(removed(ctx, removal, &what, account.as_deref(), region.as_deref()).await)
}

/// A definition that was someone else's when sns-alert merged into it: it stays, and only
/// what the ledger says we put in (our receiver, the routes to it, our templates) is taken
/// back out and the rest put back as it was.
async fn take_merged_out(
    ctx: &mut Context,
    r: &Resource,
    rules: &Rules,
    workspace: &str,
    found: &aws_sdk_amp::types::AlertManagerDefinitionDescription,
) -> Result<Verdict> {
    let receiver = match detail(r, "receiver") {
        Ok(receiver) => receiver.to_owned(),
        Err(v) => return Ok(v),
    };
    let templates: Vec<String> = r
        .details
        .get("templates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    let current = String::from_utf8_lossy(found.data().as_ref()).into_owned();
    let remaining = match ampkit::amp::alerting::remove_merged(&current, &receiver, &templates) {
        Ok(Some(remaining)) => remaining,
        Ok(None) => {
            return Ok(Verdict::Absent(format!(
                "the definition of workspace {workspace} no longer holds our receiver `{receiver}`"
            )));
        }
        Err(e) => return Ok(Verdict::Skipped(format!("not taken out of it: {e}"))),
    };
    if ctx.dry_run {
        return Ok(Verdict::WouldDelete(format!(
            "our receiver `{receiver}`, its routes and templates taken out; the rest of the definition kept"
        )));
    }
    rules
        .ensure_alert_manager_definition(workspace, |_| Ok(remaining.clone()))
        .await?;
    rules
        .wait_definition_active(workspace, ctx.timeout, &ctx.progress)
        .await?;
    Ok(Verdict::Deleted)
}

/// sns-alert's Grafana side: the alert rule, our route in the notification policy tree, and
/// the contact point. None is taggable: each is ours by what the ledger recorded (the rule's
/// folder and title, the route's receiver and matchers, the contact point's name), and the
/// contact point goes only when no route still sends to it (Grafana answers 500 otherwise).
pub async fn grafana(
    ctx: &mut Context,
    r: &Resource,
    grafana: &ampkit::grafana::Grafana,
    url: &str,
) -> Result<Verdict> {
    use ampkit::doc::ResourceKind;
    use ampkit::grafana::alerting::RouteSpec;
    let absent = || Verdict::Absent(format!("not in Grafana {url}"));
    let uid = r.id.as_str();
    let removal = |removal: Removal| match removal {
        Removal::Deleted => Verdict::Deleted,
        Removal::Absent => absent(),
        Removal::Skipped(why) => Verdict::Skipped(why),
    };
    match r.kind {
        ResourceKind::GrafanaAlertRule => {
            let Some(rule) = grafana.alert_rule(uid).await? else {
                return Ok(absent());
            };
            for (key, field) in [("folderUid", "folderUID"), ("title", "title")] {
                if let Some(recorded) = r.details.get(key).and_then(Value::as_str)
                    && rule[field] != recorded
                {
                    return Ok(Verdict::Skipped(format!(
                        "its {field} is now {}, not the recorded `{recorded}`",
                        rule[field]
                    )));
                }
            }
            if ctx.dry_run {
                return Ok(Verdict::WouldDelete("the alert rule".into()));
            }
            Ok(removal(grafana.delete_alert_rule(uid).await?))
        }
        ResourceKind::GrafanaNotificationRoute => {
            // Rebuilt by the lib from what the ledger recorded; anything else is kept.
            let Some(spec) = RouteSpec::from_ledger(&r.details) else {
                return Ok(Verdict::Failed(
                    "the entry's `details.receiver` / `details.objectMatchers` are missing or \
                     malformed: kept, never guessed at"
                        .into(),
                ));
            };
            let receiver = spec.receiver.clone();
            let tree = grafana.policy_tree().await?;
            let present = tree["routes"].as_array().is_some_and(|routes| {
                routes.iter().any(|route| {
                    route["receiver"] == receiver.as_str()
                        && Some(&route["object_matchers"]) == r.details.get("objectMatchers")
                })
            });
            if !present {
                return Ok(absent());
            }
            ctx.gone_grafana.insert(format!("route:{receiver}"));
            if ctx.dry_run {
                return Ok(Verdict::WouldDelete(
                    "only our route; the tree's others stay".into(),
                ));
            }
            Ok(removal(grafana.remove_route(&spec).await?))
        }
        _ => {
            let Some(found) = grafana.contact_point(uid).await? else {
                return Ok(absent());
            };
            let name = found["name"].as_str().unwrap_or_default().to_owned();
            if let Some(recorded) = r.details.get("name").and_then(Value::as_str)
                && recorded != name
            {
                return Ok(Verdict::Skipped(format!(
                    "it is now named `{name}`, not the recorded `{recorded}`"
                )));
            }
            // Routes sending to it, other than ours that this run removes.
            let tree = grafana.policy_tree().await?;
            let mut users: usize = 0;
            let mut stack = vec![&tree];
            while let Some(node) = stack.pop() {
                if node["receiver"] == name.as_str() {
                    users += 1;
                }
                stack.extend(node["routes"].as_array().into_iter().flatten());
            }
            if ctx.gone_grafana.contains(&format!("route:{name}")) && ctx.dry_run {
                users = users.saturating_sub(1);
            }
            if users > 0 {
                return Ok(Verdict::Skipped(format!(
                    "{users} notification route(s) still send to `{name}`; Grafana refuses to delete it"
                )));
            }
            if ctx.dry_run {
                return Ok(Verdict::WouldDelete(format!("contact point `{name}`")));
            }
            Ok(removal(grafana.delete_contact_point(uid).await?))
        }
    }
}

/// Statuses in which AMP refuses a delete (409) of a namespace or definition, or in which one
/// is on its way out already (an earlier, interrupted run).
const TRANSITIONAL: [&str; 3] = ["CREATING", "UPDATING", "DELETING"];

/// Wait, bounded by `--timeout` and with progress, while the object is in a transitional
/// status; the last status seen (`None` when it could not be read, e.g. gone).
async fn settled<F, Fut>(ctx: &Context, what: &str, status: F) -> Option<String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>>>,
{
    let pace = Pace::doubling(
        std::time::Duration::from_millis(250),
        std::time::Duration::from_secs(5),
        ctx.timeout,
    );
    let waited = poll::until(
        &format!("{what} to settle"),
        pace,
        &ctx.progress,
        || async {
            Ok(match status().await.ok().flatten() {
                Some(s) if TRANSITIONAL.contains(&s.as_str()) => Attempt::Pending(s),
                other => Attempt::Done(other),
            })
        },
        // The time-out is not an error here: the caller judges the last status seen.
        |t| Error::remote(t.last),
    )
    .await;
    match waited {
        Ok((now, _)) => now,
        Err(still) => Some(still.message),
    }
}

/// The verdict when waiting did not help: still transitional after the timeout. A DELETING
/// object that is gone by now falls through to the delete, whose "not found" is absent.
fn unsettled(status: Option<String>, what: &str, timeout: std::time::Duration) -> Option<Verdict> {
    status
        .filter(|s| TRANSITIONAL.contains(&s.as_str()))
        .map(|s| {
            Verdict::Failed(format!(
                "{what} is still {s} after {}s: kept, run teardown again later",
                timeout.as_secs()
            ))
        })
}
