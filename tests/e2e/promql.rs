//! promql against the local stack: real Envoy metrics, scraped and remote-written by a
//! Prometheus agent, queried through a workspace on amp-local (SigV4-signed) and compared with
//! what the Prometheus receiver itself answers for the same expression at the same time.
//! amp-local is part of every local stack: without it these tests fail, never pass unsigned.

use std::io::Write;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ampkit_e2e::runtime;
use ampkit_e2e::{Invocation, Run, stack, tool, unique_name, urlencode};
use serde_json::{Value, json};

/// POST a form to the receiver's API directly; the whole JSON answer, without the workspace
/// label (amp-local takes it out of its answers, so a comparison must too).
fn receiver(path: &str, form: &[(&str, String)]) -> Value {
    let url = format!("{}/api/v1/{path}", stack().prometheus_url);
    let mut answer = runtime().block_on(async {
        let response = reqwest::Client::new()
            .post(&url)
            .form(form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        response
            .json::<Value>()
            .await
            .expect("JSON from Prometheus")
    });
    without_workspace_label(&mut answer);
    answer
}

/// The label amp-local puts on every series of a workspace.
const WORKSPACE_LABEL: &str = "ampkit_workspace";

fn without_workspace_label(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove(WORKSPACE_LABEL);
            map.values_mut().for_each(without_workspace_label);
        }
        Value::Array(items) => {
            items.retain(|item| item != WORKSPACE_LABEL);
            items.iter_mut().for_each(without_workspace_label);
        }
        _ => {}
    }
}

/// Expressions are written as templates: `@@` marks where a selector ends. Through amp-local
/// they are sent without it (`ours`); to the receiver with this test's workspace matcher in
/// its place (`theirs`): the same expression restricted to the workspace's series, which is
/// what amp-local must answer.
fn ours(template: &str) -> String {
    template.replace("@@", "")
}

fn theirs(template: &str) -> String {
    template.replace("@@", &format!(", {}", workspace_matcher()))
}

/// `ampkit_workspace="<this file's workspace>"`.
fn workspace_matcher() -> String {
    let id = target()["workspace"]["workspaceId"]
        .as_str()
        .expect("workspace id")
        .to_owned();
    format!("{WORKSPACE_LABEL}=\"{id}\"")
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs_f64()
}

/// A time a little in the past, so that every sample up to it has arrived on both paths.
fn settled_time() -> f64 {
    (unix_now() - 10.0).floor()
}

fn http_get(url: &str) {
    runtime().block_on(async {
        let _ = reqwest::Client::new().get(url).send().await;
    });
}

const ENVOY_SELECTOR: &str =
    r#"envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="ingress_dj"@@}"#;

/// Once per test process: traffic through the mesh, an agent scraping Envoy into the
/// receiver (unless Envoy metrics are flowing already), and enough history to query.
fn metrics_flowing() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let stack = stack();
        for i in 0..30 {
            let path = ["/", "/jazz", "/metal"][i % 3];
            http_get(&format!("{}{path}", stack.envoy_url));
        }
        let present = |expr: String, at: f64| {
            let answer = receiver("query", &[("query", expr), ("time", at.to_string())]);
            answer["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        };
        if !present(theirs(&format!("sum({ENVOY_SELECTOR})")), unix_now()) {
            start_agent(&stack);
        }
        // Flowing means a rate can be taken at the settled time: two samples in the window
        // that the range test's `rate(...[10s])` uses, not just the first one.
        ampkit_e2e::wait_for(
            "Envoy metrics in the receiver",
            Duration::from_secs(90),
            || {
                present(
                    theirs(&format!("sum(rate({ENVOY_SELECTOR}[10s]))")),
                    settled_time(),
                )
                .then_some(())
            },
        );
    });
}

fn start_agent(stack: &ampkit_e2e::Stack) {
    let targets: String = ["dj", "jazz", "metal"]
        .iter()
        .zip(&stack.envoy_admin_urls)
        .map(|(service, url)| {
            let host = url.trim_start_matches("http://");
            format!("      - targets: ['{host}']\n        labels: {{service: {service}, namespace: ampkit-local}}\n")
        })
        .collect();
    // Into this file's workspace, through amp-local and its SigV4 check, as in AMP.
    let workspace = &target()["workspace"];
    let config = format!(
        "global:\n  scrape_interval: 2s\nscrape_configs:\n  - job_name: envoy\n    metrics_path: /stats/prometheus\n    static_configs:\n{targets}remote_write:\n  - url: {}\n    sigv4: {{region: {}}}\n    queue_config: {{batch_send_deadline: 1s}}\n",
        workspace["remoteWriteUrl"]
            .as_str()
            .expect("remoteWriteUrl"),
        workspace["region"].as_str().expect("region"),
    );
    let mut file = tempfile::Builder::new()
        .suffix(".yml")
        .tempfile()
        .expect("temp file");
    file.write_all(config.as_bytes())
        .expect("write agent config");
    let path = file.path().to_str().expect("utf-8 path").to_owned();
    let run = ampkit_e2e::local_stack(&["agent", &path], &[]);
    assert_eq!(run.code, 0, "local-stack agent failed:\n{}", run.stderr);
}

