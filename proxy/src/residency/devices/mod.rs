//! What memory each device has: a probe reads every device's total and free memory and what
//! this process holds there, from NVIDIA's management library (NVML), macOS, or Linux's
//! `/proc` for system memory. The budget defaults from it at start-up, every load is
//! measured with it, and a watch re-reads it to shrink the budget while other processes hold
//! memory porten counted on.
//!
//! The backend is chosen at run time, not only by cargo feature: even a CPU build opens NVML
//! when the library is there, to report the GPUs it sees.

mod apple;
mod cpu;
mod file;
mod nvml;
mod watch;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use apple::{gpu_share_of_unified_memory, AppleProbe};
pub use cpu::CpuProbe;
pub use file::FileProbe;
pub use nvml::NvmlProbe;
pub use watch::{available_to_porten, watch_devices, WATCH_INTERVAL};

use super::Device;

/// One device's memory, as a probe read it just now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMemory {
    /// What it is: `NVIDIA H200`, `system memory`, `Apple unified memory (GPU share)`.
    pub name: String,
    /// Bytes it has (a Mac: the share of unified memory its GPU may wire).
    pub total: u64,
    /// Bytes free now, whoever uses the rest.
    pub free: u64,
    /// Bytes this process holds there, where the device accounts per process (NVML's
    /// per-process list, resident memory on the CPU); `None` where it does not.
    #[serde(default)]
    pub used_by_us: Option<u64>,
}

impl DeviceMemory {
    /// Bytes in use on the device, by anyone.
    pub fn in_use(&self) -> u64 {
        self.total.saturating_sub(self.free)
    }
}

/// What a load took on one device, from readings just before and after it: this process's
/// own account where both readings have one, else the change in the device's use (loads run
/// one at a time, so that change is the load's own, less whatever others did meanwhile).
pub fn load_delta(before: &DeviceMemory, after: &DeviceMemory) -> u64 {
    match (before.used_by_us, after.used_by_us) {
        (Some(b), Some(a)) => a.saturating_sub(b),
        _ => after.in_use().saturating_sub(before.in_use()),
    }
}

/// Reads the memory of the devices models run on. Index `i` of [`Self::read`] is device `i`
/// of the scheduler's books (the CUDA ordinal on NVIDIA GPUs).
pub trait MemoryProbe: Send + Sync + 'static {
    /// Which backend and where from: `nvml`, `apple`, `cpu`, `file:/path`.
    fn source(&self) -> String;
    /// Every device's memory now; an error says why it cannot be read.
    fn read(&self) -> Result<Vec<DeviceMemory>, String>;
}

/// Which probe to use: `PORTEN_MEMORY_PROBE` (`[memory] probe`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ProbeChoice {
    /// The backend that matches the build: NVML for `cuda`, macOS for `metal`, system memory
    /// on the CPU.
    #[default]
    Auto,
    /// System memory (`/proc/meminfo`, this process's anonymous resident memory).
    Cpu,
    /// NVIDIA GPUs through NVML.
    Nvml,
    /// A JSON file holding a list of [`DeviceMemory`], read again at every look: devices
    /// porten cannot see itself, and tests that script what devices hold.
    File(std::path::PathBuf),
}

impl std::str::FromStr for ProbeChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "nvml" => Ok(Self::Nvml),
            _ => match s.strip_prefix("file:") {
                Some(path) if !path.is_empty() => Ok(Self::File(path.into())),
                _ => Err(format!(
                    "`{s}` is not a memory probe: use auto, cpu, nvml or file:PATH"
                )),
            },
        }
    }
}

