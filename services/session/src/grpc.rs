//! The `lobby.session.v1.Sessions` service: the wire in, the flows of
//! `start`, `service`, `agent_runs` and `provider_events` out.

use crate::{error::SessionError, records::EndedReason, service::SessionService};
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
        Ok(Response::new(
            self.end(&req.session_id, reason, None, owner).await?,
        ))
    }

    async fn get_session(
        &self,
        req: Request<pb::GetSessionRequest>,
    ) -> Result<Response<Session>, Status> {
        Ok(Response::new(
            self.store.get(&req.into_inner().session_id).await?,
        ))
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
        let deleted = SessionService::delete_record(self, req.into_inner()).await?;
        Ok(Response::new(pb::DeleteRecordResponse { deleted }))
    }

    async fn rotate_data_key(
        &self,
        req: Request<pb::RotateDataKeyRequest>,
    ) -> Result<Response<pb::DataKeyInfo>, Status> {
        let req = req.into_inner();
        if req.account_id.is_empty() {
            return Err(SessionError::invalid("account_id", "is required").into());
        }
        let key_id = self
            .vault
            .rotate_data_key(&req.account_id)
            .await
            .map_err(SessionError::from)?;
        Ok(Response::new(pb::DataKeyInfo { key_id }))
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
