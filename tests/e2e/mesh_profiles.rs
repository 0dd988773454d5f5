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
