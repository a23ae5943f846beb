//! `[telemetry]`: whether metrics are recorded and served at `/metrics` (`PORTEN_METRICS`,
//! `--no-metrics`). Traces and OTLP export follow the standard `OTEL_*` variables, see
//! `crate::telemetry`.

use serde::{Deserialize, Serialize};

use super::env::{non_empty, EnvLookup};
use super::Overrides;

/// The `[telemetry]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Record metrics and serve them as Prometheus text at `GET /metrics` (`PORTEN_METRICS`,
    /// `--no-metrics`; default on). Off, no metric is recorded at all unless an OTLP metrics
    /// endpoint is set.
    pub prometheus: bool,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self { prometheus: true }
    }
}

impl TelemetrySettings {
    /// Applies the section's environment variables.
    pub fn apply_env(&mut self, env: EnvLookup<'_>) -> anyhow::Result<()> {
        if let Some(metrics) = non_empty(env, "PORTEN_METRICS") {
            self.prometheus = match metrics.to_ascii_lowercase().as_str() {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                _ => anyhow::bail!("PORTEN_METRICS=`{metrics}` must be on or off"),
            };
        }
        Ok(())
    }

    /// Applies the section's command-line flags.
    pub fn apply_overrides(&mut self, o: &Overrides) {
        if o.no_metrics {
            self.prometheus = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::env::env_of;
    use super::super::{tests::write_config, Config, Overrides};

    #[test]
    fn metrics_are_on_unless_the_file_env_or_flag_turns_them_off() {
        let dir = tempfile::tempdir().unwrap();
        let home = || Overrides {
            home: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let (config, _) = Config::load(&home(), &env_of(&[])).unwrap();
        assert!(config.telemetry.prometheus);
        write_config(dir.path(), "[telemetry]\nprometheus = false\n");
        let (config, _) = Config::load(&home(), &env_of(&[])).unwrap();
        assert!(!config.telemetry.prometheus);
        let (config, _) = Config::load(&home(), &env_of(&[("PORTEN_METRICS", "on")])).unwrap();
        assert!(config.telemetry.prometheus, "env wins over the file");
        let flag = Overrides {
            no_metrics: true,
            ..home()
        };
        let (config, _) = Config::load(&flag, &env_of(&[("PORTEN_METRICS", "on")])).unwrap();
        assert!(!config.telemetry.prometheus, "the flag wins over env");
        let error = Config::load(&home(), &env_of(&[("PORTEN_METRICS", "maybe")])).unwrap_err();
        assert!(error.to_string().contains("PORTEN_METRICS"), "{error}");
    }
}
