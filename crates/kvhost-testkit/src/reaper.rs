//! Kills every server this process started when the process exits normally, and removes
//! their directories, so shared servers (held in statics, which are never dropped) neither
//! outlive the tests nor leave `kvhost-redis-*` directories behind.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

/// Servers still running: their pid and working directory.
static SERVERS: Mutex<Vec<(u32, PathBuf)>> = Mutex::new(Vec::new());

extern "C" fn kill_all() {
    let servers = SERVERS
        .lock()
        .map(|servers| servers.clone())
        .unwrap_or_default();
    for (pid, dir) in servers {
        if let Ok(pid) = libc::pid_t::try_from(pid) {
            // SAFETY: kill(2) and waitpid(2) on a child this process spawned and has not
            // reaped (it is forgotten when reaped); the status pointer may be null.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Remembers a server process, and its directory, to kill and remove at exit.
pub(crate) fn track(pid: u32, dir: &Path) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // SAFETY: registers a plain `extern "C" fn` with no captured state.
        unsafe {
            libc::atexit(kill_all);
        }
    });
    if let Ok(mut servers) = SERVERS.lock() {
        servers.push((pid, dir.to_path_buf()));
    }
}

/// Forgets a server process that was stopped (its directory goes with its owner).
pub(crate) fn forget(pid: u32) {
    if let Ok(mut servers) = SERVERS.lock() {
        servers.retain(|(tracked, _)| *tracked != pid);
    }
}
