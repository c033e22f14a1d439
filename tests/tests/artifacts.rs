//! Seed 003 and the artifacts behind it: the contract's examples and every
//! refusal in its words and order; uploads from workers (gRPC, client
//! streaming, signed PUT), atomic and capped; signed download URLs with
//! ranges, and the attacks on them; summaries (offline, and an
//! OpenAI-compatible endpoint's stand-in), a consumer killed mid-job, and
//! dead-lettering; the S3 store against a real S3-compatible server;
//! isolation between accounts; and deletion taking the artifacts along.

use futures::future::join_all;
use lobby_proto::workers::{
    worker_artifacts_client::WorkerArtifactsClient, WorkerArtifact, WorkerUploadUrlRequest,
};
use lobby_tests::{
    avatar_server::AvatarServer,
    s3_server::S3Server,
    summarizer_standin::{Answer, SummarizerStandIn, SUMMARY_TEXT},
    worker::{Behavior, TestWorker},
    Lobby, LobbyOptions, Topology,
};
use lobby_worker::{RecordsClient, WorkerError};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const READ: &[&str] = &["sessions:read"];
const RW: &[&str] = &["sessions:read", "sessions:write"];
const SIGNING_SECRET: &str = "test-artifacts-signing-secret-0123";

/// An account with a project, an agent in it (run by a worker, with an
/// avatar so that links can start it), keys, and the worker's uploads.
struct Tenant {
    account: String,
    project: String,
    agent: String,
    read_key: String,
    rw_key: String,
    uploads: RecordsClient,
    worker_key: String,
    _worker: TestWorker,
    _avatars: AvatarServer,
}

async fn tenant(lobby: &Lobby, worker_id: &str) -> Tenant {
    let avatars = AvatarServer::start().await;
    let account = lobby.create_account(10).await;
    let (s, p) = lobby
        .admin_json(
            Method::POST,
            &format!("/accounts/{account}/projects"),
            Some(json!({ "name": "Support line" })),
        )
        .await;
    assert_eq!(s, 201, "{p}");
    let project = p["id"].as_str().expect("project id").to_owned();
    assert!(project.starts_with("proj_"), "{p}");
    let agent = lobby
        .create_agent(
            &account,
            json!({
                "requires_worker": true,
                "project_id": project,
                "avatar_image_url": avatars.url("face.jpg"),
            }),
        )
        .await;
    let door = lobby.workers_door();
    let worker_key = door
        .key_for(worker_id, json!({ "account_id": account }))
        .await;
    let worker = TestWorker::start_with(
        door.config_with_key(worker_id, &worker_key, "local", 50),
        Behavior::Accept,
    )
    .await;
    let uploads = RecordsClient::connect(&door.records_url, Some(&door.ca_pem), &worker_key)
        .await
        .expect("the workers' door");
    Tenant {
        read_key: lobby.create_api_key(&account, READ).await,
        rw_key: lobby.create_api_key(&account, RW).await,
        account,
        project,
        agent,
        uploads,
        worker_key,
        _worker: worker,
        _avatars: avatars,
    }
}

/// A started session of the tenant's agent (`type=project`).
async fn project_session(lobby: &Lobby, t: &Tenant) -> String {
    let started: Value = lobby
        .connect(&t.agent, None)
        .await
        .json()
        .await
        .expect("json");
    started["session_id"]
        .as_str()
        .unwrap_or_else(|| panic!("a started session: {started}"))
        .to_owned()
}

/// A started link session of the tenant's agent (`type=instant`).
async fn instant_session(lobby: &Lobby, t: &Tenant) -> String {
    let link = lobby.create_link(&t.account, &t.agent, json!({})).await;
    let r = lobby.start_link(&json!({ "link_id": link["id"] })).await;
    let b: Value = r.json().await.expect("json");
    b["session_id"]
        .as_str()
        .unwrap_or_else(|| panic!("a started link session: {b}"))
        .to_owned()
}

async fn send(lobby: &Lobby, req: reqwest::RequestBuilder) -> (u16, Value) {
    let _ = lobby;
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {status} {text:?}")),
    )
}

async fn get(lobby: &Lobby, key: Option<&str>, path: &str) -> (u16, Value) {
    let mut req = lobby.http.get(format!("{}{path}", lobby.gateway()));
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    send(lobby, req).await
}

/// A seed-003 route of `t`'s project session, with its read key.
async fn typed(lobby: &Lobby, t: &Tenant, route: &str, session: &str) -> (u16, Value) {
    let path = format!(
        "/v1/session/{route}?sessionId={session}&type=project&projectId={}",
        t.project
    );
    get(lobby, Some(&t.read_key), &path).await
}

/// Seed 004's delete of `session`, with `t`'s read-write key.
async fn delete_record(lobby: &Lobby, t: &Tenant, session: &str) -> u16 {
    let database = lobby.database_id_hash(&t.account).await;
    lobby
        .http
        .delete(format!("{}/api/session/{session}", lobby.gateway()))
        .bearer_auth(&t.rw_key)
        .header("database-id-hash", database)
        .send()
        .await
        .expect("delete")
        .status()
        .as_u16()
}

async fn regenerate(lobby: &Lobby, key: &str, body: Value) -> (u16, Value) {
    let req = lobby
        .http
        .post(format!(
            "{}/v1/sessions/summary/regenerate",
            lobby.gateway()
        ))
        .bearer_auth(key)
        .json(&body);
    send(lobby, req).await
}

/// A 16 kHz mono 16-bit WAV of `samples` samples (a ramp, so that any byte
/// out of place shows).
fn wav(samples: usize) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::new(&mut out, spec).expect("writer");
    for i in 0..samples {
        w.write_sample((i % 30_000) as i16).expect("sample");
    }
    w.finalize().expect("finalize");
    out.into_inner()
}

