//! The real thing, end to end on a real `livekit-server --dev`: the Python
//! example worker (LiveKit's Python SDK) attaches over gRPC, a seed-002 link
//! start waits for it to accept, it joins the room as the agent and
//! publishes audio; a user joins with LiveKit's Python SDK, sees the agent's
//! identity and receives its audio track, and leaves; LiveKit's webhook then
//! ends the session and everything held comes back. The worker uploads the
//! session's transcript and audio at its end; seed 003 serves them and the
//! summary.

use lobby_rooms::workers::Registry;
use lobby_tests::{
    avatar_server::AvatarServer, livekit, process::ChildGuard, Lobby, LobbyOptions, Webhooks,
};
use reqwest::Method;
use serde_json::{json, Value};
use std::{path::PathBuf, process::Command, time::Duration};

const TEST: &str = "a_user_meets_the_python_worker_agent_and_leaving_ends_the_session";

#[tokio::test]
async fn a_user_meets_the_python_worker_agent_and_leaving_ends_the_session() {
    let options = LobbyOptions {
        worker: false,
        extra_env: vec![("LOBBY_SESSION_LEASE_MS".into(), "3600000".into())],
        ..Default::default()
    };
    let Some((server, lobby)) = Lobby::start_on_livekit(TEST, Webhooks::ToLobby, options).await
    else {
        return;
    };
    let dir = lobby.dir.clone();

    // The Python example worker, as a GPU service would run it.
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = Command::new(livekit::python());
    cmd.arg(repo.join("sdk/worker-python/examples/livekit_avatar_worker.py"))
        .env("LOBBY_WORKERS_URL", lobby.workers_door().url)
        .env(
            "LOBBY_SESSION_WORKERS_URL",
            lobby.workers_door().records_url,
        )
        .env("LOBBY_WORKER_CA_FILE", lobby.certs.ca())
        .env(
            "LOBBY_WORKER_KEY",
            lobby
                .workers_door()
                .key_for("py-worker", serde_json::json!({ "pool": "default" }))
                .await,
        )
        .env("WORKER_ID", "py-worker")
        .env("WORKER_CAPACITY", "2")
        // Longer than the webhook takes, so Lobby (not the worker) ends it.
        .env("SOLO_TIMEOUT_SECONDS", "60");
    let worker = ChildGuard::spawn("python-worker", cmd, &dir);
    let registry = Registry::new(lobby.redis.connection().await, 10_000);
    let attached = async {
        for _ in 0..200 {
            if registry
                .state("py-worker")
                .await
                .ok()
                .flatten()
                .is_some_and(|w| w.connected)
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
    .await;
    assert!(
        attached,
        "the Python worker did not attach: {}",
        worker.log_tail()
    );

    let avatars = AvatarServer::start().await;
    let account = lobby.create_account(2).await;
    let agent = lobby
        .create_agent(
            &account,
            json!({ "avatar_image_url": avatars.url("face.jpg") }),
        )
        .await;
    let link = lobby.create_link(&account, &agent, json!({})).await;
    let r = lobby.start_link(&json!({ "link_id": link["id"] })).await;
    let status = r.status();
    let started: Value = r.json().await.expect("json");
    assert_eq!(status, 200, "{started} / worker: {}", worker.log_tail());
    let session_id = started["session_id"].as_str().expect("id").to_owned();
    assert_eq!(
        registry
            .state("py-worker")
            .await
            .expect("state")
            .map(|w| w.reserved),
        Some(1)
    );

    // The user joins with LiveKit's own SDK and waits for the agent's voice.
    let user = tokio::process::Command::new(livekit::python())
        .arg(repo.join("tests/py/join_as_user.py"))
        .args([
            started["livekit_url"].as_str().expect("url"),
            started["participant_token"].as_str().expect("token"),
            started["agent_identity"].as_str().expect("identity"),
            "20",
        ])
        .kill_on_drop(true)
        .output()
        .await
        .expect("user script");
    let seen: Value = serde_json::from_slice(&user.stdout).unwrap_or_else(|_| {
        panic!(
            "user script printed no JSON: {} {} / worker: {}",
            String::from_utf8_lossy(&user.stdout),
            String::from_utf8_lossy(&user.stderr),
            worker.log_tail()
        )
    });
    assert_eq!(
        seen,
        json!({ "agent_seen": true, "audio_track": true }),
        "worker: {}",
        worker.log_tail()
    );

    // The user left: the webhook ends the session within a bounded wait.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut record = Value::Null;
    while tokio::time::Instant::now() < deadline {
        record = lobby
            .admin_json(Method::GET, &format!("/sessions/{session_id}"), None)
            .await
            .1;
        if record["status"] == "ended" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        record["ended_reason"],
        "user_left",
        "{record} / worker: {}",
        worker.log_tail()
    );
    assert_eq!(
        lobby.active_sessions(&account).await,
        0,
        "the slot came back"
    );
    assert_eq!(
        registry
            .state("py-worker")
            .await
            .expect("state")
            .map(|w| w.reserved),
        Some(0)
    );
    assert!(server
        .room_client()
        .list_rooms(vec![format!("lobby-{session_id}")])
        .await
        .expect("list")
        .is_empty());

    // What the agent said is in the session's record, through the records
    // contract (the worker wrote it with its own key, sealed at rest).
    let listed = lobby.records(&account, &format!("id={session_id}")).await;
    let said: Value =
        serde_json::from_str(listed[0]["messages"].as_str().unwrap_or("null")).unwrap_or_default();
    assert_eq!(
        said,
        json!([{ "role": "assistant", "content": "Hello, I am your avatar." }]),
        "{listed} / worker: {}",
        worker.log_tail()
    );
    assert_eq!(listed[0]["completionTokens"], 5, "{listed}");

    // At its end the worker uploaded the session's transcript and the audio
    // it published (the Python SDK's upload_transcript and upload_audio);
    // seed 003 serves them, and summarizes the transcript.
    let key = lobby.create_api_key(&account, &["sessions:read"]).await;
    let seed_003 = |path: String| {
        let (http, gateway, key) = (lobby.http.clone(), lobby.gateway().to_owned(), key.clone());
        async move {
            let r = http
                .get(format!("{gateway}{path}"))
                .header("x-api-key", key)
                .send()
                .await
                .expect("seed 003");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let transcript_path = format!("/v1/session/transcript?sessionId={session_id}&type=instant");
    let mut transcript = Value::Null;
    for _ in 0..100 {
        let (s, b) = seed_003(transcript_path.clone()).await;
        if s == 200 {
            transcript = b;
            break;
        }
        assert_eq!(s, 404, "{b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        transcript["transcript"]["messages"][0]["content"],
        "Hello, I am your avatar.",
        "{transcript} / worker: {}",
        worker.log_tail()
    );
    let mut audio = Value::Null;
    for _ in 0..50 {
        let (s, b) = seed_003(format!(
            "/v1/session/audio?sessionId={session_id}&type=instant"
        ))
        .await;
        if s == 200 {
            audio = b;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let url = audio["audioUrl"]
        .as_str()
        .unwrap_or_else(|| panic!("{audio} / worker: {}", worker.log_tail()));
    let wav = lobby
        .http
        .get(url)
        .send()
        .await
        .expect("audio")
        .bytes()
        .await
        .expect("bytes");
    let decoded = hound::WavReader::new(std::io::Cursor::new(wav.to_vec())).expect("a WAV");
    assert_eq!(decoded.spec().sample_rate, 48_000);
    assert!(
        decoded.duration() > 48_000 / 2,
        "at least half a second of what the agent said: {} samples",
        decoded.duration()
    );
    let summary_path = format!("/v1/sessions/summary?sessionId={session_id}&instant_voice_links=1");
    let mut summary = Value::Null;
    for _ in 0..100 {
        let (s, b) = seed_003(summary_path.clone()).await;
        if s == 200 {
            summary = b;
            break;
        }
        assert_eq!(s, 202, "{b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(summary["success"], true, "{summary}");
    assert_eq!(summary["summary"]["facts"]["turns"], 2, "{summary}");
    assert!(
        summary["summary"]["summary"]
            .as_str()
            .is_some_and(|s| s.contains("avatar")),
        "{summary}"
    );
}
