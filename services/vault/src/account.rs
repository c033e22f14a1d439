//! One account's keys, unwrapped: its data keys (the current one seals, all
//! of them open) and its index key (blind indexes).
//!
//! A sealed value is `v1.<data key id>.<nonce‖ciphertext‖tag>`: the key id
//! travels with it, so a rotation leaves older values readable. Its
//! associated data is the account, the record and the field, so a sealed
//! value copied to another record or field does not open.

use crate::{cipher, error::VaultError};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::{BTreeSet, HashMap};

const VERSION: &str = "v1";

pub struct AccountKeys {
    pub(crate) account_id: String,
    pub(crate) current: String,
    pub(crate) data_keys: HashMap<String, [u8; cipher::KEY_BYTES]>,
    pub(crate) index_key: [u8; cipher::KEY_BYTES],
}

impl std::fmt::Debug for AccountKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountKeys")
            .field("account_id", &self.account_id)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl AccountKeys {
    fn aad(&self, record: &str, field: &str) -> Vec<u8> {
        format!("{VERSION}|{}|{record}|{field}", self.account_id).into_bytes()
    }

    /// The id of the data key that seals new values.
    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    pub fn seal(&self, record: &str, field: &str, plaintext: &[u8]) -> String {
        let key = &self.data_keys[&self.current];
        format!(
            "{VERSION}.{}.{}",
            self.current,
            cipher::encrypt(key, plaintext, &self.aad(record, field))
        )
    }

    pub fn seal_str(&self, record: &str, field: &str, plaintext: &str) -> String {
        self.seal(record, field, plaintext.as_bytes())
    }

    pub fn open(&self, record: &str, field: &str, sealed: &str) -> Result<Vec<u8>, VaultError> {
        let (key_id, body) = split_sealed(sealed)?;
        let key = self
            .data_keys
            .get(key_id)
            .ok_or_else(|| VaultError::UnknownDataKey(key_id.to_owned()))?;
        cipher::decrypt(key, body, &self.aad(record, field))
    }

    pub fn open_str(&self, record: &str, field: &str, sealed: &str) -> Result<String, VaultError> {
        String::from_utf8(self.open(record, field, sealed)?)
            .map_err(|_| VaultError::Tampered("not UTF-8"))
    }

    fn token(&self, kind: &str, field: &str, text: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.index_key)
            .expect("HMAC takes any key length");
        mac.update(format!("{kind}|{field}|{text}").as_bytes());
        // 64 bits: collisions only add candidates, which are decrypted and
        // checked; a shorter token says less about the value.
        hex::encode(&mac.finalize().into_bytes()[..8])
    }

    /// The blind-index tokens of `value`: one per distinct trigram of its
    /// normalised form, so a query matches any substring of 3 characters
    /// or more. Shorter values have none (they match exactly only).
    pub fn trigram_tokens(&self, field: &str, value: &str) -> BTreeSet<String> {
        trigrams(&normalise(value))
            .iter()
            .map(|t| self.token("tri", field, t))
            .collect()
    }

    /// The blind-index token of the whole normalised value.
    pub fn exact_token(&self, field: &str, value: &str) -> String {
        self.token("eq", field, &normalise(value))
    }
}

/// The data key id a sealed value names.
pub fn sealed_key_id(sealed: &str) -> Option<&str> {
    split_sealed(sealed).ok().map(|(id, _)| id)
}

fn split_sealed(sealed: &str) -> Result<(&str, &str), VaultError> {
    let mut parts = sealed.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(VERSION), Some(id), Some(body)) if !id.is_empty() => Ok((id, body)),
        _ => Err(VaultError::Tampered("not a sealed value")),
    }
}

/// Case-folded and trimmed: search is case-insensitive.
pub fn normalise(value: &str) -> String {
    value.trim().to_lowercase()
}

/// Every distinct run of 3 characters.
pub fn trigrams(normalised: &str) -> BTreeSet<String> {
    let chars: Vec<char> = normalised.chars().collect();
    chars.windows(3).map(|w| w.iter().collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn keys(current: &str) -> AccountKeys {
        AccountKeys {
            account_id: "acct_a".into(),
            current: current.into(),
            data_keys: [("dk1".to_owned(), [1; 32]), ("dk2".to_owned(), [2; 32])]
                .into_iter()
                .collect(),
            index_key: [9; 32],
        }
    }

    #[test]
    fn a_value_sealed_under_an_older_key_still_opens() {
        let sealed = keys("dk1").seal_str("s1", "userName", "Alice");
        assert!(sealed.starts_with("v1.dk1."));
        let rotated = keys("dk2");
        assert_eq!(
            rotated.open_str("s1", "userName", &sealed).expect("opens"),
            "Alice"
        );
        assert!(rotated
            .seal_str("s1", "userName", "Bob")
            .starts_with("v1.dk2."));
    }

    #[test]
    fn a_sealed_value_is_bound_to_its_account_record_and_field() {
        let k = keys("dk1");
        let sealed = k.seal_str("s1", "userName", "Alice");
        assert!(k.open("s2", "userName", &sealed).is_err());
        assert!(k.open("s1", "userEmail", &sealed).is_err());
        let other = AccountKeys {
            account_id: "acct_b".into(),
            ..keys("dk1")
        };
        assert!(other.open("s1", "userName", &sealed).is_err());
        assert!(matches!(
            k.open("s1", "userName", "v1.dk9.AAAA"),
            Err(VaultError::UnknownDataKey(_))
        ));
        assert!(
            k.open("s1", "userName", "Alice").is_err(),
            "plaintext is not a sealed value"
        );
    }

    #[test]
    fn blind_tokens_match_substrings_case_insensitively_and_say_nothing_readable() {
        let k = keys("dk1");
        let stored = k.trigram_tokens("userName", "Alice Liddell");
        let query = k.trigram_tokens("userName", "LIDD");
        assert!(!query.is_empty() && query.is_subset(&stored));
        assert!(!k.trigram_tokens("userName", "bob").is_subset(&stored));
        // Per field: the same text in another field has other tokens.
        assert!(k.trigram_tokens("userEmail", "lidd").is_disjoint(&stored));
        assert!(k.trigram_tokens("userName", "al").is_empty());
        assert_eq!(
            k.exact_token("userName", " AL "),
            k.exact_token("userName", "al")
        );
        for t in &stored {
            assert!(!t.contains("ali") && t.len() == 16, "{t}");
        }
        // Another index key, other tokens.
        let other = AccountKeys {
            index_key: [8; 32],
            ..keys("dk1")
        };
        assert!(other
            .trigram_tokens("userName", "Alice Liddell")
            .is_disjoint(&stored));
    }
}
