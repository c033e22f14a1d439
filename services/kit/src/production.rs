//! `LOBBY_ENV=production`: a process refuses to start while any secret is
//! still its development default or an example placeholder, naming each.
//!
//! The defaults exist so that `make run` needs no setup; in production
//! each one is a published secret (anyone could mint LiveKit tokens with
//! `devkey`/`secret`, or sign artifact URLs).

use crate::{ConfigError, Settings};

/// Each secret setting and the value a process uses when it is unset.
pub const DEV_SECRETS: &[(&str, &str)] = &[
    (
        "LOBBY_AUTH_KEY_PEPPER",
        "dev-only-pepper-change-me-in-production",
    ),
    ("LOBBY_LIVEKIT_API_KEY", "devkey"),
    ("LOBBY_LIVEKIT_API_SECRET", "secret"),
    (
        "LOBBY_ARTIFACTS_SIGNING_SECRET",
        "dev-artifacts-signing-secret",
    ),
    // `dev:` + base64 of "lobby-dev-master-key-is-public!!".
    (
        "LOBBY_MASTER_KEYS",
        "dev:bG9iYnktZGV2LW1hc3Rlci1rZXktaXMtcHVibGljISE=",
    ),
];

/// The development default of `setting` (one of `DEV_SECRETS`).
pub fn dev_default(setting: &str) -> &'static str {
    DEV_SECRETS
        .iter()
        .find(|(name, _)| *name == setting)
        .map_or("", |(_, value)| value)
}

/// Words the example manifests' placeholders carry.
const PLACEHOLDER_MARKS: &[&str] = &["replace-with", "replace-me", "change-me", "example"];

/// In production, every dev default, placeholder or debugging switch in use,
/// named in one error; elsewhere nothing.
pub fn refuse_dev_defaults(s: &Settings) -> Result<(), ConfigError> {
    if !crate::shared_settings::is_production(s)? {
        return Ok(());
    }
    let mut refused = Vec::new();
    for (setting, dev_value) in DEV_SECRETS {
        let value = s.peek(setting).unwrap_or_default();
        let lower = value.to_ascii_lowercase();
        if value.is_empty() {
            refused.push(format!(
                "{setting} is unset (its development default is public)"
            ));
        } else if value == *dev_value {
            refused.push(format!("{setting} is its development default"));
        } else if PLACEHOLDER_MARKS.iter().any(|m| lower.contains(m)) {
            refused.push(format!("{setting} is an example placeholder"));
        }
    }
    if crate::grpc_tls::plaintext(s)? {
        refused.push(format!(
            "{} turns off mutual TLS",
            crate::grpc_tls::PLAINTEXT
        ));
    }
    if crate::shared_settings::avatar_allows_private_addresses(s)? {
        refused.push(
            "LOBBY_AVATAR_ALLOW_PRIVATE_ADDRESSES lets avatar fetches reach internal addresses"
                .into(),
        );
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            setting: "LOBBY_ENV".into(),
            reason: format!("production refuses to start: {}", refused.join("; ")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The manifests' policy check (deploy/policy.py) refuses what a
    /// production process refuses; this keeps its copy of the rules in step.
    #[test]
    fn the_manifest_policy_knows_every_development_secret_and_placeholder() {
        let policy = include_str!("../../../deploy/policy.py");
        for (setting, value) in DEV_SECRETS {
            assert!(
                policy.contains(&format!("\"{setting}\": \"{value}\"")),
                "deploy/policy.py lacks {setting}'s development default"
            );
        }
        for mark in PLACEHOLDER_MARKS {
            assert!(
                policy.contains(&format!("\"{mark}\"")),
                "deploy/policy.py lacks the placeholder mark {mark:?}"
            );
        }
    }

    #[test]
    fn development_accepts_the_defaults() {
        assert!(refuse_dev_defaults(&Settings::default()).is_ok());
    }

    #[test]
    fn production_names_every_default_and_placeholder() {
        let s = Settings::from_pairs([
            ("LOBBY_ENV", "production"),
            ("LOBBY_LIVEKIT_API_KEY", "devkey"),
            ("LOBBY_LIVEKIT_API_SECRET", "replace-me"),
            (
                "LOBBY_ARTIFACTS_SIGNING_SECRET",
                "a-real-secret-of-some-length",
            ),
            ("LOBBY_GRPC_PLAINTEXT", "true"),
        ]);
        let err = refuse_dev_defaults(&s).unwrap_err().to_string();
        for named in [
            "LOBBY_AUTH_KEY_PEPPER is unset",
            "LOBBY_LIVEKIT_API_KEY is its development default",
            "LOBBY_LIVEKIT_API_SECRET is an example placeholder",
            "LOBBY_MASTER_KEYS is unset",
            "LOBBY_GRPC_PLAINTEXT",
        ] {
            assert!(err.contains(named), "{named}: {err}");
        }
        assert!(!err.contains("LOBBY_ARTIFACTS_SIGNING_SECRET"), "{err}");
    }

    #[test]
    fn production_with_real_secrets_starts() {
        let s = Settings::from_pairs([
            ("LOBBY_ENV", "production"),
            ("LOBBY_AUTH_KEY_PEPPER", "k3J9s0dPq8v2Lm4Z"),
            ("LOBBY_LIVEKIT_API_KEY", "APIa8Fd93kLs"),
            ("LOBBY_LIVEKIT_API_SECRET", "Zx8vN2qL0pR5tY7uWb3c"),
            ("LOBBY_ARTIFACTS_SIGNING_SECRET", "h7Gf2Kd9Lm3Np8Qr"),
            (
                "LOBBY_MASTER_KEYS",
                "main:q83vEjzN0XJmS4Y1a2h7cP5dKx9LtW6RfB0gUe3yHoM=",
            ),
        ]);
        assert!(refuse_dev_defaults(&s).is_ok());
    }
}
