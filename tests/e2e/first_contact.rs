//! The first minutes with a real account, as far as they can be produced here: credentials
//! that are missing or name a profile that does not exist are said in one line with the fix,
//! exit 2, before any call is made (the endpoint named is one nothing listens on, so a call
//! would fail differently).

use ampkit_e2e::tool;

/// A tool run with no credentials anywhere the default chain looks: a fresh HOME, no keys in
/// the environment, the instance metadata service at a loopback port nothing listens on.
fn without_credentials(home: &std::path::Path) -> ampkit_e2e::Invocation {
    let mut invocation = aimed_at("amp-workspace", "http://127.0.0.1:9");
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
}

#[test]
fn a_profile_that_does_not_exist_is_named() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config"),
        "[profile team]\nregion = eu-west-1\n",
    )
    .unwrap();
    for how in [["--profile", "nope"], ["--region", "eu-west-1"]] {
        let run = without_credentials(home.path())
            .env("AWS_PROFILE", "nope")
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
