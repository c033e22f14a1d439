//! The `lobby.session.v1.Sessions` service: the wire in, the flows of
//! `start`, `service`, `agent_runs` and `provider_events` out.

use crate::{error::SessionError, records::EndedReason, service::SessionService};
use lobby_kit::audit::Actor;
use lobby_proto::session::{self as pb, sessions_server::Sessions, Session, SessionEvent};
use tonic::{Request, Response, Status};

#[tonic::async_trait]
impl Sessions for SessionService {
    async fn start_session(
        &self,
        req: Request<pb::StartSessionRequest>,
    ) -> Result<Response<pb::StartSessionResponse>, Status> {
        Ok(Response::new(
            SessionService::start_session(self, req.into_inner()).await?,
        ))
    }

    async fn end_session(
        &self,
        req: Request<pb::EndSessionRequest>,
    ) -> Result<Response<Session>, Status> {
        let actor = Actor::from_metadata(req.metadata());
        let req = req.into_inner();
        let reason = if req.reason.is_empty() {
            EndedReason::ExplicitEnd
        } else {
            EndedReason::parse(&req.reason).ok_or_else(|| {
                SessionError::invalid("reason", "is not a documented ended reason")
            })?
        };
        let owner = (!req.as_agent_id.is_empty() || !req.as_account_id.is_empty())
            .then_some((req.as_account_id.as_str(), req.as_agent_id.as_str()));
        if owner.is_some_and(|(account, agent)| account.is_empty() || agent.is_empty()) {
            return Err(SessionError::invalid(
                "as_agent_id",
                "as_agent_id and as_account_id go together",
            )
            .into());
        }
        let ended = self.end(&req.session_id, reason, None, owner).await?;
        // An operator's end is an admin edit; a run's own end is not.
        if owner.is_none() {
            self.audit
                .record(
                    Some(&ended.account_id),
                    &actor,
                    "endSession",
                    &format!("session:{}", ended.id),
                )
                .await;
        }
        Ok(Response::new(self.opened(ended).await?))
    }

    async fn get_session(
        &self,
        req: Request<pb::GetSessionRequest>,
    ) -> Result<Response<Session>, Status> {
        let req = req.into_inner();
        let session = if req.account_id.is_empty() {
            self.store.get(&req.session_id).await?
        } else {
            self.store
                .get_in(&req.account_id, &req.session_id)
                .await?
                .ok_or(SessionError::NotFound(req.session_id))?
        };
        Ok(Response::new(self.opened(session).await?))
    }

    async fn get_account_usage(
        &self,
        req: Request<pb::GetAccountUsageRequest>,
    ) -> Result<Response<pb::AccountUsage>, Status> {
        let account_id = req.into_inner().account_id;
        if account_id.is_empty() {
            return Err(SessionError::invalid("account_id", "is required").into());
        }
        let usage = self.store.usage(&account_id).await?;
        Ok(Response::new(pb::AccountUsage {
            account_id,
            active_sessions: usage.active_sessions,
            used_seconds: usage.used_seconds,
            reserved_seconds: usage.reserved_seconds,
        }))
    }

    async fn list_sessions(
        &self,
        req: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let req = req.into_inner();
        if req.account_id.is_empty() {
            return Err(SessionError::invalid("account_id", "is required").into());
        }
        if !(1..=1000).contains(&req.limit) {
            return Err(SessionError::invalid("limit", "must be between 1 and 1000").into());
        }
        let ids = self.store.newest_ids(&req.account_id, req.limit).await?;
        let read =
            futures::future::join_all(ids.iter().map(|id| self.store.get_in(&req.account_id, id)))
                .await;
        let mut sessions = Vec::with_capacity(read.len());
        // A session purged between the two reads is left out.
        for s in read.into_iter().filter_map(Result::transpose) {
            sessions.push(self.opened(s?).await?);
        }
        Ok(Response::new(pb::ListSessionsResponse { sessions }))
    }

    async fn start_agent_run(
        &self,
        req: Request<pb::StartAgentRunRequest>,
    ) -> Result<Response<pb::StartAgentRunResponse>, Status> {
        Ok(Response::new(
            SessionService::start_agent_run(self, req.into_inner()).await?,
        ))
    }

    async fn append_event(
        &self,
        req: Request<pb::AppendEventRequest>,
    ) -> Result<Response<SessionEvent>, Status> {
        Ok(Response::new(
            SessionService::append_event(self, req.into_inner()).await?,
        ))
    }