/// The probe for models on `device`, chosen by `choice`, with its first reading of the
/// devices (never empty); `None` when none can be opened or read (the log says why, and the
/// budget is then only what is configured).
pub fn open_probe(
    choice: &ProbeChoice,
    device: Device,
) -> Option<(Arc<dyn MemoryProbe>, Vec<DeviceMemory>)> {
    let opened: Result<Arc<dyn MemoryProbe>, String> = match (choice, device) {
        (ProbeChoice::File(path), _) => Ok(Arc::new(FileProbe::new(path.clone()))),
        (ProbeChoice::Cpu, _) | (ProbeChoice::Auto, Device::Cpu) => Ok(Arc::new(CpuProbe)),
        (ProbeChoice::Nvml, _) | (ProbeChoice::Auto, Device::Cuda) => {
            NvmlProbe::open().map(|p| Arc::new(p) as Arc<dyn MemoryProbe>)
        }
        (ProbeChoice::Auto, Device::Metal) => {
            AppleProbe::open().map(|p| Arc::new(p) as Arc<dyn MemoryProbe>)
        }
    };
    match opened {
        Ok(probe) => match probe.read() {
            Ok(devices) if !devices.is_empty() => Some((probe, devices)),
            Ok(_) => {
                tracing::warn!(probe = %probe.source(), "the memory probe sees no device");
                None
            }
            Err(e) => {
                tracing::warn!(probe = %probe.source(), error = %e, "the memory probe cannot read its devices");
                None
            }
        },
        Err(e) => {
            tracing::warn!(device = device.as_str(), error = %e, "no memory probe for the device models run on");
            None
        }
    }
}

/// The NVIDIA GPUs a build that runs models elsewhere can see, for the log and
/// `/admin/status`: empty when NVML is absent (the log line says so).
pub fn gpus_seen() -> Vec<DeviceMemory> {
    match NvmlProbe::open().and_then(|p| p.read()) {
        Ok(gpus) => {
            for gpu in &gpus {
                tracing::info!(
                    gpu = %gpu.name,
                    total_mib = gpu.total >> 20,
                    free_mib = gpu.free >> 20,
                    "NVIDIA GPU seen; this build runs models on the CPU (build with --features cuda to use it)"
                );
            }
            gpus
        }
        Err(e) => {
            tracing::info!(reason = %e, "no NVIDIA GPU seen (NVML is not available); models run on the CPU");
            Vec::new()
        }
    }
}

/// The share of a device's free memory at start-up that the default budget takes: what other
/// processes hold then is not porten's, and 10% stays for them to grow and for the runtime's
/// allocations outside the estimate.
pub const DEFAULT_SHARE_PERCENT: u64 = 90;

/// One device's budget and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceBudget {
    /// Its index in the books.
    pub index: usize,
    /// What it is.
    pub name: String,
    /// Bytes it has, when a probe read it.
    pub total_bytes: Option<u64>,
    /// Free at start-up, when a probe read it.
    pub free_at_start_bytes: Option<u64>,
    /// The budget; `None` is no limit.
    pub budget_bytes: Option<u64>,
    /// Why this budget: configured, or the share of free memory at start-up.
    pub source: String,
}

impl DeviceBudget {
    /// One device with a budget of `bytes`, set by the caller.
    pub fn configured(bytes: u64) -> Self {
        Self {
            index: 0,
            name: "device".into(),
            total_bytes: None,
            free_at_start_bytes: None,
            budget_bytes: Some(bytes),
            source: "configured".into(),
        }
    }
}

