//! AES-256-GCM with a random 96-bit nonce per value, the nonce stored in
//! front of the ciphertext. The associated data binds a value to where it
//! belongs (account, record, field), so a ciphertext copied elsewhere does
//! not open.

use crate::error::VaultError;
use aes_gcm::{
    aead::{Aead, KeyInit, Payload},
    Aes256Gcm, Key, Nonce,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine};

pub const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;

/// 32 random bytes: a data key, an index key.
pub fn random_key() -> [u8; KEY_BYTES] {
    rand::random()
}

/// `nonce || ciphertext || tag`, base64url.
pub fn encrypt(key: &[u8; KEY_BYTES], plaintext: &[u8], aad: &[u8]) -> String {
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key));
    let nonce_bytes: [u8; NONCE_BYTES] = rand::random();
    let nonce = Nonce::from(nonce_bytes);
    let sealed = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        // Only a plaintext beyond GCM's 64 GiB bound fails.
        .unwrap_or_default();
    let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&sealed);
    B64.encode(out)
}

pub fn decrypt(key: &[u8; KEY_BYTES], encoded: &str, aad: &[u8]) -> Result<Vec<u8>, VaultError> {
    let raw = B64
        .decode(encoded)
        .map_err(|_| VaultError::Tampered("not base64"))?;
    if raw.len() < NONCE_BYTES + 16 {
        return Err(VaultError::Tampered("too short"));
    }
    let (nonce, sealed) = raw.split_at(NONCE_BYTES);
    let nonce = Nonce::try_from(nonce).map_err(|_| VaultError::Tampered("bad nonce"))?;
    Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key))
        .decrypt(&nonce, Payload { msg: sealed, aad })
        .map_err(|_| VaultError::Tampered("authentication failed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_opens_only_with_its_key_and_its_associated_data() {
        let key = random_key();
        let sealed = encrypt(&key, b"alice@example.com", b"acct|s1|userEmail");
        assert_eq!(
            decrypt(&key, &sealed, b"acct|s1|userEmail").expect("opens"),
            b"alice@example.com"
        );
        assert!(decrypt(&key, &sealed, b"acct|s2|userEmail").is_err());
        assert!(decrypt(&random_key(), &sealed, b"acct|s1|userEmail").is_err());
        // The same plaintext seals differently each time (random nonces).
        assert_ne!(
            sealed,
            encrypt(&key, b"alice@example.com", b"acct|s1|userEmail")
        );
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let key = random_key();
        let sealed = encrypt(&key, b"Alice", b"aad");
        let raw = B64.decode(&sealed).expect("b64");
        for i in 0..raw.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = raw.clone();
                bad[i] ^= bit;
                assert!(
                    decrypt(&key, &B64.encode(&bad), b"aad").is_err(),
                    "byte {i} bit {bit:#x} went unnoticed"
                );
            }
        }
        assert!(decrypt(&key, "!!", b"aad").is_err());
        assert!(decrypt(&key, "", b"aad").is_err());
    }
}
