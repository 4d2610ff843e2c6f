//! Kills every server this process started when the process exits normally, so shared
//! servers (held in statics, which are never dropped) do not outlive the tests.

use std::sync::{Mutex, Once};

static PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

extern "C" fn kill_all() {
    let pids = PIDS.lock().map(|pids| pids.clone()).unwrap_or_default();
    for pid in pids {
        if let Ok(pid) = libc::pid_t::try_from(pid) {
            // SAFETY: kill(2) with a pid this process spawned; no memory is touched.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Remembers a server process to kill at exit.
pub(crate) fn track(pid: u32) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // SAFETY: registers a plain `extern "C" fn` with no captured state.
        unsafe {
            libc::atexit(kill_all);
        }
    });
    if let Ok(mut pids) = PIDS.lock() {
        pids.push(pid);
    }
}

/// Forgets a server process that was stopped.
pub(crate) fn forget(pid: u32) {
    if let Ok(mut pids) = PIDS.lock() {
        pids.retain(|tracked| *tracked != pid);
    }
}
