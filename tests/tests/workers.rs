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

    let mut quiet = url.config("quiet", "local", 4).await;
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
        TestWorker::start_with(url.config("far", "elsewhere", 4).await, Behavior::Accept).await;
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

/// Each worker has its own key, bound to one worker id and to one account
/// (or the shared pool); nothing else gets a worker onto the door.
#[tokio::test]
async fn worker_keys_bind_each_worker_to_its_id_and_its_account() {
    let s = setup(2).await;
    let door = s.lobby.workers_door();
    let (tried, refused) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let tally = |what: &str, was_refused: bool| {
        tried.set(tried.get() + 1);
        assert!(was_refused, "{what} was let in");
        refused.set(refused.get() + 1);
    };
    let refuse = |what: &str, attached: Result<(), String>| tally(what, attached.is_err());
    let attach = |config: WorkerConfig| async move {
        Worker::attach(config)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let alpha_key = door.key_for("alpha", json!({ "pool": "default" })).await;
    let (_, agent_key) = s.lobby.create_agent_with_key(&s.account, json!({})).await;
    for (what, key) in [
        ("no key", String::new()),
        (
            "a made-up key",
            "wkr_abcdefgh12_0123456789abcdef0123456789".to_owned(),
        ),
        ("an agent key", agent_key),
        ("a key with one character changed", {
            let mut k = alpha_key.clone();
            let last = k.pop().expect("non-empty");
            k.push(if last == 'a' { 'b' } else { 'a' });
            k
        }),
    ] {
        refuse(
            what,
            attach(door.config_with_key("alpha", &key, "local", 4)).await,
        );
    }
    let taken = attach(door.config_with_key("beta", &alpha_key, "local", 4)).await;
    assert!(
        taken
            .as_ref()
            .is_err_and(|e| e.contains("worker_id") || e.contains("belongs to")),
        "alpha's key cannot register as beta: {taken:?}"
    );
    refuse("another worker's id", taken);
    refuse(
        "an invalid worker id",
        attach(door.config_with_key("bad id!", &alpha_key, "local", 4)).await,
    );
    for bad in [json!({}), json!({ "pool": "p", "account_id": s.account })] {
        let r = s
            .lobby
            .admin(Method::POST, "/workers/w1/keys")
            .json(&bad)
            .send()
            .await
            .expect("send");
        assert_eq!(
            r.status(),
            400,
            "a key needs exactly one of pool and account: {bad}"
        );
        tally("a key for no one", true);
    }

    // A worker of another account is never offered this account's jobs.
    let other = s.lobby.create_account(1).await;
    let elsewhere = door
        .key_for("elsewhere", json!({ "account_id": other }))
        .await;
    let foreign = TestWorker::start_with(
        door.config_with_key("elsewhere", &elsewhere, "local", 4),
        Behavior::Accept,
    )
    .await;
    let (status, body) = start(&s).await;
    assert_eq!(status, 502, "no worker serves this account: {body}");
    tally("another account's worker", foreign.offered().is_empty());
    let own = door
        .key_for("own", json!({ "account_id": s.account }))
        .await;
    let mine = TestWorker::start_with(
        door.config_with_key("own", &own, "local", 4),
        Behavior::Accept,
    )
    .await;
    let (status, body) = start(&s).await;
    assert_eq!(status, 200, "the account's own worker runs it: {body}");
    assert_eq!(mine.offered().len(), 1);

    // Revoking a key closes its worker's stream and keeps it out.
    let prefix = own.split('_').nth(1).expect("prefix").to_owned();
    let revoked = s
        .lobby
        .admin(Method::POST, &format!("/keys/{prefix}/revoke"))
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 200);
    let registry = Registry::new(s.lobby.redis.connection().await, 1000);
    let mut closed = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !registry
            .state("own")
            .await
            .expect("state")
            .expect("known")
            .connected
        {
            closed = true;
            break;
        }
    }
    tally("a worker whose key was revoked (stream closed)", closed);
    refuse(
        "a revoked key",
        attach(door.config_with_key("own", &own, "local", 4)).await,
    );
    println!(
        "workers: {} of {} attacks refused",
        refused.get(),
        tried.get()
    );
}

