//! The machine's yardstick for `bench/serve-vs-bare.sh`: a bare hyper
//! HTTP/1.1 server answering every request with a constant JSON body of a
//! given size — on tokio's shared multi-threaded runtime (the usual way), or
//! with `per-thread`, the way `hub serve` runs: one accepting task handing
//! each connection to one of N threads, each with a runtime of its own.
//! Usage: bare_server ADDR BODY_BYTES [per-thread]   (prints "listening on http://ADDR")

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;

async fn serve(stream: tokio::net::TcpStream, body: Bytes) {
    let svc = service_fn(move |_req| {
        let body = body.clone();
        async move {
            Ok::<_, Infallible>(
                hyper::Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::new(body))
                    .expect("static response"),
            )
        }
    });
    let _ = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let size: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(872);
    let per_thread = args.next().as_deref() == Some("per-thread");
    // A JSON object of exactly `size` bytes (at least 12).
    let pad = size.saturating_sub(12);
    let body = Bytes::from(format!("{{\"pad\":\"{}\"}}", "x".repeat(pad)));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let mut threads = Vec::new();
    if per_thread {
        for _ in 0..std::thread::available_parallelism().map_or(2, |n| n.get()) {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<std::net::TcpStream>();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let body = body.clone();
            std::thread::spawn(move || {
                rt.block_on(async move {
                    while let Some(s) = rx.recv().await {
                        if let Ok(s) = tokio::net::TcpStream::from_std(s) {
                            tokio::spawn(serve(s, body.clone()));
                        }
                    }
                })
            });
            threads.push(tx);
        }
    }
    let mut next = 0usize;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        if threads.is_empty() {
            tokio::spawn(serve(stream, body.clone()));
        } else {
            let _ = threads[next % threads.len()].send(stream.into_std()?);
            next += 1;
        }
    }
}
