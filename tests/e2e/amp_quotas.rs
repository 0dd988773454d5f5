//! AMP's quotas and errors in amp-local, each limit shown refusing: low limits are set with
//! amp-local's flags on an amp-local the test starts (in front of the stack's Prometheus), the
//! refusal's status and body are AMP's, and what was refused is shown not written (asked of
//! the Prometheus directly). The control plane's 409 ConflictException is shown on the main
//! stack (its 2 s CREATING/UPDATING phase), with lib's changes waiting it out. Last, the
//! recipe's collector (render-agent-config's Prometheus agent) under a low ingestion limit:
//! with the configuration rendered, no sample is lost; without `retry_on_http_429`, samples
//! are.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ampkit::amp::rules::Rules;
use ampkit::grafana::Outcome;
use ampkit::ledger::Removal;
use ampkit::poll::Progress;
use ampkit_e2e::amp_local::{
    MetricMetadata, Process, REMOTE_WRITE_HEADERS, Signer, counter_metadata, free_port, http,
    local_bin, now_ms, prometheus_query, remote_write_body, remote_write_body_with_metadata,
    series, signed_read,
};
use ampkit_e2e::{Stack, amp_sdk, eventually, stack, tool, unique_name};
use aws_sdk_amp::client::Waiters;
use aws_sdk_amp::primitives::Blob;
use serde_json::{Value, json};

/// An amp-local of the test's own with `limits` (flags), in front of the stack's Prometheus;
/// stopped by PID when dropped.
struct OwnAmp {
    _process: Process,
    _dir: tempfile::TempDir,
    url: String,
    stack: Stack,
}

impl OwnAmp {
    async fn start(limits: &[&str]) -> OwnAmp {
        let stack = stack();
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("amp-local.log")).expect("log");
        let process = Process(
            Command::new(ampkit_e2e::bin("amp-local"))
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(["--prometheus-url", &stack.prometheus_url])
                .arg("--rules-dir")
                .arg(dir.path().join("rules"))
                .arg("--data-dir")
                .arg(dir.path().join("data"))
                .args(["--region", &stack.region, "--activation-delay", "0s"])
                .args(limits)
                .env("AWS_ACCESS_KEY_ID", &stack.access_key_id)
                .env("AWS_SECRET_ACCESS_KEY", &stack.secret_access_key)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("amp-local starts"),
        );
        let url = format!("http://127.0.0.1:{port}");
        let health = format!("{url}/healthz");
        eventually("amp-local to answer", Duration::from_secs(30), || async {
            let ok = http()
                .get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            ok.then_some(())
        })
        .await;
        OwnAmp {
            _process: process,
            _dir: dir,
            url,
            stack,
        }
    }

    async fn sdk(&self) -> aws_sdk_amp::Client {
        amp_sdk(&self.url).await
    }

    /// A new workspace, ACTIVE at once (activation delay 0).
    async fn workspace(&self) -> String {
        let client = self.sdk().await;
        let id = client
            .create_workspace()
            .alias(unique_name("quotas"))
            .send()
            .await
            .expect("CreateWorkspace")
            .workspace_id()
            .to_owned();
        client
            .wait_until_workspace_active()
            .workspace_id(&id)
            .wait(Duration::from_secs(30))
            .await
            .expect("ACTIVE");
        id
    }

    /// Remote-write `series` into `ws`: the status and the body.
    async fn write(
        &self,
        ws: &str,
        series: Vec<ampkit_e2e::amp_local::TimeSeries>,
    ) -> (u16, String) {
        self.write_body(ws, remote_write_body(series)).await
    }

    /// Remote-write `series` and `metadata` into `ws`: the status and the body.
    async fn write_with_metadata(
        &self,
        ws: &str,
        series: Vec<ampkit_e2e::amp_local::TimeSeries>,
        metadata: Vec<MetricMetadata>,
    ) -> (u16, String) {
        self.write_body(ws, remote_write_body_with_metadata(series, metadata))
            .await
    }

    async fn write_body(&self, ws: &str, body: Vec<u8>) -> (u16, String) {
        let url = format!("{}/workspaces/{ws}/api/v1/remote_write", self.url);
        let response = Signer::for_stack(&self.stack)
            .request(&http(), "POST", &url, REMOTE_WRITE_HEADERS, body)
            .send()
            .await
            .expect("amp-local answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// The metadata entries of `metric` the workspace's GetMetricMetadata lists.
    async fn metadata(&self, ws: &str, metric: &str) -> Vec<Value> {
        let (status, body) = self.read(ws, "metadata", &[("metric", metric)]).await;
        assert_eq!(status, 200, "{body}");
        body["data"][metric].as_array().cloned().unwrap_or_default()
    }

    /// What amp-local has logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("amp-local.log")).unwrap_or_default()
    }

    /// A signed GET of a workspace's query API with `params`: the status and the JSON body.
    async fn read(&self, ws: &str, op: &str, params: &[(&str, &str)]) -> (u16, Value) {
        signed_read(&self.stack, &self.url, ws, op, params).await
    }
}

