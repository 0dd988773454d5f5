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
    for version in ["10.4.1", "12.0.2", "13.0.0"] {
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
        // Grafana 13 moved the SigV4 datasource to the Amazon Prometheus plugin's type by
        // itself; the re-run takes it as the same datasource and does not put it back.
        let stored_type = &fixture.datasource("ampkit-ws-1234").unwrap()["type"];
        let expected_type = if version.starts_with("13.") {
            "grafana-amazonprometheus-datasource"
        } else {
            "prometheus"
        };
        assert_eq!(stored_type, expected_type, "{version}");
        assert!(
            !fixture
                .calls()
                .iter()
                .any(|c| c.starts_with("PUT /api/datasources")),
            "{version}: the datasource is left as it is: {:?}",
            fixture.calls()
        );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_the_builtin_and_a_legacy_dashboard_import_with_dangling_references_rewritten() {
    let export = ampkit_e2e::fixture("dashboards/mesh-export.json");
    for version in ["10.4.1", "12.0.2", "13.0.0"] {
        let mut fixture = GrafanaFixture::start(version).await;
        fixture.seed_datasource(json!({"uid": "team-prom", "name": "Team Prometheus", "type": "prometheus", "url": "http://prom:9090", "access": "proxy"}));
        fixture.expect(&[
            "GET /api/datasources/uid/P1809F7CD0C75ACF3",
            "GET /api/datasources/name/Prometheus%20%28old%29",
            "GET /api/datasources/uid/team-prom",
            "POST /api/dashboards/import",
        ]);
        let legacy = ampkit_e2e::fixture("dashboards/legacy-rows.json");
        let token = mint_token(5);
        let args = [
            "--dashboard",
            export.to_str().unwrap(),
            "--dashboard",
            "builtin:envoy-global",
            "--dashboard",
            legacy.to_str().unwrap(),
        ];
        let run = tokio::task::block_in_place(|| import(&fixture, &token, &workspace_doc(), &args));
        run.expect_code(0);
        let doc = run.doc();
        let dashboards = doc["grafana"]["dashboards"].as_array().unwrap().clone();
        assert_eq!(dashboards.len(), 3);
        assert_eq!(dashboards[1]["uid"], "ampkit-envoy-global");
        assert_eq!(dashboards[1]["source"], "builtin:envoy-global");
        // The export's nested row holds a reference by uid (panel and target) and one by name
        // that exist nowhere; the built-in names its datasource through a variable.
        assert_eq!(dashboards[0]["uid"], "ampkit-fixture-mesh");
        assert_eq!(
            dashboards[0]["rewrittenDatasources"],
            json!([
                {"from": "uid P1809F7CD0C75ACF3", "to": "ampkit-ws-1234", "places": 2},
                {"from": "name Prometheus (old)", "to": "ampkit-ws-1234", "places": 1}
            ])
        );
        assert_eq!(dashboards[1]["rewrittenDatasources"], json!([]));
        assert_eq!(
            dashboards[2]["rewrittenDatasources"],
            json!([
                {"from": "uid P1809F7CD0C75ACF3", "to": "ampkit-ws-1234", "places": 2},
                {"from": "name Prometheus (old)", "to": "ampkit-ws-1234", "places": 1}
            ])
        );
        // What Grafana stored: inputs substituted, the dangling references ours, the team's kept.
        let stored = fixture.dashboard("legacy-mesh").unwrap();
        let panels = &stored["rows"][0]["panels"];
        assert_eq!(
            panels[0]["datasource"], "ampkit-ws-1234",
            "the input mapped"
        );
        assert_eq!(
            panels[1]["datasource"]["uid"], "team-prom",
            "an existing one is kept"
        );
        assert_eq!(panels[2]["datasource"]["uid"], "ampkit-ws-1234");
        assert_eq!(
            panels[2]["targets"][0]["datasource"]["uid"],
            "ampkit-ws-1234"
        );
        assert_eq!(panels[3]["datasource"]["uid"], "ampkit-ws-1234");
        assert!(fixture.dashboard("ampkit-envoy-global").is_some());
        // The export as stored: its inputs substituted everywhere (the constant too), the
        // nested row's references ours, the repeat kept.
        let stored = fixture.dashboard("ampkit-fixture-mesh").unwrap();
        let text = stored.to_string();
        assert!(
            !text.contains("${DS_PROMETHEUS}") && !text.contains("${VAR_NAMESPACE}"),
            "{text}"
        );
        assert_eq!(stored["panels"][1]["datasource"]["uid"], "ampkit-ws-1234");
        assert_eq!(stored["templating"]["list"][0]["query"], "prod");
        assert_eq!(stored["panels"][2]["repeat"], "service");
        let nested = &stored["panels"][5]["panels"];
        assert_eq!(nested[0]["datasource"]["uid"], "ampkit-ws-1234");
        assert_eq!(
            nested[0]["targets"][0]["datasource"]["uid"],
            "ampkit-ws-1234"
        );
        assert_eq!(nested[1]["datasource"]["uid"], "ampkit-ws-1234");
        let kinds = ampkit_e2e::ledger_kinds(&doc);
        assert_eq!(
            kinds.iter().filter(|k| *k == "grafana-dashboard").count(),
            3
        );

        // Idempotent: the same run again adds nothing to the ledger.
        let again = tokio::task::block_in_place(|| import(&fixture, &token, &doc, &args));
        again.expect_code(0);
        assert_eq!(again.doc()["resources"], doc["resources"]);
    }
}

/// Grafana's published dashboard schema (draft-07, third-party: never copied in), compiled
/// with the `jsonschema` crate against the definition of a whole dashboard.
fn grafana_dashboard_schema() -> jsonschema::Validator {
    let path = ampkit_e2e::third_party_fixture("grafana-schema/dashboard.jsonschema.json");
    let mut schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    schema["$ref"] = json!("#/definitions/Dashboard");
    jsonschema::draft7::new(&schema).expect("Grafana's schema compiles")
}

#[test]
#[ignore = "reads third-party fixtures: set AMPKIT_THIRD_PARTY_FIXTURES (make test then runs it)"]
fn the_builtin_dashboard_validates_against_grafanas_schema() {
    let validator = grafana_dashboard_schema();
    let builtin = ampkit_e2e::repo_root().join("tools/grafana-import/dashboards/envoy-global.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&builtin).unwrap()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&dashboard)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "the built-in fails the schema:\n{}",
        errors.join("\n")
    );
    // And the validator is not a rubber stamp: a panel without `type` fails.
    let mut broken = dashboard.clone();
    broken["panels"][1].as_object_mut().unwrap().remove("type");
    assert!(
        !validator.is_valid(&broken),
        "a panel without `type` passed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_amg_a_service_account_lives_only_for_the_run() {
    let mut grafana = GrafanaFixture::start("10.4.1").await;
    let host = grafana.url.trim_start_matches("http://").to_owned();
    let mut amg = ampkit_e2e::amg::AmgFixture::start("g-0123456789", &host).await;
    amg.expect(&[
        "GET /workspaces/g-0123456789",
        "POST /workspaces/g-0123456789/serviceaccounts",
        "POST /workspaces/g-0123456789/serviceaccounts/1/tokens",
        "DELETE /workspaces/g-0123456789/serviceaccounts/1",
    ]);
    grafana.expect(&["GET /api/health", "POST /api/datasources"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dashboard_file(dir.path());
    let amg_run = |id: &str, doc: &Value| {
        tool("grafana-import")
            .env("AWS_ENDPOINT_URL_GRAFANA", &amg.url)
            .env_remove("GRAFANA_TOKEN")
            // The endpoint AMG describes is https; the fixture speaks http on that host.
            .args(["--amg-workspace-id", id, "--grafana-url", &grafana.url])
            .args(["--dashboard", file.to_str().unwrap()])
            .stdin_doc(doc)
            .run()
    };
    let run = tokio::task::block_in_place(|| amg_run("g-0123456789", &workspace_doc()));
    run.expect_code(0);
    let doc = run.doc();
    assert!(
        amg.accounts().is_empty(),
        "the run's service account is gone"
    );
    assert_eq!(
        amg.token_lifetimes(),
        vec![ampkit::grafana::amg::TOKEN_SECONDS as i64]
    );
    assert!(
        !run.stdout.contains("glsa_"),
        "the token never reaches the document"
    );
    assert!(
        !ampkit_e2e::ledger_kinds(&doc).contains(&"grafana-service-account".to_owned()),
        "nothing of the account is left to tear down"
    );
    // On AMG the datasource signs with the workspace's IAM role.
    let ds = grafana.datasource("ampkit-ws-1234").unwrap();
    assert_eq!(ds["jsonData"]["sigV4AuthType"], "ec2_iam_role");

    // A delete that fails leaves a ledger entry for teardown, and the run still succeeds.
    amg.fail_deletes(true);
    let run = tokio::task::block_in_place(|| amg_run("g-0123456789", &doc));
    run.expect_code(0);
    let left = run.doc()["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "grafana-service-account")
        .cloned()
        .expect("a ledger entry for the account");
    assert_eq!(left["details"]["workspaceId"], "g-0123456789");
    assert_eq!(amg.accounts().len(), 1);
    assert!(run.stderr.contains("could not delete"), "{}", run.stderr);
    amg.fail_deletes(false);

    // An AMG workspace that does not exist: exit 3, nothing made; a malformed id: exit 2.
    let run = tokio::task::block_in_place(|| amg_run("g-ffffffffff", &workspace_doc()));
    run.expect_code(3);
    assert!(
        run.error()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("g-ffffffffff"),
        "{}",
        run.stderr
    );
    let run = tokio::task::block_in_place(|| amg_run("g-12", &workspace_doc()));
    run.expect_code(2);
    assert!(
        run.error()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--amg-workspace-id")
    );
}

/// A grafana.com stand-in serving one dashboard (11022) at revision 3.
async fn grafana_com_mirror(dashboard: String) -> (String, tokio::task::JoinHandle<()>) {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/api/dashboards/11022",
            get(|| async { axum::Json(json!({"id": 11022, "revision": 3})) }),
        )
        .route(
            "/api/dashboards/11022/revisions/3/download",
            get(move || async move { dashboard }),
        );
    ampkit_e2e::serve_on_loopback(app).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gnet_dashboards_download_and_offline_says_how_to_pass_a_file() {
    let fixture = GrafanaFixture::start("12.0.2").await;
    let token = mint_token(6);
    // Offline: exit 1, the way around named, nothing created in Grafana.
    let closed = format!("http://127.0.0.1:{}", ampkit_e2e::amp_local::free_port());
    let run = tokio::task::block_in_place(|| {
        import(
            &fixture,
            &token,
            &workspace_doc(),
            &["--dashboard", "gnet:11022", "--grafana-com-url", &closed],
        )
    });
    run.expect_code(1);
    let error = run.error();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot be reached")
    );
    assert!(
        error["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("--dashboard FILE")
    );
    assert!(!fixture.calls().iter().any(|c| c.starts_with("POST")));

    // Online (a mirror serving an export-shaped dashboard): the latest revision is found and
    // imported.
    let text = std::fs::read_to_string(ampkit_e2e::fixture("dashboards/mesh-export.json")).unwrap();
    let (mirror, task) = grafana_com_mirror(text).await;
    let run = tokio::task::block_in_place(|| {
        import(
            &fixture,
            &token,
            &workspace_doc(),
            &["--dashboard", "gnet:11022", "--grafana-com-url", &mirror],
        )
    });
    run.expect_code(0);
    let entry = &run.doc()["grafana"]["dashboards"][0];
    assert_eq!(entry["source"], "gnet:11022");
    assert!(fixture.dashboard(entry["uid"].as_str().unwrap()).is_some());
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_grafana_is_exit_1_and_a_failure_half_way_keeps_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let file = dashboard_file(dir.path());
    let closed = format!("http://127.0.0.1:{}", ampkit_e2e::amp_local::free_port());
    let run = tool("grafana-import")
        .env("GRAFANA_TOKEN", mint_token(7))
        .args([
            "--grafana-url",
            &closed,
            "--dashboard",
            file.to_str().unwrap(),
        ])
        .stdin_doc(&workspace_doc())
        .run();
    run.expect_code(1);
    assert!(
        run.error()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot be reached")
    );
    assert_eq!(run.doc(), workspace_doc());

    // The datasource and folder are made, then Grafana refuses the dashboard (its uid is too
    // long): exit 2, and the document lists what was made, for teardown.
    let fixture = GrafanaFixture::start("10.4.1").await;
    let bad = dir.path().join("long-uid.json");
    std::fs::write(
        &bad,
        json!({"uid": "x".repeat(41), "title": "Too long", "panels": []}).to_string(),
    )
    .unwrap();
    let run = tokio::task::block_in_place(|| {
        import(
            &fixture,
            &mint_token(8),
            &workspace_doc(),
            &["--dashboard", bad.to_str().unwrap()],
        )
    });
    run.expect_code(2);
    assert!(
        run.error()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("uid too long")
    );
    assert_eq!(
        ampkit_e2e::ledger_kinds(&run.doc()),
        ["grafana-datasource", "grafana-folder"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "reads third-party fixtures: set AMPKIT_THIRD_PARTY_FIXTURES (make test then runs it)"]
async fn grafana_coms_11022_imports_on_both_versions_with_nothing_rewritten() {
    let gnet = ampkit_e2e::third_party_fixture("dashboards/envoy-global-11022.json");
    for version in ["10.4.1", "12.0.2", "13.0.0"] {
        let mut fixture = GrafanaFixture::start(version).await;
        fixture.expect(&["POST /api/dashboards/import"]);
        let token = mint_token(5);
        let args = ["--dashboard", gnet.to_str().unwrap()];
        let run = tokio::task::block_in_place(|| import(&fixture, &token, &workspace_doc(), &args));
        run.expect_code(0);
        let doc = run.doc();
        let entry = &doc["grafana"]["dashboards"][0];
        // 11022 names its datasource through a variable: nothing to rewrite.
        assert_eq!(entry["rewrittenDatasources"], json!([]));
        let stored = fixture.dashboard(entry["uid"].as_str().unwrap()).unwrap();
        let original: Value =
            serde_json::from_str(&std::fs::read_to_string(&gnet).unwrap()).unwrap();
        assert_eq!(stored["title"], original["title"]);
        assert_eq!(
            stored["panels"].as_array().map(Vec::len),
            original["panels"].as_array().map(Vec::len)
        );
    }
}

/// A v2-schema dashboard (Grafana 12+'s dynamic dashboards, which Grafana 13 turns on) is
/// refused before anything is made, saying what it is and how to export a classic one:
/// Grafana's import API would answer it 400 "Dashboard title cannot be empty".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_schema_dashboard_is_refused_clearly_before_any_change() {
    let fixture = GrafanaFixture::start("13.0.0").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v2.json");
    let v2 = json!({
        "apiVersion": "dashboard.grafana.app/v2beta1",
        "kind": "Dashboard",
        "metadata": {"name": "mesh"},
        "spec": {
            "title": "Mesh",
            "elements": {"panel-1": {"kind": "Panel", "spec": {"title": "Requests"}}},
            "layout": {"kind": "GridLayout", "spec": {"items": []}}
        }
    });
    std::fs::write(&file, v2.to_string()).unwrap();
    let token = mint_token(3);
    let run = tokio::task::block_in_place(|| {
        import(
            &fixture,
            &token,
            &workspace_doc(),
            &["--dashboard", file.to_str().unwrap()],
        )
    });
    run.expect_code(2);
    let err = run.error();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("v2-schema"),
        "{err}"
    );
    assert!(
        err["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("classic JSON")
    );
    assert!(
        !fixture
            .calls()
            .iter()
            .any(|c| c.starts_with("POST") || c.starts_with("PUT")),
        "nothing was made: {:?}",
        fixture.calls()
    );
}

/// A token Grafana will not take for the run is said in one line naming the cause and the
/// fix, exit 2, before any change: one made in another workspace, an expired one, and one
/// whose service account is a Viewer (which gets in, and is stopped at the first change).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_grafana_will_not_take_is_named_before_any_change() {
    use ampkit_e2e::grafana::TokenState;
    for (seed, state, kind, words, hint) in [
        (
            31,
            TokenState::Unknown,
            "usage",
            "does not know the token",
            "--grafana-url",
        ),
        (
            32,
            TokenState::Expired,
            "usage",
            "the token has expired",
            "30 days",
        ),
        (
            33,
            TokenState::Viewer,
            "access-denied",
            "Permissions needed: datasources:create",
            "Admin role",
        ),
    ] {
        for version in ["10.4.1", "13.0.0"] {
            let fixture = GrafanaFixture::start(version).await;
            let token = mint_token(seed);
            fixture.token_state(&token, state);
            let dir = tempfile::tempdir().unwrap();
            let file = dashboard_file(dir.path());
            let args = ["--dashboard", file.to_str().unwrap()];
            let run =
                tokio::task::block_in_place(|| import(&fixture, &token, &workspace_doc(), &args));
            run.expect_code(2);
            let error = &run.error()["error"];
            assert_eq!(error["kind"], kind, "{state:?}: {}", run.stderr);
            let message = error["message"].as_str().unwrap();
            assert!(message.contains(words), "{state:?}: {message}");
            assert!(
                error["hint"].as_str().unwrap().contains(hint),
                "{state:?}: {}",
                run.stderr
            );
            assert_eq!(
                run.stderr.lines().count(),
                2,
                "one JSON line, one human line: {}",
                run.stderr
            );
            // Nothing was made: no datasource, and the document's ledger is empty.
            assert!(fixture.datasource("ampkit-ws-1234").is_none(), "{state:?}");
            assert!(ampkit_e2e::ledger_kinds(&run.doc()).is_empty(), "{state:?}");
        }
    }
}