/// The document promql reads in these tests: a workspace on amp-local, from
/// `amp-workspace ensure`, so every query is SigV4-signed and checked.
fn target() -> Value {
    static TARGET: OnceLock<Value> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let alias = format!("promql-e2e-{}", std::process::id());
            let run = tool("amp-workspace")
                .args(["ensure", "--alias", &alias])
                .run();
            run.expect_code(0);
            let doc = run.doc();
            json!({"workspace": doc["workspace"]})
        })
        .clone()
}

fn promql<I, S>(args: I) -> Invocation
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    tool("promql").args(args).stdin_doc(&target())
}

fn query_section(run: &Run) -> Value {
    run.expect_code(0);
    run.doc()["query"].clone()
}

/// Expressions with every character that breaks query strings or shell quoting.
const SPECIAL_EXPRESSIONS: &[&str] = &[
    r#"sum by (envoy_http_conn_manager_prefix) (envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix=~"ingress_.*"@@}) + 0"#,
    r#"count({__name__=~"envoy_http_downstream_rq_(total|xx)", envoy_response_code_class!~"4|5"@@})"#,
    r#"label_replace(vector(1), "x", "a+b c&d=e%20f#g?h;i/j", "", "")"#,
    r#"label_replace(vector(2), "q", 'it\'s "quoted" {not a selector}', "", "")"#,
    "label_replace(vector(3), \"u\", \"ünïcødé ☃ 日本\", \"\", \"\")",
    "label_replace(vector(4), \"raw\", `C:\\path\\to =~ x`, \"\", \"\")",
    "sum(\n  envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix != \"no such\"@@}\n)  +  1",
];

#[test]
fn instant_queries_match_prometheus_for_every_special_character() {
    metrics_flowing();
    let at = settled_time();
    for template in SPECIAL_EXPRESSIONS {
        let expr = ours(template);
        let section = query_section(&promql(["query", &expr, "--time", &at.to_string()]).run());
        let direct = receiver(
            "query",
            &[("query", theirs(template)), ("time", at.to_string())],
        );
        assert_eq!(direct["status"], "success", "{expr}: {direct}");
        assert_eq!(section["expr"], expr);
        assert_eq!(section["kind"], "instant");
        assert_eq!(
            section["resultType"], direct["data"]["resultType"],
            "{expr}"
        );
        assert_eq!(section["result"], direct["data"]["result"], "{expr}");
        assert!(
            !section["result"].as_array().unwrap().is_empty(),
            "{expr}: empty result"
        );
    }
    // The label values made it through untouched.
    let section = query_section(
        &promql([
            "query",
            &ours(SPECIAL_EXPRESSIONS[2]),
            "--time",
            &at.to_string(),
        ])
        .run(),
    );
    assert_eq!(section["result"][0]["metric"]["x"], "a+b c&d=e%20f#g?h;i/j");
    let section = query_section(
        &promql([
            "query",
            &ours(SPECIAL_EXPRESSIONS[4]),
            "--time",
            &at.to_string(),
        ])
        .run(),
    );
    assert_eq!(section["result"][0]["metric"]["u"], "ünïcødé ☃ 日本");
}