/// How many samples of `selector` (with `ampkit_workspace=ws`) the Prometheus holds over the
/// last hour, asked of it directly (not through amp-local, whose answer is under test).
async fn stored_samples(stack: &Stack, ws: &str, selector: &str) -> u64 {
    let confined = match selector.strip_suffix('}') {
        Some(open) => format!("{open},ampkit_workspace=\"{ws}\"}}"),
        None => format!("{selector}{{ampkit_workspace=\"{ws}\"}}"),
    };
    let expr = format!("sum(count_over_time({confined}[1h]))");
    prometheus_query(stack, &expr)
        .await
        .first()
        .and_then(|r| r["value"][1].as_str())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `n` samples one millisecond apart, ending now.
fn samples(n: i64) -> Vec<(f64, i64)> {
    let now = now_ms();
    (0..n).map(|i| (i as f64, now - n + i)).collect()
}

// ---- ingestion ---------------------------------------------------------------------------

/// Into a workspace whose bucket holds 200 samples and refills at 100 per second: 150 samples
/// (`run="1"`) fit, 150 more at once (`run="2"`) are refused with 429 naming the rate.
async fn two_requests_past_a_bucket_of_200_at_100_per_second(amp: &OwnAmp, ws: &str, metric: &str) {
    let first = amp
        .write(
            ws,
            vec![series(&[("__name__", metric), ("run", "1")], &samples(150))],
        )
        .await;
    assert_eq!(first.0, 204, "within the burst: {}", first.1);
    let second = amp
        .write(
            ws,
            vec![series(&[("__name__", metric), ("run", "2")], &samples(150))],
        )
        .await;
    assert_eq!(second.0, 429, "{}", second.1);
    assert_eq!(
        second.1.trim(),
        "ingestion rate limit (100) exceeded while adding 150 samples and 0 metadata"
    );
}

#[tokio::test]
async fn the_ingestion_rate_refuses_a_request_past_the_bucket_with_429_and_writes_none_of_it() {
    let amp = OwnAmp::start(&["--ingestion-rate", "100", "--ingestion-burst", "200"]).await;
    let ws = amp.workspace().await;
    let metric = "quota_rate_total";
    two_requests_past_a_bucket_of_200_at_100_per_second(&amp, &ws, metric).await;
    assert_eq!(
        stored_samples(&amp.stack, &ws, &format!("{metric}{{run=\"2\"}}")).await,
        0,
        "a refused request writes nothing"
    );
    // The bucket refills at 100 per second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let third = amp
        .write(
            &ws,
            vec![series(&[("__name__", metric), ("run", "3")], &samples(150))],
        )
        .await;
    assert_eq!(third.0, 204, "after the refill: {}", third.1);
    assert_eq!(
        stored_samples(&amp.stack, &ws, &format!("{metric}{{run=~\"1|3\"}}")).await,
        300
    );
}

/// Without --ingestion-rate the rate is AMP's: 1/30 of the active series limit (3,000 series:
/// 100 samples per second), named in the refusal as AMP names it.
#[tokio::test]
async fn without_a_rate_the_workspace_takes_a_thirtieth_of_its_series_limit_per_second() {
    let amp = OwnAmp::start(&["--max-active-series", "3000", "--ingestion-burst", "200"]).await;
    let ws = amp.workspace().await;
    let metric = "quota_derived_rate_total";
    two_requests_past_a_bucket_of_200_at_100_per_second(&amp, &ws, metric).await;
}

#[tokio::test]
async fn new_series_past_the_active_series_limit_get_429_and_the_others_are_written() {
    let amp = OwnAmp::start(&["--max-active-series", "3"]).await;
    let ws = amp.workspace().await;
    let metric = "quota_series_total";
    let batch: Vec<_> = (0..5)
        .map(|i| series(&[("__name__", metric), ("i", &i.to_string())], &samples(1)))
        .collect();
    let (status, body) = amp.write(&ws, batch).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        body.trim(),
        format!(
            "user=123456789012_{ws}: per-user series limit (local limit: 0 global limit: 3 actual local limit: 3) exceeded"
        )
    );
    assert_eq!(stored_samples(&amp.stack, &ws, metric).await, 3);
    // A known series still takes samples.
    let (status, body) = amp
        .write(
            &ws,
            vec![series(&[("__name__", metric), ("i", "0")], &samples(2))],
        )
        .await;
    assert_eq!(status, 204, "{body}");
}

