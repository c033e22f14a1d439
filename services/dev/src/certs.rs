//! Throwaway certificates for the internal gRPC's mutual TLS: one private
//! CA and one certificate per service, for `make run`, the tests, and an
//! operator trying Lobby out (`lobby-dev certs <dir>`). Production brings
//! its own (cert-manager, a service mesh's CA, …).

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// The names every deployment shape needs a certificate for.
pub const SERVICES: &[&str] = &["auth", "session", "rooms", "artifacts", "gateway", "server"];

/// A folder holding `ca.pem`, and `<name>.pem` with `<name>.key` per name.
#[derive(Debug, Clone)]
pub struct DevCerts {
    pub dir: PathBuf,
}

impl DevCerts {
    /// A new CA, and a certificate for each of `names` valid for loopback
    /// (`localhost`, `127.0.0.1`, `::1`) and for the names a Kubernetes
    /// Service would give it (`<name>`, `lobby-<name>`). Each is both a
    /// server and a client certificate, as every service is both.
    pub fn generate(dir: &Path, names: &[&str]) -> Result<Self, CertError> {
        std::fs::create_dir_all(dir).map_err(|source| CertError::Write {
            path: dir.display().to_string(),
            source,
        })?;
        let certs = Self {
            dir: dir.to_owned(),
        };
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Lobby throwaway CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        write(&certs.ca(), &ca.self_signed(&ca_key)?.pem())?;
        let issuer = Issuer::new(ca, ca_key);
        for name in names {
            let mut leaf = CertificateParams::new(vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned(),
                (*name).to_owned(),
                format!("lobby-{name}"),
            ])?;
            leaf.distinguished_name
                .push(DnType::CommonName, format!("lobby-{name}"));
            leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            leaf.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let key = KeyPair::generate()?;
            write(&certs.cert(name), &leaf.signed_by(&key, &issuer)?.pem())?;
            write(&certs.key(name), &key.serialize_pem())?;
        }
        Ok(certs)
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pem"))
    }

    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }

    /// The `LOBBY_TLS_…` settings that make a process present `name`'s
    /// certificate.
    pub fn settings(&self, name: &str) -> Vec<(String, String)> {
        use lobby_kit::grpc_tls::{CA_FILE, CERT_FILE, KEY_FILE};
        vec![
            (CA_FILE.to_owned(), self.ca().display().to_string()),
            (CERT_FILE.to_owned(), self.cert(name).display().to_string()),
            (KEY_FILE.to_owned(), self.key(name).display().to_string()),
        ]
    }
}

/// Writes `contents` readable by this user only (keys, and certificates
/// alike, for simplicity).
fn write(path: &Path, contents: &str) -> Result<(), CertError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |source| CertError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    file.write_all(contents.as_bytes()).map_err(fail)
}
