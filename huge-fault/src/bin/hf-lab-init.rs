//! PID 1 of the kernel lab's QEMU guest: mounts what the tool needs, then for each attach
//! mode starts `huge-fault --json`, runs every scenario's workload, stops the tool and
//! compares its report with each scenario's expectations. Results go to the serial console
//! as `HF-LAB-RESULT {json}` lines; the guest then powers off.
//!
//! Kernel command line: `hf.only=a,b` limits the scenarios, `hf.modes=kprobe,...` the modes.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use huge_fault::lab::{self, SCENARIOS, Scenario, ScenarioResult, Status};
use serde_json::Value;

/// mount(2), creating the mount point; the error names what was mounted where.
fn mount(src: &str, target: &str, fstype: &str, data: Option<&str>) -> Result<(), String> {
    let _ = std::fs::create_dir_all(target);
    let c = |s: &str| std::ffi::CString::new(s).expect("no NUL");
    let (src_c, target_c, fstype_c) = (c(src), c(target), c(fstype));
    let data_c = data.map(c);
    // SAFETY: valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            src_c.as_ptr(),
            target_c.as_ptr(),
            fstype_c.as_ptr(),
            0,
            data_c
                .as_ref()
                .map_or(std::ptr::null(), |d| d.as_ptr().cast()),
        )
    };
    if rc != 0 {
        return Err(format!(
            "mount {fstype} {src} on {target}{}: {}",
            data.map_or(String::new(), |d| format!(" -o {d}")),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Mounts what the init needs to go on; a failure is printed, not fatal.
fn mount_or_say(src: &str, target: &str, fstype: &str, data: Option<&str>) {
    if let Err(e) = mount(src, target, fstype, data) {
        println!("init: {e}");
    }
}

fn power_off() -> ! {
    let _ = std::io::stdout().flush();
    // SAFETY: sync and reboot have no memory preconditions; we are PID 1.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Loads the kernel modules packed into /modules, in name order (the host put them in
/// dependency order). Compressed modules are left to the kernel to decompress.
fn load_modules() {
    let Ok(dir) = std::fs::read_dir("/modules") else {
        return;
    };
    let mut files: Vec<_> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    for f in files {
        let Ok(file) = std::fs::File::open(&f) else {
            continue;
        };
        use std::os::fd::AsRawFd as _;
        let flags = if f.extension().is_some_and(|e| e == "xz") {
            4
        } else {
            0
        };
        // SAFETY: a valid fd and an empty, NUL-terminated parameter string.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_finit_module,
                file.as_raw_fd(),
                c"".as_ptr(),
                flags,
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                println!("init: loading {}: {e}", f.display());
            }
        }
    }
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn write_sysfs(path: &str, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("{path} <- {value}: {e}"))
}

/// Turns the label-less namespace of each emulated NVDIMM region into a devdax device, as
/// `ndctl create-namespace -f -e namespaceN.0 -m devdax -a ALIGN` does: unbind the
/// namespace, configure the region's dax seed (uuid, metadata in pmem, alignment,
/// namespace) and bind it. The 4 GiB region gets 1 GiB alignment, the other 2 MiB.
/// /dev/hf-dax-1g and /dev/hf-dax-2m then point at the character devices.
fn setup_dax() -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let regions = loop {
        let mut r: Vec<String> = std::fs::read_dir("/sys/bus/nd/devices")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("region"))
                    .collect()
            })
            .unwrap_or_default();
        r.sort();
        if r.len() >= 4 {
            break r;
        }
        if Instant::now() > deadline {
            return Err(format!("expected 4 NVDIMM regions, found {r:?}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut fsdax = 0;
    for (i, region) in regions.iter().enumerate() {
        let base = format!("/sys/bus/nd/devices/{region}");
        let size: u64 = read_trim(&format!("{base}/size"))
            .and_then(|s| s.parse().ok())
            .ok_or(format!("{region}: no size"))?;
        let n = region.trim_start_matches("region");
        let ns = format!("namespace{n}.0");
        let ns_dir = format!("/sys/bus/nd/devices/{ns}");
        // 4 GiB: devdax 1 GiB; 2 GiB: devdax 2 MiB; 1 GiB: fsdax (plain, then aligned mkfs).
        let (seed, align, link) = if size >= 3 << 30 {
            ("dax_seed", 1u64 << 30, lab::DAX_1G)
        } else if size >= 3 << 29 {
            ("dax_seed", 2 << 20, lab::DAX_2M)
        } else {
            fsdax += 1;
            (
                "pfn_seed",
                2 << 20,
                if fsdax == 1 {
                    "/dev/hf-pmem-plain"
                } else {
                    "/dev/hf-pmem-aligned"
                },
            )
        };
        if std::path::Path::new(&format!("{ns_dir}/driver")).exists() {
            write_sysfs(&format!("{ns_dir}/driver/unbind"), &ns)?;
        }
        let dev_name =
            read_trim(&format!("{base}/{seed}")).ok_or(format!("{region}: no {seed}"))?;
        let dev_dir = format!("/sys/bus/nd/devices/{dev_name}");
        write_sysfs(
            &format!("{dev_dir}/uuid"),
            &format!("6866642d-6461-4000-8000-00000000000{i}"),
        )?;
        write_sysfs(&format!("{dev_dir}/mode"), "pmem")?;
        write_sysfs(&format!("{dev_dir}/align"), &align.to_string())?;
        write_sysfs(&format!("{dev_dir}/namespace"), &ns)?;
        let drivers: Vec<_> = std::fs::read_dir("/sys/bus/nd/drivers")
            .map_err(|e| format!("/sys/bus/nd/drivers: {e}"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        for d in &drivers {
            let _ = std::fs::write(d.join("bind"), &dev_name);
            if std::path::Path::new(&format!("{dev_dir}/driver")).exists() {
                break;
            }
        }
        if !std::path::Path::new(&format!("{dev_dir}/driver")).exists() {
            return Err(format!(
                "no driver bound {dev_name} ({region}, align {align})"
            ));
        }
        // The device node: /dev/daxR.* for devdax, /dev/pmemR for fsdax.
        let prefix = if seed == "dax_seed" {
            format!("dax{n}.")
        } else {
            format!("pmem{n}")
        };
        let dev = loop {
            let found = std::fs::read_dir("/dev").ok().and_then(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .find(|f| f == &prefix || (f.starts_with(&prefix) && seed == "dax_seed"))
            });
            if let Some(f) = found {
                break format!("/dev/{f}");
            }
            if Instant::now() > deadline {
                return Err(format!("no /dev/{prefix}* after binding {dev_name}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        std::os::unix::fs::symlink(&dev, link).map_err(|e| format!("{link}: {e}"))?;
        println!(
            "init: {region} ({} MiB) -> {dev} align {align} as {link}",
            size >> 20
        );
        if seed == "pfn_seed" {
            let (target, extra): (&str, &[&str]) = if fsdax == 1 {
                (lab::FSDAX_PLAIN, &[])
            } else {
                // 2 MiB stripes make ext4's allocator hand out 2 MiB-aligned extents.
                (
                    lab::FSDAX_ALIGNED,
                    &["-b", "4096", "-E", "stride=512,stripe_width=512"],
                )
            };
            let out = Command::new("/usr/sbin/mkfs.ext4")
                .args(["-q", "-F"])
                .args(extra)
                .arg(&dev)
                .output()
                .map_err(|e| format!("mkfs.ext4: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "mkfs.ext4 {dev}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            mount(&dev, target, "ext4", Some("dax"))?;
            println!(
                "init: {dev} mkfs.ext4 {} mounted -o dax on {target}",
                extra.join(" ")
            );
        }
    }
    Ok(())
}

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

fn emit(r: &ScenarioResult) {
    println!(
        "{}{}",
        lab::RESULT_MARK,
        serde_json::to_string(r).expect("serializes")
    );
}

/// The kernel counters `keys` name: /proc/vmstat keys, or sysfs files holding one number.
fn read_counters(keys: &[&str]) -> BTreeMap<String, i64> {
    let vmstat = lab::parse_vmstat(&std::fs::read_to_string("/proc/vmstat").unwrap_or_default());
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

/// Kernel event counts armed around one workload: ftrace hist triggers keyed by pid, a count
/// the kernel's own tracing makes, independent of the tool. A key is `event:SYS:NAME` for a
/// tracepoint or `event:kprobe:FUNC` for a kprobe event the lab creates, either followed by
/// ` if FILTER`.
struct EventCounts {
    /// (key, event directory, trigger)
    armed: Vec<(String, String, String)>,
}

const TRACEFS: &str = "/sys/kernel/tracing";

impl EventCounts {
    fn arm(keys: &[&str]) -> Result<Self, String> {
        let mut armed = Vec::new();
        for key in keys {
            let Some(spec) = key.strip_prefix("event:") else {
                continue;
            };
            let (event, filter) = match spec.split_once(" if ") {
                Some((e, f)) => (e, Some(f)),
                None => (spec, None),
            };
            let (sys, name) = event
                .split_once(':')
                .ok_or(format!("{key}: not SYS:NAME"))?;
            let dir = if sys == "kprobe" {
                // One probe event per function, made once per boot.
                let ev = format!("hf_peer/{name}");
                let dir = format!("{TRACEFS}/events/{ev}");
                if !std::path::Path::new(&dir).exists() {
                    let mut f = std::fs::OpenOptions::new()
                        .append(true)
                        .open(format!("{TRACEFS}/kprobe_events"))
                        .map_err(|e| format!("kprobe_events: {e}"))?;
                    writeln!(f, "p:{ev} {name}").map_err(|e| format!("kprobe {name}: {e}"))?;
                }
                std::fs::write(format!("{dir}/enable"), "1")
                    .map_err(|e| format!("{dir}/enable: {e}"))?;
                dir
            } else {
                format!("{TRACEFS}/events/{sys}/{name}")
            };
            let trigger = match filter {
                Some(f) => format!("hist:keys=common_pid if {f}"),
                None => "hist:keys=common_pid".to_string(),
            };
            write_sysfs(&format!("{dir}/trigger"), &trigger)?;
            armed.push((key.to_string(), dir, trigger));
        }
        Ok(Self { armed })
    }

    /// The hits of the workload's pid, per key; disarms the triggers.
    fn read(self, pid: i64) -> Result<BTreeMap<String, i64>, String> {
        let mut out = BTreeMap::new();
        for (key, dir, trigger) in self.armed {
            let hist = std::fs::read_to_string(format!("{dir}/hist"))
                .map_err(|e| format!("{dir}/hist: {e}"))?;
            let _ = std::fs::write(format!("{dir}/trigger"), format!("!{trigger}"));
            if !hist.lines().any(|l| l.trim() == "Dropped: 0") {
                return Err(format!("{dir}/hist dropped events: {hist}"));
            }
            // `{ common_pid:        123 } hitcount:       2048`
            let hits = hist
                .lines()
                .filter_map(|l| {
                    let rest = l.trim().strip_prefix("{ common_pid:")?;
                    let (p, h) = rest.split_once('}')?;
                    let h = h.trim().strip_prefix("hitcount:")?;
                    Some((p.trim().parse::<i64>().ok()?, h.trim().parse::<i64>().ok()?))
                })
                .filter(|(p, _)| *p == pid)
                .map(|(_, h)| h)
                .sum();
            out.insert(key, hits);
        }
        Ok(out)
    }
}

fn run_workload(s: &Scenario, keys: &[&str]) -> Result<Outcome, String> {
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
    let events = EventCounts::arm(&lab::event_keys(s))?;
    let before = read_counters(keys);
    let out = Command::new("/bin/hf-workload").args(s.workload).output();
    let after = read_counters(keys);
    for (path, value) in restore {
        let _ = std::fs::write(&path, value);
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
fn run_mode(mode: &str, scenarios: &[&Scenario], kernel: &str) -> Vec<ScenarioResult> {
    let started = Instant::now();
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
    let keys = lab::vmstat_keys(scenarios);
    let mut outcomes = Vec::new();
    for s in scenarios {
        let t = Instant::now();
        let o = run_workload(s, &keys);
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
    println!(
        "{}{mode} {:.2}",
        lab::TIME_MARK,
        started.elapsed().as_secs_f64()
    );
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
                for row in lab::vma_rows(&report, &o.truth).into_iter().flatten() {
                    println!(
                        "init: [{mode}] {} {}: faults {} major {} retry_calls {} retried_faults {} vma_lock_retries {} unlinked {} pending {} entries {} bytes {} fallback_steps {} chains {} what-if {}",
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
                        row["bytes_mapped"],
                        row["fallback_steps"],
                        row["chains"],
                        row["what_if"]
                    );
                }
                println!("init: [{mode}] {} truth {}", s.name, o.truth);
                lab::evaluate(s, kernel, mode, &report, &o.truth, &o.vmstat_delta)
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
            let checks = lab::what_if_checks(
                twin,
                lab::sees_what_if(mode),
                &lab::vma_rows(&report, pt),
                &lab::vma_rows(&report, at),
            );
            for c in &checks {
                println!(
                    "init: [{mode}] {}: {} expected {} got {} ({})",
                    s.name, c.what, c.expected, c.got, c.outcome
                );
            }
            lab::add_checks(&mut results[i], checks);
        }
    }
    results
}

fn main() {
    mount_or_say("proc", "/proc", "proc", None);
    mount_or_say("sysfs", "/sys", "sysfs", None);
    mount_or_say("devtmpfs", "/dev", "devtmpfs", None);
    mount_or_say("tmpfs", "/tmp", "tmpfs", None);
    mount_or_say("bpf", "/sys/fs/bpf", "bpf", None);
    mount_or_say("nodev", "/sys/kernel/tracing", "tracefs", None);
    load_modules();
    std::panic::set_hook(Box::new(|info| {
        println!("init: failure: panic: {info}");
        power_off();
    }));
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    println!("{}{kernel}", lab::KERNEL_MARK);
    let version = lab::kernel_version(&kernel).unwrap_or((0, 0));
    if let Some(b) = cmdline_value(&cmdline, "hf.bench=") {
        // A benchmark boot: the bench only, then the kernel log.
        let size = b.first().cloned().unwrap_or_else(|| "1G".into());
        let reps = b.get(1).and_then(|r| r.parse().ok()).unwrap_or(3);
        emit(&bench(&kernel, &size, reps, Duration::from_secs(2), true));
        emit(&kernel_log_check(&kernel));
        println!("{}", lab::DONE_MARK);
        power_off();
    }
    let only = cmdline_value(&cmdline, "hf.only=");
    let modes = cmdline_value(&cmdline, "hf.modes=")
        .unwrap_or_else(|| lab::MODES.iter().map(|m| m.to_string()).collect());

    let selected: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|s| only.as_ref().is_none_or(|o| o.iter().any(|n| n == s.name)))
        .collect();
    let dax = if selected
        .iter()
        .any(|s| matches!(s.kind, "devdax" | "fsdax") && s.todo.is_none())
    {
        setup_dax()
    } else {
        Ok(())
    };
    let mut runnable = Vec::new();
    for s in &selected {
        if let (Err(why), "devdax" | "fsdax") = (&dax, s.kind) {
            emit(&ScenarioResult {
                scenario: s.name.into(),
                kernel: kernel.clone(),
                mode: "-".into(),
                status: Status::Fail,
                reason: Some(format!("DAX set-up failed: {why}")),
                checks: vec![],
            });
            continue;
        }
        let not_run = if let Some(todo) = s.todo {
            Some((Status::Pending, todo.to_string()))
        } else {
            lab::applies(s, version)
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
    // A smoke run of the benchmark: it works in every mode, not how fast.
    if only
        .as_ref()
        .is_none_or(|o| o.iter().any(|n| n == "bench-smoke"))
    {
        emit(&bench(&kernel, "16M", 1, Duration::from_millis(200), false));
    }
    emit(&kernel_log_check(&kernel));
    println!("{}", lab::DONE_MARK);
    power_off();
}

/// The fault storms untraced and under every tracer this guest has (bpftrace when the
/// initramfs carries it), interleaved. Prints each sample and the summary table for the
/// host; passes when every measurement ran, every storm faulted at least once per page
/// (per 2 MiB for THP and the BAR), and huge-fault lost no record.
fn bench(kernel: &str, size: &str, reps: u32, settle: Duration, full: bool) -> ScenarioResult {
    use huge_fault::bench::{self, Config, Env};
    let bpftrace = std::path::Path::new("/bin/bpftrace");
    let env = Env {
        huge_fault: "/bin/huge-fault".into(),
        workload: "/bin/hf-workload".into(),
        bpftrace: bpftrace.exists().then(|| bpftrace.into()),
        settle,
    };
    let mut configs = vec![Config::Untraced];
    configs.extend(Config::HUGE_FAULT);
    if env.bpftrace.is_some() {
        configs.push(Config::Bpftrace);
    }
    let storms = bench::storms(size);
    let (samples, mut errors) = bench::run(&env, &storms, &configs, reps, &mut |l| {
        println!("init: [bench] {l}")
    });
    for s in &samples {
        if full {
            println!(
                "HF-BENCH-SAMPLE {}",
                serde_json::to_string(s).expect("a sample serializes")
            );
        }
        if s.drops.unwrap_or(0) > 0 {
            errors.push(format!(
                "{} {}: {} drops",
                s.storm,
                s.config.name(),
                s.drops.unwrap_or(0)
            ));
        }
        let bytes = huge_fault::lab::parse_size(size).unwrap_or(0);
        let min_faults = match s.storm.as_str() {
            "pte" | "pte-2-threads" => bytes >> 12,
            "bar-pud" => (bytes >> 30).max(1),
            _ => bytes >> 21,
        };
        if s.records.is_some_and(|r| r < s.faults) {
            errors.push(format!(
                "{} {}: huge-fault accounted {} calls, fewer than the storm's {} faults",
                s.storm,
                s.config.name(),
                s.records.unwrap_or(0),
                s.faults
            ));
        }
        if s.faults < min_faults {
            errors.push(format!(
                "{} {}: {} faults, fewer than {min_faults}",
                s.storm,
                s.config.name(),
                s.faults
            ));
        }
    }
    let table = bench::render(&bench::summarize(&samples));
    for l in table.lines() {
        println!("HF-BENCH-TABLE {l}");
    }
    ScenarioResult {
        scenario: if full { "bench" } else { "bench-smoke" }.into(),
        kernel: kernel.into(),
        mode: "-".into(),
        status: if errors.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        },
        reason: (!errors.is_empty()).then(|| errors.join("; ")),
        checks: vec![],
    }
}

/// One `huge-fault run` of the CI example: its exit status, the JUnit report's test and
/// failure counts, and its stderr must be as expected.
struct CiRun {
    name: &'static str,
    args: &'static [&'static str],
    exit: i32,
    /// (tests, failures) in the JUnit report.
    junit: (u32, u32),
    /// A line its stderr must hold.
    says: &'static str,
}

const CI_RUNS: &[CiRun] = &[
    // map_hugetlb 4: 4 MiB of 2 MiB hugetlb pages. It reads the first word (a read fault
    // maps the first page, read-only in a private mapping), writes every byte (a
    // write-protect fault on the first page, a fault on the second) and reads them back:
    // 3 faults, all bytes mapped by PMD entries.
    CiRun {
        name: "ci-map_hugetlb",
        args: &[
            "--fail-if",
            "hugetlb: faults != 3",
            "--fail-if",
            "hugetlb: pmd_share < 100%",
            "--fail-if",
            "errors > 0",
            "--fail-if",
            "drops > 0",
            "--",
            "/bin/map_hugetlb",
            "4",
        ],
        exit: 0,
        junit: (5, 0),
        says: "threshold `hugetlb: pmd_share < 100%` passed",
    },
    // The same test held to a threshold it cannot meet: no 1 GiB entries. Exit 1.
    CiRun {
        name: "ci-map_hugetlb-fails",
        args: &[
            "--fail-if",
            "hugetlb: pud_share < 100%",
            "--",
            "/bin/map_hugetlb",
            "4",
        ],
        exit: 1,
        junit: (2, 1),
        says: "threshold `hugetlb: pud_share < 100%` FAILED",
    },
    // madv_populate: MADV_POPULATE_READ/WRITE fault pages in through get_user_pages, which
    // only the fentry and kprobe modes see.
    CiRun {
        name: "ci-madv_populate",
        args: &[
            "--fail-if",
            "drops > 0",
            "--fail-if",
            "faults < 512",
            "--",
            "/bin/madv_populate",
        ],
        exit: 0,
        junit: (3, 0),
        says: "threshold `faults < 512` passed",
    },
];

/// The README's CI example: `huge-fault run` around the kernel's mm selftests with
/// thresholds and a JUnit report, in kprobe mode.
fn ci_example(kernel: &str) -> Vec<ScenarioResult> {
    CI_RUNS
        .iter()
        .map(|c| {
            let junit = format!("/tmp/{}.xml", c.name);
            let out = Command::new("/bin/huge-fault")
                .args(["run", "--mode", "kprobe", "--junit", &junit])
                .args(c.args)
                .output();
            let mut problems = Vec::new();
            match &out {
                Err(e) => problems.push(format!("cannot run huge-fault: {e}")),
                Ok(o) => {
                    let err = String::from_utf8_lossy(&o.stderr);
                    for l in err.lines() {
                        println!("init: [ci] {}: {l}", c.name);
                    }
                    if o.status.code() != Some(c.exit) {
                        problems.push(format!("exit {:?}, expected {}", o.status.code(), c.exit));
                    }
                    if !err.contains(c.says) {
                        problems.push(format!("stderr lacks `{}`", c.says));
                    }
                    let xml = std::fs::read_to_string(&junit).unwrap_or_default();
                    let want = format!("tests=\"{}\" failures=\"{}\"", c.junit.0, c.junit.1);
                    if !xml.contains(&want) {
                        problems.push(format!("JUnit report lacks {want}"));
                    }
                    let stdout = String::from_utf8_lossy(&o.stdout);
                    for l in stdout.lines().take(3) {
                        println!("init: [ci] {}: {l}", c.name);
                    }
                }
            }
            ScenarioResult {
                scenario: c.name.into(),
                kernel: kernel.into(),
                mode: "kprobe".into(),
                status: if problems.is_empty() {
                    Status::Pass
                } else {
                    Status::Fail
                },
                reason: (!problems.is_empty()).then(|| problems.join("; ")),
                checks: vec![],
            }
        })
        .collect()
}

/// `huge-fault report --json` of the run's recording must print the live run's JSON.
fn replay_check(path: &str, live: &Value, kernel: &str, mode: &str) -> ScenarioResult {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let out = Command::new("/bin/huge-fault")
        .args(["report", "--json", path])
        .output();
    let reason = match out {
        Err(e) => Some(format!("cannot run huge-fault report: {e}")),
        Ok(o) if !o.status.success() => Some(format!(
            "huge-fault report failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(o) => match serde_json::from_slice::<Value>(&o.stdout) {
            Err(e) => Some(format!("the replay printed no JSON: {e}")),
            Ok(v) if v == *live => None,
            Ok(v) => Some(format!(
                "the replay differs from the live report: {}",
                first_difference(live, &v, "")
            )),
        },
    };
    // The same recording as a user reads it, for the serial log.
    if let Ok(o) = Command::new("/bin/huge-fault")
        .args(["report", "--top", "80", path])
        .output()
    {
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            println!("init: [report] {l}");
        }
    }
    // `hf.save-recording`: the recording goes to the host too, in hex lines on the console.
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    if cmdline.split_whitespace().any(|w| w == "hf.save-recording")
        && let Ok(bytes) = std::fs::read(path)
    {
        for chunk in bytes.chunks(512) {
            let hex: String = chunk.iter().map(|b| format!("{b:02x}")).collect();
            println!("{}lab-{mode}.hfrec {hex}", lab::FILE_MARK);
        }
    }
    let _ = std::fs::remove_file(path);
    println!(
        "init: [{mode}] replay of the recording ({size} bytes): {}",
        reason.as_deref().unwrap_or("same JSON as the live run")
    );
    ScenarioResult {
        scenario: "replay-recording".into(),
        kernel: kernel.into(),
        mode: mode.into(),
        status: if reason.is_none() {
            Status::Pass
        } else {
            Status::Fail
        },
        reason,
        checks: vec![],
    }
}

/// The first path where two JSON values differ, with both values.
fn first_difference(a: &Value, b: &Value, at: &str) -> String {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                match y.get(k) {
                    Some(vb) if va == vb => {}
                    Some(vb) => return first_difference(va, vb, &format!("{at}.{k}")),
                    None => return format!("{at}.{k} missing in the replay"),
                }
            }
            format!("{at}: keys only in the replay")
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find(|(_, (p, q))| p != q)
            .map(|(i, (p, q))| first_difference(p, q, &format!("{at}[{i}]")))
            .unwrap_or_default(),
        _ => format!("{at}: live {a} replay {b}"),
    }
}

/// The kernel log after every run: a warning, BUG, oops or stack trace anywhere (the lab
/// driver's bad requests included) fails the boot.
fn kernel_log_check(kernel: &str) -> ScenarioResult {
    const SYSLOG_ACTION_READ_ALL: i32 = 3;
    const SYSLOG_ACTION_SIZE_BUFFER: i32 = 10;
    // SAFETY: klogctl with a buffer of the size it reports.
    let text = unsafe {
        let size = libc::klogctl(SYSLOG_ACTION_SIZE_BUFFER, std::ptr::null_mut(), 0).max(1 << 16);
        let mut buf = vec![0u8; size as usize];
        let n = libc::klogctl(SYSLOG_ACTION_READ_ALL, buf.as_mut_ptr().cast(), size);
        buf.truncate(n.max(0) as usize);
        String::from_utf8_lossy(&buf).into_owned()
    };
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| lab::KERNEL_LOG_ALARMS.iter().any(|m| l.contains(m)))
        .take(5)
        .collect();
    ScenarioResult {
        scenario: "kernel-log".into(),
        kernel: kernel.into(),
        mode: "-".into(),
        status: if bad.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        },
        reason: (!bad.is_empty()).then(|| format!("kernel log: {}", bad.join(" | "))),
        checks: vec![],
    }
}
