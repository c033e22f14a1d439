//! Signed download URLs: HMAC-SHA256 over method, path, expiry and key id, so
//! a URL cannot be replayed for another object, method or a later time, and
//! signing keys can rotate (the key id says which one signed).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct UrlSigner {
    /// The first signs; every one verifies (earlier keys stay valid while
    /// URLs they signed can be unexpired, so a rotation breaks no link).
    keys: Vec<(String, Vec<u8>)>,
    base_url: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SignatureCheck {
    Valid,
    Expired,
    Invalid,
}

/// The route the gateway serves signed artifact URLs on.
pub const ROUTE_PREFIX: &str = "/artifacts/";

impl UrlSigner {
    /// `keys`: (key id, secret), the current one first.
    pub fn new(keys: Vec<(String, Vec<u8>)>, base_url: String) -> Self {
        Self {
            keys,
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    fn mac(secret: &[u8], kid: &str, method: &str, path: &str, expires: i64) -> HmacSha256 {
        // `new_from_slice` accepts keys of any length for HMAC.
        let mut mac = HmacSha256::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(format!("{method}\n{path}\n{expires}\n{kid}").as_bytes());
        mac
    }

    /// A `method` URL for the object at `key`, valid until `expires` (Unix seconds).
    pub fn sign(&self, method: &str, key: &str, expires: i64) -> String {
        let (kid, secret) = &self.keys[0];
        let path = format!("{ROUTE_PREFIX}{key}");
        let sig = hex::encode(
            Self::mac(secret, kid, method, &path, expires)
                .finalize()
                .into_bytes(),
        );
        format!(
            "{}{path}?expires={expires}&kid={kid}&sig={sig}",
            self.base_url
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
        let Some((_, secret)) = self.keys.iter().find(|(id, _)| id == kid) else {
            return SignatureCheck::Invalid;
        };
        if Self::mac(secret, kid, method, path, expires)
            .verify_slice(&sig)
            .is_err()
        {
            return SignatureCheck::Invalid;
        }
        if now > expires {
            return SignatureCheck::Expired;
        }
        SignatureCheck::Valid
    }

    /// Checks a request to a signed URL: `query` is its raw query string.
    pub fn verify_request(
        &self,
        method: &str,
        path: &str,
        query: &str,
        now: i64,
    ) -> SignatureCheck {
        let get = |k: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
        };
        let (Some(expires), Some(kid), Some(sig)) = (
            get("expires").and_then(|v| v.parse::<i64>().ok()),
            get("kid"),
            get("sig"),
        ) else {
            return SignatureCheck::Invalid;
        };
        self.verify(method, path, expires, kid, sig, now)
    }

    /// A token naming what an upload may write, valid until `expires`:
    /// `<payload hex>.<expires>.<kid>.<mac hex>`. Any replica can check it.
    pub fn seal_token(&self, payload: &str, expires: i64) -> String {
        let (kid, secret) = &self.keys[0];
        let payload_hex = hex::encode(payload);
        let mac = Self::mac(secret, kid, "UPLOAD", &payload_hex, expires);
        format!(
            "{payload_hex}.{expires}.{kid}.{}",
            hex::encode(mac.finalize().into_bytes())
        )
    }

    /// The payload of a token `seal_token` made, if it is intact and unexpired.
    pub fn open_token(&self, token: &str, now: i64) -> Option<String> {
        let [payload_hex, expires, kid, sig] = crate::split_exact(token, '.')?;
        let expires = expires.parse().ok()?;
        (self.verify("UPLOAD", payload_hex, expires, kid, sig, now) == SignatureCheck::Valid)
            .then(|| String::from_utf8(hex::decode(payload_hex).ok()?).ok())
            .flatten()
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
        let signer = UrlSigner::new(vec![("k1".into(), b"secret".to_vec())], "http://x".into());
        let url = signer.sign("GET", "sessions/s1/conversation.wav", 1000);
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
        let query = url.split_once('?').unwrap().1;
        assert_eq!(
            signer.verify_request("GET", &path, query, 999),
            SignatureCheck::Valid
        );
        assert_eq!(
            signer.verify_request("GET", &path, "expires=1000&kid=k1", 999),
            SignatureCheck::Invalid
        );
    }

    #[test]
    fn a_rotated_key_still_verifies_what_it_signed_and_unknown_kids_fail() {
        let old = UrlSigner::new(vec![("k1".into(), b"one".to_vec())], "http://x".into());
        let url = old.sign("GET", "k", 1000);
        let (path, expires, kid, sig) = parts(&url);
        let rotated = UrlSigner::new(
            vec![
                ("k2".into(), b"two".to_vec()),
                ("k1".into(), b"one".to_vec()),
            ],
            "http://x".into(),
        );
        assert_eq!(
            rotated.verify("GET", &path, expires, &kid, &sig, 999),
            SignatureCheck::Valid
        );
        let dropped = UrlSigner::new(vec![("k2".into(), b"two".to_vec())], "http://x".into());
        assert_eq!(
            dropped.verify("GET", &path, expires, &kid, &sig, 999),
            SignatureCheck::Invalid
        );
    }

    #[test]
    fn upload_tokens_open_only_intact_and_in_time() {
        let signer = UrlSigner::new(vec![("k1".into(), b"secret".to_vec())], "http://x".into());
        let token = signer.seal_token("acct_1|s1|2|u1", 1000);
        assert_eq!(
            signer.open_token(&token, 999).as_deref(),
            Some("acct_1|s1|2|u1")
        );
        assert_eq!(signer.open_token(&token, 1001), None);
        let forged = token.replacen(&hex::encode("acct_1"), &hex::encode("acct_2"), 1);
        assert_eq!(signer.open_token(&forged, 999), None);
        assert_eq!(signer.open_token("a.b.c", 999), None);
    }
}
