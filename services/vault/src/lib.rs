//! Personal data sealed at rest (user names, emails, messages, client user
//! references, event payloads).
//!
//! Envelope encryption: each account has its own AES-256-GCM data keys and
//! an index key, stored in Redis wrapped by a master key from configuration
//! (`LOBBY_MASTER_KEYS`), so Redis alone reads nothing. Every sealed value
//! names the data key that sealed it, so keys rotate without rewriting
//! data. Search over sealed fields goes through keyed blind indexes
//! (HMAC-SHA256 of normalised trigrams and whole values under the account's
//! index key); what they reveal is written in the README.

mod account;
mod cipher;
mod error;
mod master;
mod store;

pub use account::{normalise, sealed_key_id, trigrams, AccountKeys};
pub use error::VaultError;
pub use master::{MasterKeys, SETTING as MASTER_KEYS_SETTING};
pub use store::KeyVault;
