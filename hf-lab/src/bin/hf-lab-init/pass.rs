//! One pass: huge-fault started in one mode, every scenario's workload run under it, the
//! report evaluated scenario by scenario.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader, Read as _},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use hf_lab::{
    evaluate::{self, sees_what_if, vma_rows, what_if_checks},
    parse::parse_vmstat,
    protocol::{Line, ScenarioResult, Status},
    scenarios::{self, Scenario},
};
use serde_json::Value;

use crate::{
    checks::replay_check,
    events::EventCounts,
    kprobes::{await_mthp_probe, enables_mthp},
    system::mount_or_say,
    thp_copy,
};

/// The kernel counters `keys` name: /proc/vmstat keys, or sysfs files holding one number.
fn read_counters(keys: &[&str]) -> BTreeMap<String, i64> {
    let vmstat = parse_vmstat(&std::fs::read_to_string("/proc/vmstat").unwrap_or_default());
    keys.iter()
        .filter_map(|k| {
            let v = if k.starts_with('/') {
                std::fs::read_to_string(k).ok()?.trim().parse().ok()?
            } else {
                *vmstat.get(*k)?
            };
            Some((k.to_string(), v))
        })
        .collect()
}

/// Writes sysfs values, returning the old ones to restore.
fn apply_sysfs(pairs: &[(&str, &str)]) -> Result<Vec<(String, String)>, String> {
    let mut old = Vec::new();
    for (path, value) in pairs {
        let cur = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        // "always [madvise] never" -> "madvise"
        let cur = cur
            .split_whitespace()
            .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
            .unwrap_or(cur.trim())
            .to_string();
        std::fs::write(path, value).map_err(|e| format!("{path} <- {value}: {e}"))?;
        old.push((path.to_string(), cur));
    }
    Ok(old)
}

struct Outcome {
    truth: Value,
    vmstat_delta: BTreeMap<String, i64>,
}