    async fn list_events(
        &self,
        req: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let events = SessionService::list_events(self, req.into_inner()).await?;
        Ok(Response::new(pb::ListEventsResponse { events }))
    }

    async fn create_record(
        &self,
        req: Request<pb::CreateRecordRequest>,
    ) -> Result<Response<pb::CreateRecordResponse>, Status> {
        let created = SessionService::create_record(self, req.into_inner()).await?;
        Ok(Response::new(pb::CreateRecordResponse { created }))
    }

    async fn list_records(
        &self,
        req: Request<pb::ListRecordsRequest>,
    ) -> Result<Response<pb::ListRecordsResponse>, Status> {
        let records = SessionService::list_records(self, req.into_inner()).await?;
        Ok(Response::new(pb::ListRecordsResponse { records }))
    }

    async fn query_records(
        &self,
        req: Request<pb::QueryRecordsRequest>,
    ) -> Result<Response<pb::QueryRecordsResponse>, Status> {
        let (rows, total) = SessionService::query_records(self, req.into_inner()).await?;
        Ok(Response::new(pb::QueryRecordsResponse { rows, total }))
    }

    async fn delete_record(
        &self,
        req: Request<pb::DeleteRecordRequest>,
    ) -> Result<Response<pb::DeleteRecordResponse>, Status> {
        let actor = Actor::from_metadata(req.metadata());
        let req = req.into_inner();
        let deleted = SessionService::delete_record(self, req.clone()).await?;
        if deleted {
            self.audit
                .record(
                    Some(&req.account_id),
                    &actor,
                    "deleteSession",
                    &format!("session:{}", req.id),
                )
                .await;
        }
        Ok(Response::new(pb::DeleteRecordResponse { deleted }))
    }

    async fn append_messages(
        &self,
        req: Request<pb::AppendMessagesRequest>,
    ) -> Result<Response<pb::MessagesAppended>, Status> {
        Ok(Response::new(
            SessionService::append_messages(self, req.into_inner()).await?,
        ))
    }

    async fn rotate_data_key(
        &self,
        req: Request<pb::RotateDataKeyRequest>,
    ) -> Result<Response<pb::DataKeyInfo>, Status> {
        let actor = Actor::from_metadata(req.metadata());
        let req = req.into_inner();
        if req.account_id.is_empty() {
            return Err(SessionError::invalid("account_id", "is required").into());
        }
        let key_id = self
            .vault
            .rotate_data_key(&req.account_id)
            .await
            .map_err(SessionError::from)?;
        self.audit
            .record(
                Some(&req.account_id),
                &actor,
                "rotateDataKey",
                &format!("data_key:{key_id}"),
            )
            .await;
        Ok(Response::new(pb::DataKeyInfo { key_id }))
    }

    async fn list_audit(
        &self,
        req: Request<pb::ListAuditRequest>,
    ) -> Result<Response<pb::ListAuditResponse>, Status> {
        let req = req.into_inner();
        let limit = match req.limit {
            0 => 50,
            n if n <= 500 => n as usize,
            _ => return Err(SessionError::invalid("limit", "must be at most 500").into()),
        };
        if !req.before.is_empty() && !lobby_kit::audit::valid_cursor(&req.before) {
            return Err(
                SessionError::invalid("before", "is not a cursor this log handed out").into(),
            );
        }
        let account = (!req.account_id.is_empty()).then_some(req.account_id.as_str());
        let before = (!req.before.is_empty()).then_some(req.before.as_str());
        let (entries, next) = self
            .audit
            .read(account, before, limit)
            .await
            .map_err(SessionError::from)?;
        Ok(Response::new(pb::ListAuditResponse {
            entries: entries
                .into_iter()
                .map(|e| pb::AuditEntry {
                    id: e.id,
                    at_ms: e.at_ms,
                    who: e.who,
                    event: e.event,
                    target: e.target,
                    request_id: e.request_id,
                    client_ip: e.client_ip,
                })
                .collect(),
            next: next.unwrap_or_default(),
        }))
    }

    async fn handle_provider_event(
        &self,
        req: Request<pb::ProviderEvent>,
    ) -> Result<Response<pb::ProviderEventOutcome>, Status> {
        Ok(Response::new(
            SessionService::handle_provider_event(self, req.into_inner()).await?,
        ))
    }
}
