//! The local stack itself: `up` brings every part to readiness, the parts really work
//! (moto answers the AWS SDK, a request through dj reaches jazz and Envoy counts it,
//! Prometheus and Alertmanager are ready), and `down` leaves no process behind.
//!
//! This test runs its own stack on its own ports and directory, so that it can stop it
//! without disturbing the shared stack the other tests use.

use std::path::Path;
use std::time::Duration;

use ampkit_e2e::local_stack;

/// This test's own stack sits 250 ports above the shared one (`make test`: 18700 -> 18950),
/// clear of its parts, so that two test runs with different port bases never collide.
fn port_base() -> u16 {
    std::env::var("AMPKIT_PORT_BASE")
        .ok()
        .and_then(|base| base.parse::<u16>().ok())
        .unwrap_or(18700)
        + 250
}

/// Whether a process runs: it exists and is not a zombie waiting to be reaped.
fn pid_alive(pid: &str) -> bool {
    let stat = Path::new("/proc").join(pid.trim()).join("stat");
    match std::fs::read_to_string(stat) {
        // The state is the field after the parenthesised command name.
        Ok(text) => text
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn stack_pids(dir: &Path) -> Vec<(String, String)> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir(dir)
        .expect("the stack dir exists")
        .flatten()
    {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "pid") {
            let name = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            pids.push((name, pid.trim().to_owned()));
        }
    }
    pids
}

/// Envoy's counter `name` from an admin's plain-text `/stats`.
async fn envoy_counter(http: &reqwest::Client, admin: &str, name: &str) -> u64 {
    let text = http
        .get(format!(
            "{admin}/stats?filter=^{}$",
            name.replace('.', "\\.")
        ))
        .send()
        .await
        .expect("admin answers")
        .text()
        .await
        .expect("admin body");
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn up_serves_every_part_and_down_leaves_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stack_dir = dir.path().join("stack");
    let stack_dir_str = stack_dir.to_string_lossy().into_owned();
    let base = port_base().to_string();
    let env = [
        ("AMPKIT_PORT_BASE", base.as_str()),
        ("AMPKIT_STACK_DIR", stack_dir_str.as_str()),
    ];

    let up = local_stack(&["up"], &env);
    // Whatever happens below, the stack must come down again.
    struct Down<'a>(&'a [(&'a str, &'a str)]);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = local_stack(&["down"], self.0);
        }
    }
    let _down = Down(&env);
    up.expect_code(0);

    // env prints what the tools need; read the addresses from it rather than recomputing.
    let exports = local_stack(&["env"], &env);
    exports.expect_code(0);
    let exported = ampkit_e2e::stack_exports(&exports.stdout);
    let var = |name: &str| -> String {
        exported
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| {
                panic!(
                    "`local-stack env` does not export {name}:\n{}",
                    exports.stdout
                )
            })
    };
    let moto = var("AMPKIT_MOTO_URL");
    let envoy = var("AMPKIT_ENVOY_URL");
    let admins: Vec<String> = var("AMPKIT_ENVOY_ADMIN_URLS")
        .split(',')
        .map(str::to_owned)
        .collect();
    let prometheus = var("AMPKIT_PROMETHEUS_URL");
    let alertmanager = var("AMPKIT_ALERTMANAGER_URL");
    assert_eq!(var("AWS_ENDPOINT_URL"), moto);
    for url in [&moto, &envoy, &prometheus, &alertmanager] {
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "{url} is not on loopback"
        );
    }
    assert_eq!(admins.len(), 3, "dj, jazz and metal admins");

    // moto answers a real AWS SDK call.
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(var("AWS_REGION")))
        .endpoint_url(&moto)
        .credentials_provider(aws_sdk_iam::config::Credentials::new(
            var("AWS_ACCESS_KEY_ID"),
            var("AWS_SECRET_ACCESS_KEY"),
            None,
            None,
            "local-stack",
        ))
        .load()
        .await;
    let iam = aws_sdk_iam::Client::new(&config);
    let role_name = ampkit_e2e::unique_name("stack-probe");
    iam.create_role()
        .role_name(&role_name)
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[]}"#)
        .send()
        .await
        .expect("moto creates a role");
    let got = iam
        .get_role()
        .role_name(&role_name)
        .send()
        .await
        .expect("moto returns the role");
    assert_eq!(got.role().map(|r| r.role_name()), Some(role_name.as_str()));

    // A request through dj reaches jazz, and both Envoys count it.
    let http = reqwest::Client::new();
    let response = http
        .get(format!("{envoy}/jazz"))
        .send()
        .await
        .expect("dj answers");
    assert_eq!(response.status(), 200);
    let artists: serde_json::Value = response.json().await.expect("jazz answers JSON");
    assert!(
        artists.as_array().is_some_and(|a| !a.is_empty()),
        "jazz lists artists: {artists}"
    );
    // A fresh stack: these are exactly our one request.
    assert_eq!(
        envoy_counter(&http, &admins[0], "http.ingress_dj.downstream_rq_2xx").await,
        1
    );
    assert_eq!(
        envoy_counter(&http, &admins[0], "cluster.egress_jazz.upstream_rq_2xx").await,
        1
    );
    assert_eq!(
        envoy_counter(&http, &admins[1], "http.ingress_jazz.downstream_rq_2xx").await,
        1
    );
    assert_eq!(
        envoy_counter(&http, &admins[2], "http.ingress_metal.downstream_rq_total").await,
        0
    );

    // Prometheus and Alertmanager are ready.
    for url in [&prometheus, &alertmanager] {
        let ready = http
            .get(format!("{url}/-/ready"))
            .send()
            .await
            .expect("answers");
        assert_eq!(ready.status(), 200, "{url}/-/ready");
    }

    // status agrees; then down stops every process it started.
    local_stack(&["status"], &env).expect_code(0);
    let pids = stack_pids(&stack_dir);
    assert!(pids.len() >= 6, "a pid file per part: {pids:?}");
    for (name, pid) in &pids {
        assert!(pid_alive(pid), "{name} (pid {pid}) runs while up");
    }
    local_stack(&["down"], &env).expect_code(0);
    // down waits for its processes; give the kernel a moment to reap them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (name, pid) in &pids {
        assert!(
            !pid_alive(pid),
            "{name} (pid {pid}) is still running after down"
        );
    }
    assert_eq!(
        local_stack(&["status"], &env).code,
        1,
        "status reports the stack down"
    );
}
