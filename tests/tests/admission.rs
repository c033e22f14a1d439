//! The admission script against a real Redis, without the services around
//! it: limits, leases, minutes, link uses, and that a refusal writes nothing.

use futures::future::join_all;
use lobby_proto::session::Session;
use lobby_session::store::{Admission, AdmitMode, AdmitRequest, HoldRenewal, Scope, SessionStore};
use lobby_tests::redis_server::RedisServer;

const ACCOUNT: &str = "acct_t";

struct Start {
    account_limit: u32,
    agent_limit: u32,
    max_session_seconds: u32,
    quota_seconds: u64,
    lease_ms: i64,
    link: Option<(&'static str, u32)>,
}

impl Default for Start {
    fn default() -> Self {
        Self {
            account_limit: 2,
            agent_limit: 0,
            max_session_seconds: 60,
            quota_seconds: 1_000_000,
            lease_ms: 15_000,
            link: None,
        }
    }
}

async fn store() -> (RedisServer, SessionStore) {
    let redis = RedisServer::start(&lobby_tests::scratch_dir("admission"));
    let conn = redis.connection().await;
    (redis, SessionStore::new(conn))
}

async fn admit(store: &SessionStore, sid: &str, agent: &str, s: &Start) -> Admission {
    let record = Session {
        id: sid.to_owned(),
        account_id: ACCOUNT.to_owned(),
        agent_id: agent.to_owned(),
        ..Default::default()
    };
    admit_as(store, sid, agent, s, AdmitMode::Local(&record)).await
}

async fn admit_as(
    store: &SessionStore,
    sid: &str,
    agent: &str,
    s: &Start,
    mode: AdmitMode<'_>,
) -> Admission {
    store
        .admit(&AdmitRequest {
            session_id: sid,
            account_id: ACCOUNT,
            agent_id: agent,
            account_limit: s.account_limit,
            agent_limit: s.agent_limit,
            max_session_seconds: s.max_session_seconds,
            quota_seconds: s.quota_seconds,
            link: s.link,
            lease_ms: s.lease_ms,
            retry_after_max_ms: 15_000,
            first_check_in_ms: 5_000,
            mode,
        })
        .await
        .expect("admission")
}

fn admitted(a: Admission) -> u64 {
    match a {
        Admission::Admitted {
            reserved_seconds, ..
        } => reserved_seconds,
        other => panic!("not admitted: {other:?}"),
    }
}

#[tokio::test]
async fn admits_up_to_the_limit_and_hints_a_short_retry() {
    let (_redis, store) = store().await;
    let s = Start::default();
    admitted(admit(&store, "s1", "a", &s).await);
    admitted(admit(&store, "s2", "a", &s).await);
    let Admission::Refused(r) = admit(&store, "s3", "a", &s).await else {
        panic!("third start must be refused");
    };
    assert_eq!((r.scope, r.limit, r.in_use), (Scope::Account, 2, 2));
    // The earliest lease is 15 s away, capped at 15 s: never the session's
    // whole length, never 0.
    assert!(
        (1..=15_000).contains(&r.retry_after_ms),
        "{}",
        r.retry_after_ms
    );
}

#[tokio::test]
async fn a_refusal_writes_nothing() {
    let (redis, store) = store().await;
    let s = Start {
        account_limit: 1,
        ..Default::default()
    };
    admitted(admit(&store, "s1", "a", &s).await);
    let before = redis.snapshot().await;
    for i in 0..50 {
        let refused = admit(&store, &format!("refused-{i}"), "a", &s).await;
        assert!(matches!(refused, Admission::Refused(_)), "{refused:?}");
    }
    let minutes = Start {
        quota_seconds: 60,
        account_limit: 10,
        ..Default::default()
    };
    assert!(matches!(
        admit(&store, "no-minutes", "a", &minutes).await,
        Admission::Refused(r) if r.scope == Scope::Minutes
    ));
    assert_eq!(
        redis.snapshot().await,
        before,
        "50 refusals and a minutes refusal changed Redis"
    );
}

#[tokio::test]
async fn an_expired_lease_frees_its_slot_and_bills_up_to_the_lease() {
    let (_redis, store) = store().await;
    let short = Start {
        account_limit: 1,
        lease_ms: 1_000,
        ..Default::default()
    };
    admitted(admit(&store, "s1", "a", &short).await);
    assert!(matches!(
        admit(&store, "s2", "a", &short).await,
        Admission::Refused(_)
    ));
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(
        store.usage(ACCOUNT).await.expect("usage").active_sessions,
        0
    );
    admitted(admit(&store, "s2", "a", &short).await);
    // s1 never renewed: its slot went at the end of its 1 s lease, and it is
    // billed the second it held, not its 60 s reservation.
    let usage = store.usage(ACCOUNT).await.expect("usage");
    assert_eq!((usage.used_seconds, usage.reserved_seconds), (1, 60));
}

#[tokio::test]
async fn the_agent_limit_is_separate_from_the_account_limit() {
    let (_redis, store) = store().await;
    let s = Start {
        account_limit: 5,
        agent_limit: 1,
        ..Default::default()
    };
    admitted(admit(&store, "s1", "a", &s).await);
    let Admission::Refused(r) = admit(&store, "s2", "a", &s).await else {
        panic!("agent a is full");
    };
    assert_eq!((r.scope, r.limit), (Scope::Agent, 1));
    admitted(admit(&store, "s3", "b", &s).await);
}

#[tokio::test]
async fn minutes_are_reserved_and_the_last_start_gets_what_is_left() {
    let (_redis, store) = store().await;
    let s = Start {
        account_limit: 10,
        quota_seconds: 100,
        ..Default::default()
    };
    assert_eq!(admitted(admit(&store, "s1", "a", &s).await), 60);
    assert_eq!(admitted(admit(&store, "s2", "a", &s).await), 40);
    assert!(matches!(
        admit(&store, "s3", "a", &s).await,
        Admission::Refused(r) if r.scope == Scope::Minutes
    ));
}

#[tokio::test]
async fn a_link_admits_exactly_its_use_limit_under_contention() {
    let (_redis, store) = store().await;
    let s = Start {
        account_limit: 1_000,
        link: Some(("lnk_contended", 7)),
        ..Default::default()
    };
    let outcomes = join_all((0..100).map(|i| {
        let store = store.clone();
        let s = &s;
        async move { admit(&store, &format!("s{i}"), "a", s).await }
    }))
    .await;
    let admitted = outcomes
        .iter()
        .filter(|a| matches!(a, Admission::Admitted { .. }))
        .count();
    let used_up = outcomes
        .iter()
        .filter(|a| matches!(a, Admission::LinkUsedUp))
        .count();
    assert_eq!((admitted, used_up), (7, 93));
}

#[tokio::test]
async fn exact_settings_in_redis_win_over_the_callers_cached_ones() {
    let (redis, store) = store().await;
    let mut conn = redis.connection().await;
    let settings = lobby_kit::keys::account_settings(ACCOUNT);
    let () = redis::cmd("HSET")
        .arg(&settings)
        .arg("max_concurrency")
        .arg(1)
        .arg("agent:gone")
        .arg("0,0,60")
        .query_async(&mut conn)
        .await
        .expect("hset");
    // The caller's (cached) principal says 5; Redis says 1.
    let s = Start {
        account_limit: 5,
        ..Default::default()
    };
    admitted(admit(&store, "s1", "a", &s).await);
    assert!(matches!(
        admit(&store, "s2", "a", &s).await,
        Admission::Refused(_)
    ));
    // An unpublished agent is refused whatever the cache said.
    let before = redis.snapshot().await;
    assert_eq!(
        admit(&store, "s3", "gone", &s).await,
        Admission::AgentUnpublished
    );
    assert_eq!(redis.snapshot().await, before);
}

/// The home region's side of global limits: a hold taken for another
/// region counts like a local session, runs out like one when its region
/// stops renewing it, is taken again when that region comes back, and is
/// released once.
#[tokio::test]
async fn holds_for_other_regions_count_run_out_come_back_and_release_once() {
    let (redis, store) = store().await;
    let short = Start {
        account_limit: 2,
        lease_ms: 1_000,
        link: Some(("lnk_one", 1)),
        ..Default::default()
    };
    let hold = AdmitMode::Hold { region: "eu" };
    // The bucket's count behind the slots gauge equals the slots held, at
    // every step (the account is alone in its bucket).
    let counted_right = || async {
        let mut conn = redis.connection().await;
        let held: i64 = redis::cmd("ZCARD")
            .arg(format!(
                "{}:{ACCOUNT}:slots",
                lobby_kit::keys::account_tag(ACCOUNT)
            ))
            .query_async(&mut conn)
            .await
            .expect("zcard");
        assert_eq!(store.slots_in_use().await.expect("count"), held);
    };
    let first = admit_as(&store, "held-1", "a", &short, hold).await;
    admitted(first.clone());
    counted_right().await;
    // The same hold asked again is the one taken: nothing more is held or
    // reserved.
    let reserved = store.usage(ACCOUNT).await.expect("usage").reserved_seconds;
    assert_eq!(admit_as(&store, "held-1", "a", &short, hold).await, first);
    assert_eq!(
        store.usage(ACCOUNT).await.expect("usage").reserved_seconds,
        reserved
    );
    counted_right().await;
    // The link's one use went with the hold.
    let used_up = admit_as(&store, "held-2", "a", &short, hold).await;
    assert_eq!(used_up, Admission::LinkUsedUp);
    let no_link = Start {
        link: None,
        ..short
    };
    admitted(admit(&store, "local-1", "a", &no_link).await);
    assert!(matches!(
        admit_as(&store, "held-3", "a", &no_link, hold).await,
        Admission::Refused(_)
    ));
    // A hold is no record: the records contract lists nothing of it.
    let mut conn = redis.connection().await;
    let records: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!(
            "{}:{ACCOUNT}:records",
            lobby_kit::keys::account_tag(ACCOUNT)
        ))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .expect("records index");
    assert_eq!(records, ["local-1"]);
    counted_right().await;

