//! Reliability of the whole chain on the local stack: garbage on stdin is refused by every tool
//! without a panic and without creating anything; the recipe run twice creates nothing the
//! second time and one teardown leaves none of it; a service stopped in the middle of the
//! recipe makes the failing tool exit 1 with the ledger of what was created so far, from which
//! teardown leaves zero once the service is back. Counts are read from moto and amp-local
//! with the AWS SDK, not from the tools.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};

use ampkit_e2e::runtime;
use ampkit_e2e::{Invocation, Run, Stack, amp_sdk, local_stack, repo_root, unique_name};
use serde_json::{Value, json};

/// Everything here runs on a private stack of its own, one test at a time per stack: the
/// tests that stop services on the fault stack, those that count every object in moto and
/// amp-local (or compare Envoy's counters exactly) on the count stack. Neither kind may meet
/// the tests running at the same time on the main stack, nor each other.
#[derive(Clone, Copy)]
enum Turn {
    /// Stops moto or amp-local half-way.
    Faults,
    /// Counts everything that exists, or every request Envoy saw.
    Counts,
}

static FAULTS: std::sync::Mutex<()> = std::sync::Mutex::new(());
static COUNTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

thread_local! {
    /// The stack of the test running on this thread (libtest runs each test on its own).
    static ON: std::cell::RefCell<Option<Stack>> = const { std::cell::RefCell::new(None) };
}

/// Wait for the stack of `turn` to be free, and run this test's helpers on it.
fn take_turn(turn: Turn) -> std::sync::MutexGuard<'static, ()> {
    let (lock, stack) = match turn {
        Turn::Faults => (&FAULTS, ampkit_e2e::fault_stack()),
        Turn::Counts => (&COUNTS, ampkit_e2e::count_stack()),
    };
    let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
    ON.with(|on| *on.borrow_mut() = Some(stack));
    guard
}

/// The stack this test took its turn on.
fn stack() -> Stack {
    ON.with(|on| on.borrow().clone())
        .expect("the test takes its turn (take_turn) before it uses a stack")
}

/// A tool pointed at this test's stack.
fn tool(name: &str) -> Invocation {
    ampkit_e2e::tool(name).on(&stack())
}

async fn aws() -> aws_config::SdkConfig {
    stack().aws_config().await
}

/// What exists, by kind, in amp-local and moto.
fn counts() -> Value {
    runtime().block_on(async {
        let config = aws().await;
        let amp = amp_sdk(&stack().amp_url).await;
        let workspaces: Vec<String> = amp
            .list_workspaces()
            .send()
            .await
            .unwrap()
            .workspaces()
            .iter()
            .map(|w| w.workspace_id().to_owned())
            .collect();
        let mut namespaces = 0;
        let mut definitions = 0;
        for ws in &workspaces {
            namespaces += amp
                .list_rule_groups_namespaces()
                .workspace_id(ws)
                .send()
                .await
                .map(|o| o.rule_groups_namespaces().len())
                .unwrap_or(0);
            definitions += usize::from(
                amp.describe_alert_manager_definition()
                    .workspace_id(ws)
                    .send()
                    .await
                    .is_ok(),
            );
        }
        let scrapers = amp.list_scrapers().send().await.unwrap().scrapers().len();
        let iam = aws_sdk_iam::Client::new(&config);
        let sns = aws_sdk_sns::Client::new(&config);
        json!({
            "workspaces": workspaces.len(),
            "scrapers": scrapers,
            "namespaces": namespaces,
            "definitions": definitions,
            "roles": iam.list_roles().max_items(1000).send().await.unwrap().roles().len(),
            "oidcProviders": iam.list_open_id_connect_providers().send().await.unwrap()
                .open_id_connect_provider_list().len(),
            "topics": sns.list_topics().send().await.unwrap().topics().len(),
            "subscriptions": sns.list_subscriptions().send().await.unwrap().subscriptions().len(),
        })
    })
}

// ---- Garbage on stdin, every tool -------------------------------------------------------------

