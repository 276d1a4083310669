//! Sending POSIX signals to the processes the tests started.

/// Sends `signal` (e.g. `libc::SIGTERM`) to our child process `pid`.
///
/// Panics when kill(2) fails: a test that believes it signalled a process must not go on when
/// it did not.
pub fn send(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is one of our own children.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {signal}): {}",
        std::io::Error::last_os_error()
    );
}
