//! sns-alert as a process against the local stack: the topic, its policy statement and
//! subscriptions read back from moto; the rules and the alert manager definition read back
//! through AMP's API on amp-local (the rules also pass `promtool check rules` and are loaded
//! by the real Prometheus); bad input refused with exit 2 and nothing created; a failure
//! half-way still leaves the ledger; and the end-to-end proof that Envoy latency raised with
//! the fault-delay header fires the alert, whose message reaches the topic, and resolves.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ampkit_e2e::amp_local::{Process, http, local_bin};
use ampkit_e2e::grafana::alerting::SnsFlavour;
use ampkit_e2e::grafana::{GrafanaFixture, mint_token};
use ampkit_e2e::{Stack, amp_sdk, bin, ledger_kinds, stack, tool, unique_name};
use serde_json::{Value, json};

/// moto's SNS topics as it stores them (policy, sent notifications).
async fn moto_topics(stack: &Stack) -> Vec<Value> {
    let data: Value = http()
        .get(format!("{}/moto-api/data.json", stack.moto_url))
        .send()
        .await
        .expect("moto answers")
        .json()
        .await
        .expect("JSON");
    data["sns"]["Topic"].as_array().cloned().unwrap_or_default()
}

async fn moto_topic(stack: &Stack, arn: &str) -> Option<Value> {
    moto_topics(stack)
        .await
        .into_iter()
        .find(|t| t["arn"] == arn)
}

