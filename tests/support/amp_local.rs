//! Helpers for the amp-local tests: SigV4-signing raw requests (with aws-sigv4 directly, so a
//! test can sign one request and send another) and building remote-write bodies (protobuf +
//! snappy, as Prometheus sends them).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::SystemTime;

use crate::Stack;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

/// An HTTP client for the stack's loopback services (no proxy from the environment).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client")
}

/// A read of a workspace's Prometheus API (`op` after `api/v1/`) through the amp-local at
/// `base`, SigV4-signed with the stack's key, its parameters in the query string of a GET:
/// the status and the JSON body (null when there is none).
pub async fn signed_read(
    stack: &Stack,
    base: &str,
    ws: &str,
    op: &str,
    params: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let query = params
        .iter()
        .map(|(k, v)| format!("{}={}", crate::urlencode(k), crate::urlencode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let url = format!("{base}/workspaces/{ws}/api/v1/{op}?{query}");
    let response = Signer::for_stack(stack)
        .request(&http(), "GET", &url, &[], Vec::new())
        .send()
        .await
        .expect("amp-local answers");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// Instant query straight against the Prometheus behind amp-local (not through it): the
/// result vector.
pub async fn prometheus_query(stack: &Stack, query: &str) -> Vec<serde_json::Value> {
    let body: serde_json::Value = http()
        .get(format!(
            "{}/api/v1/query?query={}",
            stack.prometheus_url,
            crate::urlencode(query)
        ))
        .send()
        .await
        .expect("Prometheus answers")
        .json()
        .await
        .expect("JSON from Prometheus");
    assert_eq!(body["status"], "success", "{body}");
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Who signs, for which region and service.
#[derive(Debug, Clone)]
pub struct Signer {
    pub access_key: String,
    pub secret: String,
    pub region: String,
    pub service: String,
}

impl Signer {
    /// The stack's credentials, signing for AMP (`aps`).
    pub fn for_stack(stack: &crate::Stack) -> Self {
        Signer {
            access_key: stack.access_key_id.clone(),
            secret: stack.secret_access_key.clone(),
            region: stack.region.clone(),
            service: "aps".to_owned(),
        }
    }

    /// The headers (`authorization`, `x-amz-date`) that sign `method url` with `headers`
    /// and `body`, as the AWS SDKs sign (host from the URL).
    pub fn sign(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Vec<(String, String)> {
        let identity = Credentials::new(&self.access_key, &self.secret, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .expect("signing parameters")
            .into();
        let signable = SignableRequest::new(
            method,
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .expect("a signable request");
        let (instructions, _) = sign(signable, &params).expect("signed").into_parts();
        instructions
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// A request whose signature covers exactly what is sent.
    pub fn request(
        &self,
        client: &reqwest::Client,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        let signature = self.sign(method, url, headers, &body);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = client.request(method, url).body(body);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        for (k, v) in signature {
            request = request.header(k, v);
        }
        request
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// One series: labels (with `__name__`) and samples `(value, timestamp ms)`.
pub fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> TimeSeries {
    let mut labels: Vec<Label> = labels
        .iter()
        .map(|(n, v)| Label {
            name: (*n).to_owned(),
            value: (*v).to_owned(),
        })
        .collect();
    // Prometheus expects labels sorted by name.
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    TimeSeries {
        labels,
        samples: samples
            .iter()
            .map(|(value, timestamp)| Sample {
                value: *value,
                timestamp: *timestamp,
            })
            .collect(),
    }
}

/// A remote-write body: the WriteRequest protobuf, snappy block-compressed.
pub fn remote_write_body(timeseries: Vec<TimeSeries>) -> Vec<u8> {
    let raw = prost::Message::encode_to_vec(&WriteRequest { timeseries });
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy compression")
}

/// prompb's `MetricMetadata`: a metric family's type (1 counter, 2 gauge, ...), help and unit.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// A `WriteRequest` with metadata (field 3), as a Prometheus sends its metadata.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequestWithMetadata {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// A counter's metadata entry.
pub fn counter_metadata(name: &str, help: &str) -> MetricMetadata {
    MetricMetadata {
        r#type: 1,
        metric_family_name: name.to_owned(),
        help: help.to_owned(),
        unit: String::new(),
    }
}

/// A remote-write body with series and metadata, snappy block-compressed.
pub fn remote_write_body_with_metadata(
    timeseries: Vec<TimeSeries>,
    metadata: Vec<MetricMetadata>,
) -> Vec<u8> {
    let raw = prost::Message::encode_to_vec(&WriteRequestWithMetadata {
        timeseries,
        metadata,
    });
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy compression")
}

/// The headers Prometheus sends with a remote-write body.
pub const REMOTE_WRITE_HEADERS: &[(&str, &str)] = &[
    ("content-type", "application/x-protobuf"),
    ("content-encoding", "snappy"),
    ("x-prometheus-remote-write-version", "0.1.0"),
];

/// Now, in milliseconds since the epoch (remote-write timestamps).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A free TCP port on 127.0.0.1 (for a process a test starts itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process killed (by its PID) and reaped when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A program the local stack installed (`$AMPKIT_HOME/bin`).
pub fn local_bin(name: &str) -> PathBuf {
    let home = std::env::var("AMPKIT_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| crate::repo_root().join(".local"));
    home.join("bin").join(name)
}

/// A Prometheus agent of the test's own, on a free port: scrape jobs from `jobs(port)`, every
/// series labelled `external`, remote-writing into workspace `ws` through amp-local with its
/// own SigV4. Stopped (by PID) when dropped.
pub struct Agent {
    _process: Process,
    _dir: tempfile::TempDir,
    pub port: u16,
}

impl Agent {
    pub fn start(
        stack: &Stack,
        ws: &str,
        external: (&str, &str),
        jobs: impl FnOnce(u16) -> String,
    ) -> Agent {
        let keys = format!(
            "      access_key: {}\n      secret_key: {}\n",
            stack.access_key_id, stack.secret_access_key
        );
        Agent::launch(stack, ws, external, jobs, &keys, None)
    }

    /// A Prometheus agent on a config of `jobs` writing into `ws`, its sigv4 section ending in
    /// `sigv4_keys`; with `credentials`, the AWS variables of its environment are those only.
    fn launch(
        stack: &Stack,
        ws: &str,
        external: (&str, &str),
        jobs: impl FnOnce(u16) -> String,
        sigv4_keys: &str,
        credentials: Option<&[(&str, &str)]>,
    ) -> Agent {
        let port = free_port();
        let dir = tempfile::tempdir().expect("a temp dir");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  external_labels:\n    {label}: {value}\n\
             scrape_configs:\n{jobs}\
             remote_write:\n  - url: {amp}/workspaces/{ws}/api/v1/remote_write\n    sigv4:\n      region: {region}\n{sigv4_keys}    queue_config:\n      batch_send_deadline: 1s\n",
            label = external.0,
            value = external.1,
            jobs = jobs(port),
            amp = stack.amp_url,
            region = stack.region,
        );
        let config_path = dir.path().join("agent.yml");
        std::fs::write(&config_path, config).expect("agent config written");
        let log = std::fs::File::create(dir.path().join("agent.log")).expect("log file");
        let mut command = Command::new(local_bin("prometheus"));
        command
            .arg("--enable-feature=agent")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.agent.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(credentials) = credentials {
            command.env_remove("AWS_PROFILE");
            for (k, v) in credentials {
                command.env(k, v);
            }
        }
        let process = Process(command.spawn().expect("the Prometheus agent starts"));
        Agent {
            _process: process,
            _dir: dir,
            port,
        }
    }
}

impl Agent {
    /// An agent scraping the mesh's three Envoy admins, labelled `service` (dj, jazz, metal)
    /// and `namespace: prod` as the recipe's collector labels them, into workspace `ws`.
    pub fn scraping_the_mesh(stack: &Stack, ws: &str, external: (&str, &str)) -> Agent {
        let targets: String = ["dj", "jazz", "metal"]
            .iter()
            .zip(&stack.envoy_admin_urls)
            .map(|(service, url)| {
                format!(
                    "      - targets: ['{}']\n        labels: {{service: {service}, namespace: prod}}\n",
                    url.trim_start_matches("http://")
                )
            })
            .collect();
        Agent::start(stack, ws, external, |_| {
            format!(
                "  - job_name: envoy\n    metrics_path: /stats/prometheus\n    static_configs:\n{targets}"
            )
        })
    }
}

/// Temporary credentials (an STS session): requests carry and sign `x-amz-security-token`.
#[derive(Debug, Clone)]
pub struct SessionSigner {
    pub signer: Signer,
    pub session_token: String,
}

impl SessionSigner {
    /// The session `access_key`/`secret`/`token`, signing for AMP in the stack's region.
    pub fn for_stack(stack: &Stack, access_key: &str, secret: &str, token: &str) -> Self {
        SessionSigner {
            signer: Signer {
                access_key: access_key.to_owned(),
                secret: secret.to_owned(),
                region: stack.region.clone(),
                service: "aps".to_owned(),
            },
            session_token: token.to_owned(),
        }
    }

    /// A request signed as the SDKs sign with temporary credentials (the token signed too).
    pub fn request(
        &self,
        client: &reqwest::Client,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        all.push(("x-amz-security-token", &self.session_token));
        self.signer.request(client, method, url, &all, body)
    }
}

impl Agent {
    /// A Prometheus agent as [`Agent::start`], signing with the credentials given in its
    /// environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`: the
    /// chain its AWS SDK reads when the sigv4 section names no key) instead of the stack's key.
    pub fn start_with_credentials(
        stack: &Stack,
        ws: &str,
        external: (&str, &str),
        jobs: impl FnOnce(u16) -> String,
        credentials: &[(&str, &str)],
    ) -> Agent {
        Agent::launch(stack, ws, external, jobs, "", Some(credentials))
    }
}
