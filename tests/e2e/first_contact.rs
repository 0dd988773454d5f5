//! The first minutes with a real account, as far as they can be produced here: credentials
//! that are missing or name a profile that does not exist are said in one line with the fix,
//! exit 2, before any call is made (the endpoint named is one nothing listens on, so a call
//! would fail differently); so are an SSO session that expired or that the portal refuses, and
//! a profile's role that cannot be assumed. An object the document or a flag places in another
//! region or account than the run's (workspace, topic, role, AMG workspace) is named with both
//! before anything is made; an endpoint that answers but is no AWS service is told apart from
//! one nothing answers.

use ampkit_e2e::tool;

/// The invocation without the environment variables the default credentials chain reads.
fn without_ambient_credentials(mut invocation: ampkit_e2e::Invocation) -> ampkit_e2e::Invocation {
    for key in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        invocation = invocation.env_remove(key);
    }
    invocation
}

/// A tool run with no credentials anywhere the default chain looks: a fresh HOME, no keys in
/// the environment, the instance metadata service at a loopback port nothing listens on.
fn without_credentials(home: &std::path::Path) -> ampkit_e2e::Invocation {
    without_ambient_credentials(aimed_at("amp-workspace", "http://127.0.0.1:9"))
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")
}

#[test]
fn no_credentials_is_one_line_naming_where_it_looked_and_the_fix() {
    let home = tempfile::tempdir().unwrap();
    let run = without_credentials(home.path())
        .args(["ensure", "--alias", "first-contact"])
        .run();
    run.expect_code(2);
    let error = &run.error()["error"];
    let message = error["message"].as_str().unwrap();
    assert!(message.starts_with("no AWS credentials found"), "{message}");
    for source in [
        "AWS_ACCESS_KEY_ID",
        "SSO",
        "web identity",
        "instance metadata",
    ] {
        assert!(message.contains(source), "names {source}: {message}");
    }
    assert!(error["hint"].as_str().unwrap().contains("aws configure"));
    assert_eq!(error["kind"], "usage");
    assert!(
        !run.stderr.contains("DispatchFailure") && !run.stderr.contains("ConnectorError"),
        "no SDK Debug text: {}",
        run.stderr
    );
    // Only the error (its JSON line and its human line): the SDK's own warnings (here: the
    // config file AWS_CONFIG_FILE names is missing) are for -v.
    assert_eq!(run.stderr.lines().count(), 2, "{}", run.stderr);
    let verbose = without_credentials(home.path())
        .args(["ensure", "--alias", "first-contact", "-v"])
        .run();
    verbose.expect_code(2);
    assert!(
        verbose
            .stderr
            .contains("config file overridden via environment variable not found"),
        "-v shows the SDK's warnings: {}",
        verbose.stderr
    );
}

#[test]
fn a_profile_that_does_not_exist_is_named() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config"),
        "[profile team]\nregion = eu-west-1\n",
    )
    .unwrap();
    // Named by flag or variable, with a region or without one (a missing profile has no
    // region either: the profile, not the region, is what to fix).
    for (how, region) in [
        (["--profile", "nope"], true),
        (["--region", "eu-west-1"], true),
        (["--profile", "nope"], false),
    ] {
        let mut invocation = without_credentials(home.path()).env("AWS_PROFILE", "nope");
        if !region {
            invocation = invocation
                .env_remove("AWS_REGION")
                .env_remove("AWS_DEFAULT_REGION");
        }
        let run = invocation
            .args(["ensure", "--alias", "first-contact"])
            .args(how)
            .run();
        run.expect_code(2);
        let error = &run.error()["error"];
        assert_eq!(
            error["message"], "profile `nope` is not in ~/.aws/config or ~/.aws/credentials",
            "{}",
            run.stderr
        );
        assert!(error["hint"].as_str().unwrap().contains("list-profiles"));
    }
}

/// A tool pointed at `url` for every AWS service: the service-specific endpoint variables
/// that `make test` exports for its stack would win over `AWS_ENDPOINT_URL`.
fn aimed_at(name: &str, url: &str) -> ampkit_e2e::Invocation {
    let mut invocation = tool(name);
    for (key, _) in std::env::vars_os() {
        if let Some(key) = key.to_str().filter(|k| k.starts_with("AWS_ENDPOINT_URL_")) {
            invocation = invocation.env_remove(key);
        }
    }
    invocation.env("AWS_ENDPOINT_URL", url)
}

