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

#[cfg(test)]
mod tests {
    use super::*;

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
