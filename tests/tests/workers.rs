//! GPU workers on their gRPC stream: a link start waits for a worker to
//! accept; rejects and timeouts move on to the next worker; no acceptance is
//! orchestrator_error with everything released; capacity is reserved
//! atomically; a worker that leaves or goes quiet gets no jobs; a worker's
//! end report ends the session.

use futures::future::join_all;
use lobby_rooms::workers::Registry;
use lobby_tests::{
    avatar_server::AvatarServer,
    worker::{Behavior, TestWorker},
    Lobby, LobbyOptions,
};
use lobby_worker::{Worker, WorkerConfig};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

struct Setup {
    lobby: Lobby,
    account: String,
    link: String,
    _avatars: AvatarServer,
}

/// A Lobby without the default worker, an account and a link to an avatar agent.
async fn setup(max_concurrency: u32) -> Setup {
    let lobby = Lobby::start(LobbyOptions {
        worker: false,
        ..Default::default()
    })
    .await;
    let avatars = AvatarServer::start().await;
    let account = lobby.create_account(max_concurrency).await;
    let agent = lobby
        .create_agent(
            &account,
            json!({ "avatar_image_url": avatars.url("face.jpg") }),
        )
        .await;
    let link = lobby.create_link(&account, &agent, json!({})).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    Setup {
        lobby,
        account,
        link,
        _avatars: avatars,
    }
}

async fn start(s: &Setup) -> (u16, Value) {
    let r = s
        .lobby
        .start_link(&json!({ "link_id": s.link, "aspect_ratio": "3:4" }))
        .await;
    (r.status().as_u16(), r.json().await.expect("json"))
}

async fn reserved(s: &Setup, worker: &str) -> u32 {
    let registry = Registry::new(s.lobby.redis.connection().await, 1000);
    registry
        .state(worker)
        .await
        .expect("state")
        .map_or(0, |w| w.reserved)
}

async fn uses(s: &Setup) -> u64 {
    s.lobby
        .admin_json(Method::GET, &format!("/links/{}", s.link), None)
        .await
        .1["uses"]
        .as_u64()
        .expect("uses")
}

#[tokio::test]
async fn a_link_start_waits_for_a_worker_and_hands_it_the_job() {
    let s = setup(3).await;
    let worker = TestWorker::start(&s.lobby.workers_door(), "gpu-1", 2, Behavior::Accept).await;
    let (status, body) = start(&s).await;
    assert_eq!(status, 200, "{body}");
    let session_id = body["session_id"].as_str().expect("id");

    let offered = worker.offered();
    assert_eq!(offered.len(), 1);
    let job = &offered[0];
    assert_eq!(job.session_id, session_id);
    assert_eq!(
        job.agent_identity,
        body["agent_identity"].as_str().expect("identity")
    );
    assert_eq!(job.room_url, body["livekit_url"].as_str().expect("url"));
    assert_eq!(job.aspect_ratio, "3:4");
    assert!(job.avatar_image_url.ends_with("/img/face.jpg"));
    assert!(job.deadline_ms > lobby_tests::now_ms() - 5_000);
    let claims = livekit_api::access_token::TokenVerifier::with_api_key("devkey", "secret")
        .verify(&job.agent_token)
        .expect("the job carries the agent's token");
    assert_eq!(claims.sub, job.agent_identity);
    assert_eq!(claims.video.room, format!("lobby-{session_id}"));

    let (_, record) = s
        .lobby
        .admin_json(Method::GET, &format!("/sessions/{session_id}"), None)
        .await;
    assert_eq!(record["status"], "active");
    assert_eq!(reserved(&s, "gpu-1").await, 1);
    s.lobby.end_session(session_id).await;
    assert_eq!(
        reserved(&s, "gpu-1").await,
        0,
        "ending frees the worker's capacity"
    );
}

#[tokio::test]
async fn a_reject_or_a_timeout_moves_on_to_the_next_worker() {
    let s = setup(5).await;
    let url = s.lobby.workers_door();
    // Equal load: ties go by id, so "a-…" is offered first.
    let rejecting = TestWorker::start(&url, "a-rejects", 4, Behavior::Reject).await;
    let accepting = TestWorker::start(&url, "b-accepts", 4, Behavior::Accept).await;
    let (status, body) = start(&s).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (rejecting.offered().len(), accepting.offered().len()),
        (1, 1)
    );
    assert_eq!(
        reserved(&s, "a-rejects").await,
        0,
        "the reject gave its capacity back"
    );
    assert_eq!(reserved(&s, "b-accepts").await, 1);
    drop(rejecting);

    let silent = TestWorker::start(&url, "a-silent", 4, Behavior::Silent).await;
    // b-accepts is now busier than a-silent, so a-silent is offered first.
    let began = std::time::Instant::now();
    let (status, body) = start(&s).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        began.elapsed() >= Duration::from_millis(900),
        "waited for the silent worker's timeout"
    );
    assert_eq!(silent.offered().len(), 1);
    assert_eq!(reserved(&s, "a-silent").await, 0);
    assert_eq!(reserved(&s, "b-accepts").await, 2);
}

