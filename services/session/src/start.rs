//! Starting a session: validate, admit in one Redis round trip (a refusal
//! writes nothing), open the room through rooms, hand it to a worker when
//! the agent needs one. Anything failing after admission gives everything
//! back in one step before the error is returned.

use crate::{
    error::SessionError,
    ids,
    service::{peer_failure, SessionService, CLIENT_USER_REF_FIELD},
    store::{Admission, AdmitMode, AdmitRequest, Scope},
};
use lobby_kit::{grpc::machine_code, ErrorCode};
use lobby_proto::{
    common::Principal,
    regions::{HoldRequest, ReleaseHoldRequest},
    rooms::{AssignWorkerRequest, OpenRoomRequest, ValidateAvatarRequest},
    session::{self as pb, Session, SessionKind, SessionStatus},
};
use tonic::Status;

/// Seed 000: `client_user_ref` is at most 256 characters.
pub const MAX_CLIENT_USER_REF_CHARS: usize = 256;
/// Seed 002: the aspect ratios a worker renders; anything else means 4:3.
pub const ASPECT_RATIOS: [&str; 3] = ["4:3", "3:4", "1:1"];

/// The end user's LiveKit identity: their own reference, or one derived
/// from the session id; never the agent's, whatever the reference says (a
/// user posing as the agent would be counted as the agent by presence, and
/// LiveKit would drop one of the two).
pub fn participant_identity(
    client_user_ref: &str,
    session_id: &str,
    agent_identity: &str,
) -> String {
    if !agent_identity.is_empty() && client_user_ref == agent_identity {
        format!("user-{client_user_ref}")
    } else if client_user_ref.is_empty() {
        let tail: String = session_id.chars().rev().take(8).collect();
        format!(
            "user-{}",
            tail.chars().rev().collect::<String>().to_ascii_lowercase()
        )
    } else {
        client_user_ref.to_owned()
    }
}

/// Seed 002 falls back to 4:3 for a missing or unknown ratio.
pub fn aspect_ratio(requested: &str) -> &'static str {
    ASPECT_RATIOS
        .into_iter()
        .find(|r| *r == requested)
        .unwrap_or(ASPECT_RATIOS[0])
}

/// What a start request asks for, checked.
struct StartPlan {
    principal: Principal,
    kind: SessionKind,
    client_user_ref: String,
    aspect_ratio: &'static str,
}

fn plan(req: pb::StartSessionRequest) -> Result<StartPlan, SessionError> {
    let requested_kind = req.kind();
    let principal = req
        .principal
        .ok_or_else(|| SessionError::invalid("principal", "is required"))?;
    if principal.account_id.is_empty() || principal.agent_id.is_empty() {
        return Err(SessionError::invalid(
            "principal",
            "account_id and agent_id are required",
        ));
    }
    let limits = principal.limits.unwrap_or_default();
    if limits.account_max_concurrency == 0 || limits.max_session_seconds == 0 {
        return Err(SessionError::invalid(
            "limits",
            "account_max_concurrency and max_session_seconds must be positive",
        ));
    }
    if req.client_user_ref.chars().count() > MAX_CLIENT_USER_REF_CHARS {
        return Err(SessionError::invalid(
            "client_user_ref",
            "must be at most 256 characters",
        ));
    }
    let kind = match (requested_kind, &principal.link) {
        (SessionKind::AgentRun, _) => {
            return Err(SessionError::invalid(
                "kind",
                "agent runs start with StartAgentRun",
            ))
        }
        (SessionKind::Link, None) => {
            return Err(SessionError::invalid(
                "principal",
                "a link start needs its link",
            ))
        }
        (SessionKind::Link, Some(_)) => SessionKind::Link,
        (_, Some(_)) => {
            return Err(SessionError::invalid(
                "kind",
                "a link grant starts only link sessions",
            ))
        }
        _ => SessionKind::Connect,
    };
    if kind == SessionKind::Link && principal.avatar_image_url.is_empty() {
        return Err(SessionError::invalid(
            "principal",
            "a link start needs the agent's avatar",
        ));
    }
    Ok(StartPlan {
        aspect_ratio: aspect_ratio(&req.aspect_ratio),
        principal,
        kind,
        client_user_ref: req.client_user_ref,
    })
}

