//! Runs the real `huge-fault` binary on this machine's kernel, in whatever mode it allows,
//! against `hf-workload`, and compares the numbers with the workload's own ground truth:
//! the VMA range it printed and its getrusage minflt delta around the touch loop.
//! Also checks how runs end (--duration, SIGINT) and the one-line errors.
//!
//! Needs root. Without it these tests say so and pass, unless HUGE_FAULT_REQUIRE_ROOT=1
//! (set by `cargo xtask test`).
//!
//! The binary under test is a built artefact of the huge-fault package: `$HUGE_FAULT_BIN`,
//! else `huge-fault` beside this test's own profile directory (`cargo xtask test` builds it
//! first).

mod bad_input;
mod counts;
mod ends;
mod metrics;
mod recording;
mod robust;
mod run;
mod terminal;

use std::{
    io::{BufRead as _, BufReader, Read as _},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

pub(crate) const WORKLOAD: &str = env!("CARGO_BIN_EXE_hf-workload");

/// The huge-fault binary: `$HUGE_FAULT_BIN`, else `target/PROFILE/huge-fault` (this test
/// runs from `target/PROFILE/deps/`).
fn hf() -> &'static str {
    static HF: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        if let Ok(p) = std::env::var("HUGE_FAULT_BIN") {
            return p;
        }
        let exe = std::env::current_exe().expect("the test's path");
        let bin = exe
            .parent()
            .and_then(|deps| deps.parent())
            .map(|profile| profile.join("huge-fault"))
            .expect("target/PROFILE");
        assert!(
            bin.exists(),
            "{} not built: run `cargo build -p huge-fault` first (cargo xtask test does)",
            bin.display()
        );
        bin.to_string_lossy().into_owned()
    });
    &HF
}

pub(crate) fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("HUGE_FAULT_REQUIRE_ROOT").is_ok_and(|v| v == "1") {
        panic!("{test} needs root");
    }
    eprintln!("{test} skipped: not root");
    false
}

/// Starts huge-fault and waits until it has attached (its summary's first line).
pub(crate) fn start(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(hf())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("huge-fault starts");
    let stderr = child.stderr.take().unwrap();
    let mut reader = BufReader::new(stderr);
    let mut head = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            let mut out = String::new();
            let _ = child.stdout.take().unwrap().read_to_string(&mut out);
            panic!("huge-fault exited before attaching:\n{head}{out}");
        }
        head.push_str(&line);
        if line.starts_with("  cannot see:")
            || (line.starts_with("  ") && head.lines().count() >= 4)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no attach summary in 60 s:\n{head}"
        );
    }
    // Keep draining stderr so the tool never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
    });
    (child, head)
}

pub(crate) fn finish(child: Child) -> (Value, std::process::ExitStatus) {
    let out = child.wait_with_output().expect("huge-fault ends");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{text}"));
    (v, out.status)
}

pub(crate) fn sigint(child: &Child) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
}

pub(crate) fn workload(args: &[&str]) -> Value {
    let out = Command::new(WORKLOAD)
        .args(args)
        .output()
        .expect("hf-workload runs");
    assert!(
        out.status.success(),
        "hf-workload failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("workload JSON")
}

/// `hf-workload ARGS` behind a shell that waits for a line on stdin before exec'ing it (same
/// pid), so that the tool can attach to the pid, or the pid be moved, first.
pub(crate) fn held_workload(args: &str) -> std::process::Child {
    Command::new("sh")
        .args(["-c", &format!("read x; exec {WORKLOAD} {args}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh runs")
}

/// Lets a held workload run; returns its ground truth.
pub(crate) fn release(mut held: std::process::Child) -> Value {
    use std::io::Write as _;
    held.stdin.take().unwrap().write_all(b"go\n").unwrap();
    serde_json::from_slice(&held.wait_with_output().unwrap().stdout).expect("workload JSON")
}

/// Runs huge-fault to completion and requires success.
pub(crate) fn hf_ok(args: &[&str]) -> std::process::Output {
    let out = Command::new(hf())
        .args(args)
        .output()
        .expect("huge-fault runs");
    assert!(
        out.status.success(),
        "huge-fault {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub(crate) fn vma_row<'a>(report: &'a Value, truth: &Value) -> &'a Value {
    let pid = truth["pid"].as_u64().unwrap();
    report["vmas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| {
            v["pid"] == pid && v["start"] == truth["vma_start"] && v["end"] == truth["vma_end"]
        })
        .unwrap_or_else(|| {
            panic!(
                "no VMA row {} {}-{} in the report",
                pid, truth["vma_start"], truth["vma_end"]
            )
        })
}
