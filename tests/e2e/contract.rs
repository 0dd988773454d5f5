//! The state-document contract, checked on every tool as a process: bad stdin is refused
//! with exit 2 and a JSON error naming the problem (and where it is), bad flags are refused
//! with exit 2 while the document passes on untouched, and a pipe closed early is not an
//! error.
//!
//! Each tool gets arguments that are otherwise valid, so that the document is the only
//! thing wrong; no tool reaches the network before its input is checked.

use ampkit_e2e::tool;
use serde_json::json;

/// Every pipeline tool, with arguments it accepts.
const TOOLS: &[(&str, &[&str])] = &[
    ("amp-workspace", &["list"]),
    ("promql", &["labels"]),
    ("envoy-traffic", &["--requests", "1"]),
    (
        "render-agent-config",
        &[
            "--flavor",
            "prometheus-agent",
            "--out",
            "target/contract-out",
        ],
    ),
    ("irsa-role", &["create", "--cluster", "contract-test"]),
    ("grafana-import", &["--grafana-url", "http://127.0.0.1:9"]),
    ("sns-alert", &["--workspace-id", "ws-contract"]),
    ("teardown", &["--dry-run"]),
];

#[test]
fn malformed_json_on_stdin_is_exit_2_with_position() {
    for (name, args) in TOOLS {
        let run = tool(name)
            .args(*args)
            .stdin("{\"workspace\": {\"workspaceId\": }")
            .run();
        run.expect_code(2);
        let err = run.error();
        assert_eq!(err["error"]["tool"], *name);
        assert_eq!(err["error"]["kind"], "input", "{name}: {err}");
        let message = err["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("not valid JSON"), "{name}: {message}");
        assert!(message.contains("line 1 column"), "{name}: {message}");
        assert!(
            err["error"]["hint"].is_string(),
            "{name}: a hint says how to fix it"
        );
        assert!(
            run.stdout.is_empty(),
            "{name}: nothing on stdout: {}",
            run.stdout
        );
    }
}

#[test]
fn a_non_object_document_is_exit_2_naming_what_it_got() {
    for (name, args) in TOOLS {
        let run = tool(name).args(*args).stdin("[1, 2, 3]").run();
        run.expect_code(2);
        let message = run.error()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            message.contains("must be a JSON object"),
            "{name}: {message}"
        );
        assert!(message.contains("an array"), "{name}: {message}");
    }
}

#[test]
fn an_unknown_flag_is_exit_2_and_the_document_passes_on() {
    let doc = json!({
        "earlier": {"nested": {"keep": [1, 2.5, "three", null]}},
        "resources": [{"type": "amp-workspace", "id": "ws-keep", "tool": "amp-workspace"}]
    });
    for (name, args) in TOOLS {
        let run = tool(name).args(*args).arg_unknown().stdin_doc(&doc).run();
        run.expect_code(2);
        let err = run.error();
        assert_eq!(err["error"]["kind"], "usage", "{name}");
        let message = err["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("--no-such-flag"), "{name}: {message}");
        // The ledger is never lost, even when the tool refuses to run.
        assert_eq!(run.doc(), doc, "{name}: the document passes on unchanged");
    }
}

#[test]
fn help_goes_to_stdout_and_exits_0() {
    for (name, _) in TOOLS {
        let run = tool(name).args(["--help"]).run();
        run.expect_code(0);
        assert!(run.stdout.contains("Usage:"), "{name}: {}", run.stdout);
        // The tool's own description comes first, not that of a flag group the frame adds.
        let about = run.stdout.lines().next().unwrap_or_default();
        assert!(
            !about.is_empty() && !run.stdout.contains("Verbosity flags of every tool"),
            "{name}'s help starts with: {about}"
        );
    }
}

/// A tool that does its work locally keeps every key it does not own, in order.
#[test]
fn a_pure_tool_passes_unknown_keys_through() {
    let doc = json!({
        "zeta": {"deep": {"list": [{"a": 1}, {"b": [true, false]}]}},
        "workspace": {
            "workspaceId": "ws-contract",
            "arn": "arn:aws:aps:eu-west-1:123456789012:workspace/ws-contract",
            "region": "eu-west-1",
            "prometheusEndpoint": "http://127.0.0.1:1/workspaces/ws-contract/",
            "remoteWriteUrl": "http://127.0.0.1:1/workspaces/ws-contract/api/v1/remote_write",
            "queryUrl": "http://127.0.0.1:1/workspaces/ws-contract/api/v1/query"
        },
        "resources": [{"type": "x", "id": "y", "tool": "z"}]
    });
    let out_dir = tempfile::tempdir().expect("temp dir");
    let run = tool("render-agent-config")
        .args([
            "--flavor",
            "prometheus-agent",
            "--target",
            "127.0.0.1:9901,service=dj",
            "--out",
        ])
        .args([out_dir.path()])
        .stdin_doc(&doc)
        .run();
    run.expect_code(0);
    let out = run.doc();
    for key in ["zeta", "workspace", "resources"] {
        assert_eq!(out[key], doc[key], "`{key}` passes through unchanged");
    }
    let keys: Vec<&String> = out.as_object().expect("an object").keys().collect();
    assert_eq!(
        &keys[..3],
        ["zeta", "workspace", "resources"],
        "order is kept"
    );
    assert!(out["agent"].is_object(), "the tool adds its own section");
}

/// `tool | head -1` must not complain: a reader that went away is not an error (ripgrep's
/// rule), so the exit code is 0 and stderr stays quiet.
#[test]
fn a_closed_stdout_is_not_an_error() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let out_dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(ampkit_e2e::bin("render-agent-config"))
        .args([
            "--flavor",
            "prometheus-agent",
            "--target",
            "127.0.0.1:9901",
            "--no-sigv4",
        ])
        .args([
            "--remote-write-url",
            "http://127.0.0.1:1/api/v1/write",
            "--out",
        ])
        .arg(out_dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    // Close the reading end before the tool can write: its write meets a broken pipe.
    drop(child.stdout.take());
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"{\"keep\": 1}").expect("writes stdin");
    drop(stdin);
    let output = child.wait_with_output().expect("exits");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    assert!(!stderr.contains("error"), "stderr: {stderr}");
}

