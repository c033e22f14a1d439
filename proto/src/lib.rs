//! Generated gRPC types of every Lobby service. Nothing but generated code and
//! tiny conversions lives here.

/// Modules nest by proto package because generated code refers to other
/// packages by relative path (`super::super::common::v1`).
pub mod lobby {
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("lobby.common.v1");
        }
    }
    pub mod auth {
        pub mod v1 {
            tonic::include_proto!("lobby.auth.v1");
        }
    }
    pub mod session {
        pub mod v1 {
            tonic::include_proto!("lobby.session.v1");
        }
    }
    pub mod rooms {
        pub mod v1 {
            tonic::include_proto!("lobby.rooms.v1");
        }
    }
    pub mod artifacts {
        pub mod v1 {
            tonic::include_proto!("lobby.artifacts.v1");
        }
    }
    pub mod regions {
        pub mod v1 {
            tonic::include_proto!("lobby.regions.v1");
        }
    }
    pub mod workers {
        pub mod v1 {
            tonic::include_proto!("lobby.workers.v1");
        }
    }
}

pub use lobby::{
    artifacts::v1 as artifacts, auth::v1 as auth, common::v1 as common, regions::v1 as regions,
    rooms::v1 as rooms, session::v1 as session, workers::v1 as workers,
};

/// Encoded `FileDescriptorSet` of all Lobby protos, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/lobby_descriptor.bin"));

/// Every session's room is named after the session (the Rooms contract),
/// never by a caller, so one session has one room: rooms opens it under this
/// name, and the session service finds a room's session (in provider
/// webhooks) and a session's room without asking.
pub fn room_name(session_id: &str) -> String {
    format!("{ROOM_PREFIX}{session_id}")
}

/// The session a room belongs to; `None` for a room Lobby did not name.
pub fn session_of_room(room_name: &str) -> Option<&str> {
    room_name.strip_prefix(ROOM_PREFIX)
}

const ROOM_PREFIX: &str = "lobby-";

/// An id that may appear in Redis keys and URLs as it is: 1 to `max_len`
/// letters, digits, '-', '_' or '.'.
pub fn is_safe_id(id: &str, max_len: usize) -> bool {
    !id.is_empty()
        && id.len() <= max_len
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A GPU worker's id (the Workers contract, and what a worker key is bound
/// to): 1-64 letters, digits, '-', '_' or '.'.
pub fn valid_worker_id(id: &str) -> bool {
    is_safe_id(id, 64)
}

/// A gRPC client made to look like the service itself: `Remote(client)`
/// implements the service's server trait by forwarding each call. Callers
/// hold `Arc<dyn rooms_server::Rooms>` (and so on) and get either the
/// service in-process or its remote peer, through one code path.
#[derive(Debug, Clone)]
pub struct Remote<C>(pub C);

include!(concat!(env!("OUT_DIR"), "/lobby_remote.rs"));

#[cfg(test)]
mod tests {
    #[test]
    fn a_room_name_leads_back_to_its_session() {
        let room = super::room_name("sess_1");
        assert_eq!(room, "lobby-sess_1");
        assert_eq!(super::session_of_room(&room), Some("sess_1"));
        assert_eq!(super::session_of_room("someone-elses-room"), None);
    }
}