fn transcript() -> Value {
    json!({"messages": [
        {"role": "user", "content": "Hi. I ordered a blue kettle last week and it arrived broken. Can I get a refund for order 1234?", "timestamp_ms": 1_760_000_000_000i64},
        {"role": "assistant", "content": "I am sorry about the broken kettle. I have approved a refund for order 1234. The refund reaches your card within five days.", "timestamp_ms": 1_760_000_012_000i64},
        {"role": "user", "content": "Great, thanks. Will I get an email?", "timestamp_ms": 1_760_000_020_000i64},
        {"role": "assistant", "content": "Yes, a confirmation email for the refund of order 1234 is on its way.", "timestamp_ms": 1_760_000_031_000i64}
    ]})
}

fn code(e: WorkerError) -> String {
    match e {
        WorkerError::Refused(status) => lobby_kit::grpc::machine_code(&status)
            .map(|c| c.as_str().to_owned())
            .unwrap_or_else(|| format!("{:?}: {}", status.code(), status.message())),
        other => other.to_string(),
    }
}

fn options(extra: Vec<(String, String)>) -> LobbyOptions {
    let mut extra_env = vec![(
        "LOBBY_ARTIFACTS_SIGNING_SECRET".to_owned(),
        SIGNING_SECRET.to_owned(),
    )];
    extra_env.extend(extra);
    LobbyOptions {
        worker: false,
        extra_env,
        ..Default::default()
    }
}