/// Everything a worker says counts for itself alone: it cannot answer a job
/// offered to another worker, nor end another worker's session.
#[tokio::test]
async fn a_worker_cannot_answer_for_or_end_the_sessions_of_another() {
    use lobby_proto::workers::{
        server_message, worker_message::Message, JobAccepted, SessionEnded,
    };
    let s = setup(2).await;
    let door = s.lobby.workers_door();
    let mut victim = RawWorker::attach(&door, "victim", 4).await;
    let intruder = RawWorker::attach(&door, "intruder", 4).await;
    // The victim is offered the job and never answers; the intruder
    // accepts it in its name.
    let start = tokio::spawn({
        let link = s.link.clone();
        let lobby_http = s.lobby.http.clone();
        let gateway = s.lobby.gateway().to_owned();
        async move {
            lobby_http
                .post(format!("{gateway}/v1/links/start-session"))
                .json(&json!({ "link_id": link, "aspect_ratio": "3:4" }))
                .send()
                .await
                .expect("start")
                .status()
                .as_u16()
        }
    });
    let job = loop {
        match victim.inbound.message().await.expect("stream") {
            Some(lobby_proto::workers::ServerMessage {
                message: Some(server_message::Message::Job(job)),
            }) => break job,
            Some(_) => continue,
            None => panic!("the victim's stream closed"),
        }
    };
    intruder
        .send(Message::Accepted(JobAccepted {
            job_id: job.job_id.clone(),
        }))
        .await;
    let status = start.await.expect("join");
    assert_ne!(status, 200, "an answer from another worker does not count");
    assert_eq!(s.lobby.active_sessions(&s.account).await, 0);

    // A session the victim runs, ended in the intruder's name: it goes on.
    let good = TestWorker::start(&door, "runner", 4, Behavior::Accept).await;
    drop(victim);
    let (status, body) = self::start(&s).await;
    assert_eq!(status, 200, "{body}");
    let session_id = good.offered()[0].session_id.clone();
    intruder
        .send(Message::SessionEnded(SessionEnded {
            session_id: session_id.clone(),
            reason: "intruder".into(),
        }))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        s.lobby.active_sessions(&s.account).await,
        1,
        "another worker's end report does not end the session"
    );
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

/// A worker speaking the stream by hand: it heartbeats, and reads or
/// sends only what the test says.
struct RawWorker {
    tx: tokio::sync::mpsc::Sender<lobby_proto::workers::WorkerMessage>,
    inbound: tonic::Streaming<lobby_proto::workers::ServerMessage>,
    heartbeats: tokio::task::JoinHandle<()>,
}

impl Drop for RawWorker {
    fn drop(&mut self) {
        self.heartbeats.abort();
    }
}