/// A moto of the test's own that enforces IAM after its first `admin_calls` requests (moto's
/// INITIAL_NO_AUTH_ACTION_COUNT): the setup is made unchecked, then every call is evaluated
/// against the caller's policies as AWS would, with AWS's AccessDenied answer.
struct EnforcingMoto {
    _process: ampkit_e2e::amp_local::Process,
    url: String,
}

impl EnforcingMoto {
    fn start(admin_calls: u32) -> EnforcingMoto {
        use ampkit_e2e::amp_local::{Process, free_port, local_bin};
        let port = free_port();
        let process = Process(
            std::process::Command::new(local_bin("moto_server"))
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("INITIAL_NO_AUTH_ACTION_COUNT", admin_calls.to_string())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("moto_server starts (installed by scripts/setup)"),
        );
        let url = format!("http://127.0.0.1:{port}");
        ampkit_e2e::wait_for(
            "the private moto to answer",
            std::time::Duration::from_secs(30),
            || std::net::TcpStream::connect(("127.0.0.1", port)).ok(),
        );
        EnforcingMoto {
            _process: process,
            url,
        }
    }

    async fn admin(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url(&self.url)
            .credentials_provider(aws_credential_types::Credentials::new(
                "AKIAADMINADMINADMIN0",
                "admin-secret",
                None,
                None,
                "test",
            ))
            .load()
            .await
    }
}

/// A caller whose policy lacks one permission meets it as one line naming the step, the
/// action and the caller, exit 2, and the document keeps what could not be removed. (moto
/// checks signatures of query-protocol services only, so the step is teardown's IAM delete
/// rather than irsa-role's EKS read.)
#[test]
fn access_denied_names_the_step_the_action_and_the_caller() {
    // Five unchecked calls: the user, its key, its policy, the role and the role's policy.
    let moto = EnforcingMoto::start(5);
    let user = ampkit_e2e::unique_name("denied");
    let role = ampkit_e2e::unique_name("denied-role");
    let (key_id, secret, role_arn) = ampkit_e2e::runtime().block_on(async {
        let admin = moto.admin().await;
        let iam = aws_sdk_iam::Client::new(&admin);
        iam.create_user().user_name(&user).send().await.unwrap();
        let key = iam
            .create_access_key()
            .user_name(&user)
            .send()
            .await
            .unwrap()
            .access_key
            .unwrap();
        // Everything teardown needs for a role but deleting the role itself.
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Action": ["iam:Get*", "iam:List*", "iam:DeleteRolePolicy",
                           "sts:GetCallerIdentity"],
                "Resource": "*"
            }]
        });
        iam.put_user_policy()
            .user_name(&user)
            .policy_name("almost-enough")
            .policy_document(policy.to_string())
            .send()
            .await
            .unwrap();
        let trust = serde_json::json!({"Version": "2012-10-17", "Statement": []});
        let made = iam
            .create_role()
            .role_name(&role)
            .assume_role_policy_document(trust.to_string())
            .tags(
                aws_sdk_iam::types::Tag::builder()
                    .key("managed-by")
                    .value("ampkit")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        iam.put_role_policy()
            .role_name(&role)
            .policy_name("ampkit-amp-access")
            .policy_document(
                serde_json::json!({"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Action": "aps:RemoteWrite", "Resource": "*"}]})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        (
            key.access_key_id().to_owned(),
            key.secret_access_key().to_owned(),
            made.role.unwrap().arn,
        )
    });
    let ledger = serde_json::json!({"resources": [{
        "type": "iam-role", "id": role, "arn": role_arn, "tool": "irsa-role",
        "details": {"inlinePolicies": ["ampkit-amp-access"]}
    }]});
    let run = aimed_at("teardown", &moto.url)
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", &key_id)
        .env("AWS_SECRET_ACCESS_KEY", &secret)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .stdin_doc(&ledger)
        .run();
    run.expect_code(2);
    let error = &run.error()["error"];
    assert_eq!(error["kind"], "access-denied", "{}", run.stderr);
    // The entry's own line and the document's report name the step, the action and the caller.
    let doc = run.doc();
    let message = doc["teardown"]["entries"][0]["reason"].as_str().unwrap();
    assert!(
        message.contains(&format!("deleting role {role}"))
            && message.contains("`iam:DeleteRole`")
            && message.contains(&format!("user/{user}")),
        "names the step, the action and the caller: {message}"
    );
    assert!(message.contains("grant `iam:DeleteRole`"), "{message}");
    assert!(
        run.stderr.contains(&format!(
            "iam-role {role}: failed (deleting role {role}: access denied"
        )),
        "{}",
        run.stderr
    );
    // What could not be removed stays in the document, for a run with more permissions.
    assert_eq!(ampkit_e2e::ledger_kinds(&doc), ["iam-role"], "{doc}");
    assert!(!run.stderr.contains("ServiceError"), "{}", run.stderr);
}