/// The seed's examples, field by field; every 400 in the seed's order and
/// words; 401, 403 and every kind of 404 in `{"error": …}`.
#[tokio::test]
async fn seed_003_contract_examples_and_every_refusal_in_its_words() {
    let lobby = Lobby::start(options(vec![])).await;
    let t = tenant(&lobby, "gpu-contract").await;
    let session = project_session(&lobby, &t).await;
    let (acct, proj) = (&t.account, &t.project);
    let q = |route: &str, extra: &str| format!("/v1/session/{route}?sessionId={session}{extra}");
    let typed = format!("&type=project&projectId={proj}");

    // Status answers from the record.
    let (s, b) = get(&lobby, Some(&t.read_key), &q("status", &typed)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["success"], true);
    assert_eq!(b["sessionId"], session.as_str());
    assert_eq!(b["type"], "project");
    assert_eq!(b["projectId"], proj.as_str());
    assert_eq!(b["status"], "active");
    assert_eq!(b["agentId"], t.agent.as_str());
    for field in ["createdAt", "updatedAt"] {
        let at = b[field].as_str().unwrap_or_else(|| panic!("{field}: {b}"));
        assert!(at.ends_with('Z') && at.len() == 24, "ISO 8601: {at}");
    }
    // Undefined in the seed's JavaScript: omitted, never null.
    assert!(b.get("completedAt").is_none(), "{b}");
    assert!(
        b.as_object()
            .expect("object")
            .values()
            .all(|v| !v.is_null()),
        "{b}"
    );
    // The room's URL lands on the record just after the start answers.
    let mut ws = b["wsUrl"].clone();
    for _ in 0..50 {
        if ws.is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        ws = get(&lobby, Some(&t.read_key), &q("status", &typed)).await.1["wsUrl"].clone();
    }
    assert!(ws.is_string(), "wsUrl: {ws}");

    // Nothing uploaded yet: the seed's 404s, with the id.
    let (s, b) = get(&lobby, Some(&t.read_key), &q("transcript", &typed)).await;
    assert_eq!(
        (s, b.clone()),
        (
            404,
            json!({ "error": format!("conversation.json not found for session {session}") })
        )
    );
    let (s, b) = get(&lobby, Some(&t.read_key), &q("audio", &typed)).await;
    assert_eq!(
        (s, b.clone()),
        (
            404,
            json!({ "error": format!("Audio file not found for session {session}") })
        )
    );

    // Every 400, in the order the seed checks them.
    for route in ["status", "transcript", "audio"] {
        let base = format!("/v1/session/{route}");
        for (query, want) in [
            ("", "sessionId is required"),
            ("?type=project&projectId=p", "sessionId is required"),
            ("?sessionId=", "sessionId is required"),
            (
                &format!("?sessionId={session}") as &str,
                "type must be \"project\" or \"instant\"",
            ),
            (
                &format!("?sessionId={session}&type=video"),
                "type must be \"project\" or \"instant\"",
            ),
            (
                &format!("?sessionId={session}&type=project"),
                "projectId is required when type=project",
            ),
            (
                &format!("?sessionId={session}&type=project&projectId="),
                "projectId is required when type=project",
            ),
        ] {
            let (s, b) = get(&lobby, Some(&t.read_key), &format!("{base}{query}")).await;
            assert_eq!(
                (s, b.clone()),
                (400, json!({ "error": want })),
                "{base}{query}"
            );
        }
    }
    let (s, b) = get(&lobby, Some(&t.read_key), "/v1/sessions/summary").await;
    assert_eq!(
        (s, b.clone()),
        (400, json!({ "error": "sessionId is required" }))
    );
    let (s, b) = regenerate(&lobby, &t.rw_key, json!({})).await;
    assert_eq!(
        (s, b.clone()),
        (400, json!({ "error": "sessionId is required" }))
    );

    // A type or project that does not match the record: Session not found.
    let other_project = lobby
        .admin_json(
            Method::POST,
            &format!("/accounts/{acct}/projects"),
            Some(json!({"name": "other"})),
        )
        .await
        .1["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let not_found = json!({ "error": "Session not found" });
    for query in [
        q("status", "&type=instant"),
        q(
            "status",
            &format!("&type=project&projectId={other_project}"),
        ),
        q("status", "&type=project&projectId=proj_nope"),
        format!("/v1/session/status?sessionId=nope-{session}{typed}"),
        q("transcript", "&type=instant"),
        q("audio", &format!("&type=project&projectId={other_project}")),
        format!("/v1/sessions/summary?sessionId={session}&instant_voice_links=1"),
        format!("/v1/sessions/summary?sessionId={session}&projectId={other_project}"),
    ] {
        let (s, b) = get(&lobby, Some(&t.read_key), &query).await;
        assert_eq!((s, b.clone()), (404, not_found.clone()), "{query}");
    }

    // Credentials: 401 without a good key, 403 without the scope.
    let (s, b) = get(&lobby, None, &q("status", &typed)).await;
    assert_eq!(s, 401, "{b}");
    assert!(
        b["error"].is_string() && b.as_object().expect("obj").len() == 1,
        "{b}"
    );
    let (s, b) = get(&lobby, Some("lby_nope_nope"), &q("status", &typed)).await;
    assert_eq!(s, 401, "{b}");
    let links_only = lobby.create_api_key(acct, &["links:write"]).await;
    let (s, b) = get(&lobby, Some(&links_only), &q("status", &typed)).await;
    assert_eq!(s, 403, "{b}");
    assert!(b["error"].is_string(), "{b}");
    let (s, b) = regenerate(&lobby, &t.read_key, json!({ "sessionId": session })).await;
    assert_eq!(s, 403, "regenerate needs sessions:write: {b}");
    // Authentication comes before validation.
    let (s, _) = get(&lobby, None, "/v1/session/status").await;
    assert_eq!(s, 401);

    // Uploaded by the session's worker, then served.
    let size = t
        .uploads
        .upload_transcript(&session, &transcript())
        .await
        .expect("transcript upload");
    assert!(size > 100);
    let (s, b) = get(&lobby, Some(&t.read_key), &q("transcript", &typed)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b,
        json!({ "success": true, "sessionId": session, "transcript": transcript() })
    );
    let audio = wav(16_000);
    t.uploads
        .upload_audio(&session, std::io::Cursor::new(audio.clone()))
        .await
        .expect("audio upload");
    let (s, b) = get(&lobby, Some(&t.read_key), &q("audio", &typed)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["success"].clone(), b["sessionId"].clone()),
        (json!(true), json!(session))
    );
    let url = b["audioUrl"].as_str().expect("audioUrl");
    let served = lobby.http.get(url).send().await.expect("download");
    assert_eq!(served.status(), 200);
    assert_eq!(served.bytes().await.expect("bytes").to_vec(), audio);

    // The session ends: completedAt appears, status follows.
    lobby.end_session(&session).await;
    let (_, b) = get(&lobby, Some(&t.read_key), &q("status", &typed)).await;
    assert_eq!(b["status"], "ended", "{b}");
    assert!(
        b["completedAt"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{b}"
    );

    // A link session is addressed as instant, and only so.
    let instant = instant_session(&lobby, &t).await;
    let (s, b) = get(
        &lobby,
        Some(&t.read_key),
        &format!("/v1/session/status?sessionId={instant}&type=instant"),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["type"], "instant");
    assert!(b.get("projectId").is_none(), "{b}");
    let (s, _) = get(
        &lobby,
        Some(&t.read_key),
        &format!("/v1/session/status?sessionId={instant}{typed}"),
    )
    .await;
    assert_eq!(s, 404);
    let (s, b) = get(
        &lobby,
        Some(&t.read_key),
        &format!("/v1/sessions/summary?sessionId={instant}"),
    )
    .await;
    assert_eq!(
        (s, b),
        (404, not_found.clone()),
        "a link session without instant_voice_links"
    );
    let (s, b) = get(
        &lobby,
        Some(&t.read_key),
        &format!("/v1/sessions/summary?sessionId={instant}&instant_voice_links=yes"),
    )
    .await;
    assert_eq!(s, 404, "no transcript yet: {b}");
    assert_eq!(
        b["error"],
        format!("conversation.json not found for session {instant}")
    );
}

/// Another account sees none of this account's sessions, on any route;
/// its worker uploads into none of them.
#[tokio::test]
async fn another_account_sees_and_writes_nothing_of_this_ones() {
    let lobby = Lobby::start(options(vec![])).await;
    let a = tenant(&lobby, "gpu-a").await;
    let b = tenant(&lobby, "gpu-b").await;
    let session = project_session(&lobby, &a).await;
    a.uploads
        .upload_transcript(&session, &transcript())
        .await
        .expect("upload");
    let not_found = json!({ "error": "Session not found" });
    let mut tried = 0;
    for path in [
        format!(
            "/v1/session/status?sessionId={session}&type=project&projectId={}",
            a.project
        ),
        format!(
            "/v1/session/status?sessionId={session}&type=project&projectId={}",
            b.project
        ),
        format!(
            "/v1/session/transcript?sessionId={session}&type=project&projectId={}",
            a.project
        ),
        format!(
            "/v1/session/audio?sessionId={session}&type=project&projectId={}",
            a.project
        ),
        format!("/v1/sessions/summary?sessionId={session}"),
        format!(
            "/v1/sessions/summary?sessionId={session}&projectId={}",
            a.project
        ),
    ] {
        tried += 1;
        let (s, body) = get(&lobby, Some(&b.rw_key), &path).await;
        assert_eq!((s, body), (404, not_found.clone()), "{path}");
    }
    tried += 1;
    let (s, body) = regenerate(&lobby, &b.rw_key, json!({ "sessionId": session })).await;
    assert_eq!((s, body), (404, not_found.clone()));
    // B's worker cannot write A's artifacts, nor get an upload URL for them.
    tried += 1;
    let refused = b
        .uploads
        .upload_transcript(&session, &json!({"messages": []}))
        .await;
    assert_eq!(code(refused.expect_err("refused")), "session_not_found");
    tried += 1;
    let refused = b
        .uploads
        .upload_audio(&session, std::io::Cursor::new(wav(100)))
        .await;
    assert_eq!(code(refused.expect_err("refused")), "session_not_found");
    tried += 1;
    let door = lobby.workers_door();
    let refused = upload_url(
        &lobby,
        &door.records_url,
        &b.worker_key,
        &session,
        WorkerArtifact::Audio,
    )
    .await;
    assert_eq!(refused.expect_err("refused"), "session_not_found");
    // A's transcript is untouched.
    let (_, body) = typed(&lobby, &a, "transcript", &session).await;
    assert_eq!(body["transcript"], transcript());
    println!("artifacts, cross-account: {tried} of {tried} refused");
}

/// A signed upload URL through the workers' door (the SDKs upload over
/// gRPC; this is for a worker that would rather PUT).
async fn upload_url(
    lobby: &Lobby,
    door_url: &str,
    key: &str,
    session: &str,
    artifact: WorkerArtifact,
) -> Result<String, String> {
    let tls = tonic::transport::ClientTlsConfig::new().ca_certificate(
        tonic::transport::Certificate::from_pem(std::fs::read(lobby.certs.ca()).expect("ca")),
    );
    let channel = tonic::transport::Endpoint::from_shared(door_url.to_owned())
        .expect("url")
        .tls_config(tls)
        .expect("tls")
        .connect()
        .await
        .expect("door");
    let mut req = tonic::Request::new(WorkerUploadUrlRequest {
        session_id: session.to_owned(),
        artifact: artifact as i32,
    });
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("header"),
    );
    WorkerArtifactsClient::new(channel)
        .sign_upload_url(req)
        .await
        .map(|r| r.into_inner().url)
        .map_err(|s| {
            lobby_kit::grpc::machine_code(&s)
                .map(|c| c.as_str().to_owned())
                .unwrap_or_else(|| s.message().to_owned())
        })
}

