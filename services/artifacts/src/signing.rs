//! Signed download URLs: HMAC-SHA256 over method, path, expiry and key id, so
//! a URL cannot be replayed for another object, method or a later time, and
//! signing keys can rotate (the key id says which one signed).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct UrlSigner {
    key_id: String,
    secret: Vec<u8>,
    base_url: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SignatureCheck {
    Valid,
    Expired,
    Invalid,
}

impl UrlSigner {
    pub fn new(key_id: String, secret: Vec<u8>, base_url: String) -> Self {
        Self {
            key_id,
            secret,
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    fn mac(&self, method: &str, path: &str, expires: i64) -> HmacSha256 {
        // `new_from_slice` accepts keys of any length for HMAC.
        let mut mac = HmacSha256::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(format!("{method}\n{path}\n{expires}\n{}", self.key_id).as_bytes());
        mac
    }

    /// `GET` URL for the object at `key`, valid until `expires` (Unix seconds).
    pub fn sign_get(&self, key: &str, expires: i64) -> String {
        let path = format!("/artifacts/{key}");
        let sig = hex::encode(self.mac("GET", &path, expires).finalize().into_bytes());
        format!(
            "{}{path}?expires={expires}&kid={}&sig={sig}",
            self.base_url, self.key_id
        )
    }

    /// Checks a signature in constant time.
    pub fn verify(
        &self,
        method: &str,
        path: &str,
        expires: i64,
        kid: &str,
        sig_hex: &str,
        now: i64,
    ) -> SignatureCheck {
        let Ok(sig) = hex::decode(sig_hex) else {
            return SignatureCheck::Invalid;
        };
        if kid != self.key_id || self.mac(method, path, expires).verify_slice(&sig).is_err() {
            return SignatureCheck::Invalid;
        }
        if now > expires {
            return SignatureCheck::Expired;
        }
        SignatureCheck::Valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (String, i64, String, String) {
        let (path, query) = url.trim_start_matches("http://x").split_once('?').unwrap();
        let get = |k: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .unwrap()
                .to_owned()
        };
        (
            path.to_owned(),
            get("expires").parse().unwrap(),
            get("kid"),
            get("sig"),
        )
    }

    #[test]
    fn signed_url_verifies_only_unchanged_and_in_time() {
        let signer = UrlSigner::new("k1".into(), b"secret".to_vec(), "http://x".into());
        let url = signer.sign_get("sessions/s1/conversation.wav", 1000);
        let (path, expires, kid, sig) = parts(&url);
        assert_eq!(
            signer.verify("GET", &path, expires, &kid, &sig, 999),
            SignatureCheck::Valid
        );
        assert_eq!(
            signer.verify("GET", &path, expires, &kid, &sig, 1001),
            SignatureCheck::Expired
        );
        assert_eq!(
            signer.verify("PUT", &path, expires, &kid, &sig, 999),
            SignatureCheck::Invalid
        );
        assert_eq!(
            signer.verify(
                "GET",
                "/artifacts/sessions/s2/conversation.wav",
                expires,
                &kid,
                &sig,
                999
            ),
            SignatureCheck::Invalid
        );
        assert_eq!(
            signer.verify("GET", &path, expires + 1, &kid, &sig, 999),
            SignatureCheck::Invalid
        );
        assert_eq!(
            signer.verify("GET", &path, expires, "k2", &sig, 999),
            SignatureCheck::Invalid
        );
        assert_eq!(
            signer.verify("GET", &path, expires, &kid, "zz", 999),
            SignatureCheck::Invalid
        );
    }
}
