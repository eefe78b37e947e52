//! Fault storms for the benchmarks.

use std::process::ExitCode;

use crate::{
    drv::{open_device, set_policy},
    parse_size, rusage, touch, usage,
};

/// A fault storm for the benchmarks: one mapping (anonymous, or a /dev/hfgpu buffer object
/// under a policy), every 4 KiB written once by `--threads` threads, each on its own slice,
/// started together. Prints the minor faults and the wall time of the touch loop only.
pub fn storm(args: &[String]) -> ExitCode {
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
    // Each thread counts its own faults around its touch loop alone (RUSAGE_THREAD), after
    // one dry run of the counting code so that its stack and code are faulted in: the sum
    // is exactly the faults in the mapping.
    let region_faults = std::sync::atomic::AtomicI64::new(0);
    std::thread::scope(|s| {
        for i in 0..threads {
            let (from, barrier, region) = (start + i * slice, &barrier, &region_faults);
            let len = slice.min(size.saturating_sub(i * slice));
            s.spawn(move || {
                let dry = thread_minflt();
                touch(from, 0, 4096);
                let _ = thread_minflt() - dry;
                barrier.wait();
                let b = thread_minflt();
                touch(from, len, 4096);
                let a = thread_minflt();
                region.fetch_add(a - b, std::sync::atomic::Ordering::Relaxed);
            });
        }
        barrier.wait();
        t0 = std::time::Instant::now();
    });
    let ns = t0.elapsed().as_nanos();
    let after = rusage();
    println!(
        "{{\"pid\":{},\"size\":{size},\"threads\":{threads},\"faults\":{},\"ns\":{ns},\"vma_start\":{start},\"vma_end\":{},\"region_faults\":{}}}",
        std::process::id(),
        after.0 - before.0,
        start + size,
        region_faults.into_inner()
    );
    ExitCode::SUCCESS
}

/// Minor plus major faults of the calling thread so far.
fn thread_minflt() -> i64 {
    // SAFETY: getrusage fills the struct we pass.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        ru.ru_minflt + ru.ru_majflt
    }
}
