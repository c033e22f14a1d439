//! `lobby-artifacts`: the artifacts service as a process of its own.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    lobby_kit::shutdown::run_service(
        "artifacts",
        lobby_artifacts::ArtifactsConfig::from_settings,
        |c| c.shutdown,
        lobby_artifacts::serve,
    )
    .await
}
