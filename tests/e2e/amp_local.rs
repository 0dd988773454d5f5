//! amp-local against real programs: the AWS SDK for Rust drives its control plane (waiters
//! included), a real Prometheus agent remote-writes through it with Go's SigV4 signer, refused
//! requests are checked to have written nothing (by asking the Prometheus behind it directly),
//! a rule group put through the API fires and its alert reaches the Alertmanager and moto's SNS,
//! bad bodies leave the previous state intact, and a restart loses nothing.

use std::process::{Command, Stdio};
use std::time::Duration;

use ampkit_e2e::amp_local::{
    Agent, Process, REMOTE_WRITE_HEADERS, Signer, free_port, http, now_ms, prometheus_query,
    remote_write_body, series, signed_read,
};
use ampkit_e2e::{Stack, amp_sdk, eventually, stack, unique_name, urlencode};
use aws_sdk_amp::client::Waiters;
use aws_sdk_amp::primitives::Blob;
use serde_json::Value;

fn amp_url(stack: &Stack) -> String {
    stack.amp_url.clone()
}

async fn sdk() -> aws_sdk_amp::Client {
    amp_sdk(&amp_url(&stack())).await
}

/// A test's own workspace (alias from `prefix`), waited ACTIVE, with the stack and the SDK
/// client that made it.
async fn fresh_workspace(prefix: &str) -> (Stack, aws_sdk_amp::Client, String) {
    let stack = stack();
    let client = sdk().await;
    let id = active_workspace(&client, &unique_name(prefix)).await;
    (stack, client, id)
}

/// The data of a rule groups namespace, as DescribeRuleGroupsNamespace returns it.
async fn namespace_data(client: &aws_sdk_amp::Client, id: &str, name: &str) -> Option<Vec<u8>> {
    client
        .describe_rule_groups_namespace()
        .workspace_id(id)
        .name(name)
        .send()
        .await
        .expect("describe")
        .rule_groups_namespace()
        .map(|n| n.data().as_ref().to_vec())
}

