//! A fault workload with its own ground truth: maps a region, writes every page (or every
//! `--stride` bytes) once, and prints one JSON line with the VMA range it used, its
//! getrusage minflt/majflt delta around the touch loop and, for hugetlb, how many huge
//! pages the touch loop took from the pool.
//!
//! ```text
//! hf-workload anon --size 8M --align 2M --thp always
//! hf-workload anon --size 2M --align 2M --offset 64K --thp always   (no aligned 2 MiB inside)
//! hf-workload hugetlb --page-size 1G --size 1G
//! ```

mod drm;
mod drv;
mod gpu;
mod runtime;
mod storm;
mod vfio;

use std::process::ExitCode;

use crate::{
    drm::drm,
    gpu::{gpu, gpu_errors},
    runtime::gpu_runtime,
    storm::storm,
    vfio::vfio,
};

/// `16M`-style sizes (the lab's parser), as a usize.
fn parse_size(s: &str) -> Option<usize> {
    usize::try_from(hf_lab::parse::parse_size(s)?).ok()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Anon,
    Hugetlb,
    /// A shared mapping of a file created at `--path` (tmpfs, DAX file).
    File,
    /// A shared mapping of an existing device or file at `--path` (devdax), not resized.
    Dev,
    /// A buffer object of the lab's GPU-like device (/dev/hfgpu) at `--bo-offset`, placed
    /// by the driver, or at `--align`/`--offset` with MAP_FIXED_NOREPLACE.
    Gpu,
    /// BAR 2 of the device bound to vfio-pci (`--path` names its PCI address), through a
    /// type1 container, at `--bo-offset`, placed with `--align`/`--offset`.
    Vfio,
    /// A dumb buffer of a DRM driver (`--driver`), placed with `--align`/`--offset`.
    Drm,
}

struct Opts {
    kind: Kind,
    size: usize,
    stride: Option<usize>,
    thp: Option<bool>,
    align: usize,
    offset: usize,
    page_size: usize,
    hold_ms: u64,
    path: Option<String>,
    /// A sysfs file with one kernel counter, read right around the touch loop.
    counter: Option<String>,
    /// Write the file with write(2) in 4 KiB pieces (and fsync) before mapping it, so its
    /// blocks are allocated by the file system's write path, not by the faults.
    prewrite: bool,
    /// gpu: mmap offset of the buffer object in the BAR.
    bo_offset: usize,
    /// gpu: fault policy for the mapping.
    policy: Option<String>,
    /// gpu: after the touch loop, switch to this policy and touch every page again.
    then_policy: Option<String>,
    /// gpu: a write-notify mapping (HFGPU_F_WRITE_NOTIFY): pages mapped read-only first.
    write_notify: bool,
    /// prctl(PR_SET_THP_DISABLE) before mapping: THP off for the whole process.
    thp_disable: bool,
    /// Touch only this many bytes from the start of the region.
    touch: Option<usize>,
    /// Run in a memory cgroup of its own whose `memory.max` leaves this many bytes above
    /// what the process uses when it starts.
    memcg_headroom: Option<usize>,
    /// drm: the driver whose card makes the dumb buffer.
    driver: Option<String>,
    /// drm: touch the pages last to first.
    reverse: bool,
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: hf-workload anon|hugetlb|file|dev|gpu|vfio|drm [--size N[K|M|G]] [--stride N] [--thp always|never]\n\
         \x20      [--align N] [--offset N] [--page-size 2M|1G] [--path FILE] [--hold-ms MS]\n\
         \x20      [--counter SYSFS-FILE]   (or vmstat:KEY; its delta around the touch loop: counter_delta)\n\
         \x20      [--prewrite]   (file: write(2) it in 4 KiB pieces before mapping)\n\
         \x20      gpu: [--path /dev/hfgpu] [--bo-offset N] [--policy pud|pmd-only|pte-only|range|remap]\n\
         \x20           [--then-policy P]   (then switch and touch every page again)\n\
         \x20           [--write-notify]   (pages mapped read-only first: each write a second fault)\n\
         \x20      vfio: [--path 0000:00:05.0] [--bo-offset N]   (BAR 2 of a vfio-pci device)\n\
         \x20      drm: --driver bochs-drm|qxl|vgem [--reverse]   (a dumb buffer of that driver's card)\n\
         \x20      hf-workload gpu-errors [DEVICE]   (bad requests: the errno of each)\n\
         \x20      hf-workload gpu-runtime [--policy P]   (five buffer objects, a runtime's order)\n\
         \x20      hf-workload storm --size N [--threads T] [--thp always|never] [--gpu POLICY]\n\
         \x20           (a fault storm: every 4 KiB written once by T threads on T slices;\n\
         \x20            prints the faults and the wall time of the touch loop)\n\
         Writes every stride of a fresh private mapping once and prints JSON ground truth.\n\
         --align/--offset place the mapping at OFFSET past an ALIGN boundary.\n\
         --thp always|never: MADV_HUGEPAGE or MADV_NOHUGEPAGE on the region (anon);\n\
         --thp-disable: prctl(PR_SET_THP_DISABLE) first (anon);\n\
         --touch N: touch only the first N bytes; --memcg-headroom N: run in a memory cgroup\n\
         \x20 whose memory.max is the process's usage plus N."
    );
    ExitCode::from(2)
}

