//! The mesh profiles past App Mesh's. Istio's telemetry comes from Istio's proxy, which cannot
//! run here, so its profile is tested on series of the documented shape written into a
//! workspace: the metric names, labels and units of Istio's reference ("Istio Standard
//! Metrics", istio.io/latest/docs/reference/config/metrics/: `istio_requests_total` counter,
//! `istio_request_duration_milliseconds` histogram in milliseconds, `istio_request_bytes` and
//! `istio_response_bytes` histograms; labels `reporter`, `source_workload`,
//! `source_workload_namespace`, `destination_workload`, `destination_service`,
//! `destination_service_name`, `destination_service_namespace`, `response_code`,
//! `request_protocol`). The dashboard the profile picks shows data in every panel, and the
//! profile's alert expression gives each service's p99 in milliseconds.

use ampkit_e2e::amp_local::{REMOTE_WRITE_HEADERS, Signer, now_ms, remote_write_body, series};
use ampkit_e2e::{new_workspace, runtime, stack, tool};
use serde_json::{Value, json};

/// Five minutes of Istio's standard metrics for jazz and metal called from dj, reported by
/// both sides, every 15 s: steady traffic, a few 503s, latencies around 4 ms (jazz) and
/// 12 ms (metal).
fn istio_series(now: i64) -> Vec<ampkit_e2e::amp_local::TimeSeries> {
    let at = |i: i64| now - 300_000 + i * 15_000;
    let mut all = Vec::new();
    for (service, slow) in [("jazz", false), ("metal", true)] {
        let fqdn = format!("{service}.prod.svc.cluster.local");
        for reporter in ["destination", "source"] {
            let labels = |extra: &[(&'static str, &str)]| -> Vec<(String, String)> {
                let mut l = vec![
                    ("reporter", reporter),
                    ("source_workload", "dj"),
                    ("source_workload_namespace", "prod"),
                    ("destination_workload", service),
                    ("destination_workload_namespace", "prod"),
                    ("destination_service", fqdn.as_str()),
                    ("destination_service_name", service),
                    ("destination_service_namespace", "prod"),
                    ("request_protocol", "http"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect::<Vec<_>>();
                l.extend(
                    extra
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
                );
                l
            };
            let push =
                |all: &mut Vec<_>, name: &str, extra: &[(&'static str, &str)], per_step: f64| {
                    let mut pairs = labels(extra);
                    pairs.push(("__name__".to_owned(), name.to_owned()));
                    let refs: Vec<(&str, &str)> = pairs
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    let samples: Vec<(f64, i64)> =
                        (0..=20).map(|i| (per_step * i as f64, at(i))).collect();
                    all.push(series(&refs, &samples));
                };
            push(
                &mut all,
                "istio_requests_total",
                &[("response_code", "200")],
                300.0,
            );
            push(
                &mut all,
                "istio_requests_total",
                &[("response_code", "503")],
                3.0,
            );
            // Bucket shares of 303 requests per step: most under 5 ms (jazz) or 25 ms (metal).
            let shares: [(&str, f64); 5] = if slow {
                [
                    ("1", 0.0),
                    ("5", 10.0),
                    ("10", 60.0),
                    ("25", 296.0),
                    ("+Inf", 303.0),
                ]
            } else {
                [
                    ("1", 20.0),
                    ("5", 290.0),
                    ("10", 300.0),
                    ("25", 303.0),
                    ("+Inf", 303.0),
                ]
            };
            for (le, count) in shares {
                push(
                    &mut all,
                    "istio_request_duration_milliseconds_bucket",
                    &[("le", le)],
                    count,
                );
            }
            let mean_ms = if slow { 12.0 } else { 4.0 };
            push(
                &mut all,
                "istio_request_duration_milliseconds_sum",
                &[],
                303.0 * mean_ms,
            );
            push(
                &mut all,
                "istio_request_duration_milliseconds_count",
                &[],
                303.0,
            );
            for (family, bytes) in [
                ("istio_request_bytes", 400.0),
                ("istio_response_bytes", 2200.0),
            ] {
                push(&mut all, &format!("{family}_sum"), &[], 303.0 * bytes);
                push(&mut all, &format!("{family}_count"), &[], 303.0);
                push(
                    &mut all,
                    &format!("{family}_bucket"),
                    &[("le", "+Inf")],
                    303.0,
                );
            }
        }
    }
    all
}

#[test]
fn istio_series_fill_every_panel_of_the_profiles_dashboard_and_its_alert_reads_milliseconds() {
    let stack = stack();
    let mut doc = new_workspace(&stack, "mesh-istio");
    let ws = doc["workspace"]["workspaceId"].as_str().unwrap().to_owned();
    let url = format!("{}/workspaces/{ws}/api/v1/remote_write", stack.amp_url);
    runtime().block_on(async {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let body = remote_write_body(istio_series(now_ms() / 1000 * 1000));
        let response = Signer::for_stack(&stack)
            .request(&http, "POST", &url, REMOTE_WRITE_HEADERS, body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{:?}",
            response.text().await
        );
    });
    doc["mesh"] = json!({"profile": "istio"});

    let dir = tempfile::tempdir().unwrap();
    let run = tool("grafana-import")
        .on(&stack)
        .args([
            "--render-only",
            "--verify",
            "--scrape-interval",
            "15s",
            "--from",
            "now-5m",
        ])
        .args(["--dashboard", "builtin:mesh", "--out"])
        .args([dir.path()])
        .stdin_doc(&doc)
        .run();
    run.expect_code(0);
    let dashboards = &run.doc()["grafana"]["dashboards"];
    assert_eq!(dashboards[0]["source"], "builtin:istio", "{dashboards}");
    let panels: Vec<(String, String, u64)> = dashboards[0]["verify"]["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] != "skipped")
        .map(|p| {
            (
                p["title"].as_str().unwrap().to_owned(),
                p["status"].as_str().unwrap().to_owned(),
                p["series"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert!(panels.len() >= 9, "{panels:?}");
    for (title, status, series) in &panels {
        assert_eq!(status, "ok", "`{title}`: {panels:?}");
        assert!(*series > 0, "`{title}`");
    }

    // The profile's alert expression: each service's p99, in milliseconds, labelled `service`.
    let expr = sns_alert::render::default_expr(
        ampkit::mesh::Mesh::Istio,
        std::time::Duration::from_secs(60),
    );
    let answer = tool("promql")
        .on(&stack)
        .args(["query", &expr])
        .stdin_doc(&doc)
        .run();
    answer.expect_code(0);
    let result: Vec<Value> = answer.doc()["query"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let p99 = |service: &str| -> f64 {
        result
            .iter()
            .find(|r| r["metric"]["service"] == format!("{service}.prod.svc.cluster.local"))
            .and_then(|r| r["value"][1].as_str())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no p99 for {service}: {result:?}"))
    };
    // Within the buckets written: jazz under 10 ms, metal between 10 and 25 ms.
    assert!(
        p99("jazz") > 5.0 && p99("jazz") <= 10.0,
        "jazz {}",
        p99("jazz")
    );
    assert!(
        p99("metal") > 10.0 && p99("metal") <= 25.0,
        "metal {}",
        p99("metal")
    );
}

// ---- Envoy Gateway and Consul: real Envoy in each mesh's shape --------------------------------

/// The notifications moto's SNS topic received, by subject.
fn sns_subjects(stack: &ampkit_e2e::Stack, topic_arn: &str) -> Vec<String> {
    let data: Value = runtime().block_on(async {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("{}/moto-api/data.json", stack.moto_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    data["sns"]["Topic"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["arn"] == topic_arn)
        .flat_map(|t| {
            t["sent_notifications"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|n| n[2].as_str().map(str::to_owned))
        .collect()
}

/// The recipe's chain on a stack whose three Envoys run in `mesh`'s shape (its listener and
/// cluster names, stat prefix `entry`, its stats tags, metrics served where that mesh serves
/// them): `scripts/recipe` with AMP's managed collector (amp-local's scraper, whose
/// Kubernetes discovery finds the pods as that mesh labels them), then every panel of
/// `builtin:envoy-global` verified against the workspace, then the alert reaching SNS in moto
/// once jazz is slowed. Short alert timings, as in the sns-alert tests: threshold 100 ms
/// (on two shared CPUs Envoy's own p99 is sometimes above the recipe's 5 ms), `for` 4 s.
/// The rate window is 30 s: the collector's samples reach the workspace up to its remote
/// write's 5 s batch deadline late (a scrape of Istio's few series fills no batch), so a 10 s
/// window at a 5 s scrape interval often holds one sample, the rate is absent, and a `for`
/// never completes: the alert was seen to stay pending for a minute that way.
fn the_recipes_chain_on_a_stack_in_the_shape_of(mesh: &str, offset: u16, entry: &str) {
    let istio = mesh == "istio";
    let started = std::time::Instant::now();
    let shaped = ampkit_e2e::ShapedStack::start(mesh, offset);
    eprintln!(
        "{mesh}: stack up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let stack = shaped.stack.clone();
    assert_eq!(stack.mesh, mesh, "`local-stack env` says the shape");

    // The metrics, where the mesh serves them, carry its names.
    let metrics = runtime().block_on(async {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(&stack.envoy_metrics_urls[0])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    if istio {
        // Istio's merged endpoint: of Envoy's own families only those Istio keeps by
        // default (its standard metrics appear with the first request).
        assert!(
            metrics.contains("# TYPE envoy_server_live"),
            "{mesh}: Istio's endpoint at {}: {metrics}",
            stack.envoy_metrics_urls[0]
        );
        assert!(
            !metrics.contains("envoy_http_downstream_rq_total"),
            "{mesh}: Istio keeps only a few of Envoy's families"
        );
    } else {
        assert!(
            metrics.contains(&format!("envoy_http_conn_manager_prefix=\"{entry}\"")),
            "{mesh}: dj's listener {entry} at {}",
            stack.envoy_metrics_urls[0]
        );
    }

    let name = ampkit_e2e::unique_name(&format!("shape-{mesh}"));
    runtime()
        .block_on(async { ampkit_e2e::create_eks_cluster(&stack.aws_config().await, &name).await });
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("state.json");
    let output = std::process::Command::new(ampkit_e2e::repo_root().join("scripts/recipe"))
        .envs(stack.exports.clone())
        .env_remove("AMPKIT_MESH")
        .env_remove("GRAFANA_URL")
        .env("AMPKIT_STATE", &state_file)
        .env("AMPKIT_OUT", dir.path().join("out"))
        .env("AMPKIT_ALIAS", &name)
        .env("AMPKIT_CLUSTER", &name)
        .env("AMPKIT_TOPIC", format!("grafana-{name}"))
        .env("AMPKIT_REQUESTS", "60")
        .env("AMPKIT_WAIT", "60s")
        // The profile's own dashboard: raw Envoy's, or Istio's standard metrics'.
        .env(
            "AMPKIT_DASHBOARDS",
            if istio {
                "builtin:mesh"
            } else {
                "builtin:envoy-global"
            },
        )
        .env(
            "AMPKIT_SNS_ALERT_ARGS",
            "--threshold-ms 100 --for 4s --interval 2s --rate-window 30s --group-wait 1s \
             --group-interval 2s --repeat-interval 1h",
        )
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{mesh}: the recipe failed:\n{stderr}"
    );
    let steps: Vec<&str> = stderr.lines().filter(|l| l.contains(" ms ")).collect();
    eprintln!("{mesh}: the recipe's steps:\n{}", steps.join("\n"));
    let alert_started = std::time::Instant::now();
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();

    // The profile came from the stack and is in the document; the tools after followed it.
    assert_eq!(doc["mesh"]["profile"], mesh, "{stderr}");
    assert_eq!(
        doc["traffic"]["envoy"]["entry"], entry,
        "{}",
        doc["traffic"]
    );
    assert_eq!(
        doc["traffic"]["envoy"]["match"], true,
        "Envoy counted what was sent, the scrapes of the metrics listener aside: {}",
        doc["traffic"]["envoy"]
    );

    // The scraper's relabelling of the mesh's pods gives the same service and namespace as
    // in App Mesh's shape.
    let requests = if istio {
        "istio_requests_total{reporter=\"destination\"}".to_owned()
    } else {
        format!("envoy_http_downstream_rq_total{{envoy_http_conn_manager_prefix=\"{entry}\"}}")
    };
    let labelled = tool("promql")
        .on(&stack)
        .args([
            "query",
            &format!("count by (service, namespace) ({requests})"),
        ])
        .stdin_doc(&doc)
        .run();
    labelled.expect_code(0);
    let mut found: Vec<(String, String)> = labelled.doc()["query"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"]["service"].as_str().unwrap_or("").to_owned(),
                r["metric"]["namespace"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    found.sort();
    let prod = |s: &str| (s.to_owned(), "prod".to_owned());
    assert_eq!(found, [prod("dj"), prod("jazz"), prod("metal")], "{mesh}");

    // Every panel of the built-in dashboard has data.
    let dashboard = &doc["grafana"]["dashboards"][0];
    let (source, at_least) = if istio {
        ("builtin:istio", 9)
    } else {
        ("builtin:envoy-global", 12)
    };
    assert_eq!(dashboard["source"], source, "{dashboard}");
    let panels: Vec<(String, String, u64)> = dashboard["verify"]["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] != "skipped")
        .map(|p| {
            (
                p["title"].as_str().unwrap().to_owned(),
                p["status"].as_str().unwrap().to_owned(),
                p["series"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert!(panels.len() >= at_least, "{mesh}: {panels:?}");
    for (title, status, series) in &panels {
        assert_eq!(status, "ok", "{mesh}: `{title}`: {panels:?}");
        assert!(*series > 0, "{mesh}: `{title}`");
    }

    // jazz slowed by 250 ms: the alert reaches the topic.
    let topic = doc["alerting"]["topicArn"].as_str().unwrap().to_owned();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _delayed = Kill(
        std::process::Command::new(ampkit_e2e::bin("envoy-traffic"))
            .args([
                "--url",
                &stack.envoy_url,
                "--paths",
                "/jazz",
                "--rate",
                "20",
            ])
            .args(["--duration", "60s"])
            .args(["--header", "x-envoy-fault-delay-request: 250"])
            .env_remove("AMPKIT_ENVOY_ADMIN_URLS")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let firing = ampkit_e2e::poll_until(
        std::time::Duration::from_secs(60),
        std::time::Duration::from_millis(500),
        || {
            sns_subjects(&stack, &topic)
                .into_iter()
                .find(|s| s.starts_with("[FIRING]"))
        },
    )
    .unwrap_or_else(|| {
        panic!(
            "{mesh}: no FIRING message at {topic} within 60 s: {:?}",
            sns_subjects(&stack, &topic)
        )
    });
    eprintln!(
        "{mesh}: slowed jazz to the FIRING message: {:.1} s",
        alert_started.elapsed().as_secs_f64()
    );
    assert!(firing.contains("DownstreamLatencyP99High"), "{firing}");
    // Istio's alert names the service by its FQDN (destination_service).
    assert!(
        [
            "jazz",
            "dj",
            "jazz.prod.svc.cluster.local",
            "dj.prod.svc.cluster.local"
        ]
        .iter()
        .any(|s| firing.ends_with(&format!(" {s}"))),
        "{mesh}: the subject names the slowed service: {firing}"
    );
}

#[test]
fn envoy_gateway_shape_runs_the_recipes_chain_from_collector_to_every_panel_and_the_alert_in_sns() {
    the_recipes_chain_on_a_stack_in_the_shape_of("envoy-gateway", 0, "http-10080");
}

#[test]
fn consul_shape_runs_the_recipes_chain_from_collector_to_every_panel_and_the_alert_in_sns() {
    the_recipes_chain_on_a_stack_in_the_shape_of("consul", 25, "public_listener");
}

/// Istio's sidecar layout on real Envoy, its standard metrics computed by amp-local's
/// `--istio-proxy` from each Envoy's own statistics: the collector scrapes them where
/// pilot-agent serves them, and `builtin:istio`'s panels and the Istio alert run on them.
#[test]
fn istio_shape_runs_the_recipes_chain_from_collector_to_every_panel_and_the_alert_in_sns() {
    the_recipes_chain_on_a_stack_in_the_shape_of("istio", 50, "inbound_0.0.0.0_8080;");
}

/// Every downstream panel of the built-in raw-Envoy dashboard leaves out the proxies' own
/// listeners of every profile (Envoy Gateway's and Consul's metrics listeners, which each
/// scrape passes through, as well as the admin), and every upstream panel their clusters,
/// and the default alert does the same: otherwise a mesh's scrapes count as its traffic.
#[test]
fn the_raw_envoy_dashboard_and_alert_leave_out_every_profiles_own_listeners() {
    let path = ampkit_e2e::repo_root().join("tools/grafana-import/dashboards/envoy-global.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let listeners = format!(
        "envoy_http_conn_manager_prefix!~\"{}\"",
        ampkit::mesh::own_listeners_regex()
    );
    let clusters = format!(
        "envoy_cluster_name!~\"{}\"",
        ampkit::mesh::OWN_CLUSTERS.join("|")
    );
    // Each selector `NAME{...}` of an expression, not just one of them.
    fn selectors<'e>(expr: &'e str, metric: &str) -> Vec<&'e str> {
        let mut out = Vec::new();
        let mut rest = expr;
        while let Some(at) = rest.find(metric) {
            let from = &rest[at..];
            let end = from.find('}').map_or(from.len(), |e| e + 1);
            out.push(&from[..end]);
            rest = &from[end..];
        }
        out
    }
    fn panels(list: &Value) -> Vec<Value> {
        list.as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| std::iter::once(p.clone()).chain(panels(&p["panels"])))
            .collect()
    }
    let mut exprs = 0;
    for panel in panels(&dashboard["panels"]) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            exprs += 1;
            for selector in selectors(expr, "envoy_http_downstream_") {
                assert!(selector.contains(&listeners), "{selector} in {expr}");
            }
            for selector in selectors(expr, "envoy_cluster_") {
                assert!(selector.contains(&clusters), "{selector} in {expr}");
            }
        }
    }
    assert!(exprs >= 14, "{exprs} expressions");
    let alert = sns_alert::render::default_expr(
        ampkit::mesh::Mesh::Consul,
        std::time::Duration::from_secs(60),
    );
    assert!(alert.contains(&listeners), "{alert}");
}