impl SessionService {
    /// Starts a session on its own task, so it runs to its end even when
    /// its caller goes away (a gateway deadline, a dropped connection):
    /// once admitted, only the start itself can give back what it took
    /// without waiting for its lease to run out.
    pub async fn start_session(
        &self,
        req: pb::StartSessionRequest,
    ) -> Result<pb::StartSessionResponse, Status> {
        let service = self.clone();
        tokio::spawn(lobby_kit::grpc::carry(async move {
            service.run_start(req).await
        }))
        .await
        .unwrap_or_else(|e| Err(Status::internal(format!("the start task failed: {e}"))))
    }

    async fn run_start(
        &self,
        req: pb::StartSessionRequest,
    ) -> Result<pb::StartSessionResponse, Status> {
        let plan = plan(req)?;
        let p = &plan.principal;
        let link = plan.kind == SessionKind::Link;
        // Before anything is taken: a bad avatar costs the account nothing.
        if link {
            self.rooms
                .validate_avatar(lobby_kit::grpc::outgoing(ValidateAvatarRequest {
                    url: p.avatar_image_url.clone(),
                }))
                .await
                .map_err(peer_failure)?;
        }
        let session_id = if link {
            ids::sess(lobby_kit::time::now_ms(), &p.account_id)
        } else {
            ids::uuid(&p.account_id)
        };
        let requires_worker = link || p.requires_worker;
        // A worker joins as the agent, so it needs its own identity.
        let agent_identity = if requires_worker {
            self.policy.avatar_agent_identity.clone()
        } else {
            String::new()
        };
        let aspect_ratio = match (link, requires_worker) {
            (true, _) => plan.aspect_ratio,
            (false, true) => ASPECT_RATIOS[0],
            (false, false) => "",
        };
        // Named by the Rooms contract: the record knows it before the room
        // is opened, so webhooks and the sweeper need not ask.
        let room_name = lobby_proto::room_name(&session_id);
        let limits = p.limits.unwrap_or_default();
        // Where the account's limits are kept, when not here.
        let home = self.home.remote_home(&p.home_region);
        let session = Session {
            id: session_id.clone(),
            account_id: p.account_id.clone(),
            agent_id: p.agent_id.clone(),
            status: SessionStatus::Active as i32,
            client_user_ref: plan.client_user_ref.clone(),
            room_name: room_name.clone(),
            provider: p.provider,
            kind: plan.kind as i32,
            link_id: p
                .link
                .as_ref()
                .map(|l| l.link_id.clone())
                .unwrap_or_default(),
            aspect_ratio: aspect_ratio.to_owned(),
            agent_identity: agent_identity.clone(),
            solo_timeout_seconds: p.solo_timeout_seconds,
            requires_worker,
            home_region: home.clone().unwrap_or_default(),
            room_url: self.last_room_url(p.provider),
            ..Default::default()
        };
        // What is stored: the caller's user reference sealed (it is
        // personal data); the plaintext stays in memory for the room.
        let stored = if session.client_user_ref.is_empty() {
            None
        } else {
            let keys = self
                .vault
                .keys(&session.account_id)
                .await
                .map_err(SessionError::from)?;
            Some(Session {
                client_user_ref: keys.seal_str(
                    &session.id,
                    CLIENT_USER_REF_FIELD,
                    &session.client_user_ref,
                ),
                ..session.clone()
            })
        };
        let request = AdmitRequest {
            session_id: &session_id,
            account_id: &p.account_id,
            agent_id: &p.agent_id,
            account_limit: limits.account_max_concurrency,
            agent_limit: limits.agent_max_concurrency,
            max_session_seconds: limits.max_session_seconds,
            quota_seconds: limits.quota_seconds,
            link: p.link.as_ref().map(|l| (l.link_id.as_str(), l.use_limit)),
            lease_ms: self.policy.lease_ms,
            retry_after_max_ms: self.policy.retry_after_max_ms,
            first_check_in_ms: self.first_check_in_ms(!agent_identity.is_empty()),
            mode: AdmitMode::Local(stored.as_ref().unwrap_or(&session)),
        };
        let admitted = match &home {
            None => self.store.admit(&request).await,
            Some(home) => self.admit_at_home(home, request).await,
        };
        let admission = match admitted {
            Ok(admission) => admission,
            Err(e) => {
                // Admission may have run with its answer lost: withdrawn
                // once Redis answers, so it holds nothing for a lease.
                if crate::give_back::outcome_unknown(&e) {
                    self.owe(&session, crate::give_back::Owed::Withdraw);
                }
                return Err(e.into());
            }
        };
        let (deadline_ms, started_at_ms) = match admission {
            Admission::Admitted {
                deadline_ms,
                started_at_ms,
                ..
            } => (deadline_ms, started_at_ms),
            refused => return Err(self.refusal(refused).into()),
        };
        let session = Session {
            deadline_ms,
            started_at_ms,
            ..session
        };
        // Admission wrote the id → account lookup in the account's slot
        // (every id minted here names the account's bucket); otherwise it
        // is written beside the provider call (a crash losing it leaves a
        // session the sweeper still ends: it knows the account).
        let lookup = async {
            if self
                .store
                .admission_writes_lookup(&session.id, &session.account_id)
            {
                Ok(())
            } else {
                self.store
                    .index_account(&session.id, &session.account_id)
                    .await
            }
        };
        let opened = self
            .rooms
            .open_room(lobby_kit::grpc::outgoing(OpenRoomRequest {
                session_id: session.id.clone(),
                account_id: session.account_id.clone(),
                agent_id: session.agent_id.clone(),
                provider: session.provider,
                participant_identity: participant_identity(
                    &session.client_user_ref,
                    &session.id,
                    &agent_identity,
                ),
                agent_identity: agent_identity.clone(),
                // The room outlives the reservation a little, so that Lobby,
                // not the provider, is the one to end the session.
                expires_at_s: deadline_ms / 1000 + 30,
            }));
        let (indexed, opened) = tokio::join!(lookup, opened);
        if let Err(e) = indexed {
            return Err(self.failed(&session, e.into()).await);
        }
        let room = match opened {
            Ok(r) => r.into_inner(),
            Err(status) => return Err(self.failed(&session, status).await),
        };
        if requires_worker {
            let assigned = self
                .rooms
                .assign_worker(lobby_kit::grpc::outgoing(AssignWorkerRequest {
                    session_id: session.id.clone(),
                    account_id: session.account_id.clone(),
                    agent_id: session.agent_id.clone(),
                    room_url: room.room_url.clone(),
                    agent_token: room.agent_token.clone(),
                    agent_identity: agent_identity.clone(),
                    aspect_ratio: session.aspect_ratio.clone(),
                    avatar_image_url: p.avatar_image_url.clone(),
                }))
                .await;
            let worker_id = match assigned {
                Ok(a) => a.into_inner().worker_id,
                Err(status) => return Err(self.failed(&session, status).await),
            };
            // The one extra write, for starts that wait on a worker.
            if let Err(e) = self.store.set_worker(&session, &worker_id).await {
                return Err(self.failed(&session, e.into()).await);
            }
        }
        // Off the start's path: the caller has the URL in its answer, and
        // only later readers (seed 003's `wsUrl`) need it on the record.
        if room.room_url != session.room_url {
            self.remember_room_url(session.provider, &room.room_url);
            let (store, recorded, url) =
                (self.store.clone(), session.clone(), room.room_url.clone());
            tokio::spawn(async move {
                if let Err(e) = store.set_room_url(&recorded, &url).await {
                    tracing::warn!(session_id = %recorded.id, error = %e, "room URL not recorded");
                }
            });
        }
        self.metrics.starts.with_label_values(&["active"]).inc();
        tracing::info!(session_id = %session.id, account_id = %session.account_id, agent_id = %session.agent_id, "session active");
        Ok(pb::StartSessionResponse {
            session_id: session.id,
            room_url: room.room_url,
            token: room.token,
            room_name: room.room_name,
            agent_identity,
        })
    }

