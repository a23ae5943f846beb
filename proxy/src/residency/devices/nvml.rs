//! NVIDIA GPUs through NVML (`libnvidia-ml.so.1`, which the driver installs), opened at run
//! time by the `nvml-wrapper` crate: a build without CUDA and a machine without the driver
//! both run, and say what they see.

use std::ffi::OsStr;

use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::Nvml;

use super::{DeviceMemory, MemoryProbe};

/// Every GPU CUDA will use, in CUDA's numbering: NVML's devices filtered and ordered by
/// `CUDA_VISIBLE_DEVICES` when it is set (indices or `GPU-` UUIDs). NVML counts in PCI bus
/// order; with several GPUs, run with `CUDA_DEVICE_ORDER=PCI_BUS_ID` so CUDA does too.
pub struct NvmlProbe {
    nvml: Nvml,
}

impl NvmlProbe {
    /// Opens NVML; the error names the library and why it did not open.
    pub fn open() -> Result<Self, String> {
        // The driver ships the versioned name; the unversioned one comes with development
        // packages, and containers often have only the first.
        let nvml = Nvml::builder()
            .lib_path(OsStr::new("libnvidia-ml.so.1"))
            .init()
            .or_else(|_| Nvml::init())
            .map_err(|e| format!("libnvidia-ml.so.1 (NVML) could not be opened: {e}"))?;
        Ok(Self { nvml })
    }

    fn visible(&self) -> Result<Vec<u32>, String> {
        let count = self.nvml.device_count().map_err(|e| e.to_string())?;
        let Ok(visible) = std::env::var("CUDA_VISIBLE_DEVICES") else {
            return Ok((0..count).collect());
        };
        let mut indices = Vec::new();
        for entry in visible.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let index = match entry.parse::<u32>() {
                Ok(i) => Some(i).filter(|i| *i < count),
                Err(_) => (0..count).find(|&i| {
                    self.nvml
                        .device_by_index(i)
                        .and_then(|d| d.uuid())
                        .is_ok_and(|uuid| uuid.starts_with(entry))
                }),
            };
            // CUDA stops at the first entry it cannot use; so does this.
            match index {
                Some(i) => indices.push(i),
                None => break,
            }
        }
        Ok(indices)
    }
}

impl MemoryProbe for NvmlProbe {
    fn source(&self) -> String {
        "nvml".into()
    }

    fn read(&self) -> Result<Vec<DeviceMemory>, String> {
        let pid = std::process::id();
        self.visible()?
            .into_iter()
            .map(|index| {
                let device = self
                    .nvml
                    .device_by_index(index)
                    .map_err(|e| format!("GPU {index}: {e}"))?;
                let memory = device
                    .memory_info()
                    .map_err(|e| format!("GPU {index}: {e}"))?;
                // Per-process accounting is missing before this process has a CUDA context
                // there, in containers (another PID namespace) and under WDDM: `None` then,
                // never a guess of 0, which would count porten's own memory as others'.
                let used_by_us = device.running_compute_processes().ok().and_then(|ps| {
                    ps.iter()
                        .find(|p| p.pid == pid)
                        .and_then(|p| match p.used_gpu_memory {
                            // Some drivers report u64::MAX for every process.
                            UsedGpuMemory::Used(bytes) if bytes <= memory.total => Some(bytes),
                            _ => None,
                        })
                });
                Ok(DeviceMemory {
                    name: device
                        .name()
                        .unwrap_or_else(|_| format!("NVIDIA GPU {index}")),
                    total: memory.total,
                    free: memory.free,
                    used_by_us,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine has no NVIDIA driver: opening says which library is missing, and the
    /// server goes on with the CPU.
    #[test]
    fn without_the_driver_opening_names_the_library() {
        if std::path::Path::new("/proc/driver/nvidia").exists() {
            assert!(NvmlProbe::open().is_ok());
            return;
        }
        let error = NvmlProbe::open().err().expect("no NVIDIA driver here");
        assert!(error.contains("libnvidia-ml.so.1"), "{error}");
        assert!(super::super::gpus_seen().is_empty());
    }
}