#[test]
fn range_series_labels_and_values_match_prometheus() {
    metrics_flowing();
    let end = settled_time();
    let start = end - 60.0;
    let (s, e) = (start.to_string(), end.to_string());

    let template = format!("rate({ENVOY_SELECTOR}[10s])");
    let expr = ours(&template);
    let ours_range =
        query_section(&promql(["range", &expr, "--start", &s, "--end", &e, "--step", "2s"]).run());
    let theirs_range = receiver(
        "query_range",
        &[
            ("query", theirs(&template)),
            ("start", s.clone()),
            ("end", e.clone()),
            ("step", "2".into()),
        ],
    );
    assert_eq!(ours_range["kind"], "range");
    assert_eq!(ours_range["step"], "2s");
    assert_eq!(ours_range["resultType"], "matrix");
    assert_eq!(ours_range["result"], theirs_range["data"]["result"]);
    assert!(!ours_range["result"].as_array().unwrap().is_empty());

    let selector = ours(ENVOY_SELECTOR);
    let ours_series =
        query_section(&promql(["series", &selector, "--start", &s, "--end", &e]).run());
    let theirs_series = receiver(
        "series",
        &[
            ("match[]", theirs(ENVOY_SELECTOR)),
            ("start", s.clone()),
            ("end", e.clone()),
        ],
    );
    assert_eq!(ours_series["kind"], "series");
    assert_eq!(ours_series["result"], theirs_series["data"]);
    assert!(ours_series["result"][0]["envoy_http_conn_manager_prefix"] == "ingress_dj");

    let ours_labels =
        query_section(&promql(["labels", "--match", &selector, "--start", &s, "--end", &e]).run());
    let theirs_labels = receiver(
        "labels",
        &[
            ("match[]", theirs(ENVOY_SELECTOR)),
            ("start", s.clone()),
            ("end", e.clone()),
        ],
    );
    assert_eq!(ours_labels["result"], theirs_labels["data"]);
    assert!(
        ours_labels["result"]
            .as_array()
            .unwrap()
            .contains(&json!("envoy_http_conn_manager_prefix"))
    );

    let ours_values = query_section(
        &promql([
            "label-values",
            "envoy_http_conn_manager_prefix",
            "--start",
            &s,
            "--end",
            &e,
        ])
        .run(),
    );
    let url = format!(
        "{}/api/v1/label/envoy_http_conn_manager_prefix/values?start={s}&end={e}&match[]={}",
        stack().prometheus_url,
        urlencode(&format!("{{{}}}", workspace_matcher()))
    );
    let theirs_values: Value =
        runtime().block_on(async { reqwest::get(&url).await.unwrap().json().await.unwrap() });
    assert_eq!(ours_values["kind"], "label-values");
    assert_eq!(ours_values["result"], theirs_values["data"]);
    assert!(
        ours_values["result"]
            .as_array()
            .unwrap()
            .contains(&json!("ingress_jazz"))
    );

    // label values is a GET: its selector travels in the (signed) query string.
    let selector = r#"envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix=~"ingress_(dj|jazz)", x!="a b+c é&"}"#;
    let ours = query_section(
        &promql([
            "label-values",
            "envoy_http_conn_manager_prefix",
            "--match",
            selector,
            "--start",
            &s,
            "--end",
            &e,
        ])
        .run(),
    );
    assert_eq!(ours["result"], json!(["ingress_dj", "ingress_jazz"]));
}

#[test]
fn raw_prints_only_data_and_table_prints_columns() {
    metrics_flowing();
    let at = settled_time().to_string();
    let template = format!("sum by (envoy_http_conn_manager_prefix) ({ENVOY_SELECTOR})");
    let expr = ours(&template);
    let raw = promql(["query", &expr, "--time", &at, "--raw"]).run();
    raw.expect_code(0);
    let data: Value = serde_json::from_str(&raw.stdout).expect("--raw prints JSON");
    let theirs = receiver(
        "query",
        &[("query", theirs(&template)), ("time", at.clone())],
    );
    assert_eq!(data, theirs["data"]);

    let table = promql(["query", &expr, "--time", &at, "--format", "table"]).run();
    table.expect_code(0);
    let mut lines = table.stdout.lines();
    assert_eq!(
        lines
            .next()
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["envoy_http_conn_manager_prefix", "VALUE"])
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row[0], "ingress_dj");
    assert_eq!(
        row[1],
        theirs["data"]["result"][0]["value"][1].as_str().unwrap()
    );
}

#[test]
fn the_document_passes_through_with_the_query_section() {
    metrics_flowing();
    let mut doc = target();
    doc["resources"] = json!([{"type": "amp-workspace", "id": "ws-x", "tool": "amp-workspace"}]);
    doc["other"] = json!({"n": 1});
    let run = tool("promql")
        .args(["query", "scalar(vector(42))", "--time", "-1m"])
        .stdin_doc(&doc)
        .run();
    run.expect_code(0);
    let out = run.doc();
    assert_eq!(out["resources"], doc["resources"]);
    assert_eq!(out["other"], doc["other"]);
    assert_eq!(out["query"]["resultType"], "scalar");
    assert_eq!(out["query"]["result"][1], "42");
    // -1m resolved against the clock: about a minute ago, as RFC 3339.
    let time = out["query"]["time"].as_str().unwrap();
    assert!(time.ends_with('Z') && time.contains('T'), "{time}");
}

