//! Helpers for the end-to-end tests: where the local stack is, and running the tools as
//! processes the way a shell script would (args, stdin, exit code, stdout document, stderr).
//!
//! `make test` builds every binary, brings the local stack up and exports its addresses
//! (`scripts/local-stack env`) before `cargo test` runs; the helpers read them from there.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The environment variable naming the folder of third-party fixtures: data nobody on this
/// project wrote (grafana.com's dashboard 11022, Grafana's published JSON schema), which is
/// never copied into the project. CI points it at its copy; without it, the tests that read
/// such data are reported as ignored (they carry `#[ignore = ...]`), never as passed.
pub const THIRD_PARTY_FIXTURES: &str = "AMPKIT_THIRD_PARTY_FIXTURES";

/// A file among the third-party fixtures. Only tests marked `#[ignore]` call this, so it runs
/// only when asked for; then a missing variable or file fails the test, naming the fix.
pub fn third_party_fixture(relative: &str) -> PathBuf {
    let dir = std::env::var_os(THIRD_PARTY_FIXTURES).unwrap_or_else(|| {
        panic!("{THIRD_PARTY_FIXTURES} is not set: this test reads third-party fixtures from it")
    });
    let path = PathBuf::from(dir).join(relative);
    assert!(
        path.is_file(),
        "{} is missing: {THIRD_PARTY_FIXTURES} must name the folder holding {relative}",
        path.display()
    );
    path
}

/// A fixture this project wrote itself (`tests/fixtures/...`).
pub fn fixture(relative: &str) -> PathBuf {
    let path = repo_root().join("tests").join("fixtures").join(relative);
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// The directory holding the built tools (`AMPKIT_BIN_DIR`, else the cargo target dir).
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("AMPKIT_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target"));
    target.join("debug")
}

/// The path of a built tool; fails the test with the fix when it was not built.
pub fn bin(tool: &str) -> PathBuf {
    let path = bin_dir().join(tool);
    assert!(
        path.exists(),
        "{} is not built: run `make build` (or `make test`, which builds every tool first)",
        path.display()
    );
    path
}

/// The local stack's addresses, as `scripts/local-stack env` exports them.
#[derive(Debug, Clone)]
pub struct Stack {
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub moto_url: String,
    pub envoy_url: String,
    pub envoy_admin_urls: Vec<String>,
    pub prometheus_url: String,
    pub alertmanager_url: String,
    pub agent_url: String,
    /// amp-local: every AMP call of the tests goes there.
    pub amp_url: String,
    pub stack_dir: PathBuf,
    pub port_base: String,
    /// The mesh shape its Envoys run in (`AMPKIT_STACK_MESH`: appmesh, envoy-gateway, consul).
    pub mesh: String,
    /// Where each Envoy serves its metrics in that shape (dj, jazz, metal; path included).
    pub envoy_metrics_urls: Vec<String>,
    /// What `local-stack env` exports for this stack: a tool run with these is pointed at it.
    pub exports: Vec<(String, String)>,
}

/// The variables `scripts/local-stack env` exports.
const STACK_EXPORTS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AMPKIT_MOTO_URL",
    "AWS_ENDPOINT_URL_AMP",
    "AMPKIT_AMP_URL",
    "AMPKIT_ENVOY_URL",
    "AMPKIT_ENVOY_ADMIN_URLS",
    "AMPKIT_STACK_MESH",
    "AMPKIT_ENVOY_METRICS_URLS",
    "AMPKIT_PROMETHEUS_URL",
    "AMPKIT_ALERTMANAGER_URL",
    "AMPKIT_AGENT_URL",
    "AMPKIT_STACK_DIR",
    "AMPKIT_PORT_BASE",
];

impl Stack {
    /// A stack from its exports; `what` says where they came from, for the failure.
    fn from_exports(exports: Vec<(String, String)>, what: &str) -> Stack {
        let get = |name: &str| -> String {
            exports
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{name} is not set ({what})"))
        };
        Stack {
            region: get("AWS_REGION"),
            access_key_id: get("AWS_ACCESS_KEY_ID"),
            secret_access_key: get("AWS_SECRET_ACCESS_KEY"),
            moto_url: get("AMPKIT_MOTO_URL"),
            envoy_url: get("AMPKIT_ENVOY_URL"),
            envoy_admin_urls: get("AMPKIT_ENVOY_ADMIN_URLS")
                .split(',')
                .map(str::to_owned)
                .collect(),
            prometheus_url: get("AMPKIT_PROMETHEUS_URL"),
            alertmanager_url: get("AMPKIT_ALERTMANAGER_URL"),
            agent_url: get("AMPKIT_AGENT_URL"),
            amp_url: get("AWS_ENDPOINT_URL_AMP"),
            stack_dir: PathBuf::from(get("AMPKIT_STACK_DIR")),
            port_base: get("AMPKIT_PORT_BASE"),
            mesh: get("AMPKIT_STACK_MESH"),
            envoy_metrics_urls: get("AMPKIT_ENVOY_METRICS_URLS")
                .split(',')
                .map(str::to_owned)
                .collect(),
            exports,
        }
    }