/// A test's workspace deleted at its end.
/// Until the namespace is ACTIVE: AMP answers 409 to a put or delete while it is CREATING or
/// UPDATING, and so does amp-local.
async fn settled_namespace(client: &aws_sdk_amp::Client, id: &str, name: &str) {
    for _ in 0..300 {
        let status = client
            .describe_rule_groups_namespace()
            .workspace_id(id)
            .name(name)
            .send()
            .await
            .ok()
            .and_then(|d| d.rule_groups_namespace)
            .and_then(|n| n.status)
            .map(|s| s.status_code().as_str().to_owned());
        if status.as_deref() == Some("ACTIVE") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("namespace {name} of {id} did not become ACTIVE within 30 s");
}

/// Until the alert manager definition is ACTIVE (as [`settled_namespace`]).
async fn settled_definition(client: &aws_sdk_amp::Client, id: &str) {
    for _ in 0..300 {
        let status = client
            .describe_alert_manager_definition()
            .workspace_id(id)
            .send()
            .await
            .ok()
            .and_then(|d| d.alert_manager_definition)
            .and_then(|d| d.status)
            .map(|s| s.status_code().as_str().to_owned());
        if status.as_deref() == Some("ACTIVE") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the alert manager definition of {id} did not become ACTIVE within 30 s");
}

async fn delete_workspace(client: &aws_sdk_amp::Client, id: &str) {
    client
        .delete_workspace()
        .workspace_id(id)
        .send()
        .await
        .expect("delete");
}

/// A new workspace, waited ACTIVE with the SDK's waiter.
async fn active_workspace(client: &aws_sdk_amp::Client, alias: &str) -> String {
    let created = client
        .create_workspace()
        .alias(alias)
        .send()
        .await
        .expect("CreateWorkspace");
    let id = created.workspace_id().to_owned();
    client
        .wait_until_workspace_active()
        .workspace_id(&id)
        .wait(Duration::from_secs(60))
        .await
        .expect("the workspace turns ACTIVE");
    id
}

/// A read of a workspace's Prometheus API (`op` after `api/v1/`) through the stack's
/// amp-local, SigV4-signed, its parameters in the query string of a GET.
async fn amp_read(stack: &Stack, ws: &str, op: &str, params: &[(&str, &str)]) -> (u16, Value) {
    signed_read(stack, &amp_url(stack), ws, op, params).await
}

/// Instant query through amp-local, SigV4-signed, in the POST form.
async fn amp_query(stack: &Stack, ws: &str, query: &str) -> (u16, Value) {
    let url = format!("{}/workspaces/{ws}/api/v1/query", amp_url(stack));
    let body = format!("query={}", urlencode(query));
    let response = Signer::for_stack(stack)
        .request(
            &http(),
            "POST",
            &url,
            &[("content-type", "application/x-www-form-urlencoded")],
            body.into_bytes(),
        )
        .send()
        .await
        .expect("amp-local answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A process killed when the test ends, however it ends.

#[tokio::test]
async fn the_sdk_drives_the_whole_control_plane_with_its_waiters() {
    let client = sdk().await;
    let alias = unique_name("amp-local-sdk");

    let created = client
        .create_workspace()
        .alias(&alias)
        .tags("team", "obs")
        .send()
        .await
        .expect("CreateWorkspace");
    let id = created.workspace_id().to_owned();
    assert_eq!(
        created.status().map(|s| s.status_code().as_str()),
        Some("CREATING"),
        "a new workspace starts CREATING"
    );
    client
        .wait_until_workspace_active()
        .workspace_id(&id)
        .wait(Duration::from_secs(60))
        .await
        .expect("the waiter sees ACTIVE");

    let ws = client
        .describe_workspace()
        .workspace_id(&id)
        .send()
        .await
        .expect("DescribeWorkspace")
        .workspace
        .expect("a workspace");
    assert_eq!(ws.alias(), Some(alias.as_str()));
    assert_eq!(
        ws.status().map(|s| s.status_code().as_str()),
        Some("ACTIVE")
    );
    let endpoint = ws
        .prometheus_endpoint()
        .expect("prometheusEndpoint")
        .to_owned();
    assert_eq!(endpoint, format!("{}/workspaces/{id}/", amp_url(&stack())));
    assert_eq!(
        ws.tags().and_then(|t| t.get("team")).map(String::as_str),
        Some("obs")
    );
    let arn = ws.arn().to_owned();

    // ListWorkspaces filters by alias prefix, paginated.
    let listed: Vec<String> = client
        .list_workspaces()
        .alias(&alias)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("ListWorkspaces")
        .into_iter()
        .map(|w| w.workspace_id().to_owned())
        .collect();
    assert_eq!(listed, vec![id.clone()]);

    let new_alias = format!("{alias}-renamed");
    client
        .update_workspace_alias()
        .workspace_id(&id)
        .alias(&new_alias)
        .send()
        .await
        .expect("UpdateWorkspaceAlias");
    let ws = client
        .describe_workspace()
        .workspace_id(&id)
        .send()
        .await
        .expect("describe");
    assert_eq!(
        ws.workspace().and_then(|w| w.alias()),
        Some(new_alias.as_str())
    );

    // Tags.
    client
        .tag_resource()
        .resource_arn(&arn)
        .tags("env", "local")
        .send()
        .await
        .expect("TagResource");
    client
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("team")
        .send()
        .await
        .expect("UntagResource");
    let tags = client
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .expect("ListTagsForResource")
        .tags
        .unwrap_or_default();
    assert_eq!(tags.get("env").map(String::as_str), Some("local"));
    assert!(!tags.contains_key("team"), "{tags:?}");

    // Rule groups namespaces: create, conflict, describe (data round trip), put, list, delete.
    let rules = "groups:\n- name: sdk\n  rules:\n  - record: amp_local_sdk:up\n    expr: sum(up)\n";
    let ns = client
        .create_rule_groups_namespace()
        .workspace_id(&id)
        .name("sdk-rules")
        .data(Blob::new(rules))
        .send()
        .await
        .expect("CreateRuleGroupsNamespace");
    assert_eq!(ns.name(), "sdk-rules");
    let again = client
        .create_rule_groups_namespace()
        .workspace_id(&id)
        .name("sdk-rules")
        .data(Blob::new(rules))
        .send()
        .await
        .expect_err("a second namespace of that name");
    assert!(
        again
            .as_service_error()
            .is_some_and(|e| e.is_conflict_exception()),
        "{again:?}"
    );
    let described = client
        .describe_rule_groups_namespace()
        .workspace_id(&id)
        .name("sdk-rules")
        .send()
        .await
        .expect("DescribeRuleGroupsNamespace")
        .rule_groups_namespace
        .expect("a namespace");
    assert_eq!(described.data().as_ref(), rules.as_bytes());
    let rules2 = rules.replace("sum(up)", "count(up)");
    settled_namespace(&client, &id, "sdk-rules").await;
    client
        .put_rule_groups_namespace()
        .workspace_id(&id)
        .name("sdk-rules")
        .data(Blob::new(rules2.clone()))
        .send()
        .await
        .expect("PutRuleGroupsNamespace");
    assert_eq!(
        namespace_data(&client, &id, "sdk-rules").await,
        Some(rules2.into_bytes())
    );
    let names: Vec<String> = client
        .list_rule_groups_namespaces()
        .workspace_id(&id)
        .send()
        .await
        .expect("ListRuleGroupsNamespaces")
        .rule_groups_namespaces()
        .iter()
        .map(|n| n.name().to_owned())
        .collect();
    assert_eq!(names, vec!["sdk-rules".to_owned()]);
    settled_namespace(&client, &id, "sdk-rules").await;
    client
        .delete_rule_groups_namespace()
        .workspace_id(&id)
        .name("sdk-rules")
        .send()
        .await
        .expect("DeleteRuleGroupsNamespace");
    let gone = client
        .describe_rule_groups_namespace()
        .workspace_id(&id)
        .name("sdk-rules")
        .send()
        .await
        .expect_err("deleted");
    assert!(
        gone.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception())
    );

    // Alert manager definition: create, describe, put, delete.
    let def = "alertmanager_config: |\n  route:\n    receiver: sns\n  receivers:\n  - name: sns\n    sns_configs:\n    - topic_arn: arn:aws:sns:eu-west-1:123456789012:amp-local-sdk\n      sigv4:\n        region: eu-west-1\n";
    client
        .create_alert_manager_definition()
        .workspace_id(&id)
        .data(Blob::new(def))
        .send()
        .await
        .expect("CreateAlertManagerDefinition");
    let described = client
        .describe_alert_manager_definition()
        .workspace_id(&id)
        .send()
        .await
        .expect("DescribeAlertManagerDefinition");
    assert_eq!(
        described
            .alert_manager_definition()
            .map(|d| d.data().as_ref().to_vec()),
        Some(def.as_bytes().to_vec())
    );
    let def2 = def.replace("amp-local-sdk", "amp-local-sdk-2");
    settled_definition(&client, &id).await;
    client
        .put_alert_manager_definition()
        .workspace_id(&id)
        .data(Blob::new(def2))
        .send()
        .await
        .expect("PutAlertManagerDefinition");
    settled_definition(&client, &id).await;
    client
        .delete_alert_manager_definition()
        .workspace_id(&id)
        .send()
        .await
        .expect("DeleteAlertManagerDefinition");

    // Delete: DELETING, then gone (the SDK's waiter sees ResourceNotFoundException).
    client
        .delete_workspace()
        .workspace_id(&id)
        .send()
        .await
        .expect("DeleteWorkspace");
    let ws = client
        .describe_workspace()
        .workspace_id(&id)
        .send()
        .await
        .expect("describe");
    assert_eq!(
        ws.workspace()
            .and_then(|w| w.status())
            .map(|s| s.status_code().as_str()),
        Some("DELETING")
    );
    client
        .wait_until_workspace_deleted()
        .workspace_id(&id)
        .wait(Duration::from_secs(60))
        .await
        .expect("the waiter sees the workspace gone");
    let missing = client
        .describe_workspace()
        .workspace_id(&id)
        .send()
        .await
        .expect_err("gone");
    assert!(
        missing
            .as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception())
    );
}

#[tokio::test]
async fn a_prometheus_agent_remote_writes_through_amp_local_with_its_own_sigv4() {
    let (stack, client, id) = fresh_workspace("amp-local-agent").await;
    let marker = unique_name("agent");
    let agent = Agent::start(&stack, &id, ("ampkit_test", &marker), |port| {
        format!(
            "  - job_name: agent-self\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        )
    });
    let port = agent.port;

    let query = format!("up{{ampkit_test=\"{marker}\"}}");
    let direct = eventually(
        "the agent's samples in Prometheus",
        Duration::from_secs(90),
        || async {
            let r = prometheus_query(&stack, &query).await;
            (!r.is_empty()).then_some(r)
        },
    )
    .await;
    assert_eq!(direct[0]["metric"]["job"], "agent-self");

    // The same series through amp-local's query API.
    let (status, body) = amp_query(&stack, &id, &query).await;
    assert_eq!(status, 200, "{body}");
    let through = body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(through.len(), direct.len(), "{body}");

    // The agent itself counts the samples as sent (none were refused by amp-local).
    let metrics = http()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .expect("agent metrics")
        .text()
        .await
        .expect("text");
    let sent: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("prometheus_remote_storage_samples_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(sent > 0.0, "the agent reports no samples sent:\n{metrics}");

    delete_workspace(&client, &id).await;
}

#[tokio::test]
async fn refused_requests_get_403_and_write_nothing() {
    let (stack, client, id) = fresh_workspace("amp-local-403").await;
    let url = format!("{}/workspaces/{id}/api/v1/remote_write", amp_url(&stack));
    let metric = unique_name("amp_local_refused").replace('-', "_");
    let body = remote_write_body(vec![series(
        &[("__name__", &metric), ("case", "refused")],
        &[(42.0, now_ms())],
    )]);
    let good = Signer::for_stack(&stack);
    let http = http();

    let send = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.expect("amp-local answers");
        let status = response.status().as_u16();
        let kind = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.unwrap_or_default();
        (status, kind, text)
    };
    let with_headers = |mut request: reqwest::RequestBuilder, headers: &[(&str, &str)]| {
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request
    };

    // Unsigned.
    let (status, kind, text) = send(with_headers(
        http.post(&url).body(body.clone()),
        REMOTE_WRITE_HEADERS,
    ))
    .await;
    assert_eq!(
        (status, kind.as_str()),
        (403, "MissingAuthenticationTokenException"),
        "{text}"
    );
    assert!(text.contains("Missing Authentication Token"));

    // Signed, but wrongly: each refusal says what AMP says.
    for (wrong, says) in [
        (
            Signer {
                secret: "not-the-secret".into(),
                ..good.clone()
            },
            "The request signature we calculated does not match",
        ),
        (
            Signer {
                service: "execute-api".into(),
                ..good.clone()
            },
            "Credential should be scoped to correct service: 'aps'",
        ),
        (
            Signer {
                region: "us-east-1".into(),
                ..good.clone()
            },
            "scoped to a valid region",
        ),
    ] {
        let (status, _, text) =
            send(wrong.request(&http, "POST", &url, REMOTE_WRITE_HEADERS, body.clone())).await;
        assert_eq!(status, 403, "{text}");
        assert!(text.contains(says), "{says}: {text}");
    }

    // Tampered body: a harmless body was signed, the real one is sent.
    let decoy = remote_write_body(vec![]);
    let signature = good.sign("POST", &url, REMOTE_WRITE_HEADERS, &decoy);
    let mut request = with_headers(http.post(&url).body(body.clone()), REMOTE_WRITE_HEADERS);
    for (k, v) in &signature {
        request = request.header(k, v);
    }
    let (status, _, text) = send(request).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("does not match"), "{text}");

    // Tampered query: signed with one query string, sent with another.
    let signature = good.sign(
        "POST",
        &format!("{url}?tenant=a"),
        REMOTE_WRITE_HEADERS,
        &body,
    );
    let mut request = with_headers(
        http.post(format!("{url}?tenant=b")).body(body.clone()),
        REMOTE_WRITE_HEADERS,
    );
    for (k, v) in &signature {
        request = request.header(k, v);
    }
    let (status, _, text) = send(request).await;
    assert_eq!(status, 403, "{text}");

    // A tampered query on the query API, too.
    let qurl = format!("{}/workspaces/{id}/api/v1/query", amp_url(&stack));
    let signature = good.sign("GET", &format!("{qurl}?query=vector(1)"), &[], b"");
    let mut request = http.get(format!("{qurl}?query=vector(2)"));
    for (k, v) in &signature {
        request = request.header(k, v);
    }
    let (status, _, text) = send(request).await;
    assert_eq!(status, 403, "{text}");

    // Correctly signed, but a series claims a workspace: refused as the service's own label.
    let claiming = remote_write_body(vec![series(
        &[
            ("__name__", &metric),
            ("ampkit_workspace", "ws-someone-else"),
            ("case", "refused"),
        ],
        &[(43.0, now_ms())],
    )]);
    let (status, _, text) =
        send(good.request(&http, "POST", &url, REMOTE_WRITE_HEADERS, claiming)).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("ampkit_workspace"), "{text}");

    // Nothing of the refused writes reached Prometheus...
    let query = format!("{{__name__=\"{metric}\"}}");
    assert!(prometheus_query(&stack, &query).await.is_empty());

    // ...and the same body, correctly signed, does (so the checks above mean something).
    let (status, _, text) =
        send(good.request(&http, "POST", &url, REMOTE_WRITE_HEADERS, body.clone())).await;
    assert!((200..300).contains(&status), "{status} {text}");
    let result = eventually(
        "the accepted sample in Prometheus",
        Duration::from_secs(30),
        || async {
            let r = prometheus_query(&stack, &query).await;
            (!r.is_empty()).then_some(r)
        },
    )
    .await;
    assert_eq!(result[0]["value"][1], "42");

    // An unknown workspace is a 404, as AMP answers.
    let missing = format!(
        "{}/workspaces/ws-00000000-0000-0000-0000-000000000000/api/v1/remote_write",
        amp_url(&stack)
    );
    let (status, kind, _) =
        send(good.request(&http, "POST", &missing, REMOTE_WRITE_HEADERS, body)).await;
    assert_eq!((status, kind.as_str()), (404, "ResourceNotFoundException"));

    delete_workspace(&client, &id).await;
}

/// Create an SNS topic in moto with a signed Query API call; returns its ARN.
async fn moto_topic(stack: &Stack, name: &str) -> String {
    let signer = Signer {
        service: "sns".into(),
        ..Signer::for_stack(stack)
    };
    let url = format!("{}/", stack.moto_url);
    let body = format!("Action=CreateTopic&Name={name}&Version=2010-03-31");
    let text = signer
        .request(
            &http(),
            "POST",
            &url,
            &[("content-type", "application/x-www-form-urlencoded")],
            body.into_bytes(),
        )
        .send()
        .await
        .expect("moto answers")
        .text()
        .await
        .expect("text");
    let start = text
        .find("<TopicArn>")
        .expect("a TopicArn in CreateTopic's answer")
        + 10;
    let end = text[start..].find("</TopicArn>").expect("</TopicArn>") + start;
    text[start..end].to_owned()
}

#[tokio::test]
async fn a_rule_group_put_through_the_api_fires_and_its_alert_reaches_alertmanager_and_sns() {
    let (stack, client, id) = fresh_workspace("amp-local-alert").await;
    let topic_name = unique_name("amp-local-alerts");
    let topic_arn = moto_topic(&stack, &topic_name).await;
    let alert = unique_name("AmpLocalTest").replace('-', "_");

    let definition = format!(
        "alertmanager_config: |\n  route:\n    receiver: sns\n    group_wait: 1s\n    group_interval: 1s\n  receivers:\n  - name: sns\n    sns_configs:\n    - topic_arn: {topic_arn}\n      subject: amp-local test\n      sigv4:\n        region: {}\n",
        stack.region
    );
    client
        .create_alert_manager_definition()
        .workspace_id(&id)
        .data(Blob::new(definition))
        .send()
        .await
        .expect("CreateAlertManagerDefinition");
    let rules = format!(
        "groups:\n- name: amp-local-test\n  interval: 1s\n  rules:\n  - alert: {alert}\n    expr: vector(1)\n    labels:\n      severity: page\n    annotations:\n      summary: fired through amp-local\n"
    );
    client
        .create_rule_groups_namespace()
        .workspace_id(&id)
        .name("alerts")
        .data(Blob::new(rules))
        .send()
        .await
        .expect("CreateRuleGroupsNamespace");

    // The rule is loaded and firing in Prometheus...
    let firing = eventually(
        "the alert firing in Prometheus",
        Duration::from_secs(60),
        || async {
            let r = prometheus_query(
                &stack,
                &format!("ALERTS{{alertname=\"{alert}\",alertstate=\"firing\"}}"),
            )
            .await;
            (!r.is_empty()).then_some(r)
        },
    )
    .await;
    assert_eq!(firing[0]["metric"]["ampkit_workspace"], id.as_str());

    // ...and its alert reaches the Alertmanager.
    let alerts = eventually(
        "the alert in Alertmanager",
        Duration::from_secs(60),
        || async {
            let list: Value = http()
                .get(format!(
                    "{}/api/v2/alerts?filter={}",
                    stack.alertmanager_url,
                    urlencode(&format!("alertname=\"{alert}\""))
                ))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            list.as_array().filter(|a| !a.is_empty()).cloned()
        },
    )
    .await;
    assert_eq!(alerts[0]["labels"]["severity"], "page");
    assert_eq!(alerts[0]["labels"]["ampkit_workspace"], id.as_str());
    let receivers: Vec<String> = alerts[0]["receivers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(receivers, vec![format!("{id}/sns")]);

    // AMP's read APIs show the same, limited to this workspace: ListRules, ListAlerts and
    // the Alertmanager API under the workspace.
    let signer = Signer::for_stack(&stack);
    let base = format!("{}/workspaces/{id}", amp_url(&stack));
    let get = |path: String| {
        let signer = signer.clone();
        async move {
            let response = signer
                .request(&http(), "GET", &path, &[], Vec::new())
                .send()
                .await
                .expect("amp-local answers");
            assert_eq!(response.status().as_u16(), 200, "{path}");
            response.json::<Value>().await.expect("JSON")
        }
    };
    let rules = get(format!("{base}/api/v1/rules")).await;
    let groups: Vec<&str> = rules["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(groups, vec!["amp-local-test"], "{rules}");
    let prom_alerts = get(format!("{base}/api/v1/alerts")).await;
    let names: Vec<&str> = prom_alerts["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["labels"]["alertname"].as_str())
        .collect();
    assert_eq!(names, vec![alert.as_str()], "{prom_alerts}");
    let am_alerts = get(format!("{base}/alertmanager/api/v2/alerts")).await;
    let names: Vec<&str> = am_alerts
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["labels"]["alertname"].as_str())
        .collect();
    assert_eq!(names, vec![alert.as_str()], "{am_alerts}");

    // The Alertmanager published it to the topic (moto's SNS), as AMP would.
    let sent = eventually(
        "the SNS notification in moto",
        Duration::from_secs(60),
        || async {
            let data: Value = http()
                .get(format!("{}/moto-api/data.json", stack.moto_url))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let topics = data["sns"]["Topic"].as_array()?.clone();
            let topic = topics
                .into_iter()
                .find(|t| t["arn"] == topic_arn.as_str())?;
            let sent = topic["sent_notifications"].as_array()?.clone();
            (!sent.is_empty()).then_some(sent)
        },
    )
    .await;
    assert!(sent[0].to_string().contains(&alert), "{sent:?}");

    delete_workspace(&client, &id).await;
}

#[tokio::test]
async fn bad_bodies_get_400_class_errors_and_leave_the_previous_state_intact() {
    let (stack, client, id) = fresh_workspace("amp-local-bad").await;
    let good_rules =
        "groups:\n- name: ok\n  rules:\n  - record: amp_local_bad:ok\n    expr: vector(1)\n";
    client
        .create_rule_groups_namespace()
        .workspace_id(&id)
        .name("kept")
        .data(Blob::new(good_rules))
        .send()
        .await
        .expect("CreateRuleGroupsNamespace");
    settled_namespace(&client, &id, "kept").await;
    let rule_file = stack
        .stack_dir
        .join("prometheus")
        .join("rules")
        .join(format!("amp-local--{id}--kept.yml"));
    let file_before = std::fs::read_to_string(&rule_file).expect("the rule file is written");

    let put = |data: &'static str| {
        client
            .put_rule_groups_namespace()
            .workspace_id(&id)
            .name("kept")
            .data(Blob::new(data))
            .send()
    };
    for bad in [
        "groups: [\n",                                                        // not YAML
        "groups:\n- rules: []\n",                                             // no group name
        "groups:\n- name: g\n  rules:\n  - alert: A\n",                       // no expr
        "groups:\n- name: g\n  rules:\n  - record: r\n    expr: 'sum(up{'\n", // bad PromQL: Prometheus refuses
    ] {
        let err = put(bad).await.expect_err(bad);
        assert!(
            err.as_service_error()
                .is_some_and(|e| e.is_validation_exception()),
            "{bad}: {err:?}"
        );
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    }
    assert_eq!(
        namespace_data(&client, &id, "kept").await,
        Some(good_rules.as_bytes().to_vec())
    );
    assert_eq!(
        std::fs::read_to_string(&rule_file).expect("still there"),
        file_before
    );

    // Malformed JSON, and an oversized body, sent raw (the SDK would not send them).
    let signer = Signer::for_stack(&stack);
    let url = format!("{}/workspaces/{id}/rulegroupsnamespaces", amp_url(&stack));
    let response = signer
        .request(
            &http(),
            "POST",
            &url,
            &[("content-type", "application/json")],
            b"{\"name\": ".to_vec(),
        )
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok()),
        Some("ValidationException")
    );
    let huge = format!(
        "{{\"name\":\"huge\",\"data\":\"{}\"}}",
        "A".repeat(9 * 1024 * 1024)
    );
    let response = signer
        .request(
            &http(),
            "POST",
            &url,
            &[("content-type", "application/json")],
            huge.into_bytes(),
        )
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 413);
    let names: Vec<String> = client
        .list_rule_groups_namespaces()
        .workspace_id(&id)
        .send()
        .await
        .expect("list")
        .rule_groups_namespaces()
        .iter()
        .map(|n| n.name().to_owned())
        .collect();
    assert_eq!(names, vec!["kept".to_owned()]);

    // Alert manager definitions are checked the AMP way, and a refused one changes nothing.
    let def = "alertmanager_config: |\n  route:\n    receiver: sns\n  receivers:\n  - name: sns\n    sns_configs:\n    - topic_arn: arn:aws:sns:eu-west-1:123456789012:kept\n      sigv4:\n        region: eu-west-1\n";
    client
        .create_alert_manager_definition()
        .workspace_id(&id)
        .data(Blob::new(def))
        .send()
        .await
        .expect("CreateAlertManagerDefinition");
    for bad in [
        def.replace("      sigv4:\n        region: eu-west-1\n", ""),
        def.replace(
            "    - topic_arn:",
            "    - api_url: http://127.0.0.1:1/\n      topic_arn:",
        ),
        def.replace("sns_configs", "webhook_configs"),
        "route: {}\n".to_owned(),
        "alertmanager_config: |\n  route:\n    receiver: nobody\n  receivers: []\n".to_owned(),
    ] {
        let err = client
            .put_alert_manager_definition()
            .workspace_id(&id)
            .data(Blob::new(bad.clone()))
            .send()
            .await
            .expect_err(&bad);
        assert!(
            err.as_service_error()
                .is_some_and(|e| e.is_validation_exception()),
            "{bad}: {err:?}"
        );
    }
    let kept = client
        .describe_alert_manager_definition()
        .workspace_id(&id)
        .send()
        .await
        .expect("describe");
    assert_eq!(
        kept.alert_manager_definition()
            .map(|d| d.data().as_ref().to_vec()),
        Some(def.as_bytes().to_vec())
    );

    delete_workspace(&client, &id).await;
    // Deleting the workspace removes its rule files at once.
    assert!(!rule_file.exists());
}

