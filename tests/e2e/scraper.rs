//! AMP's managed collector end to end, made by the tools as the recipe makes it: the
//! configuration rendered by render-agent-config, the scraper made (then found again) by
//! amp-workspace and waited for until ACTIVE, the mesh's series arriving in the workspace
//! (amp-local runs the scraper against the local mesh), and teardown deleting it until AMP no
//! longer describes it. Bad input is refused before anything is made.

use ampkit_e2e::{amp_sdk, create_eks_cluster, new_workspace, runtime, stack, tool, unique_name};
use serde_json::Value;

/// The scrapers amp-local describes (any status), as (id, source cluster ARN).
fn scrapers() -> Vec<(String, String)> {
    runtime().block_on(async {
        amp_sdk(&stack().amp_url)
            .await
            .list_scrapers()
            .send()
            .await
            .unwrap()
            .scrapers()
            .iter()
            .map(|s| {
                let cluster = s
                    .source()
                    .and_then(|source| source.as_eks_configuration().ok())
                    .map(|eks| eks.cluster_arn().to_owned())
                    .unwrap_or_default();
                (s.scraper_id().to_owned(), cluster)
            })
            .collect()
    })
}

/// A workspace, a cluster in moto, and render-agent-config's managed-scraper files in `dir`.
fn prepared(dir: &std::path::Path, prefix: &str) -> (String, Value) {
    let stack = stack();
    let cluster = unique_name(prefix);
    runtime().block_on(async { create_eks_cluster(&stack.aws_config().await, &cluster).await });
    let doc = new_workspace(&stack, prefix);
    let rendered = tool("render-agent-config")
        .on(&stack)
        .args([
            "--flavor",
            "managed-scraper",
            "--scrape-interval",
            "5s",
            "--out",
        ])
        .args([dir])
        .stdin_doc(&doc)
        .run();
    rendered.expect_code(0);
    (cluster, rendered.doc())
}

#[test]
fn the_recipe_makes_a_scraper_whose_series_arrive_and_teardown_deletes_it() {
    let stack = stack();
    let dir = tempfile::tempdir().unwrap();
    let (cluster, doc) = prepared(dir.path(), "scraper");
    assert!(dir.path().join("scraper-rbac.yaml").exists());

    let made = tool("amp-workspace")
        .on(&stack)
        .args(["scraper", "--cluster", &cluster])
        .stdin_doc(&doc)
        .run();
    made.expect_code(0);
    let doc = made.doc();
    let id = doc["scraper"]["scraperId"].as_str().unwrap().to_owned();
    assert_eq!(doc["scraper"]["status"], "ACTIVE", "{doc}");
    assert_eq!(doc["scraper"]["workspaceArn"], doc["workspace"]["arn"]);
    let ledgered: Vec<&Value> = doc["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == "amp-scraper")
        .collect();
    assert_eq!(ledgered.len(), 1, "{doc}");
    assert_eq!(ledgered[0]["id"], id.as_str());

    // The mesh, scraped by the scraper, labelled by its own relabelling.
    let arrived = tool("promql")
        .on(&stack)
        .args([
            "wait",
            "count(envoy_server_live{service=\"dj\",namespace=\"prod\"}) > 0",
            "--timeout",
            "60s",
        ])
        .stdin_doc(&doc)
        .run();
    arrived.expect_code(0);

    // A second run finds it and makes nothing.
    let again = tool("amp-workspace")
        .on(&stack)
        .args(["scraper", "--cluster", &cluster])
        .stdin_doc(&doc)
        .run();
    again.expect_code(0);
    assert_eq!(again.doc()["resources"], doc["resources"]);
    assert_eq!(again.doc()["scraper"]["scraperId"], id.as_str());

    let torn = tool("teardown").on(&stack).stdin_doc(&doc).run();
    torn.expect_code(0);
    assert_eq!(torn.doc()["resources"], serde_json::json!([]));
    assert!(
        !scrapers().iter().any(|(s, _)| *s == id),
        "AMP no longer describes {id}"
    );
}

#[test]
fn a_configuration_amp_would_refuse_is_exit_2_and_makes_nothing() {
    let stack = stack();
    let dir = tempfile::tempdir().unwrap();
    let (cluster, doc) = prepared(dir.path(), "scraper-bad");
    // Other tests make scrapers meanwhile: only this test's cluster counts.
    let of_this_cluster = || -> usize {
        scrapers()
            .iter()
            .filter(|(_, arn)| arn.ends_with(&format!("/{cluster}")))
            .count()
    };

    let writes = dir.path().join("writes.yml");
    std::fs::write(
        &writes,
        "scrape_configs:\n- job_name: x\nremote_write:\n- url: http://127.0.0.1:1/\n",
    )
    .unwrap();
    let refused = tool("amp-workspace")
        .on(&stack)
        .args(["scraper", "--cluster", &cluster, "--scrape-configuration"])
        .args([&writes])
        .stdin_doc(&doc)
        .run();
    refused.expect_code(2);
    assert!(
        refused.error()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("remote_write"),
        "{}",
        refused.stderr
    );

    let mut no_agent = doc.clone();
    no_agent.as_object_mut().unwrap().remove("agent");
    let refused = tool("amp-workspace")
        .on(&stack)
        .args(["scraper", "--cluster", &cluster])
        .stdin_doc(&no_agent)
        .run();
    refused.expect_code(2);
    assert!(
        refused.error()["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("managed-scraper")
    );

    let missing = tool("amp-workspace")
        .on(&stack)
        .args(["scraper", "--cluster", "no-such-cluster"])
        .stdin_doc(&doc)
        .run();
    missing.expect_code(3);
    assert_eq!(of_this_cluster(), 0, "nothing was made");
}