    /// The URL the provider's last room had, as this one's, for providers
    /// whose rooms all share the server's URL (LiveKit); empty for those
    /// that give each room its own (Daily), whose URL is recorded once the
    /// room exists.
    fn last_room_url(&self, provider: i32) -> String {
        if provider != lobby_proto::common::Provider::Livekit as i32 {
            return String::new();
        }
        self.last_room_urls
            .read()
            .ok()
            .and_then(|urls| urls.get(&provider).cloned())
            .unwrap_or_default()
    }

    fn remember_room_url(&self, provider: i32, url: &str) {
        if provider != lobby_proto::common::Provider::Livekit as i32 {
            return;
        }
        if let Ok(mut urls) = self.last_room_urls.write() {
            urls.insert(provider, url.to_owned());
        }
    }

    /// Admits in the account's home region, then writes the record here; a
    /// refusal there takes nothing anywhere, and a failure here gives the
    /// hold back.
    async fn admit_at_home(
        &self,
        home: &str,
        request: AdmitRequest<'_>,
    ) -> Result<Admission, SessionError> {
        let release = ReleaseHoldRequest {
            session_id: request.session_id.to_owned(),
            account_id: request.account_id.to_owned(),
            agent_id: request.agent_id.to_owned(),
            failed: true,
            ran_seconds: 0,
        };
        let asked = self
            .home
            .hold(
                home,
                HoldRequest {
                    session_id: request.session_id.to_owned(),
                    account_id: request.account_id.to_owned(),
                    agent_id: request.agent_id.to_owned(),
                    account_limit: request.account_limit,
                    agent_limit: request.agent_limit,
                    max_session_seconds: request.max_session_seconds,
                    quota_seconds: request.quota_seconds,
                    link_id: request.link.map(|l| l.0.to_owned()).unwrap_or_default(),
                    link_use_limit: request.link.map(|l| l.1).unwrap_or(0),
                },
            )
            .await;
        let held = match asked {
            Ok(held) => held,
            Err(e) => {
                // Home may have taken the hold and lost only its answer:
                // give it back (idempotent) rather than let it run a lease.
                let (homes, home) = (self.home.clone(), home.to_owned());
                tokio::spawn(async move {
                    let _ = homes.release(&home, release).await;
                });
                return Err(e);
            }
        };
        let Admission::Admitted {
            reserved_seconds, ..
        } = held
        else {
            return Ok(held);
        };
        let AdmitMode::Local(record) = request.mode else {
            return Err(SessionError::Corrupt("a home admission of a hold".into()));
        };
        let here = self
            .store
            .admit(&AdmitRequest {
                mode: AdmitMode::Held {
                    record,
                    reserved_seconds,
                },
                ..request
            })
            .await;
        match here {
            Ok(admitted @ Admission::Admitted { .. }) => Ok(admitted),
            other => {
                if let Err(e) = self.home.release(home, release).await {
                    tracing::warn!(session_id = %request.session_id, %home, error = %e, "hold not given back; it runs out within a lease at home");
                }
                match other {
                    Err(e) => Err(e),
                    Ok(_) => Err(SessionError::Corrupt(
                        "a session its home admitted was refused here".into(),
                    )),
                }
            }
        }
    }