/// A large WAV streamed in chunks is published only when complete (a
/// reader polling throughout sees none of it before), is served whole and
/// in ranges, and decodes; past the cap nothing is published at all.
#[tokio::test]
async fn a_large_wav_uploaded_in_chunks_is_published_whole_and_served_in_ranges() {
    let cap = 6_000_000;
    let lobby = Lobby::start(options(vec![(
        "LOBBY_ARTIFACTS_MAX_AUDIO_BYTES".into(),
        cap.to_string(),
    )]))
    .await;
    let t = tenant(&lobby, "gpu-wav").await;
    let session = project_session(&lobby, &t).await;
    let audio_route = format!(
        "/v1/session/audio?sessionId={session}&type=project&projectId={}",
        t.project
    );
    // 150 s of 16 kHz audio: 4.8 MB, three parts.
    let audio = wav(16_000 * 150);
    let (mut writer, reader) = tokio::io::duplex(64 * 1024);
    let uploads = t.uploads.clone();
    let upload_session = session.clone();
    let upload = tokio::spawn(async move { uploads.upload_audio(&upload_session, reader).await });
    let mut polls = 0;
    for piece in audio.chunks(400_000) {
        tokio::io::AsyncWriteExt::write_all(&mut writer, piece)
            .await
            .expect("feed");
        tokio::time::sleep(Duration::from_millis(30)).await;
        let (s, b) = get(&lobby, Some(&t.read_key), &audio_route).await;
        assert_eq!(
            s, 404,
            "nothing is visible before the upload completes: {b}"
        );
        polls += 1;
    }
    drop(writer);
    let size = upload.await.expect("task").expect("upload");
    assert_eq!(size, audio.len() as u64);
    assert!(polls >= 10);

    let (s, b) = get(&lobby, Some(&t.read_key), &audio_route).await;
    assert_eq!(s, 200, "{b}");
    let url = b["audioUrl"].as_str().expect("url").to_owned();
    assert!(url.starts_with(lobby.gateway()), "{url}");
    let expires: i64 = url
        .split("expires=")
        .nth(1)
        .and_then(|v| v.split('&').next())
        .and_then(|v| v.parse().ok())
        .expect("expires");
    let hour = expires - lobby_tests::now_ms() / 1000;
    assert!(
        (3500..=3600).contains(&hour),
        "valid for about an hour: {hour}"
    );

    let whole = lobby.http.get(&url).send().await.expect("get");
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    assert_eq!(whole.headers()["content-type"], "audio/wav");
    let body = whole.bytes().await.expect("body").to_vec();
    assert_eq!(body, audio, "served whole, byte for byte");
    let decoded = hound::WavReader::new(std::io::Cursor::new(&body)).expect("a WAV");
    assert_eq!(decoded.spec().sample_rate, 16_000);
    assert_eq!(decoded.len() as usize, 16_000 * 150);

    let total = audio.len();
    for (range, from, to) in [
        ("bytes=0-43".to_owned(), 0, 44),
        (format!("bytes={}-", total - 1000), total - 1000, total),
        ("bytes=-2048".to_owned(), total - 2048, total),
        ("bytes=2097000-2098000".to_owned(), 2_097_000, 2_098_001),
    ] {
        let r = lobby
            .http
            .get(&url)
            .header("range", &range)
            .send()
            .await
            .expect("range");
        assert_eq!(r.status(), 206, "{range}");
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes {from}-{}/{total}", to - 1).as_str(),
            "{range}"
        );
        assert_eq!(
            r.bytes().await.expect("bytes").to_vec(),
            audio[from..to],
            "{range}"
        );
    }
    let r = lobby
        .http
        .get(&url)
        .header("range", format!("bytes={total}-"))
        .send()
        .await
        .expect("range");
    assert_eq!(r.status(), 416);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes */{total}").as_str()
    );
    let head = lobby.http.head(&url).send().await.expect("head");
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], total.to_string().as_str());

    // Past the cap: refused, and the earlier audio stands untouched.
    let too_big = wav(cap / 2 + 1000);
    let refused = t
        .uploads
        .upload_audio(&session, std::io::Cursor::new(too_big))
        .await;
    assert_eq!(code(refused.expect_err("past the cap")), "upload_too_large");
    // Not a WAV: refused.
    let refused = t
        .uploads
        .upload_audio(&session, std::io::Cursor::new(vec![7u8; 10_000]))
        .await;
    assert_eq!(code(refused.expect_err("not a WAV")), "invalid_request");
    let again = lobby.http.get(&url).send().await.expect("get");
    assert_eq!(again.bytes().await.expect("body").to_vec(), audio);
    // No staged part is left behind by the refusals.
    let staged = lobby.dir.join("artifacts").join("uploads");
    let left: Vec<_> = std::fs::read_dir(&staged)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    let parts: usize = left
        .iter()
        .map(|d| std::fs::read_dir(d).map(|x| x.count()).unwrap_or(0))
        .sum();
    assert_eq!(parts, 0, "staged parts left: {left:?}");

    // The same through a signed PUT URL.
    let door = lobby.workers_door();
    let put_url = upload_url(
        &lobby,
        &door.records_url,
        &t.worker_key,
        &session,
        WorkerArtifact::Audio,
    )
    .await
    .expect("upload URL");
    let short = wav(8_000);
    let r = lobby
        .http
        .put(&put_url)
        .body(short.clone())
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let (_, b) = get(&lobby, Some(&t.read_key), &audio_route).await;
    let served = lobby
        .http
        .get(b["audioUrl"].as_str().expect("url"))
        .send()
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(served.to_vec(), short);
    let json_url = upload_url(
        &lobby,
        &door.records_url,
        &t.worker_key,
        &session,
        WorkerArtifact::Transcript,
    )
    .await
    .expect("upload URL");
    let r = lobby
        .http
        .put(&json_url)
        .json(&transcript())
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 200);
    let (_, b) = typed(&lobby, &t, "transcript", &session).await;
    assert_eq!(b["transcript"], transcript());
}

