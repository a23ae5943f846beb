//! The open-file limit of the test or benchmark process itself, which holds many sockets.

/// Lets this process hold `files` sockets: raises its soft limit (never lowers it), and fails
/// when the hard limit is below `files`.
pub fn raise_own_file_limit(files: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a valid, owned struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max.min(files.max(limit.rlim_cur));
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(limit.rlim_cur >= files, "the hard limit is below {files}");
}
