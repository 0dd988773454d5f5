//! The first minutes with a real account, as far as they can be produced here: credentials
//! that are missing or name a profile that does not exist are said in one line with the fix,
//! exit 2, before any call is made (the endpoint named is one nothing listens on, so a call
//! would fail differently).

use ampkit_e2e::tool;

/// A tool run with no credentials anywhere the default chain looks: a fresh HOME, no keys in
/// the environment, the instance metadata service at a loopback port nothing listens on.
fn without_credentials(home: &std::path::Path) -> ampkit_e2e::Invocation {
    let mut invocation = tool("amp-workspace");
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
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
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
