//! The admission script against a real Redis, without the services around it.

use lobby_rooms::admission::{Admission, Scope, Semaphores, SlotRequest};
use lobby_tests::redis_server::RedisServer;

fn slot<'a>(session_id: &'a str, agent_id: &'a str) -> SlotRequest<'a> {
    SlotRequest {
        session_id,
        account_id: "acct_t",
        agent_id,
    }
}

#[tokio::test]
async fn admits_up_to_the_limit_and_refuses_with_the_earliest_lease() {
    let dir = lobby_tests::scratch_dir("admission");
    let redis = RedisServer::start(&dir);
    let sem = Semaphores::new(redis.connection().await);
    assert!(matches!(
        sem.admit(slot("s1", "a"), 60_000, 2, 0).await.unwrap(),
        Admission::Admitted { .. }
    ));
    assert!(matches!(
        sem.admit(slot("s2", "a"), 30_000, 2, 0).await.unwrap(),
        Admission::Admitted { .. }
    ));
    let Admission::Refused(r) = sem.admit(slot("s3", "a"), 60_000, 2, 0).await.unwrap() else {
        panic!("third start must be refused");
    };
    assert_eq!((r.scope, r.limit, r.in_use), (Scope::Account, 2, 2));
    // The earliest lease is s2's 30 s one.
    assert!(
        (28_000..=30_000).contains(&r.retry_after_ms),
        "{}",
        r.retry_after_ms
    );
}

#[tokio::test]
async fn expired_leases_free_their_slots() {
    let dir = lobby_tests::scratch_dir("admission");
    let redis = RedisServer::start(&dir);
    let sem = Semaphores::new(redis.connection().await);
    assert!(matches!(
        sem.admit(slot("s1", "a"), 200, 1, 0).await.unwrap(),
        Admission::Admitted { .. }
    ));
    assert!(matches!(
        sem.admit(slot("s2", "a"), 200, 1, 0).await.unwrap(),
        Admission::Refused(_)
    ));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(sem.active_sessions("acct_t").await.unwrap(), 0);
    assert!(matches!(
        sem.admit(slot("s2", "a"), 200, 1, 0).await.unwrap(),
        Admission::Admitted { .. }
    ));
}

#[tokio::test]
async fn agent_limit_is_separate_from_the_account_limit() {
    let dir = lobby_tests::scratch_dir("admission");
    let redis = RedisServer::start(&dir);
    let sem = Semaphores::new(redis.connection().await);
    assert!(matches!(
        sem.admit(slot("s1", "a"), 60_000, 5, 1).await.unwrap(),
        Admission::Admitted { .. }
    ));
    let Admission::Refused(r) = sem.admit(slot("s2", "a"), 60_000, 5, 1).await.unwrap() else {
        panic!("agent a is full");
    };
    assert_eq!((r.scope, r.limit), (Scope::Agent, 1));
    assert!(matches!(
        sem.admit(slot("s3", "b"), 60_000, 5, 1).await.unwrap(),
        Admission::Admitted { .. }
    ));
}

#[tokio::test]
async fn readmitting_a_holder_renews_and_release_is_idempotent() {
    let dir = lobby_tests::scratch_dir("admission");
    let redis = RedisServer::start(&dir);
    let sem = Semaphores::new(redis.connection().await);
    assert!(matches!(
        sem.admit(slot("s1", "a"), 60_000, 1, 1).await.unwrap(),
        Admission::Admitted { .. }
    ));
    // A retried allocate of the same session is not a second session.
    assert!(matches!(
        sem.admit(slot("s1", "a"), 60_000, 1, 1).await.unwrap(),
        Admission::Admitted { .. }
    ));
    assert_eq!(sem.active_sessions("acct_t").await.unwrap(), 1);
    assert!(sem.release(slot("s1", "a")).await.unwrap());
    assert!(!sem.release(slot("s1", "a")).await.unwrap());
    assert_eq!(sem.active_sessions("acct_t").await.unwrap(), 0);
}