/// A throttled call is retried by the SDK's standard retry, and each retry is said on stderr
/// with its cause; moto and amp-local never throttle, so the answers come from a fixture of
/// AMP's documented ThrottlingException (HTTP 429, `x-amzn-ErrorType`).
#[test]
fn throttling_is_retried_and_each_retry_is_said() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    let calls = Arc::new(AtomicU32::new(0));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let counter = calls.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            use axum::response::IntoResponse;
            if counter.fetch_add(1, Ordering::SeqCst) < 2 {
                (
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    [("x-amzn-ErrorType", "ThrottlingException")],
                    axum::Json(serde_json::json!({"message": "Rate exceeded"})),
                )
                    .into_response()
            } else {
                axum::Json(serde_json::json!({"workspaces": []})).into_response()
            }
        }
    });
    // Its own thread and runtime: the test's thread blocks on the tool's process.
    std::thread::spawn(move || {
        ampkit_e2e::runtime().block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await
        })
    });
    let run = aimed_at("amp-workspace", &url)
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_RETRY_MODE", "standard")
        .env("AWS_MAX_ATTEMPTS", "3")
        .args(["list"])
        .run();
    run.expect_code(0);
    assert_eq!(calls.load(Ordering::SeqCst), 3, "{}", run.stderr);
    let retries: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("retrying"))
        .collect();
    assert_eq!(retries.len(), 2, "{}", run.stderr);
    assert!(
        retries[0].contains("ListWorkspaces")
            && retries[0].contains("attempt 2")
            && retries[0].contains("HTTP 429 ThrottlingException"),
        "{}",
        run.stderr
    );
}

/// A workspace the document places in another region than the run's is named with both
/// regions and the fix, exit 2, before any call (AMP would say "not found"); with the right
/// region the same document goes through.
#[test]
fn a_workspace_in_another_region_is_named_with_both() {
    let stack = ampkit_e2e::stack();
    let doc = ampkit_e2e::new_workspace(&stack, "other-region");
    let id = doc["workspace"]["workspaceId"].as_str().unwrap().to_owned();
    let run = tool("amp-workspace")
        .on(&stack)
        .env("AWS_REGION", "us-east-2")
        .args(["describe"])
        .stdin_doc(&doc)
        .run();
    run.expect_code(2);
    let error = &run.error()["error"];
    let region = doc["workspace"]["region"].as_str().unwrap();
    assert_eq!(
        error["message"],
        format!(
            "the document's workspace {id} is in region {region}, but this run uses region us-east-2"
        ),
        "{}",
        run.stderr
    );
    assert!(
        error["hint"]
            .as_str()
            .unwrap()
            .contains(&format!("--region {region}"))
    );
    tool("amp-workspace")
        .on(&stack)
        .args(["describe"])
        .stdin_doc(&doc)
        .run()
        .expect_code(0);
}

/// A workspace the document places in another account than the credentials' is named with
/// both accounts and the fix, exit 2 (AMP would answer "not found", as for a deleted one).
#[test]
fn a_workspace_of_another_account_is_named_with_both() {
    let stack = ampkit_e2e::stack();
    let mut doc = ampkit_e2e::new_workspace(&stack, "other-account");
    let id = doc["workspace"]["workspaceId"].as_str().unwrap().to_owned();
    let arn = doc["workspace"]["arn"].as_str().unwrap().to_owned();
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ours = parts[4].to_owned();
    let elsewhere = format!(
        "{}:{}:{}:{}:111122223333:{}",
        parts[0], parts[1], parts[2], parts[3], parts[5]
    );
    doc["workspace"]["arn"] = serde_json::json!(elsewhere);
    for (name, args) in [
        ("amp-workspace", vec!["describe"]),
        ("sns-alert", vec!["--topic-name", "grafana-other-account"]),
    ] {
        let run = tool(name).on(&stack).args(&args).stdin_doc(&doc).run();
        run.expect_code(2);
        let error = &run.error()["error"];
        let message = error["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!(
                "the document's workspace {id} is in account 111122223333, but the credentials are of account {ours}"
            )),
            "{name}: {message}"
        );
        assert!(
            error["hint"].as_str().unwrap().contains("--profile"),
            "{name}"
        );
    }
}

