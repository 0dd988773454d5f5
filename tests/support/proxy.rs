//! A transparent proxy in front of a local service (moto, amp-local): every request is
//! forwarded as it came (the Host header too, so amp-local still verifies the SigV4 signature
//! made for the proxy's address) and recorded as the operation it is: `METHOD /path` for the
//! REST APIs (AMP, EKS), the `Action` for the query-protocol APIs (IAM, STS, SNS). From a
//! chosen operation on it can also refuse, as a service that went down half-way through a
//! run (the connection is there, the answer is a 503).

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Request, State};
use axum::response::IntoResponse;

struct Shared {
    upstream: String,
    calls: Mutex<Vec<String>>,
    /// Once an operation starting with this arrives, it and everything after are refused.
    down_from: Mutex<Option<String>>,
    down: Mutex<bool>,
    client: reqwest::Client,
}

pub struct Recorder {
    pub url: String,
    shared: Arc<Shared>,
    _task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    pub async fn start(upstream: String) -> Recorder {
        let shared = Arc::new(Shared {
            upstream,
            calls: Mutex::new(Vec::new()),
            down_from: Mutex::new(None),
            down: Mutex::new(false),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("an HTTP client"),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let (url, task) = crate::serve_on_loopback(app).await;
        Recorder {
            url,
            shared,
            _task: task,
        }
    }

    /// Every operation so far.
    pub fn calls(&self) -> Vec<String> {
        self.shared
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// From the first operation that starts with `operation` on, answer 503 to everything.
    pub fn go_down_at(&self, operation: &str) {
        *self
            .shared
            .down_from
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(operation.to_owned());
    }
}

fn form_action(body: &[u8]) -> Option<String> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .map(str::to_owned)
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let operation =
        form_action(&body).unwrap_or_else(|| format!("{} {}", parts.method, parts.uri.path()));
    shared
        .calls
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(operation.clone());
    {
        let from = shared
            .down_from
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut down = shared.down.lock().unwrap_or_else(PoisonError::into_inner);
        if from.is_some_and(|f| operation.starts_with(&f)) {
            *down = true;
        }
        if *down {
            return (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                [("x-amzn-errortype", "ServiceUnavailableException")],
                r#"{"message":"the service went down (test proxy)"}"#,
            )
                .into_response();
        }
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    let mut forwarded = shared
        .client
        .request(parts.method.clone(), format!("{}{path}", shared.upstream));
    for (name, value) in &parts.headers {
        forwarded = forwarded.header(name, value);
    }
    let Ok(answer) = forwarded.body(body.to_vec()).send().await else {
        return axum::http::StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let mut headers = answer.headers().clone();
    headers.remove("transfer-encoding");
    headers.remove("content-length");
    let bytes = answer.bytes().await.unwrap_or_default();
    (status, headers, bytes).into_response()
}