#[tokio::test]
async fn a_series_with_too_many_labels_gets_400_and_the_valid_ones_are_written() {
    let amp = OwnAmp::start(&["--max-labels-per-series", "3"]).await;
    let ws = amp.workspace().await;
    let (status, body) = amp
        .write(
            &ws,
            vec![
                series(
                    &[
                        ("__name__", "quota_labels"),
                        ("a", "1"),
                        ("b", "2"),
                        ("c", "3"),
                    ],
                    &samples(1),
                ),
                series(&[("__name__", "quota_labels_ok"), ("a", "1")], &samples(1)),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body.trim(),
        "series has too many labels (actual: 4, limit: 3) series: '{__name__=\"quota_labels\", a=\"1\", b=\"2\", c=\"3\"}'"
    );
    assert_eq!(stored_samples(&amp.stack, &ws, "quota_labels").await, 0);
    assert_eq!(stored_samples(&amp.stack, &ws, "quota_labels_ok").await, 1);
}

#[tokio::test]
async fn label_names_and_values_past_their_lengths_get_400() {
    let amp = OwnAmp::start(&[
        "--max-label-name-length",
        "10",
        "--max-label-value-length",
        "10",
    ])
    .await;
    let ws = amp.workspace().await;
    let cases = [
        (
            ("a_long_label", "v"),
            "label name too long: \"a_long_label\" metric \"quota_len\"",
        ),
        (
            ("short", "a long value"),
            "label value too long: \"a long value\" metric \"quota_len\"",
        ),
    ];
    for ((name, value), message) in cases {
        let (status, body) = amp
            .write(
                &ws,
                vec![series(
                    &[("__name__", "quota_len"), (name, value)],
                    &samples(1),
                )],
            )
            .await;
        assert_eq!((status, body.trim()), (400, message));
    }
    assert_eq!(stored_samples(&amp.stack, &ws, "quota_len").await, 0);
}

// ---- metadata ----------------------------------------------------------------------------

#[tokio::test]
async fn metadata_longer_than_the_metadata_length_gets_400_and_the_rest_is_written() {
    let amp = OwnAmp::start(&["--max-metadata-length", "24"]).await;
    let ws = amp.workspace().await;
    let metric = "quota_meta_len_total";
    let (status, body) = amp
        .write_with_metadata(
            &ws,
            vec![series(&[("__name__", metric)], &samples(3))],
            vec![
                counter_metadata(metric, "a help text longer than twenty-four bytes"),
                counter_metadata("quota_meta_len_ok_total", "short"),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body.trim(),
        format!(
            "metadata 'HELP' value too long: \"a help text longer than twenty-four bytes\" metric \"{metric}\""
        )
    );
    // Names of 20 and 23 bytes are within 24. The series and the valid metadata are written;
    // the invalid entry is not.
    assert_eq!(stored_samples(&amp.stack, &ws, metric).await, 3);
    assert!(amp.metadata(&ws, metric).await.is_empty());
    assert_eq!(
        amp.metadata(&ws, "quota_meta_len_ok_total").await,
        vec![json!({"type": "counter", "help": "short", "unit": ""})]
    );
}

#[tokio::test]
async fn metadata_past_the_metadata_per_metric_limit_is_dropped_and_the_samples_written() {
    let amp = OwnAmp::start(&["--max-metadata-per-metric", "1"]).await;
    let ws = amp.workspace().await;
    let metric = "quota_meta_per_metric_total";
    let (status, body) = amp
        .write_with_metadata(
            &ws,
            vec![series(&[("__name__", metric)], &samples(2))],
            vec![
                counter_metadata(metric, "first"),
                counter_metadata(metric, "second"),
            ],
        )
        .await;
    // AMP_quotas: "metric sample is recorded, but metadata over the limit is dropped".
    assert_eq!(status, 204, "{body}");
    assert_eq!(stored_samples(&amp.stack, &ws, metric).await, 2);
    assert_eq!(
        amp.metadata(&ws, metric).await,
        vec![json!({"type": "counter", "help": "first", "unit": ""})]
    );
    let expected = format!(
        "user=123456789012_{ws}: per-metric metadata limit (local limit: 0 global limit: 1 actual \
         local limit: 1) exceeded for series {{__name__=\"{metric}\"}}"
    );
    eventually("the drop to be logged", Duration::from_secs(10), || async {
        amp.log().contains(&expected).then_some(())
    })
    .await;
}

#[tokio::test]
async fn metadata_of_metrics_past_the_active_metrics_with_metadata_limit_is_dropped() {
    let amp = OwnAmp::start(&["--max-metrics-with-metadata", "2"]).await;
    let ws = amp.workspace().await;
    let names = [
        "quota_meta_a_total",
        "quota_meta_b_total",
        "quota_meta_c_total",
    ];
    let (status, body) = amp
        .write_with_metadata(
            &ws,
            Vec::new(),
            names.iter().map(|n| counter_metadata(n, "help")).collect(),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(amp.metadata(&ws, names[0]).await.len(), 1);
    assert_eq!(amp.metadata(&ws, names[1]).await.len(), 1);
    assert!(
        amp.metadata(&ws, names[2]).await.is_empty(),
        "past the limit"
    );
    let expected = format!(
        "user=123456789012_{ws}: per-user metric metadata limit (local limit: 0 global limit: 2 \
         actual local limit: 2) exceeded"
    );
    eventually("the drop to be logged", Duration::from_secs(10), || async {
        amp.log().contains(&expected).then_some(())
    })
    .await;
    // Another workspace has its own count.
    let other = amp.workspace().await;
    let (status, _) = amp
        .write_with_metadata(&other, Vec::new(), vec![counter_metadata(names[2], "help")])
        .await;
    assert_eq!(status, 204);
    assert_eq!(amp.metadata(&other, names[2]).await.len(), 1);
}

// ---- queries -----------------------------------------------------------------------------

/// `n` samples one second apart, ending now (within the 5-minute lookback of an instant query).
fn samples_per_second(n: i64) -> Vec<(f64, i64)> {
    let now = now_ms();
    (0..n).map(|i| (i as f64, now - (n - i) * 1000)).collect()
}

#[tokio::test]
async fn a_query_past_the_samples_per_query_quota_gets_422() {
    let amp = OwnAmp::start(&["--max-query-samples", "100"]).await;
    let ws = amp.workspace().await;
    let metric = "quota_query_samples";
    let (status, body) = amp
        .write(
            &ws,
            vec![
                series(&[("__name__", metric), ("run", "big")], &samples(200)),
                series(&[("__name__", metric), ("run", "small")], &samples(50)),
            ],
        )
        .await;
    assert_eq!(status, 204, "{body}");
    // A range vector holds every sample it selects at once: 200 past the quota of 100.
    let big = format!("{metric}{{run=\"big\"}}[1h]");
    let (status, body) = amp.read(&ws, "query", &[("query", &big)]).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errorType"], "execution");
    assert_eq!(
        body["error"],
        "query processing would load too many samples into memory in query execution"
    );
    // 50 are within it: the answer has all of them, and no stats it did not ask for.
    let small = format!("{metric}{{run=\"small\"}}[1h]");
    let (status, body) = amp.read(&ws, "query", &[("query", &small)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["result"][0]["values"].as_array().map(Vec::len),
        Some(50)
    );
    assert_eq!(body["data"]["stats"], Value::Null, "{body}");
}

/// A workspace with three series of 40 samples: a query over all of them processes 120.
async fn workspace_with_120_samples(amp: &OwnAmp, metric: &str) -> String {
    let ws = amp.workspace().await;
    let batch = (0..3)
        .map(|i| {
            series(
                &[("__name__", metric), ("i", &i.to_string())],
                &samples_per_second(40),
            )
        })
        .collect();
    let (status, body) = amp.write(&ws, batch).await;
    assert_eq!(status, 204, "{body}");
    ws
}

#[tokio::test]
async fn the_qsp_warning_threshold_warns_in_a_successful_answer() {
    let amp = OwnAmp::start(&[]).await;
    let metric = "quota_qsp_warning";
    let ws = workspace_with_120_samples(&amp, metric).await;
    let query = format!("sum(count_over_time({metric}[1h]))");
    // The count the thresholds are held to: Prometheus's stats, asked for.
    let (status, body) = amp
        .read(&ws, "query", &[("query", &query), ("stats", "all")])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["result"][0]["value"][1], "120");
    assert_eq!(
        body["data"]["stats"]["samples"]["totalQueryableSamples"],
        120
    );
    assert_eq!(body.get("warnings"), None, "{body}");

    let (status, body) = amp
        .read(
            &ws,
            "query",
            &[
                ("query", &query),
                ("max_samples_processed_warning_threshold", "100"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["result"][0]["value"][1], "120");
    assert_eq!(
        body["warnings"],
        json!([
            "the query processed 120 samples, more than the 100 of max_samples_processed_warning_threshold"
        ])
    );
    assert_eq!(
        body["data"]["stats"],
        Value::Null,
        "stats only when asked: {body}"
    );
    // At the threshold or under it: no warning.
    let (status, body) = amp
        .read(
            &ws,
            "query",
            &[
                ("query", &query),
                ("max_samples_processed_warning_threshold", "120"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.get("warnings"), None, "{body}");
}

#[tokio::test]
async fn the_qsp_error_threshold_refuses_a_query_past_it_with_422() {
    let amp = OwnAmp::start(&[]).await;
    let metric = "quota_qsp_error";
    let ws = workspace_with_120_samples(&amp, metric).await;
    let query = format!("sum(count_over_time({metric}[1h]))");
    let (status, body) = amp
        .read(
            &ws,
            "query",
            &[
                ("query", &query),
                ("max_samples_processed_error_threshold", "119"),
            ],
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errorType"], "execution");
    assert_eq!(
        body["error"],
        "the query processed 120 samples, more than the 119 of max_samples_processed_error_threshold: it was refused"
    );
    let (status, body) = amp
        .read(
            &ws,
            "query",
            &[
                ("query", &query),
                ("max_samples_processed_error_threshold", "120"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["result"][0]["value"][1], "120");
    // A threshold that is no number is the caller's mistake.
    let (status, body) = amp
        .read(
            &ws,
            "query",
            &[
                ("query", &query),
                ("max_samples_processed_error_threshold", "many"),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errorType"], "bad_data");
}

#[tokio::test]
async fn a_range_query_longer_than_32_days_is_refused_with_400() {
    // AMP's default, on the main stack's amp-local.
    let stack = stack();
    let client = amp_sdk(&stack.amp_url).await;
    let ws = client
        .create_workspace()
        .alias(unique_name("quotas-range"))
        .send()
        .await
        .expect("CreateWorkspace")
        .workspace_id()
        .to_owned();
    client
        .wait_until_workspace_active()
        .workspace_id(&ws)
        .wait(Duration::from_secs(30))
        .await
        .expect("ACTIVE");
    let end = now_ms() / 1000;
    let range = |days: i64| {
        let start = (end - days * 86_400).to_string();
        (start, end.to_string())
    };
    let (start, end_s) = range(33);
    let params = [
        ("query", "vector(1)"),
        ("start", start.as_str()),
        ("end", end_s.as_str()),
        ("step", "1d"),
    ];
    let (status, body) = signed_read(&stack, &stack.amp_url, &ws, "query_range", &params).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errorType"], "bad_data");
    assert_eq!(
        body["error"],
        "the query time range exceeds the limit (query length: 792h0m0s, limit: 768h0m0s)"
    );
    let (start, end_s) = range(32);
    let params = [
        ("query", "vector(1)"),
        ("start", start.as_str()),
        ("end", end_s.as_str()),
        ("step", "1d"),
    ];
    let (status, body) = signed_read(&stack, &stack.amp_url, &ws, "query_range", &params).await;
    assert_eq!(status, 200, "32 days exactly is within the quota: {body}");
    let _ = client.delete_workspace().workspace_id(&ws).send().await;
}

#[tokio::test]
async fn a_query_that_runs_out_of_time_answers_422() {
    let amp = OwnAmp::start(&["--query-timeout", "50ms"]).await;
    let ws = amp.workspace().await;
    // Millions of subquery steps: seconds of work, well past 50 ms.
    let slow = "count(count_over_time(vector(1)[20d:1s]))";
    let (status, body) = amp.read(&ws, "query", &[("query", slow)]).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errorType"], "timeout", "{body}");
    // A caller's longer timeout is capped by the flag.
    let (status, body) = amp
        .read(&ws, "query", &[("query", slow), ("timeout", "5m")])
        .await;
    assert_eq!(status, 422, "{body}");
    // A quick query is unaffected.
    let (status, body) = amp.read(&ws, "query", &[("query", "vector(1)")]).await;
    assert_eq!(status, 200, "{body}");
}

// ---- rules and alerting ------------------------------------------------------------------

fn rules_with(groups: usize, rules_per_group: usize) -> String {
    let mut out = String::from("groups:\n");
    for g in 0..groups {
        out.push_str(&format!("- name: g{g}\n  rules:\n"));
        for r in 0..rules_per_group {
            out.push_str(&format!("  - record: quota:r{r}\n    expr: vector({r})\n"));
        }
    }
    out
}

/// The status and `x-amzn-errortype` of a refused SDK call, and its message.
fn refusal<E: aws_sdk_amp::error::ProvideErrorMetadata + std::fmt::Debug>(
    result: Result<
        impl std::fmt::Debug,
        aws_sdk_amp::error::SdkError<E, aws_sdk_amp::config::http::HttpResponse>,
    >,
) -> (u16, String, String) {
    let e = result.expect_err("refused");
    let status = e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
    let service = e.as_service_error().expect("a service error");
    (
        status,
        service.code().unwrap_or_default().to_owned(),
        service.message().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn rule_quotas_refuse_namespaces_groups_rules_and_file_size() {
    let amp = OwnAmp::start(&[
        "--max-rule-groups-namespaces",
        "2",
        "--max-rule-groups",
        "3",
        "--max-rules-per-group",
        "2",
        "--max-rules-file-size",
        "400",
    ])
    .await;
    let ws = amp.workspace().await;
    let client = amp.sdk().await;
    let create = |name: &str, data: String| {
        client
            .create_rule_groups_namespace()
            .workspace_id(&ws)
            .name(name)
            .data(Blob::new(data))
            .send()
    };
    create("one", rules_with(1, 2))
        .await
        .expect("within every quota");
    // Rules per group.
    let (status, code, message) = refusal(create("two", rules_with(1, 3)).await);
    assert_eq!((status, code.as_str()), (400, "ValidationException"));
    assert!(
        message.contains("group g0 has 3 rules, more than the 2 allowed"),
        "{message}"
    );
    // File size.
    let big = format!("{}# {}\n", rules_with(1, 1), "x".repeat(400));
    let (status, code, message) = refusal(create("two", big).await);
    assert_eq!((status, code.as_str()), (400, "ValidationException"));
    assert!(message.contains("more than the 400 allowed"), "{message}");
    // Rule groups per workspace: 1 + 3 > 3.
    let (status, code, _) = refusal(create("two", rules_with(3, 1)).await);
    assert_eq!(
        (status, code.as_str()),
        (402, "ServiceQuotaExceededException")
    );
    // Namespaces per workspace: a third is refused.
    create("two", rules_with(1, 1))
        .await
        .expect("the second namespace");
    let (status, code, message) = refusal(create("three", rules_with(1, 1)).await);
    assert_eq!(
        (status, code.as_str()),
        (402, "ServiceQuotaExceededException"),
        "{message}"
    );
    let listed = client
        .list_rule_groups_namespaces()
        .workspace_id(&ws)
        .send()
        .await
        .expect("ListRuleGroupsNamespaces");
    assert_eq!(
        listed.rule_groups_namespaces().len(),
        2,
        "nothing refused was kept"
    );
}

fn definition(routes: usize, templates: usize, repeat: &str) -> String {
    let mut config = format!("  route:\n    receiver: sns\n    repeat_interval: {repeat}\n");
    if routes > 0 {
        config.push_str("    routes:\n");
    }
    for i in 0..routes {
        config.push_str(&format!(
            "    - receiver: sns\n      matchers: ['r=\"{i}\"']\n"
        ));
    }
    config.push_str(
        "  receivers:\n  - name: sns\n    sns_configs:\n    - topic_arn: arn:aws:sns:eu-west-1:123456789012:t\n      sigv4:\n        region: eu-west-1\n",
    );
    let mut out = format!("alertmanager_config: |\n{config}");
    if templates > 0 {
        out.push_str("template_files:\n");
        for t in 0..templates {
            out.push_str(&format!(
                "  t{t}.tmpl: '{{{{ define \"t{t}\" }}}}x{{{{ end }}}}'\n"
            ));
        }
    }
    out
}

#[tokio::test]
async fn definition_quotas_refuse_templates_routing_nodes_and_long_repeat_intervals() {
    let amp = OwnAmp::start(&["--max-templates", "1", "--max-routing-nodes", "3"]).await;
    let ws = amp.workspace().await;
    let client = amp.sdk().await;
    let create = |data: String| {
        client
            .create_alert_manager_definition()
            .workspace_id(&ws)
            .data(Blob::new(data))
            .send()
    };
    let cases = [
        (
            definition(1, 2, "1h"),
            "2 templates, more than the 1 allowed",
        ),
        (
            definition(3, 0, "1h"),
            "the routing tree has 4 nodes, more than the 3 allowed",
        ),
        // AMP's cap, the flag's default: five days.
        (
            definition(1, 0, "6d"),
            "repeat_interval 6d is longer than the 5d allowed",
        ),
    ];
    for (data, expected) in cases {
        let (status, code, message) = refusal(create(data).await);
        assert_eq!((status, code.as_str()), (400, "ValidationException"));
        assert!(message.contains(expected), "{message}");
    }
    create(definition(2, 1, "5d"))
        .await
        .expect("within every quota");
}

// ---- the control plane: 409 while a change is applied -----------------------------------

#[tokio::test]
async fn changes_while_an_earlier_one_applies_get_409_and_libs_changes_wait_them_out() {
    // The main stack: 2 s CREATING/UPDATING.
    let stack = stack();
    let client = amp_sdk(&stack.amp_url).await;
    let conflict = |r: (u16, String, String)| {
        assert_eq!((r.0, r.1.as_str()), (409, "ConflictException"), "{}", r.2);
    };
    let ws = client
        .create_workspace()
        .alias(unique_name("quotas-409"))
        .send()
        .await
        .expect("CreateWorkspace")
        .workspace_id()
        .to_owned();
    conflict(refusal(
        client.delete_workspace().workspace_id(&ws).send().await,
    ));
    client
        .wait_until_workspace_active()
        .workspace_id(&ws)
        .wait(Duration::from_secs(30))
        .await
        .expect("ACTIVE");

    let yaml = rules_with(1, 1);
    client
        .create_rule_groups_namespace()
        .workspace_id(&ws)
        .name("ns")
        .data(Blob::new(yaml.clone()))
        .send()
        .await
        .expect("CreateRuleGroupsNamespace");
    let put = client
        .put_rule_groups_namespace()
        .workspace_id(&ws)
        .name("ns")
        .data(Blob::new(rules_with(1, 2)))
        .send()
        .await;
    conflict(refusal(put));
    conflict(refusal(
        client
            .delete_rule_groups_namespace()
            .workspace_id(&ws)
            .name("ns")
            .send()
            .await,
    ));

    let def = definition(0, 0, "1h");
    client
        .create_alert_manager_definition()
        .workspace_id(&ws)
        .data(Blob::new(def.clone()))
        .send()
        .await
        .expect("CreateAlertManagerDefinition");
    conflict(refusal(
        client
            .put_alert_manager_definition()
            .workspace_id(&ws)
            .data(Blob::new(definition(1, 0, "1h")))
            .send()
            .await,
    ));
    conflict(refusal(
        client
            .delete_alert_manager_definition()
            .workspace_id(&ws)
            .send()
            .await,
    ));

    // lib (what sns-alert and teardown call) waits and tries again: each call below meets
    // an object still CREATING or UPDATING, and succeeds.
    let config = stack.aws_config().await;
    let config = config.into_builder().endpoint_url(&stack.amp_url).build();
    let rules = Rules::new(&config);
    let progress = Progress::new("amp-quotas-test", false);
    let (outcome, _) = rules
        .ensure_namespace(&ws, "ns", &rules_with(1, 2))
        .await
        .expect("the put waits for CREATING to end");
    assert_eq!(outcome, Outcome::Updated);
    let removal = rules
        .delete_namespace(&ws, "ns", Duration::from_secs(60), &progress)
        .await
        .expect("the delete waits for UPDATING to end");
    assert_eq!(removal, Removal::Deleted);
    let outcome = rules
        .ensure_alert_manager_definition(&ws, |_| Ok(definition(1, 0, "2h")))
        .await
        .expect("the put waits for CREATING to end");
    assert_eq!(outcome, Outcome::Updated);
    let removal = rules
        .delete_alert_manager_definition(&ws, Duration::from_secs(60), &progress)
        .await
        .expect("the delete waits for UPDATING to end");
    assert_eq!(removal, Removal::Deleted);

    // amp-workspace delete on a workspace still CREATING: waits, then deletes.
    let fresh = client
        .create_workspace()
        .alias(unique_name("quotas-409-delete"))
        .send()
        .await
        .expect("CreateWorkspace")
        .workspace_id()
        .to_owned();
    let run = tool("amp-workspace")
        .on(&stack)
        .args(["delete", "--workspace-id", &fresh])
        .run();
    run.expect_code(0);
    let status = client
        .describe_workspace()
        .workspace_id(&fresh)
        .send()
        .await
        .ok()
        .and_then(|d| d.workspace)
        .and_then(|w| w.status().map(|s| s.status_code().as_str().to_owned()));
    assert!(
        matches!(status.as_deref(), None | Some("DELETING")),
        "{status:?}"
    );
    let _ = client.delete_workspace().workspace_id(&ws).send().await;
}

// ---- the recipe's collector under a low ingestion limit -----------------------------------

/// A scrape target serving `series` counters, counting the scrapes it answered with them
/// until it is told to stop (then it answers 503, and Prometheus scrapes nothing of it).
struct Source {
    address: String,
    served: Arc<AtomicU64>,
    serving: Arc<AtomicBool>,
    _server: tokio::task::JoinHandle<()>,
}

async fn source(metric: &'static str, series: usize) -> Source {
    let served = Arc::new(AtomicU64::new(0));
    let serving = Arc::new(AtomicBool::new(true));
    let (s, on) = (Arc::clone(&served), Arc::clone(&serving));
    let app = axum::Router::new().fallback(move || {
        let (s, on) = (Arc::clone(&s), Arc::clone(&on));
        async move {
            if !on.load(Ordering::SeqCst) {
                return (axum::http::StatusCode::SERVICE_UNAVAILABLE, String::new());
            }
            let n = s.fetch_add(1, Ordering::SeqCst) + 1;
            let mut body = format!("# TYPE {metric} counter\n");
            for i in 0..series {
                body.push_str(&format!("{metric}{{i=\"{i}\"}} {n}\n"));
            }
            (axum::http::StatusCode::OK, body)
        }
    });
    let (url, server) = ampkit_e2e::serve_on_loopback(app).await;
    Source {
        address: url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned(),
        served,
        serving,
        _server: server,
    }
}

/// render-agent-config's Prometheus-agent file for `target`, writing into `ws` of `amp`.
fn rendered_agent_config(amp: &OwnAmp, ws: &str, target: &str, dir: &std::path::Path) -> String {
    let doc = json!({"workspace": {
        "workspaceId": ws,
        "region": amp.stack.region,
        "remoteWriteUrl": format!("{}/workspaces/{ws}/api/v1/remote_write", amp.url),
    }});
    let run = tool("render-agent-config")
        .args([
            "--flavor",
            "prometheus-agent",
            "--scrape-interval",
            "1s",
            "--batch-send-deadline",
            "1s",
            "--target",
            target,
            "--out",
            &dir.display().to_string(),
        ])
        .stdin_doc(&doc)
        .run();
    run.expect_code(0);
    std::fs::read_to_string(dir.join("prometheus-agent.yml")).expect("the rendered file")
}

fn start_agent(amp: &OwnAmp, config: &str, dir: &std::path::Path) -> Process {
    let file = dir.join("agent.yml");
    std::fs::write(&file, config).expect("written");
    let log = std::fs::File::create(dir.join("agent.log")).expect("log");
    Process(
        Command::new(local_bin("prometheus"))
            .arg("--enable-feature=agent")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.agent.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
            .env("AWS_ACCESS_KEY_ID", &amp.stack.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &amp.stack.secret_access_key)
            .env("AWS_REGION", &amp.stack.region)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the Prometheus agent starts"),
    )
}

#[tokio::test]
async fn the_recipes_collector_under_a_low_ingestion_limit_loses_no_sample() {
    // 1,000 series scraped every second into a workspace that takes 300 samples per second
    // after a burst of 2,100 (more than a full batch of 2,000, so that every batch can pass
    // once the bucket has refilled): fifteen seconds send some 10,000 samples where the
    // bucket lets about 6,600 through.
    let amp = OwnAmp::start(&["--ingestion-rate", "300", "--ingestion-burst", "2100"]).await;
    const SERIES: usize = 1000;
    let (rendered_ws, stripped_ws) = (amp.workspace().await, amp.workspace().await);
    let rendered_src = source("quota_e2e_rendered_total", SERIES).await;
    let stripped_src = source("quota_e2e_stripped_total", SERIES).await;
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    let rendered = rendered_agent_config(&amp, &rendered_ws, &rendered_src.address, dirs.0.path());
    assert!(rendered.contains("retry_on_http_429: true"), "{rendered}");
    // The same configuration without the option: Prometheus's default (false).
    let stripped = rendered_agent_config(&amp, &stripped_ws, &stripped_src.address, dirs.1.path())
        .replace("retry_on_http_429: true", "retry_on_http_429: false");
    let agents = (
        start_agent(&amp, &rendered, dirs.0.path()),
        start_agent(&amp, &stripped, dirs.1.path()),
    );

    // Fifteen seconds of scrapes, then the sources stop answering.
    tokio::time::sleep(Duration::from_secs(15)).await;
    rendered_src.serving.store(false, Ordering::SeqCst);
    stripped_src.serving.store(false, Ordering::SeqCst);
    let sent_rendered = rendered_src.served.load(Ordering::SeqCst) * SERIES as u64;
    let sent_stripped = stripped_src.served.load(Ordering::SeqCst) * SERIES as u64;
    // More than the bucket lets through in the time, so that the limit bites.
    assert!(
        sent_rendered > 8_000,
        "the source was scraped: {sent_rendered}"
    );

    // With retry_on_http_429 (rendered): the backlog drains at the limit and all of it lands.
    let stored = eventually(
        "every sample of the rendered agent to land",
        Duration::from_secs(180),
        || async {
            let n = stored_samples(&amp.stack, &rendered_ws, "quota_e2e_rendered_total").await;
            (n == sent_rendered).then_some(n)
        },
    )
    .await;
    assert_eq!(stored, sent_rendered);

    // Without it: the 429s were dropped as non-recoverable, and samples are missing for good.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stored_stripped =
        stored_samples(&amp.stack, &stripped_ws, "quota_e2e_stripped_total").await;
    assert!(
        stored_stripped < sent_stripped,
        "without retry_on_http_429 samples are lost: {stored_stripped} of {sent_stripped} stored"
    );
    eprintln!(
        "429 e2e: rendered config {stored} of {sent_rendered} samples stored; \
         without retry_on_http_429 {stored_stripped} of {sent_stripped}"
    );
    drop(agents);
}