    // eu stops renewing: after its lease the next admission drops the hold
    // and bills the second it held.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    admitted(admit(&store, "local-2", "a", &no_link).await);
    let usage = store.usage(ACCOUNT).await.expect("usage");
    assert_eq!(
        usage.active_sessions, 1,
        "the hold is gone; local-1 lapsed too"
    );
    counted_right().await;
    // eu comes back and renews: the hold is taken again for what is left.
    let held = lobby_proto::regions::HeldSession {
        session_id: "held-1".into(),
        account_id: ACCOUNT.into(),
        agent_id: "a".into(),
        reserved_seconds_left: 30,
    };
    assert_eq!(
        store.renew_hold(&held, 1_000, "eu").await.expect("renew"),
        HoldRenewal::Retaken
    );
    assert_eq!(
        store.renew_hold(&held, 1_000, "eu").await.expect("renew"),
        HoldRenewal::Renewed
    );
    counted_right().await;
    let usage = store.usage(ACCOUNT).await.expect("usage");
    assert_eq!(
        (usage.active_sessions, usage.reserved_seconds),
        (2, 60 + 30)
    );
    // Its end releases it once. It says it ran 12 s, but the hold taken
    // again has lasted under one: the second before it ran out was billed
    // already, so nothing more is.
    assert!(store
        .release_hold(ACCOUNT, "a", "held-1", (false, 12), 60_000)
        .await
        .expect("release"));
    assert!(!store
        .release_hold(ACCOUNT, "a", "held-1", (false, 12), 60_000)
        .await
        .expect("release again"));
    counted_right().await;
    let usage = store.usage(ACCOUNT).await.expect("usage");
    assert_eq!(usage.active_sessions, 1);
    assert_eq!(usage.reserved_seconds, 60, "local-2's reservation only");
    // used: local-1's lapsed second and held-1's first second.
    assert_eq!(usage.used_seconds, 1 + 1);
    // A renewal that raced the end finds the tombstone: nothing comes back.
    assert_eq!(
        store
            .renew_hold(&held, 1_000, "eu")
            .await
            .expect("late renewal"),
        HoldRenewal::Over
    );
    counted_right().await;
    assert_eq!(
        store.usage(ACCOUNT).await.expect("usage").active_sessions,
        1
    );
    // A hold that arrives after its release (delayed on the way, its start
    // given up on) takes nothing: the release's tombstone turns it away.
    assert!(!store
        .release_hold(ACCOUNT, "a", "held-6", (true, 0), 60_000)
        .await
        .expect("release before the hold"));
    let usage_of =
        |u: lobby_session::store::Usage| (u.active_sessions, u.reserved_seconds, u.used_seconds);
    let before = usage_of(store.usage(ACCOUNT).await.expect("usage"));
    assert_eq!(
        admit_as(&store, "held-6", "a", &no_link, hold).await,
        Admission::Released
    );
    assert_eq!(usage_of(store.usage(ACCOUNT).await.expect("usage")), before);
    counted_right().await;
    // A failed start's hold gives its link use back and bills nothing.
    let other_link = Start {
        link: Some(("lnk_two", 1)),
        ..short
    };
    admitted(admit_as(&store, "held-4", "a", &other_link, hold).await);
    assert!(store
        .release_hold(ACCOUNT, "a", "held-4", (true, 0), 60_000)
        .await
        .expect("release failed"));
    admitted(admit_as(&store, "held-5", "a", &other_link, hold).await);
    assert_eq!(store.usage(ACCOUNT).await.expect("usage").used_seconds, 2);
    counted_right().await;
}
