//! Recordings that replay to the live report, and the NDJSON stream.

use std::process::Command;

use crate::{run::report_after_command_output, *};

#[test]
fn a_recording_replays_to_the_same_report() {
    if !root_or_skip("a_recording_replays_to_the_same_report") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("hf-live-rec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("run.hfrec");
    let out = Command::new(hf())
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
    let replay = Command::new(hf())
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
    let out = Command::new(hf())
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