/// With no region anywhere (flag, environment, profile), an AWS tool stops at once with a
/// usage error that names the three ways to give one, instead of probing instance metadata.
#[test]
fn no_region_is_a_usage_error_naming_the_fix() {
    let empty_home = tempfile::tempdir().expect("temp dir");
    let run = tool("amp-workspace")
        .args(["list"])
        .env("HOME", empty_home.path())
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_CONFIG_FILE")
        .env("AWS_ACCESS_KEY_ID", "AKIDCONTRACT")
        .env("AWS_SECRET_ACCESS_KEY", "contract-secret")
        .stdin("{}")
        .run();
    run.expect_usage_error("region");
    let err = run.error();
    let hint = err["error"]["hint"].as_str().unwrap_or_default();
    for way in ["--region", "AWS_REGION", "profile"] {
        assert!(hint.contains(way), "the hint names {way}: {hint}");
    }
    assert_eq!(run.doc(), json!({}), "the document still passes on");
}

/// Every program, pipeline tools and the amp-local server alike.
fn all_programs() -> impl Iterator<Item = &'static str> {
    TOOLS
        .iter()
        .map(|(name, _)| *name)
        .chain(std::iter::once("amp-local"))
}

#[test]
fn help_ends_with_examples_that_name_the_tool() {
    for name in all_programs() {
        let run = tool(name).args(["--help"]).run();
        run.expect_code(0);
        let (_, examples) = run
            .stdout
            .split_once("Examples:\n")
            .unwrap_or_else(|| panic!("{name}: no Examples section in\n{}", run.stdout));
        let lines: Vec<&str> = examples
            .lines()
            .filter(|l| l.trim_start().starts_with(name) || l.contains(&format!("| {name}")))
            .collect();
        assert!(
            (2..=4).contains(&lines.len()),
            "{name}: two or three examples using it, got {lines:?}"
        );
    }
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish_and_bash_loads_them() {
    for name in all_programs() {
        for (shell, marker) in [
            ("bash", "complete -F"),
            ("zsh", "#compdef"),
            ("fish", "complete -c"),
        ] {
            let run = tool(name).args(["--completions", shell]).run();
            run.expect_code(0);
            assert!(
                run.stdout.contains(marker),
                "{name} {shell}: {}",
                run.stdout
            );
            assert!(run.stdout.contains(name), "{name} {shell}");
        }
        // The bash script really registers a completion for the program.
        let script = tool(name).args(["--completions", "bash"]).run().stdout;
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), script).unwrap();
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {} && complete -p {name}",
                file.path().display()
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains(name),
            "{name}: bash did not register the completion: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Not a shell: exit 2 naming the flag.
    let run = tool("promql").args(["--completions", "tcsh"]).run();
    run.expect_code(2);
    let message = run.error()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("--completions"), "{message}");
}

/// One duration grammar: a value one tool refuses, every tool refuses, naming its flag.
#[test]
fn every_duration_flag_refuses_the_same_values() {
    let flags: &[(&str, &[&str], &str)] = &[
        ("amp-workspace", &["list"], "--timeout"),
        ("promql", &["labels"], "--timeout"),
        ("envoy-traffic", &["--requests", "1"], "--duration"),
        (
            "render-agent-config",
            &[
                "--flavor",
                "prometheus-agent",
                "--out",
                "target/contract-out",
            ],
            "--scrape-interval",
        ),
        ("grafana-import", &["--render-only"], "--scrape-interval"),
        ("grafana-import", &["--render-only"], "--query-timeout"),
    ];
    for (name, args, flag) in flags {
        for bad in ["fast", "1min", "1.5s", "-5m", "30m1h"] {
            // `--flag=value`, so that `-5m` is taken as the value, not as a flag.
            let run = tool(name)
                .args(*args)
                .args([format!("{flag}={bad}")])
                .stdin("{}")
                .run();
            run.expect_code(2);
            let message = run.error()["error"]["message"].as_str().unwrap().to_owned();
            assert!(message.contains(flag), "{name} {flag} {bad}: {message}");
            assert!(message.contains(bad), "{name} {flag} {bad}: {message}");
        }
    }
}

/// A duration typed in any accepted form is written in Prometheus's own form.
#[test]
fn a_scrape_interval_in_seconds_is_written_as_a_prometheus_duration() {
    let out = tempfile::tempdir().unwrap();
    let run = tool("render-agent-config")
        .args([
            "--flavor",
            "prometheus-agent",
            "--scrape-interval",
            "90",
            "--remote-write-url",
            "http://127.0.0.1:1/api/v1/write",
            "--no-sigv4",
            "--target",
            "127.0.0.1:9901",
            "--out",
        ])
        .args([out.path()])
        .stdin("{}")
        .run();
    run.expect_code(0);
    let config = std::fs::read_to_string(out.path().join("prometheus-agent.yml")).unwrap();
    assert!(config.contains("scrape_interval: 1m30s"), "{config}");
}
