//! The HTTP client every AWS SDK client of this project uses.
//!
//! HTTP/1.1 over hyper (the same hyper the Lambda runtime already links),
//! TLS by rustls with the `ring` provider and Mozilla's roots compiled in
//! (`webpki-roots`): the configuration webhook deliveries use too
//! (`crate::tls`). Compared with the SDK's
//! default client this links no second crypto library (aws-lc), no HTTP/2
//! and reads no certificate directory at start — a cold start does not pay
//! for parsing the system's trust store (measured in `bench/lambda-size.sh`).
//! `AWS_CA_BUNDLE`, when set, adds the PEM certificates of that file (a
//! private CA in front of an endpoint).
//!
//! Errors are classified as the SDK's retry logic expects: connection and
//! I/O failures are `io` (retried), timeouts are `timeout`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::client::connection::{CaptureSmithyConnection, ConnectionMetadata};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::Response as SdkResponse;
use aws_smithy_types::body::SdkBody;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector as TcpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The client to give `aws_config::ConfigLoader::http_client`.
pub fn client() -> SharedHttpClient {
    client_with(TLS.clone())
}

/// The client with the given TLS settings (`None`: plain HTTP only).
pub fn client_with(tls: Option<Arc<rustls::ClientConfig>>) -> SharedHttpClient {
    let tls = tls.map(|cfg| {
        let mut cfg = (*cfg).clone();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    });
    SharedHttpClient::new(Hub {
        tls,
        connectors: Mutex::default(),
    })
}

/// Connectors cached per (connect timeout, read timeout), as the SDK asks
/// for one per set of settings.
struct Hub {
    tls: Option<Arc<rustls::ClientConfig>>,
    connectors: Mutex<Vec<(Timeouts, SharedHttpConnector)>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

type Timeouts = (Option<Duration>, Option<Duration>);

impl HttpClient for Hub {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut cache = self
            .connectors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, c)) = cache.iter().find(|(k, _)| *k == key) {
            return c.clone();
        }
        let c = SharedHttpConnector::new(Connector::new(key.0, key.1, self.tls.clone()));
        cache.push((key, c.clone()));
        c
    }
}

/// One pooled hyper client with its timeouts.
#[derive(Clone)]
struct Connector {
    client: Client<Connect, SdkBody>,
    read_timeout: Option<Duration>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("read_timeout", &self.read_timeout)
            .finish()
    }
}

impl Connector {
    fn new(
        connect_timeout: Option<Duration>,
        read_timeout: Option<Duration>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(connect_timeout);
        let connect = Connect { tcp, tls };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connect);
        Connector {
            client,
            read_timeout,
        }
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let mut request = match request.try_into_http1x() {
            Ok(r) => r,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        // The SDK's retry logic closes a connection after a transient error
        // (a 500, a timeout) so the retry opens a fresh one: give it the
        // connection this request ends up on, as the SDK's own client does.
        let captured = hyper_util::client::legacy::connect::capture_connection(&mut request);
        if let Some(smithy) = request.extensions().get::<CaptureSmithyConnection>() {
            smithy.set_connection_retriever(move || connection_metadata(&captured));
        }
        let response = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let result = match read_timeout {
                Some(limit) => match tokio::time::timeout(limit, response).await {
                    Ok(r) => r,
                    Err(_) => {
                        return Err(ConnectorError::timeout(
                            format!("no response within {limit:?}").into(),
                        ))
                    }
                },
                None => response.await,
            };
            match result {
                Ok(r) => SdkResponse::try_from(r.map(SdkBody::from_body_1_x))
                    .map_err(|e| ConnectorError::other(e.into(), None)),
                Err(e) => Err(classify(e)),
            }
        })
    }
}

/// The connection a request went out on, as the SDK's retry logic sees it:
/// poisoning it keeps it from being reused.
fn connection_metadata(
    captured: &hyper_util::client::legacy::connect::CaptureConnection,
) -> Option<ConnectionMetadata> {
    let proxied = captured.connection_metadata().as_ref()?.is_proxied();
    let captured = captured.clone();
    Some(
        ConnectionMetadata::builder()
            .proxied(proxied)
            .poison_fn(move || {
                if let Some(c) = captured.connection_metadata().as_ref() {
                    c.poison();
                }
            })
            .build(),
    )
}

/// Connection failures and broken connections are worth a retry; anything
/// else (a request hyper could not send as given) is not.
fn classify(e: hyper_util::client::legacy::Error) -> ConnectorError {
    use std::error::Error as _;
    let timed_out = {
        let mut source = e.source();
        let mut found = false;
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                found |= io.kind() == std::io::ErrorKind::TimedOut;
            }
            source = s.source();
        }
        found
    };
    if timed_out {
        return ConnectorError::timeout(e.into());
    }
    let hyper_io = e
        .source()
        .and_then(|s| s.downcast_ref::<hyper::Error>())
        .is_some_and(|h| h.is_closed() || h.is_canceled() || h.is_incomplete_message());
    if e.is_connect() || hyper_io || e.source().is_some_and(|s| s.is::<std::io::Error>()) {
        ConnectorError::io(e.into())
    } else {
        ConnectorError::other(e.into(), None)
    }
}

