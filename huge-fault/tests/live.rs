//! Runs the real `huge-fault` binary on this machine's kernel, in whatever mode it allows,
//! against `hf-workload`, and compares the numbers with the workload's own ground truth:
//! the VMA range it printed and its getrusage minflt delta around the touch loop.
//! Also checks how runs end (--duration, SIGINT) and the one-line errors.
//!
//! Needs root. Without it these tests say so and pass, unless HUGE_FAULT_REQUIRE_ROOT=1
//! (set by `cargo xtask test`).

use std::{
    io::{BufRead as _, BufReader, Read as _},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

const HF: &str = env!("CARGO_BIN_EXE_huge-fault");
const WORKLOAD: &str = env!("CARGO_BIN_EXE_hf-workload");

fn root_or_skip(test: &str) -> bool {
    if huge_fault::live::check_privileges().is_ok() {
        return true;
    }
    if std::env::var("HUGE_FAULT_REQUIRE_ROOT").is_ok_and(|v| v == "1") {
        panic!("{test} needs root");
    }
    eprintln!("{test} skipped: not root");
    false
}

/// Starts huge-fault and waits until it has attached (its summary's first line).
fn start(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(HF)
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

fn finish(child: Child) -> (Value, std::process::ExitStatus) {
    let out = child.wait_with_output().expect("huge-fault ends");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{text}"));
    (v, out.status)
}

fn sigint(child: &Child) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
}

fn workload(args: &[&str]) -> Value {
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
fn held_workload(args: &str) -> std::process::Child {
    Command::new("sh")
        .args(["-c", &format!("read x; exec {WORKLOAD} {args}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh runs")
}

/// Lets a held workload run; returns its ground truth.
fn release(mut held: std::process::Child) -> Value {
    use std::io::Write as _;
    held.stdin.take().unwrap().write_all(b"go\n").unwrap();
    serde_json::from_slice(&held.wait_with_output().unwrap().stdout).expect("workload JSON")
}

/// Runs huge-fault to completion and requires success.
fn hf_ok(args: &[&str]) -> std::process::Output {
    let out = Command::new(HF)
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

fn vma_row<'a>(report: &'a Value, truth: &Value) -> &'a Value {
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

#[test]
fn fault_counts_per_vma_match_the_workload_exactly() {
    if !root_or_skip("fault_counts_per_vma_match_the_workload_exactly") {
        return;
    }
    let (child, summary) = start(&["--json"]);
    // Three runs: 4 KiB pages without THP (one fault per page), a sparse stride, and a
    // second process at the same time as the first finishes.
    let a = workload(&["anon", "--size", "8M", "--thp", "never"]);
    let b = workload(&["anon", "--size", "16M", "--stride", "64K", "--thp", "never"]);
    let c = workload(&["anon", "--size", "4M", "--thp", "never", "--hold-ms", "200"]);
    std::thread::sleep(Duration::from_millis(300));
    sigint(&child);
    let (report, status) = finish(child);
    assert!(status.success(), "huge-fault exited with {status}");
    assert_eq!(report["schema"], "huge-fault.report");
    assert_eq!(report["version"], 3);
    assert_eq!(report["ended_by"], "signal");
    eprintln!("{summary}mode {}", report["mode"]);
    for (truth, pages) in [(&a, 2048), (&b, 256), (&c, 1024)] {
        // The workload's own arithmetic and its getrusage delta agree ...
        assert_eq!(truth["touches"], pages);
        assert_eq!(truth["minflt"], pages, "getrusage: {truth}");
        assert_eq!(truth["majflt"], 0);
        // ... and the tool saw exactly that many faults in that VMA, no more, no less.
        let row = vma_row(&report, truth);
        assert_eq!(row["faults"], pages, "tool vs workload for {truth}: {row}");
        assert_eq!(row["writes"], pages, "every touch is a write: {row}");
        assert_eq!(row["major"], 0);
        assert_eq!(row["kind"], "anon");
        assert_eq!(row["size_bytes"], truth["size"]);
        assert_eq!(row["latency_ns"]["count"], pages);
    }
    assert_eq!(report["loss"]["ringbuf_drops"], 0);
}

#[test]
fn pid_filter_keeps_only_that_process() {
    if !root_or_skip("pid_filter_keeps_only_that_process") {
        return;
    }
    // A process that waits for a line on stdin before touching memory, so that the tool can
    // attach to its pid first.
    let target = held_workload("anon --size 2M --thp never");
    let pid = target.id().to_string();
    let (child, _) = start(&["--json", "-p", &pid]);
    let other = workload(&["anon", "--size", "1M", "--thp", "never"]);
    let truth = release(target);
    assert_eq!(truth["pid"].to_string(), pid, "exec keeps the pid");
    std::thread::sleep(Duration::from_millis(200));
    sigint(&child);
    let (report, _) = finish(child);
    let procs = report["processes"].as_array().unwrap();
    assert!(
        procs.iter().all(|p| p["pid"].as_u64() == pid.parse().ok()),
        "other processes leaked in: {procs:?}"
    );
    assert_eq!(vma_row(&report, &truth)["faults"], 512);
    assert!(
        !report["vmas"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["pid"] == other["pid"]),
        "the unfiltered workload must not appear"
    );
    assert_eq!(report["filter_pid"].to_string(), pid);
}

#[test]
fn duration_ends_the_run_with_a_summary() {
    if !root_or_skip("duration_ends_the_run_with_a_summary") {
        return;
    }
    let t = Instant::now();
    let out = Command::new(HF).args(["-d", "1"]).output().expect("runs");
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
        let out = Command::new(HF).args(args).output().unwrap();
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
            HF,
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

/// The JSON report at the end of stdout, after whatever the traced command printed.
fn report_after_command_output(stdout: &[u8]) -> (Vec<Value>, Value) {
    let text = String::from_utf8_lossy(stdout);
    let start = text.find("{\n").expect("a pretty-printed report on stdout");
    let lines = text[..start]
        .lines()
        .map(|l| serde_json::from_str(l).expect("workload line"))
        .collect();
    (
        lines,
        serde_json::from_str(&text[start..]).expect("report JSON"),
    )
}

#[test]
fn run_traces_a_command_and_its_children_exactly() {
    if !root_or_skip("run_traces_a_command_and_its_children_exactly") {
        return;
    }
    let script = format!(
        "{WORKLOAD} anon --size 4M --thp never && {WORKLOAD} anon --size 2M --stride 8K --thp never"
    );
    let out = hf_ok(&["run", "--json", "--", "sh", "-c", &script]);
    let (truths, report) = report_after_command_output(&out.stdout);
    assert_eq!(report["ended_by"], "command-exit");
    assert_eq!(truths.len(), 2);
    for (truth, pages) in truths.iter().zip([1024, 256]) {
        assert_eq!(truth["minflt"], pages);
        assert_eq!(vma_row(&report, truth)["faults"], pages, "{truth}");
    }
    // Only the command's tree: the shell and its two children.
    let procs = report["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 3, "{procs:?}");
    assert!(
        procs
            .iter()
            .all(|p| p["comm"] == "sh" || p["comm"] == "hf-workload"),
        "{procs:?}"
    );
}

#[test]
fn run_returns_the_commands_failure_and_threshold_verdicts() {
    if !root_or_skip("run_returns_the_commands_failure_and_threshold_verdicts") {
        return;
    }
    let out = Command::new(HF)
        .args(["run", "--", "sh", "-c", "exit 7"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("failed with status 7"));
    // A command that cannot be started: 127, as from a shell, with the reason.
    let out = Command::new(HF)
        .args(["run", "--", "/nonexistent/cmd"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(127), "{err}");
    assert!(
        err.contains("cannot run /nonexistent/cmd: No such file or directory"),
        "{err}"
    );

    let run = |args: &[&str]| {
        let out = Command::new(HF)
            .args(["run"])
            .args(args)
            .args(["--", WORKLOAD, "anon", "--size", "1M", "--thp", "never"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The workload faults at least 256 times (1 MiB of 4 KiB pages).
    let (code, err) = run(&["--fail-if", "faults < 256", "--fail-if", "drops > 0"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("threshold `faults < 256` passed"), "{err}");
    let (code, err) = run(&["--fail-if", "faults > 100"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("threshold `faults > 100` FAILED: faults is "),
        "{err}"
    );
    // Sizes are not visible in tracepoint-only mode: the check cannot pass silently.
    let (code, err) = run(&["--mode", "tracepoint", "--fail-if", "pmd_share < 90%"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("cannot be checked: pmd_share not measured in this mode"),
        "{err}"
    );
    // The same verdicts as JUnit XML: one failed and one passed threshold, and the command.
    let junit = std::env::temp_dir().join(format!("hf-junit-{}.xml", std::process::id()));
    let j = junit.to_str().unwrap();
    let (code, err) = run(&[
        "--junit",
        j,
        "--fail-if",
        "faults > 100",
        "--fail-if",
        "drops > 0",
    ]);
    assert_eq!(code, Some(1), "{err}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("tests=\"3\" failures=\"1\""), "{xml}");
    assert!(xml.contains("name=\"faults &gt; 100\""), "{xml}");
    assert!(xml.contains("classname=\"huge-fault.command\""), "{xml}");
    std::fs::remove_file(&junit).unwrap();
}

#[test]
fn a_recording_replays_to_the_same_report() {
    if !root_or_skip("a_recording_replays_to_the_same_report") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("hf-live-rec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("run.hfrec");
    let out = Command::new(HF)
        .args(["run", "--json", "--record"])
        .arg(&file)
        .args(["--", WORKLOAD, "anon", "--size", "2M", "--thp", "never"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, live) = report_after_command_output(&out.stdout);
    // Replaying needs no privileges and no kernel.
    let replay = Command::new(HF)
        .args(["report", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let replayed: Value = serde_json::from_slice(&replay.stdout).unwrap();
    assert_eq!(
        replayed, live,
        "the replay must give the live report exactly"
    );
    assert!(live["totals"]["faults"].as_u64().unwrap() >= 512);

    // Cut the file: what came before is still reported, the error names the offset.
    let bytes = std::fs::read(&file).unwrap();
    let cut = dir.join("cut.hfrec");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = Command::new(HF)
        .args(["report", "--json"])
        .arg(&cut)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("at offset") && err.contains("reported the"),
        "{err}"
    );
    let partial: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (p, l) = (
        partial["totals"]["faults"].as_u64().unwrap(),
        live["totals"]["faults"].as_u64().unwrap(),
    );
    assert!(p > 0 && p < l, "partial {p} of {l}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn symbols_resolves_rust_paths_from_a_kallsyms_listing() {
    // No privileges needed: a real kernel's Rust symbols, from a file.
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/kallsyms-rust-debian-7.2.13.txt"
    );
    let out = hf_ok(&[
        "symbols",
        "core::str::slice_error_fail",
        "--kallsyms",
        fixture,
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "_RNvNtCsbZfwWpAStWS_4core3str16slice_error_fail\tcore::str::slice_error_fail\t\n"
    );
    let out = Command::new(HF)
        .args(["symbols", "kernel::nothing::*", "--kallsyms", fixture])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no kernel function matches"));
}

#[test]
fn json_stream_prints_one_report_per_interval_then_the_final_one() {
    if !root_or_skip("json_stream_prints_one_report_per_interval_then_the_final_one") {
        return;
    }
    let script = format!("sleep 1.2; {WORKLOAD} anon --size 1M --thp never");
    let out = hf_ok(&[
        "run",
        "--json-stream",
        "-i",
        "0.3",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON line"))
        .collect();
    let reports: Vec<&Value> = lines
        .iter()
        .filter(|v| v["schema"] == "huge-fault.report")
        .collect();
    assert!(reports.len() >= 3, "{} reports", reports.len());
    let (last, earlier) = reports.split_last().unwrap();
    assert!(earlier.iter().all(|r| r["ended_by"] == "running"));
    assert_eq!(last["ended_by"], "command-exit");
    let truth = lines
        .iter()
        .find(|v| v.get("vma_start").is_some())
        .expect("workload line");
    assert_eq!(vma_row(last, truth)["faults"], 256);
}

#[test]
fn comm_and_cgroup_filters_keep_only_their_tasks() {
    if !root_or_skip("comm_and_cgroup_filters_keep_only_their_tasks") {
        return;
    }
    // --comm: the workload is kept, the shell around it is not.
    let script = format!("{WORKLOAD} anon --size 1M --thp never");
    let out = hf_ok(&[
        "run",
        "--json",
        "--comm",
        "hf-workload",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let (truths, report) = report_after_command_output(&out.stdout);
    let procs = report["processes"].as_array().unwrap();
    assert!(
        !procs.is_empty() && procs.iter().all(|p| p["comm"] == "hf-workload"),
        "{procs:?}"
    );
    assert_eq!(vma_row(&report, &truths[0])["faults"], 256);

    // --cgroup: a process moved into a fresh cgroup v2 directory is the only one seen.
    let root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .find(|r| std::path::Path::new(r).join("cgroup.controllers").exists());
    let Some(root) = root else {
        eprintln!("cgroup part skipped: no cgroup v2 hierarchy mounted");
        return;
    };
    let cg = std::path::Path::new(root).join(format!("hf-test-{}", std::process::id()));
    std::fs::create_dir(&cg).unwrap();
    let target = held_workload("anon --size 2M --thp never");
    std::fs::write(cg.join("cgroup.procs"), target.id().to_string()).unwrap();
    let (child, _) = start(&["--json", "--cgroup", cg.to_str().unwrap()]);
    let other = workload(&["anon", "--size", "1M", "--thp", "never"]);
    let truth = release(target);
    std::thread::sleep(Duration::from_millis(200));
    sigint(&child);
    let (report, _) = finish(child);
    let _ = std::fs::remove_dir(&cg);
    let procs = report["processes"].as_array().unwrap();
    assert!(procs.iter().all(|p| p["pid"] == truth["pid"]), "{procs:?}");
    assert_eq!(vma_row(&report, &truth)["faults"], 512);
    assert!(
        !report["vmas"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["pid"] == other["pid"])
    );
}

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
    let cmd = format!("{HF} -i 1 -d 30 --comm hf-workload; sleep 60");
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

/// A ring buffer far too small for the storm (4 KiB: 13 records) loses nothing: the
/// faults that find it full are counted in the kernel by class, and the VMA row still
/// matches the workload exactly. With `--aggregate` no record is written at all, and the
/// numbers are the same. Both runs are recorded, and each replay equals its live report.
#[test]
fn a_full_ring_buffer_and_aggregate_mode_still_count_every_fault() {
    if !root_or_skip("a_full_ring_buffer_and_aggregate_mode_still_count_every_fault") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("hf-live-agg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, extra) in [
        ("ring-full", ["--ring-buffer-kib", "4"].as_slice()),
        ("aggregate", ["--aggregate"].as_slice()),
    ] {
        let rec = dir.join(format!("{name}.hfrec"));
        let rec_arg = rec.to_str().unwrap();
        let mut args = vec!["run", "--json", "--record", rec_arg];
        args.extend(extra);
        args.extend(["--", WORKLOAD, "anon", "--size", "64M", "--thp", "never"]);
        let out = hf_ok(&args);
        let (truths, report) = report_after_command_output(&out.stdout);
        let truth = &truths[0];
        assert_eq!(truth["minflt"], 16384, "{truth}");
        let row = vma_row(&report, truth);
        assert_eq!(row["faults"], 16384, "{name}: {row}");
        assert_eq!(row["writes"], 16384, "{name}: {row}");
        assert_eq!(row["latency_ns"]["count"], 16384, "{name}: {row}");
        let loss = &report["loss"];
        assert_eq!(loss["ringbuf_drops"], 0, "{name}: {loss}");
        let agg = &report["aggregation"];
        let records = report["kernel_counters"]["records_submitted"]
            .as_u64()
            .unwrap();
        let calls = agg["calls"].as_u64().unwrap();
        if name == "aggregate" {
            assert_eq!(agg["all"], true);
            assert_eq!(records, 0, "{agg}");
            assert!(calls >= 16384, "{agg}");
        } else {
            assert_eq!(agg["all"], false);
            // Most of the storm found the ring full; every such call is in the tables.
            assert!(calls > 8192, "{agg}");
            assert_eq!(agg["ring_full"], calls, "{agg}");
            assert!(records > 0, "{agg}");
        }
        // What the kernel counted is what the tables hold: total calls seen.
        let t = &report["totals"];
        let total_calls = t["faults"].as_u64().unwrap() + t["retry_calls"].as_u64().unwrap_or(0);
        assert_eq!(total_calls, records + calls, "{name}: {t}");
        // The replay of the recording gives the same report.
        let replay = hf_ok(&["report", "--json", rec_arg]);
        let replayed: Value = serde_json::from_slice(&replay.stdout).expect("replay JSON");
        for k in ["totals", "processes", "vmas", "aggregation", "loss"] {
            assert_eq!(replayed[k], report[k], "{name}: {k} differs after replay");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
