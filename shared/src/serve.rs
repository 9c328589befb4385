//! `hub serve`: every route on one HTTP/1.1 server (hyper) over the
//! embedded store.

use crate::api::{self, App, Request, Response, MAX_BODY_BYTES};
use crate::error::{ApiError, ErrorKind};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

fn to_hyper(r: Response) -> hyper::Response<Full<Bytes>> {
    let mut resp = hyper::Response::new(Full::new(r.body));
    let status = hyper::StatusCode::from_u16(r.status);
    let mut valid = status.is_ok();
    *resp.status_mut() = status.unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    headers.reserve(r.headers.len());
    for (k, v) in r.headers {
        // The header values' own bytes, validated, not copied.
        match (
            http::HeaderName::try_from(k),
            http::HeaderValue::try_from(v),
        ) {
            (Ok(k), Ok(v)) => {
                headers.append(k, v);
            }
            _ => valid = false,
        }
    }
    if valid {
        return resp;
    }
    let mut resp = hyper::Response::new(Full::new(Bytes::from_static(
        b"{\"name\":\"UNKNOWN_ERROR\"}",
    )));
    *resp.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
    resp
}

/// Past this, an oversized upload is cut off instead of drained.
const DRAIN_LIMIT: usize = 16 * MAX_BODY_BYTES;

/// Read the body up to the limit. When it is larger, keep reading (and
/// discarding) up to `DRAIN_LIMIT`, so that the client finishes sending and
/// can read the 413 we answer with.
async fn read_body(mut body: Incoming) -> Result<Bytes, ApiError> {
    use bytes::BufMut;
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ApiError::invalid("The request body could not be read."))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= MAX_BODY_BYTES {
                buf.put(data);
            } else if seen > DRAIN_LIMIT {
                break;
            }
        }
    }
    if seen > MAX_BODY_BYTES {
        return Err(ApiError::new(
            ErrorKind::PayloadTooLarge,
            "The request body is larger than 1 MiB.",
        ));
    }
    Ok(buf.freeze())
}

async fn handle(
    app: Arc<App>,
    req: hyper::Request<Incoming>,
    body_timeout: std::time::Duration,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT as u64) {
        let mut r = to_hyper(api::error_response(&ApiError::new(
            ErrorKind::PayloadTooLarge,
            "The request body is larger than 1 MiB.",
        )));
        r.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        return r;
    }
    // A request without a body (most reads) needs no read and no timer.
    let body = if hyper::body::Body::is_end_stream(&body) {
        Ok(Ok(Bytes::new()))
    } else {
        tokio::time::timeout(body_timeout, read_body(body)).await
    };
    let body = match body {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return to_hyper(api::error_response(&e)),
        Err(_) => {
            let mut r = to_hyper(api::error_response(&ApiError::invalid(
                "The request body did not arrive in time.",
            )));
            r.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            return r;
        }
    };
    let secure = parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let request = Request {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts.headers,
        body,
        secure,
    };
    to_hyper(app.handle(request).await)
}

/// Bind `addr`; returns the bound address (port 0 picks a free one) and the
/// accept loop to run.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(SocketAddr, TcpListener)> {
    let listener = TcpListener::bind(addr).await?;
    Ok((listener.local_addr()?, listener))
}

/// How long a connection may take to send a request's headers (and stay
/// idle between requests), and then its body.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub headers: std::time::Duration,
    pub body: std::time::Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            headers: std::time::Duration::from_secs(30),
            body: std::time::Duration::from_secs(60),
        }
    }
}

/// Serve connections until the task is dropped.
pub async fn run(listener: TcpListener, app: Arc<App>) {
    run_with(listener, app, Timeouts::default()).await
}

/// Serve connections on `threads` threads, each with a runtime of its own:
/// this task accepts, and hands each connection in turn to one of them, where
/// it stays. A connection's requests are then read, handled and answered on
/// one thread with no hand-over between threads, which is what a keep-alive
/// HTTP/1.1 connection wants (the shared runtime moves work between its
/// threads, and pays for waking them). Returns when the task is dropped; the
/// threads then stop with their connections.
pub async fn run_per_thread(
    listener: TcpListener,
    app: Arc<App>,
    timeouts: Timeouts,
    threads: usize,
) -> std::io::Result<()> {
    let mut workers = Vec::with_capacity(threads.max(1));
    for i in 0..threads.max(1) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<std::net::TcpStream>();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let app = app.clone();
        std::thread::Builder::new()
            .name(format!("hub-http-{i}"))
            .spawn(move || {
                rt.block_on(async move {
                    while let Some(std_stream) = rx.recv().await {
                        let stream = match tokio::net::TcpStream::from_std(std_stream) {
                            Ok(s) => s,
                            Err(e) => {
                                crate::log::error("serve", &format!("connection dropped: {e}"));
                                continue;
                            }
                        };
                        tokio::spawn(serve_connection(stream, app.clone(), timeouts));
                    }
                })
            })?;
        workers.push(tx);
    }
    // Dropping the senders (when this task is dropped) ends each thread's loop.
    let mut next = 0usize;
    loop {
        let stream = accept(&listener).await;
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                crate::log::error("serve", &format!("connection dropped: {e}"));
                continue;
            }
        };
        if workers[next % workers.len()].send(std_stream).is_err() {
            return Err(std::io::Error::other("a serving thread stopped"));
        }
        next = next.wrapping_add(1);
    }
}

/// The next connection, with Nagle's delay off (a failed accept, such as
/// running out of descriptors, is logged and tried again shortly).
async fn accept(listener: &TcpListener) -> tokio::net::TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                return stream;
            }
            Err(e) => {
                crate::log::error("serve", &format!("accept failed: {e}"));
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// One connection's requests, until it closes or times out.
async fn serve_connection(stream: tokio::net::TcpStream, app: Arc<App>, timeouts: Timeouts) {
    let svc = service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(handle(app, req, timeouts.body).await) }
    });
    let _ = http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(timeouts.headers)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

/// Serve with these timeouts: a connection whose request headers have not
/// arrived in time (a slow or stalled client, or one idle between requests)
/// is closed, so clients that hang on cannot hold every descriptor.
pub async fn run_with(listener: TcpListener, app: Arc<App>, timeouts: Timeouts) {
    loop {
        let stream = accept(&listener).await;
        tokio::spawn(serve_connection(stream, app.clone(), timeouts));
    }
}
