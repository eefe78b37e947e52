//! The kernel's own lists of BPF programs, maps and links, and its kprobe and uprobe
//! events: what a tracer must leave behind as it found it, even when killed with SIGKILL.

use std::collections::BTreeSet;

/// `bpf(2)` commands that walk the kernel's id tables.
const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
const BPF_MAP_GET_NEXT_ID: libc::c_long = 12;
const BPF_LINK_GET_NEXT_ID: libc::c_long = 31;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_ENABLE_STATS: libc::c_long = 32;

/// `bpf(cmd, attr)`, with `attr` the leading words of a `union bpf_attr` for `cmd`: the
/// kernel's return value (-1 with errno set on failure).
fn bpf(cmd: libc::c_long, attr: &mut [u32]) -> libc::c_long {
    // SAFETY: the buffer holds every field the command reads (the kernel zero-extends a
    // shorter attr) and lives through the call.
    unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr) as u32,
        )
    }
}

/// A file descriptor the kernel just returned, or the error behind -1.
fn owned_fd(fd: libc::c_long) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd as _;
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new fd the kernel just gave us, owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Every id of one kind of BPF object, in the kernel now (needs CAP_SYS_ADMIN).
fn ids(cmd: libc::c_long) -> std::io::Result<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    let mut start = 0u32;
    loop {
        // union bpf_attr for *_GET_NEXT_ID: start_id, next_id, open_flags.
        let mut attr = [0u32; 4];
        attr[0] = start;
        // The kernel writes next_id into it.
        let r = bpf(cmd, &mut attr);
        if r != 0 {
            let e = std::io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::ENOENT) {
                Ok(out)
            } else {
                Err(e)
            };
        }
        start = attr[1];
        out.insert(start);
    }
}

/// The BPF objects and probe events in the kernel at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Census {
    pub programs: BTreeSet<u32>,
    pub maps: BTreeSet<u32>,
    /// Empty on kernels before 5.8 (no link ids).
    pub links: BTreeSet<u32>,
    /// Lines of tracefs `kprobe_events` and `uprobe_events` (events made through tracefs
    /// rather than the perf PMU outlive the fd that made them).
    pub probe_events: Vec<String>,
}

impl Census {
    pub fn now() -> std::io::Result<Census> {
        let events = ["kprobe_events", "uprobe_events"]
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(format!("/sys/kernel/tracing/{f}"))
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok(Census {
            programs: ids(BPF_PROG_GET_NEXT_ID)?,
            maps: ids(BPF_MAP_GET_NEXT_ID)?,
            links: ids(BPF_LINK_GET_NEXT_ID).unwrap_or_default(),
            probe_events: events,
        })
    }

    /// What `self` (later) has that `before` did not, in words; `None` when nothing.
    pub fn left_over(&self, before: &Census) -> Option<String> {
        let new = |a: &BTreeSet<u32>, b: &BTreeSet<u32>| a.difference(b).count();
        let extra_events: Vec<&String> = self
            .probe_events
            .iter()
            .filter(|e| !before.probe_events.contains(e))
            .collect();
        let (p, m, l) = (
            new(&self.programs, &before.programs),
            new(&self.maps, &before.maps),
            new(&self.links, &before.links),
        );
        (p + m + l + extra_events.len() > 0).then(|| {
            format!("{p} programs, {m} maps, {l} links and probe events {extra_events:?} left")
        })
    }

    /// Waits up to `timeout` for the kernel to free what a dead tracer held (freeing is
    /// deferred); the last difference if it does not.
    pub fn settles_to(before: &Census, timeout: std::time::Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = match Census::now() {
                Ok(now) => now.left_over(before),
                Err(e) => Some(format!("cannot list BPF objects: {e}")),
            };
            if left.is_none() || std::time::Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// Turns on the kernel's run-time accounting of every BPF program while the returned fd is
/// open (`BPF_ENABLE_STATS`, 5.8+), as `kernel.bpf_stats_enabled` does.
pub fn enable_run_time_stats() -> std::io::Result<std::os::fd::OwnedFd> {
    // union bpf_attr for BPF_ENABLE_STATS: type (BPF_STATS_RUN_TIME = 0).
    owned_fd(bpf(BPF_ENABLE_STATS, &mut [0u32; 2]))
}

/// Nanoseconds the kernel has spent in all BPF programs now loaded, summed from each
/// program's `run_time_ns` (kept while run-time accounting is on). Programs that go away
/// between two reads take their time with them: read while the tracer of interest runs.
pub fn total_run_time_ns() -> std::io::Result<u64> {
    let mut total = 0;
    for id in ids(BPF_PROG_GET_NEXT_ID)? {
        use std::os::fd::AsRawFd as _;
        // union bpf_attr for BPF_PROG_GET_FD_BY_ID: prog_id, next_id, open_flags.
        let Ok(fd) = owned_fd(bpf(BPF_PROG_GET_FD_BY_ID, &mut [id, 0, 0])) else {
            // Unloaded since the walk.
            continue;
        };
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
            .unwrap_or_default();
        total += info
            .lines()
            .find_map(|l| l.strip_prefix("run_time_ns:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(total)
}
