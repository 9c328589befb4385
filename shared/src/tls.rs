//! The one TLS client configuration of the hub: rustls with the `ring`
//! provider and Mozilla's roots compiled in, plus the PEM certificates of a
//! private or development CA when given. Webhook delivery
//! (`HUB_WEBHOOK_CA_FILE`) and the AWS SDK's HTTP client (`AWS_CA_BUNDLE`)
//! both build theirs here; webhook delivery and `hub smoke` open their
//! connections with [`connect_first`] and [`wrap`].

use std::sync::Arc;
use tokio_rustls::rustls;

/// Mozilla's roots, plus the PEM certificates in `extra_ca` if given.
pub fn client_config(
    extra_ca: Option<&std::path::Path>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = extra_ca {
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// A TCP connection (no Nagle delay) to the first of `addrs` that accepts
/// one — addresses a caller has resolved and judged — and which it was.
pub async fn connect_first(
    addrs: &[std::net::SocketAddr],
) -> Result<(tokio::net::TcpStream, std::net::SocketAddr), String> {
    let mut last = String::from("no address");
    for a in addrs {
        match tokio::net::TcpStream::connect(a).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok((s, *a));
            }
            Err(e) => last = format!("connect to {a}: {e}"),
        }
    }
    Err(last)
}

/// TLS over `stream` to `host` (the name the certificate must carry).
pub async fn wrap(
    cfg: &Arc<rustls::ClientConfig>,
    host: &str,
    stream: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let name = rustls_pki_types::ServerName::try_from(host.to_string())
        .map_err(|_| format!("`{host}` is not a valid TLS server name"))?;
    tokio_rustls::TlsConnector::from(cfg.clone())
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS: {e}"))
}