    /// An AWS SDK configuration pointed at this stack (moto for every service but AMP).
    pub async fn aws_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(self.region.clone()))
            .endpoint_url(&self.moto_url)
            .credentials_provider(aws_credential_types::Credentials::new(
                &self.access_key_id,
                &self.secret_access_key,
                None,
                None,
                "ampkit-test-stack",
            ))
            .load()
            .await
    }
}

/// The running local stack (from the environment `make test` sets up).
pub fn stack() -> Stack {
    let exports = STACK_EXPORTS
        .iter()
        .map(|name| {
            let value = std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: these tests need the local stack; run `make test`, or \
                     `scripts/local-stack up && eval \"$(scripts/local-stack env)\"` first"
                )
            });
            ((*name).to_owned(), value)
        })
        .collect();
    Stack::from_exports(exports, "the local stack's environment")
}

/// A private stack that `make test` starts beside the main one, found by the variables that
/// name its run directory and port base; read once per test process.
fn private_stack(dir_var: &'static str, base_var: &'static str) -> Stack {
    static STACKS: std::sync::Mutex<Vec<(&'static str, Stack)>> = std::sync::Mutex::new(Vec::new());
    let mut known = STACKS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, stack)) = known.iter().find(|(name, _)| *name == dir_var) {
        return stack.clone();
    }
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: `make test` starts this stack and sets it")
        })
    };
    let (dir, base) = (var(dir_var), var(base_var));
    let run = local_stack(
        &["env"],
        &[("AMPKIT_STACK_DIR", &dir), ("AMPKIT_PORT_BASE", &base)],
    );
    run.expect_code(0);
    let stack = Stack::from_exports(
        stack_exports(&run.stdout),
        &format!("`local-stack env` of {dir}"),
    );
    known.push((dir_var, stack.clone()));
    stack
}

/// The `export NAME=VALUE` lines `scripts/local-stack env` prints, as (name, value) pairs with
/// the shell quoting taken off.
pub fn stack_exports(printed: &str) -> Vec<(String, String)> {
    printed
        .lines()
        .filter_map(|line| line.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches(['\'', '"']).to_owned()))
        .collect()
}

/// The stack for the tests that stop services (`AMPKIT_FAULT_STACK_DIR`,
/// `AMPKIT_FAULT_PORT_BASE`): a stopped moto or amp-local cannot fail anyone else's test.
pub fn fault_stack() -> Stack {
    private_stack("AMPKIT_FAULT_STACK_DIR", "AMPKIT_FAULT_PORT_BASE")
}

/// The stack for the tests that count every object in moto and amp-local, or compare Envoy's
/// counters exactly (`AMPKIT_COUNT_STACK_DIR`, `AMPKIT_COUNT_PORT_BASE`): nobody else creates
/// objects or sends traffic there while they run.
pub fn count_stack() -> Stack {
    private_stack("AMPKIT_COUNT_STACK_DIR", "AMPKIT_COUNT_PORT_BASE")
}

/// A private stack whose Envoys run in a mesh's shape (`AMPKIT_MESH`), started by the test
/// that needs it at the base and under the directory `make test` names for it
/// (`AMPKIT_PROFILE_PORT_BASE` plus `offset`, `AMPKIT_PROFILE_STACK_DIR/<mesh>`), from a
/// clean directory, with amp-local settling at once. Dropping it brings the stack down (by
/// the PIDs in its run directory), also when the test fails.
pub struct ShapedStack {
    pub stack: Stack,
    _down: StackDown,
}

/// Brings a stack down when dropped: `local-stack down` with its environment.
struct StackDown(Vec<(String, String)>);

impl StackDown {
    fn run(&self, args: &[&str]) -> Run {
        let refs: Vec<(&str, &str)> = self
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        local_stack(args, &refs)
    }
}

impl Drop for StackDown {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
    }
}

