use lobby_kit::{shutdown, telemetry, Settings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init("rooms");
    let config = lobby_rooms::RoomsConfig::from_settings(&Settings::from_env()?)?;
    lobby_rooms::serve(config, shutdown::signal()).await?;
    Ok(())
}
