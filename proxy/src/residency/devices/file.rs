//! Devices described by a JSON file, read again at every look: for devices porten cannot
//! see itself, and for tests that script what devices hold while a real server runs.

use std::path::PathBuf;

use super::{DeviceMemory, MemoryProbe};

/// `PORTEN_MEMORY_PROBE=file:PATH`: PATH holds a JSON list of
/// `{"name", "total", "free", "used_by_us"}` (bytes; `used_by_us` may be left out).
pub struct FileProbe {
    path: PathBuf,
}

impl FileProbe {
    /// A probe reading `path`.
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

impl MemoryProbe for FileProbe {
    fn source(&self) -> String {
        format!("file:{}", self.path.display())
    }

    fn read(&self) -> Result<Vec<DeviceMemory>, String> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        let devices: Vec<DeviceMemory> = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a list of devices: {e}", self.path.display()))?;
        if let Some(d) = devices.iter().find(|d| d.free > d.total) {
            return Err(format!(
                "{}: `{}` has more free than total",
                self.path.display(),
                d.name
            ));
        }
        Ok(devices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_devices_and_says_what_is_wrong_with_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devices.json");
        let probe = FileProbe::new(path.clone());
        assert!(probe.read().unwrap_err().contains("cannot read"));
        std::fs::write(&path, r#"[{"name":"a","total":100,"free":40,"used_by_us":10},{"name":"b","total":8,"free":8}]"#).unwrap();
        let devices = probe.read().unwrap();
        assert_eq!((devices[0].in_use(), devices[0].used_by_us), (60, Some(10)));
        assert_eq!(devices[1].used_by_us, None);
        std::fs::write(&path, r#"[{"name":"a","total":1,"free":2}]"#).unwrap();
        assert!(probe.read().unwrap_err().contains("more free than total"));
        std::fs::write(&path, "{").unwrap();
        assert!(probe.read().unwrap_err().contains("not a list"));
    }
}