/// Signed URLs: a tampered, expired, re-pointed or re-purposed URL is 403;
/// only the URL as issued, in its hour, for its method, works.
#[tokio::test]
async fn signed_urls_refuse_tampering_expiry_and_swaps() {
    use hmac::{Hmac, Mac};
    let lobby = Lobby::start(options(vec![])).await;
    let a = tenant(&lobby, "gpu-sig-a").await;
    let b = tenant(&lobby, "gpu-sig-b").await;
    let (s1, s2) = (
        project_session(&lobby, &a).await,
        project_session(&lobby, &a).await,
    );
    let sb = project_session(&lobby, &b).await;
    for (t, s) in [(&a, &s1), (&a, &s2), (&b, &sb)] {
        t.uploads
            .upload_audio(s, std::io::Cursor::new(wav(1000)))
            .await
            .expect("upload");
        t.uploads
            .upload_transcript(s, &transcript())
            .await
            .expect("upload");
    }
    let (_, body) = typed(&lobby, &a, "audio", &s1).await;
    let url = body["audioUrl"].as_str().expect("url").to_owned();
    let ok = lobby.http.get(&url).send().await.expect("get");
    assert_eq!(ok.status(), 200);

    let (path, query) = url.split_once('?').expect("query");
    let param = |k: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .expect("param")
            .to_owned()
    };
    let (expires, kid, sig) = (param("expires"), param("kid"), param("sig"));
    let flipped = format!(
        "{}{}",
        &sig[..sig.len() - 1],
        if sig.ends_with('0') { '1' } else { '0' }
    );
    let path_of = |acct: &str, session: &str, name: &str| {
        format!(
            "{}/artifacts/accounts/{acct}/sessions/{session}/{name}",
            lobby.gateway()
        )
    };
    // A correctly signed URL that expired a second ago.
    let past = lobby_tests::now_ms() / 1000 - 1;
    let key_path = path.trim_start_matches(lobby.gateway());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SIGNING_SECRET.as_bytes()).expect("key");
    mac.update(format!("GET\n{key_path}\n{past}\n{kid}").as_bytes());
    let expired_sig = hex::encode(mac.finalize().into_bytes());

    let attacks: Vec<(&str, Method, String)> = vec![
        (
            "flipped signature",
            Method::GET,
            format!("{path}?expires={expires}&kid={kid}&sig={flipped}"),
        ),
        (
            "later expiry",
            Method::GET,
            format!(
                "{path}?expires={}&kid={kid}&sig={sig}",
                expires.parse::<i64>().expect("n") + 3600
            ),
        ),
        (
            "another key id",
            Method::GET,
            format!("{path}?expires={expires}&kid=k9&sig={sig}"),
        ),
        (
            "no signature",
            Method::GET,
            format!("{path}?expires={expires}&kid={kid}"),
        ),
        ("no query", Method::GET, path.to_owned()),
        (
            "another session's audio",
            Method::GET,
            format!("{}?{query}", path_of(&a.account, &s2, "conversation.wav")),
        ),
        (
            "another account's audio",
            Method::GET,
            format!("{}?{query}", path_of(&b.account, &sb, "conversation.wav")),
        ),
        (
            "the transcript instead",
            Method::GET,
            format!("{}?{query}", path_of(&a.account, &s1, "conversation.json")),
        ),
        (
            "a traversal",
            Method::GET,
            format!(
                "{}?{query}",
                path_of(&a.account, &format!("{s1}/../{s2}"), "conversation.wav")
            ),
        ),
        ("PUT with a GET URL", Method::PUT, url.clone()),
        (
            "expired, signed right",
            Method::GET,
            format!("{path}?expires={past}&kid={kid}&sig={expired_sig}"),
        ),
    ];
    let tried = attacks.len();
    let mut refused = 0;
    for (what, method, attack) in attacks {
        let r = lobby
            .http
            .request(method.clone(), &attack)
            .body(wav(10))
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        // A traversal may be normalised away by the client or router
        // before it reaches the route; either way it gets nothing.
        if what == "a traversal" {
            assert!(matches!(status, 403 | 404), "{what}: {status} {text}");
        } else {
            assert_eq!(status, 403, "{what}: {text}");
            let body: Value = serde_json::from_str(&text).expect("JSON");
            assert!(body["error"].is_string(), "{what}: {body}");
        }
        refused += 1;
    }
    // A PUT URL does not read.
    let door = lobby.workers_door();
    let put_url = upload_url(
        &lobby,
        &door.records_url,
        &a.worker_key,
        &s1,
        WorkerArtifact::Audio,
    )
    .await
    .expect("url");
    let r = lobby.http.get(&put_url).send().await.expect("get");
    assert_eq!(r.status(), 403, "GET with a PUT URL");
    refused += 1;
    // Nothing changed: the original still serves the original.
    let again = lobby.http.get(&url).send().await.expect("get");
    assert_eq!(again.bytes().await.expect("bytes").to_vec(), wav(1000));
    println!("artifacts, signed URLs: {refused} of {} refused", tried + 1);
}