/// Every pipeline tool, with arguments under which it would create something (or write files,
/// or send traffic) if the document let it get that far.
fn creating_tools(out: &std::path::Path, name: &str) -> Vec<(&'static str, Vec<String>)> {
    let out = out.display().to_string();
    let s = |v: &[&str]| v.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
    vec![
        ("amp-workspace", s(&["ensure", "--alias", name])),
        (
            "irsa-role",
            s(&[
                "create",
                "--cluster",
                name,
                "--no-kube",
                "--role-name",
                name,
                "--workspace-arn",
                "arn:aws:aps:eu-west-1:123456789012:workspace/ws-garbage",
            ]),
        ),
        (
            "render-agent-config",
            s(&[
                "--flavor",
                "prometheus-agent",
                "--target",
                "127.0.0.1:9901",
                "--no-sigv4",
                "--remote-write-url",
                "http://127.0.0.1:1/api/v1/write",
                "--out",
                &out,
            ]),
        ),
        ("envoy-traffic", s(&["--requests", "1"])),
        ("promql", s(&["labels"])),
        (
            "grafana-import",
            s(&[
                "--render-only",
                "--dashboard",
                "builtin:envoy-global",
                "--out",
                &out,
            ]),
        ),
        (
            "sns-alert",
            s(&["--topic-name", name, "--workspace-id", "ws-garbage"]),
        ),
        ("teardown", s(&[])),
    ]
}

/// The inputs, each with a fragment the error must contain.
fn garbage() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let deep = "[".repeat(10 << 20);
    let mut noise = Vec::with_capacity(10 << 20);
    let mut x: u32 = 12345;
    while noise.len() < 10 << 20 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        noise.push(b"abc{}[]:,\"xyz 019"[(x >> 16) as usize % 17]);
    }
    vec![
        ("not JSON", b"workspace: ws-1\n".to_vec(), "not valid JSON"),
        ("an array", b"[{\"workspace\": {}}]".to_vec(), "an array"),
        ("a number", b"42".to_vec(), "a number"),
        (
            "the ledger of the wrong type",
            br#"{"resources": "all of them"}"#.to_vec(),
            "`resources`",
        ),
        ("10 MB nested", deep.into_bytes(), "not valid JSON"),
        ("10 MB of noise", noise, "not valid JSON"),
        ("binary", (0..=255u8).cycle().take(4096).collect(), "stdin"),
    ]
}

fn check_refused(tool_name: &str, what: &str, run: &Run, says: &str) {
    assert_eq!(
        run.code, 2,
        "{tool_name} on {what}: exit {} (stderr: {})",
        run.code, run.stderr
    );
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("{\"error\""))
        .collect();
    assert_eq!(errors.len(), 1, "{tool_name} on {what}: {}", run.stderr);
    let err: Value = serde_json::from_str(errors[0]).unwrap();
    assert_eq!(err["error"]["tool"], tool_name);
    assert_eq!(
        err["error"]["kind"], "input",
        "{tool_name} on {what}: {err}"
    );
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(says),
        "{tool_name} on {what}: `{says}` not in {message}"
    );
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("internal"),
        "{tool_name} on {what}: {}",
        run.stderr
    );
    assert!(
        run.stdout.is_empty(),
        "{tool_name} on {what}: {}",
        run.stdout
    );
}

#[test]
fn garbage_on_stdin_is_exit_2_naming_the_problem_for_every_tool_and_creates_nothing() {
    let _turn = take_turn(Turn::Counts);
    let before = counts();
    let out = tempfile::tempdir().unwrap();
    let name = unique_name("garbage");
    for (what, input, says) in garbage() {
        for (tool_name, args) in creating_tools(out.path(), &name) {
            let run = tool(tool_name).args(&args).stdin(input.clone()).run();
            check_refused(tool_name, what, &run, says);
        }
    }
    assert_eq!(counts(), before, "nothing was created anywhere");
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "no file was written"
    );
}

