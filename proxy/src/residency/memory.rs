//! The process's own memory: how much it holds (to measure what a load really took), giving
//! freed memory back to the OS, and how much the machine has (the default budget).

/// Anonymous resident memory of this process in bytes (heap and the like, not the pages of
/// mapped files such as the binary's own code, which the OS can drop), where the OS tells
/// (Linux `/proc`).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    kib_field(&status, "RssAnon:")
}

static ACTIVITY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Something that keeps or gives back memory for longer than a request happened (a model
/// started or finished loading or unloading, a finished sequence stayed in a prefix cache, a
/// prefix cache was dropped): a load measured across it did not measure itself alone.
pub fn note_activity() {
    ACTIVITY.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// A count of [`note_activity`] calls: equal before and after a load, nothing else happened.
pub fn activity() -> u64 {
    ACTIVITY.load(std::sync::atomic::Ordering::Relaxed)
}

/// Memory the machine has (Linux `MemTotal`), in bytes.
pub fn total_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    kib_field(&info, "MemTotal:")
}

/// Memory the machine can give without swapping (Linux `MemAvailable`), in bytes.
pub fn available_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    kib_field(&info, "MemAvailable:")
}

fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Hands freed heap memory back to the OS. glibc keeps the pages of a dropped model in its
/// arenas (SmolLM2: 272 MB resident after unloading, 95 MB after trimming), which would make
/// the unload invisible to the OS and to the next load's measurement.
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks; it takes no pointers
    // and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kib_fields() {
        let text = "Name:\tx\nRssAnon:\t  2048 kB\nVmSwap: 0 kB\n";
        assert_eq!(kib_field(text, "RssAnon:"), Some(2 << 20));
        assert_eq!(kib_field(text, "VmHWM:"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_a_resident_size_and_the_machine_has_memory() {
        let rss = resident_bytes().unwrap();
        assert!(rss > 1 << 16, "{rss}");
        assert!(available_bytes().unwrap() > rss);
    }
}
