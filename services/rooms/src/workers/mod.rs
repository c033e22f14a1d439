//! GPU workers: their registry in Redis, job dispatch across rooms replicas,
//! the bidirectional stream each worker holds, and allocation.

pub mod dispatch;
pub mod registry;
pub mod stream;

pub use dispatch::Dispatcher;
pub use registry::Registry;