    /// The first sweep check of a new session: when its lease is due for
    /// renewal, or earlier when someone's join deadline comes first.
    fn first_check_in_ms(&self, awaits_agent: bool) -> i64 {
        let join = self.policy.join;
        let mut first = self.policy.recheck_ms();
        first = first.min(join.user_ms);
        if awaits_agent {
            first = first.min(join.agent_ms);
        }
        first.max(1)
    }

    fn refusal(&self, refused: Admission) -> SessionError {
        let (label, error) = match refused {
            Admission::Refused(r) => match r.scope {
                Scope::Minutes => ("refused_minutes", SessionError::MinutesExhausted(r)),
                Scope::Agent => ("refused_agent", SessionError::ConcurrencyLimit(r)),
                Scope::Account => ("refused_account", SessionError::ConcurrencyLimit(r)),
            },
            Admission::LinkUsedUp => ("refused_link", SessionError::LinkUsedUp),
            Admission::AgentUnpublished => ("refused_unpublished", SessionError::AgentUnpublished),
            // Session ids are new with each start: home has released this
            // one only if a start with the same id was given up on.
            Admission::Released => (
                "internal_error",
                SessionError::Corrupt("home had released this session's hold already".into()),
            ),
            Admission::Admitted { .. } => (
                "internal_error",
                SessionError::Corrupt("an admitted start reached the refusal path".into()),
            ),
        };
        self.metrics.starts.with_label_values(&[label]).inc();
        error
    }

