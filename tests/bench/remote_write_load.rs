//! Remote-write load generator for `scripts/bench.d/20-amp-local.sh`: sends the same shape of
//! remote-write requests (protobuf + snappy, as Prometheus sends them) to one URL and reports
//! throughput and per-request latency as one JSON line.
//!
//! Usage: remote-write-load URL [--sign] [--workers N] [--requests N] [--series N] [--label V]
//!        [--extra-label NAME=VALUE]
//!
//! Every worker owns its series (label `worker`) and sends its requests one after another with
//! increasing timestamps, so Prometheus accepts every sample (no out-of-order rejections).
//! Bodies are built, and with `--sign` SigV4-signed (credentials and region from the
//! environment, service `aps`), before the clock starts: what is measured is the server side.

use std::time::{Duration, Instant};

use ampkit_e2e::amp_local::{REMOTE_WRITE_HEADERS, Signer, now_ms, remote_write_body, series};

struct Args {
    url: String,
    sign: bool,
    workers: usize,
    requests: usize,
    series: usize,
    label: String,
    /// One more label on every series (`--extra-label NAME=VALUE`): what a label amp-local
    /// adds costs the Prometheus, measured without amp-local.
    extra: Option<(String, String)>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut out = Args {
        url: String::new(),
        sign: false,
        workers: 4,
        requests: 200,
        series: 500,
        label: "bench".to_owned(),
        extra: None,
    };
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name} needs a positive number"))
        };
        match arg.as_str() {
            "--sign" => out.sign = true,
            "--workers" => out.workers = number("--workers")?,
            "--requests" => out.requests = number("--requests")?,
            "--series" => out.series = number("--series")?,
            "--label" => out.label = args.next().ok_or("--label needs a value")?,
            "--extra-label" => {
                let spec = args.next().ok_or("--extra-label needs NAME=VALUE")?;
                let (name, value) = spec
                    .split_once('=')
                    .ok_or("--extra-label needs NAME=VALUE")?;
                out.extra = Some((name.to_owned(), value.to_owned()));
            }
            _ if out.url.is_empty() && !arg.starts_with('-') => out.url = arg,
            _ => return Err(format!("unknown argument {arg}")),
        }
    }
    if out.url.is_empty() {
        return Err("usage: remote-write-load URL [--sign] [--workers N] [--requests N] [--series N] [--label V] [--extra-label N=V]".into());
    }
    Ok(out)
}

fn signer_from_env() -> Result<Signer, String> {
    let var = |n: &str| std::env::var(n).map_err(|_| format!("{n} is not set"));
    Ok(Signer {
        access_key: var("AWS_ACCESS_KEY_ID")?,
        secret: var("AWS_SECRET_ACCESS_KEY")?,
        region: var("AWS_REGION")?,
        service: "aps".to_owned(),
    })
}

/// One prepared request: body and the headers to send with it.
type Prepared = (Vec<u8>, Vec<(String, String)>);

fn prepare(args: &Args, signer: Option<&Signer>, worker: usize, start_ms: i64) -> Vec<Prepared> {
    let worker_label = worker.to_string();
    (0..args.requests)
        .map(|k| {
            let ts = start_ms + k as i64;
            let batch = (0..args.series)
                .map(|s| {
                    let s = s.to_string();
                    let mut labels = vec![
                        ("__name__", "ampkit_bench_remote_write"),
                        ("target", args.label.as_str()),
                        ("worker", worker_label.as_str()),
                        ("series", s.as_str()),
                    ];
                    if let Some((name, value)) = &args.extra {
                        labels.push((name.as_str(), value.as_str()));
                    }
                    series(&labels, &[(k as f64, ts)])
                })
                .collect();
            let body = remote_write_body(batch);
            let mut headers: Vec<(String, String)> = REMOTE_WRITE_HEADERS
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            if let Some(signer) = signer {
                headers.extend(signer.sign("POST", &args.url, REMOTE_WRITE_HEADERS, &body));
            }
            (body, headers)
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("remote-write-load: {e}");
            std::process::exit(2);
        }
    };
    let signer = if args.sign {
        match signer_from_env() {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("remote-write-load: --sign: {e}");
                std::process::exit(2);
            }
        }
    } else {
        None
    };
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("remote-write-load: {e}");
            std::process::exit(1);
        });
    let start_ms = now_ms() - 60_000;
    let plans: Vec<Vec<Prepared>> = (0..args.workers)
        .map(|w| prepare(&args, signer.as_ref(), w, start_ms))
        .collect();

    let began = Instant::now();
    let mut tasks = Vec::new();
    for plan in plans {
        let client = client.clone();
        let url = args.url.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(plan.len());
            let mut errors = 0usize;
            let mut first_error = None;
            for (body, headers) in plan {
                let mut request = client.post(&url).body(body);
                for (k, v) in &headers {
                    request = request.header(k, v);
                }
                let t = Instant::now();
                match request.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                    }
                    Ok(r) => {
                        errors += 1;
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        first_error.get_or_insert(format!("{status}: {text}"));
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e.to_string());
                    }
                }
                latencies.push(t.elapsed());
            }
            (latencies, errors, first_error)
        }));
    }
    let mut latencies: Vec<Duration> = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        if let Ok((l, e, f)) = task.await {
            latencies.extend(l);
            errors += e;
            if first_error.is_none() {
                first_error = f;
            }
        }
    }
    let elapsed = began.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    let requests = latencies.len();
    let samples = (requests - errors) * args.series;
    println!(
        "{{\"target\":\"{}\",\"requests\":{requests},\"errors\":{errors},\"samples\":{samples},\"seconds\":{elapsed:.3},\"samples_per_s\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
        args.label,
        samples as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
    if let Some(e) = first_error {
        eprintln!("remote-write-load: {errors} requests failed; first: {e}");
        std::process::exit(1);
    }
}
