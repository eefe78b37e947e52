//! `huge-fault run`: a command and its children, its exit status, thresholds and JUnit.

use std::process::Command;

use serde_json::Value;

use crate::*;

/// The JSON report at the end of stdout, after whatever the traced command printed.
pub(crate) fn report_after_command_output(stdout: &[u8]) -> (Vec<Value>, Value) {
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
    let out = Command::new(hf())
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
    // A command that cannot be started: 127, as from a shell, said before anything is
    // attached (no attach summary) and nothing printed.
    let out = Command::new(hf())
        .args(["run", "--", "/nonexistent/cmd"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(127), "{err}");
    assert_eq!(
        err,
        "huge-fault: error: /nonexistent/cmd: command not found\n"
    );
    assert!(out.stdout.is_empty());

    let run = |args: &[&str]| {
        let out = Command::new(hf())
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
    let suites = xml.lines().find(|l| l.starts_with("<testsuites")).unwrap();
    assert!(
        suites.contains("tests=\"3\"") && suites.contains("failures=\"1\""),
        "{xml}"
    );
    assert!(xml.contains("name=\"faults &gt; 100\""), "{xml}");
    assert!(xml.contains("classname=\"huge-fault.command\""), "{xml}");
    std::fs::remove_file(&junit).unwrap();
}
