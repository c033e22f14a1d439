//! Session ids in each contract's form: UUIDs (seeds 000, 001) and
//! `sess_` + 24 Crockford base32 characters as in seed 002's example (time
//! first, ULID-style, so ids sort by creation; 63 random bits after it).
//! Both carry their account's bucket (`lobby_kit::keys::session_id_bucket`),
//! so the id → account lookup lives in the account's own slot.

use lobby_kit::keys::{account_bucket, sess_tail_in_bucket, uuid_in_bucket, CROCKFORD};

pub fn uuid(account_id: &str) -> String {
    uuid_in_bucket(account_bucket(account_id))
}

pub fn sess(now_ms: i64, account_id: &str) -> String {
    let mut out = String::with_capacity(29);
    out.push_str("sess_");
    let ms = u64::try_from(now_ms).unwrap_or(0);
    // 50 bits of time in 10 characters, 60 random bits in 12, then the
    // bucket with 3 more random bits in 2.
    for i in (0..10).rev() {
        out.push(CROCKFORD[((ms >> (i * 5)) & 31) as usize] as char);
    }
    let random: u128 = rand::random();
    for i in 0..12 {
        out.push(CROCKFORD[((random >> (i * 5)) & 31) as usize] as char);
    }
    out.extend(sess_tail_in_bucket(
        account_bucket(account_id),
        (random >> 60) as u32,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lobby_kit::keys::session_id_bucket;

    #[test]
    fn sess_ids_look_like_the_seed_and_sort_by_time() {
        let a = sess(1_700_000_000_000, "acct_a");
        let b = sess(1_700_000_000_001, "acct_a");
        assert_eq!(a.len(), "sess_01H3Z8G9YR3K2N5M6P7Q8W4T".len());
        assert!(a.starts_with("sess_") && a[5..].bytes().all(|c| CROCKFORD.contains(&c)));
        assert!(a[..15] < b[..15]);
        assert_ne!(sess(5, "acct_a"), sess(5, "acct_a"));
    }

    #[test]
    fn ids_name_their_accounts_bucket() {
        for account in ["acct_a", "acct_b", "acct_demo"] {
            let bucket = account_bucket(account);
            assert_eq!(session_id_bucket(&uuid(account)), bucket);
            assert_eq!(session_id_bucket(&sess(1_700_000_000_000, account)), bucket);
        }
    }
}
