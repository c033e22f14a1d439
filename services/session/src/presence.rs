//! Who has to be in a session's room, by when: the user and the agent each
//! have a join deadline from the start, and once the last user has left the
//! agent may stay alone only for its `solo_timeout_seconds`. Pure functions
//! over the record, so the rules are tested without a network.

use crate::records::EndedReason;
use lobby_proto::session::Session;

#[derive(Debug, Clone, Copy)]
pub struct JoinDeadlines {
    pub user_ms: i64,
    pub agent_ms: i64,
}

fn waits_for_agent(s: &Session) -> bool {
    !s.agent_identity.is_empty() && s.agent_joined_at_ms == 0
}

/// The earliest time something about presence must be checked, if any.
pub fn next_check(s: &Session, d: JoinDeadlines) -> Option<i64> {
    let mut due = Vec::new();
    if s.user_joined_at_ms == 0 {
        due.push(s.started_at_ms + d.user_ms);
    }
    if waits_for_agent(s) {
        due.push(s.started_at_ms + d.agent_ms);
    }
    if s.alone_since_ms > 0 {
        due.push(s.alone_since_ms + i64::from(s.solo_timeout_seconds) * 1000);
    }
    due.into_iter().min()
}

/// Why the session must end at `now_ms`, if it must.
pub fn verdict(s: &Session, d: JoinDeadlines, now_ms: i64) -> Option<EndedReason> {
    if s.user_joined_at_ms == 0 && now_ms >= s.started_at_ms + d.user_ms {
        return Some(EndedReason::UserJoinTimeout);
    }
    if waits_for_agent(s) && now_ms >= s.started_at_ms + d.agent_ms {
        return Some(EndedReason::AgentJoinTimeout);
    }
    if s.alone_since_ms > 0 && now_ms >= s.alone_since_ms + i64::from(s.solo_timeout_seconds) * 1000
    {
        return Some(EndedReason::SoloTimeout);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: JoinDeadlines = JoinDeadlines {
        user_ms: 120_000,
        agent_ms: 60_000,
    };

    fn session() -> Session {
        Session {
            started_at_ms: 1_000,
            agent_identity: "agent".into(),
            solo_timeout_seconds: 30,
            ..Default::default()
        }
    }

    #[test]
    fn nobody_joined_the_agent_deadline_comes_first() {
        let s = session();
        assert_eq!(next_check(&s, D), Some(61_000));
        assert_eq!(verdict(&s, D, 60_999), None);
        assert_eq!(verdict(&s, D, 61_000), Some(EndedReason::AgentJoinTimeout));
    }

    #[test]
    fn the_user_deadline_applies_once_the_agent_is_in() {
        let s = Session {
            agent_joined_at_ms: 5_000,
            ..session()
        };
        assert_eq!(next_check(&s, D), Some(121_000));
        assert_eq!(verdict(&s, D, 121_000), Some(EndedReason::UserJoinTimeout));
    }

    #[test]
    fn no_agent_identity_means_no_agent_deadline() {
        let s = Session {
            agent_identity: String::new(),
            user_joined_at_ms: 2_000,
            ..session()
        };
        assert_eq!(next_check(&s, D), None);
        assert_eq!(verdict(&s, D, i64::MAX / 2), None);
    }

    #[test]
    fn alone_past_the_solo_timeout_ends_it() {
        let s = Session {
            user_joined_at_ms: 2_000,
            agent_joined_at_ms: 2_000,
            alone_since_ms: 10_000,
            ..session()
        };
        assert_eq!(next_check(&s, D), Some(40_000));
        assert_eq!(verdict(&s, D, 39_999), None);
        assert_eq!(verdict(&s, D, 40_000), Some(EndedReason::SoloTimeout));
    }
}
