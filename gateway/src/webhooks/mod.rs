//! Provider webhooks: verified here, acted on by the session service.

pub mod daily;
pub mod livekit;
