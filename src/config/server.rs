//! `[server]`: where porten listens and who it lets in. The section's type lives in the proxy
//! (`porten_proxy::config::ServerConfig`, with its defaults and validation); this module
//! applies `PORTEN_LISTEN`, `PORTEN_API_KEYS`, `PORTEN_MAX_BODY_BYTES` and their flags.

use porten_proxy::config::ServerConfig;

use super::env::{parsed, EnvLookup};
use super::Overrides;

/// Applies the section's environment variables.
pub fn apply_env(server: &mut ServerConfig, env: EnvLookup<'_>) -> anyhow::Result<()> {
    if let Some(listen) = parsed(env, "PORTEN_LISTEN", "an address like 127.0.0.1:8080")? {
        server.listen = listen;
    }
    if let Some(keys) = env("PORTEN_API_KEYS") {
        server.api_keys = keys
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect();
    }
    if let Some(max) = parsed(env, "PORTEN_MAX_BODY_BYTES", "a number of bytes")? {
        server.max_body_bytes = max;
    }
    Ok(())
}

/// Applies the section's command-line flags.
pub fn apply_overrides(server: &mut ServerConfig, o: &Overrides) {
    if let Some(listen) = o.listen {
        server.listen = listen;
    }
    if !o.api_keys.is_empty() {
        server.api_keys = o.api_keys.clone();
    }
    if let Some(max) = o.max_body_bytes {
        server.max_body_bytes = max;
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::env::env_of;
    use super::super::{parse_model_flag, tests::write_config, Config, Overrides};

    #[test]
    fn flags_beat_env_which_beats_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_config(
            dir.path(),
            "[server]\nlisten = \"127.0.0.1:1111\"\napi_keys = [\"file\"]\n\n[[models]]\nid = \"a\"\npath = \"/x\"\n",
        );
        let env = env_of(&[
            ("PORTEN_LISTEN", "127.0.0.1:2222"),
            ("PORTEN_API_KEYS", "e1, e2"),
        ]);
        let overrides = Overrides {
            config: Some(file.clone()),
            ..Default::default()
        };
        let (config, _) = Config::load(&overrides, &env).unwrap();
        assert_eq!(config.server.listen.port(), 2222);
        assert_eq!(config.server.api_keys, vec!["e1", "e2"]);

        let overrides = Overrides {
            config: Some(file),
            listen: Some("127.0.0.1:3333".parse().unwrap()),
            models: vec![parse_model_flag("a=/y").unwrap()],
            ..Default::default()
        };
        let (config, _) = Config::load(&overrides, &env).unwrap();
        assert_eq!(config.server.listen.port(), 3333);
        assert_eq!(
            config.models.len(),
            1,
            "the flag replaces the file's model `a`"
        );
        assert_eq!(config.models[0].path, PathBuf::from("/y"));
    }

    #[test]
    fn bad_env_values_say_which_variable() {
        let overrides = Overrides {
            models: vec![parse_model_flag("m=/x").unwrap()],
            ..Default::default()
        };
        let err = Config::load(&overrides, &env_of(&[("PORTEN_LISTEN", "nowhere")])).unwrap_err();
        assert!(err.to_string().contains("PORTEN_LISTEN"), "{err}");
        let err =
            Config::load(&overrides, &env_of(&[("PORTEN_MAX_BODY_BYTES", "big")])).unwrap_err();
        assert!(err.to_string().contains("PORTEN_MAX_BODY_BYTES"), "{err}");
    }
}
