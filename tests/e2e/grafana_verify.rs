//! grafana-import's proof that panels show data, on the local stack: real Envoy traffic
//! scraped by a real Prometheus agent into a workspace on amp-local, then `--render-only
//! --verify --snapshot` of the built-in dashboard, of grafana.com's 11022 and of dashboards
//! written here to fail on purpose (a misspelled metric is empty, a syntax error is an error
//! with Prometheus's message), with Grafana's template expansion checked by what came back.
//! The snapshot is opened in headless chromium: no console errors, one chart per verified
//! panel, a screenshot left under out/.
//!
//! One test holds the whole scenario, so that its agent (a process) is stopped by its PID
//! when the test ends.

#![allow(clippy::unwrap_used)]

use ampkit_e2e::amp_local::Agent;
use ampkit_e2e::{repo_root, stack, tool};
use serde_json::{Value, json};

/// A workspace fed by an agent scraping the three Envoys (labelled service and namespace as
/// the recipe's collector labels them), with traffic through dj to jazz and metal.
fn mesh_with_traffic() -> (Value, Agent) {
    let (doc, agent) = ampkit_e2e::mesh_workspace(&stack(), "grafana-verify");
    let traffic = tool("envoy-traffic")
        .args([
            "--rate",
            "40",
            "--duration",
            "6s",
            "--paths",
            "/jazz,/metal",
        ])
        .stdin_doc(&doc)
        .run();
    traffic.expect_code(0);
    // Upstream series are the last to arrive: wait until a rate of them can be taken.
    let wait = tool("promql")
        .args([
            "wait",
            "sum(rate(envoy_cluster_upstream_rq_total{service=\"dj\"}[5s])) > 0",
            "--timeout",
            "60s",
        ])
        .stdin_doc(&doc)
        .run();
    wait.expect_code(0);
    (doc, agent)
}

fn verify(doc: &Value, out: &std::path::Path, extra: &[&str]) -> ampkit_e2e::Run {
    tool("grafana-import")
        .args([
            "--render-only",
            "--verify",
            "--scrape-interval",
            "1s",
            "--from",
            "now-5m",
        ])
        .args(["--out", out.to_str().unwrap()])
        .args(extra)
        .stdin_doc(doc)
        .run()
}