/// An endpoint that answers, but is no AWS service (here the stack's Prometheus), is told
/// apart from one nothing answers: "answered HTTP N, but not as an AWS service does" against
/// "could not reach the service", each with its fix.
#[test]
fn an_endpoint_that_is_not_aws_is_told_apart_from_one_that_does_not_answer() {
    let stack = ampkit_e2e::stack();
    let answered = aimed_at("amp-workspace", &stack.prometheus_url)
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_MAX_ATTEMPTS", "1")
        .args(["list"])
        .run();
    answered.expect_code(1);
    let message = answered.error()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.starts_with("listing workspaces: the endpoint answered HTTP 404")
            && message.ends_with("but not as an AWS service does"),
        "{message}"
    );
    let free = ampkit_e2e::amp_local::free_port();
    let silent = aimed_at("amp-workspace", &format!("http://127.0.0.1:{free}"))
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_MAX_ATTEMPTS", "1")
        .args(["list"])
        .run();
    silent.expect_code(1);
    let error = &silent.error()["error"];
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("listing workspaces: could not reach the service"),
        "{}",
        silent.stderr
    );
    assert!(
        error["hint"]
            .as_str()
            .unwrap()
            .starts_with("nothing answered")
    );
}

/// A region other than the stack's, for objects placed elsewhere.
fn elsewhere(stack: &ampkit_e2e::Stack) -> &'static str {
    let other = "ap-southeast-2";
    assert_ne!(stack.region, other, "the stack runs in another region");
    other
}

/// The stack's caller, as STS names it (the account and ARN the messages must give).
async fn stack_caller_of(stack: &ampkit_e2e::Stack) -> (String, String) {
    let caller = ampkit::sts::caller(&stack.aws_config().await)
        .await
        .unwrap();
    (caller.account, caller.arn)
}

fn stack_caller(stack: &ampkit_e2e::Stack) -> (String, String) {
    ampkit_e2e::runtime().block_on(stack_caller_of(stack))
}

