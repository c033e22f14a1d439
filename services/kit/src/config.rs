//! Typed configuration from the environment (`LOBBY_…`) and an optional file.
//!
//! Each service declares one struct and fills it through [`Settings`], which
//! knows where a value came from so a bad value fails start-up with a message
//! naming the setting. The file (`LOBBY_CONFIG_FILE`) holds `LOBBY_X=value`
//! lines; the environment wins over it so an operator can override one field.

use std::{
    collections::HashMap,
    fmt::Display,
    panic::Location,
    path::Path,
    str::FromStr,
    sync::{Arc, Mutex},
};

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
    /// Set by [`Settings::recording`]: every read, so the configuration
    /// reference is generated from the code that reads the settings.
    reads: Option<Arc<Mutex<Vec<SettingRead>>>>,
}

/// One read of a setting: which, with what default, from where in the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingRead {
    pub name: String,
    /// `None` when the setting has no default (unset means off or required).
    pub default: Option<String>,
    pub at: &'static Location<'static>,
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
        let settings = Self {
            values,
            reads: None,
        };
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
            reads: None,
        }
    }

    /// Like [`Settings::from_pairs`], and keeps every read for
    /// [`Settings::reads`] (copies share the record).
    pub fn recording<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            reads: Some(Arc::default()),
            ..Self::from_pairs(pairs)
        }
    }

    /// Every read so far, in order, when recording.
    pub fn reads(&self) -> Vec<SettingRead> {
        self.reads
            .as_ref()
            .map(|r| r.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_default()
    }

    #[track_caller]
    fn note(&self, name: &str, default: Option<String>) {
        if let Some(reads) = &self.reads {
            reads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(SettingRead {
                    name: name.to_owned(),
                    default,
                    at: Location::caller(),
                });
        }
    }

    fn value(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
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

    /// A look at a setting another piece of code declares (a check across
    /// settings, say): not recorded as a read of its own.
    pub fn peek(&self, key: &str) -> Option<&str> {
        self.value(key).map(str::trim)
    }

    /// A setting with no default: unset means off, or required.
    #[track_caller]
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.note(key, None);
        self.values.get(key).map(String::as_str)
    }

    /// Parses `key`, or returns `default` when it is unset or empty.
    #[track_caller]
    pub fn get_or<T>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr + Display,
        T::Err: Display,
    {
        self.note(key, Some(default.to_string()));
        match self.value(key) {
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

    #[track_caller]
    pub fn string_or(&self, key: &str, default: &str) -> String {
        self.note(key, Some(default.to_owned()));
        self.value(key).unwrap_or(default).trim().to_owned()
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
    fn a_recording_keeps_each_read_with_its_default_and_place() {
        let s = Settings::recording([("LOBBY_A", "1")]);
        let copy = s.clone();
        assert_eq!(copy.get_or::<u16>("LOBBY_A", 7).unwrap(), 1);
        assert_eq!(s.string_or("LOBBY_B", "b"), "b");
        assert_eq!(s.raw("LOBBY_C"), None);
        let reads = s.reads();
        let seen: Vec<_> = reads
            .iter()
            .map(|r| (r.name.as_str(), r.default.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                ("LOBBY_A", Some("7")),
                ("LOBBY_B", Some("b")),
                ("LOBBY_C", None)
            ]
        );
        assert!(reads.iter().all(|r| r.at.file().ends_with("config.rs")));
        assert!(Settings::from_pairs([("LOBBY_A", "1")]).reads().is_empty());
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
        let s = Settings {
            values,
            reads: None,
        };
        assert_eq!(s.string_or("LOBBY_A", ""), "env");
        assert_eq!(s.string_or("LOBBY_B", ""), "file");
        std::fs::remove_file(dir).unwrap();
    }
}
