//! Typed configuration from the environment (`LOBBY_…`) and an optional file.
//!
//! Each service declares one struct and fills it through [`Settings`], which
//! knows where a value came from so a bad value fails start-up with a message
//! naming the setting. The file (`LOBBY_CONFIG_FILE`) holds `LOBBY_X=value`
//! lines; the environment wins over it so an operator can override one field.

use std::{collections::HashMap, fmt::Display, path::Path, str::FromStr};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("setting {setting}: {reason}")]
    Invalid { setting: String, reason: String },
    #[error("config file {path}: {reason}")]
    File { path: String, reason: String },
}

/// Configuration values from the config file overlaid with the environment.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    values: HashMap<String, String>,
}

impl Settings {
    /// Reads `LOBBY_CONFIG_FILE` (when set) and then the process
    /// environment. Every binary starts here, so this is where
    /// `LOBBY_ENV=production` refuses development secrets.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut values = HashMap::new();
        if let Ok(path) = std::env::var("LOBBY_CONFIG_FILE") {
            values.extend(read_file(Path::new(&path))?);
        }
        values.extend(std::env::vars().filter(|(k, _)| k.starts_with("LOBBY_")));
        let settings = Self { values };
        crate::production::refuse_dev_defaults(&settings)?;
        Ok(settings)
    }

    /// Settings from explicit pairs only; tests and the dev binary use it.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Returns a copy where `overrides` win over the present values.
    pub fn with<K: Into<String>, V: Into<String>>(
        mut self,
        overrides: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.values
            .extend(overrides.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    pub fn raw(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Parses `key`, or returns `default` when it is unset or empty.
    pub fn get_or<T>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.raw(key).filter(|v| !v.trim().is_empty()) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e: T::Err| ConfigError::Invalid {
                    setting: key.to_owned(),
                    reason: format!("cannot parse {raw:?}: {e}"),
                }),
        }
    }

    pub fn string_or(&self, key: &str, default: &str) -> String {
        self.raw(key)
            .filter(|v| !v.trim().is_empty())
            .unwrap_or(default)
            .trim()
            .to_owned()
    }

    /// Fails with the setting's name when `check` refuses the value.
    pub fn ensure(key: &str, ok: bool, reason: &str) -> Result<(), ConfigError> {
        if ok {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                setting: key.to_owned(),
                reason: reason.to_owned(),
            })
        }
    }
}

fn read_file(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut values = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| ConfigError::File {
            path: path.display().to_string(),
            reason: format!("line {}: expected KEY=value", n + 1),
        })?;
        values.insert(key.trim().to_owned(), value.trim().to_owned());
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_value_names_the_setting() {
        let s = Settings::from_pairs([("LOBBY_PORT", "eighty")]);
        let err = s.get_or::<u16>("LOBBY_PORT", 1).unwrap_err().to_string();
        assert!(err.contains("LOBBY_PORT"), "{err}");
    }

    #[test]
    fn empty_value_falls_back_to_default() {
        let s = Settings::from_pairs([("LOBBY_PORT", " ")]);
        assert_eq!(s.get_or::<u16>("LOBBY_PORT", 7).unwrap(), 7);
    }

    #[test]
    fn environment_wins_over_file() {
        let dir = std::env::temp_dir().join(format!("lobby-cfg-{}", std::process::id()));
        std::fs::write(&dir, "# comment\nLOBBY_A=file\nLOBBY_B = file\n").unwrap();
        let mut values = read_file(&dir).unwrap();
        values.insert("LOBBY_A".into(), "env".into());
        let s = Settings { values };
        assert_eq!(s.string_or("LOBBY_A", ""), "env");
        assert_eq!(s.string_or("LOBBY_B", ""), "file");
        std::fs::remove_file(dir).unwrap();
    }
}
