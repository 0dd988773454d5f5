//! amp-workspace against two independent implementations of AMP's control plane: amp-local
//! (which has a CREATING phase, so the waits are exercised) and moto. What the tool reports is
//! read back with the AWS SDK itself, not with the tool.

use ampkit_e2e::runtime;
use ampkit_e2e::{amp_sdk, stack, tool, unique_name};
use serde_json::{Value, json};

/// The AMP endpoints to test against: (name, URL).
fn backends() -> Vec<(&'static str, String)> {
    let stack = stack();
    vec![("amp-local", stack.amp_url), ("moto", stack.moto_url)]
}

fn amp_workspace(endpoint: &str) -> ampkit_e2e::Invocation {
    tool("amp-workspace").env("AWS_ENDPOINT_URL_AMP", endpoint)
}

/// Read a workspace back with the SDK: (alias, status, tags) or None when it is gone.
fn read_back(endpoint: &str, id: &str) -> Option<(Option<String>, String, Value)> {
    runtime().block_on(async {
        match amp_sdk(endpoint)
            .await
            .describe_workspace()
            .workspace_id(id)
            .send()
            .await
        {
            Ok(out) => {
                let ws = out.workspace.expect("a workspace");
                let status = ws
                    .status()
                    .map(|s| s.status_code().as_str().to_owned())
                    .unwrap_or_default();
                let tags = serde_json::to_value(ws.tags().cloned().unwrap_or_default())
                    .expect("tags are JSON");
                Some((ws.alias().map(str::to_owned), status, tags))
            }
            Err(err) => {
                let not_found = err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception());
                assert!(not_found, "describe failed: {err:?}");
                None
            }
        }
    })
}

/// Remove a test's workspace (best effort; absent is fine).
fn cleanup(endpoint: &str, id: &str) {
    let _ = amp_workspace(endpoint)
        .args(["delete", "--workspace-id", id])
        .run();
}

fn ledger(doc: &Value) -> Vec<Value> {
    doc["resources"].as_array().cloned().unwrap_or_default()
}

