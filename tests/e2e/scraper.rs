//! AMP's managed collector end to end, made by the tools as the recipe makes it: the
//! configuration rendered by render-agent-config, the scraper made (then found again) by
//! amp-workspace and waited for until ACTIVE, the mesh's series arriving in the workspace
//! (amp-local runs the scraper against the local mesh), and teardown deleting it until AMP no
//! longer describes it. Bad input is refused before anything is made.
//!
//! The scraper's role is mapped to the Kubernetes user `aps-collector-user` with an EKS access
//! entry. moto has no access-entry API, so those tests send EKS to the fixture
//! (`AWS_ENDPOINT_URL_EKS`) while AMP stays on the local stack's amp-local.

use ampkit_e2e::{amp_sdk, create_eks_cluster, new_workspace, runtime, stack, tool, unique_name};
use serde_json::{Value, json};

use crate::eks_fixture::EksFixture;

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
    (cluster, rendered(dir, prefix))
}

/// A workspace and render-agent-config's managed-scraper files in `dir`.
fn rendered(dir: &std::path::Path, prefix: &str) -> Value {
    let stack = stack();
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
    rendered.doc()
}

#[test]
fn the_recipe_makes_a_scraper_whose_series_arrive_and_teardown_deletes_it() {
    let stack = stack();
    let dir = tempfile::tempdir().unwrap();
    let (cluster, doc) = prepared(dir.path(), "scraper");
    assert!(dir.path().join("scraper-rbac.yaml").exists());

    // moto has no access-entry API (the access entry is tested against the EKS fixture below).
    let made = tool("amp-workspace")
        .on(&stack)
        .args(["scraper", "--cluster", &cluster, "--no-access-entry"])
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
        .args(["scraper", "--cluster", &cluster, "--no-access-entry"])
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

    // An EKS without the access-entry API (moto's answer is a bare 404): said in one line
    // with the way out, before the scraper is made.
    let no_api = tool("amp-workspace")
        .on(&stack)
        .args(["scraper", "--cluster", &cluster])
        .stdin_doc(&doc)
        .run();
    no_api.expect_code(2);
    let error = &no_api.error()["error"];
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("no access-entry API"),
        "{}",
        no_api.stderr
    );
    assert!(
        error["hint"]
            .as_str()
            .unwrap()
            .contains("--no-access-entry"),
        "{}",
        no_api.stderr
    );
    assert_eq!(
        no_api.doc()["resources"],
        doc["resources"],
        "nothing was ledgered"
    );
    assert_eq!(of_this_cluster(), 0, "nothing was made");
}

// ---- The access entry (the EKS fixture: moto has no access-entry API) ----------------------

/// `amp-workspace scraper` on a cluster EKS serves from the fixture (AMP on amp-local).
fn scraper_on(eks: &EksFixture, cluster: &str, extra: &[&str], doc: &Value) -> ampkit_e2e::Run {
    tool("amp-workspace")
        .on(&stack())
        .args(["scraper", "--cluster", cluster])
        .args(extra)
        .env("AWS_ENDPOINT_URL_EKS", &eks.url)
        .stdin_doc(doc)
        .run()
}

/// The ledger entries of one type.
fn ledgered<'a>(doc: &'a Value, kind: &str) -> Vec<&'a Value> {
    doc["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == kind)
        .collect()
}

/// The principal AWS's AMP guide says to map for a scraper's role: its ARN without the path.
fn without_path(role_arn: &str) -> String {
    let (head, rest) = role_arn.split_once(":role/").unwrap();
    format!("{head}:role/{}", rest.rsplit('/').next().unwrap())
}

