//! What `make run` and the tests need beside the services themselves.

pub mod certs;
