//! Account limits that hold across regions: every region admits an
//! account's sessions in the account's home region.
//!
//! A start served in another region asks home for a hold (`Hold`: the
//! account's and the agent's slots, the minutes reservation and the link's
//! use, in one atomic step there) before it writes its own record; the room
//! opens where the caller is. While the session lives, that region's
//! sweeper renews the hold with its own lease (`RenewHolds`, one call per
//! home and sweep); its end or failed start gives the hold back
//! (`ReleaseHold`). A region that dies stops renewing: home frees its holds
//! within one lease, like a crashed holder's slot at home. A home that
//! cannot be reached refuses the start (`store_unavailable`) and takes
//! nothing; sessions already running go on, and their holds are taken
//! again when home answers.
//!
//! `HomeAdmission` is served on the session service's regions' door (server
//! TLS); each call carries a call token signed with the regions' shared
//! secret, naming the calling region, made for this one and for that call
//! (`Call`): a token seen in passing releases or renews nothing else.

use crate::{
    error::SessionError,
    store::{Admission, AdmitMode, AdmitRequest, HoldRenewal, SessionStore},
};
use lobby_kit::regions::{RegionList, CALL_TOKEN_HEADER};
use lobby_proto::regions::{
    home_admission_client::HomeAdmissionClient, home_admission_server::HomeAdmission, HeldSession,
    HoldRequest, HoldResponse, ReleaseHoldRequest, ReleaseHoldResponse, RenewHoldsRequest,
    RenewHoldsResponse,
};
use std::{collections::HashMap, sync::Arc, time::Duration};
use tonic::{transport::Channel, Request, Response, Status};

/// How long a call token is good for: a call, with room for clock skew.
const CALL_TOKEN_TTL_SECONDS: i64 = 60;
/// The most holds one renewal call carries.
pub const MAX_RENEWALS_PER_CALL: usize = 1000;

