//! Robustness: a closed stdout, the signals that end a run, SIGKILL, private recordings,
//! a held command whose tracer is gone, and two tracers at once.

use std::{
    os::unix::fs::PermissionsExt as _,
    process::{Command, Stdio},
    time::Duration,
};

use hf_lab::bpf_objects::Census;

use crate::*;

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("hf-robust-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
}

#[test]
fn a_closed_stdout_ends_the_run_quietly_with_141_and_detached() {
    if !root_or_skip("a_closed_stdout_ends_the_run_quietly_with_141_and_detached") {
        return;
    }
    let before = Census::now().expect("the kernel's BPF lists");
    // The reader is gone before the report is written; with -i the run ends at the first
    // interval it cannot print, without waiting for a duration or a signal.
    for args in [
        "-d 1 --json",
        "-i 0.3",
        "-d 1 --json-stream",
        "run --json -- true",
    ] {
        let out = Command::new("bash")
            .args(["-c", &format!("set -o pipefail; {} {args} | true", hf())])
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{args}: {err}");
        // The attach summary, and nothing after it: no error, no panic.
        assert!(
            err.starts_with("huge-fault: tracing in ")
                && err.lines().skip(1).all(|l| l.starts_with("  ")),
            "{args}: {err}"
        );
    }
    assert_eq!(Census::settles_to(&before, Duration::from_secs(5)), None);
}

#[test]
fn sigterm_sighup_and_sigpipe_end_the_run_with_its_report() {
    if !root_or_skip("sigterm_sighup_and_sigpipe_end_the_run_with_its_report") {
        return;
    }
    for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGPIPE] {
        let (child, _) = start(&["--json"]);
        let truth = workload(&["anon", "--size", "2M", "--thp", "never"]);
        std::thread::sleep(Duration::from_millis(200));
        signal(&child, sig);
        let (report, status) = finish(child);
        assert!(status.success(), "signal {sig}: {status}");
        assert_eq!(report["ended_by"], "signal");
        assert_eq!(vma_row(&report, &truth)["faults"], 512, "signal {sig}");
    }
}

#[test]
fn sigkill_leaves_nothing_in_the_kernel_and_a_readable_partial_recording() {
    if !root_or_skip("sigkill_leaves_nothing_in_the_kernel_and_a_readable_partial_recording") {
        return;
    }
    let d = scratch("kill");
    let path = d.join("run.hfrec");
    let before = Census::now().expect("the kernel's BPF lists");
    let (child, _) = start(&["--record", path.to_str().unwrap()]);
    let attached = Census::now().unwrap();
    assert!(
        attached.left_over(&before).is_some(),
        "the census sees the tracer's programs"
    );
    let truth = workload(&["anon", "--size", "1M", "--thp", "never"]);
    // The recording is flushed every interval (1 s).
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, libc::SIGKILL);
    let _ = child.wait_with_output();
    assert_eq!(Census::settles_to(&before, Duration::from_secs(10)), None);
    assert!(!path.exists(), "only the partial file until the end");
    let partial = d.join("run.hfrec.partial");
    let mode = std::fs::metadata(&partial).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let out = Command::new(hf())
        .args(["report", "--json", partial.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("without its trailer (the run was cut off)"),
        "{err}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("the report before the cut");
    assert_eq!(vma_row(&report, &truth)["faults"], 256);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn recordings_are_private_and_replace_nothing_without_force() {
    if !root_or_skip("recordings_are_private_and_replace_nothing_without_force") {
        return;
    }
    let d = scratch("private");
    let path = d.join("r.hfrec");
    let p = path.to_str().unwrap();
    hf_ok(&["-d", "0.5", "--json", "--record", p]);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!d.join("r.hfrec.partial").exists());
    let first = std::fs::read(&path).unwrap();
    let out = Command::new(hf())
        .args(["-d", "0.5", "--record", p])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read(&path).unwrap(), first, "not replaced");
    hf_ok(&["-d", "0.5", "--json", "--record", p, "--force"]);
    assert_ne!(
        std::fs::read(&path).unwrap(),
        first,
        "replaced with --force"
    );
    // Another user cannot read it: the file mode says so, not the tool.
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            hf(),
            "report",
            p,
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.ends_with("Permission denied (os error 13)\n"), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_held_command_does_not_run_once_its_tracer_is_gone() {
    use std::os::unix::process::CommandExt as _;
    let d = scratch("held");
    let marker = d.join("ran");
    let mut fds = [0i32; 2];
    // SAFETY: pipe fills the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (read_fd, write_fd) = (fds[0], fds[1]);
    // The tracer's end closes without a byte written: it died before releasing.
    // SAFETY: our own descriptor.
    unsafe { libc::close(write_fd) };
    let mut cmd = Command::new(hf());
    cmd.args([
        "--internal-hold-then-exec",
        "/bin/sh",
        "sh",
        "-c",
        &format!("touch {}", marker.display()),
    ]);
    // SAFETY: dup2 is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(read_fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    // SAFETY: our own descriptor.
    unsafe { libc::close(read_fd) };
    assert_eq!(out.status.code(), Some(125));
    assert!(!marker.exists(), "the command ran untraced");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn two_tracers_at_once_and_one_started_while_another_detaches_count_exactly() {
    if !root_or_skip("two_tracers_at_once_and_one_started_while_another_detaches_count_exactly") {
        return;
    }
    let (a, _) = start(&["--json", "--comm", "hf-workload"]);
    let (b, _) = start(&["--json"]);
    let first = workload(&["anon", "--size", "8M", "--thp", "never"]);
    std::thread::sleep(Duration::from_millis(200));
    // A detaches while C attaches.
    sigint(&a);
    let (c, _) = start(&["--json"]);
    let (ra, _) = finish(a);
    let second = workload(&["anon", "--size", "4M", "--thp", "never"]);
    std::thread::sleep(Duration::from_millis(200));
    sigint(&b);
    sigint(&c);
    let (rb, _) = finish(b);
    let (rc, _) = finish(c);
    assert_eq!(vma_row(&ra, &first)["faults"], 2048);
    assert_eq!(vma_row(&rb, &first)["faults"], 2048);
    assert_eq!(vma_row(&rb, &second)["faults"], 1024);
    assert_eq!(vma_row(&rc, &second)["faults"], 1024);
    for r in [&ra, &rb, &rc] {
        assert_eq!(r["loss"]["ringbuf_drops"], 0);
    }
}
