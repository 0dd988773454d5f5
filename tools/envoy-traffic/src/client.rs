//! The client side of one connection: the request template every request is made from, and
//! the connection that sends it and reads the answer. HTTP/1.1 is spoken here directly, as
//! wrk does; HTTP/2 goes through hyper. Apart from the load engine (`load`), which decides
//! when requests go out and what is counted.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What every request looks like; only the path varies (round-robin over `uris`).
#[derive(Debug, Clone)]
pub struct Template {
    /// Where to connect (`host:port`), resolved once before the run when possible.
    pub connect: String,
    pub resolved: Option<SocketAddr>,
    pub method: Method,
    /// One URI per path, in origin form for HTTP/1.1, absolute for HTTP/2.
    pub uris: Vec<Uri>,
    /// Includes `host`.
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Template {
    /// Every path's HTTP/1.1 request as the bytes that go on the wire, rendered once before
    /// the run: nothing is built or allocated per request.
    pub(crate) fn h1_requests(&self) -> Vec<Bytes> {
        self.uris
            .iter()
            .map(|uri| {
                let mut out = Vec::with_capacity(128 + self.body.len());
                out.extend_from_slice(self.method.as_str().as_bytes());
                out.push(b' ');
                out.extend_from_slice(uri.path_and_query().map_or("/", |p| p.as_str()).as_bytes());
                out.extend_from_slice(b" HTTP/1.1\r\n");
                for (name, value) in &self.headers {
                    out.extend_from_slice(name.as_str().as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(value.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                if !self.body.is_empty()
                    || matches!(self.method, Method::POST | Method::PUT | Method::PATCH)
                {
                    out.extend_from_slice(
                        format!("content-length: {}\r\n", self.body.len()).as_bytes(),
                    );
                }
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&self.body);
                Bytes::from(out)
            })
            .collect()
    }

    pub(crate) fn request(&self, path: usize) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uris[path].clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// The router's `x-envoy-upstream-service-time`: whole milliseconds the upstream took.
pub const UPSTREAM_TIME_HEADER: &str = "x-envoy-upstream-service-time";

pub(crate) fn upstream_time(value: &[u8]) -> Option<Duration> {
    std::str::from_utf8(value)
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_millis)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    Connect,
    Timeout,
    Reset,
    Other,
}

fn classify(err: &hyper::Error) -> Failure {
    if err.is_parse() || err.is_user() {
        Failure::Other
    } else {
        Failure::Reset
    }
}

type Body = Full<Bytes>;

/// One client connection. HTTP/1.1 is spoken here directly, as wrk does: the request is the
/// pre-rendered bytes, the answer is parsed in place by httparse (the parser hyper uses) into
/// a stack array of headers and its body skipped by its framing, in one buffer per
/// connection; no header map, request or response object is built per request. HTTP/2 goes
/// through hyper, its connection as its own task (the protocol answers pings and settings at
/// any time).
pub(crate) enum Conn {
    H1 {
        stream: TcpStream,
        buf: Vec<u8>,
        closed: bool,
    },
    H2 {
        send: http2::SendRequest<Body>,
    },
}

/// Where an answer's body ends.
enum Framing {
    /// Nothing follows the head (1xx, 204, 304, HEAD).
    None,
    Length(usize),
    Chunked,
    /// Until the server closes the connection.
    Close,
}

impl Conn {
    pub(crate) async fn open(template: &Template, http2: bool) -> Result<Conn, ()> {
        let stream = match template.resolved {
            Some(addr) => TcpStream::connect(addr).await,
            None => TcpStream::connect(template.connect.as_str()).await,
        }
        .map_err(|_| ())?;
        let _ = stream.set_nodelay(true);
        if http2 {
            let (send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .map_err(|_| ())?;
            tokio::spawn(conn);
            Ok(Conn::H2 { send })
        } else {
            Ok(Conn::H1 {
                stream,
                buf: Vec::with_capacity(8192),
                closed: false,
            })
        }
    }

    /// Whether a request can go out on this connection now; a connection the server closed
    /// (keep-alive timeout, `connection: close`) is replaced, not counted as an error.
    pub(crate) fn usable(&mut self) -> bool {
        match self {
            Conn::H1 { closed, .. } => !*closed,
            Conn::H2 { send } => !send.is_closed(),
        }
    }

    /// Send one request and read the whole answer; its status code and upstream time.
    pub(crate) async fn exchange(
        &mut self,
        template: &Template,
        h1_requests: &[Bytes],
        path: usize,
    ) -> Result<(u16, Option<Duration>), Failure> {
        match self {
            Conn::H1 {
                stream,
                buf,
                closed,
            } => {
                let head_only = template.method == Method::HEAD;
                let out = exchange_h1(stream, buf, &h1_requests[path], head_only).await;
                match out {
                    Ok((status, upstream, keep_alive)) => {
                        *closed = !keep_alive;
                        Ok((status, upstream))
                    }
                    Err(failure) => {
                        *closed = true;
                        Err(failure)
                    }
                }
            }
            Conn::H2 { send } => {
                let req = template.request(path);
                send.ready().await.map_err(|e| classify(&e))?;
                let resp = send.send_request(req).await.map_err(|e| classify(&e))?;
                let head = head_of(&resp);
                drain(resp.into_body()).await.map_err(|e| classify(&e))?;
                Ok(head)
            }
        }
    }
}

/// Read what has arrived into `buf`: the number of bytes, 0 when the server closed.
async fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, Failure> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(buf.capacity().max(4096));
    }
    stream.read_buf(buf).await.map_err(|_| Failure::Reset)
}

/// Read more of the answer into `buf`; a connection closed before the answer is complete is
/// a reset.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), Failure> {
    match read_some(stream, buf).await? {
        0 => Err(Failure::Reset),
        _ => Ok(()),
    }
}

/// One HTTP/1.1 request and its answer: status, upstream time, and whether the connection
/// may carry the next request.
async fn exchange_h1(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    request: &[u8],
    head_only: bool,
) -> Result<(u16, Option<Duration>, bool), Failure> {
    stream
        .write_all(request)
        .await
        .map_err(|_| Failure::Reset)?;
    buf.clear();
    let (status, upstream, framing, head_len, mut keep_alive) = loop {
        read_more(stream, buf).await?;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let status = response.code.unwrap_or(0);
                let mut upstream = None;
                let mut length = None;
                let mut chunked = false;
                let mut keep_alive = response.version == Some(1);
                for h in response.headers.iter() {
                    let name = h.name;
                    if name.eq_ignore_ascii_case("content-length") {
                        length = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse::<usize>().ok());
                        if length.is_none() {
                            return Err(Failure::Other);
                        }
                    } else if name.eq_ignore_ascii_case("transfer-encoding") {
                        chunked = h.value.eq_ignore_ascii_case(b"chunked");
                    } else if name.eq_ignore_ascii_case("connection") {
                        if h.value.eq_ignore_ascii_case(b"close") {
                            keep_alive = false;
                        } else if h.value.eq_ignore_ascii_case(b"keep-alive") {
                            keep_alive = true;
                        }
                    } else if name.eq_ignore_ascii_case(UPSTREAM_TIME_HEADER) {
                        upstream = upstream_time(h.value);
                    }
                }
                let framing = if head_only || status < 200 || status == 204 || status == 304 {
                    Framing::None
                } else if chunked {
                    Framing::Chunked
                } else if let Some(n) = length {
                    Framing::Length(n)
                } else {
                    Framing::Close
                };
                break (status, upstream, framing, head_len, keep_alive);
            }
            Ok(httparse::Status::Partial) => {}
            Err(_) => return Err(Failure::Other),
        }
    };
    match framing {
        Framing::None => {}
        Framing::Length(n) => {
            while buf.len() < head_len + n {
                read_more(stream, buf).await?;
            }
        }
        Framing::Chunked => {
            let mut at = head_len;
            loop {
                match httparse::parse_chunk_size(&buf[at..]) {
                    Ok(httparse::Status::Complete((size_len, 0))) => {
                        // The last chunk: then (no trailers are asked for) the closing CRLF.
                        let end = at + size_len;
                        while buf.len() < end + 2 {
                            read_more(stream, buf).await?;
                        }
                        if &buf[end..end + 2] != b"\r\n" {
                            return Err(Failure::Other);
                        }
                        break;
                    }
                    Ok(httparse::Status::Complete((size_len, size))) => {
                        let size = usize::try_from(size).map_err(|_| Failure::Other)?;
                        let next = at + size_len + size + 2;
                        while buf.len() < next {
                            read_more(stream, buf).await?;
                        }
                        at = next;
                    }
                    Ok(httparse::Status::Partial) => read_more(stream, buf).await?,
                    Err(_) => return Err(Failure::Other),
                }
            }
        }
        Framing::Close => {
            // The body is whatever comes until the server closes.
            while read_some(stream, buf).await? > 0 {}
            keep_alive = false;
        }
    }
    Ok((status, upstream, keep_alive))
}

/// The status and upstream time of an answer.
fn head_of<B>(resp: &http::Response<B>) -> (u16, Option<Duration>) {
    let upstream = resp
        .headers()
        .get(UPSTREAM_TIME_HEADER)
        .and_then(|v| upstream_time(v.as_bytes()));
    (resp.status().as_u16(), upstream)
}

async fn drain(mut body: hyper::body::Incoming) -> Result<(), hyper::Error> {
    while let Some(frame) = body.frame().await {
        frame?;
    }
    Ok(())
}