/// A topic the document (or --topic-arn) places in another region or account than the run's
/// is named with both and the fix, exit 2, before the publish; the same document with the
/// topic of the run's own region and account publishes.
#[test]
fn a_topic_of_another_region_or_account_is_named_before_any_publish() {
    let stack = ampkit_e2e::stack();
    let (account, caller_arn) = stack_caller(&stack);
    let name = ampkit_e2e::unique_name("grafana-placed");
    let topic = ampkit_e2e::runtime().block_on(async {
        aws_sdk_sns::Client::new(&stack.aws_config().await)
            .create_topic()
            .name(&name)
            .send()
            .await
            .unwrap()
            .topic_arn
            .unwrap()
    });
    assert_eq!(
        topic,
        format!("arn:aws:sns:{}:{account}:{name}", stack.region)
    );
    let other_region = topic.replace(
        &format!(":{}:", stack.region),
        &format!(":{}:", elsewhere(&stack)),
    );
    let other_account = topic.replace(&format!(":{account}:"), ":111122223333:");
    let doc_with = |arn: &str| serde_json::json!({"alerting": {"topicArn": arn}});

    let run = tool("sns-alert")
        .on(&stack)
        .args(["test"])
        .stdin_doc(&doc_with(&other_region))
        .run();
    run.expect_code(2);
    let error = &run.error()["error"];
    assert_eq!(
        error["message"],
        format!(
            "the document's topic {name} is in region {}, but this run uses region {}",
            elsewhere(&stack),
            stack.region
        ),
        "{}",
        run.stderr
    );
    let hint = error["hint"].as_str().unwrap();
    assert!(
        hint.contains(&format!("--region {}", elsewhere(&stack))),
        "{hint}"
    );
    assert!(hint.contains("--topic-arn"), "{hint}");
    // Nothing was published: the document comes back as it went in.
    assert_eq!(run.doc(), doc_with(&other_region));

    let run = tool("sns-alert")
        .on(&stack)
        .args(["test"])
        .stdin_doc(&doc_with(&other_account))
        .run();
    run.expect_code(2);
    let error = &run.error()["error"];
    assert_eq!(
        error["message"],
        format!(
            "the document's topic {name} is in account 111122223333, but the credentials are of account {account} ({caller_arn})"
        ),
        "{}",
        run.stderr
    );
    assert!(
        error["hint"]
            .as_str()
            .unwrap()
            .starts_with("use credentials of account 111122223333 (--profile, AWS_PROFILE)")
    );
    assert_eq!(run.doc(), doc_with(&other_account));

    // The flag is checked the same way when sns-alert makes the alert.
    let ws = ampkit_e2e::new_workspace(&stack, "placed-topic");
    let run = tool("sns-alert")
        .on(&stack)
        .args(["--topic-arn", &other_account])
        .stdin_doc(&ws)
        .run();
    run.expect_code(2);
    assert_eq!(
        run.error()["error"]["message"],
        format!(
            "the topic {name} that --topic-arn names is in account 111122223333, but the credentials are of account {account} ({caller_arn})"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(run.doc(), ws, "nothing was made");

    // The topic of the run's own region and account goes through.
    let run = tool("sns-alert")
        .on(&stack)
        .args(["test"])
        .stdin_doc(&doc_with(&topic))
        .run();
    run.expect_code(0);
    assert!(
        run.doc()["alerting"]["test"]["messageId"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{}",
        run.stdout
    );
}

/// The role the document records (irsa-role's) in another account than the credentials' is
/// named with both accounts and the caller, exit 2, and no role is made in the caller's
/// account (IAM is global: only the account matters).
#[test]
fn the_documents_role_of_another_account_is_named_and_nothing_is_made() {
    let stack = ampkit_e2e::stack();
    let (account, caller_arn) = stack_caller(&stack);
    let role = ampkit_e2e::unique_name("placed-role");
    let doc = serde_json::json!({
        "workspace": {"arn": format!("arn:aws:aps:{}:{account}:workspace/ws-placed", stack.region)},
        "irsa": {"roleName": role, "roleArn": format!("arn:aws:iam::111122223333:role/{role}")}
    });
    let run = tool("irsa-role")
        .on(&stack)
        .args([
            "create",
            "--cluster",
            "placed",
            "--role-name",
            &role,
            "--no-kube",
        ])
        .stdin_doc(&doc)
        .run();
    run.expect_code(2);
    let error = &run.error()["error"];
    assert_eq!(
        error["message"],
        format!(
            "the document's role {role} is in account 111122223333, but the credentials are of account {account} ({caller_arn})"
        ),
        "{}",
        run.stderr
    );
    assert!(error["hint"].as_str().unwrap().contains("--profile"));
    assert_eq!(run.doc(), doc, "the document passes through");
    let found = ampkit_e2e::runtime().block_on(async {
        aws_sdk_iam::Client::new(&stack.aws_config().await)
            .get_role()
            .role_name(&role)
            .send()
            .await
    });
    let err = found.expect_err("no role was made in the caller's account");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_no_such_entity_exception()),
        "{err:?}"
    );
}

/// An Amazon Managed Grafana workspace that `--grafana-url` or the document places in
/// another region than the run's is named with both, exit 2, before any AMG call (no service
/// account made) and before anything else is made (no topic).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amg_workspace_of_another_region_is_named_before_any_amg_call() {
    let stack = ampkit_e2e::stack();
    let other = elsewhere(&stack);
    let amg_url = format!("https://g-0123456789.grafana-workspace.{other}.amazonaws.com");
    // The AMG API the tools would call: any call at all fails the test below.
    let amg = ampkit_e2e::amg::AmgFixture::start("g-0123456789", "127.0.0.1:9").await;
    let doc = serde_json::json!({
        "workspace": {
            "workspaceId": "ws-placed",
            "region": stack.region,
            "prometheusEndpoint": format!("{}/workspaces/ws-placed/", stack.amp_url),
        },
        "grafana": {"url": amg_url},
    });
    let run = tokio::task::block_in_place(|| {
        tool("grafana-import")
            .on(&stack)
            .env("AWS_ENDPOINT_URL_GRAFANA", &amg.url)
            .args(["--amg-workspace-id", "g-0123456789"])
            .stdin_doc(&doc)
            .run()
    });
    run.expect_code(2);
    let error = &run.error()["error"];
    assert_eq!(
        error["message"],
        format!(
            "the document's Grafana workspace g-0123456789 is in region {other}, but this run uses region {}",
            stack.region
        ),
        "{}",
        run.stderr
    );
    assert!(
        error["hint"]
            .as_str()
            .unwrap()
            .contains(&format!("--region {other}"))
    );
    assert_eq!(run.doc(), doc);

    let topic = ampkit_e2e::unique_name("grafana-placed-amg");
    let run = tokio::task::block_in_place(|| {
        tool("sns-alert")
            .on(&stack)
            .env("AWS_ENDPOINT_URL_GRAFANA", &amg.url)
            .args(["--target", "grafana", "--topic-name", &topic])
            .args([
                "--amg-workspace-id",
                "g-0123456789",
                "--grafana-url",
                &amg_url,
            ])
            .args(["--datasource-uid", "ampkit-ws-placed"])
            .stdin("{}")
            .run()
    });
    run.expect_code(2);
    assert_eq!(
        run.error()["error"]["message"],
        format!(
            "the Grafana workspace g-0123456789 that --grafana-url names is in region {other}, but this run uses region {}",
            stack.region
        ),
        "{}",
        run.stderr
    );
    assert!(amg.calls().is_empty(), "no AMG call: {:?}", amg.calls());
    let arn = format!(
        "arn:aws:sns:{}:{}:{topic}",
        stack.region,
        stack_caller_of(&stack).await.0
    );
    assert!(
        !ampkit_e2e::sns_topic_exists(&arn).await,
        "no topic was made"
    );
}

