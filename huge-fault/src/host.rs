//! The machine the tool runs on: privileges, tracefs, the kernel release.

use std::path::Path;

use crate::error::{Error, Result};

/// Effective capabilities of this process, from /proc/self/status.
fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Root, or CAP_SYS_ADMIN, or CAP_BPF together with CAP_PERFMON.
pub fn check_privileges() -> Result<()> {
    const CAP_SYS_ADMIN: u64 = 1 << 21;
    const CAP_PERFMON: u64 = 1 << 38;
    const CAP_BPF: u64 = 1 << 39;
    let caps = effective_caps();
    if caps & CAP_SYS_ADMIN != 0 || caps & (CAP_BPF | CAP_PERFMON) == CAP_BPF | CAP_PERFMON {
        return Ok(());
    }
    Err(Error::NotRoot)
}

/// Mounts tracefs when nothing provides it (minimal systems and VMs often lack the mount).
pub fn ensure_tracefs() -> Result<&'static Path> {
    for p in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        let p = Path::new(p);
        if p.join("events").is_dir() {
            return Ok(p);
        }
    }
    let target = Path::new("/sys/kernel/tracing");
    let rc = unsafe {
        // SAFETY: constant NUL-terminated strings; mount(2) has no memory preconditions.
        libc::mount(
            c"nodev".as_ptr(),
            c"/sys/kernel/tracing".as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(Error::TracefsMount(std::io::Error::last_os_error()));
    }
    Ok(target)
}

pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
