//! The key vault on a real Redis (single and Cluster): replicas racing to
//! create an account's keys make one set, a rotated data key leaves old
//! values readable on every replica, a master-key rotation rewraps on first
//! use so the old master can be dropped, and Redis holds nothing readable.

use base64::{engine::general_purpose::STANDARD, Engine};
use futures::future::join_all;
use lobby_tests::{redis_server::RedisServer, scratch_dir};
use lobby_vault::{KeyVault, MasterKeys, VaultError};
use std::time::Duration;

fn master(spec: &[(&str, u8)]) -> MasterKeys {
    let raw: Vec<String> = spec
        .iter()
        .map(|(id, byte)| format!("{id}:{}", STANDARD.encode([*byte; 32])))
        .collect();
    MasterKeys::parse(&raw.join(",")).expect("master keys")
}

async fn vault(redis: &RedisServer, spec: &[(&str, u8)]) -> KeyVault {
    KeyVault::new(
        redis.connection().await,
        master(spec),
        Duration::from_secs(60),
    )
}

async fn replicas_share_one_key_set_and_rotations(redis: &RedisServer) {
    let replicas = [
        vault(redis, &[("m1", 1)]).await,
        vault(redis, &[("m1", 1)]).await,
    ];
    // 50 first uses at once, from both replicas: one set of keys.
    let loaded = join_all((0..50).map(|i| replicas[i % 2].load("acct_race")))
        .await
        .into_iter()
        .map(|k| k.expect("keys").current_key_id().to_owned())
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(loaded.len(), 1, "racing replicas made {loaded:?}");

    let a = replicas[0].keys("acct_race").await.expect("keys");
    let sealed_before = a.seal_str("s1", "userName", "Alice");
    let rotated = replicas[1]
        .rotate_data_key("acct_race")
        .await
        .expect("rotate");
    assert_ne!(&rotated, a.current_key_id());
    // Replica 0 still holds the old copy; it opens the new key's values by
    // looking the key up once.
    let b = replicas[1].keys("acct_race").await.expect("keys");
    let sealed_after = b.seal_str("s2", "userName", "Bob");
    assert!(sealed_after.contains(&rotated));
    assert_eq!(
        replicas[0]
            .open("acct_race", "s2", "userName", &sealed_after)
            .await
            .expect("new key opens on the other replica"),
        b"Bob"
    );
    assert_eq!(
        replicas[1]
            .open("acct_race", "s1", "userName", &sealed_before)
            .await
            .expect("old key still opens"),
        b"Alice"
    );

    // Tampering is an error, never garbage.
    let mut tampered = sealed_after.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("utf8");
    assert!(matches!(
        replicas[0]
            .open("acct_race", "s2", "userName", &tampered)
            .await,
        Err(VaultError::Tampered(_))
    ));
}

async fn a_master_rotation_rewraps_on_first_use(redis: &RedisServer) {
    let before = vault(redis, &[("m1", 1)]).await;
    let sealed = before.keys("acct_master").await.expect("keys").seal_str(
        "s1",
        "userEmail",
        "alice@example.com",
    );
    // New master current, old one still listed: everything opens, and the
    // first load moves the account's keys under the new master.
    let both = vault(redis, &[("m2", 2), ("m1", 1)]).await;
    assert_eq!(
        both.open("acct_master", "s1", "userEmail", &sealed)
            .await
            .expect("opens"),
        b"alice@example.com"
    );
    // The old master can go now.
    let only_new = vault(redis, &[("m2", 2)]).await;
    assert_eq!(
        only_new
            .open("acct_master", "s1", "userEmail", &sealed)
            .await
            .expect("opens without the old master"),
        b"alice@example.com"
    );
    // A master that never wrapped them opens nothing.
    let stranger = vault(redis, &[("m9", 9)]).await;
    assert!(matches!(
        stranger.load("acct_master").await,
        Err(VaultError::UnknownMasterKey(_))
    ));
}

async fn redis_holds_no_key_or_value_in_the_clear(redis: &RedisServer) {
    let v = vault(redis, &[("m1", 1)]).await;
    let keys = v.keys("acct_scan").await.expect("keys");
    let sealed = keys.seal_str("s1", "userName", "Zebediah Plaintext");
    let mut conn = redis.connection().await;
    let () = redis::AsyncCommands::set(&mut conn, "{a0}:scan-probe", &sealed)
        .await
        .expect("set");
    for (key, (dump, _)) in redis.snapshot().await {
        let text = String::from_utf8_lossy(&dump).to_lowercase();
        assert!(!text.contains("zebediah"), "{key} holds the plaintext");
        let master_b64 = STANDARD.encode([1u8; 32]).to_lowercase();
        assert!(
            !dump.windows(32).any(|w| w == [1u8; 32]) && !text.contains(&master_b64),
            "{key} holds a master key"
        );
    }
}

#[tokio::test]
async fn the_key_vault_on_a_single_redis() {
    let redis = RedisServer::start(&scratch_dir("vault-single"));
    replicas_share_one_key_set_and_rotations(&redis).await;
    a_master_rotation_rewraps_on_first_use(&redis).await;
    redis_holds_no_key_or_value_in_the_clear(&redis).await;
}

#[tokio::test]
async fn the_key_vault_on_a_redis_cluster() {
    let redis = RedisServer::start_cluster(&scratch_dir("vault-cluster"), 3, false);
    replicas_share_one_key_set_and_rotations(&redis).await;
    a_master_rotation_rewraps_on_first_use(&redis).await;
}
