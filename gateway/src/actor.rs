//! Who is making the request, for the services' audit log: the request's id,
//! the client's address (behind trusted proxies, see `client_addr`), and
//! once a credential is checked, whose it is (`admin`, or `key:<prefix>`).
//!
//! The edge opens the request's scope; the admin guard and the API-key
//! check say who it is; calls that change something are built with
//! [`request`], which puts all of it in the call's gRPC metadata.

use lobby_kit::audit::Actor;
use std::cell::RefCell;

tokio::task_local! {
    static ACTOR: RefCell<Actor>;
}

/// Runs `handler` with this request's actor in scope.
pub async fn scope<F: std::future::Future>(
    request_id: String,
    client_ip: String,
    handler: F,
) -> F::Output {
    let actor = Actor {
        who: "anonymous".to_owned(),
        request_id,
        client_ip,
    };
    ACTOR.scope(RefCell::new(actor), handler).await
}

/// Records whose credential the request carries.
pub fn identify(who: String) {
    // Outside a request's scope (a unit test) there is nobody to name.
    let _ = ACTOR.try_with(|a| a.borrow_mut().who = who);
}

/// A gRPC request carrying this request's actor.
pub fn request<T>(message: T) -> tonic::Request<T> {
    // With the trace context, when traces are exported.
    let mut req = lobby_kit::grpc::outgoing(message);
    let _ = ACTOR.try_with(|a| a.borrow().attach(&mut req));
    req
}
