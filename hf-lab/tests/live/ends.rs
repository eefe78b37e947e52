//! How runs end, and the one-line errors.

use std::process::Command;

use crate::*;

#[test]
fn duration_ends_the_run_with_a_summary() {
    if !root_or_skip("duration_ends_the_run_with_a_summary") {
        return;
    }
    let t = Instant::now();
    let out = Command::new(hf()).args(["-d", "1"]).output().expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(t.elapsed() < Duration::from_secs(30));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(" faults in "), "no summary line:\n{text}");
    assert!(text.contains("lost: "), "no loss line:\n{text}");
    assert!(text.contains("FAULTS"), "no table:\n{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("huge-fault: tracing in "),
        "no attach summary:\n{err}"
    );
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    if !root_or_skip("bad_input_is_one_line_and_exit_1") {
        return;
    }
    let cases: [(&[&str], &str); 4] = [
        (
            &["--btf", "/nonexistent/vmlinux", "-d", "1"],
            "no BTF at /nonexistent/vmlinux",
        ),
        (&["--btf", "/proc/self/status", "-d", "1"], "is not usable"),
        (&["-p", "4000000", "-d", "1"], "no process with pid 4000000"),
        (
            &["--huge-fault-handler", "no_such_handler_xyz", "-d", "1"],
            "no function matches --huge-fault-handler no_such_handler_xyz",
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(hf()).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: not one line:\n{err}");
        assert!(
            err.starts_with("huge-fault: error: ") && err.contains(want),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn without_privileges_it_says_so_in_one_line() {
    if !root_or_skip("without_privileges_it_says_so_in_one_line") {
        return;
    }
    // Drop to nobody with no capabilities.
    let out = match Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            hf(),
            "-d",
            "1",
        ])
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipped: setpriv not available ({e})");
            return;
        }
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("must run as root"), "{err}");
}
