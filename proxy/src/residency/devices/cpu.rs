//! System memory as one device: what porten did before probes, behind the same trait.

use super::{DeviceMemory, MemoryProbe};
use crate::residency::memory;

/// Linux's `MemTotal` and `MemAvailable`, and this process's anonymous resident memory.
pub struct CpuProbe;

impl MemoryProbe for CpuProbe {
    fn source(&self) -> String {
        "cpu".into()
    }

    fn read(&self) -> Result<Vec<DeviceMemory>, String> {
        let (Some(total), Some(free)) = (memory::total_bytes(), memory::available_bytes()) else {
            return Err("this system does not report its memory (/proc/meminfo)".into());
        };
        Ok(vec![DeviceMemory {
            name: "system memory".into(),
            total,
            free,
            used_by_us: memory::resident_bytes(),
        }])
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn system_memory_is_one_device_holding_this_process() {
        let devices = CpuProbe.read().unwrap();
        assert_eq!(devices.len(), 1);
        let d = &devices[0];
        assert!(d.free <= d.total && d.free > 0, "{d:?}");
        assert!(d.used_by_us.unwrap() > 0 && d.used_by_us.unwrap() < d.total);
    }
}
