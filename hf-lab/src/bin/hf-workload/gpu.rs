//! Buffer objects of the lab driver: one placed and touched, and bad requests.

use std::process::ExitCode;

use crate::{
    Opts,
    drv::{
        DrvStats, HFGPU_F_WRITE_NOTIFY, HFGPU_SET_FLAGS, ioctl_policy, last_errno, open_device,
        set_policy,
    },
    free_range, rusage, touch,
};

/// Bad requests to /dev/hfgpu: prints the errno each one got (0 if it was accepted).
pub fn gpu_errors(path: &str) -> ExitCode {
    use std::os::fd::AsRawFd as _;
    let Some(file) = open_device(path) else {
        return ExitCode::FAILURE;
    };
    let fd = file.as_raw_fd();
    let try_map = |len: usize, off: i64, flags: i32| -> i32 {
        // SAFETY: a fresh mapping wherever the kernel puts it, unmapped at once.
        let m = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                off,
            )
        };
        if m == libc::MAP_FAILED {
            return last_errno();
        }
        // SAFETY: our own mapping.
        unsafe { libc::munmap(m, len) };
        0
    };
    let shared = libc::MAP_SHARED;
    // SAFETY: an ioctl number the driver does not know; the argument is not read.
    let unknown_ioctl = if unsafe { libc::ioctl(fd, 0x4004_48ff, 0usize) } == 0 {
        0
    } else {
        last_errno()
    };
    println!(
        "{{\"ok_map\":{},\"unaligned_offset\":{},\"length_past_bar\":{},\"offset_past_bar\":{},\"private\":{},\"unknown_policy\":{},\"unknown_ioctl\":{}}}",
        try_map(64 << 10, 0, shared),
        try_map(64 << 10, 4096, shared),
        try_map(8 << 30, 0, shared),
        try_map(4096, 8 << 30, shared),
        try_map(64 << 10, 0, libc::MAP_PRIVATE),
        ioctl_policy(fd, 99),
        unknown_ioctl,
    );
    ExitCode::SUCCESS
}

/// A buffer object of /dev/hfgpu: mapped where the driver places it (its
/// get_unmapped_area aligns it like its BAR address) or, with `--align`/`--offset`, at a
/// chosen address with MAP_FIXED_NOREPLACE; then touched, and touched in full again after
/// `--then-policy`.
pub fn gpu(o: &Opts) -> ExitCode {
    use std::os::fd::AsRawFd as _;
    let path = o.path.as_deref().unwrap_or("/dev/hfgpu");
    let Some(file) = open_device(path) else {
        return ExitCode::FAILURE;
    };
    let fd = file.as_raw_fd();
    if let Some(p) = &o.policy
        && let Err(e) = set_policy(fd, p)
    {
        eprintln!("hf-workload: {e}");
        return ExitCode::FAILURE;
    }
    let flags = if o.write_notify {
        HFGPU_F_WRITE_NOTIFY
    } else {
        0
    };
    // SAFETY: the ioctl reads one u32 from the pointer.
    if unsafe { libc::ioctl(fd, HFGPU_SET_FLAGS, &flags as *const u32) } != 0 {
        eprintln!(
            "hf-workload: HFGPU_SET_FLAGS: {}",
            std::io::Error::last_os_error()
        );
        return ExitCode::FAILURE;
    }
    let (hint, flags) = if o.align > 0 || o.offset > 0 {
        // Find a free range, give it back, and ask for the chosen address in it. The range
        // holds the whole ALIGN-sized block the mapping starts in, so no other mapping
        // shares its page tables: whether the kernel finds the PUD slot empty at the first
        // fault does not depend on where the process's other mappings happen to be.
        let r = match free_range(o.size + o.offset + 2 * o.align.max(4096)) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("hf-workload: {e}");
                return ExitCode::FAILURE;
            }
        };
        let at = r.next_multiple_of(o.align.max(4096)) + o.offset;
        (at, libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE)
    } else {
        (0, libc::MAP_SHARED)
    };
    // SAFETY: a new shared mapping of the device, at a free address.
    let m = unsafe {
        libc::mmap(
            hint as *mut _,
            o.size,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            fd,
            o.bo_offset as i64,
        )
    };
    if m == libc::MAP_FAILED {
        eprintln!(
            "hf-workload: mmap {path} at offset {:#x}: {}",
            o.bo_offset,
            std::io::Error::last_os_error()
        );
        return ExitCode::FAILURE;
    }
    let start = m as usize;
    if hint != 0 && start != hint {
        eprintln!("hf-workload: asked for {hint:#x}, got {start:#x}");
        return ExitCode::FAILURE;
    }
    let stride = o.stride.unwrap_or(4096);
    let drv_before = match DrvStats::read(fd) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hf-workload: {e}");
            return ExitCode::FAILURE;
        }
    };
    let before = rusage();
    let mut touched = touch(start, o.size, stride);
    let first = rusage();
    if let Some(p) = &o.then_policy {
        if let Err(e) = set_policy(fd, p) {
            eprintln!("hf-workload: {e}");
            return ExitCode::FAILURE;
        }
        touched += touch(start, o.size, 4096);
    }
    let after = rusage();
    let drv = match DrvStats::read(fd) {
        Ok(s) => s.keys_since(&drv_before),
        Err(e) => {
            eprintln!("hf-workload: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{{\"pid\":{},\"vma_start\":\"{:#x}\",\"vma_end\":\"{:#x}\",\"size\":{},\"bo_offset\":{},\"touches\":{},\"minflt\":{},\"majflt\":{},\"minflt_first\":{},{drv}}}",
        std::process::id(),
        start,
        start + o.size,
        o.size,
        o.bo_offset,
        touched,
        after.0 - before.0,
        after.1 - before.1,
        first.0 - before.0,
    );
    if o.hold_ms > 0 {
        std::thread::sleep(std::time::Duration::from_millis(o.hold_ms));
    }
    ExitCode::SUCCESS
}