    /// Gives everything back, then reports the failure as the peer gave it.
    async fn failed(&self, session: &Session, status: Status) -> Status {
        let failure = peer_failure(status);
        let code = machine_code(&failure).unwrap_or(ErrorCode::InternalError);
        self.fail_start(session, code).await;
        tracing::info!(session_id = %session.id, %code, "session start failed after admission; everything given back");
        failure
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lobby_proto::common::{AdmissionLimits, LinkGrant};

    fn principal() -> Principal {
        Principal {
            account_id: "acct_a".into(),
            agent_id: "agent".into(),
            limits: Some(AdmissionLimits {
                account_max_concurrency: 1,
                agent_max_concurrency: 0,
                max_session_seconds: 60,
                quota_seconds: 600,
            }),
            avatar_image_url: "https://example.com/a.png".into(),
            ..Default::default()
        }
    }

    fn request(kind: SessionKind, principal: Principal) -> pb::StartSessionRequest {
        pb::StartSessionRequest {
            principal: Some(principal),
            kind: kind as i32,
            ..Default::default()
        }
    }

    #[test]
    fn link_starts_need_their_link_and_links_start_only_link_sessions() {
        assert!(plan(request(SessionKind::Link, principal())).is_err());
        let with_link = Principal {
            link: Some(LinkGrant {
                link_id: "lnk_x".into(),
                use_limit: 1,
            }),
            ..principal()
        };
        assert!(plan(request(SessionKind::Connect, with_link.clone())).is_err());
        assert_eq!(
            plan(request(SessionKind::Link, with_link))
                .map(|p| p.kind)
                .ok(),
            Some(SessionKind::Link)
        );
    }

    #[test]
    fn bad_limits_and_long_references_are_refused() {
        let no_limits = Principal {
            limits: None,
            ..principal()
        };
        assert!(plan(request(SessionKind::Connect, no_limits)).is_err());
        let mut long = request(SessionKind::Connect, principal());
        long.client_user_ref = "x".repeat(257);
        assert!(plan(long).is_err());
    }

    #[test]
    fn unknown_aspect_ratios_mean_four_by_three() {
        assert_eq!(aspect_ratio("3:4"), "3:4");
        assert_eq!(aspect_ratio("16:9"), "4:3");
        assert_eq!(aspect_ratio(""), "4:3");
    }

    #[test]
    fn a_participant_identity_comes_from_the_reference_or_the_id() {
        assert_eq!(participant_identity("alice", "x", "agent"), "alice");
        assert_eq!(
            participant_identity("", "550e8400-e29b-41d4-a716-446655440000", ""),
            "user-55440000"
        );
    }

    #[test]
    fn a_user_can_never_take_the_agents_identity() {
        let agent = "lobby-avatar-agent";
        let user = participant_identity(agent, "x", agent);
        assert_ne!(user, agent);
        assert_eq!(user, "user-lobby-avatar-agent");
        assert_eq!(
            participant_identity(agent, "x", ""),
            agent,
            "no agent in the room"
        );
    }
}