#[test]
fn the_scrapers_role_is_mapped_to_aps_collector_user_ledgered_and_torn_down() {
    let stack = stack();
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_name("scraper-ae");
    let eks = EksFixture::start(&cluster, &stack.region);
    let doc = rendered(dir.path(), "scraper-ae");

    // The mode and the API are asked before the scraper is made, the entry after it is ACTIVE.
    eks.expect(&[
        "DescribeCluster",
        "ListAccessEntries",
        "ListAccessEntries",
        "CreateAccessEntry",
    ]);
    let made = scraper_on(&eks, &cluster, &[], &doc);
    made.expect_code(0);
    eks.assert_satisfied();
    let doc = made.doc();
    assert_eq!(doc["scraper"]["status"], "ACTIVE", "{doc}");
    assert_eq!(doc["scraper"]["clusterArn"], eks.cluster_arn.as_str());
    let role = doc["scraper"]["roleArn"].as_str().unwrap().to_owned();
    assert!(
        role.contains(":role/aws-service-role/scraper.aps.amazonaws.com/"),
        "AMP describes the service-linked role with its path: {role}"
    );
    let principal = without_path(&role);

    // What EKS was asked: the role, without its path, as the user the rendered RBAC binds.
    let created = eks.received("CreateAccessEntry");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["principalArn"], principal.as_str());
    assert_eq!(created[0]["username"], "aps-collector-user");
    assert_eq!(created[0]["type"], "STANDARD");
    assert_eq!(created[0]["tags"], json!({"managed-by": "ampkit"}));
    assert_eq!(
        created[0]["username"],
        render_agent_config::k8s::SCRAPER_USER
    );
    let rbac = std::fs::read_to_string(dir.path().join("scraper-rbac.yaml")).unwrap();
    assert!(
        rbac.contains("kind: User") && rbac.contains("name: aps-collector-user"),
        "{rbac}"
    );
    let held = eks.access_entries();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["principalArn"], principal.as_str());
    assert_eq!(held[0]["username"], "aps-collector-user");

    // In the ledger after the scraper (so teardown deletes it first), with what teardown needs.
    let entries = ledgered(&doc, "eks-access-entry");
    assert_eq!(entries.len(), 1, "{doc}");
    let entry = entries[0];
    assert_eq!(entry["id"], principal.as_str());
    assert_eq!(entry["arn"], held[0]["accessEntryArn"]);
    assert_eq!(entry["region"], stack.region.as_str());
    assert_eq!(entry["tool"], "amp-workspace");
    assert_eq!(
        entry["details"],
        json!({"clusterName": cluster, "clusterArn": eks.cluster_arn})
    );
    let types: Vec<&Value> = doc["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["type"])
        .collect();
    let scraper_at = types.iter().position(|t| *t == "amp-scraper").unwrap();
    let entry_at = types.iter().position(|t| *t == "eks-access-entry").unwrap();
    assert!(scraper_at < entry_at, "{types:?}");
    assert_eq!(
        doc["scraper"]["accessEntry"],
        json!({"principalArn": principal, "username": "aps-collector-user", "arn": held[0]["accessEntryArn"]})
    );

    // A second run finds the entry (and the scraper) and makes nothing.
    eks.expect(&[
        "DescribeCluster",
        "ListAccessEntries",
        "ListAccessEntries",
        "DescribeAccessEntry",
    ]);
    let again = scraper_on(&eks, &cluster, &[], &doc);
    again.expect_code(0);
    eks.assert_satisfied();
    assert_eq!(again.doc()["resources"], doc["resources"]);
    assert_eq!(eks.received("CreateAccessEntry").len(), 1);
    assert_eq!(eks.access_entries(), held);

    // Teardown: the entry (read, ours, deleted), then the scraper on amp-local.
    let id = doc["scraper"]["scraperId"].as_str().unwrap().to_owned();
    eks.expect(&["DescribeAccessEntry", "DeleteAccessEntry"]);
    let torn = tool("teardown")
        .on(&stack)
        .env("AWS_ENDPOINT_URL_EKS", &eks.url)
        .stdin_doc(&doc)
        .run();
    torn.expect_code(0);
    eks.assert_satisfied();
    assert_eq!(torn.doc()["resources"], json!([]), "{}", torn.stderr);
    assert_eq!(
        eks.received("DeleteAccessEntry"),
        [json!({"principalArn": principal})]
    );
    assert_eq!(
        eks.access_entries(),
        Vec::<Value>::new(),
        "EKS holds no entry"
    );
    assert!(
        !scrapers().iter().any(|(s, _)| *s == id),
        "AMP no longer describes {id}"
    );
}

