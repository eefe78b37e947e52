//! Kernel event counts around one workload, by ftrace hist triggers: a second count the
//! kernel's own tracing makes, independent of the tool.

use std::{collections::BTreeMap, io::Write as _};

use crate::system::write_sysfs;

/// Kernel event counts armed around one workload: ftrace hist triggers keyed by pid, a count
/// the kernel's own tracing makes, independent of the tool. A key is `event:SYS:NAME` for a
/// tracepoint, `event:kprobe:FUNC` for a kprobe event the lab creates, or
/// `event:kretprobe:FUNC` for a return probe whose field `ret` is the return value, each
/// optionally followed by ` if FILTER`.
pub struct EventCounts {
    /// (key, event directory, trigger)
    armed: Vec<(String, String, String)>,
}

const TRACEFS: &str = "/sys/kernel/tracing";

impl EventCounts {
    pub fn arm(keys: &[&str]) -> Result<Self, String> {
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
            let probe = match sys {
                "kprobe" => Some((format!("hf_peer/{name}"), "p", "")),
                // The return value as `ret`, for a filter such as `ret == 2048`.
                "kretprobe" => Some((format!("hf_peer/{name}__ret"), "r", " ret=$retval:u32")),
                _ => None,
            };
            let dir = if let Some((ev, kind, args)) = probe {
                // One probe event per function, made once per boot.
                let dir = format!("{TRACEFS}/events/{ev}");
                if !std::path::Path::new(&dir).exists() {
                    let mut f = std::fs::OpenOptions::new()
                        .append(true)
                        .open(format!("{TRACEFS}/kprobe_events"))
                        .map_err(|e| format!("kprobe_events: {e}"))?;
                    // One write: the kernel parses each write(2) as whole commands.
                    f.write_all(format!("{kind}:{ev} {name}{args}\n").as_bytes())
                        .map_err(|e| {
                            // The kernel says why in tracing's error log.
                            let log = std::fs::read_to_string(format!("{TRACEFS}/error_log"))
                                .unwrap_or_default();
                            format!("probe event {kind}:{ev} {name}{args}: {e} {}", log.trim())
                        })?;
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
    pub fn read(self, pid: i64) -> Result<BTreeMap<String, i64>, String> {
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
