//! `make run` as a user runs it: `scripts/run.sh` (Redis, livekit-server,
//! lobby-dev) on its own ports and data folder, used until LiveKit holds
//! hundreds of rooms, then stopped with Ctrl-C (SIGINT to its process group,
//! as a terminal sends it). Everything must be gone within 10 s.

use lobby_tests::{free_port, livekit, process::binary, scratch_dir};
use serde_json::{json, Value};
use std::{
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const ADMIN_TOKEN: &str = "make-run-test-admin-token";
const ROOMS: usize = 2000;
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// One `make run` at a time: each takes eight free ports picked apart from
/// the others' (two at once could pick the same one), and a whole stack on
/// two cores beside another would blur the ten seconds measured.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The process group of `scripts/run.sh`; SIGKILLed whole if a test fails.
struct RunScript {
    child: Child,
    log: PathBuf,
}

impl RunScript {
    fn pgid(&self) -> String {
        self.child.id().to_string()
    }

    /// Processes of the group still alive (zombies excluded), from /proc.
    fn members(&self) -> Vec<String> {
        let pgid = self.pgid();
        let mut members = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid pgrp …; comm may hold spaces, so split after ')'.
            let Some((head, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.get(2) == Some(&pgid.as_str()) && fields.first() != Some(&"Z") {
                members.push(head.replace(" (", " ").to_owned());
            }
        }
        members
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for RunScript {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.pgid())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

impl RunScript {
    /// `bash scripts/run.sh` in its own process group (as a terminal's
    /// foreground job is), on free ports and a scratch data folder.
    fn start(livekit_bin: &std::path::Path, gateway: &str) -> Self {
        let dir = scratch_dir("make-run");
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut cmd = Command::new("bash");
        cmd.arg("scripts/run.sh")
            .current_dir(&repo)
            .env("LOBBY_RUN_DIR", dir.join("run"))
            .env("LOBBY_DEV_BIN", binary("lobby-dev"))
            .env("LOBBY_LIVEKIT_BIN", livekit_bin)
            .env("LOBBY_DEV_REDIS_PORT", free_port().to_string())
            .env("LOBBY_DEV_LIVEKIT_PORT", free_port().to_string())
            .env("LOBBY_DEV_LIVEKIT_RTC_TCP_PORT", free_port().to_string())
            .env("LOBBY_DEV_LIVEKIT_RTC_UDP_PORT", free_port().to_string())
            .env("LOBBY_GATEWAY_LISTEN", gateway)
            .env("LOBBY_WORKERS_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env(
                "LOBBY_SESSION_WORKERS_LISTEN",
                format!("127.0.0.1:{}", free_port()),
            )
            .env("LOBBY_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("LOBBY_LOG", "warn");
        for service in ["AUTH", "SESSION", "ROOMS", "ARTIFACTS"] {
            let addr = format!("127.0.0.1:{}", free_port());
            cmd.env(format!("LOBBY_{service}_URL"), format!("http://{addr}"))
                .env(format!("LOBBY_{service}_LISTEN"), addr);
        }
        let log = dir.join("run.log");
        let out = std::fs::File::create(&log).expect("log");
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .process_group(0);
        Self {
            child: cmd.spawn().expect("bash scripts/run.sh"),
            log,
        }
    }

    /// Waits until the gateway is healthy and the demo agent is seeded.
    async fn wait_healthy(&mut self, http: &reqwest::Client, base: &str) {
        for _ in 0..1200 {
            let seeded = http
                .get(format!("{base}/admin/v1/agents/demo-agent"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if seeded {
                return;
            }
            assert!(
                self.child.try_wait().expect("try_wait").is_none(),
                "make run exited early:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("make run never became healthy:\n{}", self.log_tail());
    }

    /// Ctrl-C (SIGINT to the whole group); returns how long until the
    /// script and every process of its group are gone.
    async fn ctrl_c(&mut self) -> Duration {
        let began = Instant::now();
        let sent = Command::new("kill")
            .args(["-INT", "--", &format!("-{}", self.pgid())])
            .status()
            .expect("kill -INT");
        assert!(sent.success());
        while began.elapsed() < STOP_LIMIT + Duration::from_secs(20) {
            let exited = self.child.try_wait().expect("try_wait").is_some();
            if exited && self.members().is_empty() {
                return began.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "still running 30 s after Ctrl-C: {:?}\n{}",
            self.members(),
            self.log_tail()
        )
    }
}

/// What `make run` prints for GPU workers (the door, its CA, the token)
/// is enough to attach one.
async fn attach_a_worker_as_printed(run: &RunScript) {
    let printed = |key: &str, log: &str| {
        log.split_whitespace()
            .find_map(|w| w.strip_prefix(key).map(str::to_owned))
    };
    let mut log = String::new();
    for _ in 0..100 {
        log = std::fs::read_to_string(&run.log).unwrap_or_default();
        if log.contains("LOBBY_WORKER_CA_FILE=") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (Some(url), Some(ca), Some(token)) = (
        printed("LOBBY_WORKERS_URL=", &log),
        printed("LOBBY_WORKER_CA_FILE=", &log),
        printed("LOBBY_WORKER_KEY=", &log),
    ) else {
        panic!("make run did not print the workers' door, its CA and a key:\n{log}")
    };
    let id = printed("WORKER_ID=", &log).expect("the worker id the key is for");
    let mut config = lobby_worker::WorkerConfig::new(&url, &token, &id, "local", 1);
    config.ca_pem = Some(std::fs::read_to_string(&ca).expect("the printed CA file"));
    let attached = lobby_worker::Worker::attach(config).await;
    assert!(attached.is_ok(), "{:?}", attached.err());
    // The records door, as printed, takes the same key and CA.
    let records = printed("LOBBY_SESSION_WORKERS_URL=", &log)
        .expect("make run printed the session service's records door");
    let ca_pem = std::fs::read_to_string(&ca).expect("the printed CA file");
    let door = lobby_worker::RecordsClient::connect(&records, Some(&ca_pem), &token).await;
    assert!(door.is_ok(), "{:?}", door.err());
}

/// `make run` on free ports with the real LiveKit server, up and seeded:
/// the script, an HTTP client, and the gateway's base URL (`None` when the
/// LiveKit server is unavailable and `what` is skipped).
async fn healthy_make_run(what: &str) -> Option<(RunScript, reqwest::Client, String)> {
    let livekit_bin = livekit::binary_or_skip(what)?;
    let gateway = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{gateway}");
    let mut run = RunScript::start(&livekit_bin, &gateway);
    let http = lobby_tests::http_client(Duration::from_secs(30));
    run.wait_healthy(&http, &base).await;
    Some((run, http, base))
}

#[tokio::test]
async fn ctrl_c_stops_make_run_within_ten_seconds_with_many_rooms_open() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some((mut run, http, base)) = healthy_make_run("make run Ctrl-C").await else {
        return;
    };
    assert!(
        !run.log_tail().contains("TOKEN-ONLY"),
        "make run must use the LiveKit server here:\n{}",
        run.log_tail()
    );
    attach_a_worker_as_printed(&run).await;

    // Room for many sessions on the demo account, then open them.
    let patched = http
        .patch(format!("{base}/admin/v1/accounts/acct_demo"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "max_concurrency": 10_000, "minutes_quota": 1_000_000 }))
        .send()
        .await
        .expect("patch account");
    assert_eq!(patched.status(), 200);
    let started = futures::future::join_all((0..ROOMS).map(|_| {
        let http = http.clone();
        let url = format!("{base}/v1/public/agents/connect");
        async move {
            http.post(url)
                .json(&json!({ "agent_id": "demo-agent" }))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    }))
    .await
    .into_iter()
    .filter(|ok| *ok)
    .count();
    assert_eq!(
        started,
        ROOMS,
        "every start opened a room:\n{}",
        run.log_tail()
    );
    let usage: Value = http
        .get(format!("{base}/admin/v1/accounts/acct_demo/usage"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("usage")
        .json()
        .await
        .expect("usage json");
    assert!(
        usage["active_sessions"].as_u64() >= Some(ROOMS as u64),
        "{usage}"
    );
    let processes = run.members().len();

    let stopped_after = run.ctrl_c().await;
    assert!(
        stopped_after <= STOP_LIMIT,
        "make run took {stopped_after:?} to stop after Ctrl-C (limit {STOP_LIMIT:?}):\n{}",
        run.log_tail()
    );
    assert!(
        run.log_tail().contains("lobby: stopped"),
        "{}",
        run.log_tail()
    );
    println!(
        "make run with {ROOMS} LiveKit rooms open ({processes} processes): Ctrl-C stopped everything in {} ms",
        stopped_after.as_millis()
    );
}

/// A LiveKit server that takes minutes to shut down, as one holding
/// thousands of rooms did: here, a stand-in that ignores SIGTERM and SIGINT
/// outright. `make run` must give it its grace period and then kill it.
#[tokio::test]
async fn ctrl_c_kills_a_child_that_ignores_sigterm_after_the_grace_period() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = scratch_dir("stubborn-livekit");
    let stubborn = dir.join("livekit-server");
    std::fs::write(
        &stubborn,
        "#!/usr/bin/env bash\n\
         # Listens on LiveKit's port and ignores every polite signal.\n\
         exec python3 -c 'import os, signal, socket, time\n\
         signal.signal(signal.SIGTERM, signal.SIG_IGN)\n\
         signal.signal(signal.SIGINT, signal.SIG_IGN)\n\
         s = socket.socket(); s.bind((\"127.0.0.1\", int(os.environ[\"LOBBY_DEV_LIVEKIT_PORT\"]))); s.listen()\n\
         time.sleep(3600)'\n",
    )
    .expect("stub");
    let chmod = Command::new("chmod").arg("+x").arg(&stubborn).status();
    assert!(chmod.is_ok_and(|s| s.success()));
    let gateway = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{gateway}");
    let mut run = RunScript::start(&stubborn, &gateway);
    let http = lobby_tests::http_client(Duration::from_secs(30));
    run.wait_healthy(&http, &base).await;

    let stopped_after = run.ctrl_c().await;
    let log = run.log_tail();
    assert!(
        stopped_after <= STOP_LIMIT,
        "make run took {stopped_after:?} to stop (limit {STOP_LIMIT:?}):\n{log}"
    );
    assert!(
        log.contains("still running after") && log.contains("killing"),
        "the stubborn child was killed after the grace period:\n{log}"
    );
    println!(
        "make run with a child ignoring SIGTERM: Ctrl-C stopped everything in {} ms (grace 5 s, then SIGKILL)",
        stopped_after.as_millis()
    );
}

/// `make run`'s LiveKit sends its webhooks to the gateway, as production's
/// does: a user who leaves ends the session then, with `user_left`, not when
/// the reconciler next looks (about 30 s later, as `room_missing`).
#[tokio::test]
async fn a_user_leaving_ends_the_session_at_once_under_make_run() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some((mut run, http, base)) = healthy_make_run("make run webhooks").await else {
        return;
    };
    let started: Value = http
        .post(format!("{base}/v1/public/agents/connect"))
        .json(&json!({ "agent_id": "demo-agent" }))
        .send()
        .await
        .expect("connect")
        .json()
        .await
        .expect("connect json");
    let session_id = started["session_id"].as_str().expect("session id");
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let user = tokio::process::Command::new(livekit::python())
        .arg(repo.join("tests/py/join_and_leave.py"))
        .args([
            started["room_url"].as_str().expect("room url"),
            started["token"].as_str().expect("token"),
            "1",
        ])
        .kill_on_drop(true)
        .output()
        .await
        .expect("user script");
    assert!(
        user.status.success(),
        "{}",
        String::from_utf8_lossy(&user.stderr)
    );
    let left = std::time::Instant::now();
    let mut record = Value::Null;
    while left.elapsed() < Duration::from_secs(10) {
        record = http
            .get(format!("{base}/admin/v1/sessions/{session_id}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("session")
            .json()
            .await
            .expect("session json");
        if record["status"] == "ended" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        (record["status"].as_str(), record["ended_reason"].as_str()),
        (Some("ended"), Some("user_left")),
        "{record}\n{}",
        run.log_tail()
    );
    run.ctrl_c().await;
}
