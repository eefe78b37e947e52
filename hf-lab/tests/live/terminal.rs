//! The live table in a real terminal (tmux).

use std::process::Command;

use crate::*;

/// The live table in a real terminal: huge-fault under tmux with `-i 1`, a workload faults,
/// and the captured screen shows the header and the workload's VMA row with its exact
/// fault count, redrawn in place.
#[test]
fn the_live_table_redraws_in_a_terminal() {
    if !root_or_skip("the_live_table_redraws_in_a_terminal") {
        return;
    }
    let tmux = |args: &[&str]| Command::new("tmux").args(args).output();
    if tmux(&["-V"]).is_err() {
        if std::env::var("HUGE_FAULT_REQUIRE_ROOT").is_ok_and(|v| v == "1") {
            panic!("the live-table test needs tmux (cargo xtask test installs it)");
        }
        eprintln!("the_live_table_redraws_in_a_terminal skipped: no tmux");
        return;
    }
    let session = format!("hf-live-{}", std::process::id());
    let cmd = format!("{} -i 1 -d 30 --comm hf-workload; sleep 60", hf());
    let out = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "250",
        "-y",
        "60",
        &cmd,
    ])
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let screen = || {
        let o = tmux(&["capture-pane", "-p", "-t", &session]).unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let wait_for = |what: &dyn Fn(&str) -> bool, why: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = screen();
            if what(&s) {
                return s;
            }
            if Instant::now() > deadline {
                let _ = tmux(&["kill-session", "-t", &session]);
                panic!("{why}; the screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    // The first redraw: the header line with the mode, records/s and drops.
    let first = wait_for(&|s| s.contains("records/s"), "no live header");
    assert!(first.contains("ring-buffer drops"), "{first}");
    let truth = workload(&["anon", "--size", "8M", "--thp", "never"]);
    let range = format!(
        "{}-{}",
        truth["vma_start"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        truth["vma_end"].as_str().unwrap().trim_start_matches("0x")
    );
    // A later redraw holds the workload's VMA with its 2048 faults.
    let s = wait_for(
        &|s| {
            s.lines()
                .any(|l| l.contains(&range) && l.contains(" 2048 "))
        },
        "no VMA row with the workload's 2048 faults",
    );
    let _ = tmux(&["kill-session", "-t", &session]);
    assert_eq!(truth["minflt"], 2048);
    // Redrawn in place: one header on the screen, at the top.
    assert_eq!(s.matches("records/s").count(), 1, "{s}");
    assert!(s.trim_start().starts_with("huge-fault: "), "{s}");
    assert!(s.contains("FAULTS/S"), "{s}");
}