async fn wait_summary(lobby: &Lobby, key: &str, session: &str) -> Value {
    for _ in 0..150 {
        let (s, b) = get(
            lobby,
            Some(key),
            &format!("/v1/sessions/summary?sessionId={session}"),
        )
        .await;
        if s == 200 {
            return b;
        }
        assert_eq!(s, 202, "{b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no summary for {session}");
}

/// The offline summarizer: key sentences by TextRank and the facts; a
/// second GET while a run is in flight returns that run; regenerate starts
/// a new one.
#[tokio::test]
async fn summaries_are_generated_offline_served_and_regenerated() {
    let lobby = Lobby::start(options(vec![])).await;
    let t = tenant(&lobby, "gpu-sum").await;
    let session = project_session(&lobby, &t).await;
    t.uploads
        .upload_transcript(&session, &transcript())
        .await
        .expect("upload");
    let (s, first) = get(
        &lobby,
        Some(&t.read_key),
        &format!(
            "/v1/sessions/summary?sessionId={session}&projectId={}",
            t.project
        ),
    )
    .await;
    assert_eq!(s, 202, "{first}");
    assert_eq!(first["success"], false);
    assert_eq!(first["generating"], true);
    assert_eq!(first["sessionId"], session.as_str());
    let (wf, run) = (
        first["workflowId"].as_str().expect("wf"),
        first["runId"].as_str().expect("run"),
    );
    let summary = wait_summary(&lobby, &t.read_key, &session).await;
    assert_eq!(summary["success"], true);
    let s = &summary["summary"];
    assert_eq!(s["method"], "textrank", "{s}");
    assert!(
        s["summary"]
            .as_str()
            .is_some_and(|x| x.contains("order 1234")),
        "{s}"
    );
    assert_eq!(s["facts"]["turns"], 4, "{s}");
    assert_eq!(s["facts"]["speakers"]["user"]["turns"], 2, "{s}");
    assert_eq!(s["facts"]["speakers"]["user"]["questions"], 2, "{s}");
    assert_eq!(
        s["facts"]["questions"].as_array().map(Vec::len),
        Some(2),
        "{s}"
    );
    assert_eq!(s["facts"]["durationSeconds"], 31, "{s}");

    // Regenerate: a new run of the same workflow, even with a summary.
    let (st, r) = regenerate(
        &lobby,
        &t.rw_key,
        json!({ "sessionId": session, "projectId": t.project }),
    )
    .await;
    assert_eq!(st, 202, "{r}");
    assert_eq!(r["success"], true);
    assert_eq!(r["workflowId"], wf);
    assert_ne!(r["runId"], run);
    assert!(r.get("generating").is_none(), "{r}");
    wait_summary(&lobby, &t.read_key, &session).await;
}

/// The OpenAI-compatible backend, against a stand-in that checks the
/// request's shape; while its run is in flight every GET returns that
/// run's ids.
#[tokio::test]
async fn the_openai_compatible_summarizer_sends_a_chat_completion_and_one_run_at_a_time() {
    let standin = SummarizerStandIn::start(Answer::HoldUntilReleased).await;
    // The request is held while the test looks: give it far longer than
    // that takes on a loaded machine, so that it is never timed out and
    // retried (which would be a second request for the same run).
    let lobby = Lobby::start(options(standin.settings_timed(20_000, 25_000, 25_000))).await;
    let t = tenant(&lobby, "gpu-llm").await;
    let session = project_session(&lobby, &t).await;
    t.uploads
        .upload_transcript(&session, &transcript())
        .await
        .expect("upload");
    let path = format!("/v1/sessions/summary?sessionId={session}");
    let answers = join_all((0..5).map(|_| get(&lobby, Some(&t.read_key), &path))).await;
    let ids: std::collections::BTreeSet<(String, String)> = answers
        .iter()
        .map(|(s, b)| {
            assert_eq!(*s, 202, "{b}");
            (
                b["workflowId"].as_str().expect("wf").to_owned(),
                b["runId"].as_str().expect("run").to_owned(),
            )
        })
        .collect();
    assert_eq!(ids.len(), 1, "one run for concurrent GETs: {ids:?}");
    for _ in 0..50 {
        if !standin.requests().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, b) = get(&lobby, Some(&t.read_key), &path).await;
    assert_eq!(s, 202, "still in flight: {b}");
    assert_eq!(
        (
            b["workflowId"].as_str().expect("wf").to_owned(),
            b["runId"].as_str().expect("run").to_owned()
        ),
        ids.into_iter().next().expect("ids")
    );
    standin.release();
    let summary = wait_summary(&lobby, &t.read_key, &session).await;
    assert_eq!(summary["summary"]["summary"], SUMMARY_TEXT);
    assert_eq!(summary["summary"]["method"], "openai:test-model");
    assert_eq!(summary["summary"]["facts"]["turns"], 4);

    let requests = standin.requests();
    assert_eq!(requests.len(), 1, "one request for one run");
    let (headers, body) = &requests[0];
    assert_eq!(headers["authorization"], "Bearer sk-test-123");
    assert_eq!(body["model"], "test-model");
    let messages = body["messages"].as_array().expect("messages");
    assert_eq!(messages[0]["role"], "system");
    assert_eq!(messages[1]["role"], "user");
    let said = messages[1]["content"].as_str().expect("content");
    assert!(said.contains("user: Hi. I ordered a blue kettle"), "{said}");
    assert!(
        said.contains("assistant: Yes, a confirmation email"),
        "{said}"
    );
}

/// A consumer killed with `kill -9` mid-job: another (the restarted
/// process) claims the job once it is idle and finishes it, same run.
#[tokio::test]
async fn a_summary_job_whose_consumer_dies_is_claimed_and_finished() {
    let standin = SummarizerStandIn::start(Answer::HangFirst).await;
    let mut lobby = Lobby::start(LobbyOptions {
        redis_aof: true,
        ..options(standin.settings_timed(4_000, 4_500, 5_000))
    })
    .await;
    let t = tenant(&lobby, "gpu-crash").await;
    let session = project_session(&lobby, &t).await;
    t.uploads
        .upload_transcript(&session, &transcript())
        .await
        .expect("upload");
    let (s, started) = get(
        &lobby,
        Some(&t.read_key),
        &format!("/v1/sessions/summary?sessionId={session}"),
    )
    .await;
    assert_eq!(s, 202, "{started}");
    for _ in 0..200 {
        if !standin.requests().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(standin.requests().len(), 1, "the job is in flight");
    let consumer = match lobby.topology {
        Topology::Split => "artifacts",
        Topology::CoLocated => "server-0",
    };
    lobby.crash(consumer);
    tokio::time::sleep(Duration::from_millis(200)).await;
    lobby.restart(consumer).await;
    let summary = wait_summary(&lobby, &t.read_key, &session).await;
    assert_eq!(summary["summary"]["summary"], SUMMARY_TEXT);
    assert_eq!(
        standin.requests().len(),
        2,
        "retried once, by the new consumer"
    );
    // The killed process's consumer, idle with nothing pending, is removed
    // from the group; the live one stays.
    let mut redis = redis::Client::open(lobby.redis.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let mut consumers = Vec::new();
    for _ in 0..100 {
        let info: Vec<Vec<redis::Value>> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg("{summaries}:jobs")
            .arg("summarizers")
            .query_async(&mut redis)
            .await
            .expect("xinfo");
        consumers = info;
        if consumers.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        consumers.len(),
        1,
        "the stopped consumer is removed: {consumers:?}"
    );
    // The same run finished: regenerate shows the workflow went on.
    let (_, r) = regenerate(&lobby, &t.rw_key, json!({ "sessionId": session })).await;
    assert_eq!(r["workflowId"], started["workflowId"]);
}

/// A summarizer that keeps failing: the failure shows on the next GET
/// while retries remain; after the last attempt the job is dead-lettered
/// and GET says so; regenerate starts over.
#[tokio::test]
async fn a_failing_summary_is_retried_then_dead_lettered() {
    let standin = SummarizerStandIn::start(Answer::Fail).await;
    let mut settings = standin.settings();
    settings.extend([
        ("LOBBY_SUMMARY_MAX_ATTEMPTS".to_owned(), "3".to_owned()),
        ("LOBBY_SUMMARY_CLAIM_IDLE_MS".to_owned(), "1600".to_owned()),
    ]);
    let lobby = Lobby::start(options(settings)).await;
    let t = tenant(&lobby, "gpu-dead").await;
    let session = project_session(&lobby, &t).await;
    t.uploads
        .upload_transcript(&session, &transcript())
        .await
        .expect("upload");
    let path = format!("/v1/sessions/summary?sessionId={session}");
    let (s, first) = get(&lobby, Some(&t.read_key), &path).await;
    assert_eq!(s, 202, "{first}");
    // After the first failure, the retry is pending and the error shows.
    let mut seen_error = false;
    let mut dead = Value::Null;
    for _ in 0..150 {
        let (s, b) = get(&lobby, Some(&t.read_key), &path).await;
        match s {
            202 => {
                assert_eq!(b["runId"], first["runId"], "retries keep the run");
                if b["lastError"].as_str().is_some_and(|e| e.contains("500")) {
                    seen_error = true;
                }
            }
            500 => {
                dead = b;
                break;
            }
            other => panic!("{other}: {b}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen_error, "the failure was visible while retrying");
    let error = dead["error"]
        .as_str()
        .unwrap_or_else(|| panic!("dead-lettered: {dead}"));
    assert!(
        error.contains("after 3 attempts") && error.contains("500"),
        "{error}"
    );
    assert_eq!(standin.requests().len(), 3);
    let mut redis = redis::Client::open(lobby.redis.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let dead_letters: Vec<redis::Value> = redis::cmd("XRANGE")
        .arg("{summaries}:dead")
        .arg("-")
        .arg("+")
        .query_async(&mut redis)
        .await
        .expect("xrange");
    assert_eq!(dead_letters.len(), 1, "one dead letter");
    let pending: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg("{summaries}:jobs")
        .arg("summarizers")
        .arg("-")
        .arg("+")
        .arg(10)
        .query_async(&mut redis)
        .await
        .expect("xpending");
    assert!(pending.is_empty(), "nothing left pending");
    // GET does not start another run on its own; regenerate does.
    let (s, _) = get(&lobby, Some(&t.read_key), &path).await;
    assert_eq!(s, 500);
    let (s, r) = regenerate(&lobby, &t.rw_key, json!({ "sessionId": session })).await;
    assert_eq!(s, 202, "{r}");
    assert_ne!(r["runId"], first["runId"]);
}

/// The S3 store, against a real S3-compatible server: uploads land in the
/// bucket under the account's prefix, the audio URL is presigned S3, and
/// deleting the session (seed 004) empties its prefix.
#[tokio::test]
async fn the_s3_store_serves_presigned_audio_and_deletes_with_the_session() {
    let dir = lobby_tests::scratch_dir("s3");
    let s3 = S3Server::start(&dir, "lobby-artifacts").await;
    let lobby = Lobby::start(options(s3.settings())).await;
    let t = tenant(&lobby, "gpu-s3").await;
    let session = project_session(&lobby, &t).await;
    t.uploads
        .upload_transcript(&session, &transcript())
        .await
        .expect("transcript");
    let audio = wav(16_000 * 70); // 2.2 MB: two parts
    t.uploads
        .upload_audio(&session, std::io::Cursor::new(audio.clone()))
        .await
        .expect("audio");
    let prefix = format!("accounts/{}/sessions/{session}/", t.account);
    let mut keys = s3.keys(&prefix).await;
    keys.sort();
    assert_eq!(
        keys,
        vec![
            format!("{prefix}conversation.json"),
            format!("{prefix}conversation.wav")
        ]
    );
    assert!(s3.keys("uploads/").await.is_empty(), "no staging left");
    let (s, b) = typed(&lobby, &t, "audio", &session).await;
    assert_eq!(s, 200, "{b}");
    let url = b["audioUrl"].as_str().expect("url");
    assert!(
        url.starts_with(&s3.endpoint) && url.contains("X-Amz-Signature="),
        "{url}"
    );
    assert!(url.contains("X-Amz-Expires=3600"), "{url}");
    let served = lobby
        .http
        .get(url)
        .send()
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(served.to_vec(), audio);
    hound::WavReader::new(std::io::Cursor::new(served.to_vec())).expect("a WAV");
    let (s, b) = typed(&lobby, &t, "transcript", &session).await;
    assert_eq!((s, b["transcript"].clone()), (200, transcript()));
    t.uploads
        .upload_transcript(&session, &transcript())
        .await
        .expect("again");
    let summary = wait_summary(&lobby, &t.read_key, &session).await;
    assert_eq!(summary["summary"]["method"], "textrank");
    assert_eq!(
        s3.keys(&prefix).await.len(),
        3,
        "summary.json stored beside"
    );

    // Seed 004's delete ends the session and removes its artifacts.
    assert_eq!(delete_record(&lobby, &t, &session).await, 200);
    assert!(
        s3.keys(&prefix).await.is_empty(),
        "artifacts deleted with the session"
    );
}

/// On the filesystem store too, deleting a session removes its folder, and
/// so does the sweeper's purge at the end of an ended session's retention.
#[tokio::test]
async fn deleting_or_purging_a_session_removes_its_artifacts() {
    let lobby = Lobby::start(options(vec![(
        "LOBBY_ENDED_SESSION_TTL_SECONDS".into(),
        "2".into(),
    )]))
    .await;
    let t = tenant(&lobby, "gpu-del").await;
    let (gone, purged, kept) = (
        project_session(&lobby, &t).await,
        project_session(&lobby, &t).await,
        project_session(&lobby, &t).await,
    );
    for s in [&gone, &purged, &kept] {
        t.uploads
            .upload_transcript(s, &transcript())
            .await
            .expect("upload");
        t.uploads
            .upload_audio(s, std::io::Cursor::new(wav(1000)))
            .await
            .expect("upload");
    }
    let folder = |s: &str| {
        lobby
            .dir
            .join("artifacts/accounts")
            .join(&t.account)
            .join("sessions")
            .join(s)
    };
    let files = |s: &str| -> Vec<std::ffi::OsString> {
        std::fs::read_dir(folder(s))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default()
    };
    assert_eq!(files(&gone).len(), 2);
    assert_eq!(delete_record(&lobby, &t, &gone).await, 200);
    assert!(files(&gone).is_empty(), "{:?}", files(&gone));
    let (s, _) = typed(&lobby, &t, "status", &gone).await;
    assert_eq!(s, 404);

    // Ended, then purged by the sweeper two seconds later: artifacts too.
    lobby.end_session(&purged).await;
    let began = std::time::Instant::now();
    while !files(&purged).is_empty() {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "kept past its retention: {:?}",
            files(&purged)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(files(&kept).len(), 2, "a live session keeps its own");
}