#[test]
fn a_config_map_cluster_is_refused_before_anything_is_made_and_the_opt_out_makes_no_entry() {
    let stack = stack();
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_name("scraper-cm");
    let eks = EksFixture::start(&cluster, &stack.region);
    eks.set_authentication_mode("CONFIG_MAP");
    let doc = rendered(dir.path(), "scraper-cm");
    let of_this_cluster = || -> usize {
        scrapers()
            .iter()
            .filter(|(_, arn)| *arn == eks.cluster_arn)
            .count()
    };

    eks.expect(&["DescribeCluster"]);
    let refused = scraper_on(&eks, &cluster, &[], &doc);
    refused.expect_code(2);
    eks.assert_satisfied();
    let error = &refused.error()["error"];
    assert_eq!(error["kind"], "input");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(&cluster) && message.contains("CONFIG_MAP"),
        "{message}"
    );
    let hint = error["hint"].as_str().unwrap();
    assert!(
        hint.contains("authenticationMode=API_AND_CONFIG_MAP")
            && hint.contains("--no-access-entry"),
        "{hint}"
    );
    let human: Vec<&str> = refused
        .stderr
        .lines()
        .filter(|l| l.starts_with("amp-workspace: error:"))
        .collect();
    assert_eq!(human.len(), 1, "{}", refused.stderr);
    assert!(human[0].contains("CONFIG_MAP") && human[0].contains("--no-access-entry"));
    assert_eq!(refused.doc()["resources"], doc["resources"]);
    assert_eq!(of_this_cluster(), 0, "no scraper was made");
    assert!(eks.access_entries().is_empty());

    // The user maps the role another way: the scraper is made, and no access entry.
    eks.expect(&["DescribeCluster"]);
    let made = scraper_on(&eks, &cluster, &["--no-access-entry"], &doc);
    made.expect_code(0);
    eks.assert_satisfied();
    let made = made.doc();
    assert_eq!(made["scraper"]["status"], "ACTIVE", "{made}");
    assert_eq!(ledgered(&made, "amp-scraper").len(), 1);
    assert!(ledgered(&made, "eks-access-entry").is_empty(), "{made}");
    assert!(made["scraper"].get("accessEntry").is_none(), "{made}");
    assert!(eks.received("CreateAccessEntry").is_empty());
    assert!(eks.access_entries().is_empty());
    assert_eq!(of_this_cluster(), 1);

    // Teardown asks EKS nothing: there is no entry of ours.
    let torn = tool("teardown")
        .on(&stack)
        .env("AWS_ENDPOINT_URL_EKS", &eks.url)
        .stdin_doc(&made)
        .run();
    torn.expect_code(0);
    assert_eq!(torn.doc()["resources"], json!([]), "{}", torn.stderr);
    assert_eq!(of_this_cluster(), 0);
}

/// AMP makes an access entry itself for a scraper on a cluster whose mode includes the API
/// (its guide, "Configuring your Amazon EKS cluster"); it names the role as it likes. Such an
/// entry is found, left as it is, and never ledgered, so teardown leaves it.
#[test]
fn an_access_entry_someone_else_made_for_the_role_is_found_and_left_alone() {
    let stack = stack();
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_name("scraper-fe");
    let eks = EksFixture::start(&cluster, &stack.region);
    let doc = rendered(dir.path(), "scraper-fe");

    eks.expect(&["DescribeCluster"]);
    let first = scraper_on(&eks, &cluster, &["--no-access-entry"], &doc);
    first.expect_code(0);
    eks.assert_satisfied();
    let doc = first.doc();
    let role = doc["scraper"]["roleArn"].as_str().unwrap().to_owned();
    // With its path, under EKS's own username for it.
    let theirs = "arn:aws:sts::123456789012:assumed-role/scraper/{{SessionName}}";
    eks.add_foreign_access_entry(&role, theirs);

    eks.expect(&[
        "DescribeCluster",
        "ListAccessEntries",
        "ListAccessEntries",
        "DescribeAccessEntry",
    ]);
    let again = scraper_on(&eks, &cluster, &[], &doc);
    again.expect_code(0);
    eks.assert_satisfied();
    let again_doc = again.doc();
    assert!(eks.received("CreateAccessEntry").is_empty());
    assert_eq!(
        eks.received("DescribeAccessEntry"),
        [json!({"principalArn": role})]
    );
    assert_eq!(again_doc["resources"], doc["resources"], "nothing ledgered");
    assert_eq!(
        again_doc["scraper"]["accessEntry"]["principalArn"],
        role.as_str()
    );
    assert_eq!(again_doc["scraper"]["accessEntry"]["username"], theirs);
    assert!(
        again.stderr.contains("left as it is") && again.stderr.contains("aps-collector-user"),
        "{}",
        again.stderr
    );

    let torn = tool("teardown")
        .on(&stack)
        .env("AWS_ENDPOINT_URL_EKS", &eks.url)
        .stdin_doc(&again_doc)
        .run();
    torn.expect_code(0);
    assert_eq!(torn.doc()["resources"], json!([]), "{}", torn.stderr);
    let left = eks.access_entries();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["principalArn"], role.as_str());
}
