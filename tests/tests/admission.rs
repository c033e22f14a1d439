//! The admission script against a real Redis, without the services around it.

use lobby_rooms::admission::{Admission, Limits, Scope, Semaphores, SlotRequest};
use lobby_tests::redis_server::RedisServer;

const ACCOUNT: &str = "acct_t";

/// Limits with a quota large enough never to refuse.
fn limits(wanted_seconds: u64, account_limit: u32, agent_limit: u32) -> Limits {
    Limits {
        wanted_seconds,
        account_limit,
        agent_limit,
        quota_seconds: 1_000_000,
    }
}

fn slot<'a>(session_id: &'a str, agent_id: &'a str) -> SlotRequest<'a> {
    SlotRequest {
        session_id,
        account_id: ACCOUNT,
        agent_id,
    }
}

async fn semaphores() -> (RedisServer, Semaphores) {
    let redis = RedisServer::start(&lobby_tests::scratch_dir("admission"));
    let sem = Semaphores::new(redis.connection().await);
    (redis, sem)
}

fn admitted(a: Admission) -> u64 {
    match a {
        Admission::Admitted {
            reserved_seconds, ..
        } => reserved_seconds,
        Admission::Refused(r) => panic!("refused: {r:?}"),
    }
}

#[tokio::test]
async fn admits_up_to_the_limit_and_refuses_with_the_earliest_lease() {
    let (_redis, sem) = semaphores().await;
    admitted(sem.admit(slot("s1", "a"), limits(60, 2, 0)).await.unwrap());
    admitted(sem.admit(slot("s2", "a"), limits(30, 2, 0)).await.unwrap());
    let Admission::Refused(r) = sem.admit(slot("s3", "a"), limits(60, 2, 0)).await.unwrap() else {
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
async fn expired_leases_free_their_slots_and_bill_their_reservation() {
    let (_redis, sem) = semaphores().await;
    admitted(sem.admit(slot("s1", "a"), limits(1, 1, 0)).await.unwrap());
    assert!(matches!(
        sem.admit(slot("s2", "a"), limits(1, 1, 0)).await.unwrap(),
        Admission::Refused(_)
    ));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(sem.usage(ACCOUNT).await.unwrap().active_sessions, 0);
    admitted(sem.admit(slot("s2", "a"), limits(1, 1, 0)).await.unwrap());
    // s1 never released: its lease ran out, so its whole reservation is billed.
    let usage = sem.usage(ACCOUNT).await.unwrap();
    assert_eq!((usage.used_seconds, usage.reserved_seconds), (1, 1));
}

#[tokio::test]
async fn agent_limit_is_separate_from_the_account_limit() {
    let (_redis, sem) = semaphores().await;
    admitted(sem.admit(slot("s1", "a"), limits(60, 5, 1)).await.unwrap());
    let Admission::Refused(r) = sem.admit(slot("s2", "a"), limits(60, 5, 1)).await.unwrap() else {
        panic!("agent a is full");
    };
    assert_eq!((r.scope, r.limit), (Scope::Agent, 1));
    admitted(sem.admit(slot("s3", "b"), limits(60, 5, 1)).await.unwrap());
}

#[tokio::test]
async fn readmitting_a_holder_keeps_its_slot_and_release_is_idempotent() {
    let (_redis, sem) = semaphores().await;
    admitted(sem.admit(slot("s1", "a"), limits(60, 1, 1)).await.unwrap());
    // A retried allocate of the same session is not a second session.
    assert_eq!(
        admitted(sem.admit(slot("s1", "a"), limits(60, 1, 1)).await.unwrap()),
        60
    );
    let usage = sem.usage(ACCOUNT).await.unwrap();
    assert_eq!((usage.active_sessions, usage.reserved_seconds), (1, 60));
    assert!(sem.release(slot("s1", "a"), 5).await.unwrap());
    assert!(!sem.release(slot("s1", "a"), 5).await.unwrap());
    let usage = sem.usage(ACCOUNT).await.unwrap();
    assert_eq!(
        (
            usage.active_sessions,
            usage.used_seconds,
            usage.reserved_seconds
        ),
        (0, 5, 0),
        "billed once"
    );
}

#[tokio::test]
async fn minutes_are_reserved_up_to_what_is_left_and_settled_on_release() {
    let (_redis, sem) = semaphores().await;
    let quota = |wanted| Limits {
        wanted_seconds: wanted,
        account_limit: 10,
        agent_limit: 0,
        quota_seconds: 100,
    };
    assert_eq!(
        admitted(sem.admit(slot("s1", "a"), quota(60)).await.unwrap()),
        60
    );
    assert_eq!(
        admitted(sem.admit(slot("s2", "a"), quota(60)).await.unwrap()),
        40,
        "only 40 s were left"
    );
    let Admission::Refused(r) = sem.admit(slot("s3", "a"), quota(60)).await.unwrap() else {
        panic!("no minutes left");
    };
    assert_eq!((r.scope, r.limit, r.in_use), (Scope::Minutes, 100, 100));
    assert_eq!(
        sem.usage(ACCOUNT).await.unwrap().active_sessions,
        2,
        "a refusal takes no slot"
    );

    // s1 ran 10 s of its 60: 50 s come back. Billing never exceeds the reservation.
    sem.release(slot("s1", "a"), 10).await.unwrap();
    sem.release(slot("s2", "a"), 999).await.unwrap();
    let usage = sem.usage(ACCOUNT).await.unwrap();
    assert_eq!((usage.used_seconds, usage.reserved_seconds), (50, 0));
    assert_eq!(
        admitted(sem.admit(slot("s3", "a"), quota(60)).await.unwrap()),
        50
    );
}
