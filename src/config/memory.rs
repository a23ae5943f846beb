//! `[memory]`: the budget for loaded models (`PORTEN_VRAM_BUDGET_MB`, `--vram-budget-mb`), how
//! device memory is read (`PORTEN_MEMORY_PROBE`) and
//! how long idle ones stay (`PORTEN_KEEP_ALIVE`, `--keep-alive`). The section's type lives in
//! the proxy (`porten_proxy::config::MemoryConfig`), which enforces it.

use porten_proxy::config::MemoryConfig;
use porten_proxy::residency::KeepAlive;

use super::env::{non_empty, parsed, EnvLookup};
use super::Overrides;

/// Applies the section's environment variables.
pub fn apply_env(memory: &mut MemoryConfig, env: EnvLookup<'_>) -> anyhow::Result<()> {
    if let Some(mb) = parsed(env, "PORTEN_VRAM_BUDGET_MB", "a whole number of MiB")? {
        memory.budget_mb = Some(mb);
    }
    if let Some(probe) = non_empty(env, "PORTEN_MEMORY_PROBE") {
        memory.probe = Some(probe);
    }
    if let Some(k) = non_empty(env, "PORTEN_KEEP_ALIVE") {
        memory.keep_alive =
            KeepAlive::parse(&k).map_err(|e| anyhow::anyhow!("PORTEN_KEEP_ALIVE: {e}"))?;
    }
    Ok(())
}

/// Applies the section's command-line flags.
pub fn apply_overrides(memory: &mut MemoryConfig, o: &Overrides) {
    if let Some(mb) = o.vram_budget_mb {
        memory.budget_mb = Some(mb);
    }
    if let Some(k) = o.keep_alive {
        memory.keep_alive = k;
    }
}

/// Explains what is wrong, if anything.
pub fn validate(memory: &MemoryConfig) -> anyhow::Result<()> {
    if memory.budget_mb == Some(0) {
        anyhow::bail!("the memory budget (PORTEN_VRAM_BUDGET_MB) must be at least 1 MiB");
    }
    if let Some(probe) = &memory.probe {
        probe
            .parse::<porten_proxy::residency::devices::ProbeChoice>()
            .map_err(|e| anyhow::anyhow!("PORTEN_MEMORY_PROBE: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use porten_proxy::residency::KeepAlive;

    use super::super::env::env_of;
    use super::super::{Config, Overrides};

    #[test]
    fn vram_budget_and_keep_alive_come_from_env_and_flags() {
        let env = env_of(&[
            ("PORTEN_VRAM_BUDGET_MB", "2048"),
            ("PORTEN_KEEP_ALIVE", "-1"),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let overrides = Overrides {
            home: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let (config, _) = Config::load(&overrides, &env).unwrap();
        assert_eq!(config.memory.budget_mb, Some(2048));
        assert_eq!(config.memory.keep_alive, KeepAlive::Forever);
        let overrides = Overrides {
            home: Some(dir.path().to_path_buf()),
            vram_budget_mb: Some(512),
            keep_alive: Some(KeepAlive::parse("30s").unwrap()),
            ..Default::default()
        };
        let (config, _) = Config::load(&overrides, &env).unwrap();
        assert_eq!(config.memory.budget_mb, Some(512));
        assert_eq!(config.memory.keep_alive, KeepAlive::parse("30s").unwrap());
        let probed = env_of(&[("PORTEN_MEMORY_PROBE", "file:/tmp/devices.json")]);
        let (config, _) = Config::load(&overrides, &probed).unwrap();
        assert_eq!(
            config.memory.probe.as_deref(),
            Some("file:/tmp/devices.json")
        );
        let overrides = Overrides {
            home: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        for (bad, named) in [
            (("PORTEN_KEEP_ALIVE", "soon"), "PORTEN_KEEP_ALIVE"),
            (("PORTEN_VRAM_BUDGET_MB", "0"), "PORTEN_VRAM_BUDGET_MB"),
            (("PORTEN_MEMORY_PROBE", "rocm"), "PORTEN_MEMORY_PROBE"),
        ] {
            let error = Config::load(&overrides, &env_of(&[bad])).unwrap_err();
            assert!(error.to_string().contains(named), "{error}");
        }
    }
}