/// Well-formed JSON with wrong types in a section the tool reads (the workspace that every
/// tool after amp-workspace takes its endpoint, ARN or region from): exit 2 naming the section,
/// nothing created.
#[test]
fn a_known_section_of_the_wrong_type_is_exit_2_naming_it_for_every_tool_that_reads_it() {
    let _turn = take_turn(Turn::Counts);
    let before = counts();
    let out = tempfile::tempdir().unwrap();
    let name = unique_name("wrong-types");
    let input = br#"{"workspace": {"workspaceId": 5, "region": ["eu-west-1"], "prometheusEndpoint": {"url": 7}}}"#;
    let readers = [
        "irsa-role",
        "render-agent-config",
        "promql",
        "grafana-import",
        "sns-alert",
    ];
    for (tool_name, args) in creating_tools(out.path(), &name) {
        if !readers.contains(&tool_name) {
            continue;
        }
        // Without the flags that stand in for the section, so that the tool must read it.
        let args: Vec<String> = match tool_name {
            "irsa-role" => [
                "create",
                "--cluster",
                &name,
                "--no-kube",
                "--role-name",
                &name,
            ]
            .iter()
            .map(|a| (*a).to_owned())
            .collect(),
            "sns-alert" => vec!["--topic-name".to_owned(), name.clone()],
            _ => args,
        };
        let run = tool(tool_name).args(&args).stdin(input.to_vec()).run();
        run.expect_code(2);
        let err = run.error();
        assert_eq!(err["error"]["tool"], tool_name);
        assert_eq!(err["error"]["kind"], "input", "{tool_name}: {err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`workspace`"),
            "{tool_name}: {err}"
        );
        assert!(
            !run.stderr.contains("panicked"),
            "{tool_name}: {}",
            run.stderr
        );
        // Well-formed, so it passes on unchanged: nothing lost.
        let passed: Value = serde_json::from_slice(input).unwrap();
        assert_eq!(run.doc(), passed, "{tool_name}");
    }
    assert_eq!(counts(), before, "nothing was created anywhere");
}

// ---- The recipe twice, one teardown -----------------------------------------------------------

/// A fresh EKS cluster in moto for the recipe (eksctl's part).
fn cluster(name: &str) {
    runtime().block_on(async { ampkit_e2e::create_eks_cluster(&aws().await, name).await });
}

/// `scripts/recipe` with its own state, names and a short traffic run.
fn recipe(dir: &std::path::Path, name: &str) -> Run {
    let output = recipe_command(dir, name).output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn recipe_command(dir: &std::path::Path, name: &str) -> Command {
    let mut command = Command::new(repo_root().join("scripts").join("recipe"));
    command
        .envs(stack().exports)
        .env("AMPKIT_STATE", dir.join("state.json"))
        .env("AMPKIT_OUT", dir.join("out"))
        .env("AMPKIT_ALIAS", name)
        .env("AMPKIT_CLUSTER", name)
        .env("AMPKIT_TOPIC", format!("grafana-{name}"))
        .env("AMPKIT_EMAIL", "ops@example.com")
        .env("AMPKIT_REQUESTS", "60")
        .env_remove("GRAFANA_URL")
        .stdin(Stdio::null());
    command
}

fn state_of(dir: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).unwrap()).unwrap()
}

