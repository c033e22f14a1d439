//! Mutual TLS for the gRPC between Lobby's services, and server TLS for the
//! GPU workers' door.
//!
//! Every service holds a certificate and key signed by one private CA, and
//! trusts only that CA: a caller without a certificate from it is refused
//! during the handshake, before any method runs. Plaintext exists for
//! debugging only, when `LOBBY_GRPC_PLAINTEXT=true` says so, and every
//! process that uses it logs a warning at start-up.

use crate::{ConfigError, Settings};
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use std::{path::PathBuf, sync::Arc};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

pub const CA_FILE: &str = "LOBBY_TLS_CA_FILE";
pub const CERT_FILE: &str = "LOBBY_TLS_CERT_FILE";
pub const KEY_FILE: &str = "LOBBY_TLS_KEY_FILE";
pub const PLAINTEXT: &str = "LOBBY_GRPC_PLAINTEXT";

/// Whether `LOBBY_GRPC_PLAINTEXT` turns mutual TLS off (debugging only).
pub fn plaintext(s: &Settings) -> Result<bool, ConfigError> {
    s.get_or(PLAINTEXT, false)
}

/// How this process speaks gRPC to its peers.
#[derive(Clone)]
pub enum GrpcTls {
    Mutual(Arc<TlsMaterial>),
    /// Only when `LOBBY_GRPC_PLAINTEXT=true`; never in `make run`, the tests
    /// or the manifests.
    Plaintext,
}

/// This process's certificate chain and key, and the CA every peer's
/// certificate must chain to, read once at start-up.
pub struct TlsMaterial {
    ca: Certificate,
    identity: Identity,
    /// Where they came from, for logs and `Debug` (never the key itself).
    files: [PathBuf; 3],
}

impl std::fmt::Debug for GrpcTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Mutual(m) => f
                .debug_struct("Mutual")
                .field("ca", &m.files[0])
                .field("cert", &m.files[1])
                .field("key", &m.files[2])
                .finish(),
            Self::Plaintext => f.write_str("Plaintext"),
        }
    }
}

/// A PEM file's path mutual TLS needs, declared where it is called.
#[track_caller]
fn required_path(s: &Settings, key: &str) -> Result<PathBuf, ConfigError> {
    match s.raw(key).map(str::trim).filter(|v| !v.is_empty()) {
        Some(p) => Ok(PathBuf::from(p)),
        None => Err(ConfigError::Invalid {
            setting: key.to_owned(),
            reason: format!(
                "internal gRPC uses mutual TLS: set {CA_FILE}, {CERT_FILE} and {KEY_FILE} \
                 (PEM files; `lobby-dev certs <dir>` makes a throwaway set), or \
                 {PLAINTEXT}=true to debug without it"
            ),
        }),
    }
}

impl GrpcTls {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        install_crypto_provider();
        if plaintext(s)? {
            tracing::warn!(
                "{PLAINTEXT}=true: internal gRPC is UNAUTHENTICATED and UNENCRYPTED; anyone who \
                 reaches a service port can call it. Never run this way outside a debugger."
            );
            return Ok(Self::Plaintext);
        }
        let files = [
            required_path(s, CA_FILE)?,
            required_path(s, CERT_FILE)?,
            required_path(s, KEY_FILE)?,
        ];
        let [ca, cert, key] = [
            read_pem(CA_FILE, &files[0], PemKind::Certificate)?,
            read_pem(CERT_FILE, &files[1], PemKind::Certificate)?,
            read_pem(KEY_FILE, &files[2], PemKind::PrivateKey)?,
        ];
        Ok(Self::Mutual(Arc::new(TlsMaterial {
            ca: Certificate::from_pem(ca),
            identity: Identity::from_pem(cert, key),
            files,
        })))
    }

    /// A server that accepts only callers with a certificate from the CA.
    pub fn server_config(&self) -> Option<ServerTlsConfig> {
        match self {
            Self::Mutual(m) => Some(
                ServerTlsConfig::new()
                    .identity(m.identity.clone())
                    .client_ca_root(m.ca.clone()),
            ),
            Self::Plaintext => None,
        }
    }

    /// A server that proves who it is and asks callers for no certificate:
    /// the workers' door, where each worker authenticates with its own key.
    pub fn server_only_config(&self) -> Option<ServerTlsConfig> {
        match self {
            Self::Mutual(m) => Some(ServerTlsConfig::new().identity(m.identity.clone())),
            Self::Plaintext => None,
        }
    }

    /// An endpoint for `uri` that presents this process's certificate and
    /// trusts only the CA. The scheme follows the mode (`https` with TLS,
    /// `http` without), so one URL setting serves both.
    pub fn endpoint(&self, uri: &str) -> Result<Endpoint, tonic::transport::Error> {
        let rest = uri
            .strip_prefix("https://")
            .or_else(|| uri.strip_prefix("http://"))
            .unwrap_or(uri);
        match self {
            Self::Mutual(m) => Endpoint::from_shared(format!("https://{rest}"))?.tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(m.ca.clone())
                    .identity(m.identity.clone()),
            ),
            Self::Plaintext => Endpoint::from_shared(format!("http://{rest}")),
        }
    }
}

/// rustls needs one process-wide crypto provider when more than one is
/// linked; ring is the one every Lobby TLS client already uses.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

enum PemKind {
    Certificate,
    PrivateKey,
}

/// The file's bytes, once they parse as what `kind` says, so a wrong file
/// fails start-up naming its setting rather than the first handshake.
fn read_pem(setting: &str, path: &PathBuf, kind: PemKind) -> Result<Vec<u8>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        setting: setting.to_owned(),
        reason: format!("{}: {reason}", path.display()),
    };
    let bytes = std::fs::read(path).map_err(|e| invalid(e.to_string()))?;
    match kind {
        PemKind::Certificate => {
            let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
                .collect::<Result<_, _>>()
                .map_err(|e| invalid(format!("not a PEM certificate: {e}")))?;
            if certs.is_empty() {
                return Err(invalid("holds no PEM certificate".into()));
            }
        }
        PemKind::PrivateKey => {
            PrivateKeyDer::from_pem_slice(&bytes)
                .map_err(|e| invalid(format!("not a PEM private key: {e}")))?;
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_name_the_setting_and_the_way_out() {
        let err = GrpcTls::from_settings(&Settings::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(CA_FILE) && err.contains(PLAINTEXT), "{err}");
    }

    #[test]
    fn a_file_that_is_not_pem_names_its_setting() {
        let dir = std::env::temp_dir().join(format!("lobby-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let s = Settings::from_pairs([
            (CA_FILE, junk.display().to_string()),
            (CERT_FILE, junk.display().to_string()),
            (KEY_FILE, junk.display().to_string()),
        ]);
        let err = GrpcTls::from_settings(&s).unwrap_err().to_string();
        assert!(err.contains(CA_FILE), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_scheme_follows_the_mode() {
        let e = GrpcTls::Plaintext.endpoint("https://auth:1").unwrap();
        assert_eq!(e.uri().scheme_str(), Some("http"));
    }
}
