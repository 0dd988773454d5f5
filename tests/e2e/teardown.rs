//! teardown as a process against the local stack (amp-local, moto) and the Grafana fixture:
//! what the ledger lists and is still ours goes; foreign objects with similar names, objects
//! whose tag was removed, a second role trusting our OIDC provider and a folder holding
//! someone's dashboard stay; a dry run changes nothing (the Grafana fixture sees no call but
//! reads, and every AWS object is read back unchanged); a teardown killed half-way leaves a
//! state file from which a second run finishes. Everything is read back with the AWS SDK or
//! the fixture, not with the tools.

#![allow(clippy::unwrap_used)]

use crate::eks_fixture::EksFixture;
use ampkit_e2e::grafana::{GrafanaFixture, mint_token};
use ampkit_e2e::runtime;
use ampkit_e2e::{amp_sdk, ledger_kinds, stack, tool, unique_name};
use serde_json::{Value, json};

fn outcomes(doc: &Value) -> Vec<(String, String)> {
    doc["teardown"]["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no teardown section: {doc}"))
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn outcome_of(doc: &Value, id: &str) -> String {
    outcomes(doc)
        .into_iter()
        .find(|(i, _)| i == id)
        .map(|(_, o)| o)
        .unwrap_or_else(|| panic!("no entry {id} in {}", doc["teardown"]))
}