impl ShapedStack {
    pub fn start(mesh: &str, offset: u16) -> ShapedStack {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: `make test` (scripts/test) sets it for this test")
            })
        };
        let base: u16 = var("AMPKIT_PROFILE_PORT_BASE")
            .parse()
            .expect("AMPKIT_PROFILE_PORT_BASE is a port number");
        let dir = PathBuf::from(var("AMPKIT_PROFILE_STACK_DIR")).join(mesh);
        let down = StackDown(
            [
                ("AMPKIT_MESH", mesh.to_owned()),
                ("AMPKIT_PORT_BASE", (base + offset).to_string()),
                ("AMPKIT_STACK_DIR", dir.display().to_string()),
                ("AMPKIT_AMP_ACTIVATION_DELAY", "0s".to_owned()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        );
        // A stack a killed run left there is stopped first; its data (scrapers amp-local
        // would restart, rules, series) is not this run's.
        let _ = down.run(&["down"]);
        let _ = std::fs::remove_dir_all(&dir);
        down.run(&["up"]).expect_code(0);
        let printed = down.run(&["env"]);
        printed.expect_code(0);
        ShapedStack {
            stack: Stack::from_exports(
                stack_exports(&printed.stdout),
                &format!("`local-stack env` of {}", dir.display()),
            ),
            _down: down,
        }
    }
}

/// What a tool run gave back.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout parsed as the state document (fails the test if it is not JSON).
    pub fn doc(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not a JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// The first line of stderr parsed as the JSON error line.
    pub fn error(&self) -> Value {
        let line = self
            .stderr
            .lines()
            .find(|l| l.starts_with("{\"error\""))
            .unwrap_or_else(|| panic!("stderr has no JSON error line:\n{}", self.stderr));
        serde_json::from_str(line).expect("the error line is JSON")
    }

    /// Assert the exit code, showing stderr when it differs.
    /// Exit 2 with a `usage` error whose message contains `fragment`.
    pub fn expect_usage_error(&self, fragment: &str) -> &Self {
        self.expect_code(2);
        let err = self.error();
        assert_eq!(err["error"]["kind"], "usage", "{err}");
        let message = err["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(fragment), "`{fragment}` not in: {err}");
        self
    }

    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code {} (expected {code})\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

/// A tool invocation being set up: `tool("promql").args([...]).stdin(doc).run()`.
pub struct Invocation {
    command: Command,
    stdin: Vec<u8>,
}

pub fn tool(name: &str) -> Invocation {
    let mut command = Command::new(bin(name));
    command.current_dir(repo_root());
    Invocation {
        command,
        stdin: Vec::new(),
    }
}

impl Invocation {
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.command.args(args);
        self
    }

    /// Add a flag no tool has, to check usage errors.
    pub fn arg_unknown(mut self) -> Self {
        self.command.arg("--no-such-flag");
        self
    }

    /// Point the tool at `stack` (its `local-stack env` exports).
    pub fn on(mut self, stack: &Stack) -> Self {
        for (key, value) in &stack.exports {
            self.command.env(key, value);
        }
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.command.env_remove(key);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.command.current_dir(dir);
        self
    }

    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = input.into();
        self
    }

    /// Feed a JSON document on stdin.
    pub fn stdin_doc(self, doc: &Value) -> Self {
        self.stdin(doc.to_string())
    }

    pub fn run(mut self) -> Run {
        let mut child = self
            .command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the tool starts");
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let input = std::mem::take(&mut self.stdin);
        // A tool may exit before reading stdin (e.g. on --help); that is not a test failure.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let output = child
            .wait_with_output()
            .expect("the tool runs to completion");
        let _ = writer.join();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Run `scripts/local-stack` with extra environment (for tests that start their own stack).
pub fn local_stack(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(repo_root().join("scripts").join("local-stack"));
    command.args(args).current_dir(repo_root());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command
        .stdin(Stdio::null())
        .output()
        .expect("scripts/local-stack runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A name no other test run uses, for cloud objects that outlive a test (moto keeps state).
pub fn unique_name(prefix: &str) -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// amp-local test helpers: raw SigV4 signing and remote-write bodies.
pub mod amg;
pub mod amp_local;
pub mod browser;
pub mod grafana;
pub mod iam_simulator;
pub mod proxy;

/// A query-string value, percent-encoded (all but RFC 3986's unreserved characters).
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An AMP client of the AWS SDK itself on `endpoint`, in the stack's region: what the tests read
/// back with, independently of the tools.
pub async fn amp_sdk(endpoint: &str) -> aws_sdk_amp::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(stack().region))
        .endpoint_url(endpoint)
        .load()
        .await;
    aws_sdk_amp::Client::new(&config)
}

/// The `type` of every ledger entry of a document, in order.
pub fn ledger_kinds(doc: &Value) -> Vec<String> {
    doc["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["type"].as_str().map(str::to_owned))
        .collect()
}

/// Serve `app` on a free loopback port for the rest of the test: its base URL, and the task to
/// abort when done (fixtures do so when dropped).
pub async fn serve_on_loopback(app: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), task)
}

/// Serve `app` on a free loopback port from a thread and runtime of its own, for a synchronous
/// test whose thread blocks on a tool's process: its base URL. The server lives as long as the
/// test binary (it holds no state a later test could trip on).
pub fn serve_in_background(app: axum::Router) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    std::thread::spawn(move || {
        runtime().block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
            let _ = axum::serve(listener, app).await;
        })
    });
    url
}

