//! Apple unified memory: the GPU may wire a share of the machine's memory, so that share is
//! the device's size. The share is `iogpu.wired_limit_mb` when it is set, else macOS's own
//! default (Metal's `recommendedMaxWorkingSetSize`): about two thirds of the memory on
//! machines with up to 36 GiB, three quarters above.

use super::{DeviceMemory, MemoryProbe};

const GIB: u64 = 1 << 30;

/// Bytes of unified memory a Mac's GPU may use: `wired_limit_mb` when set (non-zero), else
/// two thirds of `total` up to 36 GiB and three quarters above.
pub fn gpu_share_of_unified_memory(total: u64, wired_limit_mb: Option<u64>) -> u64 {
    match wired_limit_mb.filter(|mb| *mb > 0) {
        Some(mb) => (mb << 20).min(total),
        None if total <= 36 * GIB => total / 3 * 2,
        None => total / 4 * 3,
    }
}

/// macOS's sysctls: `hw.memsize`, `iogpu.wired_limit_mb`, and free and purgeable pages.
pub struct AppleProbe;

impl AppleProbe {
    /// The probe on macOS; an error elsewhere.
    pub fn open() -> Result<Self, String> {
        if cfg!(target_os = "macos") {
            Ok(Self)
        } else {
            Err("Apple unified memory can only be read on macOS".into())
        }
    }
}

impl MemoryProbe for AppleProbe {
    fn source(&self) -> String {
        "apple".into()
    }

    fn read(&self) -> Result<Vec<DeviceMemory>, String> {
        let total = sysctl::read("hw.memsize").ok_or("hw.memsize is unreadable")?;
        let share = gpu_share_of_unified_memory(total, sysctl::read("iogpu.wired_limit_mb"));
        let page = sysctl::read("hw.pagesize").unwrap_or(16384);
        let free_pages = sysctl::read("vm.page_free_count").unwrap_or(0)
            + sysctl::read("vm.page_purgeable_count").unwrap_or(0);
        // What is in use already counts against the GPU's share as well.
        let in_use = total.saturating_sub(free_pages * page);
        Ok(vec![DeviceMemory {
            name: "Apple unified memory (GPU share)".into(),
            total: share,
            free: share.saturating_sub(in_use),
            used_by_us: None,
        }])
    }
}

#[cfg(target_os = "macos")]
mod sysctl {
    /// An integer sysctl by name (4 or 8 bytes wide).
    pub(super) fn read(name: &str) -> Option<u64> {
        let name = std::ffi::CString::new(name).ok()?;
        let mut value = [0u8; 8];
        let mut len: libc::size_t = value.len();
        #[allow(unsafe_code)]
        // SAFETY: `value` has `len` writable bytes, `name` is NUL-terminated, and sysctlbyname
        // writes at most `len` bytes and stores how many it wrote in `len`.
        let rc = unsafe {
            libc::sysctlbyname(
                name.as_ptr(),
                value.as_mut_ptr().cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        match (rc, len) {
            (0, 8) => Some(u64::from_ne_bytes(value)),
            (0, 4) => Some(u32::from_ne_bytes(value[..4].try_into().ok()?) as u64),
            _ => None,
        }
    }
}

#[cfg(not(target_os = "macos"))]
mod sysctl {
    pub(super) fn read(_name: &str) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gpu_share_follows_macos_defaults_and_the_wired_limit() {
        assert_eq!(
            gpu_share_of_unified_memory(16 * GIB, None),
            16 * GIB / 3 * 2
        );
        assert_eq!(gpu_share_of_unified_memory(36 * GIB, Some(0)), 24 * GIB);
        assert_eq!(gpu_share_of_unified_memory(64 * GIB, None), 48 * GIB);
        assert_eq!(
            gpu_share_of_unified_memory(128 * GIB, Some(120 * 1024)),
            120 * GIB
        );
        assert_eq!(
            gpu_share_of_unified_memory(8 * GIB, Some(64 * 1024)),
            8 * GIB
        );
    }

    #[cfg(not(target_os = "macos"))]
    #[test]
    fn elsewhere_the_probe_does_not_open() {
        assert!(AppleProbe::open().err().unwrap().contains("macOS"));
    }
}
