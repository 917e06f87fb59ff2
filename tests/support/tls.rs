//! A certificate authority and a server certificate made at test time (rcgen), and a TLS wrapper
//! for the test server.
#![allow(dead_code)]

use std::net::TcpStream;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::Transport;

pub struct TestPki {
    /// The CA certificate, PEM: what a client must trust.
    pub ca_pem: String,
    pub server_config: Arc<ServerConfig>,
}

/// A CA and a certificate for `localhost` and 127.0.0.1 signed by it.
pub fn test_pki() -> TestPki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "scraipe test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();

    let server_config = server_config(&cert, &key);
    TestPki {
        ca_pem: ca_cert.pem(),
        server_config,
    }
}

/// A server that presents a self-signed certificate marked as a CA (`CA:TRUE`), as `openssl
/// req -x509` makes by default, for `names`; `expired` puts its validity in 2020.
pub fn self_signed_ca_pki(names: &[&str], expired: bool) -> TestPki {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "self-signed internal site");
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 12, 31);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let server_config = server_config(&cert, &key);
    TestPki {
        ca_pem: cert.pem(),
        server_config,
    }
}

/// A server config presenting `cert` (alone) with `key`.
fn server_config(cert: &rcgen::Certificate, key: &KeyPair) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    Arc::new(config)
}

struct TlsTransport(StreamOwned<ServerConnection, TcpStream>);

impl std::io::Read for TlsTransport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl std::io::Write for TlsTransport {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl Transport for TlsTransport {
    fn tcp(&self) -> &TcpStream {
        self.0.get_ref()
    }
}

/// Wraps accepted connections in TLS with `config`.
pub fn tls_wrapper(
    config: Arc<ServerConfig>,
) -> Arc<dyn Fn(TcpStream) -> Option<Box<dyn Transport>> + Send + Sync> {
    Arc::new(move |tcp| {
        let conn = ServerConnection::new(config.clone()).ok()?;
        Some(Box::new(TlsTransport(StreamOwned::new(conn, tcp))) as Box<dyn Transport>)
    })
}