fn reason_of(doc: &Value, id: &str) -> String {
    doc["teardown"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .and_then(|e| e["reason"].as_str())
        .unwrap_or_default()
        .to_owned()
}

// ---- Grafana (the fixture; no AWS involved) -----------------------------------------------

fn dashboard_file(dir: &std::path::Path) -> std::path::PathBuf {
    let dashboard = json!({
        "__inputs": [{"name": "DS_PROMETHEUS", "type": "datasource", "pluginId": "prometheus"}],
        "uid": "mesh-overview",
        "title": "Mesh overview",
        "panels": [{"type": "timeseries", "datasource": {"type": "prometheus", "uid": "${DS_PROMETHEUS}"},
                    "targets": [{"expr": "sum(rate(envoy_http_downstream_rq_total[1m]))"}]}]
    });
    let path = dir.join("mesh.json");
    std::fs::write(&path, dashboard.to_string()).unwrap();
    path
}

fn workspace_doc() -> Value {
    json!({"workspace": {
        "workspaceId": "ws-td01",
        "arn": "arn:aws:aps:eu-west-1:123456789012:workspace/ws-td01",
        "region": "eu-west-1",
        "prometheusEndpoint": "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-td01/"
    }, "other": {"kept": true}})
}

/// grafana-import into `fixture`: the document with datasource, folder and dashboard ledgered.
fn imported(fixture: &GrafanaFixture, token: &str, dir: &std::path::Path) -> Value {
    let file = dashboard_file(dir);
    let run = tool("grafana-import")
        .env("GRAFANA_TOKEN", token)
        .args(["--grafana-url", &fixture.url, "--dashboard"])
        .arg_path(&file)
        .stdin_doc(&workspace_doc())
        .run();
    run.expect_code(0);
    let doc = run.doc();
    assert_eq!(
        ledger_kinds(&doc),
        ["grafana-datasource", "grafana-folder", "grafana-dashboard"]
    );
    doc
}

trait ArgPath {
    fn arg_path(self, path: &std::path::Path) -> Self;
}

impl ArgPath for ampkit_e2e::Invocation {
    fn arg_path(self, path: &std::path::Path) -> Self {
        self.args([path.as_os_str()])
    }
}

fn teardown(token: &str, doc: &Value, extra: &[&str]) -> ampkit_e2e::Run {
    tool("teardown")
        .env("GRAFANA_TOKEN", token)
        .args(extra)
        .stdin_doc(doc)
        .run()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_objects_we_made_go_and_foreign_ones_stay_and_a_dry_run_only_reads() {
    for version in ["10.4.1", "12.0.2", "13.0.0"] {
        let fixture = GrafanaFixture::start(version).await;
        let token = mint_token(21);
        let dir = tempfile::tempdir().unwrap();
        let doc = tokio::task::block_in_place(|| imported(&fixture, &token, dir.path()));
        // Someone else's objects with names like ours.
        fixture.seed_folder("ampkit-service-mesh-2", "Service mesh 2");
        fixture.seed_dashboard("ampkit-service-mesh-2", "mesh-overview-2", "Mesh overview");
        fixture.seed_datasource(json!({"uid": "ampkit-ws-td02", "name": "AMP ws-td02",
            "type": "prometheus", "access": "proxy", "url": "https://x/"}));
        let ours = ["mesh-overview", "ampkit-service-mesh", "ampkit-ws-td01"];
        let foreign = ["mesh-overview-2", "ampkit-service-mesh-2", "ampkit-ws-td02"];

        let before = fixture.mutating_calls();
        let dry = tokio::task::block_in_place(|| teardown(&token, &doc, &["--dry-run"]));
        dry.expect_code(0);
        let plan = dry.doc();
        assert_eq!(
            outcomes(&plan),
            [
                ("mesh-overview".to_owned(), "delete".to_owned()),
                ("ampkit-service-mesh".to_owned(), "delete".to_owned()),
                ("ampkit-ws-td01".to_owned(), "delete".to_owned()),
            ],
            "newest first: dashboard, folder, datasource"
        );
        assert_eq!(
            plan["resources"], doc["resources"],
            "a dry run keeps the ledger"
        );
        assert_eq!(
            fixture.mutating_calls(),
            before,
            "{version}: the dry run only read"
        );
        assert!(ours.iter().all(|uid| fixture.has(uid)));

        let run = tokio::task::block_in_place(|| teardown(&token, &doc, &[]));
        run.expect_code(0);
        let out = run.doc();
        assert_eq!(
            out["resources"],
            json!([]),
            "{version}: {}",
            out["teardown"]
        );
        assert_eq!(
            out["other"],
            json!({"kept": true}),
            "other keys pass through"
        );
        assert_eq!(out["teardown"]["deleted"], 3);
        for uid in ours {
            assert!(!fixture.has(uid), "{version}: {uid} is gone");
        }
        for uid in foreign {
            assert!(fixture.has(uid), "{version}: foreign {uid} survives");
        }
        // The Grafana deletes came children first.
        let deletes: Vec<String> = fixture
            .mutating_calls()
            .into_iter()
            .filter(|c| c.starts_with("DELETE"))
            .collect();
        assert_eq!(
            deletes,
            [
                "DELETE /api/dashboards/uid/mesh-overview",
                "DELETE /api/folders/ampkit-service-mesh",
                "DELETE /api/datasources/uid/ampkit-ws-td01",
            ]
        );

        // Idempotent: the output has nothing left to do; the input's entries are all absent.
        let again = tokio::task::block_in_place(|| teardown(&token, &out, &[]));
        again.expect_code(0);
        assert_eq!(again.doc()["teardown"]["entries"], json!([]));
        let replay = tokio::task::block_in_place(|| teardown(&token, &doc, &[]));
        replay.expect_code(0);
        assert_eq!(replay.doc()["teardown"]["absent"], 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_holding_someone_elses_dashboard_is_kept_with_it() {
    let fixture = GrafanaFixture::start("12.0.2").await;
    let token = mint_token(22);
    let dir = tempfile::tempdir().unwrap();
    let doc = tokio::task::block_in_place(|| imported(&fixture, &token, dir.path()));
    fixture.seed_dashboard("ampkit-service-mesh", "someones-board", "Someone's board");

    let run = tokio::task::block_in_place(|| teardown(&token, &doc, &[]));
    run.expect_code(1);
    let out = run.doc();
    assert_eq!(outcome_of(&out, "mesh-overview"), "deleted");
    assert_eq!(outcome_of(&out, "ampkit-service-mesh"), "skipped");
    assert!(
        reason_of(&out, "ampkit-service-mesh").contains("someones-board"),
        "{}",
        out["teardown"]
    );
    assert_eq!(outcome_of(&out, "ampkit-ws-td01"), "deleted");
    assert_eq!(
        ledger_kinds(&out),
        ["grafana-folder"],
        "only the folder is left"
    );
    assert!(fixture.has("someones-board") && fixture.has("ampkit-service-mesh"));
    let err = run.error();
    assert!(
        err["error"]["message"].as_str().unwrap().contains("1 of 3"),
        "{err}"
    );
}

#[test]
fn unknown_kinds_and_incomplete_entries_are_kept_never_guessed_at() {
    let doc = json!({"resources": [
        {"type": "gcp-bucket", "id": "b-1", "tool": "future-tool"},
        {"type": "grafana-folder", "id": "f-1", "tool": "grafana-import"},
        {"type": "amp-workspace", "tool": "amp-workspace"},
        {"type": "iam-role-policy", "id": "r/p", "tool": "irsa-role"},
        {"type": "k8s-service-account", "id": "ns/sa", "tool": "irsa-role", "details": {"namespace": "ns"}}
    ]});
    let run = tool("teardown").stdin_doc(&doc).run();
    run.expect_code(1);
    let out = run.doc();
    assert_eq!(
        out["resources"], doc["resources"],
        "everything is kept, as written"
    );
    let entries = out["teardown"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 5);
    assert!(
        entries.iter().all(|e| e["outcome"] == "failed"),
        "{entries:?}"
    );
    let reasons: Vec<&str> = entries
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert!(reasons[0].contains("details.name"), "{}", reasons[0]);
    assert!(reasons[1].contains("details.roleName"), "{}", reasons[1]);
    assert!(reasons[2].contains("malformed"), "{}", reasons[2]);
    assert!(reasons[3].contains("details.grafanaUrl"), "{}", reasons[3]);
    assert!(
        reasons[4].contains("unknown kind `gcp-bucket`"),
        "{}",
        reasons[4]
    );
}

// ---- AMP workspaces (amp-local) -------------------------------------------------------------

fn describe(id: &str) -> Option<(String, Value)> {
    runtime().block_on(async {
        let amp = amp_sdk(&stack().amp_url).await;
        match amp.describe_workspace().workspace_id(id).send().await {
            Ok(out) => {
                let ws = out.workspace.unwrap();
                let status = ws.status().unwrap().status_code().as_str().to_owned();
                Some((
                    status,
                    serde_json::to_value(ws.tags().cloned().unwrap_or_default()).unwrap(),
                ))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                None
            }
            Err(e) => panic!("describe {id}: {e:?}"),
        }
    })
}

/// `amp-workspace ensure` with a fresh alias: its document (one ledger entry).
fn ensured(alias: &str) -> Value {
    let run = tool("amp-workspace")
        .args(["ensure", "--alias", alias])
        .run();
    run.expect_code(0);
    run.doc()
}

fn ledger_of(docs: &[&Value]) -> Value {
    Value::Array(
        docs.iter()
            .flat_map(|d| d["resources"].as_array().unwrap().clone())
            .collect(),
    )
}

#[test]
fn workspaces_in_the_ledger_go_untagged_and_foreign_ones_stay() {
    let alias = unique_name("td-ws");
    let ours = ensured(&alias);
    let untagged = ensured(&format!("{alias}-b"));
    let ours_id = ours["workspace"]["workspaceId"]
        .as_str()
        .unwrap()
        .to_owned();
    let untagged_id = untagged["workspace"]["workspaceId"]
        .as_str()
        .unwrap()
        .to_owned();
    let untagged_arn = untagged["workspace"]["arn"].as_str().unwrap().to_owned();
    // One whose tag someone removed, and one made outside ampkit with a similar alias.
    let foreign_id = runtime().block_on(async {
        let amp = amp_sdk(&stack().amp_url).await;
        amp.untag_resource()
            .resource_arn(&untagged_arn)
            .tag_keys("managed-by")
            .send()
            .await
            .unwrap();
        amp.create_workspace()
            .alias(format!("{alias}-c"))
            .send()
            .await
            .unwrap()
            .workspace_id()
            .to_owned()
    });
    let doc = json!({"workspace": ours["workspace"], "resources": ledger_of(&[&ours, &untagged])});

    let dry = tool("teardown").args(["--dry-run"]).stdin_doc(&doc).run();
    dry.expect_code(1);
    assert_eq!(outcome_of(&dry.doc(), &ours_id), "delete");
    assert_eq!(outcome_of(&dry.doc(), &untagged_id), "skipped");
    assert_eq!(
        describe(&ours_id).unwrap().0,
        "ACTIVE",
        "the dry run deleted nothing"
    );

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    std::fs::write(&state, doc.to_string()).unwrap();
    let run = tool("teardown")
        .args(["--state", state.to_str().unwrap()])
        .run();
    run.expect_code(1);
    let out = run.doc();
    assert_eq!(outcome_of(&out, &ours_id), "deleted");
    assert!(reason_of(&out, &untagged_id).contains("managed-by=ampkit"));
    assert!(
        describe(&ours_id).is_none(),
        "ours is gone (verified absent)"
    );
    assert!(describe(&untagged_id).is_some(), "the untagged one stays");
    assert!(describe(&foreign_id).is_some(), "the foreign one stays");
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(written, out, "the state file holds the final document");
    assert_eq!(
        written["resources"], untagged["resources"],
        "only the kept entry is left"
    );

    // Gone already: absent, since STS says we asked the entry's account, in its region.
    let replay = tool("teardown").stdin_doc(&ours).run();
    replay.expect_code(0);
    assert_eq!(outcome_of(&replay.doc(), &ours_id), "absent");
    // The same entry claiming another account is not "absent": it is kept.
    let mut elsewhere = ours.clone();
    let arn = elsewhere["resources"][0]["arn"]
        .as_str()
        .unwrap()
        .replace("123456789012", "999999999999");
    elsewhere["resources"][0]["arn"] = json!(arn);
    let wrong = tool("teardown").stdin_doc(&elsewhere).run();
    wrong.expect_code(1);
    assert_eq!(outcome_of(&wrong.doc(), &ours_id), "failed");
    assert!(reason_of(&wrong.doc(), &ours_id).contains("999999999999"));

    for id in [&untagged_id, &foreign_id] {
        let _ = tool("amp-workspace")
            .args(["delete", "--workspace-id", id])
            .run();
    }
}

/// A shell with no region (AWS_REGION gone after the recipe's run, no profile naming one):
/// every entry records its region, so teardown deletes there instead of stopping at "no AWS
/// region is configured".
#[test]
fn a_run_without_a_region_deletes_in_each_entrys_own_region() {
    let doc = ensured(&unique_name("td-noregion"));
    let id = doc["workspace"]["workspaceId"].as_str().unwrap().to_owned();
    assert_eq!(doc["resources"][0]["region"], stack().region.as_str());
    let home = tempfile::tempdir().unwrap();
    let torn = tool("teardown")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", home.path().join("config"))
        .stdin_doc(&doc)
        .run();
    torn.expect_code(0);
    assert_eq!(outcome_of(&torn.doc(), &id), "deleted", "{}", torn.stderr);
    assert!(describe(&id).is_none(), "the workspace is gone");
}

#[test]
fn a_teardown_killed_half_way_leaves_a_state_a_second_run_finishes() {
    let alias = unique_name("td-kill");
    let docs: Vec<Value> = (0..4).map(|i| ensured(&format!("{alias}-{i}"))).collect();
    let ids: Vec<String> = docs
        .iter()
        .map(|d| d["workspace"]["workspaceId"].as_str().unwrap().to_owned())
        .collect();
    let doc = json!({"resources": ledger_of(&docs.iter().collect::<Vec<_>>())});
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    std::fs::write(&state, doc.to_string()).unwrap();

    let mut child = std::process::Command::new(ampkit_e2e::bin("teardown"))
        .args(["--state", state.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the file shows one entry done (each delete waits for amp-local's DELETING).
    let left = || {
        let text = std::fs::read_to_string(&state).unwrap_or_default();
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["resources"].as_array().map(Vec::len))
            .unwrap_or(4)
    };
    let left_at_kill = ampkit_e2e::poll_until(
        std::time::Duration::from_secs(60),
        std::time::Duration::from_millis(20),
        || Some(left()).filter(|n| *n < 4),
    )
    .unwrap_or_else(left);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        left_at_kill < 4 && left_at_kill > 0,
        "killed half-way: {left_at_kill} left"
    );
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let listed: Vec<&str> = written["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    // What the file lists is what is still there: the newest went first.
    assert_eq!(
        listed,
        ids[..listed.len()]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    for id in &ids[listed.len()..] {
        assert!(describe(id).is_none(), "{id} was deleted before the kill");
    }

    let second = tool("teardown")
        .args(["--state", state.to_str().unwrap()])
        .run();
    second.expect_code(0);
    assert_eq!(second.doc()["resources"], json!([]));
    for id in &ids {
        assert!(describe(id).is_none(), "{id} is gone");
    }
}

// ---- IAM (moto) -----------------------------------------------------------------------------

const ACCOUNT: &str = "123456789012";

async fn iam() -> aws_sdk_iam::Client {
    let _ = stack();
    aws_sdk_iam::Client::new(
        &aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await,
    )
}

fn ours_tag() -> aws_sdk_iam::types::Tag {
    aws_sdk_iam::types::Tag::builder()
        .key("managed-by")
        .value("ampkit")
        .build()
        .unwrap()
}

fn trusting(provider_arn: &str) -> String {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Federated": provider_arn}, "Action": "sts:AssumeRoleWithWebIdentity"}]})
    .to_string()
}

fn our_policy() -> String {
    json!({"Version": "2012-10-17", "Statement": [{"Sid": "AmpWorkspaceAccess", "Effect": "Allow",
        "Action": ["aps:RemoteWrite"], "Resource": format!("arn:aws:aps:eu-west-1:{ACCOUNT}:workspace/ws-x")}]})
    .to_string()
}

/// A role as irsa-role makes one (tagged, our inline policy), or without the tag.
/// An OIDC provider with a URL of its own (moto's clusters share one issuer), tagged as ours
/// when `tagged`.
async fn make_provider(iam: &aws_sdk_iam::Client, name: &str, tagged: bool) -> String {
    let mut create = iam
        .create_open_id_connect_provider()
        .url(format!("https://oidc.teardown.test/id/{name}"))
        .client_id_list("sts.amazonaws.com")
        .thumbprint_list("9e99a48a9960b14926bb7f3b02e22da2b0ab7280");
    if tagged {
        create = create.tags(ours_tag());
    }
    create
        .send()
        .await
        .unwrap()
        .open_id_connect_provider_arn()
        .unwrap()
        .to_owned()
}

async fn make_role(iam: &aws_sdk_iam::Client, name: &str, trust: &str, tagged: bool) -> String {
    let mut create = iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(trust);
    if tagged {
        create = create.tags(ours_tag());
    }
    let arn = create
        .send()
        .await
        .unwrap()
        .role()
        .unwrap()
        .arn()
        .to_owned();
    iam.put_role_policy()
        .role_name(name)
        .policy_name("ampkit-amp-access")
        .policy_document(our_policy())
        .send()
        .await
        .unwrap();
    arn
}

async fn role_exists(iam: &aws_sdk_iam::Client, name: &str) -> bool {
    iam.get_role().role_name(name).send().await.is_ok()
}

async fn inline_policies(iam: &aws_sdk_iam::Client, name: &str) -> Vec<String> {
    iam.list_role_policies()
        .role_name(name)
        .send()
        .await
        .unwrap()
        .policy_names()
        .to_vec()
}

async fn provider_exists(iam: &aws_sdk_iam::Client, arn: &str) -> bool {
    iam.get_open_id_connect_provider()
        .open_id_connect_provider_arn(arn)
        .send()
        .await
        .is_ok()
}

fn role_entry(name: &str, arn: &str) -> Value {
    json!({"type": "iam-role", "id": name, "arn": arn, "tool": "irsa-role",
           "details": {"inlinePolicies": ["ampkit-amp-access"]}})
}

#[test]
fn roles_and_the_oidc_provider_go_children_first_and_foreign_users_keep_theirs() {
    let rt = runtime();
    let name = unique_name("td-role");
    let (provider_arn, ours_arn, untagged_arn, attached_arn) = rt.block_on(async {
        let iam = iam().await;
        // Our provider, with a URL of its own (moto's clusters share one issuer).
        let provider_arn = make_provider(&iam, &name, true).await;
        // Someone's provider with a URL like ours, and one of ours whose tag was removed.
        for (suffix, tagged) in [("foreign", false), ("untagged", true)] {
            let arn = make_provider(&iam, &format!("{name}-{suffix}"), tagged).await;
            if tagged {
                iam.untag_open_id_connect_provider()
                    .open_id_connect_provider_arn(&arn)
                    .tag_keys("managed-by")
                    .send()
                    .await
                    .unwrap();
            }
        }
        let ours = make_role(&iam, &name, &trusting(&provider_arn), true).await;
        // Ledgered, but someone removed the tag.
        let untagged = make_role(&iam, &format!("{name}-b"), &trusting(&provider_arn), true).await;
        iam.untag_role()
            .role_name(format!("{name}-b"))
            .tag_keys("managed-by")
            .send()
            .await
            .unwrap();
        // Ledgered and tagged, but someone attached their managed policy to it.
        let attached = make_role(
            &iam,
            &format!("{name}-c"),
            &trusting("arn:aws:iam::123456789012:oidc-provider/x"),
            true,
        )
        .await;
        let managed = iam
            .create_policy()
            .policy_name(format!("{name}-governance"))
            .policy_document(our_policy())
            .send()
            .await
            .unwrap()
            .policy()
            .unwrap()
            .arn()
            .unwrap()
            .to_owned();
        iam.attach_role_policy()
            .role_name(format!("{name}-c"))
            .policy_arn(&managed)
            .send()
            .await
            .unwrap();
        // Not ledgered: someone's role with a similar name, trusting our provider too, and
        // someone's role that got our inline policy (an iam-role-policy entry).
        make_role(
            &iam,
            &format!("{name}-foreign"),
            &trusting(&provider_arn),
            false,
        )
        .await;
        make_role(
            &iam,
            &format!("{name}-theirs"),
            &trusting("arn:aws:iam::123456789012:oidc-provider/y"),
            false,
        )
        .await;
        (provider_arn, ours, untagged, attached)
    });
    let provider = |suffix: &str| {
        format!("arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.teardown.test/id/{name}-{suffix}")
    };
    let (untagged_provider, foreign_provider) = (provider("untagged"), provider("foreign"));
    let doc = json!({
    "irsa": {"roleName": format!("{name}-theirs"), "roleArn": format!("arn:aws:iam::{ACCOUNT}:role/{name}-theirs")},
    "resources": [
        {"type": "iam-oidc-provider", "id": untagged_provider, "arn": untagged_provider, "tool": "irsa-role"},
        {"type": "iam-oidc-provider", "id": provider_arn, "arn": provider_arn, "tool": "irsa-role"},
        role_entry(&name, &ours_arn),
        role_entry(&format!("{name}-b"), &untagged_arn),
        role_entry(&format!("{name}-c"), &attached_arn),
        {"type": "iam-role-policy", "id": format!("{name}-theirs/ampkit-amp-access"), "tool": "irsa-role",
         "details": {"roleName": format!("{name}-theirs"), "policyName": "ampkit-amp-access"}}
    ]});

    let dry = tool("teardown").args(["--dry-run"]).stdin_doc(&doc).run();
    dry.expect_code(1);
    rt.block_on(async {
        let iam = iam().await;
        assert!(role_exists(&iam, &name).await && provider_exists(&iam, &provider_arn).await);
        assert_eq!(
            inline_policies(&iam, &format!("{name}-theirs")).await,
            ["ampkit-amp-access"]
        );
    });

    let run = tool("teardown").stdin_doc(&doc).run();
    run.expect_code(1);
    let out = run.doc();
    assert_eq!(
        outcome_of(&out, &format!("{name}-theirs/ampkit-amp-access")),
        "deleted"
    );
    assert_eq!(outcome_of(&out, &format!("{name}-c")), "failed");
    assert!(reason_of(&out, &format!("{name}-c")).contains("-governance"));
    assert_eq!(outcome_of(&out, &format!("{name}-b")), "skipped");
    assert_eq!(outcome_of(&out, &name), "deleted");
    assert_eq!(outcome_of(&out, &provider_arn), "skipped");
    assert_eq!(outcome_of(&out, &untagged_provider), "skipped");
    assert!(reason_of(&out, &untagged_provider).contains("managed-by=ampkit"));
    let why = reason_of(&out, &provider_arn);
    assert!(
        why.contains(&format!("{name}-foreign")) && why.contains(&format!("{name}-b")),
        "{why}"
    );
    rt.block_on(async {
        let iam = iam().await;
        assert!(!role_exists(&iam, &name).await, "our role is gone");
        assert!(
            provider_exists(&iam, &provider_arn).await,
            "the provider others trust stays"
        );
        for other in [&untagged_provider, &foreign_provider] {
            assert!(provider_exists(&iam, other).await, "{other} survives");
        }
        for survivor in ["-b", "-c", "-foreign", "-theirs"] {
            assert!(
                role_exists(&iam, &format!("{name}{survivor}")).await,
                "{survivor} survives"
            );
        }
        assert_eq!(
            inline_policies(&iam, &format!("{name}-c")).await,
            ["ampkit-amp-access"],
            "a role teardown does not delete keeps its policies too"
        );
        assert!(
            inline_policies(&iam, &format!("{name}-theirs"))
                .await
                .is_empty()
        );
        // The other users go; then the provider is ours to delete.
        for user in ["-b", "-foreign"] {
            let role = format!("{name}{user}");
            iam.delete_role_policy()
                .role_name(&role)
                .policy_name("ampkit-amp-access")
                .send()
                .await
                .unwrap();
            iam.delete_role().role_name(&role).send().await.unwrap();
        }
    });
    let mut left = out.clone();
    left["resources"] = json!(
        out["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["id"] == provider_arn.as_str())
            .cloned()
            .collect::<Vec<_>>()
    );
    let second = tool("teardown").stdin_doc(&left).run();
    second.expect_code(0);
    assert_eq!(outcome_of(&second.doc(), &provider_arn), "deleted");
    rt.block_on(async {
        let iam = iam().await;
        assert!(!provider_exists(&iam, &provider_arn).await);
        for other in [&untagged_provider, &foreign_provider] {
            iam.delete_open_id_connect_provider()
                .open_id_connect_provider_arn(other)
                .send()
                .await
                .unwrap();
        }
        let role = format!("{name}-c");
        let managed = format!("arn:aws:iam::{ACCOUNT}:policy/{name}-governance");
        iam.detach_role_policy()
            .role_name(&role)
            .policy_arn(&managed)
            .send()
            .await
            .unwrap();
        iam.delete_policy()
            .policy_arn(&managed)
            .send()
            .await
            .unwrap();
        for role in [format!("{name}-c"), format!("{name}-theirs")] {
            let _ = iam
                .delete_role_policy()
                .role_name(&role)
                .policy_name("ampkit-amp-access")
                .send()
                .await;
            let _ = iam.delete_role().role_name(&role).send().await;
        }
    });
}

// ---- sns-alert's objects (moto SNS, amp-local rules) -----------------------------------------

async fn moto_sns() -> Value {
    let data: Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/moto-api/data.json", stack().moto_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    data["sns"].clone()
}

fn topic_sids(sns: &Value, arn: &str) -> Option<Vec<String>> {
    let topic = sns["Topic"].as_array()?.iter().find(|t| t["arn"] == arn)?;
    let policy: Value = serde_json::from_str(topic["policy"].as_str().unwrap_or("{}")).unwrap();
    Some(
        policy["Statement"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["Sid"].as_str().map(str::to_owned))
            .collect(),
    )
}

async fn subscriptions_of(topic_arn: &str) -> usize {
    let sns = aws_sdk_sns::Client::new(
        &aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await,
    );
    match sns
        .list_subscriptions_by_topic()
        .topic_arn(topic_arn)
        .send()
        .await
    {
        Ok(out) => out.subscriptions().len(),
        Err(_) => 0,
    }
}

fn has_rules(workspace: &str) -> (bool, bool) {
    runtime().block_on(async {
        let amp = amp_sdk(&stack().amp_url).await;
        let ns = amp
            .describe_rule_groups_namespace()
            .workspace_id(workspace)
            .name("ampkit-alerting")
            .send()
            .await
            .is_ok();
        let am = amp
            .describe_alert_manager_definition()
            .workspace_id(workspace)
            .send()
            .await
            .is_ok();
        (ns, am)
    })
}

#[test]
fn alerting_goes_with_its_workspace_and_a_found_topic_keeps_all_but_ours() {
    // Ours: workspace, topic, statement, subscription, rules, definition.
    let ours = ensured(&unique_name("td-alert"));
    let ws = ours["workspace"]["workspaceId"]
        .as_str()
        .unwrap()
        .to_owned();
    let topic_name = unique_name("grafana-td");
    let run = tool("sns-alert")
        .args(["--topic-name", &topic_name, "--email", "ops@example.com"])
        .stdin_doc(&ours)
        .run();
    run.expect_code(0);
    let doc = run.doc();
    let topic_arn = doc["alerting"]["topicArn"].as_str().unwrap().to_owned();
    // Someone's topic, with a similar name, which a second workspace's alerting merely uses.
    let theirs_name = format!("{topic_name}-theirs");
    let theirs = tool("sns-alert")
        .args(["--topic-name", &theirs_name])
        .stdin_doc(&ensured(&unique_name("td-alert2")))
        .run();
    theirs.expect_code(0);
    let theirs_arn = theirs.doc()["alerting"]["topicArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = ensured(&unique_name("td-alert3"));
    let other_ws = other["workspace"]["workspaceId"]
        .as_str()
        .unwrap()
        .to_owned();
    let on_theirs = tool("sns-alert")
        .args(["--topic-arn", &theirs_arn, "--email", "oncall@example.com"])
        .stdin_doc(&other)
        .run();
    on_theirs.expect_code(0);
    let on_theirs = on_theirs.doc();
    assert!(!ledger_kinds(&on_theirs).contains(&"sns-topic".to_owned()));
    let rt = runtime();
    let before = rt.block_on(moto_sns());
    let their_sids = topic_sids(&before, &theirs_arn).unwrap();
    assert_eq!(rt.block_on(subscriptions_of(&theirs_arn)), 1);
    assert_eq!(their_sids.len(), 3, "{their_sids:?}");

    let dry = tool("teardown").args(["--dry-run"]).stdin_doc(&doc).run();
    dry.expect_code(0);
    assert!(outcomes(&dry.doc()).iter().all(|(_, o)| o == "delete"));
    assert_eq!(has_rules(&ws), (true, true), "the dry run deleted nothing");

    let run = tool("teardown").stdin_doc(&doc).run();
    run.expect_code(0);
    assert_eq!(
        run.doc()["resources"],
        json!([]),
        "{}",
        run.doc()["teardown"]
    );
    let run = tool("teardown").stdin_doc(&on_theirs).run();
    run.expect_code(0);
    assert_eq!(
        run.doc()["resources"],
        json!([]),
        "{}",
        run.doc()["teardown"]
    );

    let after = rt.block_on(moto_sns());
    assert!(
        !rt.block_on(ampkit_e2e::sns_topic_exists(&topic_arn)),
        "our topic is gone"
    );
    assert_eq!(rt.block_on(subscriptions_of(&topic_arn)), 0);
    assert!(describe(&ws).is_none() && describe(&other_ws).is_none());
    // Their topic stays with its default statement and the first workspace's, minus ours.
    let left = topic_sids(&after, &theirs_arn).expect("their topic survives");
    assert_eq!(left, their_sids[..2].to_vec());
    assert!(rt.block_on(ampkit_e2e::sns_topic_exists(&theirs_arn)));
    assert_eq!(
        rt.block_on(subscriptions_of(&theirs_arn)),
        0,
        "our subscription went"
    );
}

#[test]
fn a_ledgered_topic_whose_tag_was_removed_is_kept() {
    let rt = runtime();
    let name = unique_name("grafana-td-untagged");
    let arn = rt.block_on(async {
        let sns = aws_sdk_sns::Client::new(
            &aws_config::defaults(aws_config::BehaviorVersion::latest())
                .load()
                .await,
        );
        let tag = aws_sdk_sns::types::Tag::builder()
            .key("managed-by")
            .value("ampkit")
            .build()
            .unwrap();
        let arn = sns
            .create_topic()
            .name(&name)
            .tags(tag)
            .send()
            .await
            .unwrap()
            .topic_arn()
            .unwrap()
            .to_owned();
        sns.untag_resource()
            .resource_arn(&arn)
            .tag_keys("managed-by")
            .send()
            .await
            .unwrap();
        arn
    });
    let doc = json!({"resources": [{"type": "sns-topic", "id": arn, "arn": arn, "region": stack().region,
        "tool": "sns-alert", "details": {"name": name}}]});
    let run = tool("teardown").stdin_doc(&doc).run();
    run.expect_code(1);
    assert_eq!(outcome_of(&run.doc(), &arn), "skipped");
    assert_eq!(run.doc()["resources"], doc["resources"]);
    assert!(
        rt.block_on(ampkit_e2e::sns_topic_exists(&arn)),
        "the topic survives"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_alerting_goes_route_rule_contact_point_folder_and_the_tree_keeps_the_rest() {
    for version in ["10.4.1", "12.0.2", "13.0.0"] {
        let fixture = GrafanaFixture::start(version).await;
        fixture.seed_route("team-pager", json!([["team", "=", "payments"]]));
        let token = mint_token(23);
        let input = json!({"grafana": {"url": fixture.url, "datasourceUid": "ampkit-ws-1", "version": "x"}});
        let topic = unique_name("grafana-td-cp");
        let run = tokio::task::block_in_place(|| {
            tool("sns-alert")
                .env("GRAFANA_TOKEN", &token)
                .args(["--target", "grafana", "--topic-name", &topic])
                .stdin_doc(&input)
                .run()
        });
        run.expect_code(0);
        let doc = run.doc();
        assert_eq!(
            ledger_kinds(&doc),
            [
                "sns-topic",
                "grafana-folder",
                "grafana-contact-point",
                "grafana-notification-route",
                "grafana-alert-rule"
            ]
        );
        let topic_arn = doc["alerting"]["topicArn"].as_str().unwrap().to_owned();
        let contact_point = doc["resources"][2]["id"].as_str().unwrap().to_owned();

        let before = fixture.mutating_calls();
        let dry = tokio::task::block_in_place(|| teardown(&token, &doc, &["--dry-run"]));
        dry.expect_code(0);
        assert!(
            outcomes(&dry.doc()).iter().all(|(_, o)| o == "delete"),
            "{}",
            dry.doc()["teardown"]
        );
        assert_eq!(
            fixture.mutating_calls(),
            before,
            "{version}: the dry run only read"
        );

        let run = tokio::task::block_in_place(|| teardown(&token, &doc, &[]));
        run.expect_code(0);
        assert_eq!(
            run.doc()["resources"],
            json!([]),
            "{}",
            run.doc()["teardown"]
        );
        let deletes: Vec<String> = fixture.mutating_calls()[before.len()..].to_vec();
        assert_eq!(
            deletes,
            [
                "PUT /api/v1/provisioning/policies".to_owned(),
                "DELETE /api/v1/provisioning/alert-rules/ampkit-downstreamlatencyp99high"
                    .to_owned(),
                format!("DELETE /api/v1/provisioning/contact-points/{contact_point}"),
                "DELETE /api/folders/ampkit-service-mesh".to_owned(),
            ],
            "{version}: route, rule, contact point, folder"
        );
        assert!(fixture.alert_rules().is_empty());
        let names: Vec<String> = fixture
            .contact_points()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            names,
            ["grafana-default-email", "team-pager"],
            "{version}: the default and someone's contact point stay"
        );
        let (tree, _) = fixture.policy_tree();
        assert_eq!(
            tree["routes"],
            json!([{"receiver": "team-pager", "object_matchers": [["team", "=", "payments"]]}]),
            "{version}: someone's route stays"
        );
        assert!(!fixture.has("ampkit-service-mesh"));
        assert!(!ampkit_e2e::sns_topic_exists(&topic_arn).await);
    }
}

// ---- A dry run makes no mutating call, recorded on the wire -----------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_sends_only_reads_to_aws_as_recorded_on_the_wire() {
    let stack = stack();
    // A ledger with every AWS kind the recipe makes: workspace, rules, definition, topic,
    // statement, subscription (sns-alert), role and OIDC provider.
    let ws = tokio::task::block_in_place(|| ensured(&unique_name("td-wire")));
    let alert = tokio::task::block_in_place(|| {
        tool("sns-alert")
            .args([
                "--topic-name",
                &unique_name("grafana-td-wire"),
                "--email",
                "ops@example.com",
            ])
            .stdin_doc(&ws)
            .run()
    });
    alert.expect_code(0);
    let mut doc = alert.doc();
    let name = unique_name("td-wire-role");
    let iam = iam().await;
    let provider_arn = make_provider(&iam, &name, true).await;
    let role_arn = make_role(&iam, &name, &trusting(&provider_arn), true).await;
    let ledger = doc["resources"].as_array_mut().unwrap();
    ledger.insert(1, json!({"type": "iam-oidc-provider", "id": provider_arn, "arn": provider_arn, "tool": "irsa-role"}));
    ledger.insert(2, role_entry(&name, &role_arn));

    let moto = ampkit_e2e::proxy::Recorder::start(stack.moto_url.clone()).await;
    let amp = ampkit_e2e::proxy::Recorder::start(stack.amp_url.clone()).await;
    let dry = tokio::task::block_in_place(|| {
        tool("teardown")
            .env("AWS_ENDPOINT_URL", &moto.url)
            .env("AWS_ENDPOINT_URL_AMP", &amp.url)
            .args(["--dry-run"])
            .stdin_doc(&doc)
            .run()
    });
    dry.expect_code(0);
    let plan = dry.doc();
    assert_eq!(plan["teardown"]["deleted"], 8, "{}", plan["teardown"]);
    let moto_calls = moto.calls();
    let amp_calls = amp.calls();
    assert!(
        moto_calls.contains(&"GetCallerIdentity".to_owned()),
        "{moto_calls:?}"
    );
    assert!(
        amp_calls.len() >= 3,
        "the AMP reads went through: {amp_calls:?}"
    );
    for call in &moto_calls {
        assert!(
            ["Get", "List"].iter().any(|p| call.starts_with(p)),
            "a dry run called {call}: {moto_calls:?}"
        );
    }
    for call in &amp_calls {
        assert!(
            call.starts_with("GET "),
            "a dry run called {call}: {amp_calls:?}"
        );
    }

    // The same ledger for real, through the recorders: the deletes show there, and go.
    let run = tokio::task::block_in_place(|| {
        tool("teardown")
            .env("AWS_ENDPOINT_URL", &moto.url)
            .env("AWS_ENDPOINT_URL_AMP", &amp.url)
            .stdin_doc(&doc)
            .run()
    });
    run.expect_code(0);
    let moto_calls = moto.calls();
    for mutation in [
        "DeleteRole",
        "DeleteOpenIDConnectProvider",
        "DeleteTopic",
        "Unsubscribe",
        "SetTopicAttributes",
    ] {
        assert!(
            moto_calls.iter().any(|c| c == mutation),
            "{mutation} in {moto_calls:?}"
        );
    }
    assert!(
        amp.calls()
            .iter()
            .any(|c| c.starts_with("DELETE /workspaces/"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_amg_teardown_makes_its_own_service_account_and_removes_a_leftover_one() {
    let grafana = GrafanaFixture::start("10.4.1").await;
    let host = grafana.url.trim_start_matches("http://").to_owned();
    let amg = ampkit_e2e::amg::AmgFixture::start("g-0123456789", &host).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dashboard_file(dir.path());
    let on_amg = |name: &str| {
        tool(name)
            .env("AWS_ENDPOINT_URL_GRAFANA", &amg.url)
            .env_remove("GRAFANA_TOKEN")
            .args([
                "--amg-workspace-id",
                "g-0123456789",
                "--grafana-url",
                &grafana.url,
            ])
    };
    // An import whose own service account could not be deleted: it is in the ledger.
    amg.fail_deletes(true);
    let run = tokio::task::block_in_place(|| {
        on_amg("grafana-import")
            .args(["--dashboard", file.to_str().unwrap()])
            .stdin_doc(&workspace_doc())
            .run()
    });
    run.expect_code(0);
    amg.fail_deletes(false);
    let doc = run.doc();
    assert_eq!(
        ledger_kinds(&doc),
        [
            "grafana-datasource",
            "grafana-folder",
            "grafana-dashboard",
            "grafana-service-account"
        ]
    );
    assert_eq!(amg.accounts().len(), 1);

    let run = tokio::task::block_in_place(|| on_amg("teardown").stdin_doc(&doc).run());
    run.expect_code(0);
    assert_eq!(
        run.doc()["resources"],
        json!([]),
        "{}",
        run.doc()["teardown"]
    );
    assert!(
        amg.accounts().is_empty(),
        "the leftover and teardown's own service account are gone"
    );
    for uid in ["mesh-overview", "ampkit-service-mesh", "ampkit-ws-td01"] {
        assert!(!grafana.has(uid), "{uid} is gone");
    }
}

#[test]
fn a_signal_stops_teardown_after_the_entry_in_hand_and_stdout_lists_what_is_left() {
    use std::io::{BufRead, Write};
    let alias = unique_name("td-term");
    let docs: Vec<Value> = (0..3).map(|i| ensured(&format!("{alias}-{i}"))).collect();
    let ids: Vec<String> = docs
        .iter()
        .map(|d| d["workspace"]["workspaceId"].as_str().unwrap().to_owned())
        .collect();
    let doc = json!({"resources": ledger_of(&docs.iter().collect::<Vec<_>>())});
    let mut child = std::process::Command::new(ampkit_e2e::bin("teardown"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(doc.to_string().as_bytes()).unwrap();
    drop(stdin);
    // Once the first entry is reported, the second one's delete is under way: SIGTERM then.
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let first_done = line.starts_with("teardown: [1/3]");
        seen.push(line);
        if first_done {
            break;
        }
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    seen.extend(lines.map_while(Result::ok));
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{seen:#?}");
    let out: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(out["teardown"]["interrupted"], "SIGTERM", "{seen:#?}");
    let left: Vec<&str> = out["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(!left.is_empty() && left.len() < 3, "{left:?}");
    assert!(describe(&ids[2]).is_none(), "the newest went first");
    // A second run on what stdout said finishes the job.
    let second = tool("teardown").stdin_doc(&out).run();
    second.expect_code(0);
    for id in &ids {
        assert!(describe(id).is_none(), "{id} is gone");
    }
}

// ---- EKS Pod Identity (the EKS fixture: moto has no Pod Identity API) ----------------------

/// A pod identity association made by `irsa-role --pod-identity` is deleted by teardown, through
/// the same lib module (`ampkit::eks`); an association someone else made is left alone, both
/// when nothing names it and when a ledger entry claims it (it is not tagged ours).
#[test]
fn a_pod_identity_association_irsa_role_made_is_deleted_and_a_foreign_one_stays() {
    let region = stack().region;
    let cluster = unique_name("td-pi");
    let eks = EksFixture::start(&cluster, &region);
    let role = unique_name("td-pi-role");
    eks.expect(&[
        "DescribeCluster",
        "ListPodIdentityAssociations",
        "CreatePodIdentityAssociation",
    ]);
    let made = tool("irsa-role")
        .args(["create", "--cluster", &cluster, "--role-name", &role])
        .args(["--pod-identity", "--no-kube"])
        .env("AWS_ENDPOINT_URL_EKS", &eks.url)
        .stdin_doc(&workspace_doc())
        .run();
    made.expect_code(0);
    eks.assert_satisfied();
    let mut doc = made.doc();
    let ours = doc["irsa"]["podIdentityAssociationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let entry = doc["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "eks-pod-identity-association")
        .unwrap()
        .clone();
    assert_eq!(entry["id"], ours.as_str());
    assert_eq!(entry["details"]["clusterName"], cluster.as_str());
    assert_eq!(entry["details"]["clusterArn"], eks.cluster_arn.as_str());

    // Two of someone else's: one nothing names, one a ledger entry claims.
    let role_arn = "arn:aws:iam::123456789012:role/payments";
    let unnamed = eks.add_foreign("payments", "api", role_arn);
    let claimed = eks.add_foreign("payments", "worker", role_arn);
    let mut claim = entry.clone();
    claim["id"] = json!(claimed);
    doc["resources"].as_array_mut().unwrap().push(claim);

    // Newest first: the claimed one is read and kept, ours read and deleted, then the role.
    eks.expect(&[
        "DescribePodIdentityAssociation",
        "DescribePodIdentityAssociation",
        "DeletePodIdentityAssociation",
    ]);
    let torn = tool("teardown")
        .env("AWS_ENDPOINT_URL_EKS", &eks.url)
        .stdin_doc(&doc)
        .run();
    let out = torn.doc();
    assert_eq!(outcome_of(&out, &ours), "deleted", "{}", out["teardown"]);
    assert_eq!(outcome_of(&out, &claimed), "skipped");
    assert!(
        reason_of(&out, &claimed).contains("managed-by=ampkit"),
        "{}",
        out["teardown"]
    );
    assert_eq!(outcome_of(&out, &role), "deleted");
    // What EKS holds now: exactly the two foreign associations.
    let left: Vec<String> = eks
        .associations()
        .iter()
        .map(|a| a["associationId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left, [unnamed, claimed.clone()]);
    let deletes = eks.received("DeletePodIdentityAssociation");
    assert_eq!(deletes, [json!({"associationId": ours})]);
    // The claimed one stays in the ledger, so the run says something is left.
    torn.expect_code(1);
    assert_eq!(out["resources"].as_array().unwrap().len(), 1);
    assert_eq!(out["resources"][0]["id"], claimed.as_str());
}
