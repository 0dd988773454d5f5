//! IAM, enforced: amp-local on the stack runs with `--iam-from` (moto), so a request signed with
//! any key but the stack's fixed one is allowed only what the signer's IAM policies allow.
//!
//! The collector's identity is the recipe's: irsa-role makes the cluster's OIDC provider and
//! the role with ampkit's least-privilege policy, and the collector's credentials come from STS
//! AssumeRoleWithWebIdentity on moto with a service account token made here. moto does not
//! verify the token (no signature, issuer or audience check; its trust policy is not evaluated
//! either): what is proven is what the role's credentials may do once obtained, which is the
//! part amp-local enforces.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ampkit_e2e::amp_local::{Agent, SessionSigner, now_ms, remote_write_body, series};
use ampkit_e2e::{Stack, eventually, new_workspace, runtime, stack, tool, unique_name};
use base64::Engine;
use serde_json::{Value, json};

/// A region no other test makes clusters in: moto gives every cluster of a region the same
/// OIDC issuer, so the OIDC provider irsa-role makes here is this test's alone.
const CLUSTER_REGION: &str = "ca-central-1";

fn xml_text(body: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = body
        .find(&open)
        .unwrap_or_else(|| panic!("no <{tag}> in {body}"))
        + open.len();
    let end = body[start..].find(&format!("</{tag}>")).unwrap() + start;
    body[start..end].to_owned()
}

/// A service account token as EKS would project it (unsigned: moto does not check it).
fn web_identity_token(issuer: &str) -> String {
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let now = now_ms() / 1000;
    format!(
        "{}.{}.{}",
        b64(json!({"alg": "RS256", "kid": "ampkit-test"})),
        b64(json!({
            "iss": issuer,
            "sub": "system:serviceaccount:grafana-agent:grafana-agent",
            "aud": ["sts.amazonaws.com"],
            "iat": now,
            "exp": now + 3600,
        })),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"not-a-signature")
    )
}