#[test]
fn the_recipe_twice_creates_nothing_new_and_one_teardown_leaves_zero() {
    let _turn = take_turn(Turn::Counts);
    let name = unique_name("recipe");
    cluster(&name);
    let before = counts();
    let dir = tempfile::tempdir().unwrap();

    let first = recipe(dir.path(), &name);
    first.expect_code(0);
    let ledger = state_of(dir.path())["resources"].clone();
    let kinds = ampkit_e2e::ledger_kinds(&state_of(dir.path()));
    // The default collector is AMP's managed one: a scraper, and no IAM role in the cluster.
    for kind in [
        "amp-workspace",
        "amp-scraper",
        "sns-topic",
        "amp-rule-groups-namespace",
        "amp-alert-manager-definition",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    // One progress line per step, with its time.
    let steps = first
        .stderr
        .lines()
        .filter(|l| l.starts_with("recipe: [") && l.contains(" ms "))
        .count();
    assert!(steps >= 9, "{}", first.stderr);
    let after_first = counts();
    assert_ne!(after_first, before);

    let second = recipe(dir.path(), &name);
    second.expect_code(0);
    assert_eq!(counts(), after_first, "the second run created nothing");
    assert_eq!(
        state_of(dir.path())["resources"],
        ledger,
        "and its ledger is the first's"
    );

    let run = tool("teardown")
        .args(["--state", dir.path().join("state.json").to_str().unwrap()])
        .run();
    run.expect_code(0);
    assert_eq!(state_of(dir.path())["resources"], json!([]));
    assert_eq!(
        counts(),
        before,
        "none of ours is left in moto or amp-local"
    );
}

// ---- Faults -----------------------------------------------------------------------------------

/// Stop one part of the test stack (its pid file), as a crash would.
fn stop(part: &str) {
    let pid_file = stack().stack_dir.join(format!("{part}.pid"));
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let status = Command::new("kill").arg(pid.trim()).status().unwrap();
    assert!(status.success());
    ampkit_e2e::wait_for(
        &format!("{part} to stop"),
        std::time::Duration::from_secs(20),
        || {
            let alive = Command::new("kill")
                .args(["-0", pid.trim()])
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success();
            (!alive).then_some(())
        },
    );
}

/// Bring the stopped part back (`up` starts only what is not running).
fn restart() {
    let stack = stack();
    let run = local_stack(
        &["up"],
        &[
            ("AMPKIT_STACK_DIR", stack.stack_dir.to_str().unwrap()),
            ("AMPKIT_PORT_BASE", &stack.port_base),
        ],
    );
    run.expect_code(0);
}

#[test]
fn a_service_stopped_mid_recipe_fails_one_step_with_the_ledger_and_teardown_leaves_zero() {
    let _turn = take_turn(Turn::Faults);
    let name = unique_name("fault");
    let before = counts();

    // amp-local stops after the workspace and the IAM role exist: the alerting step cannot
    // reach AMP and exits 1, passing on the ledger of what the steps before created.
    cluster(&name);
    let ws = tool("amp-workspace")
        .args(["ensure", "--alias", &name])
        .run();
    ws.expect_code(0);
    let irsa = tool("irsa-role")
        .args(["create", "--cluster", &name, "--no-kube"])
        .stdin_doc(&ws.doc())
        .run();
    irsa.expect_code(0);
    let created = irsa.doc()["resources"].clone();
    assert!(ampkit_e2e::ledger_kinds(&irsa.doc()).contains(&"iam-role".to_owned()));
    stop("amp-local");
    let run = tool("sns-alert")
        .args(["--topic-name", &format!("grafana-{name}")])
        .stdin_doc(&irsa.doc())
        .run();
    restart();
    run.expect_code(1);
    let err = run.error();
    assert_eq!(err["error"]["kind"], "remote", "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("could not reach"),
        "a clear message: {err}"
    );
    let doc = run.doc();
    assert_eq!(
        doc["resources"], created,
        "the ledger lists everything created so far"
    );
    let torn = tool("teardown").stdin_doc(&doc).run();
    torn.expect_code(0);
    assert_eq!(counts(), before, "zero left after amp-local came back");

    // moto stops before the IAM step: irsa-role fails, the workspace's ledger passes on.
    let ws = tool("amp-workspace")
        .args(["ensure", "--alias", &format!("{name}-b")])
        .run();
    ws.expect_code(0);
    stop("moto");
    let run = tool("irsa-role")
        .args(["create", "--cluster", &name, "--no-kube"])
        .stdin_doc(&ws.doc())
        .run();
    restart();
    run.expect_code(1);
    assert!(
        run.error()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("could not reach"),
        "{}",
        run.stderr
    );
    assert_eq!(run.doc()["resources"], ws.doc()["resources"]);
    let torn = tool("teardown").stdin_doc(&run.doc()).run();
    torn.expect_code(0);
    // moto keeps its state in memory, so its counts restart from zero; amp-local's do not.
    assert_eq!(counts()["workspaces"], before["workspaces"]);
}

// ---- No data lost -----------------------------------------------------------------------------

/// The workspace's value of `expr` (one series), through promql.
fn amp_value(doc: &Value, expr: &str) -> f64 {
    let run = tool("promql").args(["query", expr]).stdin_doc(doc).run();
    run.expect_code(0);
    let out = run.doc();
    out["query"]["result"][0]["value"][1]
        .as_str()
        .unwrap_or_else(|| panic!("no value for {expr}: {}", out["query"]))
        .parse()
        .unwrap()
}

/// Envoy's own counter of dj's ingress, from its admin.
fn envoy_dj_total() -> u64 {
    let admin = &stack().envoy_admin_urls[0];
    let text = runtime().block_on(async {
        reqwest::get(format!(
            "{admin}/stats?filter=^http\\.ingress_dj\\.downstream_rq_total$"
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
    });
    text.lines()
        .find_map(|l| l.strip_prefix("http.ingress_dj.downstream_rq_total: "))
        .unwrap_or_else(|| panic!("no counter in {text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn ten_seconds_of_load_sent_equals_envoy_counted_equals_the_increase_in_amp() {
    let _turn = take_turn(Turn::Counts);
    let stack = stack();
    let (doc, _agent) = ampkit_e2e::mesh_workspace(&stack, "no-loss");
    let dj = "sum(envoy_http_downstream_rq_total{service=\"dj\", envoy_http_conn_manager_prefix=\"ingress_dj\"})";
    let wait = |at_least: u64| {
        tool("promql")
            .args(["wait", dj, "--compare", ">=", &at_least.to_string()])
            .args(["--timeout", "60s"])
            .stdin_doc(&doc)
            .run()
            .expect_code(0);
    };
    // Before: the workspace holds Envoy's counter as it is now.
    let envoy_before = envoy_dj_total();
    wait(envoy_before);
    let amp_before = amp_value(&doc, dj);
    assert_eq!(amp_before, envoy_before as f64);

    let run = tool("envoy-traffic")
        .args([
            "--rate",
            "50",
            "--duration",
            "10s",
            "--paths",
            "/jazz,/metal",
        ])
        .stdin_doc(&doc)
        .run();
    run.expect_code(0);
    let traffic = run.doc()["traffic"].clone();
    let sent = traffic["sent"].as_u64().unwrap();
    assert!(sent >= 450, "10 s at 50/s: {sent}");
    assert_eq!(traffic["completed"].as_u64(), Some(sent), "{traffic}");
    let listeners = traffic["envoy"]["listeners"].as_array().unwrap();
    assert!(
        listeners.iter().all(|l| l["match"] == true),
        "Envoy counted what was sent: {listeners:?}"
    );
    let envoy_after = envoy_dj_total();
    assert_eq!(envoy_after - envoy_before, sent, "Envoy's own counter");

    wait(envoy_after);
    let amp_after = amp_value(&doc, dj);
    assert_eq!(
        amp_after - amp_before,
        sent as f64,
        "the increase seen in AMP is exactly what was sent"
    );
}

/// `scripts/recipe` in the background; `service` is stopped once the state file shows that
/// `section` was written (the steps before it are done), then brought back after the recipe
/// failed. Returns the run and the state file's document at that point.
fn recipe_with(dir: &std::path::Path, name: &str, section: &str, service: &str) -> (Run, Value) {
    let state = dir.join("state.json");
    // The IRSA path (role, then a collector of our own), whose steps these faults cut.
    let child = recipe_command(dir, name)
        .env("AMPKIT_COLLECTOR", "prometheus-agent")
        .env("AMPKIT_WAIT", "5s")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Looked at often: the service must stop soon after the section appears.
    ampkit_e2e::poll_until(
        std::time::Duration::from_secs(60),
        std::time::Duration::from_millis(10),
        || {
            std::fs::read_to_string(&state)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .filter(|d| d.get(section).is_some())
        },
    );
    stop(service);
    let output = child.wait_with_output().unwrap();
    restart();
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    (run, state_of(dir))
}

#[test]
fn the_recipe_with_amp_local_then_moto_stopped_half_way_fails_with_its_state_and_teardown_leaves_zero()
 {
    let _turn = take_turn(Turn::Faults);
    let before = counts();

    // amp-local stops once the IAM step is done: the wait for the data fails (exit 1), and
    // the state lists the workspace and the role.
    let name = unique_name("recipe-amp");
    cluster(&name);
    let dir = tempfile::tempdir().unwrap();
    let (run, doc) = recipe_with(dir.path(), &name, "irsa", "amp-local");
    run.expect_code(1);
    assert!(
        run.stderr.contains("recipe: [") && run.stderr.contains("promql: failed (exit 1)"),
        "{}",
        run.stderr
    );
    let kinds = ampkit_e2e::ledger_kinds(&doc);
    assert!(
        kinds.contains(&"amp-workspace".to_owned()) && kinds.contains(&"iam-role".to_owned()),
        "{kinds:?}"
    );
    let torn = tool("teardown")
        .args(["--state", dir.path().join("state.json").to_str().unwrap()])
        .run();
    torn.expect_code(0);
    assert_eq!(counts(), before, "zero of ours left");

    // moto stops once the workspace exists: the IAM step fails (exit 1), the state keeps the
    // workspace's ledger, and teardown removes it once moto is back (moto's own state is gone
    // with its process: it keeps everything in memory).
    let name = unique_name("recipe-moto");
    cluster(&name);
    let dir = tempfile::tempdir().unwrap();
    let (run, doc) = recipe_with(dir.path(), &name, "workspace", "moto");
    run.expect_code(1);
    assert!(run.stderr.contains("failed (exit 1)"), "{}", run.stderr);
    assert!(ampkit_e2e::ledger_kinds(&doc).contains(&"amp-workspace".to_owned()));
    let torn = tool("teardown")
        .args(["--state", dir.path().join("state.json").to_str().unwrap()])
        .run();
    torn.expect_code(0);
    assert_eq!(counts()["workspaces"], before["workspaces"]);
}
