//! Time limits for the bench's steps: a tracer that does not attach, a storm that does not
//! end, a tracer that does not stop is killed after its limit and reported with what its
//! threads (and every task stuck in the kernel) were waiting for; the bench goes on.

use std::{
    process::{Child, Output},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// How long each step may take.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// From the tracer's start to its "attached" line.
    pub start: Duration,
    /// One storm, from its start to its exit.
    pub storm: Duration,
    /// From SIGINT to the tracer's exit with its report.
    pub stop: Duration,
}

impl Default for Limits {
    /// Generous for an emulated guest (a tracer there loads BTF and verifies its programs
    /// in tens of seconds), short enough that a hang costs minutes, not the boot's limit.
    fn default() -> Self {
        Limits {
            start: Duration::from_secs(120),
            storm: Duration::from_secs(180),
            stop: Duration::from_secs(60),
        }
    }
}

/// Kills `pid` once `limit` has passed, unless the returned guard is dropped (or `disarm`ed)
/// first; `fired` tells whether it did, and the report says what the tasks were doing at
/// that moment.
pub struct Watchdog {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Option<String>>>,
}

impl Watchdog {
    pub fn arm(pid: u32, limit: Duration) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            while !d.load(Ordering::Acquire) {
                if t0.elapsed() >= limit {
                    let report = stuck_tasks(pid);
                    // SAFETY: signalling a child of ours, which has not been reaped (the
                    // waiter disarms us before it reaps).
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    return Some(report);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            None
        });
        Watchdog {
            done,
            thread: Some(thread),
        }
    }

    /// Stops the watchdog; `Some(what the tasks were doing)` when it had fired.
    pub fn disarm(mut self) -> Option<String> {
        self.done.store(true, Ordering::Release);
        self.thread.take().and_then(|t| t.join().ok().flatten())
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
    }
}

/// Waits for `child` to exit, killing it after `limit`; `what` names the step. Its pipes
/// are read to their end on other threads meanwhile.
pub fn wait_limited(mut child: Child, limit: Duration, what: &str) -> Result<Output, String> {
    let pid = child.id();
    let out = child.stdout.take().map(reader);
    let err = child.stderr.take().map(reader);
    let dog = Watchdog::arm(pid, limit);
    // The exit is awaited with WNOWAIT: the child stays a zombie, its pid reserved, until
    // the watchdog (which may signal that pid) is gone; only then is it reaped.
    let exited = loop {
        // SAFETY: waitid on our own child with a buffer we own; WNOWAIT leaves it unreaped.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT)
        };
        let e = std::io::Error::last_os_error();
        if rc == 0 || e.kind() != std::io::ErrorKind::Interrupted {
            break if rc == 0 { Ok(()) } else { Err(e) };
        }
    };
    let stuck = dog.disarm();
    let status = child.wait();
    let join = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    let (stdout, stderr) = (join(out), join(err));
    if let Some(stuck) = stuck {
        return Err(format!(
            "{what} did not finish within {:.1} s and was killed; {stuck}",
            limit.as_secs_f64()
        ));
    }
    let status = exited.and(status).map_err(|e| format!("{what}: {e}"))?;
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

fn reader<R: std::io::Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

/// What the process's threads, and every other task in uninterruptible sleep, are doing:
/// state, wait channel and the top of the kernel stack of each (`/proc/PID/task/TID`).
pub fn stuck_tasks(pid: u32) -> String {
    let mut parts: Vec<String> = tasks_of(pid).iter().map(|t| describe(pid, *t)).collect();
    if parts.is_empty() {
        parts.push(format!("pid {pid} has no tasks left"));
    }
    // Anything else the kernel holds in D state (a lock the step waits on may be theirs).
    for (p, t) in all_tasks() {
        if p != pid && state(p, t) == Some('D') {
            parts.push(describe(p, t));
        }
    }
    format!("tasks: {}", parts.join(" | "))
}

fn tasks_of(pid: u32) -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

fn all_tasks() -> Vec<(u32, u32)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .flat_map(|p| tasks_of(p).into_iter().map(move |t| (p, t)))
        .collect()
}

fn task_file(pid: u32, tid: u32, file: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/{file}")).ok()
}

/// The state letter from `stat` (after the command name, which may hold spaces).
fn state(pid: u32, tid: u32) -> Option<char> {
    let stat = task_file(pid, tid, "stat")?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

fn describe(pid: u32, tid: u32) -> String {
    let comm = task_file(pid, tid, "comm").unwrap_or_default();
    let wchan = task_file(pid, tid, "wchan").unwrap_or_default();
    let stack = task_file(pid, tid, "stack").map(|s| frames(&s));
    format!(
        "{} {pid}/{tid} state {} wchan {}: {}",
        comm.trim(),
        state(pid, tid).unwrap_or('?'),
        if wchan.is_empty() || wchan == "0" {
            "-"
        } else {
            wchan.trim()
        },
        stack.unwrap_or_else(|| "(no kernel stack readable)".into())
    )
}

/// The first frames of a `/proc/.../stack`: `[<0>] do_sys_poll+0x3e2/0x5a0` → `do_sys_poll`.
fn frames(stack: &str) -> String {
    let f: Vec<&str> = stack
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|f| f.split('+').next().unwrap_or(f))
        .take(8)
        .collect();
    if f.is_empty() {
        "(empty kernel stack: running in user space)".into()
    } else {
        f.join(" < ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn frames_keep_the_symbols_in_order() {
        let s = "[<0>] futex_wait_queue+0x60/0x90\n[<0>] futex_wait+0x185/0x270\n[<0>] do_syscall_64+0x82/0x190\n";
        assert_eq!(frames(s), "futex_wait_queue < futex_wait < do_syscall_64");
        assert_eq!(frames(""), "(empty kernel stack: running in user space)");
    }

    #[test]
    fn a_step_past_its_limit_is_killed_and_described() {
        let child = Command::new("sleep")
            .arg("30")
            .stdout(Stdio::piped())
            .spawn()
            .expect("sleep runs");
        let pid = child.id();
        let t0 = Instant::now();
        let e = wait_limited(child, Duration::from_millis(300), "sleep 30").unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(10), "killed in time");
        assert!(
            e.starts_with("sleep 30 did not finish within 0.3 s and was killed; tasks: sleep "),
            "{e}"
        );
        assert!(e.contains(&format!("{pid}/{pid} state S")), "{e}");
    }

    #[test]
    fn a_step_within_its_limit_gives_its_output() {
        let child = Command::new("echo")
            .arg("hello")
            .stdout(Stdio::piped())
            .spawn()
            .expect("echo runs");
        let out = wait_limited(child, Duration::from_secs(30), "echo").expect("in time");
        assert!(out.status.success());
        assert_eq!(out.stdout, b"hello\n");
    }
}
