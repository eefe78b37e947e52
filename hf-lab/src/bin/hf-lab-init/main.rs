//! PID 1 of the kernel lab's QEMU guest: mounts what the tool needs, then for each attach
//! mode starts `huge-fault --json`, runs every scenario's workload, stops the tool and
//! compares its report with each scenario's expectations. Results go to the serial console
//! as protocol lines (`hf_lab::protocol::Line`); the guest then powers off.
//!
//! Kernel command line: `hf.only=a,b` limits the scenarios, `hf.modes=kprobe,...` the modes,
//! `hf.bench=SIZE,REPS` makes it a benchmark boot, `hf.save-recording` hands the kprobe
//! pass's recording to the host.

mod bench;
mod checks;
mod ci;
mod dax;
mod events;
mod kprobes;
mod metrics;
mod pass;
mod system;
mod thp_copy;
mod vfio;

use hf_lab::{
    evaluate::MODES,
    parse::kernel_version,
    protocol::{Line, ScenarioResult, Status},
    scenarios::{self, Scenario},
};
use std::time::Duration;

use crate::{
    bench::bench,
    checks::{kernel_log_check, sigkill_check},
    ci::ci_example,
    dax::setup_dax,
    pass::run_mode,
    system::{load_modules, mount_or_say, power_off},
};

fn cmdline_value(cmdline: &str, key: &str) -> Option<Vec<String>> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .map(|v| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
}

/// Prints one result as its protocol line.
fn emit(r: &ScenarioResult) {
    println!("{}", Line::Result(r.clone()));
}

fn main() {
    mount_or_say("proc", "/proc", "proc", None);
    mount_or_say("sysfs", "/sys", "sysfs", None);
    mount_or_say("devtmpfs", "/dev", "devtmpfs", None);
    mount_or_say("tmpfs", "/tmp", "tmpfs", None);
    mount_or_say("bpf", "/sys/fs/bpf", "bpf", None);
    mount_or_say("nodev", "/sys/kernel/tracing", "tracefs", None);
    // kprobes/list: whether the tool attached its gated probes (kprobes.rs).
    mount_or_say("nodev", "/sys/kernel/debug", "debugfs", None);
    let vfio_reserved = vfio::reserve_device();
    load_modules();
    let vfio = vfio::check_bound(vfio_reserved);
    std::panic::set_hook(Box::new(|info| {
        println!("{}", Line::Failure(format!("panic: {info}")));
        power_off();
    }));
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    println!("{}", Line::Kernel(kernel.clone()));
    let version = kernel_version(&kernel).unwrap_or((0, 0));
    if let Some(b) = cmdline_value(&cmdline, "hf.bench=") {
        // A benchmark boot: the bench only, then the kernel log.
        let size = b.first().cloned().unwrap_or_else(|| "1G".into());
        let reps = b.get(1).and_then(|r| r.parse().ok()).unwrap_or(3);
        // Optional subsets, names joined by `+`: configurations, then storms.
        let subset = |i: usize| -> Vec<String> {
            b.get(i)
                .map(|v| {
                    v.split('+')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default()
        };
        let only = bench::Only {
            configs: subset(2),
            storms: subset(3),
        };
        emit(&bench(
            &kernel,
            &size,
            reps,
            Duration::from_secs(2),
            Some(&only),
        ));
        emit(&kernel_log_check(&kernel));
        println!("{}", Line::Done);
        power_off();
    }
    let only = cmdline_value(&cmdline, "hf.only=");
    let modes = cmdline_value(&cmdline, "hf.modes=")
        .unwrap_or_else(|| MODES.iter().map(|m| m.to_string()).collect());

    let selected: Vec<&Scenario> = scenarios::all()
        .filter(|s| only.as_ref().is_none_or(|o| o.iter().any(|n| n == s.name)))
        .collect();
    // The exporter's check maps a devdax device too.
    let wants_metrics = only
        .as_ref()
        .is_none_or(|o| o.iter().any(|n| n == "metrics-exporter"));
    let dax = if wants_metrics
        || selected
            .iter()
            .any(|s| matches!(s.kind, "devdax" | "fsdax") && s.todo.is_none())
    {
        setup_dax()
    } else {
        Ok(())
    };
    let mut runnable = Vec::new();
    for s in &selected {
        let setup = match s.kind {
            "devdax" | "fsdax" => dax
                .as_ref()
                .err()
                .map(|e| format!("DAX set-up failed: {e}")),
            "vfio-pci" => vfio
                .as_ref()
                .err()
                .map(|e| format!("vfio-pci set-up failed: {e}")),
            _ => None,
        };
        if let Some(why) = setup {
            emit(&ScenarioResult {
                scenario: s.name.into(),
                kernel: kernel.clone(),
                mode: "-".into(),
                status: Status::Fail,
                reason: Some(why),
                checks: vec![],
            });
            continue;
        }
        let not_run = if let Some(todo) = s.todo {
            Some((Status::Pending, todo.to_string()))
        } else {
            scenarios::applies(s, version)
                .err()
                .map(|why| (Status::NotApplicable, why))
        };
        match not_run {
            Some((status, why)) => emit(&ScenarioResult {
                scenario: s.name.into(),
                kernel: kernel.clone(),
                mode: "-".into(),
                status,
                reason: Some(why),
                checks: vec![],
            }),
            None => runnable.push(*s),
        }
    }
    if !runnable.is_empty() {
        for mode in &modes {
            for r in run_mode(mode, &runnable, &kernel) {
                emit(&r);
            }
        }
    }
    // The README's CI example, on the kernel's own mm selftests (when no subset was asked
    // for, or `ci-example` was).
    let wants_ci = only
        .as_ref()
        .is_none_or(|o| o.iter().any(|n| n == "ci-example"));
    if wants_ci && std::path::Path::new("/bin/map_hugetlb").exists() {
        for r in ci_example(&kernel) {
            emit(&r);
        }
    }
    // The exporter, scraped in the guest in kprobe mode.
    if wants_metrics {
        emit(&metrics::metrics_check(&kernel));
    }
    // A tracer killed with SIGKILL leaves nothing in the kernel, in the modes that attach
    // the most.
    if only
        .as_ref()
        .is_none_or(|o| o.iter().any(|n| n == "sigkill-cleanup"))
    {
        for mode in ["fentry", "kprobe"] {
            emit(&sigkill_check(&kernel, mode));
        }
    }
    // A smoke run of the benchmark: it works in every mode, not how fast.
    if only
        .as_ref()
        .is_none_or(|o| o.iter().any(|n| n == "bench-smoke"))
    {
        emit(&bench(&kernel, "16M", 1, Duration::from_millis(200), None));
    }
    emit(&kernel_log_check(&kernel));
    println!("{}", Line::Done);
    power_off();
}