/// The TLS settings, built once per process.
static TLS: std::sync::LazyLock<Option<Arc<rustls::ClientConfig>>> =
    std::sync::LazyLock::new(|| {
        let extra = std::env::var_os("AWS_CA_BUNDLE").map(std::path::PathBuf::from);
        match crate::tls::client_config(extra.as_deref()) {
            Ok(cfg) => Some(cfg),
            Err(e) => {
                crate::log::error("aws", &format!("AWS_CA_BUNDLE: {e}"));
                None
            }
        }
    });

/// TCP, then TLS for `https` endpoints.
#[derive(Clone)]
struct Connect {
    tcp: TcpConnector,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl tower_service::Service<http::Uri> for Connect {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().unwrap_or_default().to_string();
        let tls = self.tls.clone();
        let connecting = self.tcp.call(uri);
        Box::pin(async move {
            let tcp = connecting.await?;
            if !https {
                return Ok(Stream::Plain(tcp));
            }
            let tls = tls.ok_or("no TLS configuration (see the AWS_CA_BUNDLE error above)")?;
            let name = rustls_pki_types::ServerName::try_from(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            )?;
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp.into_inner())
                .await?;
            Ok(Stream::Tls(Box::new(TokioIo::new(stream))))
        })
    }
}

/// A connection to an endpoint, plain or TLS.
enum Stream {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match self {
            Stream::Plain(s) => s.connected(),
            Stream::Tls(s) => s.inner().get_ref().0.connected(),
        }
    }
}

impl hyper::rt::Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A private CA and a `localhost` certificate it signed.
    fn certificates() -> (String, rustls::ServerConfig) {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let private = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], private)
        .unwrap();
        // The server would take HTTP/2: the client must offer only HTTP/1.1.
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        (ca.pem(), server)
    }

    /// A TLS server answering every request as DynamoDB answers a `GetItem`
    /// of a missing item; counts handshakes that completed with ALPN
    /// `http/1.1`, and requests.
    async fn server(cfg: rustls::ServerConfig) -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let (connections, requests): (Arc<AtomicUsize>, Arc<AtomicUsize>) = Default::default();
        let (c, r) = (Arc::clone(&connections), Arc::clone(&requests));
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, c, r) = (acceptor.clone(), Arc::clone(&c), Arc::clone(&r));
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    if tls.get_ref().1.alpn_protocol() == Some(b"http/1.1") {
                        c.fetch_add(1, Ordering::SeqCst);
                    }
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match tls.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        while buf.len() < end + 4 + length {
                            match tls.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buf.drain(..end + 4 + length);
                        r.fetch_add(1, Ordering::SeqCst);
                        let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: 2\r\n\r\n{}";
                        if tls.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (port, connections, requests)
    }

    fn dynamodb(port: u16, http: SharedHttpClient) -> aws_sdk_dynamodb::Client {
        let creds = aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "test");
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .endpoint_url(format!("https://localhost:{port}"))
            .http_client(http)
            .build();
        aws_sdk_dynamodb::Client::from_conf(conf)
    }

    async fn get(client: &aws_sdk_dynamodb::Client) -> Result<(), String> {
        client
            .get_item()
            .table_name("t")
            .key("PK", AttributeValue::S("a".into()))
            .key("SK", AttributeValue::S("b".into()))
            .send()
            .await
            .map(|out| assert!(out.item().is_none()))
            .map_err(|e| format!("{:?}", e))
    }

    #[tokio::test]
    async fn dynamodb_over_tls_trusts_the_given_ca_and_reuses_the_connection() {
        let (ca, server_cfg) = certificates();
        let (port, connections, requests) = server(server_cfg).await;
        let path = std::env::temp_dir().join(format!("hub-ca-{}-{port}.pem", std::process::id()));
        std::fs::write(&path, ca).unwrap();
        let tls = crate::tls::client_config(Some(&path)).unwrap();
        std::fs::remove_file(&path).unwrap();
        let trusted = dynamodb(port, client_with(Some(tls)));
        for _ in 0..3 {
            get(&trusted).await.unwrap();
        }
        assert_eq!(requests.load(Ordering::SeqCst), 3);
        assert_eq!(
            connections.load(Ordering::SeqCst),
            1,
            "one pooled connection"
        );

        // Mozilla's roots alone do not trust the private CA: the handshake
        // fails and no request is served.
        let mozilla = crate::tls::client_config(None).unwrap();
        let untrusted = dynamodb(port, client_with(Some(mozilla)));
        let err = get(&untrusted).await.unwrap_err();
        assert!(err.contains("UnknownIssuer"), "{err}");
        assert_eq!(requests.load(Ordering::SeqCst), 3);
    }
}
