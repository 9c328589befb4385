//! The one TLS client configuration of the hub: rustls with the `ring`
//! provider and Mozilla's roots compiled in, plus the PEM certificates of a
//! private or development CA when given. Webhook delivery
//! (`HUB_WEBHOOK_CA_FILE`) and the AWS SDK's HTTP client (`AWS_CA_BUNDLE`)
//! both build theirs here.

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