/// An endpoint of the test's own that answers every request with a web server's 404 page
/// (text/html): each tool's one line says it answered HTTP 404 but not as an AWS service does
/// (REST-JSON AMP and query-protocol STS alike), exit 1; a port nothing listens on is "could
/// not reach the service" instead, each with its fix.
#[test]
fn an_html_404_is_not_an_aws_answer_and_a_closed_port_is_not_reached() {
    let app = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::NOT_FOUND,
            [("content-type", "text/html; charset=utf-8")],
            "<!DOCTYPE html><html><head><title>404 Not Found</title></head>\
             <body><h1>Not Found</h1><p>The requested URL was not found.</p></body></html>",
        )
    });
    let url = ampkit_e2e::serve_in_background(app);
    let closed = format!("http://127.0.0.1:{}", ampkit_e2e::amp_local::free_port());
    let cases = [
        ("amp-workspace", vec!["list"], "listing workspaces"),
        (
            "sns-alert",
            vec![
                "test",
                "--topic-arn",
                "arn:aws:sns:eu-west-1:123456789012:grafana-x",
            ],
            "asking STS who the caller is",
        ),
    ];
    for (name, args, doing) in cases {
        let run = aimed_at(name, &url)
            .env("AWS_REGION", "eu-west-1")
            .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
            .env("AWS_SECRET_ACCESS_KEY", "secret")
            .env("AWS_MAX_ATTEMPTS", "1")
            .args(&args)
            .run();
        run.expect_code(1);
        let error = &run.error()["error"];
        assert_eq!(
            error["message"],
            format!("{doing}: the endpoint answered HTTP 404, but not as an AWS service does"),
            "{name}: {}",
            run.stderr
        );
        assert_eq!(error["kind"], "remote");
        assert!(
            error["hint"]
                .as_str()
                .unwrap()
                .starts_with("check that the endpoint is the service's"),
            "{name}: {error}"
        );
        let run = aimed_at(name, &closed)
            .env("AWS_REGION", "eu-west-1")
            .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
            .env("AWS_SECRET_ACCESS_KEY", "secret")
            .env("AWS_MAX_ATTEMPTS", "1")
            .args(&args)
            .run();
        run.expect_code(1);
        let error = &run.error()["error"];
        let message = error["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{doing}: could not reach the service")),
            "{name}: {message}"
        );
        assert!(
            error["hint"]
                .as_str()
                .unwrap()
                .starts_with("nothing answered"),
            "{name}: {error}"
        );
    }
}