/// Whether an SNS topic exists, asked of SNS itself (moto's data.json keeps deleted objects).
pub async fn sns_topic_exists(arn: &str) -> bool {
    let _ = stack();
    let sns = aws_sdk_sns::Client::new(
        &aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await,
    );
    sns.get_topic_attributes()
        .topic_arn(arn)
        .send()
        .await
        .is_ok()
}

/// A fixture's check when it is dropped: every call in `expected` arrived, in this order among
/// the others (`METHOD /path`); fails the test naming the first that never came.
pub fn assert_calls_came(service: &str, expected: &[String], calls: &[String]) {
    let mut rest = calls.iter();
    for want in expected {
        assert!(
            rest.any(|c| c == want),
            "the expected {service} call `{want}` never came (in order); calls were: {calls:#?}"
        );
    }
}

/// A single-threaded tokio runtime, for the synchronous tests that make a few async calls.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// How often the waits below look again, unless told otherwise.
pub const POLL_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Look `every` so often until `probe` gives `Some`, for at most `within`: `None` if it never
/// did (for the waits after which the test goes on and asserts what it finds, or that race a
/// process and look often).
pub fn poll_until<T>(
    within: std::time::Duration,
    every: std::time::Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(found) = probe() {
            return Some(found);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Like [`poll_until`] every 100 ms, but a wait that runs out fails the test, saying what it
/// waited for.
pub fn wait_for<T>(what: &str, within: std::time::Duration, probe: impl FnMut() -> Option<T>) -> T {
    poll_until(within, POLL_EVERY, probe)
        .unwrap_or_else(|| panic!("gave up after {within:?} waiting for {what}"))
}

/// The async form of [`wait_for`], for tests already inside a runtime.
pub async fn eventually<T, F, Fut>(what: &str, within: std::time::Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up after {within:?} waiting for {what}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// A new workspace on `stack` (alias from `prefix`), as `amp-workspace ensure` leaves it in the
/// document.
pub fn new_workspace(stack: &Stack, prefix: &str) -> serde_json::Value {
    let run = tool("amp-workspace")
        .on(stack)
        .args(["ensure", "--alias", &unique_name(prefix)])
        .run();
    run.expect_code(0);
    run.doc()
}

/// A workspace fed by the mesh: a new workspace on `stack` and an agent of the test's own
/// scraping the three Envoys into it (labelled as the recipe's collector labels them, plus
/// `ampkit_test=marker`), waited for until its first samples have arrived, so that traffic sent
/// afterwards shows as a rise (a rate needs a sample before it). The agent stops, by its PID,
/// when the returned handle is dropped.
pub fn mesh_workspace(stack: &Stack, marker: &str) -> (serde_json::Value, amp_local::Agent) {
    let doc = new_workspace(stack, marker);
    let ws = doc["workspace"]["workspaceId"]
        .as_str()
        .expect("a workspace id")
        .to_owned();
    let agent = amp_local::Agent::scraping_the_mesh(stack, &ws, ("ampkit_test", marker));
    tool("promql")
        .on(stack)
        .args([
            "wait",
            "count(envoy_cluster_upstream_rq_total{service=\"dj\"}) > 0",
            "--timeout",
            "60s",
        ])
        .stdin_doc(&doc)
        .run()
        .expect_code(0);
    (doc, agent)
}

/// A new EKS cluster named `name` in moto (what eksctl makes for the recipe), through
/// `config`; its OIDC issuer.
pub async fn create_eks_cluster(config: &aws_config::SdkConfig, name: &str) -> String {
    let created = aws_sdk_eks::Client::new(config)
        .create_cluster()
        .name(name)
        .role_arn("arn:aws:iam::123456789012:role/eks-cluster")
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .subnet_ids("subnet-1")
                .build(),
        )
        .send()
        .await
        .expect("moto creates the EKS cluster");
    created
        .cluster()
        .and_then(|c| c.identity())
        .and_then(|i| i.oidc())
        .and_then(|o| o.issuer())
        .expect("moto's cluster has an OIDC issuer")
        .to_owned()
}
