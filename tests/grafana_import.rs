//! grafana-import as a process against the strict Grafana fixture (10.4 and 12): the
//! workspace's SigV4 datasource, the folder and a dashboard with `__inputs` end up in Grafana,
//! the ledger lists what was created and a re-run creates nothing; a dashboard someone changed
//! is refused unless --overwrite; bad input and a refused token are exit 2 with the document
//! passed on.

use ampkit_e2e::grafana::{GrafanaFixture, mint_token};
use ampkit_e2e::tool;
use serde_json::{Value, json};

fn workspace_doc() -> Value {
    json!({"workspace": {
        "workspaceId": "ws-1234",
        "alias": "AMP-APPMESH",
        "arn": "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1234",
        "status": "ACTIVE",
        "region": "eu-west-1",
        "prometheusEndpoint": "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1234/",
        "remoteWriteUrl": "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1234/api/v1/remote_write",
        "queryUrl": "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1234/api/v1/query"
    }, "other": {"kept": true}})
}

fn dashboard_file(dir: &std::path::Path) -> std::path::PathBuf {
    let dashboard = json!({
        "__inputs": [
            {"name": "DS_PROMETHEUS", "type": "datasource", "pluginId": "prometheus"},
            {"name": "VAR_JOB", "type": "constant", "value": "envoy"}
        ],
        "uid": "mesh-overview",
        "title": "Mesh overview",
        "version": 3,
        "panels": [{"type": "timeseries", "datasource": {"type": "prometheus", "uid": "${DS_PROMETHEUS}"},
                    "targets": [{"expr": "sum(rate(envoy_http_downstream_rq_total{job=\"${VAR_JOB}\"}[1m]))"}]}]
    });
    let path = dir.join("mesh.json");
    std::fs::write(&path, dashboard.to_string()).expect("dashboard file written");
    path
}

/// Run grafana-import against `fixture` with `extra` flags, the document on stdin.
fn import(fixture: &GrafanaFixture, token: &str, doc: &Value, extra: &[&str]) -> ampkit_e2e::Run {
    tool("grafana-import")
        .env("GRAFANA_TOKEN", token)
        .args(["--grafana-url", &fixture.url])
        .args(extra)
        .stdin_doc(doc)
        .run()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasource_folder_and_dashboard_are_ensured_and_ledgered_once() {
    for version in ["10.4.1", "12.0.2"] {
        let mut fixture = GrafanaFixture::start(version).await;
        fixture.expect(&[
            "GET /api/health",
            "POST /api/datasources",
            "POST /api/folders",
            "POST /api/dashboards/import",
        ]);
        let dir = tempfile::tempdir().unwrap();
        let file = dashboard_file(dir.path());
        let token = mint_token(3);
        let args = [
            "--folder",
            "Service mesh",
            "--dashboard",
            file.to_str().unwrap(),
        ];
        let run = tokio::task::block_in_place(|| import(&fixture, &token, &workspace_doc(), &args));
        run.expect_code(0);
        let doc = run.doc();
        assert_eq!(doc["other"], json!({"kept": true}));
        let section = &doc["grafana"];
        assert_eq!(section["datasourceUid"], "ampkit-ws-1234");
        assert_eq!(section["folderUid"], "ampkit-service-mesh");
        assert_eq!(section["dashboards"][0]["uid"], "mesh-overview");
        assert_eq!(section["dashboards"][0]["version"], 1);
        let kinds = ampkit_e2e::ledger_kinds(&doc);
        assert_eq!(
            kinds,
            ["grafana-datasource", "grafana-folder", "grafana-dashboard"]
        );
        assert!(
            !run.stdout.contains(&token),
            "the token never reaches the document"
        );

        // What Grafana holds: SigV4 on the workspace's endpoint, the inputs mapped.
        let ds = fixture.datasource("ampkit-ws-1234").unwrap();
        assert_eq!(ds["jsonData"]["sigV4Auth"], true);
        assert_eq!(ds["jsonData"]["sigV4Region"], "eu-west-1");
        assert_eq!(
            ds["url"],
            "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1234/"
        );

        // A re-run with its own output: nothing new in the ledger, the dashboard updated.
        let again = tokio::task::block_in_place(|| import(&fixture, &token, &doc, &args));
        again.expect_code(0);
        let doc2 = again.doc();
        assert_eq!(doc2["resources"], doc["resources"]);
        assert_eq!(doc2["grafana"]["dashboards"][0]["version"], 2);

        // Someone edits it in Grafana: the next run refuses, and --overwrite takes it.
        fixture.edit_dashboard("mesh-overview", "Edited by hand");
        let refused = tokio::task::block_in_place(|| import(&fixture, &token, &doc2, &args));
        refused.expect_code(2);
        let err = refused.error();
        assert!(
            err["error"]["hint"]
                .as_str()
                .unwrap()
                .contains("--overwrite"),
            "{err}"
        );
        assert_eq!(
            refused.doc()["resources"],
            doc["resources"],
            "the ledger is kept"
        );
        let mut forced: Vec<&str> = args.to_vec();
        forced.push("--overwrite");
        let taken = tokio::task::block_in_place(|| import(&fixture, &token, &doc2, &forced));
        taken.expect_code(0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_a_refused_token_are_exit_2_and_change_nothing() {
    let fixture = GrafanaFixture::start("12.0.2").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dashboard_file(dir.path());
    let token = mint_token(4);
    let not_a_dashboard = dir.path().join("list.json");
    std::fs::write(&not_a_dashboard, "[1, 2]").unwrap();

    let cases: Vec<(Vec<String>, Value, &str)> = vec![
        (
            vec!["--dashboard".into(), not_a_dashboard.display().to_string()],
            workspace_doc(),
            "not a Grafana dashboard",
        ),
        (
            vec![
                "--dashboard".into(),
                dir.path().join("missing.json").display().to_string(),
            ],
            workspace_doc(),
            "missing.json",
        ),
        (
            vec!["--dashboard".into(), file.display().to_string()],
            json!({}),
            "no workspace",
        ),
    ];
    for (args, doc, says) in cases {
        let run = tokio::task::block_in_place(|| {
            import(
                &fixture,
                &token,
                &doc,
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
            )
        });
        run.expect_code(2);
        let message = run.error()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains(says), "{says}: {message}");
        assert_eq!(run.doc(), doc, "the document passes on unchanged");
    }
    // A dashboard whose constant input has no value and no default.
    let needs = dir.path().join("needs.json");
    std::fs::write(
        &needs,
        json!({"__inputs": [{"name": "VAR_X", "type": "constant"}], "title": "t", "panels": []})
            .to_string(),
    )
    .unwrap();
    let run = tokio::task::block_in_place(|| {
        import(
            &fixture,
            &token,
            &workspace_doc(),
            &["--dashboard", needs.to_str().unwrap()],
        )
    });
    run.expect_code(2);
    assert!(
        run.error()["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("--input VAR_X=")
    );

    // A token Grafana refuses: exit 2 before any change.
    let run = tokio::task::block_in_place(|| {
        import(
            &fixture,
            "glsa_wrong_00000000",
            &workspace_doc(),
            &["--dashboard", file.to_str().unwrap()],
        )
    });
    run.expect_code(2);
    assert!(
        run.error()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refused the token")
    );
    assert!(fixture.datasource("ampkit-ws-1234").is_none());
    assert!(
        !fixture.calls().iter().any(|c| c.starts_with("POST")),
        "{:?}",
        fixture.calls()
    );
}