/// A home of the test's own with `config` as its AWS config file and nothing else, every AWS
/// endpoint (SSO and its token service included) at a loopback port nothing listens on, so
/// that any call would fail as "could not reach", not as what the test expects.
fn with_home(name: &str, home: &std::path::Path, closed: &str) -> ampkit_e2e::Invocation {
    without_ambient_credentials(aimed_at(name, closed))
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join(".aws/config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join(".aws/credentials"))
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", closed)
        .env("AWS_ENDPOINT_URL_SSO", closed)
        .env("AWS_ENDPOINT_URL_SSO_OIDC", closed)
}

/// A cached IAM Identity Center token for `identifier` (an `sso_session`'s name, or the older
/// form's `sso_start_url`), written where the SDK reads it, as the AWS CLI writes it:
/// `~/.aws/sso/cache/SHA1(identifier).json` (aws-config's sso/cache.rs, `cached_token_path`).
/// No refresh token, so the SDK cannot refresh it. Returns the file and what it holds.
fn cached_sso_token(
    home: &std::path::Path,
    identifier: &str,
    expires_at: &str,
) -> (std::path::PathBuf, String) {
    let sha1 = std::process::Command::new("sha1sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(identifier.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    let hash = String::from_utf8(sha1.stdout).unwrap()[..40].to_owned();
    let token = serde_json::json!({
        "accessToken": "cached-access-token",
        "expiresAt": expires_at,
        "region": "eu-west-1",
        "startUrl": "https://corp.awsapps.com/start"
    })
    .to_string();
    let dir = home.join(".aws/sso/cache");
    std::fs::create_dir_all(&dir).unwrap();
    let cache = dir.join(format!("{hash}.json"));
    std::fs::write(&cache, &token).unwrap();
    (cache, token)
}

/// The profile `dev` signing in through the IAM Identity Center session `corp`.
const SSO_SESSION_PROFILE: &str = "[profile dev]\nsso_session = corp\nsso_account_id = 123456789012\n\
    sso_role_name = Admin\nregion = eu-west-1\n\n\
    [sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\n\
    sso_region = eu-west-1\nsso_registration_scopes = sso:account:access\n";

/// An `sso_session` profile whose cached token expired and cannot be refreshed (no refresh
/// token): the SDK's SSO token provider fails before any call (aws-config's
/// `sso/token.rs`: expired and not refreshable is `ExpiredToken`), and the tool says to log
/// in again, naming the profile, exit 2.
#[test]
fn an_expired_sso_session_names_aws_sso_login() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".aws")).unwrap();
    std::fs::write(home.path().join(".aws/config"), SSO_SESSION_PROFILE).unwrap();
    let (cache, token) = cached_sso_token(home.path(), "corp", "2024-01-01T00:00:00Z");
    let closed = format!("http://127.0.0.1:{}", ampkit_e2e::amp_local::free_port());
    for how in [
        with_home("amp-workspace", home.path(), &closed).env("AWS_PROFILE", "dev"),
        with_home("amp-workspace", home.path(), &closed).args(["--profile", "dev"]),
    ] {
        let run = how.args(["list"]).run();
        run.expect_code(2);
        let error = &run.error()["error"];
        assert_eq!(
            error["message"], "the SSO session of profile `dev` has expired",
            "{}",
            run.stderr
        );
        assert_eq!(error["hint"], "run `aws sso login --profile dev`");
        assert_eq!(error["kind"], "usage");
    }
    assert_eq!(
        std::fs::read_to_string(&cache).unwrap(),
        token,
        "no refresh rewrote the cache"
    );
}

/// A cached token the IAM Identity Center portal refuses (signed out or revoked; or an expired
/// one of the older profile form without `sso_session`, which the SDK sends without looking
/// at its expiry: aws-config's sso/credentials.rs, `load_sso_credentials`): the portal's
/// documented answer to GetRoleCredentials, HTTP 401 UnauthorizedException, from a fixture of
/// the test's own, is said as a session to log in to again, naming the profile, exit 2.
#[test]
fn a_token_the_sso_portal_refuses_names_aws_sso_login() {
    use std::sync::{Arc, Mutex};
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push(request.uri().path().to_owned());
            (
                axum::http::StatusCode::UNAUTHORIZED,
                [("x-amzn-ErrorType", "UnauthorizedException")],
                axum::Json(serde_json::json!({"message": "Session token not found or invalid"})),
            )
        }
    });
    let portal = ampkit_e2e::serve_in_background(app);
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".aws")).unwrap();
    let legacy = "https://legacy.awsapps.com/start";
    std::fs::write(
        home.path().join(".aws/config"),
        format!(
            "{SSO_SESSION_PROFILE}\n[profile old]\nsso_start_url = {legacy}\nsso_region = eu-west-1\n\
             sso_account_id = 123456789012\nsso_role_name = Admin\n"
        ),
    )
    .unwrap();
    cached_sso_token(home.path(), "corp", "2099-01-01T00:00:00Z");
    cached_sso_token(home.path(), legacy, "2024-01-01T00:00:00Z");
    let closed = format!("http://127.0.0.1:{}", ampkit_e2e::amp_local::free_port());
    for profile in ["dev", "old"] {
        let run = with_home("amp-workspace", home.path(), &closed)
            .env("AWS_ENDPOINT_URL_SSO", &portal)
            .args(["list", "--profile", profile])
            .run();
        run.expect_code(2);
        let error = &run.error()["error"];
        assert_eq!(
            error["message"],
            format!(
                "the SSO session of profile `{profile}` is no longer valid: the SSO portal refused its token"
            ),
            "{}",
            run.stderr
        );
        assert_eq!(
            error["hint"],
            format!("run `aws sso login --profile {profile}`")
        );
    }
    assert_eq!(
        *asked.lock().unwrap(),
        ["/federation/credentials", "/federation/credentials"],
        "each profile's token went to the portal's GetRoleCredentials once"
    );
}

