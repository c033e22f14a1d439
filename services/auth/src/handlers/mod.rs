//! What each call of the auth API does, as `AuthService` methods grouped by
//! concern; `grpc` puts them on the wire.

mod catalog;
mod keys;
mod links;
mod tokens;