async fn moto_subscriptions(stack: &Stack) -> Vec<Value> {
    let data: Value = http()
        .get(format!("{}/moto-api/data.json", stack.moto_url))
        .send()
        .await
        .expect("moto answers")
        .json()
        .await
        .expect("JSON");
    data["sns"]["Subscription"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// None of `names` is a topic in moto (other tests make topics at the same time, so a count
/// would not do).
async fn assert_no_topic_named(stack: &Stack, names: &[String]) {
    let topics = moto_topics(stack).await;
    for name in names {
        let suffix = format!(":{name}");
        assert!(
            !topics
                .iter()
                .any(|t| t["arn"].as_str().is_some_and(|a| a.ends_with(&suffix))),
            "topic {name} was created"
        );
    }
}

fn policy_sids(topic: &Value) -> Vec<String> {
    let policy: Value = serde_json::from_str(topic["policy"].as_str().unwrap_or("{}"))
        .expect("the topic policy is JSON");
    policy["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["Sid"].as_str().map(str::to_owned))
        .collect()
}

fn statement(topic: &Value, sid: &str) -> Value {
    let policy: Value = serde_json::from_str(topic["policy"].as_str().unwrap_or("{}"))
        .expect("the topic policy is JSON");
    policy["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["Sid"] == sid)
        .cloned()
        .unwrap_or(Value::Null)
}

/// A fresh workspace on amp-local, as `amp-workspace ensure` leaves it in the document.
fn workspace_doc(prefix: &str) -> Value {
    ampkit_e2e::new_workspace(&stack(), prefix)
}

fn sns_alert(doc: &Value) -> ampkit_e2e::Invocation {
    tool("sns-alert").stdin_doc(doc)
}

fn new_ledger_entries(before: &Value, after: &Value) -> Vec<Value> {
    let n = before["resources"].as_array().map_or(0, Vec::len);
    after["resources"]
        .as_array()
        .map(|a| a[n..].to_vec())
        .unwrap_or_default()
}

#[tokio::test]
async fn amp_target_creates_topic_statement_subscription_rules_and_definition_once() {
    let stack = stack();
    let input = workspace_doc("sns-alert-amp");
    let ws = input["workspace"]["workspaceId"]
        .as_str()
        .unwrap()
        .to_owned();
    let ws_arn = input["workspace"]["arn"].as_str().unwrap().to_owned();
    let topic_name = unique_name("grafana-sns-alert");
    let args = [
        "--topic-name",
        &topic_name,
        "--email",
        "ops@example.com",
        "--for",
        "2m",
        "--threshold-ms",
        "7.5",
        "--label",
        "team=mesh",
    ];
    let run = sns_alert(&input).args(args).run();
    run.expect_code(0);
    let doc = run.doc();
    // Pass-through: the workspace section is untouched.
    assert_eq!(doc["workspace"], input["workspace"]);
    let section = &doc["alerting"];
    let topic_arn = section["topicArn"].as_str().unwrap().to_owned();
    assert_eq!(
        topic_arn,
        format!("arn:aws:sns:{}:123456789012:{topic_name}", stack.region)
    );
    assert_eq!(section["amp"]["namespace"], "ampkit-alerting");
    assert_eq!(section["amp"]["alertManager"], "ACTIVE");
    assert_eq!(section["subscriptions"][0]["endpoint"], "ops@example.com");
    // moto confirms email subscriptions at once; real SNS says "pending confirmation".
    assert_eq!(section["subscriptions"][0]["status"], "confirmed");

    let created = new_ledger_entries(&input, &doc);
    let kinds: Vec<&str> = created
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "sns-topic",
            "sns-topic-policy-statement",
            "sns-subscription",
            "amp-rule-groups-namespace",
            "amp-alert-manager-definition"
        ]
    );
    assert_eq!(created[0]["id"], topic_arn.as_str());
    assert_eq!(created[1]["details"]["topicArn"], topic_arn.as_str());
    let sid = created[1]["id"].as_str().unwrap().to_owned();
    assert_eq!(created[2]["details"]["topicArn"], topic_arn.as_str());
    assert_eq!(created[2]["details"]["endpoint"], "ops@example.com");
    assert_eq!(created[3]["details"]["workspaceId"], ws.as_str());
    assert_eq!(created[4]["id"], ws.as_str());
    assert!(created.iter().all(|r| r["tool"] == "sns-alert"));

    // The topic's policy: SNS's default statement kept, ours added, scoped to the workspace.
    let topic = moto_topic(&stack, &topic_arn)
        .await
        .expect("the topic in moto");
    assert_eq!(
        policy_sids(&topic),
        ["__default_statement_ID", sid.as_str()]
    );
    let ours = statement(&topic, &sid);
    assert_eq!(ours["Principal"], json!({"Service": "aps.amazonaws.com"}));
    assert_eq!(
        ours["Action"],
        json!(["sns:Publish", "sns:GetTopicAttributes"])
    );
    assert_eq!(ours["Resource"], topic_arn.as_str());
    assert_eq!(
        ours["Condition"]["ArnEquals"]["aws:SourceArn"],
        ws_arn.as_str()
    );
    assert_eq!(
        ours["Condition"]["StringEquals"]["AWS:SourceAccount"],
        "123456789012"
    );
    let subscribed = moto_subscriptions(&stack).await;
    assert!(
        subscribed
            .iter()
            .any(|s| s["topic_arn"] == topic_arn.as_str()
                && s["endpoint"] == "ops@example.com"
                && s["protocol"] == "email"),
        "{subscribed:#?}"
    );

    // What AMP stores, read back with the SDK.
    let amp = amp_sdk(&stack.amp_url).await;
    let ns = amp
        .describe_rule_groups_namespace()
        .workspace_id(&ws)
        .name("ampkit-alerting")
        .send()
        .await
        .expect("DescribeRuleGroupsNamespace");
    let ns = ns.rule_groups_namespace().expect("a namespace");
    assert_eq!(
        ns.tags()
            .and_then(|t| t.get("managed-by"))
            .map(String::as_str),
        Some("ampkit")
    );
    let rules = String::from_utf8(ns.data().as_ref().to_vec()).unwrap();
    assert!(rules.contains("> 7.5"), "{rules}");
    assert!(rules.contains("for: 2m"), "{rules}");
    assert!(rules.contains("team: mesh"), "{rules}");
    // promtool, Prometheus's own checker, takes the file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yml");
    std::fs::write(&file, &rules).unwrap();
    let checked = std::process::Command::new(local_bin("promtool"))
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("promtool runs");
    assert!(
        checked.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let def = amp
        .describe_alert_manager_definition()
        .workspace_id(&ws)
        .send()
        .await
        .expect("DescribeAlertManagerDefinition");
    let def = String::from_utf8(
        def.alert_manager_definition()
            .expect("a definition")
            .data()
            .as_ref()
            .to_vec(),
    )
    .unwrap();
    assert!(def.contains(&format!("topic_arn: {topic_arn}")), "{def}");
    assert!(def.contains(&format!("region: {}", stack.region)), "{def}");
    assert!(def.contains("send_resolved: true"), "{def}");
    assert!(
        !def.contains("api_url") && !def.contains("http_config"),
        "{def}"
    );

    // The real Prometheus behind amp-local loaded the rule.
    let loaded: Value = http()
        .get(format!("{}/api/v1/rules", stack.prometheus_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let found = loaded["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .any(|r| {
            r["name"] == "DownstreamLatencyP99High"
                && r["labels"]["ampkit_workspace"] == ws.as_str()
                && r["duration"] == 120
        });
    assert!(found, "rule not loaded in Prometheus: {loaded:#}");

    // Again: found, unchanged, nothing more in the ledger, one subscription, one statement.
    let again = sns_alert(&doc).args(args).run();
    again.expect_code(0);
    let doc2 = again.doc();
    assert_eq!(doc2["resources"], doc["resources"]);
    assert_eq!(doc2["alerting"]["topicArn"], topic_arn.as_str());
    let topic = moto_topic(&stack, &topic_arn).await.unwrap();
    assert_eq!(policy_sids(&topic).len(), 2);
    let subs = moto_subscriptions(&stack)
        .await
        .into_iter()
        .filter(|s| s["topic_arn"] == topic_arn.as_str())
        .count();
    assert_eq!(subs, 1);

    // `sns-alert test` publishes a marked notification to the topic.
    let tested = sns_alert(&doc2).args(["test"]).run();
    tested.expect_code(0);
    let id = tested.doc()["alerting"]["test"]["messageId"]
        .as_str()
        .unwrap()
        .to_owned();
    let topic = moto_topic(&stack, &topic_arn).await.unwrap();
    let sent = topic["sent_notifications"].as_array().unwrap();
    let message = sent
        .iter()
        .find(|m| m[0] == id.as_str())
        .expect("the test message");
    assert!(
        message[2].as_str().unwrap().starts_with("[TEST]"),
        "{message}"
    );
    assert!(
        message[1].as_str().unwrap().contains("not an alert"),
        "{message}"
    );
}

#[tokio::test]
async fn a_second_workspace_on_the_same_topic_adds_its_statement_and_keeps_the_first() {
    let stack = stack();
    let topic_name = unique_name("grafana-shared");
    let first = workspace_doc("sns-alert-first");
    let run = sns_alert(&first).args(["--topic-name", &topic_name]).run();
    run.expect_code(0);
    let first_out = run.doc();
    let topic_arn = first_out["alerting"]["topicArn"]
        .as_str()
        .unwrap()
        .to_owned();

    let second = workspace_doc("sns-alert-second");
    let run = sns_alert(&second).args(["--topic-arn", &topic_arn]).run();
    run.expect_code(0);
    let out = run.doc();
    // The topic was found, not made: only the statement, the namespace and the definition
    // are this run's.
    assert_eq!(
        ledger_kinds(&json!({"resources": new_ledger_entries(&second, &out)})),
        [
            "sns-topic-policy-statement",
            "amp-rule-groups-namespace",
            "amp-alert-manager-definition"
        ]
    );
    let topic = moto_topic(&stack, &topic_arn).await.unwrap();
    let sids = policy_sids(&topic);
    assert_eq!(sids.len(), 3, "{sids:?}");
    assert_eq!(sids[0], "__default_statement_ID");
    assert_eq!(sids[1], first_out["alerting"]["amp"]["policyStatementSid"]);
    assert_eq!(sids[2], out["alerting"]["amp"]["policyStatementSid"]);
}

#[tokio::test]
async fn bad_input_is_exit_2_naming_the_flag_and_creates_nothing() {
    let stack = stack();
    let input = workspace_doc("sns-alert-bad");
    let other_region = "arn:aws:sns:us-east-2:123456789012:grafana-x";
    let other_account = format!("arn:aws:sns:{}:210987654321:grafana-x", stack.region);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--threshold-ms", "five"], "--threshold-ms"),
        (vec!["--for", "a while"], "--for"),
        (vec!["--email", "ops-at-example.com"], "--email"),
        (
            vec!["--email", "ops@example.com", "--email", "x@"],
            "--email `x@`",
        ),
        (vec!["--topic-arn", other_region], "region us-east-2"),
        (vec!["--topic-arn", &other_account], "account 210987654321"),
        (vec!["--topic-arn", "grafana-x"], "--topic-arn"),
        (vec!["--expr", "sum(rate(x[1m]"], "--expr"),
        (vec!["--label", "bad-name=1"], "--label"),
        (vec!["--topic-name", "has space"], "--topic-name"),
        (vec!["--namespace", ".no"], "--namespace"),
    ];
    let mut names = Vec::new();
    for (args, fragment) in cases {
        // A fresh topic name each time (--topic-arn and --topic-name cases bring their own),
        // so that a topic made by mistake would show in moto.
        let topic_name = unique_name("grafana-never");
        names.push(topic_name.clone());
        let mut invocation = sns_alert(&input);
        if !matches!(args[0], "--topic-arn" | "--topic-name") {
            invocation = invocation.args(["--topic-name", &topic_name]);
        }
        let run = invocation.args(&args).run();
        run.expect_code(2);
        let err = run.error();
        let message = err["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(fragment),
            "{args:?}: `{fragment}` not in {err}"
        );
        assert_eq!(run.doc(), input, "{args:?}: the document changed");
    }
    assert_no_topic_named(&stack, &names).await;
    let amp = amp_sdk(&stack.amp_url).await;
    let ws = input["workspace"]["workspaceId"].as_str().unwrap();
    let namespaces = amp
        .list_rule_groups_namespaces()
        .workspace_id(ws)
        .send()
        .await
        .unwrap();
    assert!(namespaces.rule_groups_namespaces().is_empty());
    // No workspace at all is a usage error too.
    let run = tool("sns-alert").stdin("{}").run();
    run.expect_usage_error("no workspace");
}

#[tokio::test]
async fn a_failure_half_way_is_exit_1_and_the_document_lists_what_was_created() {
    let stack = stack();
    // SNS down: nothing was created, the document passes through.
    let input = workspace_doc("sns-alert-down");
    let run = sns_alert(&input)
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .args(["--topic-name", &unique_name("grafana-down")])
        .run();
    run.expect_code(1);
    assert_eq!(run.error()["error"]["kind"], "remote");
    assert_eq!(run.doc()["resources"], input["resources"]);

    // AMP slower than --timeout after the topic and the namespace were made: exit 1, and
    // the ledger has them, so teardown can remove them.
    let run = sns_alert(&input)
        .args(["--topic-name", &unique_name("grafana-half")])
        .args(["--timeout", "10ms"])
        .run();
    run.expect_code(1);
    let doc = run.doc();
    let kinds = ledger_kinds(&json!({"resources": new_ledger_entries(&input, &doc)}));
    assert_eq!(
        kinds,
        [
            "sns-topic",
            "sns-topic-policy-statement",
            "amp-rule-groups-namespace"
        ],
        "{}",
        run.stderr
    );
    let topic_arn = doc["alerting"]["topicArn"].as_str().unwrap();
    assert!(moto_topic(&stack, topic_arn).await.is_some());
    assert!(
        run.error()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("still CREATING")
    );
}

/// envoy-traffic through dj to jazz, in the background, for `secs` seconds; with `delay_ms`,
/// every request asks jazz's fault filter for that delay.
fn traffic(stack: &Stack, secs: u64, delay_ms: Option<u64>) -> Process {
    let mut command = Command::new(bin("envoy-traffic"));
    command
        .env_remove("AMPKIT_ENVOY_ADMIN_URLS")
        .args([
            "--url",
            &stack.envoy_url,
            "--paths",
            "/jazz",
            "--rate",
            "20",
        ])
        .args(["--duration", &format!("{secs}s")]);
    if let Some(ms) = delay_ms {
        command.args(["--header", &format!("x-envoy-fault-delay-request: {ms}")]);
    }
    Process(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("envoy-traffic starts"),
    )
}

/// The notifications moto's topic received: (subject, message), oldest first.
async fn sent(stack: &Stack, topic_arn: &str) -> Vec<(String, String)> {
    moto_topic(stack, topic_arn)
        .await
        .and_then(|t| t["sent_notifications"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|n| {
            (
                n[2].as_str().unwrap_or_default().to_owned(),
                n[1].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Poll every 500 ms until `found` holds for what the topic received; the seconds it took.
async fn until_sent(
    stack: &Stack,
    topic_arn: &str,
    started: Instant,
    limit: Duration,
    found: impl Fn(&[(String, String)]) -> bool,
) -> f64 {
    loop {
        let messages = sent(stack, topic_arn).await;
        if found(&messages) {
            return started.elapsed().as_secs_f64();
        }
        assert!(
            started.elapsed() < limit,
            "nothing matching arrived at {topic_arn} within {limit:?}; received: {messages:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The proof of the issue: the AMP target goes through amp-local into the real Prometheus
/// and Alertmanager, whose SNS receiver publishes to moto. Latency raised with the fault-delay
/// header fires the alert and its message (naming the alert and the service) reaches the
/// topic; once the delay stops, the resolved message arrives.
///
/// The test's threshold is 100 ms with a 250 ms delay, not the recipe's 5 ms: on two CPUs
/// shared with builds, Envoy's own p99 without any delay is sometimes above 5 ms, which would
/// fire the alert before the delay and prove nothing. Intervals are short (scrape 1 s, rate
/// window 10 s, evaluation 2 s, `for` 6 s, group wait 1 s); the demo uses the recipe's values.
#[tokio::test(flavor = "multi_thread")]
async fn latency_raised_with_the_fault_delay_fires_the_alert_into_sns_and_resolves() {
    let stack = stack();
    let (input, _agent) = ampkit_e2e::mesh_workspace(&stack, "sns-alert");
    let _baseline = traffic(&stack, 150, None);

    let topic_name = unique_name("grafana-e2e");
    let run = sns_alert(&input)
        .args(["--topic-name", &topic_name, "--email", "oncall@example.com"])
        .args(["--threshold-ms", "100", "--for", "6s", "--interval", "2s"])
        .args(["--rate-window", "10s", "--group-wait", "1s"])
        .args(["--group-interval", "2s", "--repeat-interval", "1h"])
        .run();
    run.expect_code(0);
    let doc = run.doc();
    let topic_arn = doc["alerting"]["topicArn"].as_str().unwrap().to_owned();

    // The rule sees the undelayed traffic (the query has a value per service) and does not
    // fire on it.
    let wait = tool("promql")
        .args([
            "wait",
            "count(histogram_quantile(0.99, sum by (le, service) (rate(envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix!=\"admin\"}[10s])))) > 0",
            "--timeout",
            "60s",
        ])
        .stdin_doc(&doc)
        .run();
    wait.expect_code(0);
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        sent(&stack, &topic_arn).await.is_empty(),
        "a notification before any delay: {:#?}",
        sent(&stack, &topic_arn).await
    );

    // The delay starts: p99 rises above the threshold.
    let rise = Instant::now();
    let delayed = traffic(&stack, 30, Some(250));
    let firing = until_sent(&stack, &topic_arn, rise, Duration::from_secs(90), |m| {
        m.iter().any(|(subject, _)| subject.starts_with("[FIRING]"))
    })
    .await;
    let messages = sent(&stack, &topic_arn).await;
    let (subject, body) = messages
        .iter()
        .find(|(s, _)| s.starts_with("[FIRING]"))
        .unwrap();
    assert!(subject.contains("DownstreamLatencyP99High"), "{subject}");
    assert!(
        subject.ends_with(" jazz") || subject.ends_with(" dj"),
        "the subject names the service: {subject}"
    );
    assert!(subject.len() <= 100 && subject.is_ascii(), "{subject}");
    assert!(body.contains("DownstreamLatencyP99High"), "{body}");
    assert!(body.contains("service = "), "{body}");
    assert!(
        body.contains("DownstreamLatencyP99High of "),
        "the summary: {body}"
    );
    eprintln!("latency rise to the FIRING message at the topic: {firing:.1} s ({subject})");
    // for (6 s) + two evaluations (4 s) + group wait (1 s), plus what comes before the rule
    // can see it: Envoy flushes histograms every 5 s, a 1 s scrape, a 1 s remote-write batch.
    assert!(
        firing < 45.0,
        "{firing:.1} s from latency rise to the message"
    );

    // The delay stops; the undelayed traffic goes on: the resolved message arrives.
    drop(delayed);
    let stop = Instant::now();
    let resolved = until_sent(&stack, &topic_arn, stop, Duration::from_secs(90), |m| {
        m.iter()
            .any(|(subject, _)| subject.starts_with("[RESOLVED]"))
    })
    .await;
    eprintln!("delay stop to the RESOLVED message at the topic: {resolved:.1} s");
}

fn grafana_doc(fixture: &GrafanaFixture) -> Value {
    json!({
        "grafana": {"url": fixture.url, "datasourceUid": "ampkit-ws-1", "version": "x"},
        "other": {"kept": true}
    })
}

fn sns_alert_grafana(doc: &Value, args: &[&str]) -> ampkit_e2e::Run {
    let token = mint_token(11);
    tokio::task::block_in_place(|| {
        let mut invocation = tool("sns-alert").env("GRAFANA_TOKEN", &token);
        if !args.contains(&"--target") {
            invocation = invocation.args(["--target", "grafana"]);
        }
        invocation.args(args).stdin_doc(doc).run()
    })
}

const OUR_MATCHERS: &str =
    r#"[["managed_by","=","ampkit"],["alertname","=","DownstreamLatencyP99High"]]"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_target_adds_contact_point_route_and_rule_keeping_the_tree() {
    let stack = stack();
    for version in ["10.4.1", "12.0.2", "13.0.0"] {
        let mut fixture = GrafanaFixture::start(version).await;
        fixture.seed_route("team-pager", json!([["team", "=", "payments"]]));
        fixture.expect(&[
            "GET /api/health",
            "POST /api/folders",
            "POST /api/v1/provisioning/contact-points",
            "GET /api/v1/provisioning/policies",
            "PUT /api/v1/provisioning/policies",
            "POST /api/v1/provisioning/alert-rules",
            "PUT /api/v1/provisioning/folder/ampkit-service-mesh/rule-groups/ampkit-downstream-latency",
        ]);
        let input = grafana_doc(&fixture);
        let topic_name = unique_name("grafana-cp");
        let args = ["--topic-name", topic_name.as_str(), "--interval", "30s"];
        let run = sns_alert_grafana(&input, &args);
        run.expect_code(0);
        let doc = run.doc();
        assert_eq!(doc["other"], json!({"kept": true}));
        assert_eq!(doc["grafana"], input["grafana"]);
        assert_eq!(
            ledger_kinds(&doc),
            [
                "sns-topic",
                "grafana-folder",
                "grafana-contact-point",
                "grafana-notification-route",
                "grafana-alert-rule"
            ],
            "{version}"
        );
        for entry in doc["resources"].as_array().unwrap()[1..].iter() {
            assert_eq!(entry["details"]["grafanaUrl"], fixture.url.as_str());
        }
        let topic_arn = doc["alerting"]["topicArn"].as_str().unwrap().to_owned();
        assert!(moto_topic(&stack, &topic_arn).await.is_some());
        let section = &doc["alerting"]["grafana"];
        assert_eq!(section["contactPointName"], "ampkit-sns");
        assert_eq!(section["folderUid"], "ampkit-service-mesh");
        assert_eq!(section["ruleUid"], "ampkit-downstreamlatencyp99high");
        assert_eq!(section["route"]["receiver"], "ampkit-sns");

        // The contact point Grafana stored: Grafana's own SNS settings, locked to the API.
        let cp = fixture
            .contact_points()
            .into_iter()
            .find(|c| c["name"] == "ampkit-sns")
            .expect("the contact point");
        assert_eq!(cp["type"], "sns");
        assert_eq!(cp["settings"]["topic_arn"], topic_arn.as_str());
        assert_eq!(cp["settings"]["sigv4"], json!({"region": stack.region}));
        assert!(
            cp["settings"]["subject"]
                .as_str()
                .unwrap()
                .contains("reReplaceAll")
        );
        assert_eq!(cp["provenance"], "api");

        // The tree: the default receiver and the route someone made are still there; ours is
        // first, matching only our alert.
        let (tree, provenance) = fixture.policy_tree();
        assert_eq!(tree["receiver"], "grafana-default-email");
        let routes = tree["routes"].as_array().unwrap();
        assert_eq!(routes.len(), 2, "{tree:#}");
        assert_eq!(routes[0]["receiver"], "ampkit-sns");
        assert_eq!(
            routes[0]["object_matchers"],
            serde_json::from_str::<Value>(OUR_MATCHERS).unwrap()
        );
        assert_eq!(routes[1]["receiver"], "team-pager");
        // People edit this tree in the UI: adding our route did not lock it.
        assert_eq!(provenance, "");

        // The rule: query, reduce, threshold; in its group at the interval asked.
        let rules = fixture.alert_rules();
        assert_eq!(rules.len(), 1);
        let rule = &rules[0];
        assert_eq!(rule["condition"], "C");
        assert_eq!(rule["for"], "1m");
        assert_eq!(rule["labels"]["managed_by"], "ampkit");
        assert_eq!(rule["data"][0]["datasourceUid"], "ampkit-ws-1");
        assert!(
            rule["data"][0]["model"]["expr"]
                .as_str()
                .unwrap()
                .starts_with("histogram_quantile(0.99")
        );
        assert_eq!(rule["data"][1]["model"]["type"], "reduce");
        assert_eq!(
            rule["data"][2]["model"]["conditions"][0]["evaluator"],
            json!({"type": "gt", "params": [5.0]})
        );
        assert_eq!(rule["provenance"], "api");
        assert_eq!(
            fixture.rule_group_interval("ampkit-service-mesh", "ampkit-downstream-latency"),
            Some(30)
        );

        // Again: nothing new, the tree not doubled.
        let again = sns_alert_grafana(&doc, &args);
        again.expect_code(0);
        assert_eq!(again.doc()["resources"], doc["resources"]);
        assert_eq!(
            fixture.policy_tree().0["routes"].as_array().unwrap().len(),
            2
        );
        assert_eq!(fixture.alert_rules().len(), 1);

        // A change with --editable to a rule locked to the API is refused, with the reason.
        let mut changed = args.to_vec();
        changed.extend(["--threshold-ms", "8", "--editable"]);
        let refused = sns_alert_grafana(&doc, &changed);
        refused.expect_code(2);
        let err = refused.error();
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("provenance"),
            "{version}: {err}"
        );
        assert!(
            err["error"]["hint"]
                .as_str()
                .unwrap()
                .contains("without --editable")
        );
        // Without it, the change goes through, in place.
        changed.pop();
        let updated = sns_alert_grafana(&doc, &changed);
        updated.expect_code(0);
        assert_eq!(
            fixture.alert_rules()[0]["data"][2]["model"]["conditions"][0]["evaluator"]["params"],
            json!([8.0])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editable_and_amg_shaped_contact_points_and_grafana_bad_input() {
    let stack = stack();
    let mut fixture = GrafanaFixture::start("10.4.1").await;
    fixture.sns_flavour(SnsFlavour::Amg);
    fixture.seed_folder("ampkit-service-mesh", "Service mesh");
    fixture.expect(&["POST /api/v1/provisioning/contact-points"]);
    let input = grafana_doc(&fixture);
    // Bad input, refused before anything is made.
    let mut names = vec!["alerts".to_owned()];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--topic-name", "alerts"],
            "does not start with `grafana`",
        ),
        (vec!["--interval", "15s"], "multiple of 10s"),
        // No workspace here: the account is the caller's (STS).
        (
            vec![
                "--topic-arn",
                "arn:aws:sns:eu-west-1:210987654321:grafana-x",
            ],
            "account 210987654321",
        ),
        (
            vec!["--datasource-uid", "", "--grafana-url", ""],
            "no Grafana",
        ),
    ];
    for (args, fragment) in cases {
        let name = unique_name("grafana-never");
        let mut args = args;
        if !matches!(args[0], "--topic-name" | "--topic-arn") {
            args.extend(["--topic-name", &name]);
            names.push(name.clone());
        }
        let run = sns_alert_grafana(&input, &args);
        run.expect_code(2);
        let err = run.error();
        assert!(
            err["error"]["message"].as_str().unwrap().contains(fragment),
            "{args:?}: {err}"
        );
    }
    let no_grafana = sns_alert_grafana(&json!({}), &[]);
    no_grafana.expect_usage_error("no Grafana");
    assert_no_topic_named(&stack, &names).await;

    // Grafana's own SNS settings against AMG's notifier: refused by Grafana (exit 2), with the
    // way out; the topic made before is in the ledger.
    let topic_name = unique_name("grafana-amg");
    let run = sns_alert_grafana(&input, &["--topic-name", &topic_name]);
    run.expect_code(2);
    assert!(
        run.error()["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("--grafana-sns-shape")
    );
    assert_eq!(ledger_kinds(&run.doc()), ["sns-topic"]);

    // AMG's shape, editable, with a topic named freely under a customer-managed role.
    let topic_name = unique_name("alerts-amg");
    let run = sns_alert_grafana(
        &input,
        &[
            "--topic-name",
            &topic_name,
            "--grafana-sns-shape",
            "amg",
            "--grafana-permissions",
            "customer-managed",
            "--editable",
        ],
    );
    run.expect_code(0);
    let doc = run.doc();
    // The folder existed: not ours to ledger.
    assert_eq!(
        ledger_kinds(&doc),
        [
            "sns-topic",
            "grafana-contact-point",
            "grafana-notification-route",
            "grafana-alert-rule"
        ]
    );
    let cp = fixture
        .contact_points()
        .into_iter()
        .find(|c| c["name"] == "ampkit-sns")
        .unwrap();
    assert_eq!(cp["settings"]["topic"], doc["alerting"]["topicArn"]);
    assert_eq!(cp["settings"]["authProvider"], "default");
    assert!(cp["settings"].get("topic_arn").is_none());
    assert_eq!(cp["provenance"], "");
    assert_eq!(fixture.policy_tree().1, "");
    assert_eq!(fixture.alert_rules()[0]["provenance"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_targets_in_one_run() {
    let mut fixture = GrafanaFixture::start("12.0.2").await;
    fixture.expect(&[
        "POST /api/v1/provisioning/contact-points",
        "POST /api/v1/provisioning/alert-rules",
    ]);
    let mut input = tokio::task::block_in_place(|| workspace_doc("sns-alert-both"));
    input["grafana"] = grafana_doc(&fixture)["grafana"].clone();
    let topic_name = unique_name("grafana-both");
    let run = sns_alert_grafana(&input, &["--topic-name", &topic_name, "--target", "both"]);
    run.expect_code(0);
    let doc = run.doc();
    assert_eq!(
        ledger_kinds(&json!({"resources": new_ledger_entries(&input, &doc)})),
        [
            "sns-topic",
            "sns-topic-policy-statement",
            "amp-rule-groups-namespace",
            "amp-alert-manager-definition",
            "grafana-folder",
            "grafana-contact-point",
            "grafana-notification-route",
            "grafana-alert-rule"
        ]
    );
    assert_eq!(doc["alerting"]["amp"]["alertManager"], "ACTIVE");
    assert_eq!(
        doc["alerting"]["grafana"]["ruleUid"],
        "ampkit-downstreamlatencyp99high"
    );
}

#[tokio::test]
async fn an_alert_manager_definition_someone_made_is_merged_into_not_replaced() {
    let stack = stack();
    let input = workspace_doc("sns-alert-merge");
    let ws = input["workspace"]["workspaceId"]
        .as_str()
        .unwrap()
        .to_owned();
    let amp = amp_sdk(&stack.amp_url).await;
    let theirs = format!(
        "alertmanager_config: |\n  route:\n    receiver: team\n  receivers:\n  - name: team\n    sns_configs:\n    - topic_arn: arn:aws:sns:{0}:123456789012:team-pager\n      sigv4:\n        region: {0}\n",
        stack.region
    );
    amp.create_alert_manager_definition()
        .workspace_id(&ws)
        .data(aws_sdk_amp::primitives::Blob::new(theirs))
        .send()
        .await
        .expect("CreateAlertManagerDefinition");
    let run = sns_alert(&input)
        .args(["--topic-name", &unique_name("grafana-merge")])
        .run();
    run.expect_code(0);
    let doc = run.doc();
    // The definition was there: it stays theirs, and what we merged into it is ledgered as
    // such, so that teardown takes only that back out.
    let entries = new_ledger_entries(&input, &doc);
    assert_eq!(
        ledger_kinds(&json!({"resources": entries})),
        [
            "sns-topic",
            "sns-topic-policy-statement",
            "amp-rule-groups-namespace",
            "amp-alert-manager-definition"
        ]
    );
    assert_eq!(entries[3]["details"]["merged"], true);
    assert_eq!(entries[3]["details"]["receiver"], "ampkit-sns");
    let stored = amp
        .describe_alert_manager_definition()
        .workspace_id(&ws)
        .send()
        .await
        .unwrap();
    let stored = String::from_utf8(
        stored
            .alert_manager_definition()
            .unwrap()
            .data()
            .as_ref()
            .to_vec(),
    )
    .unwrap();
    let def = ampkit::amp::alerting::validate_definition(&stored).expect("AMP takes it");
    use ampkit::amp::alerting::get;
    let names: Vec<&str> = get(&def.config, "receivers")
        .and_then(|r| r.as_sequence())
        .unwrap()
        .iter()
        .filter_map(|r| r.get("name").and_then(|n| n.as_str()))
        .collect();
    assert_eq!(names, ["team", "ampkit-sns"], "{stored}");
    let route = get(&def.config, "route")
        .and_then(|r| r.as_mapping())
        .unwrap();
    assert_eq!(
        get(route, "receiver").and_then(|r| r.as_str()),
        Some("team")
    );
    let first = &get(route, "routes").and_then(|r| r.as_sequence()).unwrap()[0];
    assert_eq!(
        first.get("receiver").and_then(|r| r.as_str()),
        Some("ampkit-sns")
    );
    assert!(
        stored.contains(doc["alerting"]["topicArn"].as_str().unwrap()),
        "{stored}"
    );
    assert!(stored.contains("team-pager"), "{stored}");

    // Teardown takes out exactly what we merged in: the definition, their receiver and their
    // route stay; ours, our route and our template are gone.
    // (Only sns-alert's entries: the workspace itself stays for the check.)
    let mut sns_only = doc.clone();
    sns_only["resources"] = json!(new_ledger_entries(&input, &doc));
    let down = tool("teardown").stdin_doc(&sns_only).run();
    down.expect_code(0);
    let left = amp
        .describe_alert_manager_definition()
        .workspace_id(&ws)
        .send()
        .await
        .expect("their definition is still there");
    let left = String::from_utf8(
        left.alert_manager_definition()
            .unwrap()
            .data()
            .as_ref()
            .to_vec(),
    )
    .unwrap();
    let def = ampkit::amp::alerting::validate_definition(&left).expect("AMP takes it");
    assert!(left.contains("team-pager"), "{left}");
    assert!(!left.contains("ampkit"), "{left}");
    assert!(def.templates.is_empty(), "{left}");
}

/// What teardown calls for the Grafana objects, driven by the ledger entries sns-alert wrote:
/// the route first (the contact point cannot go while a route uses it), then the rule and the
/// contact point; each a second time is "absent"; the route someone made stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_objects_are_removed_by_the_lib_calls_teardown_makes() {
    use ampkit::grafana::alerting::RouteDetails;
    use ampkit::grafana::{Grafana, Token};
    use ampkit::ledger::Removal;
    let fixture = GrafanaFixture::start("12.0.2").await;
    fixture.seed_route("team-pager", json!([["team", "=", "payments"]]));
    let run = sns_alert_grafana(
        &grafana_doc(&fixture),
        &["--topic-name", &unique_name("grafana-rm")],
    );
    run.expect_code(0);
    let doc = run.doc();
    let entry = |kind: &str| {
        doc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == kind)
            .cloned()
            .unwrap()
    };
    let (route, rule, cp) = (
        entry("grafana-notification-route"),
        entry("grafana-alert-rule"),
        entry("grafana-contact-point"),
    );
    let grafana = Grafana::connect(
        route["details"]["grafanaUrl"].as_str().unwrap(),
        Token::new(mint_token(11)),
    )
    .await
    .unwrap();
    let cp_uid = cp["id"].as_str().unwrap();
    let refused = grafana.delete_contact_point(cp_uid).await.unwrap_err();
    assert!(refused.hint.unwrap().contains("remove the route first"));

    let details: RouteDetails = serde_json::from_value(route["details"].clone()).unwrap();
    let spec = details.route().unwrap();
    assert_eq!(grafana.remove_route(&spec).await.unwrap(), Removal::Deleted);
    assert_eq!(grafana.remove_route(&spec).await.unwrap(), Removal::Absent);
    let (tree, provenance) = fixture.policy_tree();
    assert_eq!(
        tree["routes"],
        json!([{"receiver": "team-pager", "object_matchers": [["team", "=", "payments"]]}])
    );
    assert_eq!(provenance, "", "removing our route did not lock the tree");

    // On a tree a provisioning tool locked, ours goes in and out without the header (with it,
    // Grafana would refuse the change of provenance).
    fixture.lock_policy_tree();
    let again = sns_alert_grafana(
        &doc,
        &[
            "--topic-name",
            doc["alerting"]["topicArn"]
                .as_str()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap(),
        ],
    );
    again.expect_code(0);
    assert_eq!(
        fixture.policy_tree().0["routes"].as_array().unwrap().len(),
        2
    );
    assert_eq!(grafana.remove_route(&spec).await.unwrap(), Removal::Deleted);
    assert_eq!(fixture.policy_tree().1, "api");

    let rule_uid = rule["id"].as_str().unwrap();
    assert_eq!(
        grafana.delete_alert_rule(rule_uid).await.unwrap(),
        Removal::Deleted
    );
    assert_eq!(
        grafana.delete_alert_rule(rule_uid).await.unwrap(),
        Removal::Absent
    );
    assert!(fixture.alert_rules().is_empty());
    assert_eq!(
        grafana.delete_contact_point(cp_uid).await.unwrap(),
        Removal::Deleted
    );
    assert_eq!(
        grafana.delete_contact_point(cp_uid).await.unwrap(),
        Removal::Absent
    );
    assert!(!fixture.contact_points().iter().any(|c| c["uid"] == cp_uid));
}

/// Grafana failing half-way through a `--target both` run: exit 1, and the document lists
/// everything made before, in SNS, AMP and Grafana, so that teardown can remove it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_failing_half_way_is_exit_1_and_the_ledger_has_what_was_made() {
    let fixture = GrafanaFixture::start("10.4.1").await;
    fixture.fail("POST /api/v1/provisioning/alert-rules");
    let mut input = tokio::task::block_in_place(|| workspace_doc("sns-alert-gfail"));
    input["grafana"] = grafana_doc(&fixture)["grafana"].clone();
    let run = sns_alert_grafana(
        &input,
        &[
            "--topic-name",
            &unique_name("grafana-gfail"),
            "--target",
            "both",
        ],
    );
    run.expect_code(1);
    let err = run.error();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("database is locked"),
        "{err}"
    );
    let doc = run.doc();
    assert_eq!(
        ledger_kinds(&json!({"resources": new_ledger_entries(&input, &doc)})),
        [
            "sns-topic",
            "sns-topic-policy-statement",
            "amp-rule-groups-namespace",
            "amp-alert-manager-definition",
            "grafana-folder",
            "grafana-contact-point",
            "grafana-notification-route"
        ]
    );
    let section = &doc["alerting"];
    assert_eq!(section["amp"]["alertManager"], "ACTIVE");
    assert_eq!(section["grafana"]["contactPointName"], "ampkit-sns");
    assert_eq!(section["grafana"]["ruleUid"], "");
}

/// On AMG the Grafana target works through a service account made for this run: created,
/// used for the contact point, route and rule, then deleted; no token is passed or printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_amg_the_grafana_target_uses_a_service_account_made_for_the_run() {
    let mut fixture = GrafanaFixture::start("10.4.1").await;
    fixture.expect(&[
        "POST /api/v1/provisioning/contact-points",
        "POST /api/v1/provisioning/alert-rules",
    ]);
    let host = fixture.url.trim_start_matches("http://").to_owned();
    let mut amg = ampkit_e2e::amg::AmgFixture::start("g-0123456789", &host).await;
    amg.expect(&[
        "GET /workspaces/g-0123456789",
        "POST /workspaces/g-0123456789/serviceaccounts",
        "DELETE /workspaces/g-0123456789/serviceaccounts/1",
    ]);
    let input = json!({"grafana": {"datasourceUid": "ampkit-ws-1"}, "other": {"kept": true}});
    let topic = unique_name("grafana-amg");
    let run = tokio::task::block_in_place(|| {
        tool("sns-alert")
            .env("AWS_ENDPOINT_URL_GRAFANA", &amg.url)
            .env_remove("GRAFANA_TOKEN")
            .args(["--target", "grafana", "--topic-name", &topic])
            .args([
                "--amg-workspace-id",
                "g-0123456789",
                "--grafana-url",
                &fixture.url,
            ])
            .stdin_doc(&input)
            .run()
    });
    run.expect_code(0);
    assert!(
        amg.accounts().is_empty(),
        "the run's service account is gone"
    );
    assert!(!run.stdout.contains("glsa_"));
    let doc = run.doc();
    assert_eq!(doc["other"], json!({"kept": true}));
    assert!(
        ledger_kinds(&doc).contains(&"grafana-contact-point".to_owned()),
        "{doc}"
    );
    assert!(!ledger_kinds(&doc).contains(&"grafana-service-account".to_owned()));
}

/// AMP goes down half-way: the topic and its statement are made in SNS, then every AMP call
/// from the namespace's creation on is refused. Exit 1, and the document lists what was made;
/// with AMP back, teardown removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amp_down_half_way_is_exit_1_with_the_ledger_and_teardown_clears_it() {
    let stack = stack();
    let input = tokio::task::block_in_place(|| workspace_doc("sns-alert-amp-down"));
    let amp = ampkit_e2e::proxy::Recorder::start(stack.amp_url.clone()).await;
    amp.go_down_at("POST /workspaces/");
    let topic = unique_name("grafana-amp-down");
    let run = tokio::task::block_in_place(|| {
        sns_alert(&input)
            .env("AWS_ENDPOINT_URL_AMP", &amp.url)
            .args(["--topic-name", &topic])
            .run()
    });
    run.expect_code(1);
    let message = run.error()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("namespace"), "{message}");
    let doc = run.doc();
    let made = new_ledger_entries(&input, &doc);
    assert_eq!(
        ledger_kinds(&json!({"resources": made})),
        ["sns-topic", "sns-topic-policy-statement"]
    );
    assert!(
        amp.calls()
            .iter()
            .any(|c| c.starts_with("POST /workspaces/")),
        "the namespace was asked for: {:?}",
        amp.calls()
    );
    // AMP is back (no proxy): teardown of what sns-alert made leaves nothing of it.
    let mut sns_only = doc.clone();
    sns_only["resources"] = json!(made);
    let down = tokio::task::block_in_place(|| tool("teardown").stdin_doc(&sns_only).run());
    down.expect_code(0);
    assert_eq!(down.doc()["resources"], json!([]));
    let arn = made[0]["id"].as_str().unwrap().to_owned();
    assert!(
        !ampkit_e2e::sns_topic_exists(&arn).await,
        "the topic is gone: {}",
        down.doc()["teardown"]
    );
}

/// The default alert of every mesh is one `promtool check rules` takes, whose expression
/// labels its series by `service` (Istio's `destination_service` copied), in milliseconds.
#[test]
fn every_meshs_default_alert_passes_promtool() {
    use ampkit::mesh::Mesh;
    use sns_alert::render::{AlertSpec, default_expr, rules_yaml};
    for mesh in [Mesh::Appmesh, Mesh::EnvoyGateway, Mesh::Consul, Mesh::Istio] {
        let query = default_expr(mesh, Duration::from_secs(60));
        let expected = if mesh == Mesh::Istio {
            "istio_request_duration_milliseconds_bucket{reporter=\"destination\"}"
        } else {
            "envoy_http_downstream_rq_time_bucket"
        };
        assert!(query.contains(expected), "{mesh}: {query}");
        let spec = AlertSpec {
            name: "DownstreamLatencyP99High".into(),
            query,
            threshold: 5.0,
            for_: Duration::from_secs(60),
            interval: Duration::from_secs(30),
            group: "ampkit".into(),
            severity: "warning".into(),
            labels: Vec::new(),
            annotations: Vec::new(),
        };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rules.yml");
        std::fs::write(&file, rules_yaml(&spec).unwrap()).unwrap();
        let checked = std::process::Command::new(local_bin("promtool"))
            .args(["check", "rules"])
            .arg(&file)
            .output()
            .expect("promtool runs");
        assert!(
            checked.status.success(),
            "{mesh}: promtool check rules: {}{}",
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr)
        );
    }
}
