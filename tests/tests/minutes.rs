//! Minutes quotas: a start reserves up to the agent's max_session_seconds of
//! what the account has left, in the same atomic step as its slots; ending
//! turns the reservation into the seconds used.

use lobby_tests::{avatar_server::AvatarServer, Lobby, LobbyOptions};
use serde_json::{json, Value};

#[tokio::test]
async fn minutes_run_out_and_come_back_when_sessions_end() {
    let lobby = Lobby::start(LobbyOptions::default()).await;
    let avatars = AvatarServer::start().await;
    let account = lobby.create_account(10).await;
    lobby
        .patch_account(&account, json!({ "minutes_quota": 1 }))
        .await;
    let agent = lobby
        .create_agent(
            &account,
            json!({ "max_session_seconds": 40, "avatar_image_url": avatars.url("face.jpg") }),
        )
        .await;

    let first: Value = lobby
        .connect(&agent, None)
        .await
        .json()
        .await
        .expect("json");
    assert!(first["session_id"].is_string(), "{first}");
    let second: Value = lobby
        .connect(&agent, None)
        .await
        .json()
        .await
        .expect("json");
    assert!(
        second["session_id"].is_string(),
        "only 20 s were left, and they were reserved: {second}"
    );
    let usage = lobby.usage(&account).await;
    assert_eq!(usage["reserved_seconds"], 60, "{usage}");
    assert_eq!(usage["remaining_seconds"], 0);
    assert_eq!(usage["active_sessions"], 2);

    let r = lobby.connect(&agent, None).await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error_code"], "minutes_exhausted", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(
        lobby.active_sessions(&account).await,
        2,
        "the refusal took no slot"
    );

    // The same refusal through seed 002, with the link's use given back.
    let link = lobby
        .create_link(&account, &agent, json!({ "use_limit": 1 }))
        .await;
    let r = lobby.start_link(&json!({ "link_id": link["id"] })).await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.expect("json");
    assert_eq!(
        (body["success"].clone(), body["error"].clone()),
        (json!(false), json!("minutes_exhausted"))
    );

    // Ending a session that ran (almost) no time gives back its reservation.
    lobby
        .end_session(first["session_id"].as_str().expect("id"))
        .await;
    let usage = lobby.usage(&account).await;
    assert_eq!(usage["reserved_seconds"], 20, "{usage}");
    assert!(
        usage["used_seconds"].as_u64().is_some_and(|u| u <= 1),
        "{usage}"
    );
    assert!(
        usage["remaining_seconds"].as_u64().is_some_and(|r| r >= 39),
        "{usage}"
    );
    let again = lobby.connect(&agent, None).await;
    assert_eq!(again.status(), 200);

    // Raising the quota is seen by the next start.
    lobby
        .patch_account(&account, json!({ "minutes_quota": 100 }))
        .await;
    let usage = lobby.usage(&account).await;
    assert_eq!(usage["minutes_quota"], 100);
    assert!(
        usage["remaining_seconds"]
            .as_u64()
            .is_some_and(|r| r > 5900),
        "{usage}"
    );
}
