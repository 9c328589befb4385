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
    let mut b = hyper::Response::builder().status(r.status);
    for (k, v) in &r.headers {
        b = b.header(*k, v.as_str());
    }
    b.body(Full::new(r.body)).unwrap_or_else(|_| {
        let mut resp = hyper::Response::new(Full::new(Bytes::from_static(
            b"{\"name\":\"UNKNOWN_ERROR\"}",
        )));
        *resp.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        resp
    })
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
    let body = match tokio::time::timeout(body_timeout, read_body(body)).await {
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

/// Serve with these timeouts: a connection whose request headers have not
/// arrived in time (a slow or stalled client, or one idle between requests)
/// is closed, so clients that hang on cannot hold every descriptor.
pub async fn run_with(listener: TcpListener, app: Arc<App>, timeouts: Timeouts) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                crate::log::error("serve", &format!("accept failed: {e}"));
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
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
        });
    }
}
