//! Preflight: `--check` asks IAM whether the caller may do what a run would do, `--print-policy`
//! prints what to grant, and `scripts/recipe` checks every step before it makes anything.
//!
//! moto cannot simulate (its IAM has no SimulatePrincipalPolicy), so IAM and STS are the
//! fixture of the documented answer shape (`ampkit_e2e::iam_simulator`), through
//! `AWS_ENDPOINT_URL_IAM` / `AWS_ENDPOINT_URL_STS`; AMP, SNS and EKS stay on the local stack,
//! where the tests count what was made.

use std::process::{Command, Stdio};

use serde_json::{Value, json};

use ampkit_e2e::iam_simulator::{ACCOUNT, IamSimulator};
use ampkit_e2e::{Invocation, Run, Stack, repo_root, stack, tool, unique_name};

/// `name` pointed at the local stack, with IAM and STS at the simulator.
fn on(name: &str, stack: &Stack, sim: &IamSimulator) -> Invocation {
    tool(name)
        .on(stack)
        .env("AWS_ENDPOINT_URL_IAM", &sim.url)
        .env("AWS_ENDPOINT_URL_STS", &sim.url)
}

/// How many workspaces amp-local holds with exactly this alias.
async fn workspaces_with_alias(stack: &Stack, alias: &str) -> usize {
    let amp = ampkit_e2e::amp_sdk(&stack.amp_url).await;
    amp.list_workspaces()
        .alias(alias)
        .send()
        .await
        .unwrap()
        .workspaces()
        .iter()
        .filter(|w| w.alias() == Some(alias))
        .count()
}

/// The lines of stderr that name a missing permission.
fn missing(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|l| l.contains("missing permission:"))
        .collect()
}

