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

use std::process::ExitCode;

/// `16M`-style sizes (the lab's parser), as a usize.
fn parse_size(s: &str) -> Option<usize> {
    usize::try_from(huge_fault::lab::parse_size(s)?).ok()
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
}

/// The hfgpu ioctls (lab-driver/hfgpu.h).
const HFGPU_SET_POLICY: libc::c_ulong = 0x4004_4801;
/// `_IOR('H', 3, struct hfgpu_stats)`: 20 u64 counters.
const HFGPU_GET_STATS: libc::c_ulong = 0x80a0_4803;
/// `_IOW('H', 4, __u32)`, and its write-notify flag.
const HFGPU_SET_FLAGS: libc::c_ulong = 0x4004_4804;
const HFGPU_F_WRITE_NOTIFY: u32 = 1;
const HFGPU_POLICIES: [&str; 4] = ["pud", "pmd-only", "pte-only", "range"];

/// `struct hfgpu_stats`: the driver's handler calls, `[level][result]` with level PTE (the
/// fault handler), PMD, PUD and result mapped, FALLBACK, other; and those under the
/// per-VMA lock.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct DrvStats {
    calls: [[u64; 3]; 3],
    vma_lock: [[u64; 3]; 3],
    mkwrite: u64,
    mkwrite_vma_lock: u64,
}

impl DrvStats {
    fn read(fd: i32) -> Result<Self, String> {
        let mut s = DrvStats::default();
        // SAFETY: the ioctl writes one struct hfgpu_stats into `s`.
        if unsafe { libc::ioctl(fd, HFGPU_GET_STATS, &mut s as *mut DrvStats) } != 0 {
            return Err(format!(
                "HFGPU_GET_STATS: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(s)
    }

    /// The driver's second count of what the tool reports, between two reads, as JSON keys
    /// of the ground-truth line: its FALLBACK answers (PUD and PMD), the calls of its PTE
    /// fault handler (on 6.12+ each one comes after a VM_FAULT_RETRY under the per-VMA
    /// lock, which the core returns before calling a `fault` handler without
    /// `map_pages`), the huge_fault calls under the per-VMA lock, and the fault handler's
    /// calls under it (none: the core never makes one); the `pfn_mkwrite` calls (likewise
    /// only after a RETRY under the per-VMA lock: `wp_pfn_shared`), and the two together.
    fn keys_since(&self, before: &DrvStats) -> String {
        let d = |a: &[[u64; 3]; 3], b: &[[u64; 3]; 3], l: usize, r: usize| a[l][r] - b[l][r];
        let (c, b) = (&self.calls, &before.calls);
        let (v, bv) = (&self.vma_lock, &before.vma_lock);
        let sum = |a: &[[u64; 3]; 3], b: &[[u64; 3]; 3], l: usize| {
            (0..3).map(|r| d(a, b, l, r)).sum::<u64>()
        };
        format!(
            "\"drv_fallbacks\":{},\"drv_pud_fallbacks\":{},\"drv_pmd_fallbacks\":{},\"drv_huge_mapped\":{},\"drv_fault_calls\":{},\"drv_huge_calls_vma_lock\":{},\"drv_fault_calls_vma_lock\":{},\"drv_mkwrite_calls\":{},\"drv_mkwrite_calls_vma_lock\":{},\"drv_calls_needing_mmap_lock\":{}",
            d(c, b, 1, 1) + d(c, b, 2, 1),
            d(c, b, 2, 1),
            d(c, b, 1, 1),
            d(c, b, 1, 0) + d(c, b, 2, 0),
            sum(c, b, 0),
            sum(v, bv, 1) + sum(v, bv, 2),
            sum(v, bv, 0),
            self.mkwrite - before.mkwrite,
            self.mkwrite_vma_lock - before.mkwrite_vma_lock,
            sum(c, b, 0) + self.mkwrite - before.mkwrite,
        )
    }
}

/// The errno of the call that just failed.
fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
}

/// HFGPU_SET_POLICY with a policy number: 0, or the errno.
fn ioctl_policy(fd: i32, p: u32) -> i32 {
    // SAFETY: the ioctl reads one u32 from the pointer.
    if unsafe { libc::ioctl(fd, HFGPU_SET_POLICY, &p as *const u32) } == 0 {
        0
    } else {
        last_errno()
    }
}

fn set_policy(fd: i32, name: &str) -> Result<(), String> {
    let p = HFGPU_POLICIES
        .iter()
        .position(|n| *n == name)
        .map_or(u32::MAX, |i| i as u32);
    match ioctl_policy(fd, p) {
        0 => Ok(()),
        e => Err(format!(
            "HFGPU_SET_POLICY {name}: {}",
            std::io::Error::from_raw_os_error(e)
        )),
    }
}

/// Opens a device for reading and writing, or says why not.
fn open_device(path: &str) -> Option<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| eprintln!("hf-workload: {path}: {e}"))
        .ok()
}

