//! A real headless browser for the pages ampkit draws: Debian's `chromium`, driven over the
//! DevTools protocol (a WebSocket on 127.0.0.1). A page is loaded from a file, every console
//! error, uncaught exception and failed load is collected, an expression is evaluated in the
//! page, and a screenshot of the whole page is taken. The browser is stopped by its PID.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// What loading a page showed.
#[derive(Debug)]
pub struct PageReport {
    /// Console errors, uncaught exceptions and failed requests, as the browser reported them.
    pub errors: Vec<String>,
    /// The value of the evaluated expression.
    pub value: Value,
    /// The whole page as PNG.
    pub screenshot: Vec<u8>,
}

struct Chromium(Child);

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The browser's path: `AMPKIT_CHROMIUM`, else `chromium` from Debian.
pub fn chromium_path() -> String {
    std::env::var("AMPKIT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

/// Load `file` in headless chromium at `width` CSS pixels, evaluate `expression`, screenshot.
pub async fn load(file: &Path, width: u32, expression: &str) -> PageReport {
    let path = chromium_path();
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: `scripts/setup` installs Debian's chromium when run as root \
         (or: sudo apt-get install chromium; AMPKIT_CHROMIUM=PATH names another)"
    );
    let profile = tempfile::tempdir().expect("a profile directory");
    let mut child = Command::new(&path)
        .args([
            "--headless",
            // Root in CI: the sandbox needs user namespaces that containers often lack.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--no-first-run",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let stderr = child.stderr.take().expect("its stderr");
    let browser = Chromium(child);
    // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let browser_ws = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("chromium says where DevTools listens");
    let port = browser_ws
        .trim_start_matches("ws://127.0.0.1:")
        .split('/')
        .next()
        .expect("a port")
        .to_owned();
    let targets: Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
        .await
        .expect("the target list")
        .json()
        .await
        .expect("JSON");
    let page_ws = targets
        .as_array()
        .and_then(|t| t.iter().find(|t| t["type"] == "page"))
        .and_then(|t| t["webSocketDebuggerUrl"].as_str())
        .expect("a page target")
        .to_owned();
    let (mut ws, _) = tokio_tungstenite::connect_async(page_ws.as_str())
        .await
        .expect("DevTools WebSocket");
    let mut next_id = 0u64;
    let mut errors = Vec::new();
    // Send a command and wait for its answer, keeping the events that arrive meanwhile.
    macro_rules! call {
        ($method:expr, $params:expr) => {{
            next_id += 1;
            let id = next_id;
            let message = json!({"id": id, "method": $method, "params": $params}).to_string();
            ws.send(Message::Text(message.into()))
                .await
                .expect("a DevTools command sent");
            loop {
                let frame = tokio::time::timeout(Duration::from_secs(30), ws.next())
                    .await
                    .expect("DevTools answers within 30 s")
                    .expect("the socket stays open")
                    .expect("a frame");
                let Message::Text(text) = frame else { continue };
                let value: Value = serde_json::from_str(&text).expect("DevTools JSON");
                collect_error(&value, &mut errors);
                if value["id"] == id {
                    break value;
                }
            }
        }};
    }
    call!("Runtime.enable", json!({}));
    call!("Log.enable", json!({}));
    call!("Page.enable", json!({}));
    call!(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": false})
    );
    let url = format!(
        "file://{}",
        file.canonicalize().expect("the page exists").display()
    );
    call!("Page.navigate", json!({"url": url}));
    // Wait for the load event; events seen meanwhile are checked for errors.
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("the page loads within 30 s")
            .expect("the socket stays open")
            .expect("a frame");
        let Message::Text(text) = frame else { continue };
        let value: Value = serde_json::from_str(&text).expect("DevTools JSON");
        collect_error(&value, &mut errors);
        if value["method"] == "Page.loadEventFired" {
            break;
        }
    }
    let evaluated = call!(
        "Runtime.evaluate",
        json!({"expression": expression, "returnByValue": true})
    );
    let shot = call!(
        "Page.captureScreenshot",
        json!({"format": "png", "captureBeyondViewport": true})
    );
    let screenshot = base64::engine::general_purpose::STANDARD
        .decode(shot["result"]["data"].as_str().expect("PNG data"))
        .expect("base64 PNG");
    let _ = ws.close(None).await;
    drop(browser);
    PageReport {
        errors,
        value: evaluated["result"]["result"]["value"].clone(),
        screenshot,
    }
}

fn collect_error(event: &Value, errors: &mut Vec<String>) {
    let params = &event["params"];
    match event["method"].as_str() {
        Some("Runtime.consoleAPICalled") if params["type"] == "error" => {
            errors.push(format!("console.error: {}", params["args"]));
        }
        Some("Runtime.exceptionThrown") => {
            errors.push(format!("exception: {}", params["exceptionDetails"]));
        }
        Some("Log.entryAdded") if params["entry"]["level"] == "error" => {
            errors.push(format!("log: {}", params["entry"]["text"]));
        }
        _ => {}
    }
}
