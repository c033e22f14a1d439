//! `lobby-rooms`: the rooms service as a process of its own.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    lobby_kit::shutdown::run_service(
        "rooms",
        lobby_rooms::RoomsConfig::from_settings,
        |c| c.shutdown,
        lobby_rooms::serve,
    )
    .await
}
