//! TLS for `https://` targets (rustls, with the *ring* provider): the trust anchors, and the
//! ALPN offers a connection is opened with.
//!
//! Contract: [`TlsSetup::new`] trusts the system's certificate store (rustls-native-certs
//! reads what OpenSSL would), or with `--cacert FILE` only the PEM certificates of FILE (as
//! curl's flag of that name), or with `--insecure` any certificate (its signature over the
//! handshake is still checked, so the peer holds the key of the certificate it sent). TLS 1.2
//! and 1.3 with rustls's default (safe) suites. A connection offers `h2, http/1.1` or
//! `http/1.1` alone; the server's choice decides the protocol. No key log is written, and no
//! session is resumed across connections (each recorded connection is its own).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The client configurations of a run.
#[derive(Debug)]
pub struct TlsSetup {
    /// Offers `h2`, then `http/1.1`.
    h2: Arc<ClientConfig>,
    /// Offers `http/1.1` only.
    h1: Arc<ClientConfig>,
}

impl TlsSetup {
    pub fn new(cacert: Option<&Path>, insecure: bool) -> Result<TlsSetup, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?;
        let cfg = if insecure {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))).with_no_client_auth()
        } else {
            let mut roots = RootCertStore::empty();
            match cacert {
                Some(path) => {
                    let name = path.display();
                    let certs = CertificateDer::pem_file_iter(path).map_err(|e| format!("--cacert {name}: {e}"))?;
                    for c in certs {
                        let c = c.map_err(|e| format!("--cacert {name}: {e}"))?;
                        roots.add(c).map_err(|e| format!("--cacert {name}: {e}"))?;
                    }
                    if roots.is_empty() {
                        return Err(format!("--cacert {name}: no PEM certificate in it"));
                    }
                }
                None => {
                    // Unreadable entries of the system store are skipped; an empty store only
                    // shows when a target's certificate cannot be verified.
                    for c in rustls_native_certs::load_native_certs().certs {
                        let _ = roots.add(c);
                    }
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        let mut h2 = cfg.clone();
        h2.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let mut h1 = cfg;
        h1.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsSetup { h2: Arc::new(h2), h1: Arc::new(h1) })
    }

    /// A client connection to `host` offering HTTP/2 or not.
    pub(super) fn connection(&self, host: &str, offer_h2: bool) -> Result<rustls::ClientConnection, String> {
        let name = ServerName::try_from(host.to_string()).map_err(|e| format!("{host:?} is not a TLS server name: {e}"))?;
        let cfg = if offer_h2 { &self.h2 } else { &self.h1 };
        rustls::ClientConnection::new(cfg.clone(), name).map_err(|e| format!("TLS: {e}"))
    }
}

/// `--insecure`: any certificate chain, but the handshake signature is verified with the
/// certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
