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
    pub mod workers {
        pub mod v1 {
            tonic::include_proto!("lobby.workers.v1");
        }
    }
}

pub use lobby::{
    artifacts::v1 as artifacts, auth::v1 as auth, common::v1 as common, rooms::v1 as rooms,
    session::v1 as session, workers::v1 as workers,
};

/// Encoded `FileDescriptorSet` of all Lobby protos, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/lobby_descriptor.bin"));

/// A gRPC client made to look like the service itself: `Remote(client)`
/// implements the service's server trait by forwarding each call. Callers
/// hold `Arc<dyn rooms_server::Rooms>` (and so on) and get either the
/// service in-process or its remote peer, through one code path.
#[derive(Debug, Clone)]
pub struct Remote<C>(pub C);

include!(concat!(env!("OUT_DIR"), "/lobby_remote.rs"));
