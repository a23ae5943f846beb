//! The open-file limit. Every connection is a file descriptor, and distributions start services
//! with a soft limit of 1,024 however high the hard one is; like Go's runtime, nginx and most
//! servers, porten raises its soft limit to the hard one at start-up, and sizes its connection
//! cap from what it got.

// The crate's other unsafe code: two libc calls with a plain struct, checked for errors.
// `rlim_t` is `u64` on Linux and macOS, the platforms porten builds for.
#![allow(unsafe_code)]

use std::io;

/// Where the soft limit goes when the hard one is unlimited: Linux's default `fs.nr_open`.
const UNLIMITED_CEILING: u64 = 1 << 20;

/// The open-file limit before and after [`raise_to_hard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimit {
    /// The soft limit porten started with.
    pub was: u64,
    /// The soft limit in force now.
    pub soft: u64,
    /// The hard limit (the most an unprivileged process may raise to).
    pub hard: u64,
}

fn get() -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the call's duration.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit)
}

/// The soft open-file limit in force.
pub fn current() -> io::Result<u64> {
    Ok(get()?.rlim_cur)
}

/// The soft limit `want` for a hard limit of `hard`: the hard limit itself unless unlimited.
fn target(soft: u64, hard: u64) -> u64 {
    if hard == libc::RLIM_INFINITY {
        soft.max(UNLIMITED_CEILING)
    } else {
        soft.max(hard)
    }
}

/// Raises the soft open-file limit to the hard limit.
pub fn raise_to_hard() -> io::Result<FileLimit> {
    let mut limit = get()?;
    let was = limit.rlim_cur;
    let hard = limit.rlim_max;
    let want = target(was, hard);
    if want > was {
        limit.rlim_cur = want;
        // SAFETY: `limit` is a valid rlimit read just above, with only the soft limit changed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(FileLimit {
        was,
        soft: current()?,
        hard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_goes_to_the_hard_one_and_never_down() {
        assert_eq!(target(1024, 524_288), 524_288);
        assert_eq!(target(4096, 4096), 4096);
        assert_eq!(target(1024, libc::RLIM_INFINITY), UNLIMITED_CEILING);
    }

    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        let limit = raise_to_hard().unwrap();
        assert!(limit.soft >= limit.was);
        if limit.hard != libc::RLIM_INFINITY {
            assert_eq!(limit.soft, limit.hard);
        }
        assert_eq!(current().unwrap(), limit.soft);
    }
}
