//! Master keys, from configuration: they wrap the accounts' data keys and
//! never touch data. The first listed is current (new wraps use it); the
//! others stay to unwrap what they wrapped until a rewrap moves it on.

use crate::{cipher, error::VaultError};
use base64::{engine::general_purpose::STANDARD, Engine};
use lobby_kit::{ConfigError, Settings};
use std::collections::HashMap;

pub const SETTING: &str = "LOBBY_MASTER_KEYS";

#[derive(Clone)]
pub struct MasterKeys {
    current: String,
    keys: HashMap<String, [u8; cipher::KEY_BYTES]>,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Ids only: the keys never reach a log.
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("MasterKeys")
            .field("current", &self.current)
            .field("ids", &ids)
            .finish()
    }
}

impl MasterKeys {
    /// `LOBBY_MASTER_KEYS`: `id:base64key[,id:base64key…]`, current first;
    /// each key 32 bytes. Unset, the development key (which production
    /// refuses).
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let raw = s.string_or(SETTING, lobby_kit::production::dev_default(SETTING));
        Self::parse(&raw).map_err(|reason| ConfigError::Invalid {
            setting: SETTING.into(),
            reason,
        })
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut current = None;
        let mut keys = HashMap::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, key) = entry
                .split_once(':')
                .ok_or_else(|| "each entry is id:base64key".to_owned())?;
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(format!(
                    "master key id {id:?} must be letters, digits, '_' or '-'"
                ));
            }
            let bytes = STANDARD
                .decode(key.trim())
                .map_err(|_| format!("master key {id:?} is not base64"))?;
            let key: [u8; cipher::KEY_BYTES] = bytes
                .try_into()
                .map_err(|_| format!("master key {id:?} must be 32 bytes"))?;
            if keys.insert(id.to_owned(), key).is_some() {
                return Err(format!("master key {id:?} is listed twice"));
            }
            current.get_or_insert_with(|| id.to_owned());
        }
        let current = current.ok_or_else(|| "at least one master key is required".to_owned())?;
        Ok(Self { current, keys })
    }

    pub fn current_id(&self) -> &str {
        &self.current
    }

    fn aad(account_id: &str, key_id: &str) -> Vec<u8> {
        format!("lobby-data-key|{account_id}|{key_id}").into_bytes()
    }

    /// `<master id>.<sealed key>`, bound to the account and the key's id.
    pub fn wrap(&self, account_id: &str, key_id: &str, key: &[u8; cipher::KEY_BYTES]) -> String {
        let master = &self.keys[&self.current];
        format!(
            "{}.{}",
            self.current,
            cipher::encrypt(master, key, &Self::aad(account_id, key_id))
        )
    }

    /// The key, and whether it was wrapped by a master key other than the
    /// current one (a rewrap should move it).
    pub fn unwrap(
        &self,
        account_id: &str,
        key_id: &str,
        wrapped: &str,
    ) -> Result<([u8; cipher::KEY_BYTES], bool), VaultError> {
        let (master_id, sealed) = wrapped
            .split_once('.')
            .ok_or(VaultError::Tampered("wrapped key format"))?;
        let master = self
            .keys
            .get(master_id)
            .ok_or_else(|| VaultError::UnknownMasterKey(master_id.to_owned()))?;
        let bytes = cipher::decrypt(master, sealed, &Self::aad(account_id, key_id))?;
        let key = bytes
            .try_into()
            .map_err(|_| VaultError::Tampered("wrapped key length"))?;
        Ok((key, master_id != self.current))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    #[test]
    fn the_first_key_is_current_and_older_ones_still_unwrap() {
        let old = MasterKeys::parse(&format!("m1:{}", key(1))).expect("parses");
        let wrapped = old.wrap("acct", "dk1", &[7; 32]);
        assert!(wrapped.starts_with("m1."));
        let both = MasterKeys::parse(&format!("m2:{}, m1:{}", key(2), key(1))).expect("parses");
        assert_eq!(both.current_id(), "m2");
        assert_eq!(
            both.unwrap("acct", "dk1", &wrapped).expect("unwraps"),
            ([7; 32], true)
        );
        let rewrapped = both.wrap("acct", "dk1", &[7; 32]);
        assert_eq!(
            both.unwrap("acct", "dk1", &rewrapped).expect("unwraps"),
            ([7; 32], false)
        );
        // Bound to its account and key id.
        assert!(both.unwrap("other", "dk1", &rewrapped).is_err());
        assert!(both.unwrap("acct", "dk2", &rewrapped).is_err());
        let new_only = MasterKeys::parse(&format!("m2:{}", key(2))).expect("parses");
        assert!(matches!(
            new_only.unwrap("acct", "dk1", &wrapped),
            Err(VaultError::UnknownMasterKey(_))
        ));
    }

    #[test]
    fn bad_configurations_are_named() {
        for bad in [
            "",
            "m1",
            "m1:notbase64!",
            &format!("m1:{}", STANDARD.encode([1; 16])),
            &format!("m.1:{}", key(1)),
            &format!("m1:{},m1:{}", key(1), key(2)),
        ] {
            assert!(MasterKeys::parse(bad).is_err(), "{bad:?} accepted");
        }
        let keys = MasterKeys::parse(&format!("m1:{}", key(1))).expect("parses");
        assert!(
            !format!("{keys:?}").contains(&key(1)),
            "a key reached Debug"
        );
    }
}
