//! render-agent-config as a process: every flavor's files and the `agent` section, promtool on
//! what Prometheus reads, bad input, and — in the local stack — a real Prometheus agent
//! running the prometheus-agent output until Envoy's metrics are queryable in the workspace.
//!
//! The stack has one agent slot: every assertion that starts the agent lives in ONE test
//! (`the_prometheus_agent_output_ships_envoy_metrics_to_the_workspace`); no other test in
//! the repository may restart it.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ampkit_e2e::{local_stack, stack, tool, unique_name};
use render_agent_config::grafana_agent::prometheus_configs_in_manifests;
use serde_json::{Value, json};

fn workspace_doc() -> Value {
    json!({"workspace": {
        "workspaceId": "ws-render",
        "arn": "arn:aws:aps:eu-west-1:123456789012:workspace/ws-render",
        "region": "eu-west-1",
        "remoteWriteUrl": "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-render/api/v1/remote_write"
    }})
}

fn promtool_check(path: &Path, agent: bool, syntax_only: bool) {
    let promtool = ampkit_e2e::amp_local::local_bin("promtool");
    assert!(
        promtool.exists(),
        "{} is missing: run scripts/setup (or set AMPKIT_HOME)",
        promtool.display()
    );
    let mut cmd = Command::new(promtool);
    cmd.args(["check", "config"]);
    if agent {
        cmd.arg("--agent");
    }
    if syntax_only {
        cmd.arg("--syntax-only");
    }
    let out = cmd.arg(path).output().unwrap();
    assert!(
        out.status.success(),
        "promtool rejected {}:\n{}\n{}{}",
        path.display(),
        std::fs::read_to_string(path).unwrap_or_default(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn section_files(doc: &Value) -> Vec<String> {
    doc["agent"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_flavor_writes_its_files_and_the_agent_section() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().display().to_string();
    let cases = [
        ("prometheus-agent", "yaml", vec!["prometheus-agent.yml"]),
        ("grafana-agent", "yaml", vec!["grafana-agent.yaml"]),
        ("grafana-agent", "json", vec!["grafana-agent.json"]),
        ("alloy", "yaml", vec!["alloy.yaml", "config.alloy"]),
        (
            "managed-scraper",
            "yaml",
            vec!["managed-scraper.yml", "scraper-rbac.yaml"],
        ),
        (
            "managed-scraper",
            "json",
            vec!["managed-scraper.json", "scraper-rbac.json"],
        ),
    ];
    for (flavor, format, names) in cases {
        let run = tool("render-agent-config")
            .args(["--flavor", flavor, "--format", format, "--out", &dir])
            .stdin_doc(&json!({"workspace": workspace_doc()["workspace"], "other": {"kept": true}}))
            .run();
        run.expect_code(0);
        let doc = run.doc();
        assert_eq!(
            doc["other"],
            json!({"kept": true}),
            "keys of others pass through"
        );
        assert_eq!(doc["agent"]["flavor"], flavor);
        assert_eq!(doc["agent"]["format"], format);
        let files = section_files(&doc);
        let expected: Vec<String> = names
            .iter()
            .map(|n| out.path().join(n).display().to_string())
            .collect();
        assert_eq!(files, expected);
        for file in &files {
            assert!(
                std::fs::metadata(file).unwrap().len() > 0,
                "{file} is empty"
            );
        }
        match flavor {
            "prometheus-agent" => {
                assert_eq!(doc["agent"]["sigv4Region"], "eu-west-1");
                promtool_check(Path::new(&files[0]), true, false);
            }
            "grafana-agent" => {
                // The Prometheus-compatible part of each ConfigMap's agent file, checked as such.
                let configs =
                    prometheus_configs_in_manifests(&std::fs::read_to_string(&files[0]).unwrap())
                        .unwrap();
                assert_eq!(configs.len(), 2);
                for (i, config) in configs.iter().enumerate() {
                    let path = out.path().join(format!("extracted-{format}-{i}.yml"));
                    std::fs::write(&path, serde_json::to_string(config).unwrap()).unwrap();
                    // In-cluster token and CA paths exist only in a pod: syntax only.
                    promtool_check(&path, false, true);
                }
            }
            "managed-scraper" if format == "yaml" => {
                promtool_check(Path::new(&files[0]), false, false)
            }
            _ => {}
        }
    }
}

#[test]
fn stdout_prints_only_the_main_file() {
    let run = tool("render-agent-config")
        .args([
            "--flavor",
            "prometheus-agent",
            "--stdout",
            "--target",
            "127.0.0.1:9901,service=dj",
        ])
        .stdin_doc(&workspace_doc())
        .run();
    run.expect_code(0);
    assert!(run.stdout.starts_with("global:"), "{}", run.stdout);
    assert!(
        serde_json::from_str::<Value>(&run.stdout).is_err(),
        "stdout must not be the document"
    );
    assert!(run.stdout.contains("- 127.0.0.1:9901"), "{}", run.stdout);
}

#[test]
fn bad_input_is_exit_2_and_the_document_passes_through() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().display().to_string();
    let no_source = tool("render-agent-config")
        .args(["--flavor", "prometheus-agent", "--out", &dir])
        .stdin_doc(&json!({"note": 1}))
        .run();
    no_source.expect_code(2);
    let message = no_source.error()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("--remote-write-url") && message.contains("workspace"),
        "{message}"
    );
    assert_eq!(no_source.doc(), json!({"note": 1}));

    for target in [
        "127.0.0.1",
        "127.0.0.1:99999",
        "127.0.0.1:9901,service",
        "127.0.0.1:9901,0bad=x",
    ] {
        let run = tool("render-agent-config")
            .args([
                "--flavor",
                "prometheus-agent",
                "--out",
                &dir,
                "--target",
                target,
            ])
            .stdin_doc(&workspace_doc())
            .run();
        run.expect_code(2);
        assert!(
            run.error()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(target)
        );
    }
    let label = tool("render-agent-config")
        .args([
            "--flavor",
            "alloy",
            "--out",
            &dir,
            "--external-label",
            "no-equals",
        ])
        .stdin_doc(&workspace_doc())
        .run();
    label.expect_code(2);
    assert!(
        std::fs::read_dir(out.path()).unwrap().next().is_none(),
        "nothing is written on bad input"
    );
}

/// `host:port` of an admin URL.
fn host_port(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

/// POST a PromQL instant query to amp-local, SigV4-signed.
async fn query(url: &str, expr: &str) -> Value {
    let client = ampkit::http::SignedClient::new(&ampkit::aws::AwsArgs::default(), "aps")
        .await
        .unwrap();
    let request = client
        .http()
        .post(url)
        .form(&[("query", expr)])
        .build()
        .unwrap();
    let response = client.execute(request).await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(
        status.is_success(),
        "query {expr} at {url}: {status} {body}"
    );
    body
}

#[test]
fn the_prometheus_agent_output_ships_envoy_metrics_to_the_workspace() {
    let s = stack();
    let run_id = unique_name("render");
    // The workspace on amp-local: SigV4 checked on every write.
    let ws = tool("amp-workspace")
        .args(["ensure", "--alias", &run_id])
        .stdin("{}")
        .run();
    ws.expect_code(0);
    let doc = ws.doc();
    let query_url = doc["workspace"]["queryUrl"]
        .as_str()
        .expect("workspace.queryUrl")
        .to_owned();
    let services = ["dj", "jazz", "metal"];
    assert_eq!(s.envoy_admin_urls.len(), 3);
    let mut args: Vec<String> = vec![
        "--flavor".into(),
        "prometheus-agent".into(),
        "--scrape-interval".into(),
        "5s".into(),
        "--batch-send-deadline".into(),
        "1s".into(),
        "--external-label".into(),
        format!("run={run_id}"),
    ];
    for (admin, service) in s.envoy_admin_urls.iter().zip(services) {
        args.push("--target".into());
        args.push(format!(
            "{},service={service},namespace=prod",
            host_port(admin)
        ));
    }
    let out = tempfile::tempdir().unwrap();
    args.extend(["--out".to_owned(), out.path().display().to_string()]);
    let rendered = tool("render-agent-config")
        .args(&args)
        .stdin_doc(&doc)
        .run();
    rendered.expect_code(0);
    let file = section_files(&rendered.doc())[0].clone();
    promtool_check(Path::new(&file), true, false);

    let started = local_stack(
        &["agent", &file],
        &[
            ("AWS_ACCESS_KEY_ID", s.access_key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", s.secret_access_key.as_str()),
            ("AWS_REGION", s.region.as_str()),
        ],
    );
    started.expect_code(0);

    // Bounded wait for the first samples (scrape 5 s + send 1 s); not a speed assertion.
    let expr = format!("count by (service, namespace) (envoy_server_live{{run=\"{run_id}\"}})");
    let rt = ampkit_e2e::runtime();
    let result = ampkit_e2e::poll_until(Duration::from_secs(90), Duration::from_secs(1), || {
        let body = rt.block_on(query(&query_url, &expr));
        let result = body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (result.len() == services.len()).then_some(result)
    })
    .unwrap_or_else(|| {
        rt.block_on(query(&query_url, &expr))["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    });
    let mut seen: Vec<(String, String)> = result
        .iter()
        .map(|r| {
            (
                r["metric"]["service"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                r["metric"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        services
            .iter()
            .map(|s| ((*s).to_owned(), "prod".to_owned()))
            .collect::<Vec<_>>(),
        "Envoy series by service and namespace in the workspace (query {expr})"
    );
    // And a counter that dashboard 11022 uses has real values under the same labels.
    let body = rt.block_on(query(
        &query_url,
        &format!("sum by (service) (envoy_cluster_upstream_cx_total{{run=\"{run_id}\",namespace=\"prod\"}})"),
    ));
    let services_with_clusters: Vec<&str> = body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["metric"]["service"].as_str())
        .collect();
    assert!(services_with_clusters.contains(&"dj"), "{body}");
}