fn run_workload(
    s: &Scenario,
    keys: &[&str],
    mode: &str,
    version: (u32, u32),
) -> Result<Outcome, String> {
    if let Some((target, fstype, options)) = s.mount {
        let mounted = std::fs::read_to_string("/proc/mounts")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(target));
        if !mounted {
            mount_or_say(fstype, target, fstype, Some(options));
        }
    }
    let restore = apply_sysfs(s.sysfs)?;
    let thp_changed = thp_copy::changes_thp_enabled(s.sysfs, &restore);
    thp_copy::settle(thp_changed);
    // The tool attaches its multi-size THP probe only while such a size is enabled.
    let mthp = enables_mthp(s.sysfs);
    let attached = if mthp {
        await_mthp_probe(mode, true)
    } else {
        Ok(())
    };
    if let Err(e) = attached {
        for (path, value) in restore {
            let _ = std::fs::write(&path, value);
        }
        return Err(e);
    }
    let events = EventCounts::arm(&scenarios::event_keys(s, version))?;
    let before = read_counters(keys);
    let out = Command::new("/bin/hf-workload").args(s.workload).output();
    let after = read_counters(keys);
    for (path, value) in restore {
        let _ = std::fs::write(&path, value);
    }
    thp_copy::settle(thp_changed);
    if mthp {
        await_mthp_probe(mode, false)?;
    }
    let out = out.map_err(|e| format!("hf-workload: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "hf-workload {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let truth: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "hf-workload output: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    let mut vmstat_delta: BTreeMap<String, i64> = keys
        .iter()
        .filter_map(|k| Some((k.to_string(), after.get(*k)? - before.get(*k)?)))
        .collect();
    vmstat_delta.extend(events.read(truth["pid"].as_i64().unwrap_or(-1))?);
    Ok(Outcome {
        truth,
        vmstat_delta,
    })
}

/// One tracing session in one mode over every scenario.
pub fn run_mode(mode: &str, scenarios: &[&Scenario], kernel: &str) -> Vec<ScenarioResult> {
    let started = Instant::now();
    let version = hf_lab::parse::kernel_version(kernel).unwrap_or((0, 0));
    // `kprobe-aggregate`: the kprobe mode with `--aggregate` (faults counted in the kernel).
    let base = mode.trim_end_matches("-aggregate");
    let aggregate = base != mode;
    let mode_arg = if base == "tracepoint-only" {
        "tracepoint"
    } else {
        base
    };
    let fail_all = |why: String| -> Vec<ScenarioResult> {
        scenarios
            .iter()
            .map(|s| ScenarioResult {
                scenario: s.name.into(),
                kernel: kernel.into(),
                mode: mode.into(),
                status: Status::Fail,
                reason: Some(why.clone()),
                checks: vec![],
            })
            .collect()
    };
    // The kprobe run is recorded too, and replayed below: the replay must give the live
    // JSON exactly.
    let record = (mode == "kprobe").then(|| format!("/tmp/lab-{mode}.hfrec"));
    let mut child = match Command::new("/bin/huge-fault")
        .args(["--mode", mode_arg, "--json", "--max-vmas", "100000"])
        .args(aggregate.then_some("--aggregate"))
        // The aggregate pass runs the object for older kernels (per-thread state in a hash
        // map), so that both objects meet real faults on every kernel.
        .args(
            aggregate
                .then_some(["--thread-state", "hash"])
                .into_iter()
                .flatten(),
        )
        .args(record.iter().flat_map(|r| ["--record", r.as_str()]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return fail_all(format!("cannot start huge-fault: {e}")),
    };
    let mut err = BufReader::new(child.stderr.take().expect("piped"));
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap_or(0) == 0 {
            let _ = child.wait();
            return fail_all(format!(
                "huge-fault --mode {mode_arg} did not start: {}",
                head.trim()
            ));
        }
        print!("init: [{mode}] {line}");
        head.push_str(&line);
        if line.starts_with("huge-fault: tracing in ") {
            break;
        }
    }
    // The rest of the attach block and any later message go to the console.
    let tag = mode.to_string();
    let stderr_thread = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = err.read_to_string(&mut rest);
        for l in rest.lines() {
            println!("init: [{tag}] {l}");
        }
    });
    let keys = scenarios::vmstat_keys(scenarios);
    let mut outcomes = Vec::new();
    for s in scenarios {
        let t = Instant::now();
        let o = run_workload(s, &keys, mode, version);
        println!(
            "init: [{mode}] {} ran in {:.2}s",
            s.name,
            t.elapsed().as_secs_f64()
        );
        outcomes.push(o);
    }
    // Let the last records reach the ring buffer, then stop the tool.
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut stdout = String::new();
    let _ = child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut stdout);
    let status = child.wait();
    let _ = stderr_thread.join();
    let report: Value = match serde_json::from_str(&stdout) {
        Ok(v) => v,
        Err(e) => return fail_all(format!("huge-fault ({status:?}) printed no report: {e}")),
    };
    let time = Line::Time {
        pass: mode.into(),
        secs: started.elapsed().as_secs_f64(),
    };
    println!("{time}");
    if report["mode"] != base || report["aggregation"]["all"] != aggregate {
        return fail_all(format!(
            "huge-fault ran in mode {} (aggregate: {}) instead of {mode}",
            report["mode"], report["aggregation"]["all"]
        ));
    }
    let truths: Vec<Option<Value>> = outcomes
        .iter()
        .map(|o| o.as_ref().ok().map(|o| o.truth.clone()))
        .collect();
    let mut results: Vec<ScenarioResult> = scenarios
        .iter()
        .zip(outcomes)
        .map(|(s, o)| match o {
            Ok(o) => {
                // What the tool reported for this VMA, as a user would read it.
                for row in vma_rows(&report, &o.truth).into_iter().flatten() {
                    println!(
                        "init: [{mode}] {} {}: faults {} major {} retry_calls {} retried_faults {} vma_lock_retries {} unlinked {} pending {} entries {} reinserts {} bytes {} fallback_steps {} chains {} reasons {} handlers {} what-if {}",
                        s.name,
                        row["start"],
                        row["faults"],
                        row["major"],
                        row["retry_calls"],
                        row["retried_faults"],
                        row["vma_lock_retries"],
                        row["unlinked_retries"],
                        row["pending_retries"],
                        row["entries"],
                        row["reinserts"],
                        row["bytes_mapped"],
                        row["fallback_steps"],
                        row["chains"],
                        row["fallback_reasons"],
                        row["handlers"],
                        row["what_if"]
                    );
                }
                println!("init: [{mode}] {} truth {}", s.name, o.truth);
                evaluate::evaluate(s, kernel, mode, &report, &o.truth, &o.vmstat_delta)
            }
            Err(why) => ScenarioResult {
                scenario: s.name.into(),
                kernel: kernel.into(),
                mode: mode.into(),
                status: Status::Fail,
                reason: Some(why),
                checks: vec![],
            },
        })
        .collect();
    if let Some(path) = &record {
        results.push(replay_check(path, &report, kernel, mode));
    }
    // The what-if of each level-by-level run against its range-policy twin's real faults.
    for (i, s) in scenarios.iter().enumerate() {
        let Some(twin) = s.predicts else { continue };
        let Some(j) = scenarios.iter().position(|t| t.name == twin) else {
            continue;
        };
        if let (Some(pt), Some(at)) = (&truths[i], &truths[j]) {
            let checks = what_if_checks(
                twin,
                sees_what_if(mode),
                &vma_rows(&report, pt),
                &vma_rows(&report, at),
            );
            for c in &checks {
                println!(
                    "init: [{mode}] {}: {} expected {} got {} ({})",
                    s.name,
                    c.what,
                    c.expected,
                    c.got,
                    c.outcome.name()
                );
            }
            evaluate::add_checks(&mut results[i], checks);
        }
    }
    results
}