/// Each device's budget: `configured_mb` on every device when set (the per-device budget),
/// else [`DEFAULT_SHARE_PERCENT`] of what each device has free now; with no device read, one
/// device without a limit.
pub fn budgets(
    configured_mb: Option<u64>,
    devices: &[DeviceMemory],
    probe: &str,
) -> Vec<DeviceBudget> {
    if devices.is_empty() {
        return vec![DeviceBudget {
            index: 0,
            name: "unknown device".into(),
            total_bytes: None,
            free_at_start_bytes: None,
            budget_bytes: configured_mb.map(|mb| mb << 20),
            source: match configured_mb {
                Some(_) => "configured (PORTEN_VRAM_BUDGET_MB)".into(),
                None => "no limit: no probe could read the device; set PORTEN_VRAM_BUDGET_MB \
                         to the memory porten may use"
                    .into(),
            },
        }];
    }
    devices
        .iter()
        .enumerate()
        .map(|(index, d)| {
            let (budget, source) = match configured_mb {
                Some(mb) => (
                    mb << 20,
                    "configured (PORTEN_VRAM_BUDGET_MB, for each device)".to_string(),
                ),
                None => (
                    d.free / 100 * DEFAULT_SHARE_PERCENT,
                    format!(
                        "{DEFAULT_SHARE_PERCENT}% of the {} MiB free at start-up ({probe}; \
                         {} MiB of {} MiB were in use); set PORTEN_VRAM_BUDGET_MB to choose",
                        d.free >> 20,
                        d.total.saturating_sub(d.free) >> 20,
                        d.total >> 20
                    ),
                ),
            };
            DeviceBudget {
                index,
                name: d.name.clone(),
                total_bytes: Some(d.total),
                free_at_start_bytes: Some(d.free),
                budget_bytes: Some(budget),
                source,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(total_gib: u64, free_gib: u64) -> DeviceMemory {
        DeviceMemory {
            name: "GPU".into(),
            total: total_gib << 30,
            free: free_gib << 30,
            used_by_us: None,
        }
    }

    #[test]
    fn the_default_budget_is_a_share_of_each_devices_free_memory() {
        let budgets = budgets(None, &[gpu(24, 20), gpu(80, 80)], "nvml");
        assert_eq!(budgets[0].budget_bytes, Some((20u64 << 30) / 100 * 90));
        assert_eq!(budgets[1].budget_bytes, Some((80u64 << 30) / 100 * 90));
        assert!(
            budgets[0]
                .source
                .contains("4096 MiB of 24576 MiB were in use"),
            "{}",
            budgets[0].source
        );
    }

    #[test]
    fn a_configured_budget_wins_on_every_device() {
        let budgets = budgets(Some(1000), &[gpu(24, 20), gpu(80, 80)], "nvml");
        assert!(budgets.iter().all(|b| b.budget_bytes == Some(1000 << 20)));
        assert!(budgets[1].source.starts_with("configured"));
    }

    #[test]
    fn without_a_probe_there_is_one_device_and_only_the_configured_limit() {
        let none = budgets(None, &[], "nvml");
        assert_eq!(none.len(), 1);
        assert_eq!(none[0].budget_bytes, None);
        assert!(none[0].source.contains("no limit"), "{}", none[0].source);
        assert_eq!(budgets(Some(8), &[], "nvml")[0].budget_bytes, Some(8 << 20));
    }

    #[test]
    fn probe_choices_read_like_the_setting() {
        assert_eq!("auto".parse::<ProbeChoice>(), Ok(ProbeChoice::Auto));
        assert_eq!(
            "file:/tmp/x.json".parse::<ProbeChoice>(),
            Ok(ProbeChoice::File("/tmp/x.json".into()))
        );
        assert!("file:".parse::<ProbeChoice>().is_err());
        assert!("rocm"
            .parse::<ProbeChoice>()
            .unwrap_err()
            .contains("auto, cpu"));
    }

    #[test]
    fn a_load_is_measured_by_our_own_account_when_both_readings_have_it() {
        let before = gpu(24, 20);
        let mut after = gpu(24, 14);
        assert_eq!(
            load_delta(&before, &after),
            6 << 30,
            "device use grew 6 GiB"
        );
        after.used_by_us = Some(5 << 30);
        assert_eq!(
            load_delta(&before, &after),
            6 << 30,
            "one reading lacks our account"
        );
        let before = DeviceMemory {
            used_by_us: Some(1 << 30),
            ..before
        };
        assert_eq!(load_delta(&before, &after), 4 << 30);
    }
}