impl RawWorker {
    async fn attach(door: &lobby_tests::worker::WorkerDoor, id: &str, capacity: u32) -> Self {
        use lobby_proto::workers::{worker_message::Message, Heartbeat, Register};
        let config = door.config(id, "local", capacity).await;
        // A small receive window, so what it leaves unread backs up on the
        // server after a few jobs rather than after 64 KiB of them.
        let channel = tonic::transport::Endpoint::from_shared(config.url.clone())
            .expect("url")
            .initial_stream_window_size(Some(1024))
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(&door.ca_pem)),
            )
            .expect("tls")
            .connect()
            .await
            .expect("connect");
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", config.key).parse().expect("ascii"),
        );
        let register = Message::Register(Register {
            worker_id: id.to_owned(),
            region: "local".into(),
            capacity,
            labels: Default::default(),
        });
        tx.send(lobby_proto::workers::WorkerMessage {
            message: Some(register),
        })
        .await
        .expect("queue");
        let mut inbound = lobby_proto::workers::workers_client::WorkersClient::new(channel)
            .attach(request)
            .await
            .expect("attached")
            .into_inner();
        let registered = inbound.message().await.expect("registered");
        assert!(registered.is_some(), "registered");
        let heartbeats = tokio::spawn({
            let tx = tx.clone();
            async move {
                loop {
                    let beat = Message::Heartbeat(Heartbeat { load: 0 });
                    let message = lobby_proto::workers::WorkerMessage {
                        message: Some(beat),
                    };
                    if tx.send(message).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
        Self {
            tx,
            inbound,
            heartbeats,
        }
    }

    async fn send(&self, message: lobby_proto::workers::worker_message::Message) {
        self.tx
            .send(lobby_proto::workers::WorkerMessage {
                message: Some(message),
            })
            .await
            .expect("queue");
    }
}

/// One replica forwards every worker's jobs; a worker that stops reading
/// must not hold that up for the others. It is dropped instead.
#[tokio::test]
async fn a_worker_that_stops_reading_is_dropped_and_holds_up_no_one() {
    const STARTS: usize = 200;
    let s = setup(1000).await;
    s.lobby
        .patch_account(&s.account, json!({ "minutes_quota": 10_000_000 }))
        .await;
    let door = s.lobby.workers_door();
    // Its reservations time out while the good worker's stay with their
    // sessions, so it is offered jobs in waves of its capacity until what
    // it leaves unread fills its stream.
    let _unread = RawWorker::attach(&door, "a-stalled", 60).await;
    let good = TestWorker::start(&door, "b-good", 1000, Behavior::Accept).await;
    let registry = Registry::new(s.lobby.redis.connection().await, 1000);
    let mut started = 0;
    let mut dropped = false;
    // Rounds until its stream is full (bounded: the capacities hold 1000).
    while !dropped && started < 4 * STARTS {
        let statuses = join_all((0..STARTS).map(|_| start(&s))).await;
        let failed: Vec<_> = statuses
            .iter()
            .filter(|(status, _)| *status != 200)
            .collect();
        assert!(
            failed.is_empty(),
            "every start found the good worker: {} failed, e.g. {:?}",
            failed.len(),
            failed.first()
        );
        started += STARTS;
        let stalled = registry
            .state("a-stalled")
            .await
            .expect("state")
            .expect("known");
        dropped = !stalled.connected;
    }
    assert!(dropped, "the stalled worker was dropped");
    assert_eq!(good.offered().len(), started);
}

/// A worker writes messages and token usage into the sessions it runs,
/// through the session service's own door and with its own key; into no
/// one else's, and not after its key is revoked or the session ended.
#[tokio::test]
async fn a_worker_writes_into_the_records_of_its_own_sessions_only() {
    let lobby = Lobby::start(LobbyOptions {
        worker: false,
        ..Default::default()
    })
    .await;
    let door = lobby.workers_door();
    let ca = door.ca_pem.clone();
    let account = lobby.create_account(5).await;
    let agent = lobby
        .create_agent(&account, json!({ "requires_worker": true }))
        .await;
    let key = door
        .key_for("gpu-rec", json!({ "account_id": account }))
        .await;
    let _worker = TestWorker::start_with(
        door.config_with_key("gpu-rec", &key, "local", 2),
        Behavior::Accept,
    )
    .await;
    let started: Value = lobby
        .connect(&agent, None)
        .await
        .json()
        .await
        .expect("json");
    let session = started["session_id"]
        .as_str()
        .expect("a session the worker accepted")
        .to_owned();
    let mine = lobby_worker::RecordsClient::connect(&door.records_url, Some(&ca), &key)
        .await
        .expect("the records door");
    let totals = mine
        .append_messages(&session, r#"[{"role":"user","content":"Hello"}]"#, 12, 30)
        .await
        .expect("its own session");
    assert_eq!(totals, (1, 12, 30));

    // The records contract lists them, decrypted.
    let listed = lobby.records(&account, &format!("id={session}")).await;
    assert_eq!(
        listed[0]["messages"],
        r#"[{"role":"user","content":"Hello"}]"#
    );
    assert_eq!(
        (
            listed[0]["promptTokens"].clone(),
            listed[0]["completionTokens"].clone()
        ),
        (json!(12), json!(30))
    );

    let code = |e: lobby_worker::WorkerError| match e {
        lobby_worker::WorkerError::Refused(status) => lobby_kit::grpc::machine_code(&status)
            .map(|c| c.as_str().to_owned())
            .unwrap_or_else(|| format!("{:?}", status.code())),
        other => other.to_string(),
    };
    let (mut tried, mut refused) = (0, 0);
    let mut refuse =
        |what: &str, got: Result<(u64, u64, u64), lobby_worker::WorkerError>, want: &str| {
            tried += 1;
            match got {
                Err(e) => {
                    let c = code(e);
                    assert_eq!(c, want, "{what}");
                    refused += 1;
                }
                Ok(t) => panic!("{what}: written {t:?}"),
            }
        };
    // Another worker (a pool's key) writes into nobody's session but its own.
    let other_key = door
        .key_for("gpu-other", json!({ "pool": "default" }))
        .await;
    let other = lobby_worker::RecordsClient::connect(&door.records_url, Some(&ca), &other_key)
        .await
        .expect("door");
    refuse(
        "another worker",
        other.append_messages(&session, "[]", 1, 0).await,
        "session_not_found",
    );
    // The worker's own prefix with a secret that is not its own.
    let forged = format!(
        "{}{}",
        &key[..key.len() - 1],
        if key.ends_with('A') { 'B' } else { 'A' }
    );
    let nobody = lobby_worker::RecordsClient::connect(&door.records_url, Some(&ca), &forged)
        .await
        .expect("door");
    refuse(
        "a made-up key",
        nobody.append_messages(&session, "[]", 1, 0).await,
        "key_invalid",
    );
    refuse(
        "no such session",
        mine.append_messages("sess_missing", "[]", 1, 0).await,
        "session_not_found",
    );
    refuse(
        "not a JSON array",
        mine.append_messages(&session, "{}", 0, 0).await,
        "invalid_request",
    );
    lobby.end_session(&session).await;
    refuse(
        "an ended session",
        mine.append_messages(&session, "[]", 1, 0).await,
        "session_ended",
    );
    let prefix = key.split('_').nth(1).expect("prefix").to_owned();
    let (s, _) = lobby
        .admin_json(Method::POST, &format!("/keys/{prefix}/revoke"), None)
        .await;
    assert_eq!(s, 200);
    refuse(
        "a revoked key",
        mine.append_messages(&session, "[]", 1, 0).await,
        "key_revoked",
    );
    println!("workers, records door: {refused} of {tried} refused");
}
