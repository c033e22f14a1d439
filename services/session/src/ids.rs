//! Session ids in each contract's form: UUIDs (seeds 000, 001) and
//! `sess_` + 24 Crockford base32 characters as in seed 002's example (time
//! first, ULID-style, so ids sort by creation; 70 random bits after it).

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn sess(now_ms: i64) -> String {
    let mut out = String::with_capacity(29);
    out.push_str("sess_");
    let ms = u64::try_from(now_ms).unwrap_or(0);
    // 50 bits of time in 10 characters, then 70 random bits in 14.
    for i in (0..10).rev() {
        out.push(CROCKFORD[((ms >> (i * 5)) & 31) as usize] as char);
    }
    let random: u128 = rand::random();
    for i in 0..14 {
        out.push(CROCKFORD[((random >> (i * 5)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sess_ids_look_like_the_seed_and_sort_by_time() {
        let a = sess(1_700_000_000_000);
        let b = sess(1_700_000_000_001);
        assert_eq!(a.len(), "sess_01H3Z8G9YR3K2N5M6P7Q8W4T".len());
        assert!(a.starts_with("sess_") && a[5..].bytes().all(|c| CROCKFORD.contains(&c)));
        assert!(a[..15] < b[..15]);
        assert_ne!(sess(5), sess(5));
    }
}
