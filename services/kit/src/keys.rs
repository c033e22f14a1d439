//! How Redis keys are spread over a Redis Cluster: the hash tags, no more.
//!
//! Every key an account's atomic scripts touch carries its account's bucket
//! tag `{a<N>}`, so each script touches one slot; the per-bucket indexes the
//! sweepers walk carry the same tag, so a start can write its record, its
//! slots and its index entry in one script. The bucket count is fixed: it
//! decides where data lives, so changing it moves every account.

/// How many buckets accounts are spread over (and the sweepers walk).
pub const BUCKETS: u32 = 128;

/// The bucket an account's keys live in.
pub fn account_bucket(account_id: &str) -> u32 {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in account_id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % BUCKETS
}

/// The hash tag of bucket `bucket`: `{a17}`.
pub fn bucket_tag(bucket: u32) -> String {
    format!("{{a{bucket}}}")
}

/// The hash tag of an account's keys.
pub fn account_tag(account_id: &str) -> String {
    bucket_tag(account_bucket(account_id))
}

/// An account's admission settings: written by auth whenever the account or
/// one of its agents changes, read by the session service's admission
/// script (so limits and the publish state are exact, whatever is cached).
/// Fields: `max_concurrency`, `quota_seconds`, `account:v` (the account
/// record's version), and per agent `agent:<id>` = "published,max_concurrency,
/// max_session_seconds" with `agent:<id>:v`.
pub fn account_settings(account_id: &str) -> String {
    format!("{}:{account_id}:settings", account_tag(account_id))
}

/// Uses taken of each of the account's links (link id → count): written by
/// the session service's admission, read by auth to show a link.
pub fn link_uses(account_id: &str) -> String {
    format!("{}:{account_id}:link_uses", account_tag(account_id))
}

/// Session ids that Lobby mints carry their account's bucket, so a session
/// id alone finds its id → account lookup in the account's own slot: a
/// start writes it in its one admission script, and on a Redis Cluster a
/// start or an end touches only its account's master (while another master
/// fails over, the accounts elsewhere are served throughout).
///
/// A UUID (seeds 000 and 001) keeps it in the low 7 bits of its last byte
/// (still a random version-4 UUID, with 115 random bits).
pub fn uuid_in_bucket(bucket: u32) -> String {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[15] = (bytes[15] & 0x80) | (bucket % BUCKETS) as u8;
    uuid::Uuid::from_bytes(bytes).to_string()
}

/// The bucket a session id names (see [`uuid_in_bucket`]): the one a
/// UUID's last byte or a `sess_` id's last two characters carry, and for
/// any other id (one a caller chose) the bucket of the id itself. Lobby's
/// own ids name their account's bucket; another id names some bucket, the
/// same for every reader and writer.
pub fn session_id_bucket(session_id: &str) -> u32 {
    let bytes = session_id.as_bytes();
    let is_uuid = bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    if is_uuid {
        let last = u32::from_str_radix(&session_id[34..], 16).unwrap_or(0);
        return last % BUCKETS;
    }
    if let Some(value) = session_id
        .strip_prefix("sess_")
        .filter(|rest| rest.len() == 24)
        .and_then(|rest| {
            let tail = &rest.as_bytes()[22..];
            Some(crockford_value(tail[0])? * 32 + crockford_value(tail[1])?)
        })
    {
        return value % BUCKETS;
    }
    account_bucket(session_id)
}

/// Crockford base32, as `sess_` ids are written.
pub const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn crockford_value(c: u8) -> Option<u32> {
    CROCKFORD.iter().position(|&x| x == c).map(|p| p as u32)
}

/// The two last characters of a `sess_` id naming `bucket` (10 bits: three
/// random, seven the bucket).
pub fn sess_tail_in_bucket(bucket: u32, random: u32) -> [char; 2] {
    let value = ((random & 0b111) << 7) | (bucket % BUCKETS);
    [
        CROCKFORD[(value >> 5) as usize & 31] as char,
        CROCKFORD[value as usize & 31] as char,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_session_ids_name_their_bucket() {
        for bucket in [0, 1, 17, 127] {
            let id = uuid_in_bucket(bucket);
            let parsed = uuid::Uuid::parse_str(&id).expect("a UUID");
            assert_eq!(parsed.get_version_num(), 4, "{id}");
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert_eq!(session_id_bucket(&id), bucket, "{id}");
            assert_ne!(uuid_in_bucket(bucket), id);
            let tail: String = sess_tail_in_bucket(bucket, 5).iter().collect();
            let sess = format!("sess_{}{tail}", "0".repeat(22));
            assert_eq!(session_id_bucket(&sess), bucket, "{sess}");
        }
        // Any other id has a bucket too, the same every time.
        assert_eq!(
            session_id_bucket("my-record-1"),
            account_bucket("my-record-1")
        );
        assert_eq!(
            session_id_bucket("sess_short"),
            account_bucket("sess_short")
        );
    }

    #[test]
    fn buckets_are_stable_and_in_range() {
        // Pinned: a change would move every account's data.
        assert_eq!(account_tag("acct_demo"), account_tag("acct_demo"));
        assert_eq!(account_bucket(""), 0x811c_9dc5 % BUCKETS);
        for i in 0..1000 {
            assert!(account_bucket(&format!("acct_{i}")) < BUCKETS);
        }
    }

    #[test]
    fn accounts_spread_over_the_buckets() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..2000 {
            seen.insert(account_bucket(&format!("acct_{i:032x}")));
        }
        assert!(seen.len() > BUCKETS as usize * 9 / 10, "{}", seen.len());
    }
}