#[test]
fn wait_returns_once_the_expression_holds_and_fails_at_the_timeout() {
    metrics_flowing();
    let run = promql([
        "wait",
        &ours(&format!("sum({ENVOY_SELECTOR})")),
        "--compare",
        ">",
        "0",
        "--timeout",
        "30s",
    ])
    .run();
    let section = query_section(&run);
    assert_eq!(section["kind"], "wait");
    assert_eq!(section["compare"], json!({"op": ">", "value": 0.0}));
    let value: f64 = section["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(value > 0.0);

    let run = promql([
        "wait",
        "vector(1) > 5",
        "--timeout",
        "3s",
        "--interval",
        "500ms",
    ])
    .run();
    run.expect_code(1);
    let message = run.error()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("did not hold within 3s"), "{message}");

    let run = promql([
        "wait",
        "vector(1)",
        "--compare",
        "<",
        "-1",
        "--timeout",
        "2s",
        "--interval",
        "1s",
    ])
    .run();
    run.expect_code(1);
    assert!(
        run.error()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 value(s): 1")
    );
}

#[test]
fn malformed_promql_is_exit_2_with_prometheus_message_and_position() {
    metrics_flowing();
    for expr in [
        "sum(rate(envoy_http_downstream_rq_total[5m])",
        "up{job=\"x\"",
        "rate(up[5x])",
    ] {
        let run = promql(["query", expr]).run();
        run.expect_code(2);
        let error = run.error()["error"].clone();
        let theirs = receiver("query", &[("query", expr.to_string())]);
        let their_message = theirs["error"].as_str().unwrap();
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains(their_message),
            "{message} vs {their_message}"
        );
        assert!(
            error["hint"].as_str().unwrap().contains("column"),
            "{error}"
        );
    }
    // Also inside wait: bad PromQL does not wait for the timeout.
    promql(["wait", "sum(", "--timeout", "1m"])
        .run()
        .expect_code(2);
}

#[test]
fn bad_times_and_flags_are_usage_errors() {
    for args in [
        vec!["query", "up", "--time", "yesterday"],
        vec!["range", "up", "--start", "now", "--end", "-1h"],
        vec!["range", "up", "--step", "0s"],
        vec!["wait", "up", "--compare", "=>", "1"],
        vec!["query", "up", "--raw", "--format", "table"],
    ] {
        let run = tool("promql")
            .args(&args)
            .args(["--url", "http://127.0.0.1:9", "--no-sign"])
            .run();
        run.expect_code(2);
        assert_eq!(run.error()["error"]["kind"], "usage", "{args:?}");
    }
    let run = tool("promql").args(["query", "up"]).run();
    run.expect_code(2);
    assert!(
        run.error()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no endpoint")
    );
}

#[test]
fn an_endpoint_that_is_down_or_hangs_is_exit_1_within_the_timeout() {
    // Nothing listens on port 9 (discard) here: refused at once.
    let run = tool("promql")
        .args(["query", "up", "--url", "http://127.0.0.1:9", "--no-sign"])
        .run();
    run.expect_code(1);
    let message = run.error()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("could not connect"), "{message}");

    // A server that accepts and never answers: the timeout ends it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let conn = listener.accept();
        std::thread::sleep(Duration::from_secs(5));
        drop(conn);
    });
    let run = tool("promql")
        .args(["query", "up", "--url", &url, "--no-sign", "--timeout", "1s"])
        .run();
    run.expect_code(1);
    let message = run.error()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("timed out"), "{message}");
    let _ = held.join();
}

#[test]
fn workspace_errors_unknown_id_and_bad_signature() {
    let amp_url = stack().amp_url;
    let run = tool("promql")
        .args([
            "query",
            "up",
            "--workspace-id",
            "ws-00000000-0000-0000-0000-000000000000",
        ])
        .env("AWS_ENDPOINT_URL_AMP", &amp_url)
        .run();
    run.expect_code(3);
    assert_eq!(run.error()["error"]["kind"], "not-found");

    let doc = target();
    let run = tool("promql")
        .args(["query", "vector(1)"])
        .env("AWS_SECRET_ACCESS_KEY", unique_name("wrong-secret"))
        .stdin_doc(&doc)
        .run();
    run.expect_code(1);
    let error = run.error()["error"].clone();
    assert!(
        error["message"].as_str().unwrap().contains("403"),
        "{error}"
    );
    assert!(
        error["hint"].as_str().unwrap().contains("credentials"),
        "{error}"
    );

    // Unsigned against a workspace: refused, not answered.
    let run = tool("promql")
        .args(["query", "vector(1)", "--no-sign"])
        .stdin_doc(&doc)
        .run();
    run.expect_code(1);
}