/// Bad requests to /dev/hfgpu: prints the errno each one got (0 if it was accepted).
fn gpu_errors(path: &str) -> ExitCode {
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
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: hf-workload anon|hugetlb|file|dev|gpu [--size N[K|M|G]] [--stride N] [--thp always|never]\n\
         \x20      [--align N] [--offset N] [--page-size 2M|1G] [--path FILE] [--hold-ms MS]\n\
         \x20      [--counter SYSFS-FILE]   (or vmstat:KEY; its delta around the touch loop: counter_delta)\n\
         \x20      [--prewrite]   (file: write(2) it in 4 KiB pieces before mapping)\n\
         \x20      gpu: [--path /dev/hfgpu] [--bo-offset N] [--policy pud|pmd-only|pte-only|range]\n\
         \x20           [--then-policy P]   (then switch and touch every page again)\n\
         \x20           [--write-notify]   (pages mapped read-only first: each write a second fault)\n\
         \x20      hf-workload gpu-errors [DEVICE]   (bad requests: the errno of each)\n\
         \x20      hf-workload gpu-runtime [--policy P]   (five buffer objects, a runtime's order)\n\
         \x20      hf-workload storm --size N [--threads T] [--thp always|never] [--gpu POLICY]\n\
         \x20           (a fault storm: every 4 KiB written once by T threads on T slices;\n\
         \x20            prints the faults and the wall time of the touch loop)\n\
         Writes every stride of a fresh private mapping once and prints JSON ground truth.\n\
         --align/--offset place the mapping at OFFSET past an ALIGN boundary.\n\
         --thp always|never: MADV_HUGEPAGE or MADV_NOHUGEPAGE on the region (anon)."
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
            "--policy" => o.policy = Some(v.clone()),
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
    let stride = o.stride.unwrap_or(match o.kind {
        Kind::Anon | Kind::File | Kind::Dev | Kind::Gpu => 4096,
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
    let counter_before = read_counter();
    let before = rusage();
    let touched = touch(start, o.size, stride);
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

/// A buffer object of /dev/hfgpu: mapped where the driver places it (its
/// get_unmapped_area aligns it like its BAR address) or, with `--align`/`--offset`, at a
/// chosen address with MAP_FIXED_NOREPLACE; then touched, and touched in full again after
/// `--then-policy`.
fn gpu(o: &Opts) -> ExitCode {
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
        let len = o.size + o.offset + 2 * o.align.max(4096);
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
            eprintln!("hf-workload: reserving {len} bytes failed");
            return ExitCode::FAILURE;
        }
        // SAFETY: our own reservation.
        unsafe { libc::munmap(r, len) };
        let at = (r as usize).next_multiple_of(o.align.max(4096)) + o.offset;
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
fn gpu_runtime(policy: &str) -> ExitCode {
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
    let len = 5 * GIB;
    // SAFETY: a fresh reservation, unmapped at once: its 1 GiB-aligned 4 GiB are free.
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
        eprintln!("hf-workload: reserving {len} bytes failed");
        return ExitCode::FAILURE;
    }
    // SAFETY: our own reservation.
    unsafe { libc::munmap(r, len) };
    let base = (r as usize).next_multiple_of(GIB);
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

/// A fault storm for the benchmarks: one mapping (anonymous, or a /dev/hfgpu buffer object
/// under a policy), every 4 KiB written once by `--threads` threads, each on its own slice,
/// started together. Prints the minor faults and the wall time of the touch loop only.
fn storm(args: &[String]) -> ExitCode {
    use std::os::fd::AsRawFd as _;
    let mut size = 64 << 20;
    let mut threads = 1usize;
    let mut thp = None;
    let mut gpu: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(v) = it.next() else { return usage() };
        match a.as_str() {
            "--size" => match parse_size(v) {
                Some(n) if n > 0 => size = n,
                _ => return usage(),
            },
            "--threads" => match v.parse() {
                Ok(n) if n > 0 => threads = n,
                _ => return usage(),
            },
            "--thp" => thp = Some(v == "always"),
            "--gpu" => gpu = Some(v.clone()),
            _ => return usage(),
        }
    }
    let device = match &gpu {
        Some(p) => {
            let Some(f) = open_device("/dev/hfgpu") else {
                return ExitCode::FAILURE;
            };
            if let Err(e) = set_policy(f.as_raw_fd(), p) {
                eprintln!("hf-workload: {e}");
                return ExitCode::FAILURE;
            }
            Some(f)
        }
        None => None,
    };
    let (flags, fd) = match &device {
        Some(f) => (libc::MAP_SHARED, f.as_raw_fd()),
        None => (
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
        ),
    };
    // SAFETY: a fresh mapping wherever the kernel (or the driver) puts it.
    let m = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            fd,
            0,
        )
    };
    if m == libc::MAP_FAILED {
        eprintln!(
            "hf-workload: mmap {size}: {}",
            std::io::Error::last_os_error()
        );
        return ExitCode::FAILURE;
    }
    if let Some(on) = thp {
        let advice = if on {
            libc::MADV_HUGEPAGE
        } else {
            libc::MADV_NOHUGEPAGE
        };
        // SAFETY: advice on our own mapping.
        unsafe { libc::madvise(m, size, advice) };
    }
    let start = m as usize;
    let slice = (size / threads).next_multiple_of(4096);
    let barrier = std::sync::Barrier::new(threads + 1);
    let before = rusage();
    let mut t0 = std::time::Instant::now();
    std::thread::scope(|s| {
        for i in 0..threads {
            let (from, barrier) = (start + i * slice, &barrier);
            let len = slice.min(size.saturating_sub(i * slice));
            s.spawn(move || {
                barrier.wait();
                touch(from, len, 4096)
            });
        }
        barrier.wait();
        t0 = std::time::Instant::now();
    });
    let ns = t0.elapsed().as_nanos();
    let after = rusage();
    println!(
        "{{\"pid\":{},\"size\":{size},\"threads\":{threads},\"faults\":{},\"ns\":{ns}}}",
        std::process::id(),
        after.0 - before.0
    );
    ExitCode::SUCCESS
}
