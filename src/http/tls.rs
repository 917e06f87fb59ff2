//! TLS configuration: webpki-roots plus any extra roots, ALPN `http/1.1`, ring as the crypto
//! provider (it builds much faster than aws-lc-rs). Verification is always on.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use crate::http::error::{Error, ErrorKind};

/// Parses every certificate in a PEM bundle.
pub(crate) fn parse_pem_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            Error::new(
                ErrorKind::Tls,
                format!("could not parse PEM certificates: {e:?}"),
            )
        })?;
    if certs.is_empty() {
        return Err(Error::new(
            ErrorKind::Tls,
            "no certificate found in the PEM data",
        ));
    }
    Ok(certs)
}

pub(crate) fn client_config(
    extra_roots: &[CertificateDer<'static>],
    builtin_roots: bool,
) -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut roots = RootCertStore::empty();
    if builtin_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    for cert in extra_roots {
        roots
            .add(cert.clone())
            .map_err(|e| Error::new(ErrorKind::Tls, format!("unusable root certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(ErrorKind::Tls, format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
