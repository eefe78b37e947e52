//! Fault counts per VMA against the workload's own, exactly, and the filters.

use std::time::Duration;

use crate::{run::report_after_command_output, *};

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