#[test]
fn ensure_twice_creates_one_workspace_and_records_it_once() {
    for (name, endpoint) in backends() {
        let alias = unique_name("ensure");
        let first = amp_workspace(&endpoint)
            .args(["ensure", "--alias", &alias, "--tag", "team=observability"])
            .stdin_doc(&json!({"keep": {"me": [1, 2]}}))
            .run();
        first.expect_code(0);
        let doc = first.doc();
        let ws = &doc["workspace"];
        let id = ws["workspaceId"].as_str().expect("workspaceId").to_owned();
        assert_eq!(
            doc["keep"],
            json!({"me": [1, 2]}),
            "{name}: other keys are kept"
        );
        assert_eq!(ws["alias"], alias.as_str(), "{name}");
        assert_eq!(ws["status"], "ACTIVE", "{name}: ensure waits until ACTIVE");
        assert_eq!(ws["region"], stack().region.as_str(), "{name}");
        let endpoint_url = ws["prometheusEndpoint"].as_str().unwrap();
        assert!(
            endpoint_url.ends_with(&format!("/workspaces/{id}/")),
            "{name}: {endpoint_url}"
        );
        assert_eq!(
            ws["remoteWriteUrl"],
            format!("{endpoint_url}api/v1/remote_write")
        );
        assert_eq!(ws["queryUrl"], format!("{endpoint_url}api/v1/query"));
        assert!(
            ws["arn"].as_str().unwrap().contains(&id),
            "{name}: {}",
            ws["arn"]
        );
        let entries = ledger(&doc);
        assert_eq!(entries.len(), 1, "{name}: {entries:?}");
        assert_eq!(entries[0]["type"], "amp-workspace");
        assert_eq!(entries[0]["id"], id.as_str());
        assert_eq!(entries[0]["tool"], "amp-workspace");
        assert_eq!(entries[0]["arn"], ws["arn"]);

        // The service itself has it, tagged.
        let (sdk_alias, status, tags) = read_back(&endpoint, &id).expect("the workspace exists");
        assert_eq!(sdk_alias.as_deref(), Some(alias.as_str()), "{name}");
        assert_eq!(status, "ACTIVE", "{name}");
        assert_eq!(tags["managed-by"], "ampkit", "{name}: {tags}");
        assert_eq!(tags["team"], "observability", "{name}: {tags}");

        // Again, fed the first run's document: found, not created, not added to the ledger.
        let second = amp_workspace(&endpoint)
            .args(["ensure", "--alias", &alias])
            .stdin_doc(&doc)
            .run();
        second.expect_code(0);
        let doc2 = second.doc();
        assert_eq!(doc2["workspace"]["workspaceId"], id.as_str(), "{name}");
        assert_eq!(ledger(&doc2), entries, "{name}: the ledger is unchanged");

        // And from an empty document: no ledger at all.
        let third = amp_workspace(&endpoint)
            .args(["ensure", "--alias", &alias])
            .run();
        third.expect_code(0);
        assert_eq!(third.doc()["workspace"]["workspaceId"], id.as_str());
        assert!(
            third.doc().get("resources").is_none(),
            "{name}: found is not created"
        );

        // Exactly one workspace has the alias.
        let listed = amp_workspace(&endpoint)
            .args(["list", "--alias", &alias])
            .run();
        listed.expect_code(0);
        let listed = listed.doc();
        let ids: Vec<&str> = listed["workspaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["alias"] == alias.as_str())
            .map(|w| w["workspaceId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [id.as_str()], "{name}");
        cleanup(&endpoint, &id);
    }
}

#[test]
fn create_describe_list_wait_delete() {
    for (name, endpoint) in backends() {
        let alias = unique_name("lifecycle");
        let created = amp_workspace(&endpoint)
            .args(["create", "--alias", &alias, "--tag", "env=test"])
            .run();
        created.expect_code(0);
        let doc = created.doc();
        let id = doc["workspace"]["workspaceId"].as_str().unwrap().to_owned();
        assert_eq!(doc["workspace"]["status"], "ACTIVE", "{name}");
        assert_eq!(ledger(&doc).len(), 1, "{name}");

        // describe takes the id from the document and keeps the ledger.
        let described = amp_workspace(&endpoint).arg_doc("describe", &doc);
        described.expect_code(0);
        assert_eq!(described.doc()["workspace"], doc["workspace"], "{name}");
        assert_eq!(ledger(&described.doc()), ledger(&doc), "{name}");

        // list sees it, with our tags, by alias prefix.
        let prefix = &alias[..alias.len() - 3];
        let listed = amp_workspace(&endpoint)
            .args(["list", "--alias", prefix])
            .run();
        listed.expect_code(0);
        let list = listed.doc()["workspaces"].as_array().unwrap().clone();
        let ours = list
            .iter()
            .find(|w| w["workspaceId"] == id.as_str())
            .unwrap_or_else(|| panic!("{name}: {id} not in {list:?}"));
        assert_eq!(ours["alias"], alias.as_str());
        assert_eq!(ours["tags"]["managed-by"], "ampkit");
        assert_eq!(ours["tags"]["env"], "test");
        assert!(
            list.iter()
                .all(|w| w["alias"].as_str().unwrap_or("").starts_with(prefix))
        );

        // wait for ACTIVE returns at once for an active workspace.
        let waited = amp_workspace(&endpoint).arg_doc("wait", &doc);
        waited.expect_code(0);
        assert_eq!(waited.doc()["workspace"]["status"], "ACTIVE");

        // delete --wait: gone from the service, marked in the document, ledger untouched.
        let deleted = amp_workspace(&endpoint)
            .args(["delete", "--wait"])
            .stdin_doc(&doc)
            .run();
        deleted.expect_code(0);
        assert_eq!(deleted.doc()["workspace"]["status"], "DELETED", "{name}");
        assert_eq!(ledger(&deleted.doc()), ledger(&doc));
        assert!(
            read_back(&endpoint, &id).is_none(),
            "{name}: still there after delete --wait"
        );

        // Now it is unknown.
        let again = amp_workspace(&endpoint)
            .args(["describe", "--workspace-id", &id])
            .run();
        again.expect_code(3);
        assert_eq!(again.error()["error"]["kind"], "not-found");
    }
}

#[test]
fn two_workspaces_with_one_alias_are_refused_and_listed() {
    for (name, endpoint) in backends() {
        let alias = unique_name("twins");
        let a = amp_workspace(&endpoint)
            .args(["create", "--alias", &alias])
            .run();
        let b = amp_workspace(&endpoint)
            .args(["create", "--alias", &alias])
            .run();
        a.expect_code(0);
        b.expect_code(0);
        let id_a = a.doc()["workspace"]["workspaceId"]
            .as_str()
            .unwrap()
            .to_owned();
        let id_b = b.doc()["workspace"]["workspaceId"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_ne!(id_a, id_b, "{name}: create always creates");

        let input = json!({"resources": [{"type": "x", "id": "y", "tool": "z"}]});
        let ensure = amp_workspace(&endpoint)
            .args(["ensure", "--alias", &alias])
            .stdin_doc(&input)
            .run();
        ensure.expect_code(2);
        let message = ensure.error()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            message.contains(&id_a) && message.contains(&id_b),
            "{name}: {message}"
        );
        // Nothing was picked or created, and the document passes through.
        assert_eq!(ensure.doc(), input);
        cleanup(&endpoint, &id_a);
        cleanup(&endpoint, &id_b);
    }
}

#[test]
fn unknown_ids_are_not_found_and_missing_ids_are_usage_errors() {
    for (name, endpoint) in backends() {
        for args in [
            vec![
                "describe",
                "--workspace-id",
                "ws-00000000-0000-0000-0000-000000000000",
            ],
            vec![
                "delete",
                "--workspace-id",
                "ws-00000000-0000-0000-0000-000000000000",
            ],
            vec![
                "wait",
                "--workspace-id",
                "ws-00000000-0000-0000-0000-000000000000",
            ],
        ] {
            let run = amp_workspace(&endpoint).args(&args).run();
            run.expect_code(3);
            let error = run.error();
            assert_eq!(error["error"]["kind"], "not-found", "{name} {args:?}");
            assert!(
                error["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("ws-00000000")
            );
        }
        let run = amp_workspace(&endpoint).args(["describe"]).run();
        run.expect_code(2);
        assert!(
            run.error()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("--workspace-id")
        );
    }
}

#[test]
fn an_unreachable_endpoint_fails_fast_with_exit_1() {
    let run = amp_workspace("http://127.0.0.1:9")
        .args(["describe", "--workspace-id", "ws-1"])
        .run();
    run.expect_code(1);
    assert_eq!(run.error()["error"]["kind"], "remote");
}

/// Small helper so that `tool(...).arg_doc("describe", &doc)` reads like the shell.
trait ArgDoc {
    fn arg_doc(self, sub: &str, doc: &Value) -> ampkit_e2e::Run;
}

impl ArgDoc for ampkit_e2e::Invocation {
    fn arg_doc(self, sub: &str, doc: &Value) -> ampkit_e2e::Run {
        self.args([sub]).stdin_doc(doc).run()
    }
}
