//! TLS configuration: webpki-roots plus any extra roots, ALPN `http/1.1`, ring as the crypto
//! provider (it builds much faster than aws-lc-rs). Verification is always on.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

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
    let setup_failed =
        |e: &dyn std::fmt::Display| Error::new(ErrorKind::Tls, format!("TLS setup failed: {e}"));
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| setup_failed(&e))?;
    let mut config = if extra_roots.is_empty() {
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| setup_failed(&e))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ExtraRootsVerifier {
                webpki,
                extra_roots: extra_roots.to_vec(),
            }))
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// rustls' verifier, plus the one case OpenSSL (and so curl) accepts and webpki does not: the
/// server presents, as its own certificate, exactly one of the certificates the user added as
/// a root. That is the self-signed certificate of an internal site made with `openssl req
/// -x509`, which marks itself a CA (`CA:TRUE`) by default, so webpki rejects it as "a CA
/// certificate used as an end entity" even though the user trusts that very certificate.
///
/// Nothing else is relaxed: the certificate must be byte-identical to a trusted one, webpki has
/// already checked its validity period by the time it reports the CA flag (it checks the time
/// first, then the basic constraints: `check_issuer_independent_properties`; the test
/// `an_expired_pinned_self_signed_ca_certificate_is_still_rejected` holds it to that), the name
/// is checked here, and the handshake signatures are checked by webpki as always.
#[derive(Debug)]
struct ExtraRootsVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    extra_roots: Vec<CertificateDer<'static>>,
}

/// True for webpki's "CA certificate used as an end entity".
pub(crate) fn is_ca_used_as_end_entity(e: &rustls::Error) -> bool {
    match e {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => matches!(
            other.0.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        ),
        _ => false,
    }
}

impl ServerCertVerifier for ExtraRootsVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let checked = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match checked {
            Err(e)
                if is_ca_used_as_end_entity(&e)
                    && self
                        .extra_roots
                        .iter()
                        .any(|root| root.as_ref() == end_entity.as_ref()) =>
            {
                let cert = ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&cert, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