/// What a call to home does and to what, as its token is signed for: both
/// ends name a call here, the caller to sign, home to check.
enum Call<'a> {
    Hold(&'a HoldRequest),
    Renew(&'a [HeldSession]),
    Release(&'a ReleaseHoldRequest),
}

impl Call<'_> {
    fn statement(&self) -> String {
        match self {
            Self::Hold(h) => format!("hold:{}:{}", h.account_id, h.session_id),
            Self::Release(r) => format!("release:{}:{}", r.account_id, r.session_id),
            // Every hold it renews, and for how long: a digest keeps the
            // token a header's size.
            Self::Renew(holds) => {
                use sha2::Digest;
                let mut digest = sha2::Sha256::new();
                for h in *holds {
                    digest.update(format!(
                        "{}|{}|{}|{}\n",
                        h.account_id, h.session_id, h.agent_id, h.reserved_seconds_left
                    ));
                }
                format!("renew:{}", hex::encode(digest.finalize()))
            }
        }
    }
}

/// The other regions' home admission, as this one calls it.
#[derive(Clone)]
pub struct HomeRegions {
    list: Arc<RegionList>,
    clients: HashMap<String, HomeAdmissionClient<Channel>>,
}

impl HomeRegions {
    /// Clients for every other region's door (connected on first use).
    pub fn new(
        list: RegionList,
        tls: &lobby_kit::grpc_tls::GrpcTls,
        timeout: Duration,
    ) -> Result<Self, tonic::transport::Error> {
        let mut clients = HashMap::new();
        if list.is_multi() {
            for r in list.regions.iter().filter(|r| r.name != list.me) {
                let channel = lobby_kit::grpc::lazy_channel(&r.admission_url, timeout, tls)?;
                clients.insert(r.name.clone(), HomeAdmissionClient::new(channel));
            }
        }
        Ok(Self {
            list: Arc::new(list),
            clients,
        })
    }

    /// The region to admit in, when it is not this one: an account's home
    /// counts only where there are several regions.
    pub fn remote_home(&self, home_region: &str) -> Option<String> {
        (self.list.is_multi() && !home_region.is_empty() && home_region != self.list.me)
            .then(|| home_region.to_owned())
    }

    fn call<T>(
        &self,
        home: &str,
        call: String,
        message: T,
    ) -> Result<(HomeAdmissionClient<Channel>, Request<T>), SessionError> {
        let client = self.clients.get(home).cloned().ok_or_else(|| {
            SessionError::HomeUnreachable(format!("{home:?} is not a known region"))
        })?;
        let token = self.list.call_token(home, &call, CALL_TOKEN_TTL_SECONDS);
        let mut req = lobby_kit::grpc::outgoing(message);
        req.metadata_mut().insert(
            CALL_TOKEN_HEADER,
            token
                .parse()
                .map_err(|_| SessionError::Corrupt("a call token is not ASCII".into()))?,
        );
        Ok((client, req))
    }

    /// Asks `home` to admit a session starting here.
    pub async fn hold(&self, home: &str, hold: HoldRequest) -> Result<Admission, SessionError> {
        let (mut client, req) = self.call(home, Call::Hold(&hold).statement(), hold)?;
        let answer = client
            .hold(req)
            .await
            .map_err(|s| unreachable_home(home, &s))?
            .into_inner();
        Ok(admission_of(&answer))
    }

    /// Renews, at `home`, the holds of sessions seen alive here.
    pub async fn renew(
        &self,
        home: &str,
        holds: Vec<HeldSession>,
    ) -> Result<RenewHoldsResponse, SessionError> {
        let (mut client, req) = self.call(
            home,
            Call::Renew(&holds).statement(),
            RenewHoldsRequest { holds },
        )?;
        Ok(client
            .renew_holds(req)
            .await
            .map_err(|s| unreachable_home(home, &s))?
            .into_inner())
    }

    /// Gives a hold back at `home`.
    pub async fn release(
        &self,
        home: &str,
        release: ReleaseHoldRequest,
    ) -> Result<bool, SessionError> {
        let (mut client, req) = self.call(home, Call::Release(&release).statement(), release)?;
        Ok(client
            .release_hold(req)
            .await
            .map_err(|s| unreachable_home(home, &s))?
            .into_inner()
            .released)
    }
}

/// Home did not answer (the start may be retried), or answered with a
/// refusal of its own: a region misconfigured (another secret, an unknown
/// region), which retrying will not mend.
fn unreachable_home(home: &str, status: &Status) -> SessionError {
    let what = format!("{home}: {}", status.message());
    if lobby_kit::grpc::is_unreachable(status) {
        SessionError::HomeUnreachable(what)
    } else {
        tracing::error!(%home, code = ?status.code(), message = status.message(), "the home region refused a call; check LOBBY_REGIONS and LOBBY_REGION_SECRET in both regions");
        SessionError::HomeRefused(what)
    }
}

/// A hold's answer as the admission it stands for.
fn admission_of(h: &HoldResponse) -> Admission {
    if h.admitted {
        return Admission::Admitted {
            deadline_ms: 0,
            reserved_seconds: h.reserved_seconds,
            lease_deadline_ms: h.lease_deadline_ms,
            started_at_ms: 0,
        };
    }
    Admission::refused(&h.refused_scope, h.limit, h.in_use, h.retry_after_ms)
}

/// Answers other regions' calls for the accounts homed here.
pub struct HomeAdmissionService {
    store: SessionStore,
    list: Arc<RegionList>,
    lease_ms: i64,
    retry_after_max_ms: i64,
}

impl HomeAdmissionService {
    pub fn new(
        store: SessionStore,
        list: RegionList,
        lease_ms: i64,
        retry_after_max_ms: i64,
    ) -> Self {
        Self {
            store,
            list: Arc::new(list),
            lease_ms,
            retry_after_max_ms,
        }
    }

    /// The calling region, when its token is good for `call`.
    fn caller<T>(&self, req: &Request<T>, call: &Call) -> Result<String, Status> {
        req.metadata()
            .get(CALL_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|t| self.list.verify_call_token(t, &call.statement()))
            .ok_or_else(|| SessionError::RegionUnauthenticated.into())
    }
}

/// Ids a region sends end up in keys: the alphabet every Lobby id keeps to.
fn check_id(field: &'static str, id: &str) -> Result<(), SessionError> {
    if lobby_proto::is_safe_id(id, 128) {
        Ok(())
    } else {
        Err(SessionError::invalid(
            field,
            "must be 1-128 of letters, digits, '-', '_' or '.'",
        ))
    }
}

fn check_ids(session: &str, account: &str, agent: &str) -> Result<(), SessionError> {
    check_id("session_id", session)?;
    check_id("account_id", account)?;
    check_id("agent_id", agent)
}

#[tonic::async_trait]
impl HomeAdmission for HomeAdmissionService {
    async fn hold(&self, req: Request<HoldRequest>) -> Result<Response<HoldResponse>, Status> {
        let region = self.caller(&req, &Call::Hold(req.get_ref()))?;
        let h = req.into_inner();
        check_ids(&h.session_id, &h.account_id, &h.agent_id)?;
        if h.account_limit == 0 || h.max_session_seconds == 0 {
            return Err(SessionError::invalid(
                "account_limit",
                "account_limit and max_session_seconds must be positive",
            )
            .into());
        }
        if !h.link_id.is_empty() {
            check_id("link_id", &h.link_id)?;
        }
        let admission = self
            .store
            .admit(&AdmitRequest {
                session_id: &h.session_id,
                account_id: &h.account_id,
                agent_id: &h.agent_id,
                account_limit: h.account_limit,
                agent_limit: h.agent_limit,
                max_session_seconds: h.max_session_seconds,
                quota_seconds: h.quota_seconds,
                link: (!h.link_id.is_empty()).then_some((h.link_id.as_str(), h.link_use_limit)),
                lease_ms: self.lease_ms,
                retry_after_max_ms: self.retry_after_max_ms,
                first_check_in_ms: 0,
                mode: AdmitMode::Hold { region: &region },
            })
            .await?;
        let answer = match admission {
            Admission::Admitted {
                reserved_seconds,
                lease_deadline_ms,
                ..
            } => HoldResponse {
                admitted: true,
                reserved_seconds,
                lease_deadline_ms,
                ..Default::default()
            },
            refused => {
                let (limit, in_use, retry_after_ms) = match &refused {
                    Admission::Refused(r) => (r.limit, r.in_use, r.retry_after_ms),
                    _ => (0, 0, 0),
                };
                HoldResponse {
                    refused_scope: refused.refusal_name().unwrap_or_default().to_owned(),
                    limit,
                    in_use,
                    retry_after_ms,
                    ..Default::default()
                }
            }
        };
        tracing::debug!(session_id = %h.session_id, account_id = %h.account_id, %region, admitted = answer.admitted, "hold asked");
        Ok(Response::new(answer))
    }

    async fn renew_holds(
        &self,
        req: Request<RenewHoldsRequest>,
    ) -> Result<Response<RenewHoldsResponse>, Status> {
        let region = self.caller(&req, &Call::Renew(&req.get_ref().holds))?;
        let holds = req.into_inner().holds;
        if holds.len() > MAX_RENEWALS_PER_CALL {
            return Err(SessionError::invalid(
                "holds",
                format!("at most {MAX_RENEWALS_PER_CALL} per call"),
            )
            .into());
        }
        let mut answer = RenewHoldsResponse::default();
        for h in &holds {
            check_ids(&h.session_id, &h.account_id, &h.agent_id)?;
        }
        for h in &holds {
            match self.store.renew_hold(h, self.lease_ms, &region).await? {
                HoldRenewal::Renewed => answer.renewed += 1,
                HoldRenewal::Retaken => {
                    answer.retaken += 1;
                    tracing::warn!(session_id = %h.session_id, account_id = %h.account_id, %region, "a hold that had run out was taken again; the account may pass its limit until sessions end");
                }
                HoldRenewal::Over => {}
            }
        }
        Ok(Response::new(answer))
    }

    async fn release_hold(
        &self,
        req: Request<ReleaseHoldRequest>,
    ) -> Result<Response<ReleaseHoldResponse>, Status> {
        self.caller(&req, &Call::Release(req.get_ref()))?;
        let r = req.into_inner();
        check_ids(&r.session_id, &r.account_id, &r.agent_id)?;
        // A renewal sent before the end may still be on its way: long
        // enough for any of them to arrive and find the tombstone.
        let tombstone_ms = (self.lease_ms * 4).max(60_000);
        let released = self
            .store
            .release_hold(
                &r.account_id,
                &r.agent_id,
                &r.session_id,
                (r.failed, r.ran_seconds),
                tombstone_ms,
            )
            .await?;
        Ok(Response::new(ReleaseHoldResponse { released }))
    }
}
