//! The guest's own set-up: mounts, kernel modules, sysfs, power-off.

use std::{io::Write as _, time::Duration};

/// mount(2), creating the mount point; the error names what was mounted where.
pub fn mount(src: &str, target: &str, fstype: &str, data: Option<&str>) -> Result<(), String> {
    let _ = std::fs::create_dir_all(target);
    let c = |s: &str| std::ffi::CString::new(s).expect("no NUL");
    let (src_c, target_c, fstype_c) = (c(src), c(target), c(fstype));
    let data_c = data.map(c);
    // SAFETY: valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            src_c.as_ptr(),
            target_c.as_ptr(),
            fstype_c.as_ptr(),
            0,
            data_c
                .as_ref()
                .map_or(std::ptr::null(), |d| d.as_ptr().cast()),
        )
    };
    if rc != 0 {
        return Err(format!(
            "mount {fstype} {src} on {target}{}: {}",
            data.map_or(String::new(), |d| format!(" -o {d}")),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Mounts what the init needs to go on; a failure is printed, not fatal.
pub fn mount_or_say(src: &str, target: &str, fstype: &str, data: Option<&str>) {
    if let Err(e) = mount(src, target, fstype, data) {
        println!("init: {e}");
    }
}

pub fn power_off() -> ! {
    let _ = std::io::stdout().flush();
    // SAFETY: sync and reboot have no memory preconditions; we are PID 1.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Loads the kernel modules packed into /modules, in name order (the host put them in
/// dependency order). Compressed modules are left to the kernel to decompress.
pub fn load_modules() {
    let Ok(dir) = std::fs::read_dir("/modules") else {
        return;
    };
    let mut files: Vec<_> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    for f in files {
        let Ok(file) = std::fs::File::open(&f) else {
            continue;
        };
        use std::os::fd::AsRawFd as _;
        let flags = if f.extension().is_some_and(|e| e == "xz") {
            4
        } else {
            0
        };
        // SAFETY: a valid fd and an empty, NUL-terminated parameter string.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_finit_module,
                file.as_raw_fd(),
                c"".as_ptr(),
                flags,
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                println!("init: loading {}: {e}", f.display());
            }
        }
    }
}

pub fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

pub fn write_sysfs(path: &str, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("{path} <- {value}: {e}"))
}