fn rusage() -> (i64, i64) {
    // SAFETY: getrusage fills the struct we pass.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        (ru.ru_minflt, ru.ru_majflt)
    }
}

/// Free pages of one hugetlb pool, from sysfs.
fn free_huge_pages(page_size: usize) -> Option<i64> {
    let path = format!(
        "/sys/kernel/mm/hugepages/hugepages-{}kB/free_hugepages",
        page_size >> 10
    );
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn parse_args(args: &[String]) -> Option<Opts> {
    let kind = match args.first()?.as_str() {
        "anon" => Kind::Anon,
        "hugetlb" => Kind::Hugetlb,
        "file" => Kind::File,
        "dev" => Kind::Dev,
        "gpu" => Kind::Gpu,
        "vfio" => Kind::Vfio,
        "drm" => Kind::Drm,
        _ => return None,
    };
    let mut o = Opts {
        kind,
        size: 16 << 20,
        stride: None,
        thp: None,
        align: 0,
        offset: 0,
        page_size: 2 << 20,
        hold_ms: 0,
        path: None,
        counter: None,
        prewrite: false,
        bo_offset: 0,
        policy: None,
        then_policy: None,
        write_notify: false,
        thp_disable: false,
        touch: None,
        memcg_headroom: None,
        driver: None,
        reverse: false,
    };
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        if a == "--prewrite" {
            o.prewrite = true;
            continue;
        }
        if a == "--write-notify" {
            o.write_notify = true;
            continue;
        }
        if a == "--thp-disable" {
            o.thp_disable = true;
            continue;
        }
        if a == "--reverse" {
            o.reverse = true;
            continue;
        }
        let v = it.next()?;
        match a.as_str() {
            "--size" => o.size = parse_size(v)?,
            "--stride" => o.stride = Some(parse_size(v).filter(|&n| n > 0)?),
            "--align" => o.align = parse_size(v)?,
            "--offset" => o.offset = parse_size(v)?,
            "--page-size" => o.page_size = parse_size(v).filter(|n| n.is_power_of_two())?,
            "--hold-ms" => o.hold_ms = v.parse().ok()?,
            "--path" => o.path = Some(v.clone()),
            "--counter" => o.counter = Some(v.clone()),
            "--bo-offset" => o.bo_offset = parse_size(v)?,
            "--touch" => o.touch = Some(parse_size(v)?),
            "--memcg-headroom" => o.memcg_headroom = Some(parse_size(v)?),
            "--policy" => o.policy = Some(v.clone()),
            "--driver" => o.driver = Some(v.clone()),
            "--then-policy" => o.then_policy = Some(v.clone()),
            "--thp" if v == "always" => o.thp = Some(true),
            "--thp" if v == "never" => o.thp = Some(false),
            _ => return None,
        }
    }
    Some(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("gpu-errors") {
        return gpu_errors(args.get(1).map_or("/dev/hfgpu", String::as_str));
    }
    if args.first().map(String::as_str) == Some("storm") {
        return storm(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("gpu-runtime") {
        return match args.get(1..) {
            Some([p, policy]) if p == "--policy" => gpu_runtime(policy),
            Some([]) => gpu_runtime("pud"),
            _ => usage(),
        };
    }
    let Some(o) = parse_args(&args) else {
        return usage();
    };
    if o.kind == Kind::Gpu {
        return gpu(&o);
    }
    if o.kind == Kind::Vfio {
        return vfio(&o);
    }
    if o.kind == Kind::Drm {
        return drm(&o);
    }
    let stride = o.stride.unwrap_or(match o.kind {
        Kind::Anon | Kind::File | Kind::Dev | Kind::Gpu | Kind::Vfio | Kind::Drm => 4096,
        Kind::Hugetlb => o.page_size,
    });
    let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    let mut map_len = o.size + o.align + o.offset;
    let mut prot = libc::PROT_READ | libc::PROT_WRITE;
    if matches!(o.kind, Kind::File | Kind::Dev) {
        // A reservation holding every ALIGN-sized block the mapping touches, kept around
        // it (PROT_NONE, never faulted): no other mapping shares the page tables of its
        // edge blocks, so whether the kernel finds a PMD slot empty at a block's first
        // fault does not depend on where the process's other mappings happen to be.
        map_len = o.size + o.offset + 2 * o.align.max(4096);
        prot = libc::PROT_NONE;
    }
    if o.kind == Kind::Hugetlb {
        // MAP_HUGE_SHIFT encodes log2 of the page size.
        flags = libc::MAP_PRIVATE
            | libc::MAP_ANONYMOUS
            | libc::MAP_HUGETLB
            | ((o.page_size.trailing_zeros() as i32) << libc::MAP_HUGE_SHIFT);
        // The kernel aligns hugetlb mappings itself.
        map_len = o.size;
    }
    if let Some(headroom) = o.memcg_headroom
        && let Err(e) = enter_memcg(headroom)
    {
        eprintln!("hf-workload: memory cgroup: {e}");
        return ExitCode::FAILURE;
    }
    // SAFETY: a prctl on this process only.
    if o.thp_disable && unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0 {
        eprintln!(
            "hf-workload: prctl(PR_SET_THP_DISABLE) failed: {}",
            std::io::Error::last_os_error()
        );
        return ExitCode::FAILURE;
    }
    // SAFETY: a fresh anonymous mapping; no existing memory is touched.
    let base = unsafe { libc::mmap(std::ptr::null_mut(), map_len, prot, flags, -1, 0) };
    if base == libc::MAP_FAILED {
        eprintln!(
            "hf-workload: mmap of {map_len} bytes failed: {}",
            std::io::Error::last_os_error()
        );
        return ExitCode::FAILURE;
    }
    let mut start = base as usize;
    if matches!(o.kind, Kind::File | Kind::Dev) {
        // Map the file at the aligned start inside the reservation with MAP_FIXED; the
        // rest of the reservation stays as a guard.
        let Some(path) = o.path.as_deref() else {
            eprintln!("hf-workload: file needs --path");
            return ExitCode::from(2);
        };
        let create = o.kind == Kind::File;
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(create)
            .open(path)
        {
            Ok(f) => f,
            Err(e) => {
                eprintln!("hf-workload: {path}: {e}");
                return ExitCode::FAILURE;
            }
        };
        if create && let Err(e) = file.set_len(o.size as u64) {
            eprintln!("hf-workload: {path}: set_len: {e}");
            return ExitCode::FAILURE;
        }
        if o.prewrite {
            use std::io::Write as _;
            let block = [0x5au8; 4096];
            let mut w = &file;
            for _ in 0..o.size / 4096 {
                if let Err(e) = w.write_all(&block) {
                    eprintln!("hf-workload: {path}: write: {e}");
                    return ExitCode::FAILURE;
                }
            }
            if let Err(e) = file.sync_all() {
                eprintln!("hf-workload: {path}: fsync: {e}");
                return ExitCode::FAILURE;
            }
        }
        start = start.next_multiple_of(o.align.max(4096)) + o.offset;
        use std::os::fd::AsRawFd as _;
        // SAFETY: MAP_FIXED inside our own fresh reservation.
        let m = unsafe {
            libc::mmap(
                start as *mut _,
                o.size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                file.as_raw_fd(),
                0,
            )
        };
        if m == libc::MAP_FAILED {
            eprintln!(
                "hf-workload: mmap {path}: {}",
                std::io::Error::last_os_error()
            );
            return ExitCode::FAILURE;
        }
    } else if o.kind == Kind::Anon && (o.align > 0 || o.offset > 0) {
        start = start.next_multiple_of(o.align.max(1)) + o.offset;
        // Trim both ends so that the VMA is exactly [start, start + size).
        // SAFETY: unmapping parts of our own fresh mapping.
        unsafe {
            if start > base as usize {
                libc::munmap(base, start - base as usize);
            }
            let end = start + o.size;
            let map_end = base as usize + map_len;
            if map_end > end {
                libc::munmap(end as *mut _, map_end - end);
            }
        }
    }
    if let Some(thp) = o.thp {
        let advice = if thp {
            libc::MADV_HUGEPAGE
        } else {
            libc::MADV_NOHUGEPAGE
        };
        // SAFETY: advice on our own mapping.
        if unsafe { libc::madvise(start as *mut _, o.size, advice) } != 0 {
            eprintln!(
                "hf-workload: madvise failed: {}",
                std::io::Error::last_os_error()
            );
            return ExitCode::FAILURE;
        }
    }
    let pool_before = (o.kind == Kind::Hugetlb)
        .then(|| free_huge_pages(o.page_size))
        .flatten();
    // A sysfs file with one number, or `vmstat:KEY` for a /proc/vmstat counter.
    let read_counter = || -> Option<i64> {
        let c = o.counter.as_deref()?;
        if let Some(key) = c.strip_prefix("vmstat:") {
            let text = std::fs::read_to_string("/proc/vmstat").ok()?;
            return text.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                if k == key {
                    v.trim().parse().ok()
                } else {
                    None
                }
            });
        }
        std::fs::read_to_string(c).ok()?.trim().parse().ok()
    };
    // The measured window holds the touches only: the stack the loop and getrusage use,
    // and their code, are faulted in first (a new stack page there, where the randomised
    // stack start put a page boundary, was one minor fault too many).
    warm_stack();
    let _ = rusage();
    let _ = touch(start, 0, stride);
    let counter_before = read_counter();
    let before = rusage();
    let touched = touch(start, o.touch.unwrap_or(o.size).min(o.size), stride);
    let after = rusage();
    let counter_after = read_counter();
    let counter = match (counter_before, counter_after) {
        (Some(b), Some(a)) => format!(",\"counter_delta\":{}", a - b),
        _ => String::new(),
    };
    let pool_after = (o.kind == Kind::Hugetlb)
        .then(|| free_huge_pages(o.page_size))
        .flatten();
    let huge = match (pool_before, pool_after) {
        (Some(b), Some(a)) => format!(",\"huge_pages_used\":{}", b - a),
        _ => String::new(),
    };
    println!(
        "{{\"pid\":{},\"vma_start\":\"{:#x}\",\"vma_end\":\"{:#x}\",\"size\":{},\"touches\":{},\"minflt\":{},\"majflt\":{}{huge}{counter}}}",
        std::process::id(),
        start,
        start + o.size,
        o.size,
        touched,
        after.0 - before.0,
        after.1 - before.1
    );
    if o.hold_ms > 0 {
        std::thread::sleep(std::time::Duration::from_millis(o.hold_ms));
    }
    ExitCode::SUCCESS
}

/// Moves this process into a new memory cgroup (cgroup v2, mounted if it is not) whose
/// `memory.max` is what it is charged now plus `headroom`.
fn enter_memcg(headroom: usize) -> std::io::Result<()> {
    let root = std::path::Path::new("/sys/fs/cgroup");
    if !root.join("cgroup.controllers").exists() {
        // SAFETY: NUL-terminated literals; mounts the cgroup v2 hierarchy where sysfs keeps
        // its mount point.
        let rc = unsafe {
            libc::mount(
                c"none".as_ptr(),
                c"/sys/fs/cgroup".as_ptr(),
                c"cgroup2".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    std::fs::write(root.join("cgroup.subtree_control"), "+memory")?;
    let dir = root.join(format!("hf-workload-{}", std::process::id()));
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string())?;
    let current: usize = std::fs::read_to_string(dir.join("memory.current"))?
        .trim()
        .parse()
        .map_err(std::io::Error::other)?;
    std::fs::write(dir.join("memory.max"), (current + headroom).to_string())
}

/// Writes 32 KiB of stack below the caller's frame, so that the measured calls after it
/// fault in no stack page.
#[inline(never)]
fn warm_stack() {
    let mut buf = [0u8; 32 << 10];
    for i in (0..buf.len()).step_by(4096) {
        // SAFETY: inside our own stack array; volatile so that every write happens.
        unsafe { std::ptr::write_volatile(&mut buf[i], 1) };
    }
    std::hint::black_box(&buf);
}

/// The start of a free range of `len` bytes of the address space: reserved and given back
/// at once, for a MAP_FIXED_NOREPLACE mapping inside it.
fn free_range(len: usize) -> Result<usize, String> {
    // SAFETY: a fresh reservation, unmapped at once.
    let r = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if r == libc::MAP_FAILED {
        return Err(format!("reserving {len} bytes failed"));
    }
    // SAFETY: our own reservation.
    unsafe { libc::munmap(r, len) };
    Ok(r as usize)
}

/// `what` failed, with the OS error.
fn errno(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// `o.size` bytes of `fd` from file offset `offset`, mapped shared and writable at
/// `--offset` past an `--align` boundary of a free range (MAP_FIXED_NOREPLACE: the driver
/// picks no aligned address itself), madvised as `--thp` asks; its start. `what` names
/// the mapping in errors.
fn map_shared_at(o: &Opts, fd: i32, offset: u64, what: &str) -> Result<usize, String> {
    let align = o.align.max(4096);
    let at = free_range(o.size + o.offset + 2 * align)?.next_multiple_of(align) + o.offset;
    // SAFETY: a new shared mapping at a free address.
    let m = unsafe {
        libc::mmap(
            at as *mut _,
            o.size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE,
            fd,
            offset as i64,
        )
    };
    if m == libc::MAP_FAILED {
        return Err(errno(&format!("mmap of {what}")));
    }
    let start = m as usize;
    if start != at {
        return Err(format!("asked for {at:#x}, got {start:#x}"));
    }
    if let Some(on) = o.thp {
        let advice = if on {
            libc::MADV_HUGEPAGE
        } else {
            libc::MADV_NOHUGEPAGE
        };
        // SAFETY: advice on our own mapping.
        if unsafe { libc::madvise(m, o.size, advice) } != 0 {
            return Err(errno("madvise"));
        }
    }
    Ok(start)
}

/// The touch loop: writes one byte every `stride` bytes of `[start, start + size)`.
fn touch(start: usize, size: usize, stride: usize) -> u64 {
    let mut touched = 0;
    let mut off = 0;
    while off < size {
        // SAFETY: inside a mapping of ours; volatile so that every write happens.
        unsafe { std::ptr::write_volatile((start + off) as *mut u8, 1) };
        touched += 1;
        off += stride;
    }
    touched
}