/// Everything `amp-workspace ensure` needs, but not aps:CreateWorkspace.
fn all_but_create(sim: &IamSimulator) {
    for action in [
        "aps:ListWorkspaces",
        "aps:DescribeWorkspace",
        "aps:TagResource",
    ] {
        sim.allow(action);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_with_one_permission_missing_exits_2_naming_it_and_creates_nothing() {
    let stack = stack();
    let mut sim = IamSimulator::start().await;
    // The session ARN is resolved to the role's (with its path) before simulating.
    sim.expect(&[
        "STS GetCallerIdentity",
        "IAM GetRole",
        "IAM SimulatePrincipalPolicy",
    ]);
    all_but_create(&sim);
    let alias = unique_name("preflight-missing");
    let input = json!({"note": "passes through", "resources": []});
    let run = on("amp-workspace", &stack, &sim)
        .args(["ensure", "--alias", &alias, "--check"])
        .args(["--workspace-quota", "1000000"])
        .stdin_doc(&input)
        .run();
    run.expect_code(2);
    let lines = missing(&run);
    let any_workspace = format!("arn:aws:aps:{}:{ACCOUNT}:workspace/*", stack.region);
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(
        lines[0].contains(&format!("aps:CreateWorkspace on {any_workspace}"))
            && lines[0].contains("amp-workspace ensure: create the workspace")
            && lines[0].contains("implicitDeny"),
        "{}",
        run.stderr
    );
    assert_eq!(run.error()["error"]["kind"], "access-denied");
    assert_eq!(run.doc(), input, "the document passes through unchanged");
    assert_eq!(
        workspaces_with_alias(&stack, &alias).await,
        0,
        "nothing made"
    );
    // Every action was asked about, on the resource the run would touch.
    let simulated = sim.simulated();
    assert!(
        simulated.contains(&("aps:ListWorkspaces".to_owned(), "*".to_owned()))
            && simulated.contains(&("aps:CreateWorkspace".to_owned(), any_workspace.clone())),
        "{simulated:?}"
    );
    // Three actions on one resource take two pages of two, and one on `*` one: all were read.
    assert_eq!(simulated.len(), 4, "{simulated:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_with_everything_allowed_exits_0_and_the_quota_is_checked() {
    let stack = stack();
    let sim = IamSimulator::start().await;
    sim.allow("aps:*");
    let alias = unique_name("preflight-allowed");
    let run = on("amp-workspace", &stack, &sim)
        .args(["ensure", "--alias", &alias, "--check"])
        .args(["--workspace-quota", "1000000"])
        .run();
    run.expect_code(0);
    assert!(run.stderr.contains("check passed"), "{}", run.stderr);
    assert_eq!(run.doc(), json!({}));

    // A region that holds the quota's worth already: the create would be refused, said first.
    let run = on("amp-workspace", &stack, &sim)
        .args([
            "ensure",
            "--alias",
            &alias,
            "--check",
            "--workspace-quota",
            "0",
        ])
        .run();
    run.expect_code(2);
    assert!(
        run.stderr.lines().any(|l| l.contains("quota:")
            && l.contains("--workspace-quota")
            && l.contains("creating one more would be refused")),
        "{}",
        run.stderr
    );
    assert_eq!(
        workspaces_with_alias(&stack, &alias).await,
        0,
        "nothing made"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_policy_is_scoped_chains_and_makes_the_check_pass() {
    let stack = stack();
    let mut sim = IamSimulator::start().await;
    sim.expect(&["STS GetCallerIdentity"]);
    let workspace = "ws-preflight-0123";
    let workspace_arn = format!(
        "arn:aws:aps:{}:{ACCOUNT}:workspace/{workspace}",
        stack.region
    );

    // Two tools chained: the second merges its statements into the first one's policy.
    let first = on("amp-workspace", &stack, &sim)
        .args(["describe", "--workspace-id", workspace, "--print-policy"])
        .stdin_doc(&json!({"keep": 1}))
        .run();
    first.expect_code(0);
    let second = on("promql", &stack, &sim)
        .args(["--workspace-id", workspace, "range", "up", "--print-policy"])
        .stdin(first.stdout.clone())
        .run();
    second.expect_code(0);
    let doc = second.doc();
    assert_eq!(doc["keep"], 1, "the rest of the document passes on");
    let policy = &doc["policy"];
    assert_eq!(policy["Version"], "2012-10-17");
    assert_eq!(
        policy["Statement"],
        json!([{
            "Effect": "Allow",
            "Action": ["aps:DescribeWorkspace", "aps:QueryMetrics"],
            "Resource": workspace_arn,
        }]),
        "one statement for the one resource, scoped to the workspace"
    );
    assert!(
        sim.calls().iter().all(|c| c == "STS GetCallerIdentity"),
        "only STS is asked: {:?}",
        sim.calls()
    );

    // The printed policy, as the caller's, makes --check pass: nothing is missing from it.
    sim.allow_policy(policy);
    for args in [
        vec!["describe", "--workspace-id", workspace, "--check"],
        vec!["delete", "--workspace-id", workspace, "--check"],
    ] {
        let run = on("amp-workspace", &stack, &sim).args(&args).run();
        // delete also needs aps:DeleteWorkspace, which describe's policy does not grant.
        if args[0] == "delete" {
            run.expect_code(2);
            assert_eq!(missing(&run).len(), 1, "{}", run.stderr);
            assert!(
                missing(&run)[0].contains("aps:DeleteWorkspace"),
                "{}",
                run.stderr
            );
        } else {
            run.expect_code(0);
        }
    }
    let run = on("promql", &stack, &sim)
        .args(["--workspace-id", workspace, "range", "up", "--check"])
        .run();
    run.expect_code(0);

    // The recipe's first step, where the workspace is not known yet: a pattern, and the
    // round trip holds for it too.
    let ensure = on("amp-workspace", &stack, &sim)
        .args(["ensure", "--alias", "x", "--print-policy"])
        .run();
    ensure.expect_code(0);
    let policy = ensure.doc()["policy"].clone();
    let fresh = IamSimulator::start().await;
    fresh.allow_policy(&policy);
    let run = on("amp-workspace", &stack, &fresh)
        .args(["ensure", "--alias", &unique_name("rt"), "--check"])
        .args(["--workspace-quota", "1000000"])
        .run();
    run.expect_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_the_policy_says_star_for_the_account() {
    let stack = stack();
    let sim = IamSimulator::start().await;
    let run = on("promql", &stack, &sim)
        .env("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")
        .args(["--workspace-id", "ws-1", "query", "up", "--print-policy"])
        .run();
    run.expect_code(0);
    assert_eq!(
        run.doc()["policy"]["Statement"][0]["Resource"],
        format!("arn:aws:aps:{}:*:workspace/ws-1", stack.region)
    );
    assert!(
        run.stderr.contains("the policy uses `*` for the account"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_may_not_simulate_is_told_in_one_line_and_goes_on() {
    let stack = stack();
    let mut sim = IamSimulator::start().await;
    sim.expect(&["IAM SimulatePrincipalPolicy"]);
    sim.refuse_simulation();
    let run = on("promql", &stack, &sim)
        .args(["--workspace-id", "ws-1", "query", "up", "--check"])
        .run();
    run.expect_code(0);
    let said: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("permissions not checked"))
        .collect();
    assert_eq!(said.len(), 1, "{}", run.stderr);
    assert!(
        said[0].contains("may not iam:SimulatePrincipalPolicy") && said[0].contains("going on"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recipe_with_one_permission_missing_stops_before_creating_anything() {
    let stack = stack();
    let mut sim = IamSimulator::start().await;
    sim.expect(&["IAM SimulatePrincipalPolicy"]);
    // Everything the recipe calls, but sns:CreateTopic.
    for action in [
        "aps:*",
        "eks:*",
        "ec2:*",
        "iam:*",
        "sns:List*",
        "sns:Get*",
        "sns:Set*",
        "sns:TagResource",
        "sns:Subscribe",
    ] {
        sim.allow(action);
    }
    let name = unique_name("preflight-recipe");
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("grafana-{name}");
    let output = recipe(dir.path(), &name, &topic, &sim, &[]);
    assert_eq!(output.code, 2, "{}", output.stderr);
    let lines = missing(&output);
    assert_eq!(lines.len(), 1, "{}", output.stderr);
    assert!(
        lines[0].contains(&format!(
            "sns:CreateTopic on arn:aws:sns:{}:{ACCOUNT}:{topic}",
            stack.region
        )) && lines[0].contains("sns-alert"),
        "{}",
        output.stderr
    );
    assert!(
        output.stderr.contains("nothing was created"),
        "{}",
        output.stderr
    );
    // Nothing was made: no workspace with the run's alias, no topic, and no step ran.
    assert_eq!(workspaces_with_alias(&stack, &name).await, 0);
    assert!(
        !ampkit_e2e::sns_topic_exists(&format!("arn:aws:sns:{}:{ACCOUNT}:{topic}", stack.region))
            .await
    );
    assert!(!output.stderr.contains("recipe: [1]"), "{}", output.stderr);
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("state.json")).unwrap())
            .unwrap();
    assert_eq!(state, json!({}), "the state is untouched");

    // The whole recipe's policy, printed; given to the caller, the preflight passes.
    let policy = recipe(dir.path(), &name, &topic, &sim, &["--print-policy"]);
    assert_eq!(policy.code, 0, "{}", policy.stderr);
    let policy: Value = serde_json::from_str(&policy.stdout).unwrap();
    let text = policy.to_string();
    for action in [
        "aps:CreateWorkspace",
        "aps:CreateScraper",
        "aps:QueryMetrics",
        "sns:CreateTopic",
        "aps:PutAlertManagerDefinition",
    ] {
        assert!(text.contains(action), "{action} not in {policy:#}");
    }
    let granted = IamSimulator::start().await;
    granted.allow_policy(&policy);
    let check = recipe(dir.path(), &name, &topic, &granted, &["--check"]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(
        check.stderr.contains("every step may do what it will do"),
        "{}",
        check.stderr
    );
    assert_eq!(workspaces_with_alias(&stack, &name).await, 0);
}

/// `scripts/recipe ARGS` on the local stack with IAM and STS at `sim`.
fn recipe(
    dir: &std::path::Path,
    name: &str,
    topic: &str,
    sim: &IamSimulator,
    args: &[&str],
) -> Run {
    let output = Command::new(repo_root().join("scripts").join("recipe"))
        .args(args)
        .envs(stack().exports)
        .env("AWS_ENDPOINT_URL_IAM", &sim.url)
        .env("AWS_ENDPOINT_URL_STS", &sim.url)
        .env("AMPKIT_BIN_DIR", ampkit_e2e::bin_dir())
        .env("AMPKIT_STATE", dir.join("state.json"))
        .env("AMPKIT_OUT", dir.join("out"))
        .env("AMPKIT_ALIAS", name)
        .env("AMPKIT_CLUSTER", name)
        .env("AMPKIT_TOPIC", topic)
        // The shared stack holds the workspaces of every test running beside this one.
        .env("AMPKIT_WORKSPACE_QUOTA", "1000000")
        .env_remove("GRAFANA_URL")
        .env_remove("AMPKIT_PREFLIGHT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
