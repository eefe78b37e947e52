//! A GPU runtime's start-up on the lab driver: five buffer objects, a runtime's order.

use std::process::ExitCode;

use crate::{
    drv::{DrvStats, open_device, set_policy},
    free_range, rusage, touch,
};

/// A buffer object of the GPU runtime workload: name, offset in the BAR, size, and offset
/// of its mapping from a 1 GiB-aligned base (equal to the BAR offset where the mapping is
/// congruent with its BAR address).
const RUNTIME_BOS: [(&str, usize, usize, usize); 5] = [
    // A command ring: 16 pages.
    ("ring", 0, 64 << 10, 0),
    // A 1 GiB heap at a 1 GiB boundary: one PUD where the driver gives one.
    ("heap", 1 << 30, 1 << 30, 1 << 30),
    // A texture: three aligned 2 MiB blocks.
    (
        "texture",
        (2 << 30) + (2 << 20),
        6 << 20,
        (2 << 30) + (2 << 20),
    ),
    // A staging buffer starting mid-way into a 2 MiB block: PTEs, a PMD, PTEs.
    (
        "staging",
        (2 << 30) + (17 << 20),
        (3 << 20) + (64 << 10),
        (2 << 30) + (17 << 20),
    ),
    // A vertex buffer mapped 64 KiB off its BAR alignment: nothing huge fits.
    (
        "vertex",
        (2 << 30) + (32 << 20),
        2 << 20,
        (2 << 30) + (32 << 20) + (64 << 10),
    ),
];

/// A GPU runtime's start-up on /dev/hfgpu: five buffer objects of mixed sizes and
/// alignments in one 4 GiB range the process owns, all under one policy, touched in a
/// runtime's order: the command ring, then an upload copying the staging buffer into the
/// texture in interleaved 64 KiB pieces, then the heap, then the vertex buffer. Prints each
/// buffer object's VMA and the minflt delta of each phase.
pub fn gpu_runtime(policy: &str) -> ExitCode {
    use std::os::fd::AsRawFd as _;
    let Some(file) = open_device("/dev/hfgpu") else {
        return ExitCode::FAILURE;
    };
    let fd = file.as_raw_fd();
    if let Err(e) = set_policy(fd, policy) {
        eprintln!("hf-workload: {e}");
        return ExitCode::FAILURE;
    }
    const GIB: usize = 1 << 30;
    // A free 5 GiB: its 1 GiB-aligned 4 GiB are free.
    let r = match free_range(5 * GIB) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hf-workload: {e}");
            return ExitCode::FAILURE;
        }
    };
    let base = r.next_multiple_of(GIB);
    let mut bos = Vec::new();
    for (name, bar, size, at) in RUNTIME_BOS {
        // SAFETY: a new shared mapping of the device, at a free address of ours.
        let m = unsafe {
            libc::mmap(
                (base + at) as *mut _,
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE,
                fd,
                bar as i64,
            )
        };
        if m == libc::MAP_FAILED || m as usize != base + at {
            eprintln!(
                "hf-workload: mmap {name} at {:#x}: {}",
                base + at,
                std::io::Error::last_os_error()
            );
            return ExitCode::FAILURE;
        }
        bos.push((name, m as usize, size, bar));
    }
    let addr = |name: &str| {
        let b = bos
            .iter()
            .find(|b| b.0 == name)
            .expect("known buffer object");
        (b.1, b.2)
    };
    let drv_before = match DrvStats::read(fd) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hf-workload: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Numbers only between the touch loops: an allocation there could fault too.
    let mut phases: Vec<(&str, i64, i64)> = Vec::with_capacity(8);
    let mut touched = 0;
    let mut phase = |name: &'static str, f: &mut dyn FnMut() -> u64| {
        let before = rusage();
        touched += f();
        let after = rusage();
        phases.push((name, after.0 - before.0, after.1 - before.1));
    };
    phase("ring", &mut || {
        let (a, n) = addr("ring");
        touch(a, n, 4096)
    });
    phase("upload", &mut || {
        let (src, sn) = addr("staging");
        let (dst, dn) = addr("texture");
        let piece = 64 << 10;
        let mut t = 0;
        let mut off = 0;
        while off < sn.max(dn) {
            if off < sn {
                t += touch(src + off, piece.min(sn - off), 4096);
            }
            if off < dn {
                t += touch(dst + off, piece.min(dn - off), 4096);
            }
            off += piece;
        }
        t
    });
    phase("heap", &mut || {
        let (a, n) = addr("heap");
        touch(a, n, 4096)
    });
    phase("vertex", &mut || {
        let (a, n) = addr("vertex");
        touch(a, n, 4096)
    });
    let drv = match DrvStats::read(fd) {
        Ok(s) => s.keys_since(&drv_before),
        Err(e) => {
            eprintln!("hf-workload: {e}");
            return ExitCode::FAILURE;
        }
    };
    let minflt: i64 = phases.iter().map(|p| p.1).sum();
    let majflt: i64 = phases.iter().map(|p| p.2).sum();
    let phases: Vec<String> = phases
        .iter()
        .map(|(name, n, _)| format!("\"minflt_{name}\":{n}"))
        .collect();
    let bos_json: Vec<String> = bos
        .iter()
        .map(|(name, start, size, bar)| {
            format!(
                "{{\"name\":\"{name}\",\"vma_start\":\"{start:#x}\",\"vma_end\":\"{:#x}\",\"bo_offset\":{bar}}}",
                start + size
            )
        })
        .collect();
    println!(
        "{{\"pid\":{},\"bos\":[{}],\"touches\":{touched},\"minflt\":{},\"majflt\":{},{},{drv}}}",
        std::process::id(),
        bos_json.join(","),
        minflt,
        majflt,
        phases.join(",")
    );
    ExitCode::SUCCESS
}
