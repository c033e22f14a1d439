//! Contended starts and ends against a Lobby whose Redis fails under it: a
//! load of clients per account, a history of every answer, and a sampler of
//! the slots Redis holds, for the failover tests to judge.

use crate::Lobby;
use serde_json::{json, Value};
use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

/// How long a client keeps asking for an end answered 503.
const GIVE_UP_ENDING_AFTER: Duration = Duration::from_secs(30);

/// One account of the load.
#[derive(Debug, Clone)]
pub struct LoadAccount {
    pub id: String,
    pub agent: String,
    pub limit: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Start,
    End,
}

/// One answer a client got.
#[derive(Debug, Clone)]
pub struct Answer {
    pub account: usize,
    pub call: Call,
    /// 0: no HTTP answer at all; 1: the client gave up asking.
    pub status: u16,
    pub sent: Duration,
    pub answered: Duration,
    pub session: Option<String>,
    pub retry_after: bool,
    pub body: String,
}

/// Everything the load saw, times since it began.
#[derive(Debug, Default)]
pub struct History {
    pub answers: Vec<Answer>,
    /// Per sample: when, and each account's slots held.
    pub samples: Vec<(Duration, Vec<Option<u64>>)>,
}

impl History {
    /// The most sessions of `account` surely holding a slot at once: from
    /// the answer admitting each to the first request ending it.
    pub fn most_held_at_once(&self, account: usize) -> usize {
        let mut edges: Vec<(Duration, i32)> = Vec::new();
        for admitted in self
            .answers
            .iter()
            .filter(|a| a.account == account && a.call == Call::Start && a.status == 200)
        {
            let ended = self
                .answers
                .iter()
                .filter(|a| a.call == Call::End && a.session == admitted.session)
                .map(|a| a.sent)
                .min()
                .unwrap_or(Duration::MAX);
            edges.push((admitted.answered, 1));
            edges.push((ended, -1));
        }
        // At a tie, the end first: the interval is open at its end.
        edges.sort();
        let (mut now, mut most) = (0i32, 0i32);
        for (_, step) in edges {
            now += step;
            most = most.max(now);
        }
        most as usize
    }

    /// The most slots a sample saw `account` hold.
    pub fn most_sampled(&self, account: usize) -> u64 {
        self.samples
            .iter()
            .filter_map(|(_, held)| held.get(account).copied().flatten())
            .max()
            .unwrap_or(0)
    }

    /// Answers of `account` outside `expected` statuses.
    pub fn unexpected(&self, account: usize, expected: &[u16]) -> Vec<&Answer> {
        self.answers
            .iter()
            .filter(|a| a.account == account && !expected.contains(&a.status))
            .collect()
    }

    /// The first answer to `account` after `after` that served it (a start
    /// admitted or refused for its limit, an end done).
    pub fn first_served_after(&self, account: usize, after: Duration) -> Option<Duration> {
        self.answers
            .iter()
            .filter(|a| a.account == account && a.sent >= after && matches!(a.status, 200 | 429))
            .map(|a| a.answered)
            .min()
    }

    /// The longest `account` went without any answer serving it, from the
    /// first to the last.
    pub fn longest_unserved(&self, account: usize) -> Duration {
        let mut served: Vec<Duration> = self
            .answers
            .iter()
            .filter(|a| a.account == account && matches!(a.status, 200 | 429))
            .map(|a| a.answered)
            .collect();
        served.sort();
        served
            .windows(2)
            .map(|w| w[1].saturating_sub(w[0]))
            .max()
            .unwrap_or_default()
    }

    /// Sessions a start admitted (answered 200).
    pub fn admitted(&self) -> Vec<(usize, String)> {
        self.answers
            .iter()
            .filter(|a| a.call == Call::Start && a.status == 200)
            .filter_map(|a| Some((a.account, a.session.clone()?)))
            .collect()
    }

    /// How many answers had each status.
    pub fn statuses(&self) -> BTreeMap<u16, usize> {
        let mut counts = BTreeMap::new();
        for a in &self.answers {
            *counts.entry(a.status).or_insert(0) += 1;
        }
        counts
    }
}

/// A running load: `clients` per account start a session, hold it a
/// moment, end it (again while the end answers 503), and start again.
pub struct Load {
    began: Instant,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<History>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(lobby: &Lobby, accounts: &[LoadAccount], clients: usize) -> Self {
        let began = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let history = Arc::new(Mutex::new(History::default()));
        let http = crate::http_client(Duration::from_secs(15));
        let mut tasks = Vec::new();
        for (account, a) in accounts.iter().enumerate() {
            for client in 0..clients {
                let ctx = Client {
                    account,
                    agent: a.agent.clone(),
                    connect: format!("{}/v1/public/agents/connect", lobby.gateway()),
                    admin: format!("{}/admin/v1", lobby.gateway()),
                    http: http.clone(),
                    began,
                    stop: stop.clone(),
                    history: history.clone(),
                    hold_ms: 20 + (client as u64 * 37) % 120,
                };
                tasks.push(tokio::spawn(ctx.run()));
            }
        }
        let sampler = Sampler {
            redis: lobby.redis.url(),
            accounts: accounts.iter().map(|a| a.id.clone()).collect(),
            began,
            stop: stop.clone(),
            history: history.clone(),
        };
        tasks.push(tokio::spawn(sampler.run()));
        Self {
            began,
            stop,
            history,
            tasks,
        }
    }