/// An amp-local of the test's own, on its own port, data dir and rules dir, in front of the
/// stack's Prometheus.
fn start_own_amp_local(
    stack: &Stack,
    port: u16,
    data: &std::path::Path,
    rules: &std::path::Path,
) -> Process {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.with_extension("log"))
        .expect("log file");
    Process(
        Command::new(ampkit_e2e::bin("amp-local"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--prometheus-url")
            .arg(&stack.prometheus_url)
            .arg("--rules-dir")
            .arg(rules)
            .arg("--data-dir")
            .arg(data)
            .arg("--region")
            .arg(&stack.region)
            .arg("--activation-delay")
            .arg("1s")
            .env("AWS_ACCESS_KEY_ID", &stack.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &stack.secret_access_key)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("amp-local starts"),
    )
}

#[tokio::test]
async fn a_restart_loses_nothing() {
    let stack = stack();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let rules = dir.path().join("rules");
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let healthy = || async {
        let ok = http()
            .get(format!("{endpoint}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        ok.then_some(())
    };

    let first = start_own_amp_local(&stack, port, &data, &rules);
    eventually("amp-local to answer", Duration::from_secs(30), healthy).await;
    let client = amp_sdk(&endpoint).await;
    let id = active_workspace(&client, "restart").await;
    let rules_yaml =
        "groups:\n- name: r\n  rules:\n  - record: amp_local_restart:one\n    expr: vector(1)\n";
    client
        .create_rule_groups_namespace()
        .workspace_id(&id)
        .name("persisted")
        .data(Blob::new(rules_yaml))
        .send()
        .await
        .expect("CreateRuleGroupsNamespace");
    let def = "alertmanager_config: |\n  route:\n    receiver: sns\n  receivers:\n  - name: sns\n    sns_configs:\n    - topic_arn: arn:aws:sns:eu-west-1:123456789012:restart\n      sigv4:\n        region: eu-west-1\n";
    client
        .create_alert_manager_definition()
        .workspace_id(&id)
        .data(Blob::new(def))
        .send()
        .await
        .expect("CreateAlertManagerDefinition");
    let rule_file = rules.join(format!("amp-local--{id}--persisted.yml"));
    assert!(rule_file.exists());
    drop(first);

    // The rule file is lost too: amp-local writes it again from its state.
    std::fs::remove_file(&rule_file).expect("removed");
    let _second = start_own_amp_local(&stack, port, &data, &rules);
    eventually(
        "amp-local to answer again",
        Duration::from_secs(30),
        healthy,
    )
    .await;
    let ws = client
        .describe_workspace()
        .workspace_id(&id)
        .send()
        .await
        .expect("the workspace survived");
    assert_eq!(ws.workspace().and_then(|w| w.alias()), Some("restart"));
    let ns = client
        .describe_rule_groups_namespace()
        .workspace_id(&id)
        .name("persisted")
        .send()
        .await
        .expect("the namespace survived");
    assert_eq!(
        ns.rule_groups_namespace()
            .map(|n| n.data().as_ref().to_vec()),
        Some(rules_yaml.as_bytes().to_vec())
    );
    let am = client
        .describe_alert_manager_definition()
        .workspace_id(&id)
        .send()
        .await
        .expect("the definition survived");
    assert_eq!(
        am.alert_manager_definition()
            .map(|d| d.data().as_ref().to_vec()),
        Some(def.as_bytes().to_vec())
    );
    assert!(
        rule_file.exists(),
        "the rule file was written again at start"
    );
}

/// amp-local holds the local keys and fronts an unauthenticated Prometheus: it refuses to
/// listen beyond loopback, with a usage error naming the flag, and serves nothing.
#[test]
fn a_non_loopback_listen_address_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = ampkit_e2e::tool("amp-local")
        .args([
            "--listen",
            "0.0.0.0:0",
            "--prometheus-url",
            "http://127.0.0.1:1",
        ])
        .args(["--region", "eu-west-1", "--rules-dir"])
        .args([
            dir.path().join("rules"),
            "--data-dir".into(),
            dir.path().join("data"),
        ])
        .run();
    run.expect_usage_error("--listen 0.0.0.0:0");
}

/// An agent scraping the mesh's three Envoy admins (and, with `self_job`, itself under that
/// job name), everything labelled `iso_run=<run>`, into workspace `ws`.
fn isolation_agent(stack: &Stack, ws: &str, run: &str, self_job: Option<&str>) -> Agent {
    let envoys: Vec<String> = stack
        .envoy_admin_urls
        .iter()
        .map(|u| format!("'{}'", u.trim_start_matches("http://")))
        .collect();
    Agent::start(stack, ws, ("iso_run", run), |port| {
        let own = self_job
            .map(|job| format!("  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"))
            .unwrap_or_default();
        format!(
            "  - job_name: envoy\n    metrics_path: /stats/prometheus\n    static_configs:\n      - targets: [{}]\n{own}",
            envoys.join(", ")
        )
    })
}

/// The values of one label over the series of an answer (`data.result[].metric` or `data[]`).
fn label_values_in(body: &Value, label: &str) -> Vec<String> {
    let items = body["data"]["result"]
        .as_array()
        .or_else(|| body["data"].as_array())
        .cloned()
        .unwrap_or_default();
    let mut values: Vec<String> = items
        .iter()
        .map(|item| {
            if item.get("metric").is_some() {
                &item["metric"]
            } else {
                item
            }
        })
        .filter_map(|labels| labels[label].as_str().map(str::to_owned))
        .collect();
    values.sort();
    values.dedup();
    values
}

#[tokio::test]
async fn workspaces_are_kept_apart_on_every_read_path_and_in_rules() {
    let stack = stack();
    let client = sdk().await;
    let a = active_workspace(&client, &unique_name("amp-local-iso-a")).await;
    let b = active_workspace(&client, &unique_name("amp-local-iso-b")).await;
    let (run_a, run_b) = (unique_name("iso-a"), unique_name("iso-b"));
    let only_b = unique_name("only-b").replace('-', "_");
    let _agent_a = isolation_agent(&stack, &a, &run_a, None);
    let _agent_b = isolation_agent(&stack, &b, &run_b, Some(&only_b));

    // Both agents' series are in the Prometheus (so there is something to leak)...
    for (run, what) in [(&run_a, "A's series"), (&run_b, "B's series")] {
        eventually(what, Duration::from_secs(90), || async {
            let r =
                prometheus_query(&stack, &format!("up{{iso_run=\"{run}\", job=\"envoy\"}}")).await;
            (r.len() == 3).then_some(())
        })
        .await;
    }
    eventually("B's own job", Duration::from_secs(60), || async {
        let r = prometheus_query(&stack, &format!("up{{job=\"{only_b}\"}}")).await;
        (!r.is_empty()).then_some(())
    })
    .await;

    // ...and each workspace sees its own, without the workspace label.
    let (status, body) = amp_query(&stack, &a, "up{iso_run=~\".+\"}").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        label_values_in(&body, "iso_run"),
        [run_a.as_str()],
        "{body}"
    );
    assert!(
        label_values_in(&body, "ampkit_workspace").is_empty(),
        "{body}"
    );
    let (_, body) = amp_query(&stack, &b, "up{iso_run=~\".+\"}").await;
    assert_eq!(
        label_values_in(&body, "iso_run"),
        [run_b.as_str()],
        "{body}"
    );

    // Tricks that try to reach B's series from A see nothing of them.
    for expr in [
        format!("up{{iso_run=\"{run_b}\"}}"),
        format!("up{{ampkit_workspace=\"{b}\"}}"),
        format!("{{iso_run=\"{run_b}\"}}"),
        format!("{{__name__=~\".+\", job=\"{only_b}\"}}"),
        format!("up{{iso_run=\"{run_a}\"}} and on() up{{iso_run=\"{run_b}\"}}"),
        format!("label_replace(up{{iso_run=\"{run_b}\"}}, \"x\", \"$1\", \"job\", \"(.*)\")"),
        format!("max_over_time(up{{job=\"{only_b}\"}}[30s:1s])"),
        format!("up{{job=\"{only_b}\"}} offset 1s"),
        format!("count by (__name__) ({{job=\"{only_b}\"}})"),
    ] {
        let (status, body) = amp_query(&stack, &a, &expr).await;
        assert_eq!(status, 200, "{expr}: {body}");
        assert_eq!(
            body["data"]["result"],
            serde_json::json!([]),
            "{expr} leaked: {body}"
        );
    }
    // `or` and `unless` keep to A's side: B's half is empty, so A's stands whole.
    let (_, body) = amp_query(
        &stack,
        &a,
        &format!("up{{iso_run=\"{run_a}\"}} or up{{iso_run=\"{run_b}\"}}"),
    )
    .await;
    assert_eq!(
        label_values_in(&body, "iso_run"),
        [run_a.as_str()],
        "{body}"
    );
    let (_, body) = amp_query(
        &stack,
        &a,
        &format!("up{{iso_run=\"{run_a}\"}} unless on() up{{job=\"{only_b}\"}}"),
    )
    .await;
    assert_eq!(
        body["data"]["result"].as_array().map(Vec::len),
        Some(3),
        "{body}"
    );
    // Everything A can count by name is A's: B's own job's metrics are not among them.
    let (_, body) = amp_query(&stack, &a, "count by (job) ({__name__=~\".+\"})").await;
    assert!(!label_values_in(&body, "job").contains(&only_b), "{body}");

    // Through amp-local equals the Prometheus answer restricted to the workspace's series.
    let at = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            - 5
    );
    let (_, ours) = amp_read(
        &stack,
        &a,
        "query",
        &[("query", "count by (iso_run, job) (up)"), ("time", &at)],
    )
    .await;
    let direct: Value = http()
        .get(format!(
            "{}/api/v1/query?time={at}&query={}",
            stack.prometheus_url,
            urlencode(&format!(
                "count by (iso_run, job) (up{{ampkit_workspace=\"{a}\"}})"
            ))
        ))
        .send()
        .await
        .expect("Prometheus answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(ours["data"]["result"], direct["data"]["result"]);

    // Range, series, labels and label values: A's only, the label itself invisible.
    let end = at.parse::<u64>().unwrap();
    let (start, end) = ((end - 30).to_string(), end.to_string());
    let (status, body) = amp_read(
        &stack,
        &a,
        "query_range",
        &[
            ("query", "up"),
            ("start", &start),
            ("end", &end),
            ("step", "5"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !label_values_in(&body, "iso_run").contains(&run_b),
        "{body}"
    );
    assert!(
        label_values_in(&body, "ampkit_workspace").is_empty(),
        "{body}"
    );
    let (status, body) = amp_read(
        &stack,
        &a,
        "series",
        &[("match[]", "{iso_run=~\".+\"}"), ("start", &start)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        label_values_in(&body, "iso_run"),
        [run_a.as_str()],
        "{body}"
    );
    assert!(
        label_values_in(&body, "ampkit_workspace").is_empty(),
        "{body}"
    );
    let (_, body) = amp_read(&stack, &a, "labels", &[("start", &start)]).await;
    let names = body["data"].as_array().cloned().unwrap_or_default();
    assert!(names.contains(&Value::from("iso_run")), "{body}");
    assert!(!names.contains(&Value::from("ampkit_workspace")), "{body}");
    let (_, body) = amp_read(&stack, &a, "label/iso_run/values", &[("start", &start)]).await;
    assert_eq!(body["data"], serde_json::json!([run_a]), "{body}");
    let (_, body) = amp_read(
        &stack,
        &a,
        "label/job/values",
        &[("match[]", &format!("{{job=\"{only_b}\"}}"))],
    )
    .await;
    assert_eq!(body["data"], serde_json::json!([]), "{body}");
    let (status, body) = amp_read(&stack, &a, "label/ampkit_workspace/values", &[]).await;
    assert_eq!(
        (status, &body["data"]),
        (200, &serde_json::json!([])),
        "{body}"
    );

    // An expression that does not parse: Prometheus's own 400, with its position.
    let (status, body) = amp_query(&stack, &a, "sum(up{job=\"x\"}").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errorType"], "bad_data", "{body}");
    assert!(
        body["error"].as_str().unwrap_or_default().contains("1:"),
        "{body}"
    );

    // A rule in A over a metric only B has never fires; the same rule in B does (so the
    // check means something).
    let alert = unique_name("IsoLeak").replace('-', "_");
    let rules = format!(
        "groups:\n- name: iso\n  interval: 1s\n  rules:\n  - alert: {alert}\n    expr: count(up{{job=\"{only_b}\"}}) > 0\n"
    );
    for ws in [&a, &b] {
        client
            .create_rule_groups_namespace()
            .workspace_id(ws.as_str())
            .name("iso")
            .data(Blob::new(rules.clone()))
            .send()
            .await
            .expect("CreateRuleGroupsNamespace");
    }
    let alerts = format!("ALERTS{{alertname=\"{alert}\"}}");
    eventually("the rule firing in B", Duration::from_secs(60), || async {
        let r = prometheus_query(&stack, &alerts).await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    // Both groups were loaded by the same reload; give A's a few more evaluations.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pending_or_firing = prometheus_query(&stack, &alerts).await;
    let workspaces: Vec<&str> = pending_or_firing
        .iter()
        .filter_map(|r| r["metric"]["ampkit_workspace"].as_str())
        .collect();
    assert_eq!(
        workspaces,
        [b.as_str()],
        "only B's rule fires: {pending_or_firing:?}"
    );
    // A's rule is there, evaluated without error, and inactive.
    let (_, rules_a) = amp_read(&stack, &a, "rules", &[]).await;
    let rule = &rules_a["data"]["groups"][0]["rules"][0];
    assert_eq!(rule["name"], alert.as_str(), "{rules_a}");
    assert_eq!(
        (&rule["health"], &rule["state"]),
        (&Value::from("ok"), &Value::from("inactive")),
        "{rules_a}"
    );
    assert!(
        !rule["lastEvaluation"]
            .as_str()
            .unwrap_or("0001")
            .starts_with("0001"),
        "{rules_a}"
    );

    for ws in [&a, &b] {
        let _ = client
            .delete_workspace()
            .workspace_id(ws.as_str())
            .send()
            .await;
    }
}

// ---- PromQL as the backing Prometheus knows it -------------------------------------------------

/// Every function of the Prometheus behind amp-local (2.53: `promql/parser/functions.go` at
/// v2.53.3), called as a user would. `{W}` is where the workspace matcher goes when the same
/// query is asked of that Prometheus directly.
const FUNCTIONS: [(&str, &str); 72] = [
    ("abs", "abs(fnlist_gauge{W})"),
    ("absent", "absent(fnlist_missing{W})"),
    (
        "absent_over_time",
        "absent_over_time(fnlist_missing{W}[1m])",
    ),
    ("acos", "acos(fnlist_gauge{W} / 1000)"),
    ("acosh", "acosh(fnlist_gauge{W} + 1)"),
    ("asin", "asin(fnlist_gauge{W} / 1000)"),
    ("asinh", "asinh(fnlist_gauge{W})"),
    ("atan", "atan(fnlist_gauge{W})"),
    ("atanh", "atanh(fnlist_gauge{W} / 1000)"),
    ("avg_over_time", "avg_over_time(fnlist_gauge{W}[2m])"),
    ("ceil", "ceil(fnlist_gauge{W} / 7)"),
    ("changes", "changes(fnlist_gauge{W}[5m])"),
    ("clamp", "clamp(fnlist_gauge{W}, 10, 100)"),
    ("clamp_max", "clamp_max(fnlist_gauge{W}, 100)"),
    ("clamp_min", "clamp_min(fnlist_gauge{W}, 10)"),
    ("cos", "cos(fnlist_gauge{W})"),
    ("cosh", "cosh(fnlist_gauge{W} / 100)"),
    ("count_over_time", "count_over_time(fnlist_gauge{W}[5m])"),
    ("days_in_month", "days_in_month(timestamp(fnlist_gauge{W}))"),
    ("day_of_month", "day_of_month(timestamp(fnlist_gauge{W}))"),
    ("day_of_week", "day_of_week(timestamp(fnlist_gauge{W}))"),
    ("day_of_year", "day_of_year(timestamp(fnlist_gauge{W}))"),
    ("deg", "deg(fnlist_gauge{W})"),
    ("delta", "delta(fnlist_gauge{W}[2m])"),
    ("deriv", "deriv(fnlist_gauge{W}[2m])"),
    ("exp", "exp(fnlist_gauge{W} / 100)"),
    ("floor", "floor(fnlist_gauge{W} / 7)"),
    ("histogram_avg", "histogram_avg(fnlist_gauge{W})"),
    ("histogram_count", "histogram_count(fnlist_gauge{W})"),
    ("histogram_sum", "histogram_sum(fnlist_gauge{W})"),
    ("histogram_stddev", "histogram_stddev(fnlist_gauge{W})"),
    ("histogram_stdvar", "histogram_stdvar(fnlist_gauge{W})"),
    (
        "histogram_fraction",
        "histogram_fraction(0, 0.5, fnlist_gauge{W})",
    ),
    (
        "histogram_quantile",
        "histogram_quantile(0.9, sum by (le) (rate(fnlist_latency_bucket{W}[2m])))",
    ),
    (
        "holt_winters",
        "holt_winters(fnlist_gauge{W}[5m], 0.5, 0.5)",
    ),
    ("hour", "hour(timestamp(fnlist_gauge{W}))"),
    ("idelta", "idelta(fnlist_gauge{W}[2m])"),
    ("increase", "increase(fnlist_requests_total{W}[2m])"),
    ("irate", "irate(fnlist_requests_total{W}[2m])"),
    (
        "label_replace",
        "label_replace(fnlist_gauge{W}, \"copy\", \"$1\", \"job\", \"(.*)\")",
    ),
    (
        "label_join",
        "label_join(fnlist_gauge{W}, \"both\", \"-\", \"job\", \"shard\")",
    ),
    ("last_over_time", "last_over_time(fnlist_gauge{W}[2m])"),
    ("ln", "ln(fnlist_gauge{W})"),
    ("mad_over_time", "mad_over_time(fnlist_gauge{W}[5m])"),
    ("max_over_time", "max_over_time(fnlist_gauge{W}[5m])"),
    ("min_over_time", "min_over_time(fnlist_gauge{W}[5m])"),
    ("minute", "minute(timestamp(fnlist_gauge{W}))"),
    ("month", "month(timestamp(fnlist_gauge{W}))"),
    ("pi", "pi()"),
    ("predict_linear", "predict_linear(fnlist_gauge{W}[5m], 60)"),
    (
        "present_over_time",
        "present_over_time(fnlist_gauge{W}[5m])",
    ),
    (
        "quantile_over_time",
        "quantile_over_time(0.9, fnlist_gauge{W}[5m])",
    ),
    ("rad", "rad(fnlist_gauge{W})"),
    ("rate", "rate(fnlist_requests_total{W}[2m])"),
    ("resets", "resets(fnlist_gauge{W}[5m])"),
    ("round", "round(fnlist_gauge{W} / 7, 0.5)"),
    ("scalar", "scalar(sum(fnlist_gauge{W}))"),
    ("sgn", "sgn(fnlist_gauge{W} - 100)"),
    ("sin", "sin(fnlist_gauge{W})"),
    ("sinh", "sinh(fnlist_gauge{W} / 100)"),
    ("sort", "sort(fnlist_gauge{W})"),
    ("sort_desc", "sort_desc(fnlist_gauge{W})"),
    ("sort_by_label", "sort_by_label(fnlist_gauge{W}, \"shard\")"),
    (
        "sort_by_label_desc",
        "sort_by_label_desc(fnlist_gauge{W}, \"shard\")",
    ),
    ("sqrt", "sqrt(fnlist_gauge{W})"),
    ("stddev_over_time", "stddev_over_time(fnlist_gauge{W}[5m])"),
    ("stdvar_over_time", "stdvar_over_time(fnlist_gauge{W}[5m])"),
    ("sum_over_time", "sum_over_time(fnlist_gauge{W}[5m])"),
    ("tan", "tan(fnlist_gauge{W})"),
    ("tanh", "tanh(fnlist_gauge{W} / 100)"),
    ("time", "time()"),
    ("timestamp", "timestamp(fnlist_gauge{W})"),
];

/// The same query through a workspace and straight against its Prometheus (with the
/// workspace matcher written in), at one instant: (status, body) of each.
async fn both_ways(stack: &Stack, ws: &str, query: &str, at: &str) -> ((u16, Value), (u16, Value)) {
    let ours = query.replace("{W}", "");
    let direct = query.replace("{W}", &format!("{{ampkit_workspace=\"{ws}\"}}"));
    let through = amp_read(stack, ws, "query", &[("query", &ours), ("time", at)]).await;
    let response = http()
        .get(format!(
            "{}/api/v1/query?query={}&time={at}",
            stack.prometheus_url,
            urlencode(&direct)
        ))
        .send()
        .await
        .expect("Prometheus answers");
    let status = response.status().as_u16();
    (
        through,
        (status, response.json().await.unwrap_or(Value::Null)),
    )
}

/// An answer's result without the workspace label, in a stable order.
fn result_of(body: &Value) -> Value {
    let mut result = body["data"]["result"].clone();
    if let Some(items) = result.as_array_mut() {
        for item in items.iter_mut() {
            if let Some(metric) = item.get_mut("metric").and_then(Value::as_object_mut) {
                metric.remove("ampkit_workspace");
            }
        }
        items.sort_by_key(|item| item["metric"].to_string());
    }
    result
}

/// A workspace fed five minutes of a gauge (two shards), a counter and a classic histogram.
async fn fed_workspace(prefix: &str) -> (Stack, aws_sdk_amp::Client, String, i64) {
    let (stack, client, id) = fresh_workspace(prefix).await;
    let now = now_ms() / 1000 * 1000;
    let at = |i: i64| now - 300_000 + i * 15_000;
    let mut all = Vec::new();
    for shard in ["a", "b"] {
        let gauge: Vec<(f64, i64)> = (0..=20)
            .map(|i| {
                (
                    ((i * i) % 37 + 1) as f64 + if shard == "b" { 0.5 } else { 0.0 },
                    at(i),
                )
            })
            .collect();
        all.push(series(
            &[
                ("__name__", "fnlist_gauge"),
                ("job", "fn"),
                ("shard", shard),
            ],
            &gauge,
        ));
    }
    let counter: Vec<(f64, i64)> = (0..=20).map(|i| ((i * 10) as f64, at(i))).collect();
    all.push(series(
        &[("__name__", "fnlist_requests_total"), ("job", "fn")],
        &counter,
    ));
    for (le, share) in [("0.1", 1), ("0.5", 3), ("+Inf", 4)] {
        let bucket: Vec<(f64, i64)> = (0..=20).map(|i| ((i * share) as f64, at(i))).collect();
        all.push(series(
            &[("__name__", "fnlist_latency_bucket"), ("le", le)],
            &bucket,
        ));
    }
    let url = format!("{}/workspaces/{id}/api/v1/remote_write", amp_url(&stack));
    let response = Signer::for_stack(&stack)
        .request(
            &http(),
            "POST",
            &url,
            REMOTE_WRITE_HEADERS,
            remote_write_body(all),
        )
        .send()
        .await
        .expect("amp-local answers");
    let status = response.status();
    assert!(status.is_success(), "{status}: {:?}", response.text().await);
    (stack, client, id, now)
}

/// Whatever the Prometheus behind a workspace answers, the workspace answers the same: every
/// function it knows (`holt_winters`, its 2.x name, included), each answer compared with the
/// one it gives directly for the workspace's series.
#[tokio::test]
async fn every_function_of_the_backing_prometheus_answers_as_it_does_directly() {
    let names: std::collections::BTreeSet<&str> = FUNCTIONS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names.len(), FUNCTIONS.len(), "each function once");
    let (stack, client, id, now) = fed_workspace("amp-local-functions").await;
    let at = format!("{}", now / 1000);
    for (name, query) in FUNCTIONS {
        assert!(query.starts_with(name), "{name}: {query}");
        let ((status, ours), (direct_status, direct)) = both_ways(&stack, &id, query, &at).await;
        assert_eq!(status, direct_status, "{name}: {ours} vs {direct}");
        assert_eq!(
            ours["status"], direct["status"],
            "{name}: {ours} vs {direct}"
        );
        if status == 200 {
            assert_eq!(result_of(&ours), result_of(&direct), "{name}");
        } else {
            assert_eq!(ours["error"], direct["error"], "{name}");
        }
    }
    let ((status, ours), _) = both_ways(&stack, &id, FUNCTIONS[34].1, &at).await;
    assert_eq!(status, 200, "holt_winters is evaluated: {ours}");
    assert_eq!(result_of(&ours).as_array().map(Vec::len), Some(2), "{ours}");
    delete_workspace(&client, &id).await;
}

/// A subquery without a step is evaluated at AMP's default step (1m), not at the local
/// stack's rule interval; and the infos and warnings of an answer carry no position of the
/// confined query the user never sent.
#[tokio::test]
async fn subqueries_step_as_amp_does_and_annotations_carry_no_foreign_position() {
    let (stack, client, id, now) = fed_workspace("amp-local-subquery").await;
    let at = format!("{}", now / 1000);
    let points = |body: &Value| {
        body["data"]["result"][0]["value"][1]
            .as_str()
            .map(str::to_owned)
    };
    let ((_, ours), _) = both_ways(
        &stack,
        &id,
        "count_over_time(fnlist_requests_total{W}[4m:])",
        &at,
    )
    .await;
    let (_, (_, a_minute)) = both_ways(
        &stack,
        &id,
        "count_over_time(fnlist_requests_total{W}[4m:1m])",
        &at,
    )
    .await;
    let (_, (_, local_default)) = both_ways(
        &stack,
        &id,
        "count_over_time(fnlist_requests_total{W}[4m:])",
        &at,
    )
    .await;
    assert_eq!(points(&ours), points(&a_minute), "{ours} vs {a_minute}");
    assert_ne!(
        points(&ours),
        points(&local_default),
        "the local Prometheus alone steps at its own interval: {local_default}"
    );

    let ((status, ours), (_, direct)) =
        both_ways(&stack, &id, "rate(fnlist_gauge{W}[2m])", &at).await;
    assert_eq!(status, 200, "{ours}");
    // Prometheus 2.53 gives infos among the warnings (later versions in `infos`).
    let annotation = |body: &Value| {
        ["warnings", "infos"]
            .iter()
            .flat_map(|key| body[*key].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a.as_str().map(str::to_owned))
            .find(|a| a.contains("might not be a counter"))
            .unwrap_or_else(|| panic!("no counter info in {body}"))
    };
    let info = annotation(&ours);
    assert!(
        !info.contains("(1:"),
        "no position of the confined query: {info}"
    );
    let theirs = annotation(&direct);
    assert!(
        theirs.ends_with("(1:6)"),
        "Prometheus itself gives one: {theirs}"
    );
    delete_workspace(&client, &id).await;
}

// ---- scrapers (AMP's managed collector), run for real by amp-local -----------------------

/// A scraper's configuration as ampkit renders it (render-agent-config's managed-scraper
/// flavour): Kubernetes pod discovery, only `envoy` containers, the port from the
/// `prometheus.io/port` annotation, pod labels mapped, `service` from the `app` label.
const SCRAPER_BLOB: &str = include_str!("../fixtures/scrapers/managed-envoy.yaml");

/// The ARN of a workspace, as DescribeWorkspace gives it.
async fn workspace_arn(client: &aws_sdk_amp::Client, id: &str) -> String {
    client
        .describe_workspace()
        .workspace_id(id)
        .send()
        .await
        .expect("DescribeWorkspace")
        .workspace()
        .map(|w| w.arn().to_owned())
        .expect("a workspace")
}

/// CreateScraper for `workspace_arn` with `blob`, from an EKS cluster (which amp-local does
/// not look up: its discovery is the local mesh).
fn create_scraper(
    client: &aws_sdk_amp::Client,
    region: &str,
    alias: &str,
    workspace_arn: &str,
    blob: &str,
) -> aws_sdk_amp::operation::create_scraper::builders::CreateScraperFluentBuilder {
    use aws_sdk_amp::types::{
        AmpConfiguration, Destination, EksConfiguration, ScrapeConfiguration, Source,
    };
    let source = EksConfiguration::builder()
        .cluster_arn(format!(
            "arn:aws:eks:{region}:123456789012:cluster/ampkit-local"
        ))
        .subnet_ids("subnet-0a1b2c3d")
        .security_group_ids("sg-0a1b2c3d")
        .build()
        .expect("an EKS source");
    let destination = AmpConfiguration::builder()
        .workspace_arn(workspace_arn)
        .build()
        .expect("an AMP destination");
    client
        .create_scraper()
        .alias(alias)
        .source(Source::EksConfiguration(source))
        .destination(Destination::AmpConfiguration(destination))
        .scrape_configuration(ScrapeConfiguration::ConfigurationBlob(Blob::new(blob)))
}

/// The status of a scraper, or `None` once DescribeScraper says it does not exist (any other
/// failure fails the test).
async fn scraper_status(client: &aws_sdk_amp::Client, id: &str) -> Option<(String, String)> {
    match client.describe_scraper().scraper_id(id).send().await {
        Ok(out) => {
            let s = out.scraper().expect("a scraper");
            Some((
                s.status()
                    .map(|st| st.status_code().as_str().to_owned())
                    .unwrap_or_default(),
                s.status_reason().unwrap_or_default().to_owned(),
            ))
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            None
        }
        Err(e) => panic!("DescribeScraper {id}: {e:?}"),
    }
}

/// Wait until a scraper leaves CREATING; its status and reason then.
async fn settled_scraper(client: &aws_sdk_amp::Client, id: &str) -> (String, String) {
    eventually(
        "the scraper to leave CREATING",
        Duration::from_secs(60),
        || async {
            scraper_status(client, id)
                .await
                .filter(|(status, _)| status != "CREATING")
        },
    )
    .await
}

/// The agent amp-local runs for a scraper: its PID and address, from the files amp-local
/// keeps in `data_dir/scrapers/<id>/`.
fn scraper_agent(data_dir: &std::path::Path, id: &str) -> Option<(u32, String)> {
    let dir = data_dir.join("scrapers").join(id);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let pid = read("agent.pid")?.trim().parse().ok()?;
    Some((pid, read("agent.listen")?.trim().to_owned()))
}

/// Whether `pid` is a live process running the agent of the scraper whose files are in
/// `dir` (a PID reused by something else does not count).
fn agent_runs(pid: u32, dir: &std::path::Path) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    !zombie
        && String::from_utf8_lossy(&cmdline).contains(&format!(
            "--config.file={}",
            dir.join("agent.yml").display()
        ))
}

#[tokio::test]
async fn a_scraper_runs_an_agent_that_writes_the_mesh_into_its_workspace_until_deleted() {
    let (stack, client, ws) = fresh_workspace("amp-local-scraper").await;
    let ws_arn = workspace_arn(&client, &ws).await;
    let alias = unique_name("scraper");
    let created = create_scraper(&client, &stack.region, &alias, &ws_arn, SCRAPER_BLOB)
        .tags("team", "obs")
        .send()
        .await
        .expect("CreateScraper");
    let id = created.scraper_id().to_owned();
    assert!(id.starts_with("s-"), "{id}");
    assert_eq!(
        created.arn(),
        format!("arn:aws:aps:{}:123456789012:scraper/{id}", stack.region)
    );
    assert_eq!(
        created.status().map(|s| s.status_code().as_str()),
        Some("CREATING")
    );

    // DescribeScraper gives back what was asked for, CREATING for the activation delay.
    let described = client
        .describe_scraper()
        .scraper_id(&id)
        .send()
        .await
        .expect("DescribeScraper");
    let s = described.scraper().expect("a scraper");
    assert_eq!(
        s.status().map(|st| st.status_code().as_str()),
        Some("CREATING")
    );
    assert_eq!(s.alias(), Some(alias.as_str()));
    assert!(
        s.role_arn().starts_with(
            "arn:aws:iam::123456789012:role/aws-service-role/scraper.aps.amazonaws.com/AWSServiceRoleForAmazonPrometheusScraper_"
        ),
        "{}",
        s.role_arn()
    );
    let blob = s
        .scrape_configuration()
        .and_then(|c| c.as_configuration_blob().ok())
        .expect("the configuration blob");
    assert_eq!(blob.as_ref(), SCRAPER_BLOB.as_bytes());
    let eks = s
        .source()
        .and_then(|src| src.as_eks_configuration().ok())
        .expect("the EKS source");
    assert!(eks.cluster_arn().ends_with(":cluster/ampkit-local"));
    assert_eq!(eks.subnet_ids(), ["subnet-0a1b2c3d"]);
    assert_eq!(
        s.destination()
            .and_then(|d| d.as_amp_configuration().ok())
            .map(|a| a.workspace_arn()),
        Some(ws_arn.as_str())
    );
    assert_eq!(
        s.tags().and_then(|t| t.get("team")).map(String::as_str),
        Some("obs")
    );

    let (status, reason) = settled_scraper(&client, &id).await;
    assert_eq!(status, "ACTIVE", "{reason}");

    // The agent: a real process on its own port, answering as a Prometheus agent does.
    let data_dir = stack.stack_dir.join("amp-local");
    let agent_dir = data_dir.join("scrapers").join(&id);
    let (pid, listen) = scraper_agent(&data_dir, &id).expect("the agent's pid and address");
    assert!(agent_runs(pid, &agent_dir), "pid {pid} is not the agent");
    let ready = http()
        .get(format!("http://{listen}/-/ready"))
        .send()
        .await
        .expect("the agent answers");
    assert!(ready.status().is_success());

    // What it scrapes arrives in the workspace, labelled by the scraper's own relabelling
    // from the labels the emulated pod discovery gave the three Envoys.
    let query = "envoy_server_live{namespace=\"prod\"}";
    let series = eventually(
        "the scraper's series in its workspace",
        Duration::from_secs(90),
        || async {
            let (status, body) = amp_query(&stack, &ws, query).await;
            assert_eq!(status, 200, "{body}");
            let result = body["data"]["result"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            (result.len() == 3).then_some(result)
        },
    )
    .await;
    let mut services: Vec<&str> = series
        .iter()
        .map(|s| s["metric"]["service"].as_str().unwrap_or_default())
        .collect();
    services.sort_unstable();
    assert_eq!(services, ["dj", "jazz", "metal"], "{series:?}");
    for s in &series {
        let m = &s["metric"];
        let service = m["service"].as_str().unwrap_or_default();
        assert_eq!(m["job"], "envoy", "{m}");
        assert_eq!(m["app"], service, "pod labels are mapped: {m}");
        assert_eq!(m["kubernetes_pod_name"], format!("{service}-0"), "{m}");
        assert!(m.get("ampkit_workspace").is_none(), "{m}");
    }
    let (_, upstream) = amp_query(
        &stack,
        &ws,
        "count by (service) (envoy_cluster_upstream_rq_total{service=\"dj\", namespace=\"prod\"})",
    )
    .await;
    assert_eq!(
        upstream["data"]["result"].as_array().map(Vec::len),
        Some(1),
        "dj's upstream counters arrive too: {upstream}"
    );

    // ListScrapers lists it, by alias and by status.
    let listed = client
        .list_scrapers()
        .filters("alias", vec![alias.clone()])
        .filters("status", vec!["ACTIVE".to_owned()])
        .send()
        .await
        .expect("ListScrapers");
    let ids: Vec<&str> = listed.scrapers().iter().map(|s| s.scraper_id()).collect();
    assert_eq!(ids, [id.as_str()]);
    assert_eq!(listed.scrapers()[0].role_arn(), s.role_arn());
    let creating = client
        .list_scrapers()
        .filters("alias", vec![alias.clone()])
        .filters("status", vec!["CREATING".to_owned()])
        .send()
        .await
        .expect("ListScrapers");
    assert!(creating.scrapers().is_empty());

    // DeleteScraper: DELETING, then gone; the agent stops and its port closes.
    let deleted = client
        .delete_scraper()
        .scraper_id(&id)
        .send()
        .await
        .expect("DeleteScraper");
    assert_eq!(
        deleted.status().map(|s| s.status_code().as_str()),
        Some("DELETING")
    );
    assert_eq!(
        scraper_status(&client, &id)
            .await
            .map(|(s, _)| s)
            .as_deref(),
        Some("DELETING")
    );
    eventually(
        "the scraper to be gone",
        Duration::from_secs(60),
        || async { scraper_status(&client, &id).await.is_none().then_some(()) },
    )
    .await;
    assert!(
        !agent_runs(pid, &agent_dir),
        "the agent (pid {pid}) still runs"
    );
    assert!(
        std::net::TcpStream::connect(&listen).is_err(),
        "something still listens on the agent's {listen}"
    );
    assert!(!agent_dir.exists(), "its files are removed");
    let err = client
        .delete_scraper()
        .scraper_id(&id)
        .send()
        .await
        .expect_err("a deleted scraper is not found");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception())
    );
    delete_workspace(&client, &ws).await;
}

#[tokio::test]
async fn scraper_requests_amp_would_refuse_are_refused_and_make_nothing() {
    let (stack, client, ws) = fresh_workspace("amp-local-scraper-bad").await;
    let ws_arn = workspace_arn(&client, &ws).await;
    let alias = unique_name("refused");

    // Unknown ids: 404 ResourceNotFoundException, as for workspaces.
    let unknown = "s-00000000-0000-4000-8000-000000000000";
    let err = client
        .describe_scraper()
        .scraper_id(unknown)
        .send()
        .await
        .expect_err("no such scraper");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{err:?}"
    );
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
    let err = client
        .delete_scraper()
        .scraper_id(unknown)
        .send()
        .await
        .expect_err("no such scraper");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception())
    );

    // Configurations AMP refuses, and destinations that are no workspace of this account and
    // region: 400 ValidationException, saying what is wrong.
    let other_region = ws_arn.replace(&format!(":{}:", stack.region), ":us-east-2:");
    let missing_ws = format!(
        "arn:aws:aps:{}:123456789012:workspace/ws-00000000-0000-0000-0000-000000000000",
        stack.region
    );
    let bad_relabel = SCRAPER_BLOB.replace("action: keep", "action: keeep");
    for (destination, blob, fragment) in [
        (ws_arn.as_str(), "scrape_configs: [", "not YAML"),
        (
            ws_arn.as_str(),
            "global:\n  scrape_interval: 5s\n",
            "no scrape_configs",
        ),
        (
            ws_arn.as_str(),
            "scrape_configs:\n- job_name: a\nremote_write:\n- url: http://x/\n",
            "remote_write",
        ),
        // Valid as YAML, refused by Prometheus itself (promtool beside it).
        (
            ws_arn.as_str(),
            bad_relabel.as_str(),
            "Prometheus refuses it",
        ),
        (missing_ws.as_str(), SCRAPER_BLOB, "names no workspace"),
        (
            other_region.as_str(),
            SCRAPER_BLOB,
            "not a workspace ARN of this account and region",
        ),
    ] {
        let err = create_scraper(&client, &stack.region, &alias, destination, blob)
            .send()
            .await
            .expect_err(fragment);
        let service = err.as_service_error();
        assert!(
            service.is_some_and(|e| e.is_validation_exception()),
            "{fragment}: {err:?}"
        );
        let message = service.and_then(|e| e.meta().message()).unwrap_or_default();
        assert!(message.contains(fragment), "`{fragment}` not in: {message}");
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    }

    // Bodies the SDK would not send, raw: no source, a blob that is not base64.
    let url = format!("{}/scrapers", amp_url(&stack));
    for (body, fragment) in [
        (
            serde_json::json!({
                "destination": {"ampConfiguration": {"workspaceArn": ws_arn}},
                "scrapeConfiguration": {"configurationBlob": "Z2xvYmFsOiB7fQo="},
            }),
            "source is required",
        ),
        (
            serde_json::json!({
                "source": {"eksConfiguration": {"clusterArn": "arn:aws:eks:eu-west-1:123456789012:cluster/c", "subnetIds": ["subnet-1"]}},
                "destination": {"ampConfiguration": {"workspaceArn": ws_arn}},
                "scrapeConfiguration": {"configurationBlob": "not base64!"},
            }),
            "not base64",
        ),
        (
            serde_json::json!({
                "source": {"eksConfiguration": {"clusterArn": "arn:aws:eks:eu-west-1:123456789012:cluster/c", "subnetIds": ["subnet-1"]}},
                "scrapeConfiguration": {"configurationBlob": "Z2xvYmFsOiB7fQo="},
            }),
            "destination is required",
        ),
    ] {
        let response = Signer::for_stack(&stack)
            .request(
                &http(),
                "POST",
                &url,
                &[("content-type", "application/json")],
                body.to_string().into_bytes(),
            )
            .send()
            .await
            .expect("amp-local answers");
        assert_eq!(response.status().as_u16(), 400, "{fragment}");
        assert_eq!(
            response
                .headers()
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok()),
            Some("ValidationException")
        );
        let answer: Value = response.json().await.expect("a JSON error");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(fragment), "`{fragment}` not in: {answer}");
    }

    // None of it made a scraper.
    let listed = client
        .list_scrapers()
        .filters("alias", vec![alias.clone()])
        .send()
        .await
        .expect("ListScrapers");
    assert!(listed.scrapers().is_empty(), "{listed:?}");
    delete_workspace(&client, &ws).await;
}

