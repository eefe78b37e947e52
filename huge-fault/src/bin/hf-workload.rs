//! A fault workload with its own ground truth: maps a region, writes every page (or every
//! `--stride` bytes) once, and prints one JSON line with the VMA range it used and its
//! getrusage minflt/majflt delta around the touch loop.
//!
//! `hf-workload anon --size 64M --thp never`

use std::process::ExitCode;

fn parse_size(s: &str) -> Option<usize> {
    let (num, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<usize>().ok()?.checked_mul(mult)
}

struct Opts {
    size: usize,
    stride: usize,
    thp: Option<bool>,
    align: usize,
    hold_ms: u64,
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: hf-workload anon [--size N[K|M|G]] [--stride N] [--thp always|never] [--align N] [--hold-ms MS]\n\
         Writes every stride of a fresh anonymous mapping once and prints JSON ground truth."
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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("anon") {
        return usage();
    }
    let mut o = Opts {
        size: 16 << 20,
        stride: 4096,
        thp: None,
        align: 0,
        hold_ms: 0,
    };
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        let v = it.next();
        let ok = match (a.as_str(), v) {
            ("--size", Some(v)) => parse_size(v).map(|n| o.size = n).is_some(),
            ("--stride", Some(v)) => parse_size(v)
                .filter(|&n| n > 0)
                .map(|n| o.stride = n)
                .is_some(),
            ("--align", Some(v)) => parse_size(v).map(|n| o.align = n).is_some(),
            ("--hold-ms", Some(v)) => v.parse().map(|n| o.hold_ms = n).is_ok(),
            ("--thp", Some(v)) if v == "always" => {
                o.thp = Some(true);
                true
            }
            ("--thp", Some(v)) if v == "never" => {
                o.thp = Some(false);
                true
            }
            _ => false,
        };
        if !ok {
            eprintln!("hf-workload: bad option {a} {}", v.map_or("", |v| v));
            return usage();
        }
    }
    // Over-allocate to align the start, then use [start, start + size).
    let map_len = o.size + o.align;
    // SAFETY: a fresh anonymous private mapping; no existing memory is touched.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            map_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        eprintln!(
            "hf-workload: mmap of {map_len} bytes failed: {}",
            std::io::Error::last_os_error()
        );
        return ExitCode::FAILURE;
    }
    let mut start = base as usize;
    if o.align > 0 {
        start = start.next_multiple_of(o.align);
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
    let before = rusage();
    let mut touched = 0u64;
    let mut off = 0;
    while off < o.size {
        // SAFETY: inside our mapping; volatile so that every write happens.
        unsafe { std::ptr::write_volatile((start + off) as *mut u8, 1) };
        touched += 1;
        off += o.stride;
    }
    let after = rusage();
    println!(
        "{{\"pid\":{},\"vma_start\":\"{:#x}\",\"vma_end\":\"{:#x}\",\"size\":{},\"touches\":{},\"minflt\":{},\"majflt\":{}}}",
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