fn panels(section: &Value, dashboard: usize) -> Vec<(String, String, u64)> {
    section["dashboards"][dashboard]["verify"]["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["title"].as_str().unwrap().to_owned(),
                p["status"].as_str().unwrap().to_owned(),
                p["series"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panels_are_verified_against_the_workspace_and_drawn_in_a_browser() {
    let (doc, _agent) = tokio::task::block_in_place(mesh_with_traffic);
    let dir = tempfile::tempdir().unwrap();

    // The built-in: every panel that queries shows data from the mesh.
    let snapshot = dir.path().join("builtin.html");
    let run = tokio::task::block_in_place(|| {
        verify(
            &doc,
            dir.path(),
            &[
                "--dashboard",
                "builtin:envoy-global",
                "--snapshot",
                snapshot.to_str().unwrap(),
            ],
        )
    });
    run.expect_code(0);
    let out = run.doc();
    assert_eq!(out["workspace"], doc["workspace"], "the document passes on");
    let builtin = panels(&out["grafana"], 0);
    let queried: Vec<_> = builtin.iter().filter(|(_, s, _)| s != "skipped").collect();
    assert!(queried.len() >= 10, "{builtin:?}");
    for (title, status, series) in &queried {
        assert_eq!(status, "ok", "built-in panel `{title}`: {builtin:?}");
        assert!(*series > 0);
    }
    // `$service` is All (allValue `.+`) and the by-service panels see the three services.
    let by_service = builtin
        .iter()
        .find(|(t, _, _)| t == "Requests per second by service")
        .unwrap();
    assert_eq!(by_service.2, 3, "dj, jazz and metal");
    assert!(
        std::path::Path::new(out["grafana"]["dashboards"][0]["file"].as_str().unwrap()).exists(),
        "the resolved JSON is written"
    );

    // In a real browser: loads clean, one chart per verified panel, time series drawn.
    let page = ampkit_e2e::browser::load(
        &snapshot,
        1650,
        "JSON.stringify([document.querySelectorAll('figure.chart').length, document.querySelectorAll('svg.plot path, svg.plot polyline').length, document.querySelectorAll('section.panel.ok').length])",
    )
    .await;
    assert!(page.errors.is_empty(), "console errors: {:?}", page.errors);
    let counts: Vec<u64> = serde_json::from_str(page.value.as_str().unwrap()).unwrap();
    assert_eq!(
        counts[0] as usize,
        queried.len(),
        "one chart per verified panel"
    );
    assert_eq!(counts[2] as usize, queried.len());
    assert!(counts[1] > 0, "lines are drawn");
    let shots = repo_root().join("out");
    std::fs::create_dir_all(&shots).unwrap();
    let png = shots.join("grafana-verify-builtin.png");
    std::fs::write(&png, &page.screenshot).unwrap();
    assert!(page.screenshot.starts_with(b"\x89PNG"), "a PNG");

    // An export-shaped dashboard of the project's (inputs, a constant, a repeat, a nested row
    // with references that exist nowhere, a two-query table, a library panel): every panel
    // with a query shows data; the library panel's queries live in the library, so it is
    // skipped, and says so.
    let export = ampkit_e2e::fixture("dashboards/mesh-export.json");
    let snapshot = dir.path().join("export.html");
    let run = tokio::task::block_in_place(|| {
        verify(
            &doc,
            dir.path(),
            &[
                "--dashboard",
                export.to_str().unwrap(),
                "--snapshot",
                snapshot.to_str().unwrap(),
            ],
        )
    });
    run.expect_code(0);
    let rows = panels(&run.doc()["grafana"], 0);
    let status = |title: &str| {
        rows.iter()
            .find(|(t, _, _)| t.starts_with(title))
            .unwrap_or_else(|| panic!("no panel `{title}` in {rows:?}"))
            .1
            .clone()
    };
    for title in [
        "Requests per second",
        "Downstream requests",
        "Service totals",
        "p99 latency by service",
        "Active connections",
    ] {
        assert_eq!(status(title), "ok", "{title}: {rows:?}");
    }
    assert_eq!(status("Upstream requests (library)"), "skipped");
    assert_eq!(status("About"), "skipped");
    // The two-query table says which query each row came from: both queries return one row
    // per service with the same labels, so without it the rows read as duplicates.
    let page = ampkit_e2e::browser::load(
        &snapshot,
        1650,
        "JSON.stringify([...document.querySelectorAll('figure[data-kind=table] td.ref')].map(td => td.textContent))",
    )
    .await;
    assert!(page.errors.is_empty(), "console errors: {:?}", page.errors);
    let refs: Vec<String> = serde_json::from_str(page.value.as_str().unwrap()).unwrap();
    assert_eq!(refs.iter().filter(|r| *r == "A").count(), 3, "{refs:?}");
    assert_eq!(refs.iter().filter(|r| *r == "B").count(), 3, "{refs:?}");

    // After traffic, the verified range follows it: from four scrape intervals (here 1 s)
    // before envoy-traffic's first request to now, not the dashboard's 15 minutes (unless
    // --from/--to say otherwise).
    let sent = tool("envoy-traffic")
        .args(["--rate", "20", "--requests", "20", "--paths", "/jazz"])
        .stdin_doc(&doc)
        .run();
    sent.expect_code(0);
    let after_traffic = sent.doc();
    let run = tokio::task::block_in_place(|| {
        tool("grafana-import")
            .args(["--render-only", "--verify", "--scrape-interval", "1s"])
            .args(["--out", dir.path().to_str().unwrap()])
            .args(["--dashboard", export.to_str().unwrap()])
            .stdin_doc(&after_traffic)
            .run()
    });
    run.expect_code(0);
    let rfc3339 = |v: &Value| {
        time::OffsetDateTime::parse(
            v.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    let started = rfc3339(&after_traffic["traffic"]["startedAt"]);
    let verified = &run.doc()["grafana"]["dashboards"][0]["verify"];
    assert_eq!(
        started - rfc3339(&verified["from"]),
        time::Duration::seconds(4),
        "{verified}"
    );
    let to = rfc3339(&verified["to"]);
    assert!(
        to > started && to - started < time::Duration::minutes(2),
        "{verified}"
    );

    // Dashboards that fail on purpose, a legacy one with `[[var]]`, a string datasource that
    // exists nowhere and a selected variable value.
    let broken = dir.path().join("broken.json");
    std::fs::write(
        &broken,
        json!({
            "uid": "verify-broken", "title": "Broken on purpose", "schemaVersion": 14,
            "time": {"from": "now-5m", "to": "now"},
            "templating": {"list": [
                {"name": "service", "type": "query", "datasource": "Prometheus-old",
                 "query": "label_values(envoy_http_downstream_rq_total, service)",
                 "multi": true, "includeAll": true, "current": {"value": ["jazz"]}},
                {"name": "window", "type": "interval", "query": "30s,1m", "current": {"value": "30s"}}
            ]},
            "rows": [{"title": "Row", "panels": [
                {"id": 1, "type": "graph", "title": "Selected [[service]]", "span": 6, "datasource": "Prometheus-old",
                 "targets": [{"refId": "A", "expr": "sum by (service) (rate(envoy_http_downstream_rq_total{service=~\"[[service]]\"}[$window]))"}]},
                {"id": 2, "type": "graph", "title": "Misspelled", "span": 6,
                 "targets": [{"refId": "A", "expr": "sum(envoy_http_downstream_rq_totl)"}]},
                {"id": 3, "type": "singlestat", "title": "Syntax error", "span": 6,
                 "targets": [{"refId": "A", "expr": "sum(rate(envoy_http_downstream_rq_total[1m])"}]},
                {"id": 4, "type": "text", "title": "Notes", "span": 6, "content": "no query"}
            ]}]
        })
        .to_string(),
    )
    .unwrap();
    let run = tokio::task::block_in_place(|| {
        verify(&doc, dir.path(), &["--dashboard", broken.to_str().unwrap()])
    });
    run.expect_code(0);
    let section = run.doc()["grafana"].clone();
    let rows = panels(&section, 0);
    let status_of = |title: &str| {
        rows.iter()
            .find(|(t, _, _)| t == title)
            .unwrap_or_else(|| panic!("no panel `{title}` in {rows:?}"))
            .clone()
    };
    assert_eq!(status_of("Selected jazz").1, "ok");
    assert_eq!(status_of("Selected jazz").2, 1, "only the selected service");
    assert_eq!(status_of("Misspelled").1, "empty");
    assert_eq!(status_of("Syntax error").1, "error");
    assert_eq!(status_of("Notes").1, "skipped");
    let panels_json = &section["dashboards"][0]["verify"]["panels"];
    let error = panels_json
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == "Syntax error")
        .unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("parse error"),
        "Prometheus's message: {error}"
    );
    let sent = panels_json
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == "Selected jazz")
        .unwrap()["queries"][0]["expr"]
        .clone();
    assert_eq!(
        sent,
        "sum by (service) (rate(envoy_http_downstream_rq_total{service=~\"jazz\"}[30s]))"
    );
    let rewritten = &section["dashboards"][0]["rewrittenDatasources"];
    assert_eq!(rewritten[0]["from"], "name Prometheus-old", "{rewritten}");
    assert_eq!(rewritten[0]["places"], 2);

    // --require-data: the same dashboard fails the run, and the document is still written.
    let run = tokio::task::block_in_place(|| {
        verify(
            &doc,
            dir.path(),
            &["--dashboard", broken.to_str().unwrap(), "--require-data"],
        )
    });
    run.expect_code(1);
    let message = run.error()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("Misspelled") && message.contains("Syntax error"),
        "{message}"
    );
    assert_eq!(run.doc()["grafana"]["dashboards"][0]["verify"]["empty"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "reads third-party fixtures: set AMPKIT_THIRD_PARTY_FIXTURES (make test then runs it)"]
async fn grafana_coms_11022_shows_data_in_every_panel_the_mesh_can_fill() {
    let (doc, _agent) = tokio::task::block_in_place(mesh_with_traffic);
    let dir = tempfile::tempdir().unwrap();
    let shots = repo_root().join("out");
    std::fs::create_dir_all(&shots).unwrap();
    // grafana.com's 11022 (as a file): all but the 3xx/4xx/5xx panels have data; the mesh
    // answers only 2xx, so those three are empty, and say so.
    {
        let file = ampkit_e2e::third_party_fixture("dashboards/envoy-global-11022.json");
        let snapshot = dir.path().join("11022.html");
        let run = tokio::task::block_in_place(|| {
            verify(
                &doc,
                dir.path(),
                &[
                    "--dashboard",
                    file.to_str().unwrap(),
                    "--snapshot",
                    snapshot.to_str().unwrap(),
                ],
            )
        });
        run.expect_code(0);
        let section = run.doc()["grafana"].clone();
        let rows = panels(&section, 0);
        let empty: Vec<&str> = rows
            .iter()
            .filter(|(_, s, _)| s == "empty")
            .map(|(t, _, _)| t.as_str())
            .collect();
        assert_eq!(
            empty,
            [
                "Upstream 3xx Responses",
                "Upstream 4xx Responses",
                "Upstream 5xx Responses"
            ]
        );
        assert!(rows.iter().all(|(_, s, _)| s != "error"), "{rows:?}");
        assert_eq!(
            rows.iter().filter(|(_, s, _)| s == "ok").count(),
            14,
            "{rows:?}"
        );
        assert!(
            run.stderr.contains("14 ok, 3 empty, 0 error"),
            "{}",
            run.stderr
        );
        let page = ampkit_e2e::browser::load(
            &snapshot,
            1650,
            "document.querySelectorAll('figure.chart').length",
        )
        .await;
        assert!(page.errors.is_empty(), "console errors: {:?}", page.errors);
        assert_eq!(page.value, json!(17));
        std::fs::write(shots.join("grafana-verify-11022.png"), &page.screenshot).unwrap();
    }
}