/// An amp-local of the test's own for scrapers: its own port and data dir, in front of the
/// stack's Prometheus, the mesh's Envoys as its pods, Prometheus from `prometheus_bin`.
fn start_scraper_amp_local(
    stack: &Stack,
    port: u16,
    dir: &std::path::Path,
    prometheus_bin: &std::path::Path,
) -> Process {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("amp-local.log"))
        .expect("log file");
    let mut command = Command::new(ampkit_e2e::bin("amp-local"));
    command
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--prometheus-url")
        .arg(&stack.prometheus_url)
        .arg("--rules-dir")
        .arg(dir.join("rules"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--region")
        .arg(&stack.region)
        .arg("--activation-delay")
        .arg("1s")
        .arg("--prometheus-bin")
        .arg(prometheus_bin)
        .arg("-v");
    for (service, url) in ["dj", "jazz", "metal"].iter().zip(&stack.envoy_admin_urls) {
        command.arg("--scraper-pod").arg(format!(
            "{},namespace=prod,name={service}-0,container=envoy,app={service}",
            url.trim_start_matches("http://")
        ));
    }
    Process(
        command
            .env("AWS_ACCESS_KEY_ID", &stack.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &stack.secret_access_key)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("amp-local starts"),
    )
}

async fn healthy(endpoint: &str) -> Option<()> {
    http()
        .get(format!("{endpoint}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
        .then_some(())
}

#[tokio::test]
async fn a_scraper_whose_agent_cannot_start_fails_saying_why() {
    let stack = stack();
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let missing = dir.path().join("no-such-prometheus");
    let _amp = start_scraper_amp_local(&stack, port, dir.path(), &missing);
    eventually("amp-local to answer", Duration::from_secs(30), || {
        healthy(&endpoint)
    })
    .await;
    let client = amp_sdk(&endpoint).await;
    let ws = active_workspace(&client, "no-agent").await;
    let ws_arn = workspace_arn(&client, &ws).await;
    let id = create_scraper(&client, &stack.region, "no-agent", &ws_arn, SCRAPER_BLOB)
        .send()
        .await
        .expect("CreateScraper accepts it: the binary is looked for when the agent starts")
        .scraper_id()
        .to_owned();
    let (status, reason) = settled_scraper(&client, &id).await;
    assert_eq!(status, "CREATION_FAILED");
    assert!(
        reason.contains(&missing.display().to_string()) && reason.contains("--prometheus-bin"),
        "the reason names the binary and the fix: {reason}"
    );
    // A failed scraper is deleted like any other.
    client
        .delete_scraper()
        .scraper_id(&id)
        .send()
        .await
        .expect("DeleteScraper");
    eventually(
        "the scraper to be gone",
        Duration::from_secs(30),
        || async { scraper_status(&client, &id).await.is_none().then_some(()) },
    )
    .await;
}

/// Kills (by PID) the agents still named in a data dir's pid files when the test ends: a test
/// that fails after killing its amp-local must not leave that amp-local's agents running.
struct AgentsLeftBehind(std::path::PathBuf);

impl Drop for AgentsLeftBehind {
    fn drop(&mut self) {
        let Ok(scrapers) = std::fs::read_dir(self.0.join("scrapers")) else {
            return;
        };
        for dir in scrapers.flatten().map(|e| e.path()) {
            let pid = std::fs::read_to_string(dir.join("agent.pid"))
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok());
            if let Some(pid) = pid.filter(|pid| agent_runs(*pid, &dir)) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

#[tokio::test]
async fn scrapers_survive_an_amp_local_restart_and_their_agents_stop_with_it() {
    let stack = stack();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let _reaper = AgentsLeftBehind(data.clone());
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let prometheus = ampkit_e2e::amp_local::local_bin("prometheus");

    let first = start_scraper_amp_local(&stack, port, dir.path(), &prometheus);
    eventually("amp-local to answer", Duration::from_secs(30), || {
        healthy(&endpoint)
    })
    .await;
    let client = amp_sdk(&endpoint).await;
    let ws = active_workspace(&client, "restart-scraper").await;
    let ws_arn = workspace_arn(&client, &ws).await;
    let id = create_scraper(&client, &stack.region, "restart", &ws_arn, SCRAPER_BLOB)
        .send()
        .await
        .expect("CreateScraper")
        .scraper_id()
        .to_owned();
    let (status, reason) = settled_scraper(&client, &id).await;
    assert_eq!(status, "ACTIVE", "{reason}");
    let agent_dir = data.join("scrapers").join(&id);
    let (old_pid, _) = scraper_agent(&data, &id).expect("the agent's files");
    assert!(agent_runs(old_pid, &agent_dir));

    // amp-local killed outright leaves its agent behind; the next one stops that agent and
    // starts a new one, and the scraper is still ACTIVE.
    drop(first);
    assert!(
        agent_runs(old_pid, &agent_dir),
        "KILL gives amp-local no chance to stop it"
    );
    let mut second = start_scraper_amp_local(&stack, port, dir.path(), &prometheus);
    eventually("amp-local to answer again", Duration::from_secs(30), || {
        healthy(&endpoint)
    })
    .await;
    let (new_pid, new_listen) = eventually(
        "a new agent for the scraper",
        Duration::from_secs(60),
        || async { scraper_agent(&data, &id).filter(|(pid, _)| *pid != old_pid) },
    )
    .await;
    assert!(
        !agent_runs(old_pid, &agent_dir),
        "the agent left behind (pid {old_pid}) was stopped"
    );
    assert!(agent_runs(new_pid, &agent_dir));
    assert_eq!(
        scraper_status(&client, &id)
            .await
            .map(|(s, _)| s)
            .as_deref(),
        Some("ACTIVE")
    );

    // TERM: amp-local stops its agents before it exits.
    let pid = second.0.id().to_string();
    let term = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(term.success());
    let exited = ampkit_e2e::poll_until(Duration::from_secs(20), ampkit_e2e::POLL_EVERY, || {
        second.0.try_wait().ok().flatten()
    });
    assert!(exited.is_some(), "amp-local exits within 20 s of TERM");
    assert!(
        !agent_runs(new_pid, &agent_dir),
        "the agent (pid {new_pid}) stopped with amp-local"
    );
    assert!(std::net::TcpStream::connect(&new_listen).is_err());
}