/// A profile whose role cannot be assumed (role_arn + source_profile, STS a moto enforcing
/// IAM): the tool's one line names the role, the profile and STS's cause, exit 2: a source
/// identity whose policies do not allow sts:AssumeRole is access denied naming it, source
/// keys STS does not know are refused credentials naming the source profile.
#[test]
fn a_role_that_cannot_be_assumed_names_the_role_and_the_cause() {
    // Two unchecked calls: the source user and its key.
    let moto = EnforcingMoto::start(2);
    let user = ampkit_e2e::unique_name("source");
    let (key_id, secret) = ampkit_e2e::runtime().block_on(async {
        let iam = aws_sdk_iam::Client::new(&moto.admin().await);
        iam.create_user().user_name(&user).send().await.unwrap();
        let key = iam
            .create_access_key()
            .user_name(&user)
            .send()
            .await
            .unwrap()
            .access_key
            .unwrap();
        (
            key.access_key_id().to_owned(),
            key.secret_access_key().to_owned(),
        )
    });
    let role = "arn:aws:iam::123456789012:role/ampkit-deployer";
    let home = tempfile::tempdir().unwrap();
    let aws = home.path().join(".aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("config"),
        format!(
            "[profile deployer]\nrole_arn = {role}\nsource_profile = ci\n\n\
             [profile outsider]\nrole_arn = {role}\nsource_profile = stranger\n"
        ),
    )
    .unwrap();
    std::fs::write(
        aws.join("credentials"),
        format!(
            "[ci]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n\n\
             [stranger]\naws_access_key_id = AKIAUNKNOWNUNKNOWN00\naws_secret_access_key = nope\n"
        ),
    )
    .unwrap();
    let closed = format!("http://127.0.0.1:{}", ampkit_e2e::amp_local::free_port());
    let as_profile = |profile: &str| {
        with_home("amp-workspace", home.path(), &closed)
            .env("AWS_ENDPOINT_URL_STS", &moto.url)
            .args(["list", "--profile", profile])
            .run()
    };

    let run = as_profile("deployer");
    run.expect_code(2);
    let error = &run.error()["error"];
    assert_eq!(error["kind"], "access-denied", "{}", run.stderr);
    let caller = format!("arn:aws:iam::123456789012:user/{user}");
    assert_eq!(
        error["message"],
        format!(
            "assuming role {role} of profile `deployer`: access denied: the caller ({caller}) may not `sts:AssumeRole`"
        ),
        "{}",
        run.stderr
    );
    let hint = error["hint"].as_str().unwrap();
    assert!(
        hint.starts_with(&format!("the trust policy of {role} must allow {caller}")),
        "{hint}"
    );

    let run = as_profile("outsider");
    run.expect_code(2);
    let error = &run.error()["error"];
    assert_eq!(error["kind"], "usage", "{}", run.stderr);
    assert_eq!(
        error["message"],
        format!(
            "assuming role {role} of profile `outsider`: AWS refused the credentials (InvalidClientTokenId): The security token included in the request is invalid."
        ),
        "{}",
        run.stderr
    );
    assert!(
        error["hint"]
            .as_str()
            .unwrap()
            .ends_with("(these are the credentials of source_profile `stranger`)"),
        "{error}"
    );
}