    pub fn began(&self) -> Instant {
        self.began
    }

    /// Stops every client once its session is ended; the history.
    pub async fn finish(self) -> History {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        let history = std::mem::take(&mut *self.history.lock().expect("history"));
        history
    }
}

struct Client {
    account: usize,
    agent: String,
    connect: String,
    admin: String,
    http: reqwest::Client,
    began: Instant,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<History>>,
    hold_ms: u64,
}

impl Client {
    /// Sends `request`; the answer names `session` (an end's), or the one
    /// its body names (a start's).
    async fn send(
        &self,
        call: Call,
        request: reqwest::RequestBuilder,
        session: Option<&str>,
    ) -> Answer {
        let sent = self.began.elapsed();
        let (status, retry_after, body) = match request.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let retry_after = r.headers().contains_key("retry-after");
                (status, retry_after, r.text().await.unwrap_or_default())
            }
            Err(e) => (0, false, e.to_string()),
        };
        let session = session.map(str::to_owned).or_else(|| {
            serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|b| b["session_id"].as_str().map(str::to_owned))
        });
        let answer = Answer {
            account: self.account,
            call,
            status,
            sent,
            answered: self.began.elapsed(),
            session,
            retry_after,
            body,
        };
        self.history
            .lock()
            .expect("history")
            .answers
            .push(answer.clone());
        answer
    }

    async fn run(self) {
        while !self.stop.load(Ordering::Relaxed) {
            let request = self
                .http
                .post(&self.connect)
                .json(&json!({ "agent_id": self.agent }));
            let started = self.send(Call::Start, request, None).await;
            let Some(session) = started.session.clone().filter(|_| started.status == 200) else {
                tokio::time::sleep(Duration::from_millis(if started.status == 429 {
                    20
                } else {
                    50
                }))
                .await;
                continue;
            };
            tokio::time::sleep(Duration::from_millis(self.hold_ms)).await;
            // Ended however long it takes (a 503 is asked again), within
            // reason: a Lobby that never recovers fails the test, not hangs it.
            let give_up = Instant::now() + GIVE_UP_ENDING_AFTER;
            loop {
                let request = self
                    .http
                    .post(format!("{}/sessions/{session}/end", self.admin))
                    .bearer_auth(crate::lobby::ADMIN_TOKEN);
                let ended = self.send(Call::End, request, Some(&session)).await;
                if ended.status != 503 && ended.status != 0 {
                    break;
                }
                if Instant::now() > give_up {
                    let mut gave_up = ended.clone();
                    gave_up.body =
                        format!("still not ended after {GIVE_UP_ENDING_AFTER:?} of retries");
                    gave_up.status = 1;
                    self.history.lock().expect("history").answers.push(gave_up);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads each account's slots every 150 ms, straight from Redis.
struct Sampler {
    redis: String,
    accounts: Vec<String>,
    began: Instant,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<History>>,
}

impl Sampler {
    async fn run(self) {
        let settings = lobby_kit::redis_conn::RedisSettings {
            url: self.redis.clone(),
            retry_max: Duration::from_secs(1),
            report_after: Duration::from_secs(60),
            command_timeout: Duration::from_millis(500),
        };
        let mut conn = lobby_kit::redis_conn::connect(&settings).expect("sampler connection");
        while !self.stop.load(Ordering::Relaxed) {
            let at = self.began.elapsed();
            let mut held = Vec::with_capacity(self.accounts.len());
            for account in &self.accounts {
                let tag = lobby_kit::keys::account_tag(account);
                let count: Option<u64> = redis::cmd("ZCARD")
                    .arg(format!("{tag}:{account}:slots"))
                    .query_async(&mut conn)
                    .await
                    .ok();
                held.push(count);
            }
            self.history
                .lock()
                .expect("history")
                .samples
                .push((at, held));
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
}

/// What a gateway's `/healthz` and `/livez` said, polled every 200 ms.
#[derive(Debug, Clone)]
pub struct HealthSample {
    pub at: Duration,
    pub ready: u16,
    /// How long `/healthz` took to answer (a probe's default timeout is 1 s).
    pub ready_took: Duration,
    /// `checks.redis` of `/healthz`.
    pub redis: String,
    pub alive: u16,
}

/// Polls a gateway's health until stopped.
pub struct HealthWatch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<HealthSample>>,
}

impl HealthWatch {
    pub fn start(lobby: &Lobby, began: Instant) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let http = crate::http_client(Duration::from_secs(5));
        let gateway = lobby.gateway().to_owned();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                let at = began.elapsed();
                let asked = Instant::now();
                let (ready, redis) = match http.get(format!("{gateway}/healthz")).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let body: Value = r.json().await.unwrap_or_default();
                        (
                            status,
                            body["checks"]["redis"].as_str().unwrap_or("").to_owned(),
                        )
                    }
                    Err(e) => (0, e.to_string()),
                };
                let ready_took = asked.elapsed();
                let alive = match http.get(format!("{gateway}/livez")).send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                samples.push(HealthSample {
                    at,
                    ready,
                    ready_took,
                    redis,
                    alive,
                });
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            samples
        });
        Self { stop, task }
    }

    pub async fn finish(self) -> Vec<HealthSample> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("health watch")
    }
}
