//! Avatar validation on link starts: a face is required, every other outcome
//! is a 422 naming its reason, nothing is taken by a refused start, and the
//! verdict is cached per URL and per content.

use lobby_tests::{avatar_server::AvatarServer, Lobby, LobbyOptions};
use reqwest::Method;
use serde_json::{json, Value};

async fn start_with_avatar(lobby: &Lobby, account: &str, avatar_url: &str) -> (u16, Value, String) {
    let agent = lobby
        .create_agent(account, json!({ "avatar_image_url": avatar_url }))
        .await;
    let link = lobby.create_link(account, &agent, json!({})).await;
    let link_id = link["id"].as_str().expect("id").to_owned();
    let r = lobby.start_link(&json!({ "link_id": link_id })).await;
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"), link_id)
}

async fn uses(lobby: &Lobby, link_id: &str) -> u64 {
    let (_, b) = lobby
        .admin_json(Method::GET, &format!("/links/{link_id}"), None)
        .await;
    b["uses"].as_u64().expect("uses")
}

#[tokio::test]
async fn each_bad_avatar_is_a_422_naming_its_reason_and_takes_nothing() {
    let lobby = Lobby::start(LobbyOptions {
        extra_env: vec![
            ("LOBBY_AVATAR_MAX_BYTES".into(), "200000".into()),
            ("LOBBY_AVATAR_FETCH_TIMEOUT_MS".into(), "700".into()),
            ("LOBBY_AVATAR_MAX_REDIRECTS".into(), "3".into()),
        ],
        ..Default::default()
    })
    .await;
    let avatars = AvatarServer::start().await;
    let account = lobby.create_account(5).await;

    let (s, b, link) = start_with_avatar(&lobby, &account, &avatars.url("face.jpg")).await;
    assert_eq!(s, 200, "a face passes: {b}");
    assert_eq!(uses(&lobby, &link).await, 1);
    let (s, b, _) = start_with_avatar(&lobby, &account, &avatars.url("redirect-2")).await;
    assert_eq!(s, 200, "redirects within the limit are followed: {b}");
    let (s, b, _) = start_with_avatar(&lobby, &account, &avatars.url("face-as-text")).await;
    assert_eq!(
        s, 200,
        "the bytes decide the format, not the Content-Type: {b}"
    );

    for (name, code) in [
        ("noface.png", "avatar_no_face"),
        ("text", "avatar_unsupported_format"),
        ("big.png", "avatar_too_large"),
        ("tiny.png", "avatar_bad_dimensions"),
        ("slow.jpg", "avatar_timeout"),
        ("missing.png", "avatar_unreachable"),
        ("redirect-5", "avatar_unreachable"),
    ] {
        let (s, b, link) = start_with_avatar(&lobby, &account, &avatars.url(name)).await;
        assert_eq!(s, 422, "{name}: {b}");
        assert_eq!(b["success"], false, "{name}: {b}");
        assert_eq!(b["error"], code, "{name}: {b}");
        assert!(
            b["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}: {b}"
        );
        assert_eq!(
            uses(&lobby, &link).await,
            0,
            "{name}: the use was given back"
        );
    }
    assert_eq!(
        lobby.active_sessions(&account).await,
        3,
        "only the three good starts hold slots"
    );
    assert_eq!(lobby.usage(&account).await["reserved_seconds"], 3 * 3600);
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let lobby = Lobby::start(LobbyOptions {
        extra_env: vec![(
            "LOBBY_AVATAR_ALLOW_PRIVATE_ADDRESSES".into(),
            "false".into(),
        )],
        ..Default::default()
    })
    .await;
    let avatars = AvatarServer::start().await;
    let account = lobby.create_account(5).await;
    for url in [
        avatars.url("face.jpg"),
        avatars.url("face.jpg").replace("127.0.0.1", "localhost"),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://10.0.0.1/a.png".to_owned(),
        "http://[::1]/a.png".to_owned(),
    ] {
        let (s, b, _) = start_with_avatar(&lobby, &account, &url).await;
        assert_eq!(
            (s, &b["error"]),
            (422, &json!("avatar_address_refused")),
            "{url}: {b}"
        );
    }
    assert_eq!(
        avatars.hits("face.jpg"),
        0,
        "nothing was fetched from a refused address"
    );
}

#[tokio::test]
async fn verdicts_are_cached_per_url_and_per_content() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let avatars = AvatarServer::start().await;
    let account = lobby.create_account(10).await;
    let agent = lobby
        .create_agent(
            &account,
            json!({ "avatar_image_url": avatars.url("face.jpg") }),
        )
        .await;
    let link = lobby.create_link(&account, &agent, json!({})).await;
    for _ in 0..4 {
        let r = lobby.start_link(&json!({ "link_id": link["id"] })).await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        avatars.hits("face.jpg"),
        1,
        "a busy link fetches its avatar once"
    );

    // The same bytes at another URL: fetched (new URL), not detected again.
    let (s, _, _) = start_with_avatar(&lobby, &account, &avatars.url("same-face.jpg")).await;
    assert_eq!(s, 200);
    assert_eq!(avatars.hits("same-face.jpg"), 1);
    let mut redis = lobby.redis.connection().await;
    let content_keys: Vec<String> = redis::cmd("KEYS")
        .arg("avatar:content:*")
        .query_async(&mut redis)
        .await
        .expect("keys");
    assert_eq!(
        content_keys.len(),
        1,
        "one content verdict serves both URLs"
    );

    // Failures that depend on the moment (timeouts, unreachable) are not cached.
    let (s, _, _) = start_with_avatar(&lobby, &account, &avatars.url("missing.png")).await;
    assert_eq!(s, 422);
    let (s, _, _) = start_with_avatar(&lobby, &account, &avatars.url("missing.png")).await;
    assert_eq!(s, 422);
    assert_eq!(
        avatars.hits("missing.png"),
        2,
        "an unreachable image is asked again"
    );
}

/// A proxy from the environment would connect to the avatar's host name
/// itself, past the address the fetch checked: the fetch ignores it.
#[tokio::test]
async fn the_avatar_fetch_ignores_proxies_from_the_environment() {
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy_url = format!("http://{}", proxy.local_addr().expect("addr"));
    let proxied = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = proxied.clone();
    let _proxy = tokio::spawn(async move {
        while let Ok((stream, _)) = proxy.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    let extra_env = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ]
    .into_iter()
    .map(|k| (k.to_owned(), proxy_url.clone()))
    .collect();
    let lobby = Lobby::start(LobbyOptions {
        extra_env,
        ..Default::default()
    })
    .await;
    let avatars = AvatarServer::start().await;
    let account = lobby.create_account(5).await;
    let (s, b, _) = start_with_avatar(&lobby, &account, &avatars.url("face.jpg")).await;
    assert_eq!(s, 200, "fetched directly: {b}");
    assert_eq!(
        proxied.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the proxy saw the fetch"
    );
}
