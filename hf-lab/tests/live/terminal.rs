//! The full-screen live view in real terminals (tmux): 80×24, 120×40 and 200×50.

use std::process::Command;

use crate::*;

fn tmux(args: &[&str]) -> std::process::Output {
    Command::new("tmux").args(args).output().expect("tmux runs")
}

fn have_tmux(test: &str) -> bool {
    if Command::new("tmux").arg("-V").output().is_ok() {
        return true;
    }
    if std::env::var("HUGE_FAULT_REQUIRE_ROOT").is_ok_and(|v| v == "1") {
        panic!("{test} needs tmux (cargo xtask test installs it)");
    }
    eprintln!("{test} skipped: no tmux");
    false
}

/// One tmux session running `cmd` in a `cols`×`rows` window, killed when dropped.
struct Pane {
    session: String,
}

impl Pane {
    fn new(name: &str, cols: u16, rows: u16, cmd: &str) -> Pane {
        let session = format!("hf-{name}-{}", std::process::id());
        let out = tmux(&[
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
            cmd,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Pane { session }
    }

    /// The screen as lines; `joined`: lines the terminal wrapped put back together.
    fn screen(&self, joined: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", &self.session];
        if joined {
            args.push("-J");
        }
        String::from_utf8_lossy(&tmux(&args).stdout).into_owned()
    }

    fn wait_for(&self, what: &dyn Fn(&str) -> bool, why: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.screen(false);
            if what(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "{why}; the screen:\n{s}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn keys(&self, k: &str) {
        tmux(&["send-keys", "-t", &self.session, k]);
    }

    fn alternate_screen(&self) -> bool {
        let o = tmux(&["display", "-p", "-t", &self.session, "#{alternate_on}"]);
        String::from_utf8_lossy(&o.stdout).trim() == "1"
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        tmux(&["kill-session", "-t", &self.session]);
    }
}

/// `163.8µs`, `1.2ms`, `900ns`, `2.0s` in nanoseconds.
fn ns(s: &str) -> Option<f64> {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_alphabetic() || c == 'µ')?);
    let v: f64 = num.parse().ok()?;
    Some(
        v * match unit {
            "ns" => 1.0,
            "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            _ => return None,
        },
    )
}

const ESSENTIAL: [&str; 10] = [
    "PID", "COMM", "KIND", "START", "SIZE", "FAULTS/S", "FAULTS", "ENTRIES", "FALLBACK", "P99",
];

#[test]
fn the_live_view_fits_80_120_and_200_columns_sorts_on_a_key_and_gives_the_terminal_back() {
    let test =
        "the_live_view_fits_80_120_and_200_columns_sorts_on_a_key_and_gives_the_terminal_back";
    if !root_or_skip(test) || !have_tmux(test) {
        return;
    }
    for (cols, rows) in [(80u16, 24u16), (120, 40), (200, 50)] {
        let cmd = format!(
            "{} -i 1 --comm hf-workload; echo HF-EXIT=$?; sleep 60",
            hf()
        );
        let pane = Pane::new(&format!("view{cols}"), cols, rows, &cmd);
        pane.wait_for(&|s| s.contains("sort: faults/s"), "no live view");
        assert!(
            pane.alternate_screen(),
            "{cols}: the view is not full-screen"
        );
        let truth = workload(&["anon", "--size", "8M", "--thp", "never"]);
        let start = truth["vma_start"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x");
        let s = pane.wait_for(
            &|s| s.lines().any(|l| l.contains(start) && l.contains(" 2048 ")),
            &format!("{cols}: no row of the workload's VMA with its 2048 faults"),
        );
        assert_eq!(truth["minflt"], 2048);
        // Nothing wrapped: every line fits, and joining wrapped lines changes nothing.
        assert_eq!(pane.screen(true), pane.screen(false), "{cols}: wrapped");
        for l in s.lines() {
            assert!(l.chars().count() <= usize::from(cols), "{cols}: {l:?}");
        }
        let header = s
            .lines()
            .find(|l| l.trim_start().starts_with("PID COMM"))
            .unwrap_or_else(|| panic!("{cols}: no table header:\n{s}"));
        for col in ESSENTIAL {
            assert!(
                header.split_whitespace().any(|w| w == col),
                "{cols}: no {col} in {header:?}"
            );
        }
        if cols >= 120 {
            assert!(header.contains("MAPPING"), "{cols}: {header:?}");
        }
        // `l` sorts by p99: the footer says so, and the first row has the largest p99.
        pane.keys("l");
        let s = pane.wait_for(
            &|s| s.contains("sort: p99"),
            &format!("{cols}: no p99 sort"),
        );
        // Cells are right-aligned under their header: P99's cell ends where "P99" does.
        let end = header.find(" P99").expect("P99") + 4;
        let p99s: Vec<f64> = s
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("PID COMM"))
            .skip(1)
            .filter_map(|l| {
                let cut: String = l.chars().take(end).collect();
                cut.split_whitespace().last().and_then(ns)
            })
            .collect();
        assert!(!p99s.is_empty(), "{cols}: no p99 values:\n{s}");
        let top = p99s[0];
        assert!(
            p99s.iter().all(|&v| v <= top),
            "{cols}: the first row's p99 is not the largest: {p99s:?}\n{s}"
        );
        // `q` quits: the terminal is back (no alternate screen) and the report printed.
        pane.keys("q");
        let s = pane.wait_for(
            &|s| s.contains("HF-EXIT=0"),
            &format!("{cols}: q did not end it"),
        );
        assert!(
            !pane.alternate_screen(),
            "{cols}: still on the alternate screen"
        );
        assert!(s.contains(start), "{cols}: no final report row:\n{s}");
    }
}

#[test]
fn sigterm_ends_the_live_view_and_gives_the_terminal_back() {
    let test = "sigterm_ends_the_live_view_and_gives_the_terminal_back";
    if !root_or_skip(test) || !have_tmux(test) {
        return;
    }
    let comm = format!("hf-term-{}", std::process::id() % 100_000);
    let cmd = format!("{} -i 1 --comm {comm}; echo HF-EXIT=$?; sleep 60", hf());
    let pane = Pane::new("term", 80, 24, &cmd);
    pane.wait_for(&|s| s.contains("sort: faults/s"), "no live view");
    let pgrep = Command::new("pgrep")
        // The tracer's own command line, not the shell's that started it.
        .args(["-f", &format!("^{} -i 1 --comm {comm}", hf())])
        .output()
        .unwrap();
    let pid: i32 = String::from_utf8_lossy(&pgrep.stdout)
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("huge-fault's pid");
    // SAFETY: signalling the tracer this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let s = pane.wait_for(&|s| s.contains("HF-EXIT=0"), "SIGTERM did not end it");
    assert!(
        !pane.alternate_screen(),
        "still on the alternate screen:\n{s}"
    );
    assert!(s.contains(" faults in "), "no final report:\n{s}");
}