#[tokio::test]
async fn no_worker_accepting_is_orchestrator_error_and_releases_everything() {
    let s = setup(2).await;
    let (status, body) = start(&s).await;
    assert_eq!(
        (status, &body["error"]),
        (502, &json!("orchestrator_error")),
        "no worker at all: {body}"
    );

    let refusing = TestWorker::start(&s.lobby.workers_door(), "refuser", 3, Behavior::Reject).await;
    for _ in 0..3 {
        let (status, body) = start(&s).await;
        assert_eq!(
            (status, &body["error"]),
            (502, &json!("orchestrator_error")),
            "{body}"
        );
    }
    assert_eq!(refusing.offered().len(), 3);
    assert_eq!(
        s.lobby.active_sessions(&s.account).await,
        0,
        "slots released"
    );
    assert_eq!(
        s.lobby.usage(&s.account).await["reserved_seconds"],
        0,
        "minutes released"
    );
    assert_eq!(uses(&s).await, 0, "link uses given back");
    assert_eq!(reserved(&s, "refuser").await, 0, "worker capacity released");
}

#[tokio::test]
async fn a_worker_that_leaves_or_goes_quiet_gets_no_new_jobs() {
    let s = setup(5).await;
    let url = s.lobby.workers_door();
    let leaving = TestWorker::start(&url, "leaver", 4, Behavior::Accept).await;
    drop(leaving);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = start(&s).await;
    assert_eq!(status, 502, "a disconnected worker is not offered jobs");

    let mut quiet = url.config("quiet", "local", 4);
    quiet.heartbeats = false;
    let quiet = TestWorker::start_with(quiet, Behavior::Accept).await;
    tokio::time::sleep(Duration::from_millis(1300)).await; // past the 1 s heartbeat expiry
    let (status, _) = start(&s).await;
    assert_eq!(
        status, 502,
        "a worker that stopped heartbeating is not offered jobs"
    );
    assert!(quiet.offered().is_empty());

    let other_region =
        TestWorker::start_with(url.config("far", "elsewhere", 4), Behavior::Accept).await;
    let (status, _) = start(&s).await;
    assert_eq!(
        status, 502,
        "workers of another region are not offered jobs"
    );
    assert!(other_region.offered().is_empty());
}

#[tokio::test]
async fn a_worker_end_report_ends_the_session() {
    let s = setup(2).await;
    let worker = TestWorker::start(&s.lobby.workers_door(), "reporter", 2, Behavior::Accept).await;
    let (_, body) = start(&s).await;
    let session_id = body["session_id"].as_str().expect("id").to_owned();
    worker
        .handle
        .session_ended(&session_id, "user hung up")
        .await
        .expect("report");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut record = Value::Null;
    while tokio::time::Instant::now() < deadline {
        record = s
            .lobby
            .admin_json(Method::GET, &format!("/sessions/{session_id}"), None)
            .await
            .1;
        if record["status"] == "ended" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(record["ended_reason"], "worker_reported", "{record}");
    assert_eq!(reserved(&s, "reporter").await, 0);
    assert_eq!(s.lobby.active_sessions(&s.account).await, 0);
}

#[tokio::test]
async fn a_worker_without_the_token_cannot_attach() {
    let s = setup(1).await;
    let door = s.lobby.workers_door();
    let attached = Worker::attach(WorkerConfig {
        token: "wrong-token".into(),
        ..door.config("intruder", "local", 4)
    })
    .await;
    let err = attached.err().expect("refused");
    assert!(err.to_string().contains("worker token"), "{err}");
    let bad = Worker::attach(door.config("bad id!", "local", 4)).await;
    assert!(bad.is_err(), "an invalid worker id is refused");
}

#[tokio::test]
async fn concurrent_reservations_from_two_replicas_never_overfill_a_worker() {
    let s = setup(1).await;
    let _worker =
        TestWorker::start(&s.lobby.workers_door(), "gpu-small", 3, Behavior::Accept).await;
    // Two registries on separate connections stand for two rooms replicas.
    let replicas = [
        Registry::new(s.lobby.redis.connection().await, 10_000),
        Registry::new(s.lobby.redis.connection().await, 10_000),
    ];
    let now = lobby_tests::now_ms();
    let attempts = (0..200).map(|i| {
        let registry = replicas[i % 2].clone();
        async move {
            registry
                .reserve("gpu-small", &format!("s-{i}"), now)
                .await
                .expect("reserve")
        }
    });
    let granted = join_all(attempts)
        .await
        .into_iter()
        .filter(|ok| *ok)
        .count();
    assert_eq!(granted, 3, "exactly the capacity");
    assert_eq!(reserved(&s, "gpu-small").await, 3);
}

#[tokio::test]
async fn an_old_stream_closing_does_not_disconnect_the_worker_that_reattached() {
    let s = setup(2).await;
    let url = s.lobby.workers_door();
    let old = TestWorker::start(&url, "phoenix", 2, Behavior::Accept).await;
    // The worker attaches again (a new process, or another rooms replica)
    // before its old stream has finished closing.
    let new = TestWorker::start(&url, "phoenix", 2, Behavior::Accept).await;
    drop(old);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, body) = start(&s).await;
    assert_eq!(
        status, 200,
        "the re-attached worker still gets jobs: {body}"
    );
    assert_eq!(new.offered().len(), 1);
}
