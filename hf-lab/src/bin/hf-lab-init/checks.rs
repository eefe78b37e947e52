//! Checks of a whole boot: the replay of the kprobe pass's recording, and the kernel log.

use std::process::Command;

use hf_lab::{
    protocol::{Line, ScenarioResult},
    scenarios::KERNEL_LOG_ALARMS,
};
use serde_json::Value;

/// `huge-fault report --json` of the run's recording must print the live run's JSON.
pub fn replay_check(path: &str, live: &Value, kernel: &str, mode: &str) -> ScenarioResult {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let out = Command::new("/bin/huge-fault")
        .args(["report", "--json", path])
        .output();
    let reason = match out {
        Err(e) => Some(format!("cannot run huge-fault report: {e}")),
        Ok(o) if !o.status.success() => Some(format!(
            "huge-fault report failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(o) => match serde_json::from_slice::<Value>(&o.stdout) {
            Err(e) => Some(format!("the replay printed no JSON: {e}")),
            Ok(v) if v == *live => None,
            Ok(v) => Some(format!(
                "the replay differs from the live report: {}",
                first_difference(live, &v, "")
            )),
        },
    };
    // The same recording as a user reads it, for the serial log.
    if let Ok(o) = Command::new("/bin/huge-fault")
        .args(["report", "--top", "80", path])
        .output()
    {
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            println!("init: [report] {l}");
        }
    }
    // `hf.save-recording`: the recording goes to the host too, in hex lines on the console.
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    if cmdline.split_whitespace().any(|w| w == "hf.save-recording")
        && let Ok(bytes) = std::fs::read(path)
    {
        for chunk in bytes.chunks(512) {
            let line = Line::File {
                name: format!("lab-{mode}.hfrec"),
                bytes: chunk.to_vec(),
            };
            println!("{line}");
        }
    }
    let _ = std::fs::remove_file(path);
    println!(
        "init: [{mode}] replay of the recording ({size} bytes): {}",
        reason.as_deref().unwrap_or("same JSON as the live run")
    );
    ScenarioResult::verdict("replay-recording", kernel, mode, reason)
}

/// The first path where two JSON values differ, with both values.
fn first_difference(a: &Value, b: &Value, at: &str) -> String {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                match y.get(k) {
                    Some(vb) if va == vb => {}
                    Some(vb) => return first_difference(va, vb, &format!("{at}.{k}")),
                    None => return format!("{at}.{k} missing in the replay"),
                }
            }
            format!("{at}: keys only in the replay")
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find(|(_, (p, q))| p != q)
            .map(|(i, (p, q))| first_difference(p, q, &format!("{at}[{i}]")))
            .unwrap_or_default(),
        _ => format!("{at}: live {a} replay {b}"),
    }
}

/// The kernel log after every run: a warning, BUG, oops or stack trace anywhere (the lab
/// driver's bad requests included) fails the boot.
pub fn kernel_log_check(kernel: &str) -> ScenarioResult {
    const SYSLOG_ACTION_READ_ALL: i32 = 3;
    const SYSLOG_ACTION_SIZE_BUFFER: i32 = 10;
    // SAFETY: klogctl with a buffer of the size it reports.
    let text = unsafe {
        let size = libc::klogctl(SYSLOG_ACTION_SIZE_BUFFER, std::ptr::null_mut(), 0).max(1 << 16);
        let mut buf = vec![0u8; size as usize];
        let n = libc::klogctl(SYSLOG_ACTION_READ_ALL, buf.as_mut_ptr().cast(), size);
        buf.truncate(n.max(0) as usize);
        String::from_utf8_lossy(&buf).into_owned()
    };
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| KERNEL_LOG_ALARMS.iter().any(|m| l.contains(m)))
        .take(5)
        .collect();
    let reason = (!bad.is_empty()).then(|| format!("kernel log: {}", bad.join(" | ")));
    ScenarioResult::verdict("kernel-log", kernel, "-", reason)
}

/// A tracer killed with SIGKILL in `mode` (after attaching everything it attaches) leaves
/// no BPF program, map or link and no kprobe or uprobe event behind.
pub fn sigkill_check(kernel: &str, mode: &str) -> ScenarioResult {
    use hf_lab::bpf_objects::Census;
    use std::io::BufRead as _;
    let result = |reason: Option<String>| {
        println!(
            "init: [{mode}] after kill -9: {}",
            reason.as_deref().unwrap_or("nothing left in the kernel")
        );
        ScenarioResult::verdict("sigkill-cleanup", kernel, mode, reason)
    };
    let before = match Census::now() {
        Ok(c) => c,
        Err(e) => return result(Some(format!("cannot list BPF objects: {e}"))),
    };
    let mut child = match Command::new("/bin/huge-fault")
        .args(["--mode", mode, "--json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return result(Some(format!("cannot start huge-fault: {e}"))),
    };
    // The first line of the attach summary comes once everything is attached.
    let mut err = std::io::BufReader::new(child.stderr.take().expect("piped"));
    let mut line = String::new();
    let _ = err.read_line(&mut line);
    if !line.starts_with("huge-fault: tracing in ") {
        let _ = child.kill();
        let _ = child.wait();
        return result(Some(format!("huge-fault did not attach: {}", line.trim())));
    }
    let during = Census::now().ok();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    if during.is_none_or(|d| d.left_over(&before).is_none()) {
        return result(Some("the census did not see the tracer's programs".into()));
    }
    result(Census::settles_to(
        &before,
        std::time::Duration::from_secs(10),
    ))
}
