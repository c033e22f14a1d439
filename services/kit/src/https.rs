//! The TLS client configuration for outbound HTTPS (avatars, Daily,
//! summarizer endpoints, other regions' gateways).
//!
//! The ring provider, as livekit-api uses: with two providers linked and none
//! installed process-wide, rustls refuses to pick one.

use std::sync::Arc;

pub fn client_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// An HTTP(S) client with that TLS and `timeout` per request.
pub fn client(timeout: std::time::Duration) -> reqwest::Client {
    let builder = reqwest::Client::builder().timeout(timeout);
    let builder = match client_config() {
        Ok(tls) => builder.tls_backend_preconfigured((*tls).clone()),
        Err(e) => {
            tracing::warn!(error = %e, "no TLS configuration: plain HTTP only");
            builder
        }
    };
    builder.build().unwrap_or_default()
}