/// STS AssumeRoleWithWebIdentity on moto (an unsigned call, as AWS takes it): the session's
/// access key, secret and token.
async fn assume_with_web_identity(
    stack: &Stack,
    role_arn: &str,
    token: &str,
) -> (String, String, String) {
    let body = form(&[
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", "2011-06-15"),
        ("RoleArn", role_arn),
        ("RoleSessionName", "ampkit-collector"),
        ("WebIdentityToken", token),
    ]);
    let answer = reqwest::Client::new()
        .post(format!("{}/", stack.moto_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{answer:?}");
    let xml = answer.text().await.unwrap();
    (
        xml_text(&xml, "AccessKeyId"),
        xml_text(&xml, "SecretAccessKey"),
        xml_text(&xml, "SessionToken"),
    )
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", ampkit_e2e::urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

struct Answer {
    status: u16,
    error_type: String,
    body: String,
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let error_type = r
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Answer {
        status,
        error_type,
        body: r.text().await.unwrap(),
    }
}

fn write_body(marker: &str) -> Vec<u8> {
    remote_write_body(vec![series(
        &[("__name__", "ampkit_iam_probe"), ("ampkit_test", marker)],
        &[(1.0, now_ms())],
    )])
}

fn workspace_id(doc: &Value) -> String {
    doc["workspace"]["workspaceId"].as_str().unwrap().to_owned()
}

#[test]
fn the_irsa_roles_credentials_write_to_their_workspace_only_and_the_recipes_star_policy_would_not_stop_them()
 {
    let stack = stack();
    let rt = runtime();
    let marker = unique_name("iam");
    let ours = new_workspace(&stack, "amp-iam");
    let other = new_workspace(&stack, "amp-iam-other");
    let (ws, other_ws) = (workspace_id(&ours), workspace_id(&other));
    let ws_arn = ours["workspace"]["arn"].as_str().unwrap().to_owned();
    let other_arn = other["workspace"]["arn"].as_str().unwrap().to_owned();

    // The cluster, and irsa-role's OIDC provider and role for the collector.
    let cluster = unique_name("amp-iam");
    let issuer = rt.block_on(async {
        let config = stack
            .aws_config()
            .await
            .into_builder()
            .region(aws_config::Region::new(CLUSTER_REGION))
            .build();
        ampkit_e2e::create_eks_cluster(&config, &cluster).await
    });
    let role = unique_name("ampkit-amp-iam");
    let manifest = tempfile::tempdir().unwrap();
    let irsa = tool("irsa-role")
        .on(&stack)
        .env("AWS_REGION", CLUSTER_REGION)
        .env("AWS_DEFAULT_REGION", CLUSTER_REGION)
        .args([
            "create",
            "--cluster",
            &cluster,
            "--role-name",
            &role,
            "--manifest-out",
            &manifest.path().join("sa.yaml").display().to_string(),
        ])
        .stdin_doc(&ours)
        .run();
    irsa.expect_code(0);
    let doc = irsa.doc();
    let role_arn = doc["irsa"]["roleArn"].as_str().unwrap().to_owned();

    let (key, secret, token) = rt.block_on(assume_with_web_identity(
        &stack,
        &role_arn,
        &web_identity_token(&issuer),
    ));
    assert!(key.starts_with("ASIA"), "{key}");
    let session = SessionSigner::for_stack(&stack, &key, &secret, &token);
    let http = reqwest::Client::new();
    let url = |ws: &str, op: &str| format!("{}/workspaces/{ws}/api/v1/{op}", stack.amp_url);
    let write = |ws: &str| {
        session.request(
            &http,
            "POST",
            &url(ws, "remote_write"),
            &[
                ("content-type", "application/x-protobuf"),
                ("content-encoding", "snappy"),
                ("x-prometheus-remote-write-version", "0.1.0"),
            ],
            write_body(&marker),
        )
    };
    let query = |ws: &str| {
        session.request(
            &http,
            "POST",
            &url(ws, "query"),
            &[("content-type", "application/x-www-form-urlencoded")],
            b"query=up".to_vec(),
        )
    };

    rt.block_on(async {
        // Its remote writes succeed: the collector (a Prometheus agent signing with the
        // session's credentials from its environment) and a signed request of our own.
        let written = send(write(&ws)).await;
        assert!(
            (200..300).contains(&written.status),
            "{} {}",
            written.status,
            written.body
        );
    });
    let _agent = Agent::start_with_credentials(
        &stack,
        &ws,
        ("ampkit_test", &marker),
        |port| {
            format!(
                "  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
            )
        },
        &[
            ("AWS_ACCESS_KEY_ID", &key),
            ("AWS_SECRET_ACCESS_KEY", &secret),
            ("AWS_SESSION_TOKEN", &token),
        ],
    );
    // What the agent wrote is there, read with the stack's key (full access).
    tool("promql")
        .on(&stack)
        .args([
            "wait",
            &format!("count(up{{ampkit_test=\"{marker}\"}}) > 0"),
            "--timeout",
            "60s",
        ])
        .stdin_doc(&ours)
        .run()
        .expect_code(0);

    rt.block_on(async {
        // A query with the same credentials is refused, as AMP refuses it.
        let refused = send(query(&ws)).await;
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert_eq!(refused.error_type, "AccessDeniedException");
        let message = serde_json::from_str::<Value>(&refused.body).unwrap()["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            message,
            format!(
                "User: arn:aws:sts::123456789012:assumed-role/{role}/ampkit-collector is not \
                 authorized to perform: aps:QueryMetrics on resource: {ws_arn} because no \
                 identity-based policy allows the aps:QueryMetrics action"
            )
        );
        // A write into another workspace is refused.
        let elsewhere = send(write(&other_ws)).await;
        assert_eq!(elsewhere.status, 403, "{}", elsewhere.body);
        assert_eq!(elsewhere.error_type, "AccessDeniedException");
        assert!(
            elsewhere
                .body
                .contains(&format!("aps:RemoteWrite on resource: {other_arn} ")),
            "{}",
            elsewhere.body
        );
        // Temporary credentials without their session token are not credentials at all.
        let without_token = send(session.signer.request(
            &http,
            "POST",
            &url(&ws, "remote_write"),
            &[("content-type", "application/x-protobuf")],
            write_body(&marker),
        ))
        .await;
        assert_eq!(without_token.status, 403, "{}", without_token.body);
        assert_eq!(without_token.error_type, "UnrecognizedClientException");
    });

    // The tools with these credentials: a control-plane call (the SDK's) is reported as
    // access denied (exit 2) naming the action, and so is promql's data-plane 403.
    let creds = |t: ampkit_e2e::Invocation| {
        t.on(&stack)
            .env("AWS_ACCESS_KEY_ID", &key)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .env("AWS_SESSION_TOKEN", &token)
    };
    let ensure = creds(tool("amp-workspace"))
        .args(["ensure", "--alias", &unique_name("amp-iam-denied")])
        .run();
    ensure.expect_code(2);
    let error = &ensure.error()["error"];
    assert_eq!(error["kind"], "access-denied", "{}", ensure.stderr);
    assert!(
        ensure.stderr.contains("aps:ListWorkspaces"),
        "{}",
        ensure.stderr
    );
    let denied = creds(tool("promql"))
        .args(["query", "up"])
        .stdin_doc(&ours)
        .run();
    denied.expect_code(2);
    let error = &denied.error()["error"];
    assert_eq!(error["kind"], "access-denied", "{}", denied.stderr);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("may not `aps:QueryMetrics` on `arn:aws:aps:"),
        "the action and the workspace AWS named: {message}"
    );

    // The recipe's original policy (the data-plane actions on "*") in place of ours: the same
    // credentials may now query, and write into any workspace. Within a couple of seconds, as
    // amp-local reads moto's IAM again.
    rt.block_on(async {
        let iam = aws_sdk_iam::Client::new(&stack.aws_config().await);
        let recipe = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": ["aps:RemoteWrite", "aps:QueryMetrics", "aps:GetSeries", "aps:GetLabels",
                       "aps:GetMetricMetadata"],
            "Resource": "*"}]});
        iam.put_role_policy()
            .role_name(&role)
            .policy_name("ampkit-amp-access")
            .policy_document(recipe.to_string())
            .send()
            .await
            .unwrap();
        let changed = std::time::Instant::now();
        eventually(
            "the recipe's policy to allow the query",
            Duration::from_secs(10),
            || async { (send(query(&ws)).await.status == 200).then_some(()) },
        )
        .await;
        let took = changed.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "a policy change took {took:?}"
        );
        let elsewhere = send(write(&other_ws)).await;
        assert!(
            (200..300).contains(&elsewhere.status),
            "{} {}",
            elsewhere.status,
            elsewhere.body
        );
        // Still nothing of the control plane: not in the recipe's policy either.
        let delete = send(session.request(
            &http,
            "DELETE",
            &format!("{}/workspaces/{other_ws}", stack.amp_url),
            &[],
            Vec::new(),
        ))
        .await;
        assert_eq!(delete.status, 403, "{}", delete.body);
        assert!(
            delete.body.contains("aps:DeleteWorkspace"),
            "{}",
            delete.body
        );
    });

    // Everything made here goes: the role, its policy, the provider, both workspaces.
    tool("teardown")
        .on(&stack)
        .stdin_doc(&doc)
        .run()
        .expect_code(0);
    tool("teardown")
        .on(&stack)
        .stdin_doc(&other)
        .run()
        .expect_code(0);
}
