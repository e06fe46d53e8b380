//! TLS with rustls (ring provider): the server's configuration from PEM
//! files, a listener that does handshakes off the accept loop, and the
//! client's verifier that pins the hub's certificate captured at `join`
//! (hubs have self-signed certificates; system roots are not consulted).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::error::HubError;

/// The SHA-256 fingerprint of a certificate (DER), as `openssl x509
/// -noout -fingerprint -sha256` prints it: upper-case hex pairs joined by
/// colons.
pub fn fingerprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The fingerprint of the first certificate of a PEM file.
pub fn file_fingerprint(cert: &Path) -> Result<String, HubError> {
    let first = CertificateDer::pem_file_iter(cert)
        .map_err(|e| HubError::Tls(format!("{}: {e}", cert.display())))?
        .next()
        .ok_or_else(|| HubError::Tls(format!("{} holds no certificate", cert.display())))?
        .map_err(|e| HubError::Tls(format!("{}: {e}", cert.display())))?;
    Ok(fingerprint(first.as_ref()))
}

/// Makes a self-signed certificate and its key at `cert` and `key` when
/// neither file exists (a hub's first start); true if it made them. The
/// certificate names `names` (host names or IP addresses; phones pin the
/// certificate itself, so the names matter only to other clients) and is
/// valid until 4096 (rcgen's default): it is replaced by the rotation
/// procedure, not by expiry. One file without the other is an error naming the missing one.
pub fn ensure_self_signed(cert: &Path, key: &Path, names: &[String]) -> Result<bool, HubError> {
    match (cert.exists(), key.exists()) {
        (true, true) => return Ok(false),
        (true, false) | (false, true) => {
            let (have, missing) = if cert.exists() {
                (cert, key)
            } else {
                (key, cert)
            };
            return Err(HubError::Tls(format!(
                "{} exists but {} does not: give both files of one certificate, or neither                  (`fmp serve` then makes a self-signed one)",
                have.display(),
                missing.display()
            )));
        }
        (false, false) => {}
    }
    let mut params = rcgen::CertificateParams::new(names.to_vec())
        .map_err(|e| HubError::Tls(format!("certificate names {names:?}: {e}")))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fmp hub");
    let key_pair = rcgen::KeyPair::generate().map_err(|e| HubError::Tls(e.to_string()))?;
    let made = params
        .self_signed(&key_pair)
        .map_err(|e| HubError::Tls(e.to_string()))?;
    write_new(key, key_pair.serialize_pem().as_bytes(), 0o600)?;
    write_new(cert, made.pem().as_bytes(), 0o644)?;
    Ok(true)
}

/// Writes a file that must not exist yet, with `mode` on Unix.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), HubError> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let io = |source| HubError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = o.open(path).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Installs rustls' ring provider as the process default (once; later calls do nothing).
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server configuration from a PEM certificate chain and key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, HubError> {
    install_provider();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| HubError::Tls(format!("{}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| HubError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(HubError::Tls(format!(
            "{} holds no certificate",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| HubError::Tls(format!("{}: {e}", key.display())))?;
    let cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| HubError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| HubError::Tls(e.to_string()))?;
    Ok(Arc::new(cfg))
}

/// A TLS listener for `axum::serve`: TCP accepts feed handshakes running
/// in their own tasks (10 s limit), so a slow client blocks nobody.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `tcp` with `cfg`.
    pub fn new(tcp: TcpListener, cfg: Arc<rustls::ServerConfig>, local: SocketAddr) -> TlsListener {
        let (tx, rx) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(cfg);
        tokio::spawn(async move {
            loop {
                let (sock, peer) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx2 = tx.clone();
                tokio::spawn(async move {
                    if let Ok(Ok(s)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(sock)).await
                    {
                        let _ = tx2.send((s, peer)).await;
                    }
                });
                if tx.is_closed() {
                    break;
                }
            }
        });
        TlsListener { rx, local }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Accepts exactly one server certificate (the pinned one), or, with no
/// pin, any certificate, which it captures (trust on first use at `join`).
#[derive(Debug)]
pub struct Pinned {
    pin: Option<Vec<u8>>,
    seen: Mutex<Option<Vec<u8>>>,
    provider: Arc<CryptoProvider>,
}

impl Pinned {
    /// A verifier for `pin` (DER), or capturing when `None`.
    pub fn new(pin: Option<Vec<u8>>) -> Arc<Pinned> {
        Arc::new(Pinned {
            pin,
            seen: Mutex::new(None),
            provider: provider(),
        })
    }

    /// The certificate the server presented.
    pub fn seen(&self) -> Option<Vec<u8>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The pinned certificate and the other one the server presented, if
    /// it presented one that is not the pinned one.
    pub fn changed(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        let pin = self.pin.as_ref()?;
        let seen = self.seen()?;
        (&seen != pin).then(|| (pin.clone(), seen))
    }

    /// A rustls client configuration using this verifier.
    pub fn client_config(self: &Arc<Pinned>) -> Result<rustls::ClientConfig, HubError> {
        Ok(
            rustls::ClientConfig::builder_with_provider(self.provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| HubError::Tls(e.to_string()))?
                .dangerous()
                .with_custom_certificate_verifier(self.clone())
                .with_no_client_auth(),
        )
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(end_entity.to_vec());
        match &self.pin {
            Some(pin) if pin.as_slice() != end_entity.as_ref() => Err(rustls::Error::General(
                "the hub's TLS certificate is not the one pinned when this device joined".into(),
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
