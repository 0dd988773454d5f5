//! envoy-traffic against the real local Envoy mesh.
//!
//! Tests share one stack with every other test binary, so the one that compares Envoy's
//! counters with ours must not see anyone else's requests: it starts its own Envoy, built from
//! the stack's own dj configuration (same routes, same fault filter) on free ports, whose
//! upstream clusters still reach the stack's jazz and metal. Only its admin is cross-checked.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ampkit_e2e::{Stack, repo_root, stack, tool};
use base64::Engine as _;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A plain GET with std only (the tests must not depend on the code under test).
fn get(url_host_port: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(url_host_port).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// An Envoy of this test's own: the stack's dj config on fresh ports.
struct PrivateEnvoy {
    child: Child,
    url: String,
    admin: String,
    _dir: tempfile::TempDir,
}

impl PrivateEnvoy {
    fn start(stack: &Stack) -> PrivateEnvoy {
        let home = std::env::var("AMPKIT_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo_root().join(".local"));
        let envoy = home.join("bin").join("envoy");
        assert!(
            envoy.exists(),
            "{} is missing: run scripts/setup",
            envoy.display()
        );
        let config = std::fs::read_to_string(stack.stack_dir.join("envoy-dj.yaml"))
            .expect("the stack's envoy-dj.yaml");
        let (dj, dj_admin) = (
            port_of(&stack.envoy_url),
            port_of(&stack.envoy_admin_urls[0]),
        );
        let (port, admin_port) = (free_port(), free_port());
        let config = config
            .replace(
                &format!("port_value: {dj_admin}}}"),
                &format!("port_value: {admin_port}}}"),
            )
            .replace(
                &format!("port_value: {dj}}}"),
                &format!("port_value: {port}}}"),
            );
        assert!(config.contains(&port.to_string()) && config.contains(&admin_port.to_string()));
        let dir = tempfile::tempdir().expect("a temp dir");
        let file = dir.path().join("envoy-xcheck.yaml");
        std::fs::write(&file, config).expect("config written");
        let child = Command::new(envoy)
            .arg("-c")
            .arg(&file)
            .args([
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "--log-level",
                "warn",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("envoy starts");
        let me = PrivateEnvoy {
            child,
            url: format!("http://127.0.0.1:{port}"),
            admin: format!("http://127.0.0.1:{admin_port}"),
            _dir: dir,
        };
        let started = Instant::now();
        while !get(&format!("127.0.0.1:{admin_port}"), "/ready").is_some_and(|b| b.contains("LIVE"))
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "private Envoy never became ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        me
    }
}

impl Drop for PrivateEnvoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP/1.1 server that answers at once, except that request number `stall_at` freezes
/// every answer for `stall` (a GC pause, a full queue): the shape wrk2 uses to show
/// coordinated omission.
struct StallServer {
    addr: String,
}

impl StallServer {
    fn start(stall_at: u64, stall: Duration) -> StallServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let count = Arc::new(AtomicU64::new(0));
        let frozen_until: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let (count, frozen_until) = (count.clone(), frozen_until.clone());
                std::thread::spawn(move || {
                    let _ = conn.set_nodelay(true);
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match conn.read(&mut chunk) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        buf.drain(..end);
                        if count.fetch_add(1, Ordering::SeqCst) + 1 == stall_at {
                            *frozen_until.lock().unwrap() = Some(Instant::now() + stall);
                        }
                        let until = *frozen_until.lock().unwrap();
                        if let Some(until) = until {
                            let now = Instant::now();
                            if until > now {
                                std::thread::sleep(until - now);
                            }
                        }
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if conn.write_all(answer).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        StallServer { addr }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn traffic(run: &ampkit_e2e::Run) -> Value {
    run.doc()["traffic"].clone()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn fixed_rate_sends_exactly_n_and_envoy_counts_the_same() {
    let stack = stack();
    let envoy = PrivateEnvoy::start(&stack);
    let run = tool("envoy-traffic")
        .args(["--url", &envoy.url, "--paths", "/jazz,/metal,/unavailable"])
        .args([
            "--rate",
            "100",
            "--requests",
            "500",
            "--envoy-admin",
            &envoy.admin,
        ])
        .run();
    run.expect_code(0);
    let t = traffic(&run);
    assert_eq!(t["sent"], 500, "{t:#}");
    assert_eq!(t["completed"], 500, "{t:#}");
    assert_eq!(t["errors"]["total"], 0, "{t:#}");
    let achieved = f(&t["rate"]["achieved"]);
    assert!(
        (achieved - 100.0).abs() <= 2.0,
        "achieved {achieved} req/s for 100 asked"
    );

    let by_path = &t["byPath"];
    let (jazz, metal) = (
        &by_path["/jazz"]["completed"],
        &by_path["/metal"]["completed"],
    );
    let check = &t["envoy"];
    assert_eq!(check["entry"], "ingress_dj", "{check:#}");
    assert_eq!(check["match"], true, "{check:#}");
    let listener = check["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["prefix"] == "ingress_dj")
        .expect("a row for the entry listener");
    // Envoy's own counters against the numbers we sent and got back.
    assert_eq!(listener["envoy"]["total"], t["completed"], "{listener:#}");
    assert_eq!(listener["envoy"]["2xx"], t["status"]["200"], "{listener:#}");
    assert_eq!(listener["envoy"]["5xx"], t["status"]["503"], "{listener:#}");
    for (cluster, ours) in [("egress_jazz", jazz), ("egress_metal", metal)] {
        let row = check["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["cluster"] == cluster)
            .unwrap_or_else(|| panic!("no row for {cluster}: {check:#}"));
        assert_eq!(&row["envoy"]["total"], ours, "{row:#}");
        assert_eq!(&row["envoy"]["2xx"], ours, "{row:#}");
        assert_eq!(row["match"], true, "{row:#}");
    }
}

#[test]
fn fault_delay_header_shows_in_the_median() {
    let stack = stack();
    let run = tool("envoy-traffic")
        .env_remove("AMPKIT_ENVOY_ADMIN_URLS")
        .args(["--url", &stack.envoy_url, "--paths", "/jazz"])
        .args(["--header", "x-envoy-fault-delay-request: 20"])
        .args(["--rate", "50", "--requests", "100"])
        .run();
    run.expect_code(0);
    let t = traffic(&run);
    assert_eq!(t["completed"], 100, "{t:#}");
    // Envoy arms its timers from each event loop's cached clock, so on a loaded machine (the
    // suite runs a dozen tests at once on two cores) a 20 ms delay can end a few ms early, and
    // its upstream time is whole milliseconds: what is checked is that the delay dominates
    // (an undelayed request takes well under 5 ms, see the test below), not its exact length.
    let p50 = f(&t["latencyMs"]["p50"]);
    assert!(
        (15.0..=30.0).contains(&p50),
        "p50 {p50} ms with a 20 ms fault delay: {t:#}"
    );
    assert_eq!(
        t["settings"]["headers"],
        json!(["x-envoy-fault-delay-request: 20"])
    );
    // The delay is the backend's: it shows in the upstream time dj's router reports, not in
    // what the proxies cost.
    let jazz = &t["byPath"]["/jazz"];
    assert_eq!(jazz["upstreamMs"]["count"], 100, "{t:#}");
    let upstream = f(&jazz["upstreamMs"]["p50"]);
    let share = f(&jazz["proxyShareMs"]["p50"]);
    assert!(
        (15.0..=30.0).contains(&upstream),
        "upstream p50 {upstream} ms: {t:#}"
    );
    assert!(
        share < 5.0,
        "proxy share p50 {share} ms with a 20 ms backend delay: {t:#}"
    );
}

#[test]
fn without_a_delay_the_upstream_time_is_small_and_runs_merge_exactly() {
    let stack = stack();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, delay) in [("fast", "0"), ("slow", "20")] {
        let run = tool("envoy-traffic")
            .env_remove("AMPKIT_ENVOY_ADMIN_URLS")
            .args(["--url", &stack.envoy_url, "--paths", "/jazz"])
            .args(["--header", &format!("x-envoy-fault-delay-request: {delay}")])
            .args(["--concurrency", "4", "--requests", "200"])
            .run();
        run.expect_code(0);
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, &run.stdout).unwrap();
        files.push(path);
    }
    let fast: Value = serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    let slow: Value = serde_json::from_str(&std::fs::read_to_string(&files[1]).unwrap()).unwrap();
    let fast_upstream = f(&fast["traffic"]["byPath"]["/jazz"]["upstreamMs"]["p50"]);
    assert!(
        fast_upstream < 5.0,
        "upstream p50 without a delay: {fast_upstream} ms"
    );

    // Merged: counts summed, percentiles those of every request of both runs.
    let run = tool("envoy-traffic")
        .args(["merge"])
        .args(&files)
        .stdin_doc(&json!({"keep": 1}))
        .run();
    run.expect_code(0);
    let doc = run.doc();
    assert_eq!(doc["keep"], 1, "the document passes through");
    let merged = &doc["traffic"];
    assert_eq!(merged["completed"], 400, "{merged:#}");
    assert_eq!(merged["mergedFrom"], 2);
    assert_eq!(merged["byPath"]["/jazz"]["upstreamMs"]["count"], 400);
    let decode = |report: &Value| -> Histogram<u64> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(report["histograms"]["latencyUs"].as_str().unwrap())
            .unwrap();
        hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .unwrap()
    };
    let mut all: Histogram<u64> = decode(&fast["traffic"]);
    all.add(decode(&slow["traffic"])).unwrap();
    let ms = |us: u64| (us as f64).round() / 1000.0;
    for (key, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
        assert_eq!(
            f(&merged["latencyMs"][key]),
            ms(all.value_at_quantile(q)),
            "{key}"
        );
    }
    assert_eq!(f(&merged["latencyMs"]["max"]), ms(all.max()));
    // Half the requests were slow: the merged median sits between the runs' medians, and
    // is not their average.
    let p50 = f(&merged["latencyMs"]["p50"]);
    assert!(
        p50 >= f(&fast["traffic"]["latencyMs"]["p50"])
            && p50 <= f(&slow["traffic"]["latencyMs"]["p50"])
    );

    // Not a report: exit 2 naming the file.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"traffic\": {\"sent\": 1}}").unwrap();
    let run = tool("envoy-traffic")
        .args(["merge"])
        .args([&files[0], &bad])
        .run();
    run.expect_code(2);
    let message = run.error()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("bad.json"), "{message}");
}

#[test]
fn status_codes_are_counted_per_code() {
    let stack = stack();
    let run = tool("envoy-traffic")
        .env_remove("AMPKIT_ENVOY_ADMIN_URLS")
        .args(["--url", &stack.envoy_url, "--paths", "/unavailable,/"])
        .args(["--concurrency", "2", "--requests", "200"])
        .run();
    run.expect_code(0);
    let t = traffic(&run);
    assert_eq!(t["status"], json!({"200": 100, "503": 100}), "{t:#}");
    assert_eq!(t["byPath"]["/unavailable"]["classes"], json!({"5xx": 100}));
    assert_eq!(t["settings"]["model"], "closed");
    assert_eq!(t["latencyMs"]["measuredFrom"], "actual");
}

#[test]
fn a_stall_shows_in_open_model_percentiles_and_hides_in_closed() {
    let stall = Duration::from_millis(1000);
    // Open model: 500 req/s for 3 s; the stall freezes the server for 1 s early on.
    let open_target = StallServer::start(200, stall);
    let open = tool("envoy-traffic")
        .env_remove("AMPKIT_ENVOY_ADMIN_URLS")
        .args([
            "--url",
            &open_target.url(),
            "--rate",
            "500",
            "--requests",
            "1500",
        ])
        .run();
    open.expect_code(0);
    // Closed model, one connection: the stall holds one request, and stops the sender.
    let closed_target = StallServer::start(200, stall);
    let closed = tool("envoy-traffic")
        .env_remove("AMPKIT_ENVOY_ADMIN_URLS")
        .args([
            "--url",
            &closed_target.url(),
            "--concurrency",
            "1",
            "--requests",
            "1500",
        ])
        .run();
    closed.expect_code(0);
    let (open, closed) = (traffic(&open), traffic(&closed));
    assert_eq!(open["completed"], 1500, "{open:#}");
    assert_eq!(closed["completed"], 1500, "{closed:#}");
    // Both saw the stall...
    assert!(f(&open["latencyMs"]["max"]) >= 900.0, "{open:#}");
    assert!(f(&closed["latencyMs"]["max"]) >= 900.0, "{closed:#}");
    // ...but only the corrected (open model) percentiles show the ~500 requests it delayed.
    let open_p90 = f(&open["latencyMs"]["p90"]);
    let closed_p90 = f(&closed["latencyMs"]["p90"]);
    assert!(
        open_p90 >= 500.0,
        "open-model p90 {open_p90} ms should show the stall: {open:#}"
    );
    assert!(
        closed_p90 < 250.0,
        "closed-model p90 {closed_p90} ms hides the stall: {closed:#}"
    );
    assert_eq!(open["latencyMs"]["measuredFrom"], "intended");
}

#[test]
fn an_unreachable_target_is_counted_and_exits_1_with_the_report() {
    let port = free_port(); // bound and released: nothing listens there
    let run = tool("envoy-traffic")
        .env_remove("AMPKIT_ENVOY_ADMIN_URLS")
        .args([
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--rate",
            "50",
            "--requests",
            "5",
        ])
        .run();
    run.expect_code(1);
    assert_eq!(run.error()["error"]["kind"], "remote");
    let t = traffic(&run);
    assert_eq!(t["sent"], 5, "{t:#}");
    assert_eq!(t["completed"], 0);
    assert_eq!(t["errors"]["connect"], 5);
    assert_eq!(t["latencyMs"], Value::Null);
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    for (args, flag) in [
        (vec!["--rate", "0"], "--rate"),
        (vec!["--rate", "fast"], "--rate"),
        (vec!["--duration", "5x"], "--duration"),
        (vec!["--header", "no-colon"], "--header"),
        (vec!["--paths", "jazz"], "--paths"),
        (vec!["--url", "ftp://x"], "--url"),
        (vec!["--kube-service", "dj:80"], "--kube-service"),
    ] {
        let run = tool("envoy-traffic")
            .args(["--url", "http://127.0.0.1:9"])
            .args(&args)
            .stdin_doc(&json!({"keep": 1}))
            .run();
        run.expect_code(2);
        let err = run.error();
        assert_eq!(err["error"]["kind"], "usage", "{args:?}: {err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(flag),
            "{args:?}: message does not name {flag}: {message}"
        );
        // Nothing was done, nothing is lost: the document passes through.
        assert_eq!(run.doc(), json!({"keep": 1}), "{args:?}");
    }
}

#[test]
fn the_target_comes_from_the_document_and_other_sections_stay() {
    let stack = stack();
    let input = json!({"mesh": {"url": stack.envoy_url}, "workspace": {"workspaceId": "ws-1"}});
    let run = tool("envoy-traffic")
        .env_remove("AMPKIT_ENVOY_URL")
        .env_remove("AMPKIT_ENVOY_ADMIN_URLS")
        .args(["--requests", "20", "--concurrency", "2"])
        .stdin_doc(&input)
        .run();
    run.expect_code(0);
    let doc = run.doc();
    assert_eq!(doc["traffic"]["url"], stack.envoy_url);
    assert_eq!(doc["traffic"]["completed"], 20);
    assert_eq!(doc["workspace"], input["workspace"]);
    assert_eq!(doc["mesh"], input["mesh"]);
}

#[test]
fn sigterm_stops_the_run_and_still_reports() {
    let stack = stack();
    let mut child = Command::new(ampkit_e2e::bin("envoy-traffic"))
        .env_remove("AMPKIT_ENVOY_ADMIN_URLS")
        .args([
            "--url",
            &stack.envoy_url,
            "--rate",
            "50",
            "--duration",
            "60s",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    std::thread::sleep(Duration::from_millis(1500));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "stdout: {out}");
    let doc: Value = serde_json::from_str(out.trim()).expect("the document");
    let t = &doc["traffic"];
    assert_eq!(t["stoppedBy"], "signal", "{t:#}");
    assert!(t["completed"].as_u64().unwrap() > 0, "{t:#}");
    assert!(t["sent"].as_u64().unwrap() < 3000, "{t:#}");
}

#[test]
fn http2_and_warmup_requests_are_in_envoys_counts_but_not_our_statistics() {
    let stack = stack();
    let envoy = PrivateEnvoy::start(&stack);
    let run = tool("envoy-traffic")
        .args(["--url", &envoy.url, "--paths", "/jazz,/"])
        .args([
            "--http2",
            "--warmup",
            "500ms",
            "--requests",
            "100",
            "--concurrency",
            "2",
        ])
        .args(["--envoy-admin", &envoy.admin])
        .run();
    run.expect_code(0);
    let t = traffic(&run);
    assert_eq!(t["completed"], 100, "{t:#}");
    assert_eq!(t["status"], json!({"200": 100}), "{t:#}");
    assert_eq!(t["settings"]["http2"], true);
    let warm = t["warmup"]["completed"].as_u64().unwrap();
    assert!(warm > 0, "the warmup sent nothing: {t:#}");
    let check = &t["envoy"];
    assert_eq!(check["match"], true, "{check:#}");
    let listener = &check["listeners"][0];
    assert_eq!(listener["prefix"], "ingress_dj");
    assert_eq!(listener["envoy"]["total"], 100 + warm, "{listener:#}");
}

#[test]
fn kube_service_without_a_kubeconfig_is_a_usage_error() {
    let home = tempfile::tempdir().unwrap();
    let run = tool("envoy-traffic")
        .env("HOME", home.path())
        .env("KUBECONFIG", home.path().join("missing-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .args(["--kube-service", "prod/dj:9080", "--requests", "1"])
        .run();
    run.expect_code(2);
    let message = run.error()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("--kube-service"), "{message}");
}

/// A Kubernetes API fixture: answers the lookups of service `prod/dj` (port 9080 -> target
/// port 8080, selector app=dj) and its one ready pod, and serves the pod's port-forward over
/// the `v4.channel.k8s.io` WebSocket protocol by piping port 8080 to `target` (a real Envoy
/// listener). Fails the test on drop if no port-forward ever arrived.
struct KubeFixture {
    url: String,
    forwards: Arc<AtomicU64>,
    _rt: tokio::runtime::Runtime,
}

impl KubeFixture {
    fn start(target: String) -> KubeFixture {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let forwards = Arc::new(AtomicU64::new(0));
        let counter = forwards.clone();
        rt.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (counter, target) = (counter.clone(), target.clone());
                tokio::spawn(async move {
                    let _ = kube_serve(stream, counter, target).await;
                });
            }
        });
        KubeFixture {
            url,
            forwards,
            _rt: rt,
        }
    }

    fn kubeconfig(&self, dir: &std::path::Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let config = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fx\n\
             clusters: [{{name: fx, cluster: {{server: \"{}\"}}}}]\n\
             users: [{{name: fx, user: {{token: fixture}}}}]\n\
             contexts: [{{name: fx, context: {{cluster: fx, user: fx, namespace: prod}}}}]\n",
            self.url
        );
        std::fs::write(&path, config).unwrap();
        path
    }
}

impl Drop for KubeFixture {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert!(
                self.forwards.load(Ordering::SeqCst) > 0,
                "the kube fixture never received a port-forward"
            );
        }
    }
}

async fn kube_serve(
    mut stream: tokio::net::TcpStream,
    forwards: Arc<AtomicU64>,
    target: String,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = [0u8; 1024];
    let n = loop {
        let n = stream.peek(&mut head).await?;
        if n == 0 {
            return Ok(());
        }
        if head[..n].contains(&b'\n') || n == head.len() {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let line = String::from_utf8_lossy(&head[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    if line.contains("/pods/dj-0/portforward") {
        assert!(line.contains("ports=8080"), "{line}");
        forwards.fetch_add(1, Ordering::SeqCst);
        return kube_forward(stream, target).await;
    }
    let mut request = Vec::new();
    let mut chunk = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&chunk[..n]);
    }
    let path = line.split(' ').nth(1).unwrap_or_default();
    let (status, body) = if path == "/api/v1/namespaces/prod/services/dj" {
        let svc = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "dj", "namespace": "prod"},
            "spec": {"selector": {"app": "dj"}, "ports": [{"port": 9080, "targetPort": 8080}]}});
        ("200 OK", svc)
    } else if path.starts_with("/api/v1/namespaces/prod/pods?")
        && path.contains("labelSelector=app%3Ddj")
    {
        let pods = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [
            {"metadata": {"name": "dj-0", "namespace": "prod", "labels": {"app": "dj"}},
             "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}]});
        ("200 OK", pods)
    } else {
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": format!("unexpected call {line}"), "reason": "NotFound", "code": 404});
        ("404 Not Found", status)
    };
    let body = body.to_string();
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await
}

// tungstenite fixes the handshake callback's error type; it is large, and never built here.
#[allow(clippy::result_large_err)]
async fn kube_forward(stream: tokio::net::TcpStream, target: String) -> std::io::Result<()> {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

    let protocol = |_: &Request, mut response: Response| {
        response.headers_mut().insert(
            "sec-websocket-protocol",
            "v4.channel.k8s.io".parse().unwrap(),
        );
        Ok(response)
    };
    let ws = tokio_tungstenite::accept_hdr_async(stream, protocol)
        .await
        .map_err(std::io::Error::other)?;
    let (mut to_client, mut from_client) = ws.split();
    let [lo, hi] = 8080u16.to_le_bytes();
    // The protocol's opening: each channel (0 data, 1 error) names its port.
    for channel in [0u8, 1] {
        to_client
            .send(Message::Binary(vec![channel, lo, hi].into()))
            .await
            .map_err(std::io::Error::other)?;
    }
    let upstream = tokio::net::TcpStream::connect(target).await?;
    let (mut up_read, mut up_write) = upstream.into_split();
    let client_to_pod = async move {
        while let Some(Ok(message)) = from_client.next().await {
            let written = match message {
                Message::Binary(b) if b.len() > 1 && b[0] == 0 => up_write.write_all(&b[1..]).await,
                Message::Close(_) => break,
                _ => Ok(()),
            };
            if written.is_err() {
                break;
            }
        }
        let _ = up_write.shutdown().await;
    };
    let pod_to_client = async move {
        let mut buf = vec![0u8; 16384];
        loop {
            let n = match up_read.read(&mut buf[1..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            buf[0] = 0;
            let frame = buf[..=n].to_vec();
            if to_client.send(Message::Binary(frame.into())).await.is_err() {
                break;
            }
        }
        let _ = to_client.send(Message::Close(None)).await;
    };
    tokio::join!(client_to_pod, pod_to_client);
    Ok(())
}

#[test]
fn kube_service_goes_through_a_port_forward_to_the_mesh() {
    let stack = stack();
    let target = stack.envoy_url.trim_start_matches("http://").to_owned();
    let fixture = KubeFixture::start(target);
    let dir = tempfile::tempdir().unwrap();
    let run = tool("envoy-traffic")
        .env("KUBECONFIG", fixture.kubeconfig(dir.path()))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("AMPKIT_ENVOY_ADMIN_URLS")
        .args([
            "--kube-service",
            "prod/dj:9080",
            "--paths",
            "/jazz,/unavailable",
        ])
        .args(["--requests", "40", "--concurrency", "2"])
        .run();
    run.expect_code(0);
    let t = traffic(&run);
    assert_eq!(t["completed"], 40, "{t:#}");
    assert_eq!(t["status"], json!({"200": 20, "503": 20}), "{t:#}");
    assert_eq!(t["settings"]["kubeService"], "prod/dj:9080");
    assert_eq!(t["settings"]["kubePod"], "dj-0");
    // One port-forward stream per connection.
    assert_eq!(fixture.forwards.load(Ordering::SeqCst), 2);
}
